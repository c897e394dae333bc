/**
 * Splitting a shard group at hash split points (citus_split_shard_by_split_points,
 * isolate_tenant_to_new_shard). This implementation blocks writes to the
 * shard group for the whole copy (reads continue); a split over logical
 * replication is future work. Steps:
 *
 *   validate → operation id + liveness lock + shard-group lock
 *   → writes blocked (write barrier + LOCK … IN EXCLUSIVE MODE on the source)
 *   → new shard tables on their nodes (recorded ON_FAILURE)
 *   → rows copied piece by piece, filtered by PostgreSQL's hash of the
 *     distribution column → indexes
 *   → one catalog transaction: old shards and placements out, new ones in,
 *     cleanup records (old tables DEFERRED), cache notification
 *   → old shards refuse writes, writes unblocked
 *
 * Groups with foreign keys are refused for now (their pieces would need
 * foreign keys to each other's new shards).
 */
import { PgError } from '../protocol/errors.js';
import type { InternalClient } from '../pool/internal-client.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import type { NodeRow } from '../metadata/catalog-writes.js';
import { shardName } from '../metadata/shard-name.js';
import { CleanupObject, CleanupPolicy, cleanupOrphanedResources, DEFERRED_DROP_DELAY_MS, Operation } from './cleanup.js';
import { coordinatorPool, dedicatedConnection, type OperationContext, type ShardDefinitions, type ShardTableDdl } from './context.js';
import { blockWrites, commitCutover, rejectWritesOnOldShards, SHARD_MOVED_FUNCTION_SQL, type Cutover } from './move-shard.js';
import { SHARD_GROUP_LOCK_KEY } from './operations-schema.js';
import { switchCatalog } from './catalog-switch.js';
import { placementGroups, readShardGroup } from './shard-group.js';

export interface SplitRequest {
  shardId: number;
  /** Inclusive upper ends of every piece but the last. */
  splitPoints: number[];
  /** Node of each piece (splitPoints.length + 1). */
  nodes: NodeRow[];
}

interface Piece {
  min: number;
  max: number;
  node: NodeRow;
}

/** Splits the shard group; returns the new shard ids of each table, by the requested shard's table first. */
export async function splitShardGroup(ctx: OperationContext, ddlFor: ShardDefinitions, req: SplitRequest): Promise<Map<number, number[]>> {
  const coordinator = coordinatorPool(ctx);
  await cleanupOrphanedResources(ctx, { afterMs: DEFERRED_DROP_DELAY_MS }).catch(() => {});
  const group = await readShardGroup(coordinator, req.shardId);
  const min = Number(group.minValue);
  const max = Number(group.maxValue);
  if (req.nodes.length !== req.splitPoints.length + 1) {
    throw new PgError({
      code: '22023',
      message: `Number of worker node ids should be one greater split points. NodeId count is '${req.nodes.length}' and SplitPoint count is '${req.splitPoints.length}'.`,
    });
  }
  let lo = min;
  const pieces: Piece[] = [];
  for (const [i, p] of req.splitPoints.entries()) {
    if (p < lo || p >= max) {
      throw new PgError({ code: '22023', message: `Invalid split point ${p}, as split points should be inclusive and within the range [${min}, ${max - 1}] of shard ${req.shardId} in increasing order.` });
    }
    pieces.push({ min: lo, max: p, node: req.nodes[i]! });
    lo = p + 1;
  }
  pieces.push({ min: lo, max, node: req.nodes[req.nodes.length - 1]! });
  const groups = await placementGroups(coordinator, group.shards.map((s) => s.shardId));
  const sourceGroup = groups.get(req.shardId)![0];
  const sourceRow = await coordinator.query(`SELECT nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards FROM pgweave.node WHERE groupid = $1 AND noderole = 'primary'`, [String(sourceGroup)]);
  if (!sourceRow.rows[0]) throw new PgError({ code: 'XX000', message: `shard ${req.shardId} has no active placement` });
  const r0 = sourceRow.rows[0];
  const source: NodeRow = { nodeId: Number(r0[0]), groupId: Number(r0[1]), host: r0[2]!, port: Number(r0[3]), isActive: true, shouldHaveShards: r0[5] === 't' };

  const ddls = new Map<number, ShardTableDdl>();
  const hashOf = new Map<number, string>();
  for (const s of group.shards) {
    const ddl = await ddlFor(s.relationId);
    if (ddl.hasForeignKeys) throw new PgError({ code: '0A000', message: `cannot split shards of ${s.table}: splitting tables with foreign keys is not supported yet` });
    ddls.set(s.relationId, ddl);
    const h = await coordinator.query(
      `SELECT a.attname, pgweave.hash_function(a.atttypid) FROM pgweave.partition p JOIN pg_catalog.pg_attribute a ON a.attrelid = p.logicalrelid AND a.attnum = p.distattnum WHERE p.logicalrelid = $1`,
      [String(s.relationId)],
    );
    hashOf.set(s.relationId, `${h.rows[0]![1]}(${quoteIdent(h.rows[0]![0]!)})`);
  }
  const sourcePool = ctx.pools.get(source.host, source.port, ctx.database);
  await sourcePool.query(SHARD_MOVED_FUNCTION_SQL).catch(() => {});

  const op = await Operation.start(ctx);
  let cutover: Cutover | null = null;
  const targets: InternalClient[] = [];
  try {
    const got = await op.connection.query(`SELECT pg_catalog.pg_try_advisory_lock(${SHARD_GROUP_LOCK_KEY}, ${Math.min(...group.shards.map((s) => s.shardId)) % 2147483647})`);
    if (got.rows[0]?.[0] !== 't') throw new PgError({ code: '55P03', message: `could not acquire the lock required to split shard ${req.shardId}` });
    const ids = await op.connection.query(`SELECT nextval('pgweave.shardid_seq') FROM pg_catalog.generate_series(1, $1)`, [String(pieces.length * group.shards.length)]);
    const newIds = ids.rows.map((r) => Number(r[0]));
    const plan = group.shards.map((s, t) => ({ shard: s, pieces: pieces.map((p, i) => ({ ...p, shardId: newIds[t * pieces.length + i]!, name: quoteQualified(s.schema, shardName(s.table, newIds[t * pieces.length + i]!)) })) }));

    cutover = await blockWrites(ctx, source, group.shards.map((s) => s.shardId), group.shards.map((s) => s.qualifiedName));
    for (const node of new Set(pieces.map((p) => p.node))) {
      await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
      for (const ddl of ddls.values()) await ddl.prepareNode(node);
    }
    for (const { shard, pieces: ps } of plan) {
      const ddl = ddls.get(shard.relationId)!;
      for (const p of ps) {
        await op.record(CleanupObject.ShardTable, p.name, p.node.groupId, CleanupPolicy.OnFailure, p.shardId);
        const target = await dedicatedConnection(ctx, p.node);
        targets.push(target);
        await target.query(['BEGIN', ...ddl.table(p.shardId), 'COMMIT'].join(';\n'));
        await ddl.copyRows(cutover.source, shard.qualifiedName, target, p.name, `${hashOf.get(shard.relationId)} BETWEEN ${p.min} AND ${p.max}`);
        const indexes = ddl.indexes(p.shardId);
        if (indexes.length > 0) await target.query(indexes.join(';\n'));
      }
    }
    // In the lock's transaction before the switch, as in a move (move-shard.ts).
    await rejectWritesOnOldShards(cutover.source, group.shards.map((s) => s.qualifiedName));
    await switchToPieces(ctx, op.id, source.groupId, plan);
    await commitCutover(ctx, source, cutover.source, group.shards.map((s) => s.qualifiedName));
    cutover.release();
    cutover = null;
    await op.finish(true);
    return new Map(plan.map((p) => [p.shard.relationId, p.pieces.map((x) => x.shardId)]));
  } catch (err) {
    cutover?.release();
    await op.finish(false).catch(() => {});
    throw err;
  } finally {
    for (const t of targets) t.close();
  }
}

async function switchToPieces(
  ctx: OperationContext,
  operationId: number,
  sourceGroup: number,
  plan: Array<{ shard: { shardId: number; relationId: number; qualifiedName: string }; pieces: Array<Piece & { shardId: number }> }>,
): Promise<void> {
  await switchCatalog(ctx, async (c) => {
    for (const { shard, pieces } of plan) {
      await c.query('DELETE FROM pgweave.placement WHERE shardid = $1', [String(shard.shardId)]);
      await c.query('DELETE FROM pgweave.shard WHERE shardid = $1', [String(shard.shardId)]);
      for (const p of pieces) {
        await c.query('INSERT INTO pgweave.shard (shardid, logicalrelid, shardminvalue, shardmaxvalue) VALUES ($1, $2, $3, $4)', [String(p.shardId), String(shard.relationId), String(p.min), String(p.max)]);
        await c.query('INSERT INTO pgweave.placement (shardid, groupid) VALUES ($1, $2)', [String(p.shardId), String(p.node.groupId)]);
      }
      await c.query(
        'INSERT INTO pgweave.cleanup (operation_id, object_type, object_name, node_group_id, policy_type, shard_id) VALUES ($1, $2, $3, $4, $5, $6)',
        [String(operationId), String(CleanupObject.ShardTable), shard.qualifiedName, String(sourceGroup), String(CleanupPolicy.Deferred), String(shard.shardId)],
      );
    }
    await c.query('DELETE FROM pgweave.cleanup WHERE operation_id = $1 AND policy_type = $2', [String(operationId), String(CleanupPolicy.OnFailure)]);
  });
}
