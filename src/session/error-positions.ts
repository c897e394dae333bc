/**
 * An error's position ('P': a 1-based character index into the client's
 * query string, which psql turns into `LINE n:` and a caret) as the client
 * must see it. A node reports it in the text it ran, which is the client's
 * only where the session forwarded the client's own text (the coordinator's
 * local statements). Elsewhere the text is the client's with splices —
 * shard names, transaction-time values (sql/text-splice.ts, kept on the
 * plan's task) — and the position is mapped back; or it is text pgweave
 * made (a deparsed query, the session's own SQL), and the position is left
 * out, as PostgreSQL leaves it out of errors that have none, rather than
 * point at the wrong place. A statement of a multi-statement Query counts
 * from the start of the whole string, as in PostgreSQL (`OffsetOrigin`).
 * A Query or Parse whose statement names the session escaped
 * (client-statement-names.ts: `pgws…` → `"pgws_…"`) maps through that
 * splice too (`ThroughOrigin`).
 *
 * The internal position and query ('p', 'q') are the text of a query a
 * function ran inside (PL/pgSQL, SQL functions), the same on every node:
 * they stay. Runs only on errors that carry a position.
 */
import { PgError } from '../protocol/errors.js';
import type { PositionOrigin } from '../sql/text-splice.js';
import { Completes, type Expectation } from '../executor/backend-link.js';
import type { Route } from '../planner/route.js';
import { E_READY } from './session-parts.js';

/**
 * Where the text of an error's statement came from: a mapping to the
 * client's text, `undefined` for the client's own text, null for text
 * pgweave made.
 */
export type ErrorOrigin = PositionOrigin | null | undefined;

/** A statement that starts `offset` characters into the client's query string (its own text, or `inner`'s splice of it). */
export class OffsetOrigin implements PositionOrigin {
  constructor(
    readonly inner: PositionOrigin | null | undefined,
    readonly offset: number,
  ) {}

  clientPosition(position: number): number {
    return (this.inner ? this.inner.clientPosition(position) : position) + this.offset;
  }
}

/** A text whose positions `inner` maps into a text that `outer` maps into the client's. */
export class ThroughOrigin implements PositionOrigin {
  constructor(
    readonly inner: PositionOrigin,
    readonly outer: PositionOrigin,
  ) {}

  clientPosition(position: number): number {
    return this.outer.clientPosition(this.inner.clientPosition(position));
  }
}

/**
 * `origin` for a statement `offset` characters into the query string the
 * session read, which `escape` maps to the client's when the session's
 * escape of statement names (client-statement-names.ts) changed it; `origin`
 * itself in the common case (at the start, nothing escaped).
 */
export function inQueryString(origin: ErrorOrigin, offset: number, escape: PositionOrigin | null): ErrorOrigin {
  const o = offset === 0 || origin === null ? origin : new OffsetOrigin(origin, offset);
  if (escape === null || o === null) return o;
  return o === undefined ? escape : new ThroughOrigin(o, escape);
}

/** The error with its position in the client's text; null when it stays as it is. */
export function clientPositioned(err: PgError, origin: ErrorOrigin): PgError | null {
  const position = err.fields.position;
  if (position === undefined || origin === undefined) return null;
  const fields = { ...err.fields };
  if (origin === null) delete fields.position;
  else fields.position = String(origin.clientPosition(Number(position)));
  return new PgError(fields);
}

const READY_OF_MADE_TEXT: Expectation = { completes: Completes.Ready, forward: true, origin: null };
const readyByOrigin = new WeakMap<PositionOrigin, Expectation>();

/**
 * The expectation of a forwarded Query's ReadyForQuery whose text came from
 * `origin`: one per origin (kept as long as its plan), so a routed Query
 * allocates none.
 */
export function readyFor(origin: PositionOrigin | null | undefined): Expectation {
  if (origin === undefined) return E_READY;
  if (origin === null) return READY_OF_MADE_TEXT;
  let e = readyByOrigin.get(origin);
  if (!e) readyByOrigin.set(origin, (e = { completes: Completes.Ready, forward: true, origin }));
  return e;
}

/** The origin of a pull's final query: its splice while it is still that text (a pushdown's is deparsed). */
export function pulledOrigin(route: Extract<Route, { kind: 'pull' }>): PositionOrigin | null {
  return route.origin !== undefined && route.origin.sql === route.sql ? route.origin : null;
}
