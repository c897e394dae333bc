/**
 * The shard-operation cleanup job: every few seconds, for each database this
 * coordinator serves, removes what finished or dead operations left on the
 * nodes — subscriptions, replication slots (which would hold WAL for ever),
 * publications, half-copied tables, and the old shards of completed moves
 * (operations/cleanup.ts). Objects of operations still running are never
 * touched (their liveness lock is held). A failing round is retried at the
 * next tick.
 */
import type { NodePools } from '../pool/node-pools.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import { cleanupDatabase } from '../operations/cleanup.js';
import type { OperationConfig } from '../operations/context.js';

export class CleanupLoop {
  private readonly databases = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly pools: NodePools,
    private readonly metadata: MetadataCache,
    private readonly config: OperationConfig,
    private readonly intervalMs = 10_000,
  ) {}

  watch(database: string): void {
    this.databases.add(database);
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const database of this.databases) {
        await cleanupDatabase({ database, config: this.config, pools: this.pools, metadata: this.metadata }).catch(() => {});
      }
    } finally {
      this.running = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
