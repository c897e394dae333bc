/**
 * The shape every per-database background loop shares: databases join as
 * sessions use them, and every `intervalMs` one round runs `work` for each
 * of them in turn — quietly: a failing database is retried at the next
 * tick, and a round still running when the next tick comes skips it.
 */
export class DatabaseLoop {
  private readonly databases = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly intervalMs: number,
    private readonly work: (database: string) => Promise<unknown>,
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
      for (const database of this.databases) await this.work(database).catch(() => {});
    } finally {
      this.running = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
