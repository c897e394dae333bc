/**
 * The two-phase-commit recovery loop: every few seconds, for each database
 * this coordinator has served, resolve what a crash left behind (a prepared
 * transaction with a commit record is committed, one without is rolled
 * back; transactions in flight are never touched — see
 * transaction/recovery.ts). Runs quietly; a failing round is retried at the
 * next tick.
 */
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { recoverPreparedTransactions } from '../transaction/recovery.js';

export class RecoveryLoop {
  private readonly databases = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly pools: NodePools,
    private readonly config: { coordinator: NodeAddress },
    private readonly intervalMs = 5000,
  ) {}

  /** Databases with sessions join the loop. */
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
      for (const db of this.databases) {
        await recoverPreparedTransactions(this.pools, this.config, db).catch(() => {});
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
