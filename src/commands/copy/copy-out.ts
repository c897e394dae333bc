/**
 * `COPY table [(cols)] TO STDOUT` of a distributed or reference table,
 * streamed: each shard's own `COPY shard TO STDOUT` runs on the session's
 * connection to its node (the transaction's connection in a block, so the
 * transaction's own writes show; the client's role, so its privileges and
 * row-level security hold), one shard after the other, and its CopyData
 * messages go to the client as they arrive. Nothing is gathered on the
 * coordinator: when the client's socket backs up, the worker's socket is
 * paused until the client drains, so the worker waits (ClientWrite) rather
 * than the coordinator buffering.
 *
 * The stream is PostgreSQL's own: the coordinator PostgreSQL first runs the
 * client's statement on the table's (empty) coordinator definition, which
 * checks options, columns and privileges with PostgreSQL's errors; the first
 * shard's CopyOutResponse (PostgreSQL's format codes) is forwarded; CSV
 * HEADER goes to the first shard's COPY only; binary: the 19-byte header
 * once at the start and the -1 trailer once at the end, each shard's own
 * cut out. The CommandComplete counts the rows of every shard.
 */
import type { Duplex } from 'node:stream';
import { Backend, Frontend } from '../../protocol/constants.js';
import { PgError, toPgError } from '../../protocol/errors.js';
import { readErrorResponse } from '../../protocol/backend/error-response.js';
import { encodeMessage } from '../../protocol/writer.js';
import { encodeQuery } from '../../pool/frontend-encoders.js';
import { Completes, type BackendLink } from '../../executor/backend-link.js';
import { tagCount } from '../../executor/link-query.js';
import type { DistributedTable, WorkerNode } from '../../metadata/types.js';
import type { Node } from '../../sql/parse.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../sql/quote.js';
import { BINARY_HEADER, BINARY_TRAILER } from './copy-rows.js';
import { clientError } from './shard-errors.js';
import type { CopyCounters } from './copy-progress.js';

export interface CopyOutAccess {
  runAsClient(sql: string): Promise<unknown>;
  /** Runs `run` with the links that read the table's shards (consistent snapshots across nodes). */
  withReadLinks(run: (linkFor: (node: WorkerNode) => Promise<BackendLink>) => Promise<PgError | null>): Promise<PgError | null>;
  /** The client's socket. */
  client: Duplex;
  progress?: CopyCounters | null;
}

const COPY_DONE = encodeMessage((w) => w.begin(Backend.CopyDone).end());

function copyData(payload: Buffer): Buffer {
  return encodeMessage((w) => w.begin(Frontend.CopyData).bytes(payload).end());
}

function commandComplete(tag: string): Buffer {
  return encodeMessage((w) => w.begin(Backend.CommandComplete).cstring(tag).end());
}

/** A DefElem's argument as COPY option syntax. */
function optionArg(d: Node): string {
  const a = d.arg;
  if (!a) return '';
  if (a.A_Star) return ' *';
  if (a.List) return ` (${((a.List.items ?? []) as Node[]).map((i) => quoteIdent(i.String?.sval ?? '')).join(', ')})`;
  if (a.String) return ` ${quoteLiteral(a.String.sval ?? '')}`;
  if (a.Integer) return ` ${a.Integer.ival ?? 0}`;
  if (a.Boolean) return a.Boolean.boolval ? ' true' : ' false';
  if (a.Float) return ` ${a.Float.fval}`;
  return '';
}

/** The shards' option list: the client's options, HEADER only for the first shard. */
export function copyToOptions(stmt: Node, withHeader: boolean): string {
  const parts: string[] = [];
  for (const o of (stmt.options ?? []) as Node[]) {
    const d = o.DefElem;
    if (!d) continue;
    if (d.defname === 'header' && !withHeader) continue;
    parts.push(`${quoteIdent(d.defname)}${optionArg(d)}`);
  }
  return parts.length > 0 ? ` WITH (${parts.join(', ')})` : '';
}

function isBinary(stmt: Node): boolean {
  for (const o of (stmt.options ?? []) as Node[]) {
    const d = o.DefElem;
    if (d?.defname === 'format') return (d.arg?.String?.sval ?? '').toLowerCase() === 'binary';
  }
  return false;
}

/** Streams the table's shards to the client. Returns the error, or null once CopyDone and CommandComplete are written. */
export async function streamCopyTo(table: DistributedTable, stmt: Node, statement: string, access: CopyOutAccess): Promise<PgError | null> {
  try {
    await access.runAsClient(statement);
  } catch (err) {
    return toPgError(err);
  }
  const binary = isBinary(stmt);
  const cols = ((stmt.attlist ?? []) as Node[]).map((c) => quoteIdent(c.String?.sval ?? ''));
  const colSql = cols.length > 0 ? ` (${cols.join(', ')})` : '';
  const shards = table.method === 'reference' ? table.shards.slice(0, 1) : table.shards;
  const client = access.client;
  const progress = access.progress ?? null;
  let started = false;
  let count = 0;
  const err = await access.withReadLinks(async (linkFor) => {
    for (const [index, shard] of shards.entries()) {
      const link = await linkFor(shard.placements[0].node);
      const sql = `COPY ${quoteQualified(table.schema, shard.shardName)}${colSql} TO STDOUT${copyToOptions(stmt, index === 0)}`;
      const r = await copyShard(link, sql, client, binary, (message) => {
        if (!started) {
          started = true;
          client.write(message);
          if (binary) client.write(copyData(BINARY_HEADER));
        }
      }, progress ? (bytes) => {
        progress.routed++;
        progress.bytes += bytes;
        progress.shardRows[index]++;
      } : null);
      if (r.error) return clientError(r.error, [table], null, null);
      count += r.count;
    }
    return null;
  });
  if (err) return err;
  if (!started) return new PgError({ code: 'XX000', message: 'no shard answered the COPY' });
  if (binary) client.write(copyData(BINARY_TRAILER));
  client.write(Buffer.concat([COPY_DONE, commandComplete(`COPY ${count}`)]));
  return null;
}

/**
 * One shard's COPY TO STDOUT: CopyData forwarded (binary: the shard's header
 * and trailer cut out), the worker's socket paused while the client's is full.
 */
function copyShard(
  link: BackendLink,
  sql: string,
  client: Duplex,
  binary: boolean,
  onResponse: (message: Buffer) => void,
  onRow: ((bytes: number) => void) | null,
): Promise<{ error: PgError | null; count: number }> {
  return new Promise((resolve) => {
    let error: PgError | null = null;
    let count = 0;
    let headerLeft = binary ? BINARY_HEADER.length : 0;
    let waiting = false;
    const resume = () => {
      waiting = false;
      link.conn.socket.resume();
    };
    // One CopyData per row: corked until the end of the tick, they leave in one write, not one syscall each.
    let corked = false;
    const uncork = () => {
      corked = false;
      client.uncork();
    };
    link.collector = (type, buf, start, end) => {
      if (type === Backend.CopyData) {
        if (!corked) {
          corked = true;
          client.cork();
          process.nextTick(uncork);
        }
        let s = start + 5;
        if (headerLeft > 0) {
          const cut = Math.min(headerLeft, end - s);
          headerLeft -= cut;
          s += cut;
        }
        if (binary && end - s === 2 && buf[s] === 0xff && buf[s + 1] === 0xff) return;
        if (s === end) return;
        onRow?.(end - s);
        const ok = s === start + 5 ? client.write(buf.subarray(start, end)) : client.write(copyData(buf.subarray(s, end)));
        if (!ok && !waiting) {
          waiting = true;
          link.conn.socket.pause();
          client.once('drain', resume);
        }
      } else if (type === Backend.CopyOutResponse) onResponse(Buffer.from(buf.subarray(start, end)));
      else if (type === Backend.CommandComplete) count = tagCount(buf.toString('utf8', start + 5, end - 1));
      else if (type === Backend.ErrorResponse) error ??= readErrorResponse(buf, start, end);
    };
    link.send(encodeQuery(sql), [{
      completes: Completes.Ready,
      forward: false,
      done: (err) => {
        link.collector = null;
        if (waiting) {
          client.removeListener('drain', resume);
          link.conn.socket.resume();
        }
        resolve({ error: error ?? err ?? null, count });
      },
    }]);
  });
}
