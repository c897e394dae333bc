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
import { TYPE_OID, voidResult, type CommandDefinition } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseInt32, requireSuperuser } from './common.js';
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

export const OPERATION_COMMANDS: CommandDefinition[] = [citusMoveShardPlacement, masterMoveShardPlacement, citusCleanupOrphanedResources];
