/**
 * Moving a shard group (a shard and every shard co-located with it) from one
 * node to another while the application keeps writing. Steps:
 *
 *   validate → operation id + liveness lock + shard-group lock
 *   → 'tables'      target shard tables (structure, constraints: the replica identity)
 *   → 'publication' publication on the source
 *   → 'subscription' subscription on the target, creating the slot; PostgreSQL
 *                   copies each table under the slot's snapshot
 *   → 'copied'      initial copy done (pg_subscription_rel all 'r')
 *   → 'indexes'     indexes and foreign keys built on the target
 *   → 'caught-up'   the target applied the source's WAL up to now
 *   → 'blocked'     writes to these shards blocked: the coordinator's write
 *                   barrier (this process) + LOCK … IN EXCLUSIVE MODE on the
 *                   source shards (other coordinators); reads go on
 *   → 'switched'    target applied the source's last WAL; placements switched
 *                   in one catalog transaction (cache invalidated); the old
 *                   shards reject writes (a statement planned with the old
 *                   catalog gets 40001, never a lost write); writes unblocked
 *   → done          subscription, slots, publication dropped; old shards left
 *                   for deferred cleanup
 *
 * 'block_writes' mode blocks writes before the subscription (so before the copy) instead (tables without a
 * replica identity cannot replicate UPDATE/DELETE). Every object is recorded
 * in the cleanup table before it is created (cleanup.ts): a failure at any
 * step before the switch leaves the old placement serving and removes what
 * was created; a dead process leaves it to the cleanup job.
 */
import { PgError } from '../protocol/errors.js';
import type { InternalClient } from '../pool/internal-client.js';
import type { NodeRow } from '../metadata/catalog-writes.js';
import { CleanupObject, CleanupPolicy, cleanupOrphanedResources, DEFERRED_DROP_DELAY_MS, Operation, tableSyncSlotPattern } from './cleanup.js';
import { coordinatorPool, dedicatedConnection, type OperationContext, type ShardDefinitions } from './context.js';
import { createPublication, createSubscription, currentLsn, sourceConninfo, waitForCatchUp, waitForInitialCopy, type WaitOptions } from './logical-copy.js';
import { SHARD_GROUP_LOCK_KEY } from './operations-schema.js';
import { switchCatalog } from './catalog-switch.js';
import { placementGroups, readShardGroup, type ShardGroup } from './shard-group.js';
import { writeBarrier } from './write-barrier.js';

export type TransferMode = 'auto' | 'force_logical' | 'block_writes';
export type MoveStep = 'start' | 'tables' | 'publication' | 'subscription' | 'copied' | 'indexes' | 'caught-up' | 'blocked' | 'switched';

export interface MoveRequest {
  shardId: number;
  source: NodeRow;
  target: NodeRow;
  mode: TransferMode;
}

export interface MoveHooks {
  /** Called after each step (progress reporting). */
  onStep?(step: MoveStep): void;
  /** Throws to stop the move (citus_rebalance_stop): it rolls back like a failure. */
  checkCancelled?(): void;
}

/**
 * Fault points for the interruption tests: `atStep` runs after each step;
 * throwing `AbandonMove` makes the move stop as if its process died (no
 * cleanup, connections closed), any other error as a failure.
 */
export const moveFaults: { atStep: ((step: MoveStep) => void | Promise<void>) | null } = { atStep: null };
export class AbandonMove extends Error {}

/** How long the cutover waits for in-flight writes and the source's table locks. */
const CUTOVER_LOCK_TIMEOUT_MS = 10_000;
const COPY_TIMEOUT_MS = 6 * 3600_000;

export interface MoveResult {
  operationId: number;
  shardIds: number[];
  /** How long writes to the shard group were blocked (ms). */
  blockedMs: number;
}

export async function moveShardGroup(ctx: OperationContext, ddlFor: ShardDefinitions, req: MoveRequest, hooks: MoveHooks = {}): Promise<MoveResult> {
  const coordinator = coordinatorPool(ctx);
  const group = await readShardGroup(coordinator, req.shardId);
  await validateMove(coordinator, group, req);
  const shardIds = group.shards.map((s) => s.shardId);
  const names = group.shards.map((s) => s.qualifiedName);
  // Leftovers of earlier operations go first: interrupted ones, old shards past their
  // delay, and this group's old tables on the target (a move back needs their names).
  await cleanupOrphanedResources(ctx, { afterMs: DEFERRED_DROP_DELAY_MS, needed: { groupId: req.target.groupId, shardIds } }).catch(() => {});

  const sourcePool = ctx.pools.get(req.source.host, req.source.port, ctx.database);
  const targetPool = ctx.pools.get(req.target.host, req.target.port, ctx.database);
  const blockAll = req.mode === 'block_writes';
  if (req.mode === 'auto') await requireReplicaIdentity(sourcePool, group);
  // Concurrent creations may collide ("tuple concurrently updated"): one of them suffices.
  await sourcePool.query(SHARD_MOVED_FUNCTION_SQL).catch(() => {});

  const op = await Operation.start(ctx);
  const lockKey = `${SHARD_GROUP_LOCK_KEY}, ${Math.min(...shardIds) % 2147483647}`;
  const got = await op.connection.query(`SELECT pg_catalog.pg_try_advisory_lock(${lockKey})`).catch((e) => {
    op.connection.close();
    throw e;
  });
  if (got.rows[0]?.[0] !== 't') {
    await op.finish(false);
    throw new PgError({ code: '55P03', message: `could not acquire the lock required to move shard ${req.shardId}`, detail: 'Another operation is moving or splitting this shard group.' });
  }


  let target: InternalClient | null = null;
  let cutover: Cutover | null = null;
  let switched = false;
  let abandoned = false;
  let blockedAt = 0;
  let blockedMs = 0;
  const step = async (s: MoveStep) => {
    hooks.onStep?.(s);
    hooks.checkCancelled?.();
    await moveFaults.atStep?.(s);
  };
  const waits: WaitOptions = { timeoutMs: COPY_TIMEOUT_MS, checkCancelled: hooks.checkCancelled };
  try {
    await step('start');
    await ctx.pools.ensureDatabase(req.target.host, req.target.port, ctx.database);
    const ddls = new Map<number, Awaited<ReturnType<ShardDefinitions>>>();
    for (const s of group.shards) {
      if (!ddls.has(s.relationId)) {
        const ddl = await ddlFor(s.relationId);
        await ddl.prepareNode(req.target);
        ddls.set(s.relationId, ddl);
      }
    }
    for (const s of group.shards) {
      await op.record(CleanupObject.ShardTable, s.qualifiedName, req.target.groupId, CleanupPolicy.OnFailure, s.shardId);
      await targetPool.query(['BEGIN', ...ddls.get(s.relationId)!.table(s.shardId), 'COMMIT'].join(';\n'));
    }
    await step('tables');

    const publication = `pgweave_move_pub_${op.id}`;
    const subscription = `pgweave_move_sub_${op.id}`;
    const slot = `pgweave_move_slot_${op.id}`;
    await op.record(CleanupObject.Publication, publication, req.source.groupId, CleanupPolicy.Always);
    await createPublication(sourcePool, publication, names);
    await step('publication');
    if (blockAll) {
      // After the publication: creating it needs a lock that conflicts with the one blocking writes.
      blockedAt = Date.now();
      cutover = await blockWrites(ctx, req.source, shardIds, names);
    }

    await op.record(CleanupObject.ReplicationSlot, slot, req.source.groupId, CleanupPolicy.Always);
    await op.record(CleanupObject.Subscription, subscription, req.target.groupId, CleanupPolicy.Always);
    target = await dedicatedConnection(ctx, req.target);
    const subOid = await createSubscription(target, subscription, slot, publication, sourceConninfo(ctx.config, req.source, ctx.database));
    await op.record(CleanupObject.ReplicationSlot, tableSyncSlotPattern(subOid), req.source.groupId, CleanupPolicy.Always);
    await step('subscription');

    await waitForInitialCopy(target, subscription, group.shards.length, waits);
    await step('copied');

    const after = group.shards.flatMap((s) => [...ddls.get(s.relationId)!.indexes(s.shardId), ...ddls.get(s.relationId)!.foreignKeys(s.shardId)]);
    if (after.length > 0) await target.query(['BEGIN', ...after, 'COMMIT'].join(';\n'));
    await step('indexes');

    await waitForCatchUp(sourcePool, target, subscription, slot, await currentLsn(sourcePool), waits);
    await step('caught-up');

    if (!cutover) {
      blockedAt = Date.now();
      cutover = await blockWrites(ctx, req.source, shardIds, names);
    }
    await step('blocked');
    // The position is taken under the lock (every write to the shards has committed) on
    // a connection outside the lock's transaction (it commits to flush the WAL).
    await waitForCatchUp(sourcePool, target, subscription, slot, await currentLsn(sourcePool), { timeoutMs: 60_000 });
    // Before the switch, in the lock's transaction: a failure here fails the move
    // (nothing switched), and the triggers take effect exactly when the lock ends.
    await rejectWritesOnOldShards(cutover.source, names);
    await switchPlacements(ctx, op.id, group, req.source.groupId, req.target.groupId);
    switched = true;
    await commitCutover(ctx, req.source, cutover.source, names);
    cutover.release();
    blockedMs = Date.now() - blockedAt;
    cutover = null;
    await step('switched');
  } catch (err) {
    if (err instanceof AbandonMove) abandoned = true;
    if (!switched || abandoned) {
      cutover?.release();
      target?.close();
      if (abandoned) op.connection.close();
      else await op.finish(false).catch(() => {});
      throw err;
    }
    // After the switch the move has happened; what is left is cleanup.
  } finally {
    cutover?.release();
  }
  target?.close();
  await op.finish(true).catch(() => {});
  return { operationId: op.id, shardIds, blockedMs };
}

async function validateMove(coordinator: { query: InternalClient['query'] }, group: ShardGroup, req: MoveRequest): Promise<void> {
  if (req.source.groupId === req.target.groupId) {
    throw new PgError({ code: '22023', message: 'cannot move shard to the same node' });
  }
  if (!req.target.isActive) throw new PgError({ code: '55000', message: `target node ${req.target.host}:${req.target.port} is not active` });
  if (!req.target.shouldHaveShards) {
    throw new PgError({
      code: '55000',
      message: "Moving shards to a node that shouldn't have a shard is not allowed",
      hint: `Allow shards on the target node via SELECT * FROM citus_set_node_property('${req.target.host}', ${req.target.port}, 'shouldhaveshards', true);`,
    });
  }
  const groups = await placementGroups(coordinator, group.shards.map((s) => s.shardId));
  for (const [shardId, gs] of groups) {
    if (!gs.includes(req.source.groupId)) {
      throw new PgError({ code: 'XX000', message: `could not find placement matching "${req.source.host}:${req.source.port}"`, hint: 'Confirm the placement still exists and try again.', detail: `shard ${shardId}` });
    }
    if (gs.includes(req.target.groupId)) throw new PgError({ code: 'XX000', message: `shard ${shardId} already exists in the target node` });
  }
}

/** Logical replication of UPDATE/DELETE needs a replica identity on every shard of the group. */
async function requireReplicaIdentity(source: { query: InternalClient['query'] }, group: ShardGroup): Promise<void> {
  for (const s of group.shards) {
    const r = await source.query(
      `SELECT c.relreplident = 'f' OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
              OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))
       FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass`,
      [s.qualifiedName],
    );
    if (r.rows[0]?.[0] !== 't') {
      throw new PgError({
        code: '55000',
        message: `cannot use logical replication to transfer shards of the relation ${s.table} since it doesn't have a REPLICA IDENTITY or PRIMARY KEY`,
        detail: 'UPDATE and DELETE commands on the shard will error out during logical replication unless there is a REPLICA IDENTITY or PRIMARY KEY.',
        hint: "If you wish to continue without a replica identity set the shard_transfer_mode to 'force_logical' or 'block_writes'.",
      });
    }
  }
}

export interface Cutover {
  /** The source transaction holding EXCLUSIVE locks on the shards. */
  source: InternalClient;
  /** Ends the source transaction (if still open) and opens the write barrier. */
  release(): void;
}

/**
 * Blocks writes to the shards: this process's barrier first (then waits
 * for its in-flight writes), then the source's table locks, which also make
 * other coordinators' writes wait and wait for open writing transactions.
 */
export async function blockWrites(ctx: OperationContext, source: NodeRow, shardIds: number[], names: string[]): Promise<Cutover> {
  const unblock = writeBarrier.block(ctx.database, shardIds);
  let conn: InternalClient | null = null;
  try {
    await withTimeout(writeBarrier.drained(ctx.database, shardIds), CUTOVER_LOCK_TIMEOUT_MS, 'writes in flight on the shards to finish');
    conn = await dedicatedConnection(ctx, source);
    await conn.query(`BEGIN; SET LOCAL lock_timeout = '${CUTOVER_LOCK_TIMEOUT_MS}ms'`);
    await conn.query(`LOCK TABLE ${names.join(', ')} IN EXCLUSIVE MODE`);
  } catch (err) {
    conn?.close();
    unblock();
    throw err;
  }
  const held = conn;
  return {
    source: held,
    release() {
      held.close();
      unblock();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PgError({ code: '55P03', message: `timed out waiting for ${what}` })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The one catalog transaction of a move: placements point at the target,
 * the new tables stop being failure leftovers, the old ones become deferred
 * leftovers, and every coordinator is told to reload.
 */
async function switchPlacements(ctx: OperationContext, operationId: number, group: ShardGroup, sourceGroup: number, targetGroup: number): Promise<void> {
  await switchCatalog(ctx, async (c) => {
    const ids = '{' + group.shards.map((s) => s.shardId).join(',') + '}';
    const u = await c.query('UPDATE pgweave.placement SET groupid = $1 WHERE shardid = ANY($2::bigint[]) AND groupid = $3', [String(targetGroup), ids, String(sourceGroup)]);
    if (u.command !== `UPDATE ${group.shards.length}`) {
      throw new PgError({ code: '40001', message: 'the placements of the shard group changed during the move', hint: 'Retry the move.' });
    }
    await c.query('DELETE FROM pgweave.cleanup WHERE operation_id = $1 AND policy_type = $2', [String(operationId), String(CleanupPolicy.OnFailure)]);
    await c.query(
      `INSERT INTO pgweave.cleanup (operation_id, object_type, object_name, node_group_id, policy_type, shard_id)
       SELECT $1, $2, u.name, $3, $4, u.id FROM unnest($5::text[], $6::bigint[]) AS u(name, id)`,
      [String(operationId), String(CleanupObject.ShardTable), String(sourceGroup), String(CleanupPolicy.Deferred), pgArray(group.shards.map((s) => s.qualifiedName)), ids],
    );
  });
}

/**
 * The old shards refuse writes once the cutover commits: a statement a
 * coordinator planned with the old catalog (another process's writer that
 * waited on the lock) fails with a retryable error instead of writing where
 * nobody reads. Runs in the cutover's lock transaction.
 */
export async function rejectWritesOnOldShards(source: InternalClient, names: string[]): Promise<void> {
  await source.query(names.map((n) => `CREATE OR REPLACE TRIGGER pgweave_shard_moved ${TRIGGER_BODY_SQL(n)}`).join(';\n'));
}

const TRIGGER_BODY_SQL = (table: string) => `BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION pg_catalog.pgweave_shard_moved()`;

/**
 * Ends the cutover's lock transaction after the catalog switch committed.
 * Should that COMMIT be lost (the source connection broke), the triggers went
 * with it: they are created again on fresh connections, since without them
 * the old shards would accept (and lose) writes of stale coordinators.
 */
export async function commitCutover(ctx: OperationContext, source: NodeRow, held: InternalClient, names: string[]): Promise<void> {
  try {
    await held.query('COMMIT');
    return;
  } catch {
    // retried below
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const conn = await dedicatedConnection(ctx, source).catch(() => null);
    try {
      if (conn) {
        await conn.query(['BEGIN', ...names.map((n) => `CREATE OR REPLACE TRIGGER pgweave_shard_moved ${TRIGGER_BODY_SQL(n)}`), 'COMMIT'].join(';\n'));
        return;
      }
    } catch {
      // the node may be restarting: try again
    } finally {
      conn?.close();
    }
    await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
  }
}

/** The trigger function of rejectWritesOnOldShards, created on a node once (outside the cutover transaction). */
export const SHARD_MOVED_FUNCTION_SQL = `CREATE OR REPLACE FUNCTION pg_catalog.pgweave_shard_moved() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'shard % has moved to another node', TG_TABLE_NAME
    USING ERRCODE = '40001', HINT = 'Retry the statement: the coordinator routes it to the new placement.';
END $fn$`;

function pgArray(values: string[]): string {
  return '{' + values.map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
}
