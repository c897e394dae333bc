/**
 * Shard operations with Citus's names and signatures: citus_move_shard_placement
 * (and master_move_shard_placement; host/port and node-id forms),
 * citus_cleanup_orphaned_resources. Superusers only, as in Citus. The work
 * itself lives in src/operations.
 */
import { PgError } from '../protocol/errors.js';
import { cleanupOrphanedResources } from '../operations/cleanup.js';
import { moveShardGroup, type TransferMode } from '../operations/move-shard.js';
import { nodeById, requireNode } from '../operations/shard-group.js';
import { splitShardGroup } from '../operations/split-shard.js';
import { parseTextArray } from './table-definition.js';

import { TYPE_OID, voidResult, type CommandDefinition } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseInt32, requireSuperuser, resolveRelation } from './common.js';
import type { CommandContext } from './context.js';
import { shardDefinitions } from './shard-definitions.js';

export function parseTransferMode(text: string | null): TransferMode {
  const mode = (text ?? 'auto').toLowerCase();
  if (mode === 'auto' || mode === 'force_logical' || mode === 'block_writes') return mode;
  throw new PgError({ code: '22P02', message: `invalid input value for enum citus.shard_transfer_mode: "${text}"` });
}

export function parseShardId(text: string): number {
  const t = text.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new PgError({ code: '22P02', message: `invalid input syntax for type bigint: "${text}"` });
  return Number(t);
}

/** Refuses to run inside the client's transaction block: a move commits on its own. */
export function requireNoTransactionBlock(ctx: CommandContext, fn: string): void {
  if (ctx.inTransactionBlock) throw new PgError({ code: '25001', message: `${fn} cannot run inside a transaction block` });
}

async function movePlacement(args: Map<string, string | null>, ctx: CommandContext, fn: string) {
  await requireSuperuser(ctx, fn);
  requireNoTransactionBlock(ctx, fn);
  await ensureDatabaseCatalog(ctx);
  const coordinator = coordinatorPool(ctx);
  const shardId = parseShardId(args.get('shard_id')!);
  let source, target, modeText;
  if (args.get('target_node_port') === null && args.get('source_node_port') !== null && args.get('source_node_name') !== null) {
    // Node-id form: (shard_id, source_node_id, target_node_id[, shard_transfer_mode]).
    source = await nodeById(coordinator, parseInt32(args.get('source_node_name')!, 'source_node_id'));
    target = await nodeById(coordinator, parseInt32(args.get('source_node_port')!, 'target_node_id'));
    modeText = args.get('target_node_name') ?? args.get('shard_transfer_mode');
  } else {
    for (const p of ['source_node_name', 'source_node_port', 'target_node_name', 'target_node_port']) if (args.get(p) === null) return [[null]];
    source = await requireNode(coordinator, args.get('source_node_name')!, parseInt32(args.get('source_node_port')!, 'source_node_port'));
    target = await requireNode(coordinator, args.get('target_node_name')!, parseInt32(args.get('target_node_port')!, 'target_node_port'));
    modeText = args.get('shard_transfer_mode');
  }
  await moveShardGroup(ctx, shardDefinitions(ctx), { shardId, source, target, mode: parseTransferMode(modeText ?? 'auto') });
  return voidResult();
}

const moveParams = [
  { name: 'shard_id', type: 'bigint' },
  { name: 'source_node_name', type: 'text' },
  { name: 'source_node_port', type: 'integer' },
  { name: 'target_node_name', type: 'text', default: null },
  { name: 'target_node_port', type: 'integer', default: null },
  { name: 'shard_transfer_mode', type: 'citus.shard_transfer_mode', default: 'auto' },
];

const citusMoveShardPlacement: CommandDefinition = {
  name: 'citus_move_shard_placement',
  params: moveParams,
  returns: [{ name: 'citus_move_shard_placement', typeOid: TYPE_OID.void }],
  setReturning: false,
  nullable: ['target_node_name', 'target_node_port'],
  run: (args, ctx) => movePlacement(args, ctx, 'citus_move_shard_placement'),
};

const masterMoveShardPlacement: CommandDefinition = {
  ...citusMoveShardPlacement,
  name: 'master_move_shard_placement',
  returns: [{ name: 'master_move_shard_placement', typeOid: TYPE_OID.void }],
  run: (args, ctx) => movePlacement(args, ctx, 'master_move_shard_placement'),
};

const citusCleanupOrphanedResources: CommandDefinition = {
  name: 'citus_cleanup_orphaned_resources',
  params: [],
  returns: [{ name: 'citus_cleanup_orphaned_resources', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(_args, ctx) {
    await requireSuperuser(ctx, 'citus_cleanup_orphaned_resources');
    await ensureDatabaseCatalog(ctx);
    await cleanupOrphanedResources(ctx);
    return voidResult();
  },
};

const citusSplitShardBySplitPoints: CommandDefinition = {
  name: 'citus_split_shard_by_split_points',
  params: [
    { name: 'shard_id', type: 'bigint' },
    { name: 'split_points', type: 'text[]' },
    { name: 'node_ids', type: 'integer[]' },
    { name: 'shard_transfer_mode', type: 'citus.shard_transfer_mode', default: 'auto' },
  ],
  returns: [{ name: 'citus_split_shard_by_split_points', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    await requireSuperuser(ctx, 'citus_split_shard_by_split_points');
    requireNoTransactionBlock(ctx, 'citus_split_shard_by_split_points');
    await ensureDatabaseCatalog(ctx);
    parseTransferMode(args.get('shard_transfer_mode') ?? null);
    const coordinator = coordinatorPool(ctx);
    const points = parseTextArray(args.get('split_points')!).map((p) => parseInt32(p ?? '', 'split_points'));
    const nodes = [];
    for (const id of parseTextArray(args.get('node_ids')!)) nodes.push(await nodeById(coordinator, parseInt32(id ?? '', 'node_ids')));
    await splitShardGroup(ctx, shardDefinitions(ctx), { shardId: parseShardId(args.get('shard_id')!), splitPoints: points, nodes });
    return voidResult();
  },
};

/**
 * isolate_tenant_to_new_shard: the shard holding the value's hash is split so
 * that the hash gets a shard of its own (on the same node), for every
 * co-located table (CASCADE, which Citus requires when there are any).
 */
const isolateTenantToNewShard: CommandDefinition = {
  name: 'isolate_tenant_to_new_shard',
  params: [
    { name: 'table_name', type: 'regclass' },
    { name: 'tenant_id', type: 'any' },
    { name: 'cascade_option', type: 'text', default: '' },
    { name: 'shard_transfer_mode', type: 'citus.shard_transfer_mode', default: 'auto' },
  ],
  returns: [{ name: 'isolate_tenant_to_new_shard', typeOid: TYPE_OID.int8 }],
  setReturning: false,
  async run(args, ctx) {
    await requireSuperuser(ctx, 'isolate_tenant_to_new_shard');
    requireNoTransactionBlock(ctx, 'isolate_tenant_to_new_shard');
    await ensureDatabaseCatalog(ctx);
    const rel = await resolveRelation(ctx, args.get('table_name')!);
    const coordinator = coordinatorPool(ctx);
    const info = await coordinator.query(
      `SELECT pgweave.hash_function(a.atttypid), pg_catalog.format_type(a.atttypid, a.atttypmod), p.colocationid,
              (SELECT count(*) FROM pgweave.partition o WHERE o.colocationid = p.colocationid AND o.logicalrelid <> p.logicalrelid)
       FROM pgweave.partition p JOIN pg_catalog.pg_attribute a ON a.attrelid = p.logicalrelid AND a.attnum = p.distattnum
       WHERE p.logicalrelid = $1 AND p.partmethod = 'h'`,
      [String(rel.oid)],
    );
    const row = info.rows[0];
    if (!row) throw new PgError({ code: '0A000', message: `cannot isolate tenant because tenant isolation is only support for hash distributed tables` });
    if (Number(row[3]) > 0 && (args.get('cascade_option') ?? '').toUpperCase() !== 'CASCADE') {
      throw new PgError({
        code: '0A000',
        message: `cannot isolate tenant because "${rel.name}" has colocated tables`,
        hint: `Use CASCADE option to isolate tenants for the colocated tables too. Example usage: isolate_tenant_to_new_shard('${rel.name}', '${args.get('tenant_id')}', 'CASCADE')`,
      });
    }
    const hash = Number((await coordinator.query(`SELECT ${row[0]}($1::${row[1]})`, [args.get('tenant_id') ?? null])).rows[0]![0]);
    const shard = await coordinator.query(
      `SELECT s.shardid, s.shardminvalue::int, s.shardmaxvalue::int, n.nodeid FROM pgweave.shard s JOIN pgweave.placement pl ON pl.shardid = s.shardid
       JOIN pgweave.node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
       WHERE s.logicalrelid = $1 AND $2::int BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int`,
      [String(rel.oid), String(hash)],
    );
    const [shardId, lo, hi, nodeId] = shard.rows[0]!.map(Number) as [number, number, number, number];
    if (lo === hi) return [[String(shardId)]];
    const points: number[] = [];
    if (hash > lo) points.push(hash - 1);
    if (hash < hi) points.push(hash);
    const node = await nodeById(coordinator, nodeId);
    const pieces = await splitShardGroup(ctx, shardDefinitions(ctx), { shardId, splitPoints: points, nodes: points.map(() => node).concat([node]) });
    const mine = pieces.get(rel.oid)!;
    return [[String(mine[hash > lo ? 1 : 0])]];
  },
};

export const OPERATION_COMMANDS: CommandDefinition[] = [
  citusMoveShardPlacement,
  masterMoveShardPlacement,
  citusCleanupOrphanedResources,
  citusSplitShardBySplitPoints,
  isolateTenantToNewShard,
];
