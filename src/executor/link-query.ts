/**
 * Runs a statement on a BackendLink in collect mode and decodes nothing but
 * the message boundaries: DataRows stay raw so they can be forwarded to the
 * client as they are (DESIGN.md decision 5). Used by the multi-shard
 * executor, by commands running SQL as the client, and by the distributed
 * transaction code.
 */
import { Backend } from '../protocol/constants.js';
import { PgError } from '../protocol/errors.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import type { PositionOrigin } from '../sql/text-splice.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { Completes, type BackendLink } from './backend-link.js';

export interface CollectedResult {
  /** Raw RowDescription message, if the statement returns rows. */
  rowDescription: Buffer | null;
  /** Raw DataRow messages. */
  rows: Buffer[];
  /** CommandComplete tag of the last statement. */
  tag: string;
  error: PgError | null;
  /** Where the text of the statement `error` is about came from (its position: session/error-positions.ts); absent: text the coordinator made. */
  errorOrigin?: PositionOrigin | null;
}

const EXPECT_READY_COLLECT = { completes: Completes.Ready, forward: false } as const;

/**
 * Sends `bytes` (ending in a Query or a Sync) and collects every reply up to
 * ReadyForQuery. The link must have nothing else pending.
 */
export function collectOnLink(link: BackendLink, bytes: Buffer): Promise<CollectedResult> {
  return new Promise((resolve) => {
    const result: CollectedResult = { rowDescription: null, rows: [], tag: '', error: null };
    link.collector = (type, buf, start, end) => {
      switch (type) {
        case Backend.RowDescription:
          result.rowDescription ??= buf.subarray(start, end);
          break;
        case Backend.DataRow:
          result.rows.push(buf.subarray(start, end));
          break;
        case Backend.CommandComplete:
          result.tag = buf.toString('utf8', start + 5, end - 1);
          break;
        case Backend.ErrorResponse:
          result.error ??= readErrorResponse(buf, start, end);
          break;
        default:
          break;
      }
    };
    link.send(bytes, [{
      ...EXPECT_READY_COLLECT,
      done: (err) => {
        link.collector = null;
        if (err && !result.error) result.error = err;
        resolve(result);
      },
    }]);
  });
}

/** Runs a simple-protocol statement on the link, collecting its result. */
export function queryOnLink(link: BackendLink, sql: string): Promise<CollectedResult> {
  return collectOnLink(link, encodeQuery(sql));
}

/** Decodes the text values of a raw DataRow. */
export function decodeDataRow(row: Buffer): Array<string | null> {
  let pos = 5;
  const n = row.readInt16BE(pos);
  pos += 2;
  const out: Array<string | null> = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = row.readInt32BE(pos);
    pos += 4;
    if (len < 0) out[i] = null;
    else {
      out[i] = row.toString('utf8', pos, pos + len);
      pos += len;
    }
  }
  return out;
}

/** The row count in a CommandComplete tag ("UPDATE 3" → 3, "INSERT 0 2" → 2). */
export function tagCount(tag: string): number {
  const sp = tag.lastIndexOf(' ');
  const n = sp < 0 ? NaN : Number(tag.slice(sp + 1));
  return Number.isFinite(n) ? n : 0;
}

/**
 * Runs `COPY (...) TO STDOUT` on a link and hands each CopyData message, raw,
 * to `sink` (which may forward it unchanged: CopyData has the same layout in
 * both directions). Resolves with the COPY's outcome.
 */
export function streamCopyOut(link: BackendLink, sql: string, sink: (message: Buffer) => void): Promise<CollectedResult> {
  return new Promise((resolve) => {
    const result: CollectedResult = { rowDescription: null, rows: [], tag: '', error: null };
    link.collector = (type, buf, start, end) => {
      if (type === Backend.CopyData) sink(buf.subarray(start, end));
      else if (type === Backend.CommandComplete) result.tag = buf.toString('utf8', start + 5, end - 1);
      else if (type === Backend.ErrorResponse) result.error ??= readErrorResponse(buf, start, end);
    };
    link.send(encodeQuery(sql), [{
      ...EXPECT_READY_COLLECT,
      done: (err) => {
        link.collector = null;
        if (err && !result.error) result.error = err;
        resolve(result);
      },
    }]);
  });
}

/** Column names of a raw RowDescription. */
export function decodeFieldNames(rowDescription: Buffer | null): string[] {
  if (!rowDescription) return [];
  let pos = 5;
  const n = rowDescription.readInt16BE(pos);
  pos += 2;
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const zero = rowDescription.indexOf(0, pos);
    names.push(rowDescription.toString('utf8', pos, zero));
    pos = zero + 1 + 18;
  }
  return names;
}

/**
 * RETURNING rows whose last column is each row's position in the order
 * PostgreSQL would return them (a multi-row INSERT's VALUES list, route
 * `ordinal`; an INSERT … SELECT's staging rows, commands/copy/
 * insert-select.ts): that column is stripped from the rows and the
 * RowDescription, and the rows sorted by it.
 */
export function byOrdinal(result: CollectedResult): void {
  if (result.rowDescription) result.rowDescription = withoutLastField(result.rowDescription, 'T').message;
  const keyed = result.rows.map((row) => {
    const { message, last } = withoutLastField(row, 'D');
    return { message, at: Number(last) };
  });
  keyed.sort((a, b) => a.at - b.at);
  result.rows = keyed.map((k) => k.message);
}

/**
 * A RowDescription ('T') or DataRow ('D') message without its last field,
 * and that field's text (a DataRow's value; null for NULL or a RowDescription).
 */
function withoutLastField(message: Buffer, kind: 'T' | 'D'): { message: Buffer; last: string | null } {
  const count = message.readInt16BE(5);
  let pos = 7;
  let lastStart = pos;
  let last: string | null = null;
  for (let i = 0; i < count; i++) {
    lastStart = pos;
    if (kind === 'T') {
      pos = message.indexOf(0, pos) + 1 + 18;
    } else {
      const len = message.readInt32BE(pos);
      pos += 4;
      last = len < 0 ? null : message.toString('utf8', pos, pos + len);
      pos += Math.max(len, 0);
    }
  }
  const out = Buffer.from(message.subarray(0, lastStart));
  out.writeInt32BE(lastStart - 1, 1);
  out.writeInt16BE(count - 1, 5);
  return { message: out, last };
}
