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
import { statementKey } from '../executor/pipelined-channel.js';

/** The prefix of every name made here (`pgws` and a number). */
export const RESERVED_PREFIX = 'pgws';

/**
 * Why per catalog version too: DDL changes a shard query's result type
 * (ALTER TABLE … ADD COLUMN) without changing its text, and PostgreSQL
 * refuses to run a statement prepared before that ("cached plan must not
 * change result type", 0A000), where an unnamed or simple statement would
 * simply be planned again. DDL through pgweave changes the catalog
 * version and so every plan; a plan of the new version gets a new name,
 * which no connection holds yet: it is prepared afresh (lazy-prepare.ts),
 * with the old names of its text closed first. The hot path — a Bind of a
 * statement the connection holds — finds its name by text as before and
 * compares one number. (DDL run directly on the workers is not seen:
 * DESIGN.md has every DDL go through the coordinator.)
 */
interface Named {
  readonly version: number;
  readonly name: string;
}

/** Names per `text \0 parameter types`, one per catalog version (versions are per process, shared by databases), newest last. */
const names = new Map<string, Named[]>();
/** Beyond this many texts the map starts over (new names; old ones stay valid where prepared). */
const MAX_NAMES = 20_000;
/** Names kept per text: several databases may route the same text at their own catalog versions. */
const MAX_VERSIONS = 8;
let counter = 0;

/** The name of the prepared statement for `sql` with `paramTypes`, planned at catalog `version`, on any connection of this process. */
export function workerStatementName(sql: string, paramTypes: readonly number[], version: number): string {
  const key = statementKey(sql, paramTypes);
  let list = names.get(key);
  if (list !== undefined) {
    for (let i = list.length - 1; i >= 0; i--) if (list[i].version === version) return list[i].name;
  } else {
    if (names.size >= MAX_NAMES) names.clear();
    names.set(key, (list = []));
  }
  const name = `${RESERVED_PREFIX}${++counter}`;
  list.push({ version, name });
  if (list.length > MAX_VERSIONS) list.shift();
  return name;
}

/**
 * The names of `sql` with `paramTypes` made for catalog versions before
 * `version`: on a connection of a database whose catalog is at `version`
 * they are statements prepared before a DDL, to be closed (a connection
 * serves one database, whose versions only grow).
 */
export function olderNames(sql: string, paramTypes: readonly number[], version: number): string[] {
  const list = names.get(statementKey(sql, paramTypes));
  return list === undefined ? [] : list.filter((n) => n.version < version).map((n) => n.name);
}
