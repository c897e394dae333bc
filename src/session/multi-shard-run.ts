/**
 * Runs the tasks of a multi-shard statement over the session's connections,
 * with Citus's slow start (executor/slow-start.ts): each node starts on the
 * session's own connection and gains more while tasks wait.
 *
 * How the statement is wrapped, by case:
 * - inside the client's block: every connection joins the block (extra
 *   connections too, REPEATABLE READ ones importing the block's snapshot of
 *   that node); shard groups keep their connection for the rest of the block
 *   (affinity, SessionTransaction); the block's COMMIT/ROLLBACK ends them all.
 * - a write outside a block: a block of its own on every connection, one
 *   connection → one-phase commit, several → two-phase commit;
 * - a read of several shards outside a block: one REPEATABLE READ
 *   transaction per connection; a node's first connection takes the snapshot
 *   (under the commit gate when several nodes are read) and exports it, the
 *   node's extra connections import it, so every shard of the statement is
 *   read from the snapshots taken together.
 * Extra connections of a statement outside a block go back to the pool
 * afterwards (or are closed when the session's SETs live on them).
 *
 * The first failing task stops the rest: nothing more starts, running tasks
 * on other connections are cancelled, and that first error is the answer —
 * except for a multi-row INSERT … VALUES (`errorInTaskOrder`), whose answer
 * is its first task's error in VALUES order (as PostgreSQL's), whatever
 * answers first.
 * (A cancel request is asynchronous: the statement waits until the
 * postmaster has taken every cancel it sent — `BackendLink.settled` — so
 * none lands on the ROLLBACK or on a later statement, and a connection with
 * a cancel in flight never goes back to the pool.)
 */
import { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { Completes, type BackendLink, type Expectation } from '../executor/backend-link.js';
import { byOrdinal, collectOnLink, decodeDataRow, queryOnLink, tagCount, type CollectedResult } from '../executor/link-query.js';
import { runNodeTasks, slowStartSettings } from '../executor/slow-start.js';
import { quoteLiteral } from '../sql/quote.js';
import type { WorkerNode } from '../metadata/types.js';
import type { Route } from '../planner/route.js';
import type { CommitGate, GateBatch } from '../transaction/commit-gate.js';
import type { CommitNode } from '../transaction/distributed-commit.js';
import { tagStatement } from '../transaction/deadlock-detection.js';
import { runPreparedBatch, type BatchStatement } from './prepared-batch.js';
import { encodeTaskWithParams } from './extended-encoders.js';

const E_READY_SWALLOW: Expectation = { completes: Completes.Ready, forward: false, collect: false };
const SNAPSHOT_SQL = 'BEGIN ISOLATION LEVEL REPEATABLE READ\n;SELECT 1';
const SNAPSHOT_EXPORT_SQL = 'BEGIN ISOLATION LEVEL REPEATABLE READ\n;SELECT pg_catalog.pg_export_snapshot()';

/** What the statement needs from the session's transaction (session-transaction.ts). */
export interface TaskRunContext {
  readonly inBlock: boolean;
  readonly settings: ReadonlyMap<string, string>;
  /** The commit gate for atomic visibility, or null. */
  gate(): CommitGate | null;
  /** Whether a READ COMMITTED block should hold the gate until every task started. */
  holdGateInBlock(route: Extract<Route, { kind: 'multi-shard' }>): boolean;
  ensureTag(): number;
  translate(err: PgError): PgError | null;
  commitNode(link: BackendLink): CommitNode;
  commitMultiNode(written: BackendLink[]): Promise<void>;
  /** Ends the statement's own distributed transaction (tag, victim). */
  endOwnTransaction(): void;
  /** A new connection to the node as the client (sets replayed), outside any block. */
  openExtra(node: WorkerNode): Promise<BackendLink>;
  releaseExtra(node: WorkerNode, link: BackendLink): void;
  /** In a block: whether extra connections may join it, and joins one (null: it could not). */
  blockAllowsExtras(): boolean;
  joinExtra(node: WorkerNode, link: BackendLink, snapshot: string | null): Promise<boolean>;
  /** In a REPEATABLE READ block: the node's block snapshot, exported from its first connection. */
  blockSnapshot(node: WorkerNode, first: BackendLink): Promise<string | null>;
  /** In a block: the connection a shard group is bound to, and recording a use. */
  affinity(node: WorkerNode, shardIds: readonly number[]): BackendLink | null;
  noteAccess(link: BackendLink, node: WorkerNode, shardIds: readonly number[]): void;
}

/** A write's own block on a connection: BEGIN and the deadlock tag, as prepared statements (prepared-batch.ts). */
function ownBlockOpening(tag: number): BatchStatement[] {
  return [{ sql: 'BEGIN' }, tagStatement(tag)];
}

function sendSwallowed(link: BackendLink, sql: string): Promise<PgError | null> {
  return new Promise((resolve) => link.send(encodeQuery(sql), [{ ...E_READY_SWALLOW, done: (err) => resolve(err) }]));
}

/** collectOnLink, calling onStart at the first reply message (the statement has its snapshot by then). */
function collectTask(link: BackendLink, bytes: Buffer, onStart: (() => void) | null): Promise<CollectedResult> {
  const result = collectOnLink(link, bytes);
  const inner = link.collector;
  if (onStart && inner) {
    let fired = false;
    link.collector = (type, buf, start, end) => {
      if (!fired) {
        fired = true;
        onStart();
      }
      inner(type, buf, start, end);
    };
  }
  return result;
}

interface NodeGroup {
  node: WorkerNode;
  tasks: number[];
  first: BackendLink;
  extras: BackendLink[];
  /** Outside a block: the snapshot the node's extra connections import. */
  snapshot: Promise<string | null> | null;
}

export async function runMultiShardTasks(
  ctx: TaskRunContext,
  route: Extract<Route, { kind: 'multi-shard' }>,
  bindBytes: Buffer | null,
  linkFor: (node: WorkerNode, isWrite: boolean) => Promise<BackendLink>,
): Promise<CollectedResult> {
  const { inBlock } = ctx;
  const byNode = new Map<number, NodeGroup>();
  const order: NodeGroup[] = [];
  for (let i = 0; i < route.tasks.length; i++) {
    const node = route.tasks[i]!.node;
    let g = byNode.get(node.nodeId);
    if (!g) {
      g = { node, tasks: [], first: null as unknown as BackendLink, extras: [], snapshot: null };
      byNode.set(node.nodeId, g);
      order.push(g);
    }
    g.tasks.push(i);
  }
  const multiNode = order.length > 1;
  const ownBlock = !inBlock && route.isWrite;
  const readWrap = !inBlock && !route.isWrite && route.tasks.length > 1;
  const settings = slowStartSettings(ctx.settings);
  const mayGrow = (g: NodeGroup) => g.tasks.length > 1 && settings.maxPoolSize > 1 && (!inBlock || ctx.blockAllowsExtras());
  for (const g of order) g.first = await linkFor(g.node, route.isWrite);
  const gate = multiNode && !route.isWrite ? ctx.gate() : null;

  let heldUntilStarted: GateBatch | null = null;
  let snapshotsTaken: Promise<Array<PgError | null>> | null = null;
  if (ownBlock) {
    const tag = ctx.ensureTag();
    for (const g of order) {
      void runPreparedBatch(g.first, ownBlockOpening(tag), false);
    }
  } else if (readWrap) {
    const batch = gate ? await gate.enterRead(new Set(order.map((g) => g.node.groupId))) : null;
    snapshotsTaken = Promise.all(order.map(async (g) => {
      if (!mayGrow(g)) return sendSwallowed(g.first, SNAPSHOT_SQL);
      const r = collectOnLink(g.first, encodeQuery(SNAPSHOT_EXPORT_SQL));
      g.snapshot = r.then((x) => (x.error || x.rows.length === 0 ? null : decodeDataRow(x.rows[0]!)[0] ?? null));
      return (await r).error;
    }));
    if (batch) void snapshotsTaken.finally(() => gate!.leaveRead(batch));
  } else if (inBlock && gate && ctx.holdGateInBlock(route)) {
    heldUntilStarted = await gate.enterRead(new Set(order.map((g) => g.node.groupId)));
  }

  // READ COMMITTED blocks: the gate is held until every task has started (has its snapshot).
  let notStarted = route.tasks.length;
  const startedTask = new Array<boolean>(route.tasks.length).fill(false);
  const started = (i: number) => {
    if (startedTask[i]) return;
    startedTask[i] = true;
    if (--notStarted === 0 && heldUntilStarted) {
      gate!.leaveRead(heldUntilStarted);
      heldUntilStarted = null;
    }
  };

  const results = new Array<CollectedResult | null>(route.tasks.length).fill(null);
  const control = { stopped: false };
  let firstError: PgError | null = null;
  // A multi-row INSERT answers with the error of its first failing task — its tasks come in the order
  // of their first VALUES rows — not of the first to arrive: every task runs to its answer (nothing is
  // cancelled; the statement rolls back anyway), except the later tasks of a connection whose
  // transaction a failure aborted (they come after that failure: a connection takes its tasks in order).
  const firstInOrder = route.errorInTaskOrder === true;
  let failedTask = -1;
  /** The task whose error `firstError` is (its text tells the error's position). */
  let errorTask = -1;
  const aborted = new Set<BackendLink>();
  const allLinks = (): BackendLink[] => order.flatMap((g) => [g.first, ...g.extras]);
  const used = new Set<BackendLink>();
  const run = async (g: NodeGroup, link: BackendLink, i: number): Promise<boolean> => {
    const task = route.tasks[i]!;
    if (aborted.has(link)) return true;
    used.add(link);
    if (inBlock) {
      ctx.noteAccess(link, g.node, task.shardIds);
      if (route.isWrite) link.wroteInTransaction = true;
    }
    const bytes = bindBytes ? encodeTaskWithParams(task.sql, bindBytes) : encodeQuery(task.sql);
    const r = await collectTask(link, bytes, heldUntilStarted ? () => started(i) : null);
    started(i);
    results[i] = r;
    if (!r.error) return true;
    if (firstInOrder) {
      aborted.add(link);
      if (failedTask < 0 || i < failedTask) {
        failedTask = i;
        errorTask = i;
        firstError = r.error;
      }
      return true;
    }
    if (!firstError) {
      firstError = r.error;
      errorTask = i;
      // Fail fast: what still runs elsewhere is cancelled (its own error is not the answer).
      for (const l of used) if (l !== link && l.pending > 0) l.cancel();
    }
    return false;
  };
  const openExtra = async (g: NodeGroup): Promise<BackendLink | null> => {
    let link: BackendLink;
    try {
      link = await ctx.openExtra(g.node);
    } catch {
      return null;
    }
    let ok: boolean;
    if (inBlock) {
      ok = await ctx.joinExtra(g.node, link, g.snapshot ? await g.snapshot : null);
      if (ok) g.extras.push(link);
      return ok ? link : null;
    }
    if (ownBlock) {
      ok = (await runPreparedBatch(link, ownBlockOpening(ctx.ensureTag()), false)).error === null;
    } else if (readWrap) {
      const snapshot = await g.snapshot;
      ok = snapshot !== null && (await sendSwallowed(link, `BEGIN ISOLATION LEVEL REPEATABLE READ\n;SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`)) === null;
    } else {
      ok = true;
    }
    if (!ok) {
      if (!link.lost && link.status !== 0x49) await queryOnLink(link, 'ROLLBACK');
      ctx.releaseExtra(g.node, link);
      return null;
    }
    g.extras.push(link);
    return link;
  };

  try {
    await Promise.all(order.map(async (g) => {
      const pinned = new Map<BackendLink, number[]>();
      const free: number[] = [];
      for (const i of g.tasks) {
        const bound = inBlock ? ctx.affinity(g.node, route.tasks[i]!.shardIds) : null;
        if (!bound) {
          free.push(i);
          continue;
        }
        const list = pinned.get(bound) ?? [];
        list.push(i);
        pinned.set(bound, list);
      }
      const grow = mayGrow(g) && free.length > 0;
      // The snapshot is exported (its reply collected) before any task shares the connection's collector.
      if (inBlock && grow) g.snapshot = Promise.resolve(await ctx.blockSnapshot(g.node, g.first));
      else if (g.snapshot) await g.snapshot;
      await runNodeTasks(
        { first: g.first, pinned, free, open: () => (grow ? openExtra(g) : Promise.resolve(null)) },
        grow ? settings : { ...settings, maxPoolSize: 1, forceMax: false },
        (link, i) => run(g, link, i),
        control,
      );
    }));
  } finally {
    for (let i = 0; i < route.tasks.length; i++) started(i);
  }
  // Fail-fast cancels are delivered before anything else runs on these connections (a late one
  // would cancel the ROLLBACK below or the session's next statement).
  if (firstError) await Promise.all(allLinks().map((l) => l.settled()));

  const merged: CollectedResult = { rowDescription: null, rows: [], tag: '', error: null };
  // A node whose snapshot failed was not read consistently: the statement fails.
  if (snapshotsTaken) merged.error = (await snapshotsTaken).find((e) => e) ?? null;
  merged.error ??= firstError;
  // A task's text is the client's with shard names spliced in, or deparsed (no origin): its position maps back, or goes.
  if (merged.error !== null && merged.error === firstError) merged.errorOrigin = route.tasks[errorTask]?.origin ?? null;
  let count = 0;
  for (const r of results) {
    if (!r) continue;
    merged.rowDescription ??= r.rowDescription;
    for (const row of r.rows) merged.rows.push(row);
    count += tagCount(r.tag);
    if (!merged.tag) merged.tag = r.tag;
  }
  if (route.rowOrder && !merged.error) merged.rows = inValuesOrder(route.rowOrder, results) ?? merged.rows;
  if (route.ordinal && !merged.error) byOrdinal(merged);
  if (route.commandTag) merged.tag = route.commandTag === 'INSERT' ? `INSERT 0 ${count}` : `${route.commandTag} ${count}`;
  if (route.commandTag === '' && merged.rows.length > 0) {
    // reference table writes: every placement returns the same rows; keep one copy (the first node's)
    merged.rows = order[0]!.tasks.flatMap((i) => results[i]?.rows ?? []);
  }

  if (readWrap) {
    await Promise.all(order.map(async (g) => {
      if (!g.first.lost) g.first.send(encodeQuery('COMMIT'), [E_READY_SWALLOW]);
      for (const l of g.extras) {
        if (!l.lost) await sendSwallowed(l, 'COMMIT');
        ctx.releaseExtra(g.node, l);
      }
    }));
  } else if (ownBlock) {
    const links = allLinks();
    try {
      if (merged.error) {
        await Promise.all(links.map((l) => (l.lost ? null : queryOnLink(l, 'ROLLBACK'))));
      } else if (links.length === 1) {
        const r = await queryOnLink(links[0]!, 'COMMIT');
        if (r.error) merged.error = r.error;
      } else {
        try {
          await ctx.commitMultiNode(links);
        } catch (err) {
          for (const l of links) if (l.status !== 0x49 && !l.lost) await queryOnLink(l, 'ROLLBACK');
          merged.error = err instanceof PgError ? err : new PgError({ code: 'XX000', message: String(err) });
        }
      }
    } finally {
      merged.error = merged.error ? (ctx.translate(merged.error) ?? merged.error) : null;
      ctx.endOwnTransaction();
      for (const g of order) for (const l of g.extras) ctx.releaseExtra(g.node, l);
    }
    return merged;
  } else if (!inBlock) {
    for (const g of order) for (const l of g.extras) ctx.releaseExtra(g.node, l);
  }
  merged.error = merged.error ? (ctx.translate(merged.error) ?? merged.error) : null;
  return merged;
}

/**
 * The RETURNING rows of a multi-row INSERT in the order of the client's
 * VALUES list: task i returned one row for each of its rows (positions
 * `rowOrder[i]`, in order). Null when a task returned fewer rows (ON
 * CONFLICT DO NOTHING, DO UPDATE … WHERE, a trigger skipping rows): which
 * rows it skipped is not known, and the rows stay in task order.
 */
function inValuesOrder(rowOrder: number[][], results: ReadonlyArray<CollectedResult | null>): Buffer[] | null {
  const out: Buffer[] = [];
  for (let i = 0; i < rowOrder.length; i++) {
    const rows = results[i]?.rows;
    const at = rowOrder[i]!;
    if (!rows || rows.length !== at.length) return null;
    for (let j = 0; j < at.length; j++) out[at[j]!] = rows[j]!;
  }
  return out.length === rowOrder.reduce((n, x) => n + x.length, 0) ? out : null;
}
