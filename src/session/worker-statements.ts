/**
 * Names of the prepared statements the session creates on worker (and
 * coordinator) connections for the statements it routes: one name per
 * statement text and parameter types, for the whole process.
 *
 * Why by text: worker connections move between sessions (the idle pool),
 * and every new client session prepares its statements again (pgbench
 * opens new connections per run). Named after the text, a statement a
 * connection already holds serves every later session that routes the same
 * text — no Parse per (session, connection) pair, which cost the worker a
 * parse and plan and the coordinator an extra message per statement. A name
 * means one text for ever (names are never reused), so a connection's
 * `prepared` set stays truthful whichever session holds it.
 *
 * On the coordinator link these names share PostgreSQL's namespace with
 * the client's forwarded statements: client names starting with
 * RESERVED_PREFIX are escaped (client-statement-names.ts), so a `pgws`
 * followed by a digit is always one of ours.
 */

/** The prefix of every name made here (`pgws` and a number). */
export const RESERVED_PREFIX = 'pgws';

/** Name per `text \0 parameter types`. */
const names = new Map<string, string>();
/** Beyond this many texts the map starts over (new names; old ones stay valid where prepared). */
const MAX_NAMES = 20_000;
let counter = 0;

/** The name of the prepared statement for `sql` with `paramTypes` on any connection of this process. */
export function workerStatementName(sql: string, paramTypes: readonly number[]): string {
  const key = paramTypes.length === 0 ? sql : `${sql}\u0000${paramTypes.join(',')}`;
  let name = names.get(key);
  if (name === undefined) {
    if (names.size >= MAX_NAMES) names.clear();
    name = `${RESERVED_PREFIX}${++counter}`;
    names.set(key, name);
  }
  return name;
}
