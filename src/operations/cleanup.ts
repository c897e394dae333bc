/**
 * What an operation created, and its removal (Citus's pg_dist_cleanup).
 *
 * An operation (a shard move, a split) starts by taking an operation id and a
 * session advisory lock on it (OPERATION_LOCK_KEY, id) on a dedicated
 * coordinator connection: the lock is held exactly while the operation's
 * process is alive. Before it creates anything on a node it records it in
 * `pgweave.cleanup` in its own committed statement, so a crash at any point
 * leaves a complete list. Policies:
 *
 *   ALWAYS      replication objects: removed when the operation ends, either way
 *   ON_FAILURE  the new shard tables: removed unless the catalog switch commits
 *               (that transaction deletes these records atomically)
 *   DEFERRED    the old shard tables: inserted by the catalog switch, removed
 *               DEFERRED_DROP_DELAY_MS later by automatic cleanup (readers
 *               with a stale catalog may still be reading them)
 *
 * `cleanupOrphanedResources` removes every recorded object of operations
 * whose lock is free (finished or dead): subscriptions first (so their slots
 * become inactive), then slots, publications, and shard tables. A shard table
 * is dropped only if the catalog has no placement of it on that node, so a
 * record can never remove a table that serves.
 */
import { PgError } from '../protocol/errors.js';
import type { InternalClient } from '../pool/internal-client.js';
import { quoteIdent } from '../sql/quote.js';
import { coordinatorPool, dedicatedConnection, type OperationContext } from './context.js';
import { ensureOperationsSchema, OPERATION_LOCK_KEY } from './operations-schema.js';

export const enum CleanupObject {
  ShardTable = 1,
  Subscription = 2,
  ReplicationSlot = 3,
  Publication = 4,
}

export const enum CleanupPolicy {
  Always = 0,
  OnFailure = 1,
  Deferred = 2,
}

export interface CleanupRecord {
  recordId: number;
  operationId: number;
  objectType: CleanupObject;
  objectName: string;
  groupId: number;
  policy: CleanupPolicy;
  shardId: number | null;
}

/** A running operation: its id, its liveness lock, and what it records. */
export class Operation {
  private constructor(
    readonly id: number,
    private readonly ctx: OperationContext,
    /** Holds the liveness lock; other work of the operation may use it too. */
    readonly connection: InternalClient,
  ) {}

  static async start(ctx: OperationContext): Promise<Operation> {
    await ensureOperationsSchema(coordinatorPool(ctx));
    const conn = await dedicatedConnection(ctx, ctx.config.coordinator);
    try {
      const r = await conn.query(`SELECT nextval('pgweave.operation_id_seq')`);
      const id = Number(r.rows[0]![0]);
      await conn.query(`SELECT pg_catalog.pg_advisory_lock(${OPERATION_LOCK_KEY}, $1::int)`, [String(id)]);
      return new Operation(id, ctx, conn);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** Records an object before creating it (committed on its own). */
  async record(type: CleanupObject, name: string, groupId: number, policy: CleanupPolicy, shardId: number | null = null): Promise<void> {
    await this.connection.query(
      `INSERT INTO pgweave.cleanup (operation_id, object_type, object_name, node_group_id, policy_type, shard_id) VALUES ($1, $2, $3, $4, $5, $6)`,
      [String(this.id), String(type), name, String(groupId), String(policy), shardId === null ? null : String(shardId)],
    );
  }

  /**
   * Ends the operation: removes what must not outlive it (ALWAYS; ON_FAILURE
   * too unless it succeeded), then releases the lock. Removal failures leave
   * the records for the cleanup job.
   */
  async finish(succeeded: boolean): Promise<void> {
    try {
      const policies = succeeded ? [CleanupPolicy.Always] : [CleanupPolicy.Always, CleanupPolicy.OnFailure];
      const records = await readRecords(this.connection, this.id, policies);
      await removeRecords(this.ctx, this.connection, records).catch(() => {});
    } finally {
      this.connection.close();
    }
  }
}

async function readRecords(client: InternalClient, operationId: number | null, policies?: CleanupPolicy[], deferred: DeferredDrops = {}): Promise<CleanupRecord[]> {
  const r = await client.query(
    `SELECT record_id, operation_id, object_type, object_name, node_group_id, policy_type, shard_id FROM pgweave.cleanup
     WHERE ($1::bigint IS NULL OR operation_id = $1) AND ($2::int[] IS NULL OR policy_type = ANY($2::int[]))
       AND (policy_type <> ${CleanupPolicy.Deferred} OR created_at <= pg_catalog.now() - $3::int * interval '1 millisecond'
            OR (node_group_id = $4::int AND shard_id = ANY($5::bigint[])))
     ORDER BY array_position(ARRAY[2, 3, 4, 1], object_type), record_id`,
    [
      operationId === null ? null : String(operationId),
      policies ? '{' + policies.join(',') + '}' : null,
      String(deferred.afterMs ?? 0),
      deferred.needed ? String(deferred.needed.groupId) : null,
      '{' + (deferred.needed?.shardIds ?? []).join(',') + '}',
    ],
  );
  return r.rows.map((row) => ({
    recordId: Number(row[0]),
    operationId: Number(row[1]),
    objectType: Number(row[2]) as CleanupObject,
    objectName: row[3]!,
    groupId: Number(row[4]),
    policy: Number(row[5]) as CleanupPolicy,
    shardId: row[6] === null ? null : Number(row[6]),
  }));
}

/** Removes recorded objects in order; each removed (or already gone) object's record is deleted. Throws the first failure at the end. */
async function removeRecords(ctx: OperationContext, coordinator: InternalClient, records: CleanupRecord[]): Promise<number> {
  let firstError: unknown = null;
  let removed = 0;
  for (const rec of records) {
    try {
      const node = await coordinator.query(`SELECT nodename, nodeport FROM pgweave.node WHERE groupid = $1 AND noderole = 'primary'`, [String(rec.groupId)]);
      const row = node.rows[0];
      if (row) {
        const pool = ctx.pools.get(row[0]!, Number(row[1]), ctx.database);
        await removeObject(pool, coordinator, rec);
      }
      await coordinator.query('DELETE FROM pgweave.cleanup WHERE record_id = $1', [String(rec.recordId)]);
      removed++;
    } catch (err) {
      firstError ??= err;
    }
  }
  if (firstError) throw firstError;
  return removed;
}

async function removeObject(node: { query: InternalClient['query']; withClient<T>(fn: (c: InternalClient) => Promise<T>): Promise<T> }, coordinator: InternalClient, rec: CleanupRecord): Promise<void> {
  switch (rec.objectType) {
    case CleanupObject.Subscription:
      return dropSubscription(node, rec.objectName);
    case CleanupObject.ReplicationSlot:
      return dropSlots(node, rec.objectName);
    case CleanupObject.Publication:
      await node.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(rec.objectName)}`);
      return;
    case CleanupObject.ShardTable: {
      // Never drop a table the catalog says serves on that node.
      if (rec.shardId !== null) {
        const serving = await coordinator.query('SELECT 1 FROM pgweave.placement WHERE shardid = $1 AND groupid = $2', [String(rec.shardId), String(rec.groupId)]);
        if (serving.rows.length > 0) return;
      }
      await node.withClient(async (c) => {
        await c.query("SET lock_timeout = '5s'");
        try {
          await c.query(`DROP TABLE IF EXISTS ${rec.objectName} CASCADE`);
        } finally {
          await c.query('RESET lock_timeout').catch(() => {});
        }
      });
      return;
    }
    default:
      throw new PgError({ code: 'XX000', message: `unknown cleanup object type ${rec.objectType as number}` });
  }
}

/**
 * Drops a subscription. Connected to its publisher, DROP SUBSCRIPTION also
 * drops the slots (the main one and the table-sync ones); when the publisher
 * is unreachable the subscription is detached from its slot first, and the
 * slot records remove the slots later.
 */
export async function dropSubscription(node: { query: InternalClient['query'] }, name: string): Promise<void> {
  const exists = await node.query('SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())', [name]);
  if (exists.rows.length === 0) return;
  const sub = quoteIdent(name);
  await node.query(`ALTER SUBSCRIPTION ${sub} DISABLE`);
  try {
    await node.query(`DROP SUBSCRIPTION ${sub}`);
  } catch {
    await node.query(`ALTER SUBSCRIPTION ${sub} SET (slot_name = NONE)`);
    await node.query(`DROP SUBSCRIPTION ${sub}`);
  }
}

/** Drops replication slots named `pattern` (a LIKE pattern), ending the walsender still holding one. */
export async function dropSlots(node: { query: InternalClient['query'] }, pattern: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const slots = await node.query('SELECT slot_name, active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name LIKE $1', [pattern]);
    if (slots.rows.length === 0) return;
    try {
      for (const [slot, pid] of slots.rows) {
        if (pid !== null) await node.query('SELECT pg_catalog.pg_terminate_backend($1::int)', [pid]);
        await node.query('SELECT pg_catalog.pg_drop_replication_slot($1)', [slot]);
      }
      return;
    } catch (err) {
      // 55006: the slot is still active (its walsender is exiting); 42704: already gone.
      if (!(err instanceof PgError) || (err.code !== '55006' && err.code !== '42704') || attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A LIKE pattern matching the table-sync slots of a subscription (PostgreSQL names them pg_<suboid>_sync_<relid>_<sysid>). */
export function tableSyncSlotPattern(subscriptionOid: number): string {
  return `pg\\_${subscriptionOid}\\_sync\\_%`;
}

/**
 * How long the old shards of a completed move or split stay before automatic
 * cleanup drops them (Citus's citus.defer_shard_delete_interval): a statement
 * planned just before the switch, or by a coordinator whose catalog has not
 * caught up yet, still reads them; dropped, it would fail. Writes there fail
 * anyway (the shard-moved trigger). citus_cleanup_orphaned_resources() drops
 * them at once, as in Citus.
 */
export const DEFERRED_DROP_DELAY_MS = 15_000;

/** Which old shards (DEFERRED records) a cleanup drops: all by default. */
export interface DeferredDrops {
  /** Only those switched at least this long ago… */
  afterMs?: number;
  /** …and, at once, these shards' old tables on this node (a move back there needs their names). */
  needed?: { groupId: number; shardIds: number[] };
}

/**
 * Removes every recorded object of operations that are no longer running
 * (their liveness lock is free); old shards as `deferred` says. Returns how
 * many objects were removed.
 */
export async function cleanupOrphanedResources(ctx: OperationContext, deferred: DeferredDrops = {}): Promise<number> {
  const pool = coordinatorPool(ctx);
  await ensureOperationsSchema(pool);
  const conn = await dedicatedConnection(ctx, ctx.config.coordinator);
  let removed = 0;
  let firstError: unknown = null;
  try {
    // One cleaner at a time: a caller waits for a round in progress (the job's) instead of skipping its operations.
    await conn.query(`SELECT pg_catalog.pg_advisory_lock(${OPERATION_LOCK_KEY}, -1)`);
    const ops = await conn.query('SELECT DISTINCT operation_id FROM pgweave.cleanup ORDER BY 1');
    for (const [opText] of ops.rows) {
      const got = await conn.query(`SELECT pg_catalog.pg_try_advisory_lock(${OPERATION_LOCK_KEY}, $1::int)`, [opText]);
      if (got.rows[0]?.[0] !== 't') continue;
      try {
        removed += await removeRecords(ctx, conn, await readRecords(conn, Number(opText), undefined, deferred));
      } catch (err) {
        firstError ??= err;
      } finally {
        await conn.query(`SELECT pg_catalog.pg_advisory_unlock(${OPERATION_LOCK_KEY}, $1::int)`, [opText]);
      }
    }
  } finally {
    conn.close();
  }
  if (firstError) throw firstError;
  return removed;
}

/** The cleanup job's round in one database: nothing happens where no operation ever ran. */
export async function cleanupDatabase(ctx: OperationContext): Promise<number> {
  const present = await coordinatorPool(ctx).query(`SELECT pg_catalog.to_regclass('pgweave.cleanup') IS NOT NULL`);
  if (present.rows[0]?.[0] !== 't') return 0;
  return cleanupOrphanedResources(ctx, { afterMs: DEFERRED_DROP_DELAY_MS });
}
