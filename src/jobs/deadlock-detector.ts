/**
 * The distributed deadlock detector: every second (PostgreSQL's default
 * deadlock_timeout), for each database this coordinator serves while it has
 * distributed transactions open, build the cluster's wait-for graph, confirm
 * its distributed cycles with a second look a moment later, and cancel the
 * youngest transaction of each (transaction/deadlock-detection.ts). A cycle
 * is usually broken within one to two seconds of forming. Runs quietly; a
 * failing round is retried at the next tick.
 */
import type { NodePools } from '../pool/node-pools.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import type { NodeAddress } from '../metadata/types.js';
import {
  breakDeadlock,
  collectLockWaits,
  findDeadlocks,
  openTransactionCount,
  type DeadlockCycle,
  type LockNode,
} from '../transaction/deadlock-detection.js';

const CONFIRM_DELAY_MS = 150;
/** Rounds after which a cycle whose victim nobody cancelled is broken by whoever sees it. */
const FORCE_AFTER_ROUNDS = 3;

export class DeadlockDetector {
  private readonly databases = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Cycles seen in earlier rounds (key → rounds seen), per database. */
  private readonly seen = new Map<string, Map<string, number>>();
  /** Cancellations sent (for tests and monitoring). */
  cancelled = 0;

  constructor(
    private readonly pools: NodePools,
    private readonly metadata: MetadataCache,
    private readonly config: { coordinator: NodeAddress },
    private readonly intervalMs = 1000,
  ) {}

  watch(database: string): void {
    this.databases.add(database);
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async round(): Promise<void> {
    if (this.running) return;
    // Only a process with open distributed transactions can own a victim; others have nothing to do.
    if (openTransactionCount() === 0 && this.seen.size === 0) return;
    this.running = true;
    try {
      for (const db of this.databases) await this.roundFor(db).catch(() => {});
    } finally {
      this.running = false;
    }
  }

  private async nodesOf(database: string): Promise<LockNode[]> {
    const catalog = this.metadata.peek(database) ?? (await this.metadata.get(database));
    const nodes: LockNode[] = catalog.nodes.filter((n) => n.isActive).map((n) => ({ nodeId: n.nodeId, groupId: n.groupId, host: n.host, port: n.port }));
    return nodes;
  }

  private async roundFor(database: string): Promise<void> {
    const nodes = await this.nodesOf(database);
    if (nodes.length < 2) return;
    const first = findDeadlocks(await collectLockWaits(this.pools, nodes, database));
    const history = this.seen.get(database) ?? new Map<string, number>();
    if (first.length === 0) {
      this.seen.delete(database);
      return;
    }
    await new Promise((r) => setTimeout(r, CONFIRM_DELAY_MS));
    const confirmed = new Map<string, DeadlockCycle>(findDeadlocks(await collectLockWaits(this.pools, nodes, database)).map((c) => [c.key, c]));
    const next = new Map<string, number>();
    for (const c of first) {
      const again = confirmed.get(c.key);
      if (!again) continue;
      const rounds = (history.get(c.key) ?? 0) + 1;
      next.set(c.key, rounds);
      if (await breakDeadlock(this.pools, nodes, database, again, rounds >= FORCE_AFTER_ROUNDS).catch(() => false)) this.cancelled++;
    }
    if (next.size > 0) this.seen.set(database, next);
    else this.seen.delete(database);
  }
}
