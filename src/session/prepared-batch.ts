/**
 * Owns the statements the session runs on every transaction block as
 * named prepared statements instead of simple-protocol text: the worker's
 * block opening (BEGIN, then the deadlock detector's tag with the tag as a
 * parameter) and the coordinator's BEGIN with the SELECT of the block's
 * characteristics and time. As text, PostgreSQL parsed, analyzed and
 * planned them again in every block (pgbench -N: one BEGIN on the
 * coordinator and one on a worker per transaction); prepared, each block
 * only binds and executes them.
 *
 * Names come from worker-statements.ts (one per text and parameter types,
 * for the whole process), so a pooled connection's statements serve every
 * later session; a connection's `prepared` set says which it holds (a new
 * connection — a reconnect — holds none and gets the Parses again). A
 * batch is one write ending in one Sync: after an error PostgreSQL skips
 * to the Sync, so a Parse that failed or was skipped is forgotten
 * (`prepared` stays truthful).
 */
import { Completes, type BackendLink, type Expectation } from '../executor/backend-link.js';
import { Backend, Frontend } from '../protocol/constants.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import type { PgError } from '../protocol/errors.js';
import { encodeMessage } from '../protocol/writer.js';
import { encodeExecute, encodeParse, encodeSync } from './extended-encoders.js';
import { workerStatementName } from './worker-statements.js';
import { closeBeforeParse } from './lazy-prepare.js';

/** The batch's statements read no user table (their result type never changes): one catalog version for all. */
const INTERNAL_VERSION = 0;

/** One statement of a batch: its text, and text values for its parameters (typed by `paramTypes`). */
export interface BatchStatement {
  sql: string;
  paramTypes?: readonly number[];
  params?: readonly string[];
}

/** What a batch answered: the DataRows (collected batches only) and the first error. */
export interface BatchResult {
  rows: Buffer[];
  error: PgError | null;
}

/** SQLSTATE of "prepared statement … does not exist" (a client's DEALLOCATE ALL on the coordinator removed it). */
export const STATEMENT_MISSING = '26000';

/** Bind of the unnamed portal to `statement` with text parameters and text results. */
function encodeBindText(statement: string, params: readonly string[]): Buffer {
  return encodeMessage((w) => {
    w.begin(Frontend.Bind).cstring('').cstring(statement).int16(0).int16(params.length);
    for (const v of params) {
      const b = Buffer.from(v, 'utf8');
      w.int32(b.length).bytes(b);
    }
    w.int16(0).end();
  });
}

/**
 * Runs `statements` on `link` in one write behind one Sync, preparing
 * those the connection lacks. `collect`: the DataRows and errors go to
 * the link's collector (nothing else may be pending on the link);
 * otherwise the replies are swallowed without touching a collector that
 * waits behind them (a worker's opening, sent ahead of a collected task).
 * Resolves at the batch's ReadyForQuery.
 */
export function runPreparedBatch(link: BackendLink, statements: readonly BatchStatement[], collect: boolean): Promise<BatchResult> {
  return new Promise((resolve) => {
    const result: BatchResult = { rows: [], error: null };
    const parts: Buffer[] = [];
    const expect: Expectation[] = [];
    const noteError = (err: PgError | null): void => {
      result.error ??= err;
    };
    for (const s of statements) {
      const types = s.paramTypes ?? [];
      const name = workerStatementName(s.sql, types, INTERNAL_VERSION);
      if (!link.prepared.has(name)) {
        const close = closeBeforeParse(link, name);
        if (close) {
          parts.push(close);
          expect.push({ completes: Completes.CloseComplete, forward: false, collect });
        }
        link.prepared.add(name);
        parts.push(encodeParse(name, s.sql, types));
        // Failed, or skipped after an earlier error: the connection does not hold it.
        expect.push({ completes: Completes.ParseComplete, forward: false, collect, done: (err) => err && link.prepared.delete(name) });
      }
      parts.push(encodeBindText(name, s.params ?? []), encodeExecute('', 0));
      expect.push({ completes: Completes.BindComplete, forward: false, collect, done: noteError });
      expect.push({ completes: Completes.Execute, forward: false, collect, done: noteError });
    }
    parts.push(encodeSync());
    if (collect) {
      link.collector = (type, buf, start, end) => {
        if (type === Backend.DataRow) result.rows.push(buf.subarray(start, end));
        else if (type === Backend.ErrorResponse) result.error ??= readErrorResponse(buf, start, end);
      };
    }
    expect.push({
      completes: Completes.Ready,
      forward: false,
      collect,
      done: (err) => {
        if (collect) link.collector = null;
        noteError(err);
        resolve(result);
      },
    });
    link.send(Buffer.concat(parts), expect);
  });
}

/** Forgets `statements` on `link` (their names were deallocated behind the session's back). */
export function forgetPrepared(link: BackendLink, statements: readonly BatchStatement[]): void {
  for (const s of statements) link.prepared.delete(workerStatementName(s.sql, s.paramTypes ?? [], INTERNAL_VERSION));
}
