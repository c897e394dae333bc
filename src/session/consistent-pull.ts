/**
 * Owns running a pull (rows of distributed tables copied into temporary
 * tables on the coordinator, pull-tables.ts) with consistent snapshots:
 * outside a block, one REPEATABLE READ transaction per node whose snapshot
 * is taken under the commit gate, ended (COMMIT, unread) after the pull; in
 * a READ COMMITTED block, the gate is held while the pull runs; in a
 * REPEATABLE READ block the block's own snapshots already are consistent.
 */
import { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import type { BackendLink } from '../executor/backend-link.js';
import type { WorkerNode } from '../metadata/types.js';
import type { PullTable } from '../planner/route.js';
import type { CommitGate } from '../transaction/commit-gate.js';
import { E_READY_UNREAD, sendSwallowed } from './txn-wire.js';

const SNAPSHOT_SQL = 'BEGIN ISOLATION LEVEL REPEATABLE READ\n;SELECT 1';

/** What the pull needs from the session's transaction (session-transaction.ts). */
export interface PullContext {
  inBlock: boolean;
  readCommitted: boolean;
  /** The commit gate, when the session wants atomic visibility. */
  gate(): CommitGate | null;
  /** The block now has temporary tables on the coordinator (it then cannot be prepared). */
  notePulledInBlock(): void;
  /** An error as the client must see it (a deadlock victim's cancellation becomes 40P01). */
  translated(err: PgError | null): PgError | null;
}

export async function runConsistentPull(
  ctx: PullContext,
  pulls: readonly PullTable[],
  linkFor: (node: WorkerNode) => Promise<BackendLink>,
  run: (linkFor: (node: WorkerNode) => Promise<BackendLink>) => Promise<PgError | null>,
): Promise<PgError | null> {
  const nodes = new Map<number, WorkerNode>();
  let shards = 0;
  for (const p of pulls) {
    const list = p.table.method === 'reference' ? p.table.shards.slice(0, 1) : p.table.shards;
    for (const s of list) {
      const n = s.placements[0]?.node;
      if (!n) continue;
      nodes.set(n.nodeId, n);
      shards++;
    }
  }
  const nodeList = [...nodes.values()];
  const groups = new Set(nodeList.map((n) => n.groupId));
  const gate = nodeList.length > 1 ? ctx.gate() : null;
  if (ctx.inBlock) {
    ctx.notePulledInBlock();
    if (!gate || !ctx.readCommitted) return ctx.translated(await run(linkFor));
    for (const n of nodeList) await linkFor(n);
    const batch = await gate.enterRead(groups);
    try {
      return ctx.translated(await run(linkFor));
    } finally {
      gate.leaveRead(batch);
    }
  }
  if (shards <= 1) return run(linkFor);
  const links = new Map<number, BackendLink>();
  for (const n of nodeList) links.set(n.nodeId, await linkFor(n));
  const batch = gate ? await gate.enterRead(groups) : null;
  let failure: PgError | null = null;
  try {
    failure = (await Promise.all([...links.values()].map((l) => sendSwallowed(l, SNAPSHOT_SQL)))).find((e) => e) ?? null;
  } finally {
    if (batch) gate!.leaveRead(batch);
  }
  const end = () => {
    for (const l of links.values()) if (!l.lost) l.send(encodeQuery('COMMIT'), [E_READY_UNREAD]);
  };
  if (failure) {
    end();
    return failure;
  }
  // Only the links holding the snapshots: a node whose link is lost fails the pull (a new
  // connection would read it with a snapshot of its own).
  const snapshotted = async (node: WorkerNode): Promise<BackendLink> => {
    const l = links.get(node.nodeId);
    if (!l || l.lost) throw new PgError({ code: '08006', message: `connection to the worker at ${node.host}:${node.port} was lost` });
    return l;
  };
  try {
    return await run(snapshotted);
  } finally {
    end();
  }
}
