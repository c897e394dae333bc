/**
 * `COPY … FROM STDIN` from a Node.js stream, over a connection of its own:
 * what `pgweave load` uses, and what applications can use to bulk-load.
 *
 * States: connecting → sent (Query written, waiting for CopyInResponse) →
 * streaming (CopyData from the source) → done (CopyDone written, waiting for
 * CommandComplete + ReadyForQuery) → closed. An ErrorResponse before
 * CopyInResponse ends it at once; one during streaming (a bad row the server
 * found early) stops the source, ends the COPY with CopyDone — the server
 * ignores data after its error until then — and reports the error.
 *
 * Flow control: the source is read only while the socket takes data
 * (`write()` returning false pauses it until 'drain'), so a slow server —
 * pgweave waiting for its slowest shard — slows the reader, and memory stays
 * bounded whatever the file size.
 */
import type { Readable } from 'node:stream';
import { connectBackend, type BackendConnection } from '../pool/backend-connection.js';
import { encodeQuery, encodeTerminate } from '../pool/frontend-encoders.js';
import { Backend, Frontend } from '../protocol/constants.js';
import { MessageFramer, forEachMessage } from '../protocol/framer.js';
import { PgError } from '../protocol/errors.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import { encodeMessage } from '../protocol/writer.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { connectOptions, type ConnectionOptions } from './connection.js';

export interface CopyProgress {
  /** Bytes of the source sent so far. */
  bytes: number;
  /** Rows sent so far (line ends counted; null when the format has none: binary). */
  rows: number | null;
}

export interface CopyFromOptions {
  /** Count rows by their line ends (text and CSV). */
  countRows?: boolean;
  /** Called after each piece sent. */
  onData?: (p: CopyProgress) => void;
}

export interface CopyFromResult {
  /** The command tag, e.g. "COPY 1000". */
  tag: string;
  rows: number;
  bytes: number;
}

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());
/** Source pieces are cut to at most this size per CopyData message. */
const MAX_PIECE = 256 << 10;

function copyData(piece: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = Frontend.CopyData;
  head.writeInt32BE(piece.length + 4, 1);
  return Buffer.concat([head, piece]);
}

function countLines(buf: Buffer): number {
  let n = 0;
  let pos = buf.indexOf(0x0a);
  while (pos >= 0) {
    n++;
    pos = buf.indexOf(0x0a, pos + 1);
  }
  return n;
}

/** Runs `sql` (a COPY … FROM STDIN) and streams `source` into it. Throws the server's PgError. */
export async function copyFromStream(target: string | ConnectionOptions, sql: string, source: Readable, opts: CopyFromOptions = {}): Promise<CopyFromResult> {
  const conn = await connectBackend(connectOptions(target, 'pgweave load'));
  try {
    return await runCopy(conn, sql, source, opts);
  } finally {
    if (!conn.socket.destroyed) conn.socket.end(encodeTerminate());
  }
}

function runCopy(conn: BackendConnection, sql: string, source: Readable, opts: CopyFromOptions): Promise<CopyFromResult> {
  const { socket } = conn;
  const framer = new MessageFramer();
  const progress: CopyProgress = { bytes: 0, rows: opts.countRows ? 0 : null };
  let state: 'sent' | 'streaming' | 'done' = 'sent';
  let error: PgError | null = null;
  let tag = '';
  let lastByte = 0x0a;

  return new Promise<CopyFromResult>((resolve, reject) => {
    const fail = (err: PgError) => {
      source.destroy();
      socket.destroy();
      reject(err);
    };
    /** Ends the stream: CopyDone (also after a server error: it waits for it). */
    const finishStream = () => {
      if (state !== 'streaming') return;
      state = 'done';
      source.removeListener('data', onSourceData);
      source.removeListener('end', finishStream);
      // A last line without its line end is still a row.
      if (progress.rows !== null && lastByte !== 0x0a && progress.bytes > 0) progress.rows++;
      socket.write(COPY_DONE);
    };
    const onSourceData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (buf.length === 0) return;
      let ok = true;
      for (let pos = 0; pos < buf.length; pos += MAX_PIECE) ok = socket.write(copyData(buf.subarray(pos, pos + MAX_PIECE))) && ok;
      progress.bytes += buf.length;
      if (progress.rows !== null) progress.rows += countLines(buf);
      lastByte = buf[buf.length - 1];
      opts.onData?.(progress);
      if (!ok) {
        source.pause();
        socket.once('drain', () => source.resume());
      }
    };
    source.on('error', (err) => {
      if (state === 'streaming') {
        state = 'done';
        socket.write(encodeMessage((w) => w.begin(Frontend.CopyFail).cstring(`reading the input failed: ${err.message}`).end()));
      }
      error ??= new PgError({ code: '58030', message: `could not read the input: ${err.message}` });
    });
    socket.on('error', () => {});
    socket.on('close', () => fail(error ?? new PgError({ code: '08006', message: 'the server closed the connection during COPY' })));
    socket.on('data', (chunk: Buffer) => {
      let whole: Buffer | null;
      try {
        whole = framer.take(chunk);
      } catch (err) {
        fail(err as PgError);
        return;
      }
      if (!whole) return;
      const buf = whole;
      forEachMessage(buf, (type, start, end) => {
        switch (type) {
          case Backend.CopyInResponse:
            state = 'streaming';
            source.on('data', onSourceData);
            source.once('end', finishStream);
            source.resume();
            break;
          case Backend.ErrorResponse:
            error ??= readErrorResponse(buf, start, end);
            finishStream();
            break;
          case Backend.CommandComplete:
            tag = buf.toString('utf8', start + 5, end - 1);
            break;
          case Backend.ReadyForQuery:
            socket.removeAllListeners('close');
            if (error) {
              source.destroy();
              reject(error);
            } else {
              const rows = /^COPY (\d+)$/.exec(tag);
              resolve({ tag, rows: rows ? Number(rows[1]) : 0, bytes: progress.bytes });
            }
            break;
          default:
            break; // NoticeResponse, ParameterStatus
        }
      });
    });
    source.pause();
    socket.write(encodeQuery(sql));
  });
}

export interface CopyStatementOptions {
  format?: 'text' | 'csv' | 'binary';
  header?: boolean;
  delimiter?: string;
  null?: string;
  /** Column names as SQL writes them (unquoted names fold to lower case). */
  columns?: string[];
}

/**
 * Splits a name as SQL writes it — `events`, `app.events`, `"Mixed"."Case"` —
 * into its parts, folding unquoted ones to lower case as PostgreSQL does.
 */
export function splitSqlName(name: string): string[] {
  const parts: string[] = [];
  let pos = 0;
  for (;;) {
    if (name[pos] === '"') {
      let part = '';
      let i = pos + 1;
      for (;;) {
        const q = name.indexOf('"', i);
        if (q < 0) throw new Error(`unterminated quoted name: ${name}`);
        part += name.slice(i, q);
        if (name[q + 1] === '"') {
          part += '"';
          i = q + 2;
        } else {
          pos = q + 1;
          break;
        }
      }
      parts.push(part);
    } else {
      const dot = name.indexOf('.', pos);
      const part = (dot < 0 ? name.slice(pos) : name.slice(pos, dot)).trim();
      if (part === '' || part.includes('"')) throw new Error(`not a table or column name: ${name}`);
      parts.push(part.toLowerCase());
      pos = dot < 0 ? name.length : dot;
    }
    if (pos >= name.length) return parts;
    if (name[pos] !== '.') throw new Error(`not a table or column name: ${name}`);
    pos++;
  }
}

/** `COPY table (columns) FROM STDIN WITH (…)`, every name and value quoted. */
export function copyFromStatement(table: string, o: CopyStatementOptions = {}): string {
  const tableSql = splitSqlName(table).map(quoteIdent).join('.');
  const columns = o.columns && o.columns.length > 0 ? ` (${o.columns.map((c) => splitSqlName(c).map(quoteIdent).join('.')).join(', ')})` : '';
  const options = [`FORMAT ${o.format ?? 'text'}`];
  if (o.header) options.push('HEADER true');
  if (o.delimiter !== undefined) options.push(`DELIMITER ${quoteLiteral(o.delimiter).trim()}`);
  if (o.null !== undefined) options.push(`NULL ${quoteLiteral(o.null).trim()}`);
  return `COPY ${tableSql}${columns} FROM STDIN WITH (${options.join(', ')})`;
}
