/**
 * Owns the one wire helper the transaction modules share: sending SQL whose
 * replies nobody reads (BEGIN of a joining link, snapshots, SETs, COMMIT of
 * a pull's snapshot transactions) and learning when it has been answered.
 */
import type { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { Completes, type BackendLink, type Expectation } from '../executor/backend-link.js';

/** Replies nobody reads — kept away from a collector waiting behind them. */
export const E_READY_UNREAD: Expectation = { completes: Completes.Ready, forward: false, collect: false };

/** Sends swallowed SQL on a link; resolves when its ReadyForQuery arrives (with the first error, if any). */
export function sendSwallowed(link: BackendLink, sql: string): Promise<PgError | null> {
  return new Promise((resolve) => link.send(encodeQuery(sql), [{ ...E_READY_UNREAD, done: (err) => resolve(err) }]));
}
