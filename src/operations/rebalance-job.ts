/**
 * Running a rebalance: reading the cluster's shard groups (and sizes), the
 * plan (rebalance-planner.ts), and the moves — either in the calling session
 * (rebalance_table_shards, citus_drain_node) or as a background job of this
 * coordinator process (citus_rebalance_start), whose state lives in
 * `pgweave.rebalance_job` / `pgweave.rebalance_task` so every session of
 * every coordinator can watch it.
 *
 * Job states: running → finished | cancelled | failed. A task:
 * runnable → running → done | error | cancelled. The running job's process
 * holds a session advisory lock (REBALANCE_LOCK_KEY, job id) on a dedicated
 * connection; a job shown 'running' whose lock is free belongs to a process
 * that died, and is reported (and recorded) as failed. citus_rebalance_stop
 * marks the job 'cancelling'; the runner sees it within a second, the move in
 * progress rolls back (its old placement keeps serving) and the job ends
 * 'cancelled'.
 */
import { PgError } from '../protocol/errors.js';
import type { InternalClient } from '../pool/internal-client.js';
import { readWorkerNodes } from '../metadata/catalog-writes.js';
import { coordinatorPool, dedicatedConnection, type OperationContext, type ShardDefinitions } from './context.js';
import { moveShardGroup, type TransferMode } from './move-shard.js';
import { ensureOperationsSchema, REBALANCE_LOCK_KEY } from './operations-schema.js';
import { planRebalance, type PlannedMove, type PlanOptions, type PlanShardGroup } from './rebalance-planner.js';

type Queryable = { query: InternalClient['query'] };

export interface RebalanceRequest extends PlanOptions {
  mode: TransferMode;
  /** Only shard groups of this table's colocation group (null: all). */
  relationId: number | null;
  /** Node groups being drained (they get no shards even if shouldhaveshards). */
  draining?: number[];
}

/** The shard groups of hash-distributed tables (one row per group: its first table's shard) with their total size. */
async function readShardGroups(ctx: OperationContext, coordinator: Queryable, withSizes: boolean): Promise<PlanShardGroup[]> {
  const r = await coordinator.query(
    `SELECT p.colocationid, s.shardminvalue, min(s.shardid), min(pl.groupid),
            array_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname || '_' || s.shardid))::text
     FROM pgweave.partition p JOIN pgweave.shard s ON s.logicalrelid = p.logicalrelid
     JOIN pgweave.placement pl ON pl.shardid = s.shardid AND pl.shardstate = 1
     JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE p.partmethod = 'h'
     GROUP BY p.colocationid, s.shardminvalue ORDER BY p.colocationid, s.shardminvalue::int`,
  );
  const groups = r.rows.map((row) => ({
    colocationId: Number(row[0]),
    shardId: Number(row[2]),
    groupId: Number(row[3]),
    size: 0,
    tables: row[4]!.slice(1, -1),
  }));
  if (withSizes) {
    const nodes = await readWorkerNodes(coordinator as InternalClient);
    for (const node of nodes) {
      const mine = groups.filter((g) => g.groupId === node.groupId);
      if (mine.length === 0) continue;
      const pool = ctx.pools.get(node.host, node.port, ctx.database);
      for (const g of mine) {
        const names = parseArray(g.tables);
        const s = await pool.query(`SELECT COALESCE(sum(pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(t))), 0) FROM unnest($1::text[]) t`, ['{' + names.map((n) => '"' + n.replace(/["\\]/g, '\\$&') + '"').join(',') + '}']);
        g.size = Number(s.rows[0]![0]);
      }
    }
  }
  return groups.map(({ tables: _t, ...g }) => g);
}

function parseArray(inner: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|([^,]+)/g;
  for (let m; (m = re.exec(inner)); ) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/** The moves a rebalance would make now. */
export async function planClusterRebalance(ctx: OperationContext, req: RebalanceRequest): Promise<PlannedMove[]> {
  const coordinator = coordinatorPool(ctx);
  const nodes = await readWorkerNodes(coordinator as unknown as InternalClient);
  let groups = await readShardGroups(ctx, coordinator, req.strategy === 'by_disk_size');
  if (req.relationId !== null) {
    const r = await coordinator.query('SELECT colocationid FROM pgweave.partition WHERE logicalrelid = $1', [String(req.relationId)]);
    const colocationId = Number(r.rows[0]?.[0] ?? -1);
    groups = groups.filter((g) => g.colocationId === colocationId);
  }
  const draining = new Set(req.draining ?? []);
  return planRebalance(
    nodes.map((n) => ({ groupId: n.groupId, eligible: n.isActive && n.shouldHaveShards && !draining.has(n.groupId) })),
    groups,
    req,
  );
}

/** Runs planned moves one after another in the caller; stops at the first failure. */
export async function runMoves(
  ctx: OperationContext,
  ddl: ShardDefinitions,
  moves: PlannedMove[],
  mode: TransferMode,
  onMove?: (index: number, state: 'running' | 'done' | 'error', err?: unknown, blockedMs?: number) => Promise<void>,
  checkCancelled?: () => void,
): Promise<void> {
  const coordinator = coordinatorPool(ctx);
  const nodes = new Map((await readWorkerNodes(coordinator as unknown as InternalClient)).map((n) => [n.groupId, n]));
  for (let i = 0; i < moves.length; i++) {
    checkCancelled?.();
    const m = moves[i]!;
    const source = nodes.get(m.sourceGroup);
    const target = nodes.get(m.targetGroup);
    if (!source || !target) throw new PgError({ code: '55000', message: `a node of shard ${m.shardId}'s move is no longer in the cluster` });
    await onMove?.(i, 'running');
    let blockedMs: number;
    try {
      ({ blockedMs } = await moveShardGroup(ctx, ddl, { shardId: m.shardId, source, target, mode }, { checkCancelled }));
    } catch (err) {
      await onMove?.(i, 'error', err);
      throw err;
    }
    await onMove?.(i, 'done', undefined, blockedMs);
  }
}

/** Background jobs running in this process, by database. */
const running = new Map<string, { jobId: number; cancel: boolean; done: Promise<void> }>();

export class RebalanceCancelled extends PgError {
  constructor() {
    super({ code: '57014', message: 'the rebalance was stopped by citus_rebalance_stop()' });
  }
}

/**
 * Plans and starts a background rebalance; returns its job id (null: nothing
 * to move). One rebalance per database at a time, across coordinators.
 */
export async function startRebalanceJob(ctx: OperationContext, ddl: ShardDefinitions, req: RebalanceRequest): Promise<number | null> {
  const coordinator = coordinatorPool(ctx);
  await ensureOperationsSchema(coordinator);
  const lockConn = await dedicatedConnection(ctx, ctx.config.coordinator);
  try {
    const got = await lockConn.query(`SELECT pg_catalog.pg_try_advisory_lock(${REBALANCE_LOCK_KEY}, 0)`);
    if (got.rows[0]?.[0] !== 't') {
      throw new PgError({ code: '55000', message: 'A rebalance is already running as job ' + ((await currentJobId(coordinator)) ?? '?'), hint: 'Wait for it to finish (citus_rebalance_wait()) or stop it (citus_rebalance_stop()).' });
    }
    const moves = await planClusterRebalance(ctx, req);
    if (moves.length === 0) {
      lockConn.close();
      return null;
    }
    const job = await lockConn.query(`INSERT INTO pgweave.rebalance_job (state, strategy) VALUES ('running', $1) RETURNING job_id`, [req.strategy]);
    const jobId = Number(job.rows[0]![0]);
    await lockConn.query(
      `INSERT INTO pgweave.rebalance_task (job_id, task_id, shard_id, source_group, target_group, shard_size)
       SELECT $1, u.i, u.s, u.f, u.t, u.z FROM unnest($2::int[], $3::bigint[], $4::int[], $5::int[], $6::bigint[]) AS u(i, s, f, t, z)`,
      [
        String(jobId),
        '{' + moves.map((_, i) => i + 1).join(',') + '}',
        '{' + moves.map((m) => m.shardId).join(',') + '}',
        '{' + moves.map((m) => m.sourceGroup).join(',') + '}',
        '{' + moves.map((m) => m.targetGroup).join(',') + '}',
        '{' + moves.map((m) => m.size).join(',') + '}',
      ],
    );
    await lockConn.query(`SELECT pg_catalog.pg_advisory_lock(${REBALANCE_LOCK_KEY}, $1::int)`, [String(jobId)]);
    const entry = { jobId, cancel: false, done: Promise.resolve() };
    entry.done = runJob(ctx, ddl, lockConn, jobId, moves, req.mode, entry).finally(() => {
      lockConn.close();
      running.delete(ctx.database);
    });
    running.set(ctx.database, entry);
    return jobId;
  } catch (err) {
    lockConn.close();
    throw err;
  }
}

async function runJob(ctx: OperationContext, ddl: ShardDefinitions, conn: InternalClient, jobId: number, moves: PlannedMove[], mode: TransferMode, entry: { cancel: boolean }): Promise<void> {
  // A stop from another coordinator arrives through the job row.
  const watch = setInterval(() => {
    conn
      .query('SELECT state FROM pgweave.rebalance_job WHERE job_id = $1', [String(jobId)])
      .then((r) => {
        if (r.rows[0]?.[0] === 'cancelling') entry.cancel = true;
      })
      .catch(() => {});
  }, 500);
  const checkCancelled = () => {
    if (entry.cancel) throw new RebalanceCancelled();
  };
  let final = 'finished';
  let message: string | null = null;
  try {
    await runMoves(ctx, ddl, moves, mode, async (i, state, err, blockedMs) => {
      await conn.query(
        `UPDATE pgweave.rebalance_task SET state = $3, message = $4, blocked_ms = $5,
           started_at = CASE WHEN $3 = 'running' THEN now() ELSE started_at END,
           finished_at = CASE WHEN $3 <> 'running' THEN now() ELSE finished_at END
         WHERE job_id = $1 AND task_id = $2`,
        [String(jobId), String(i + 1), err instanceof RebalanceCancelled ? 'cancelled' : state, err ? (err as Error).message : null, blockedMs === undefined ? null : String(blockedMs)],
      );
    }, checkCancelled);
  } catch (err) {
    final = err instanceof RebalanceCancelled ? 'cancelled' : 'failed';
    message = (err as Error).message;
  } finally {
    clearInterval(watch);
  }
  await conn.query(`UPDATE pgweave.rebalance_task SET state = 'cancelled' WHERE job_id = $1 AND state = 'runnable' AND $2 = 'cancelled'`, [String(jobId), final]).catch(() => {});
  await conn.query('UPDATE pgweave.rebalance_job SET state = $2, finished_at = now(), message = $3 WHERE job_id = $1', [String(jobId), final, message]).catch(() => {});
}

async function currentJobId(coordinator: Queryable): Promise<number | null> {
  const r = await coordinator.query(`SELECT max(job_id) FROM pgweave.rebalance_job WHERE state IN ('running', 'cancelling')`);
  return r.rows[0]?.[0] ? Number(r.rows[0][0]) : null;
}

/** Marks jobs whose process died (state running, lock free) as failed. */
async function reapDeadJobs(ctx: OperationContext): Promise<void> {
  const coordinator = coordinatorPool(ctx);
  const r = await coordinator.query(`SELECT job_id FROM pgweave.rebalance_job WHERE state IN ('running', 'cancelling')`);
  for (const [id] of r.rows) {
    if (running.get(ctx.database)?.jobId === Number(id)) continue;
    await coordinator.withClient(async (c) => {
      const got = await c.query(`SELECT pg_catalog.pg_try_advisory_lock(${REBALANCE_LOCK_KEY}, $1::int)`, [id]);
      if (got.rows[0]?.[0] !== 't') return;
      try {
        await c.query(`UPDATE pgweave.rebalance_job SET state = 'failed', finished_at = now(), message = 'the coordinator process running the job ended' WHERE job_id = $1`, [id]);
        await c.query(`UPDATE pgweave.rebalance_task SET state = 'error' WHERE job_id = $1 AND state = 'running'`, [id]);
      } finally {
        await c.query(`SELECT pg_catalog.pg_advisory_unlock(${REBALANCE_LOCK_KEY}, $1::int)`, [id]);
      }
    });
  }
}

export interface JobStatus {
  jobId: number;
  state: string;
  startedAt: string;
  finishedAt: string | null;
  message: string | null;
  tasks: { total: number; done: number; running: number; error: number };
  /** The longest time writes to a shard group were blocked at a cutover of this job (ms), null before the first. */
  longestBlockedMs: number | null;
}

export async function rebalanceStatus(ctx: OperationContext): Promise<JobStatus[]> {
  const coordinator = coordinatorPool(ctx);
  await ensureOperationsSchema(coordinator);
  await reapDeadJobs(ctx);
  const r = await coordinator.query(
    `SELECT j.job_id, j.state, j.started_at::text, j.finished_at::text, j.message,
            count(t.*), count(t.*) FILTER (WHERE t.state = 'done'), count(t.*) FILTER (WHERE t.state = 'running'), count(t.*) FILTER (WHERE t.state = 'error'),
            max(t.blocked_ms)
     FROM pgweave.rebalance_job j LEFT JOIN pgweave.rebalance_task t USING (job_id) GROUP BY j.job_id ORDER BY j.job_id`,
  );
  return r.rows.map((row) => ({
    jobId: Number(row[0]),
    state: row[1]!,
    startedAt: row[2]!,
    finishedAt: row[3],
    message: row[4],
    tasks: { total: Number(row[5]), done: Number(row[6]), running: Number(row[7]), error: Number(row[8]) },
    longestBlockedMs: row[9] === null ? null : Number(row[9]),
  }));
}

/** Asks the running job to stop; returns whether there was one. */
export async function stopRebalance(ctx: OperationContext): Promise<boolean> {
  const coordinator = coordinatorPool(ctx);
  await ensureOperationsSchema(coordinator);
  const local = running.get(ctx.database);
  if (local) local.cancel = true;
  const r = await coordinator.query(`UPDATE pgweave.rebalance_job SET state = 'cancelling' WHERE state = 'running' RETURNING job_id`);
  return r.rows.length > 0 || !!local;
}

/** Waits until no rebalance job runs; throws if the last one failed. */
export async function waitForRebalance(ctx: OperationContext): Promise<void> {
  const local = running.get(ctx.database);
  if (local) await local.done;
  for (;;) {
    const jobs = await rebalanceStatus(ctx);
    const last = jobs[jobs.length - 1];
    if (!last || (last.state !== 'running' && last.state !== 'cancelling')) {
      if (last?.state === 'failed') throw new PgError({ code: '55000', message: `rebalance job ${last.jobId} failed: ${last.message ?? ''}` });
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ProgressRow {
  jobId: number;
  taskId: number;
  shardId: number;
  tableName: string;
  shardSize: number;
  source: { host: string; port: number };
  target: { host: string; port: number };
  /** 0 waiting, 1 moving, 2 done (Citus's progress column). */
  progress: number;
  state: string;
}

/** The tasks of the most recent job. */
export async function rebalanceProgress(ctx: OperationContext): Promise<ProgressRow[]> {
  const coordinator = coordinatorPool(ctx);
  await ensureOperationsSchema(coordinator);
  const r = await coordinator.query(
    `SELECT t.job_id, t.task_id, t.shard_id, s.logicalrelid::regclass::text, t.shard_size, sn.nodename, sn.nodeport, tn.nodename, tn.nodeport, t.state
     FROM pgweave.rebalance_task t
     LEFT JOIN pgweave.shard s ON s.shardid = t.shard_id
     LEFT JOIN pgweave.node sn ON sn.groupid = t.source_group AND sn.noderole = 'primary'
     LEFT JOIN pgweave.node tn ON tn.groupid = t.target_group AND tn.noderole = 'primary'
     WHERE t.job_id = (SELECT max(job_id) FROM pgweave.rebalance_job) ORDER BY t.task_id`,
  );
  return r.rows.map((row) => ({
    jobId: Number(row[0]),
    taskId: Number(row[1]),
    shardId: Number(row[2]),
    tableName: row[3] ?? '',
    shardSize: Number(row[4]),
    source: { host: row[5] ?? '', port: Number(row[6]) },
    target: { host: row[7] ?? '', port: Number(row[8]) },
    progress: row[9] === 'done' ? 2 : row[9] === 'running' ? 1 : 0,
    state: row[9]!,
  }));
}
