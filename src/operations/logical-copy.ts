/**
 * Copying shard tables from one node to another with PostgreSQL's logical
 * replication, and the waits a move needs:
 *
 *   publication on the source (FOR TABLE the shards)
 *   → subscription on the target, creating its slot (copy_data: PostgreSQL
 *     copies each table under the slot's snapshot, then streams changes)
 *   → waitForInitialCopy: every table's pg_subscription_rel state is 'r'
 *   → waitForCatchUp(lsn): the target has applied the source's WAL up to lsn
 *
 * The subscription connects to the source as the internal role (a superuser
 * on every node, allowed by the nodes' pg_hba for replication). Its
 * connection string holds the internal password, so the statement creating
 * it is kept out of the node's log and no error text repeats it.
 */
import { PgError } from '../protocol/errors.js';
import type { InternalClient } from '../pool/internal-client.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { NodeAddress } from '../metadata/types.js';
import type { OperationConfig } from './context.js';

type Queryable = { query: InternalClient['query'] };

const POLL_MS = 50;

export function conninfoValue(v: string): string {
  return "'" + v.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** libpq connection string from the target to the source. */
export function sourceConninfo(config: OperationConfig, source: NodeAddress, database: string): string {
  return [
    `host=${conninfoValue(source.host)}`,
    `port=${source.port}`,
    `dbname=${conninfoValue(database)}`,
    `user=${conninfoValue(config.internal.user)}`,
    `password=${conninfoValue(config.internal.password)}`,
    `application_name=${conninfoValue('pgweave_move')}`,
  ].join(' ');
}

export async function createPublication(source: Queryable, name: string, tables: string[]): Promise<void> {
  await source.query(`BEGIN; SET LOCAL lock_timeout = '30s'; CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.join(', ')}; COMMIT`);
}

/**
 * Creates the subscription (and its slot on the source), enabled: the
 * initial copy starts at once. Returns the subscription's oid. Runs on a
 * connection of its own (CREATE SUBSCRIPTION cannot run in a transaction
 * block).
 */
export async function createSubscription(target: InternalClient, name: string, slot: string, publication: string, conninfo: string): Promise<number> {
  await target.query("SET log_statement = 'none'; SET log_min_error_statement = 'panic'");
  try {
    await target.query(
      `CREATE SUBSCRIPTION ${quoteIdent(name)} CONNECTION ${quoteLiteral(conninfo)} PUBLICATION ${quoteIdent(publication)}
       WITH (slot_name = ${quoteIdent(slot)}, create_slot = true, copy_data = true, enabled = true)`,
    );
  } catch (err) {
    throw scrub(err, conninfo);
  } finally {
    await target.query('RESET log_statement; RESET log_min_error_statement').catch(() => {});
  }
  const r = await target.query('SELECT oid FROM pg_catalog.pg_subscription WHERE subname = $1', [name]);
  return Number(r.rows[0]![0]);
}

/** An error that might quote the connection string, with the password removed. */
function scrub(err: unknown, conninfo: string): unknown {
  if (!(err instanceof PgError)) return err;
  const password = /password='((?:[^'\\]|\\.)*)'/.exec(conninfo)?.[1] ?? '';
  if (!password || !JSON.stringify(err.fields).includes(password)) return err;
  return new PgError({ code: err.code, message: err.message.split(password).join('***') });
}

/** Errors the subscription's workers hit so far (PostgreSQL ≥ 15 counts them). */
async function subscriptionErrors(target: Queryable, name: string): Promise<number> {
  const r = await target.query('SELECT apply_error_count + sync_error_count FROM pg_catalog.pg_stat_subscription_stats WHERE subname = $1', [name]);
  return Number(r.rows[0]?.[0] ?? 0);
}

export interface WaitOptions {
  /** Gives up after this long (the move fails and cleans up). */
  timeoutMs: number;
  /** Checked between polls: throws to stop waiting (citus_rebalance_stop, the session cancelled). */
  checkCancelled?: () => void;
}

async function poll(what: string, opts: WaitOptions, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await done()) return;
    opts.checkCancelled?.();
    if (Date.now() > deadline) throw new PgError({ code: '57014', message: `timed out waiting for ${what}` });
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Waits until every table of the subscription finished its initial copy (state 'r'). */
export async function waitForInitialCopy(target: Queryable, name: string, tableCount: number, opts: WaitOptions): Promise<void> {
  const errorsBefore = await subscriptionErrors(target, name);
  await poll('the initial copy of the shards', opts, async () => {
    const r = await target.query(
      `SELECT count(*) FILTER (WHERE sr.srsubstate = 'r'), count(*) FROM pg_catalog.pg_subscription_rel sr
       JOIN pg_catalog.pg_subscription s ON s.oid = sr.srsubid WHERE s.subname = $1`,
      [name],
    );
    const [ready, total] = r.rows[0]!.map(Number) as [number, number];
    if (ready === tableCount && total === tableCount) return true;
    if ((await subscriptionErrors(target, name)) > errorsBefore) {
      throw new PgError({ code: '55000', message: `the initial copy of the shards failed on the target node (see its log); the move is rolled back` });
    }
    return false;
  });
}

/**
 * A WAL position on the source at or after the commit of every transaction
 * that committed before the call, made durable so the walsender sends it.
 *
 * pg_current_wal_lsn() is only the WAL *written* so far: under
 * synchronous_commit = off a committed transaction's commit record can still
 * sit in the WAL buffers, below it, and a logical walsender sends only WAL
 * already flushed. Waiting for that position would let a cutover switch the
 * placements before the last writes reached the target (they stayed on the
 * old shard, lost). So the position is the insert position, and a
 * synchronously committed transaction that wrote WAL (a transactional
 * logical message, which pgoutput does not forward) flushes everything up to
 * it at once instead of after wal_writer_delay. `source` must not be inside
 * a transaction block: the cutover's lock transaction runs on another
 * connection.
 */
export async function currentLsn(source: Queryable): Promise<string> {
  // One statement, so one transaction: set_config(…, true) holds until its commit.
  const r = await source.query(
    `SELECT pg_catalog.pg_current_wal_insert_lsn()::text, pg_catalog.set_config('synchronous_commit', 'on', true),
            pg_catalog.pg_logical_emit_message(true, 'pgweave_move', 'flush')`,
  );
  return r.rows[0]![0]!;
}

/**
 * Waits until the subscription has applied the source's WAL up to `lsn`: the
 * walsender's position reported to the target (latest_end_lsn, received
 * after everything before it was applied) or the slot's confirmed flush.
 */
export async function waitForCatchUp(source: Queryable, target: Queryable, subscription: string, slot: string, lsn: string, opts: WaitOptions): Promise<void> {
  await poll('the target node to catch up with the source', opts, async () => {
    const t = await target.query(
      'SELECT bool_or(latest_end_lsn >= $2::pg_lsn) FROM pg_catalog.pg_stat_subscription WHERE subname = $1 AND relid IS NULL',
      [subscription, lsn],
    );
    if (t.rows[0]?.[0] === 't') return true;
    const s = await source.query('SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = $1', [slot, lsn]);
    return s.rows[0]?.[0] === 't';
  });
}
