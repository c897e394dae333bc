/**
 * The rebalancer's SQL API with Citus's names and signatures:
 * rebalance_table_shards (in the session), citus_rebalance_start (a
 * background job) with citus_rebalance_status / _wait / _stop,
 * get_rebalance_progress, get_rebalance_table_shards_plan, and
 * citus_drain_node. Superusers only, as in Citus. Planning and running live
 * in src/operations (rebalance-planner.ts, rebalance-job.ts).
 */
import { PgError } from '../protocol/errors.js';
import { readNode } from '../metadata/catalog-writes.js';
import { planClusterRebalance, rebalanceProgress, rebalanceStatus, runMoves, startRebalanceJob, stopRebalance, waitForRebalance, type RebalanceRequest } from '../operations/rebalance-job.js';
import type { PlannedMove, RebalanceStrategy } from '../operations/rebalance-planner.js';
import { TYPE_OID, voidResult, type CommandDefinition, type Rows } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseBool, parseInt32, requireSuperuser, resolveRelation } from './common.js';
import type { CommandContext } from './context.js';
import { withDistributedChange } from './distribute-table.js';
import { parseTransferMode, requireNoTransactionBlock } from './operation-commands.js';
import { shardDefinitions } from './shard-definitions.js';

function parseStrategy(text: string | null | undefined): RebalanceStrategy {
  const name = (text ?? 'by_shard_count').toLowerCase();
  if (name === 'by_shard_count' || name === 'by_disk_size') return name;
  throw new PgError({ code: 'XX000', message: `could not find rebalance strategy with name ${text}` });
}

function parseShardList(text: string | null | undefined): Set<number> {
  const inner = (text ?? '{}').trim().replace(/^\{|\}$/g, '');
  return new Set(inner.split(',').map((s) => s.trim()).filter(Boolean).map(Number));
}

async function requestFrom(args: Map<string, string | null>, ctx: CommandContext): Promise<RebalanceRequest> {
  const strategy = parseStrategy(args.get('rebalance_strategy'));
  const relation = args.get('relation');
  const threshold = args.get('threshold');
  return {
    strategy,
    threshold: threshold != null ? Number(threshold) : strategy === 'by_disk_size' ? 0.1 : 0,
    maxMoves: args.get('max_shard_moves') != null ? parseInt32(args.get('max_shard_moves')!, 'max_shard_moves') : 1_000_000,
    drainOnly: args.get('drain_only') != null ? parseBool(args.get('drain_only')!, 'drain_only') : false,
    excludedShards: parseShardList(args.get('excluded_shard_list')),
    mode: parseTransferMode(args.get('shard_transfer_mode') ?? 'auto'),
    relationId: relation ? (await resolveRelation(ctx, relation)).oid : null,
  };
}

async function begin(ctx: CommandContext, fn: string, inSession: boolean): Promise<void> {
  await requireSuperuser(ctx, fn);
  if (inSession) requireNoTransactionBlock(ctx, fn);
  await ensureDatabaseCatalog(ctx);
}

async function describeMoves(ctx: CommandContext, moves: PlannedMove[]): Promise<Rows> {
  const coordinator = coordinatorPool(ctx);
  const rows: Rows = [];
  for (const m of moves) {
    const r = await coordinator.query(
      `SELECT s.logicalrelid::regclass::text, sn.nodename, sn.nodeport, tn.nodename, tn.nodeport FROM pgweave.shard s, pgweave.node sn, pgweave.node tn
       WHERE s.shardid = $1 AND sn.groupid = $2 AND tn.groupid = $3 AND sn.noderole = 'primary' AND tn.noderole = 'primary'`,
      [String(m.shardId), String(m.sourceGroup), String(m.targetGroup)],
    );
    const row = r.rows[0];
    if (row) rows.push([row[0], String(m.shardId), String(m.size), row[1], row[2], row[3], row[4]]);
  }
  return rows;
}

/** The columns describing one shard move, as Citus's plan and progress functions return them. */
const MOVE_COLUMNS = [
  { name: 'table_name', typeOid: TYPE_OID.regclass },
  { name: 'shardid', typeOid: TYPE_OID.int8 },
  { name: 'shard_size', typeOid: TYPE_OID.int8 },
  { name: 'sourcename', typeOid: TYPE_OID.text },
  { name: 'sourceport', typeOid: TYPE_OID.int4 },
  { name: 'targetname', typeOid: TYPE_OID.text },
  { name: 'targetport', typeOid: TYPE_OID.int4 },
];

const planParams = [
  { name: 'relation', type: 'regclass', default: null },
  { name: 'threshold', type: 'real', default: null },
  { name: 'max_shard_moves', type: 'integer', default: '1000000' },
  { name: 'excluded_shard_list', type: 'bigint[]', default: '{}' },
];

const rebalanceTableShards: CommandDefinition = {
  name: 'rebalance_table_shards',
  params: [
    ...planParams,
    { name: 'shard_transfer_mode', type: 'citus.shard_transfer_mode', default: 'auto' },
    { name: 'drain_only', type: 'boolean', default: 'false' },
    { name: 'rebalance_strategy', type: 'name', default: null },
  ],
  returns: [{ name: 'rebalance_table_shards', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    await begin(ctx, 'rebalance_table_shards', true);
    const req = await requestFrom(args, ctx);
    await runMoves(ctx, shardDefinitions(ctx), await planClusterRebalance(ctx, req), req.mode);
    return voidResult();
  },
};

const getRebalanceTableShardsPlan: CommandDefinition = {
  name: 'get_rebalance_table_shards_plan',
  params: [...planParams, { name: 'drain_only', type: 'boolean', default: 'false' }, { name: 'rebalance_strategy', type: 'name', default: null }],
  returns: MOVE_COLUMNS,
  setReturning: true,
  async run(args, ctx) {
    await begin(ctx, 'get_rebalance_table_shards_plan', false);
    return describeMoves(ctx, await planClusterRebalance(ctx, await requestFrom(args, ctx)));
  },
};

const citusRebalanceStart: CommandDefinition = {
  name: 'citus_rebalance_start',
  params: [
    { name: 'rebalance_strategy', type: 'name', default: null },
    { name: 'drain_only', type: 'boolean', default: 'false' },
    { name: 'shard_transfer_mode', type: 'citus.shard_transfer_mode', default: 'auto' },
  ],
  returns: [{ name: 'citus_rebalance_start', typeOid: TYPE_OID.int8 }],
  setReturning: false,
  async run(args, ctx) {
    await begin(ctx, 'citus_rebalance_start', false);
    const jobId = await startRebalanceJob(ctx, shardDefinitions(ctx), await requestFrom(args, ctx));
    return [[jobId === null ? null : String(jobId)]];
  },
};

const citusRebalanceStatus: CommandDefinition = {
  name: 'citus_rebalance_status',
  params: [],
  returns: [
    { name: 'job_id', typeOid: TYPE_OID.int8 },
    { name: 'state', typeOid: TYPE_OID.text },
    { name: 'job_type', typeOid: TYPE_OID.text },
    { name: 'description', typeOid: TYPE_OID.text },
    { name: 'started_at', typeOid: TYPE_OID.text },
    { name: 'finished_at', typeOid: TYPE_OID.text },
    { name: 'details', typeOid: TYPE_OID.text },
  ],
  setReturning: true,
  async run(_args, ctx) {
    await begin(ctx, 'citus_rebalance_status', false);
    const jobs = await rebalanceStatus(ctx);
    const last = jobs.slice(-1);
    return last.map((j) => [
      String(j.jobId),
      j.state,
      'rebalance',
      'Rebalance all colocation groups',
      j.startedAt,
      j.finishedAt,
      JSON.stringify({ tasks: j.tasks, message: j.message, longest_blocked_ms: j.longestBlockedMs }),
    ]);
  },
};

const citusRebalanceWait: CommandDefinition = {
  name: 'citus_rebalance_wait',
  params: [],
  returns: [{ name: 'citus_rebalance_wait', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(_args, ctx) {
    await begin(ctx, 'citus_rebalance_wait', false);
    await waitForRebalance(ctx);
    return voidResult();
  },
};

const citusRebalanceStop: CommandDefinition = {
  name: 'citus_rebalance_stop',
  params: [],
  returns: [{ name: 'citus_rebalance_stop', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(_args, ctx) {
    await begin(ctx, 'citus_rebalance_stop', false);
    if (!(await stopRebalance(ctx))) throw new PgError({ code: '55000', message: 'no ongoing rebalance that can be cancelled' });
    return voidResult();
  },
};

const getRebalanceProgress: CommandDefinition = {
  name: 'get_rebalance_progress',
  params: [],
  returns: [
    { name: 'sessionid', typeOid: TYPE_OID.int4 },
    ...MOVE_COLUMNS,
    { name: 'progress', typeOid: TYPE_OID.int8 },
    { name: 'operation_type', typeOid: TYPE_OID.text },
    { name: 'status', typeOid: TYPE_OID.text },
  ],
  setReturning: true,
  async run(_args, ctx) {
    await begin(ctx, 'get_rebalance_progress', false);
    return (await rebalanceProgress(ctx)).map((p) => [
      String(p.jobId),
      p.tableName,
      String(p.shardId),
      String(p.shardSize),
      p.source.host,
      String(p.source.port),
      p.target.host,
      String(p.target.port),
      String(p.progress),
      'move',
      p.state,
    ]);
  },
};

const citusDrainNode: CommandDefinition = {
  name: 'citus_drain_node',
  params: [
    { name: 'nodename', type: 'text' },
    { name: 'nodeport', type: 'integer' },
    { name: 'shard_transfer_mode', type: 'citus.shard_transfer_mode', default: 'auto' },
    { name: 'rebalance_strategy', type: 'name', default: null },
  ],
  returns: [{ name: 'citus_drain_node', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    await begin(ctx, 'citus_drain_node', true);
    const host = args.get('nodename')!;
    const port = parseInt32(args.get('nodeport')!, 'nodeport');
    const node = await readNode(coordinatorPool(ctx), host, port);
    if (!node) throw new PgError({ code: '22023', message: `node at "${host}:${port}" does not exist` });
    // As Citus: the node stops receiving shards, then everything moves off it.
    await withDistributedChange(ctx, async (coordinator) => {
      await coordinator.query('UPDATE pgweave.node SET shouldhaveshards = false WHERE nodeid = $1', [String(node.nodeId)]);
    });
    const req = await requestFrom(new Map([...args, ['drain_only', 'true']]), ctx);
    await runMoves(ctx, shardDefinitions(ctx), await planClusterRebalance(ctx, { ...req, draining: [node.groupId] }), req.mode);
    return voidResult();
  },
};

export const REBALANCE_COMMANDS: CommandDefinition[] = [
  rebalanceTableShards,
  getRebalanceTableShardsPlan,
  citusRebalanceStart,
  citusRebalanceStatus,
  citusRebalanceWait,
  citusRebalanceStop,
  getRebalanceProgress,
  citusDrainNode,
];
