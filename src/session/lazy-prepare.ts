/**
 * Worker-side prepared statements (`pgws<n>`, worker-statements.ts) that the session prepares
 * lazily on a link, ahead of the client's Bind or Describe. The client never
 * sent this Parse, yet it can fail where the coordinator's succeeded (a
 * function, type or operator missing on the worker, a privilege or
 * search_path difference): its ErrorResponse goes to the client — the
 * answer to the Bind or Describe it precedes, which PostgreSQL then skips
 * to Sync like everything after it — and the name is forgotten, so a later
 * Bind prepares it again instead of binding a statement that does not exist.
 * A pipelined channel's statements (`channelStatement`) are prepared the
 * same way, ahead of a routed Bind or an auto-prepared Query, and recorded
 * on the channel.
 */
import type { ErrorOrigin } from './error-positions.js';
import { Completes, type BackendLink, type Expectation } from '../executor/backend-link.js';
import type { ChannelTenant } from '../executor/pipelined-channel.js';
import type { PgError } from '../protocol/errors.js';
import { encodeClose, encodeFlush, encodeParse } from './extended-encoders.js';
import { olderNames } from './worker-statements.js';
import type { PlannedStatement } from './session-parts.js';

/** Lazy Parses not answered yet, per link: name → settles when answered. */
const unanswered = new WeakMap<BackendLink, Map<string, Promise<void>>>();

/**
 * Per link: names the session prepared there before a client's DEALLOCATE
 * ALL or DISCARD ALL was forwarded to it (client-statement-names.ts). Gone
 * if that statement ran, still there if it failed: the next Parse of such a
 * name closes it first (closing a missing statement is no error).
 */
const maybeHeld = new WeakMap<BackendLink, Set<string>>();

/** A client's DEALLOCATE ALL or DISCARD ALL goes to `link`: its statements of ours may be gone. */
export function forgetAllPrepared(link: BackendLink): void {
  if (link.prepared.size === 0) return;
  let names = maybeHeld.get(link);
  if (!names) maybeHeld.set(link, (names = new Set()));
  for (const n of link.prepared) names.add(n);
  link.prepared.clear();
}

/** The Close to send before a Parse of `name` on `link` (see maybeHeld), or null. */
export function closeBeforeParse(link: BackendLink, name: string): Buffer | null {
  return maybeHeld.get(link)?.delete(name) ? encodeClose('S', name) : null;
}

/**
 * Prepares `wname` (`sql` planned at catalog `version`) on `link` unless it
 * is there already (or on its way). The link's statements of the same text
 * prepared at older catalog versions are closed first: a DDL since may have
 * changed their result type (worker-statements.ts), and no plan of this
 * database names them any more.
 */
export function prepareLazily(link: BackendLink, wname: string, sql: string, paramTypes: readonly number[], version: number, origin?: ErrorOrigin): void {
  if (link.prepared.has(wname)) return;
  for (const old of olderNames(sql, paramTypes, version)) {
    if (!link.prepared.delete(old)) continue;
    maybeHeld.get(link)?.delete(old);
    link.send(encodeClose('S', old), [{ completes: Completes.CloseComplete, forward: false }]);
  }
  const close = closeBeforeParse(link, wname);
  if (close) link.send(close, [{ completes: Completes.CloseComplete, forward: false }]);
  link.prepared.add(wname);
  let settle!: () => void;
  const answered = new Promise<void>((resolve) => (settle = resolve));
  let names = unanswered.get(link);
  if (!names) unanswered.set(link, (names = new Map()));
  names.set(wname, answered);
  const done = (err: PgError | null): void => {
    if (err) link.prepared.delete(wname);
    if (names.get(wname) === answered) names.delete(wname);
    settle();
  };
  link.send(encodeParse(wname, sql, link.typeOids?.workerTypes(paramTypes) ?? paramTypes), [{ completes: Completes.ParseComplete, forward: false, forwardError: true, done, origin }]);
}

/**
 * Waits for the answer to a lazy Parse of `wname` sent for an earlier
 * request whose Sync is still unanswered (a client pipelining requests):
 * if it fails, that request gets the error, and this one must prepare the
 * statement again rather than bind it. A Flush makes the server send the
 * answer now. Nothing to wait for within one request: there a failed Parse
 * fails the rest of the request anyway.
 */
export function lazyParseAnswered(link: BackendLink, wname: string): Promise<void> | null {
  const answered = unanswered.get(link)?.get(wname);
  if (!answered || !link.syncPending) return null;
  link.send(encodeFlush(), []);
  return answered;
}

/** A pipelined channel's prepared statement for a routed task: its name, and the Parse to send first when the channel lacks it. */
export interface ChannelStatement {
  name: string;
  /** The Parse and its expectation (which records the outcome on the channel), or null: the channel holds it. */
  parse: { bytes: Buffer; expect: Expectation } | null;
}

/**
 * The channel's statement for `sql` with the statement's parameter types
 * (the workers' OIDs of user types) and catalog version. The Parse's error
 * goes to the client with `forwardError` (positions mapped through
 * `origin`); `refused` is also told the outcome.
 */
export function channelStatement(
  t: ChannelTenant,
  sql: string,
  stmt: PlannedStatement,
  reply: { forwardError: boolean; origin?: ErrorOrigin; refused?: (err: PgError | null) => void },
): ChannelStatement {
  const channel = t.channel;
  const { name, parse, key } = channel.statement(sql, stmt.paramTypes, stmt.plan.catalogVersion);
  if (!parse) return { name, parse: null };
  const refused = reply.refused;
  const expect: Expectation = {
    completes: Completes.ParseComplete,
    forward: false,
    forwardError: reply.forwardError,
    origin: reply.origin ?? null,
    done: (err) => {
      channel.statementParsed(key, name, err === null);
      refused?.(err);
    },
  };
  return { name, parse: { bytes: encodeParse(name, sql, t.typeOids?.workerTypes(stmt.paramTypes) ?? stmt.paramTypes), expect } };
}
