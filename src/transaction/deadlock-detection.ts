/**
 * Distributed deadlock detection.
 *
 * PostgreSQL finds deadlocks among the backends of one server. A distributed
 * transaction T1 that holds a row lock on node A and waits on node B for T2,
 * while T2 holds a lock on B and waits on A for T1, is two harmless-looking
 * waits to each server: nobody breaks the cycle. The detector builds the
 * wait-for graph of the whole cluster and cancels one transaction per cycle.
 *
 * Tagging. Every worker backend that takes part in a distributed
 * transaction holds a transaction-level shared advisory lock
 * (classid TAG_LOCK_KEY, objid = the transaction's tag), taken with the
 * statement that joins the backend to the transaction. pg_locks then maps a
 * backend pid to its distributed transaction on every node, whichever
 * coordinator process runs it and whichever pooled connection it uses; the
 * lock vanishes with the transaction. (application_name would do too, but a
 * SET of it sends a ParameterStatus to the client through the forwarded
 * stream, and pooled connections change hands between transactions.)
 *
 * A round: on every node, the waiting backends (`wait_event_type = 'Lock'`)
 * with `pg_blocking_pids()`, each side mapped to its tag. Vertices are
 * distributed transactions (tagged backends) or, for untagged ones, the
 * backend itself; edges are the waits, labelled with their node. A cycle
 * whose edges lie on at least two nodes is a distributed deadlock (cycles on
 * one node are PostgreSQL's to break). Observations of different nodes are
 * not simultaneous, so a cycle is acted upon only when a second round,
 * moments later, sees it again. The victim is the youngest transaction of
 * the cycle (latest transaction start on its nodes; ties: higher tag) — every
 * coordinator process computes the same victim, and only the process that
 * runs it cancels it: it marks the session (whose client then gets 40P01
 * "canceling the transaction since it was involved in a distributed
 * deadlock" instead of the 57014 of the cancel) and runs pg_cancel_backend on
 * the victim's waiting backend. A cycle whose victim belongs to no process
 * that acts on it (say, a coordinator that lost its connections) is broken by
 * whoever still sees it three rounds later.
 */
import { randomInt } from 'node:crypto';
import type { NodePools } from '../pool/node-pools.js';

/** classid of the transaction tag advisory locks ('pgwt'). */
export const TAG_LOCK_KEY = 0x70677774;

export const DEADLOCK_MESSAGE = 'canceling the transaction since it was involved in a distributed deadlock';

/** A new distributed transaction tag (random: unique enough among concurrent transactions of all coordinators). */
export function newTransactionTag(): number {
  return randomInt(1, 2 ** 31 - 1);
}

/** The statement that tags a worker backend with its distributed transaction (inside the transaction). */
export function tagSql(tag: number): string {
  return `SELECT pg_catalog.pg_advisory_xact_lock_shared(${TAG_LOCK_KEY}, ${tag})`;
}

/** tagSql as one text for every transaction, the tag its int4 parameter (a worker's prepared statement). */
export function tagStatement(tag: number): { sql: string; paramTypes: readonly number[]; params: readonly string[] } {
  return { sql: TAG_STATEMENT_SQL, paramTypes: INT4_PARAM, params: [String(tag)] };
}

const TAG_STATEMENT_SQL = `SELECT pg_catalog.pg_advisory_xact_lock_shared(${TAG_LOCK_KEY}, $1)`;
/** The type oid of int4. */
const INT4_PARAM: readonly number[] = [23];

/** What the detector can do to a distributed transaction of this process. */
export interface TransactionHandle {
  /** Marks the transaction as the victim of a deadlock (its next cancellation error becomes 40P01). */
  markVictim(detail: string): void;
}

const registry = new Map<number, TransactionHandle>();

export function registerTransaction(tag: number, handle: TransactionHandle): void {
  registry.set(tag, handle);
}

export function unregisterTransaction(tag: number): void {
  registry.delete(tag);
}

/** Open distributed transactions of this process. */
export function openTransactionCount(): number {
  return registry.size;
}

export interface LockNode {
  nodeId: number;
  groupId: number;
  host: string;
  port: number;
}

/** One backend waiting for another, on one node. */
export interface LockWait {
  nodeId: number;
  node: string;
  waitingPid: number;
  blockingPid: number;
  /** Distributed transaction tags (null: a backend not in a distributed transaction). */
  waitingTag: number | null;
  blockingTag: number | null;
  waitingXactStart: number | null;
  blockingXactStart: number | null;
  waitingStatement: string | null;
  blockingStatement: string | null;
}

const WAITS_SQL = `
WITH waiting AS (
  SELECT a.pid, a.xact_start, a.query, pg_catalog.pg_blocking_pids(a.pid) AS blockers
    FROM pg_catalog.pg_stat_activity a
   WHERE a.wait_event_type = 'Lock' AND a.datname = pg_catalog.current_database()
), tags AS (
  SELECT l.pid, l.objid::bigint AS tag
    FROM pg_catalog.pg_locks l
   WHERE l.locktype = 'advisory' AND l.classid = ${TAG_LOCK_KEY}::oid AND l.objsubid = 2 AND l.granted AND l.pid IS NOT NULL
     AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
)
SELECT w.pid, b.pid, wt.tag, bt.tag,
       extract(epoch FROM w.xact_start) * 1000, extract(epoch FROM ba.xact_start) * 1000,
       w.query, ba.query
  FROM waiting w
  CROSS JOIN LATERAL unnest(w.blockers) AS b(pid)
  LEFT JOIN pg_catalog.pg_stat_activity ba ON ba.pid = b.pid
  LEFT JOIN tags wt ON wt.pid = w.pid
  LEFT JOIN tags bt ON bt.pid = b.pid
 WHERE b.pid <> 0`;

/** How long a node may take to list its waits before the round goes on without it. */
const NODE_TIMEOUT_MS = 5000;

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timeout')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The lock waits on every node (nodes that do not answer, or not in time, are left out). */
export async function collectLockWaits(pools: NodePools, nodes: readonly LockNode[], database: string): Promise<LockWait[]> {
  const perNode = await Promise.all(
    nodes.map(async (n) => {
      try {
        const r = await within(pools.get(n.host, n.port, database).query(WAITS_SQL), NODE_TIMEOUT_MS);
        return r.rows.map(
          (row): LockWait => ({
            nodeId: n.nodeId,
            node: `${n.host}:${n.port}`,
            waitingPid: Number(row[0]),
            blockingPid: Number(row[1]),
            waitingTag: row[2] === null ? null : Number(row[2]),
            blockingTag: row[3] === null ? null : Number(row[3]),
            waitingXactStart: row[4] === null ? null : Number(row[4]),
            blockingXactStart: row[5] === null ? null : Number(row[5]),
            waitingStatement: row[6],
            blockingStatement: row[7],
          }),
        );
      } catch {
        return [];
      }
    }),
  );
  return perNode.flat();
}

export interface DeadlockCycle {
  /** Vertex keys in cycle order. */
  vertices: string[];
  /** The edges of the cycle (one wait each). */
  waits: LockWait[];
  /** The transaction to cancel and where its blocked backend waits. */
  victim: { tag: number; nodeId: number; node: string; pid: number };
  /** A stable identity of the cycle across rounds. */
  key: string;
}

function vertexOf(tag: number | null, node: string, pid: number): string {
  return tag !== null ? `t${tag}` : `b${node}/${pid}`;
}

/**
 * The distributed cycles of a wait-for graph: simple cycles with at least
 * one tagged transaction and edges on at least two nodes, one per set of
 * vertices, each with its victim (the youngest tagged transaction).
 */
export function findDeadlocks(waits: readonly LockWait[]): DeadlockCycle[] {
  const out = new Map<string, Array<LockWait>>();
  const adjacency = new Map<string, LockWait[]>();
  for (const w of waits) {
    const from = vertexOf(w.waitingTag, w.node, w.waitingPid);
    const to = vertexOf(w.blockingTag, w.node, w.blockingPid);
    if (from === to) continue; // a transaction's own backends do not wait for each other across nodes
    let list = adjacency.get(from);
    if (!list) adjacency.set(from, (list = []));
    list.push(w);
  }
  const target = (w: LockWait) => vertexOf(w.blockingTag, w.node, w.blockingPid);
  // Simple DFS from every vertex; graphs are small (waiting backends only).
  const vertices = [...adjacency.keys()].sort();
  for (const start of vertices) {
    const path: LockWait[] = [];
    const onPath = new Set<string>([start]);
    const visit = (v: string, depth: number): void => {
      if (depth > 32) return;
      for (const w of adjacency.get(v) ?? []) {
        const next = target(w);
        if (next === start) {
          const cycle = [...path, w];
          const key = cycle.map((e) => vertexOf(e.waitingTag, e.node, e.waitingPid)).sort().join(',');
          if (!out.has(key)) out.set(key, cycle);
          continue;
        }
        if (onPath.has(next) || next < start) continue; // each cycle once, from its smallest vertex
        onPath.add(next);
        path.push(w);
        visit(next, depth + 1);
        path.pop();
        onPath.delete(next);
      }
    };
    visit(start, 0);
  }
  const cycles: DeadlockCycle[] = [];
  for (const [key, cycle] of out) {
    if (new Set(cycle.map((w) => w.node)).size < 2) continue;
    // The youngest tagged transaction: the latest start among its backends' earliest.
    const starts = new Map<number, number>();
    const note = (tag: number | null, start: number | null) => {
      if (tag === null) return;
      const s = start ?? 0;
      starts.set(tag, Math.min(starts.get(tag) ?? Infinity, s));
    };
    for (const w of waits) {
      note(w.waitingTag, w.waitingXactStart);
      note(w.blockingTag, w.blockingXactStart);
    }
    const tagged = cycle.filter((w) => w.waitingTag !== null);
    if (tagged.length === 0) continue;
    let victimWait = tagged[0]!;
    for (const w of tagged) {
      const a = starts.get(w.waitingTag!) ?? 0;
      const b = starts.get(victimWait.waitingTag!) ?? 0;
      if (a > b || (a === b && w.waitingTag! > victimWait.waitingTag!)) victimWait = w;
    }
    cycles.push({
      vertices: cycle.map((w) => vertexOf(w.waitingTag, w.node, w.waitingPid)),
      waits: cycle,
      victim: { tag: victimWait.waitingTag!, nodeId: victimWait.nodeId, node: victimWait.node, pid: victimWait.waitingPid },
      key,
    });
  }
  return cycles;
}

/** A description of a cycle for the victim's error detail. */
export function describeCycle(c: DeadlockCycle): string {
  return c.waits
    .map((w) => `transaction ${w.waitingTag ?? `(backend ${w.waitingPid})`} waits on ${w.node} for transaction ${w.blockingTag ?? `(backend ${w.blockingPid})`}`)
    .join('; ');
}

/**
 * Acts on a confirmed cycle: cancels the victim if it runs in this process
 * (or if `force`), returning whether a cancellation was sent.
 */
export async function breakDeadlock(pools: NodePools, nodes: readonly LockNode[], database: string, c: DeadlockCycle, force: boolean): Promise<boolean> {
  const handle = registry.get(c.victim.tag);
  if (!handle && !force) return false;
  handle?.markVictim(describeCycle(c));
  const node = nodes.find((n) => n.nodeId === c.victim.nodeId);
  if (!node) return false;
  await pools.get(node.host, node.port, database).query(`SELECT pg_catalog.pg_cancel_backend(${c.victim.pid | 0})`);
  return true;
}
