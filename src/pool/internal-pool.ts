/**
 * A small pool of InternalClients to one node as the internal role. Queries
 * take an idle client, open a new one while under the cap, or wait for one.
 */
import { connectBackend, type BackendConnectOptions } from './backend-connection.js';
import { InternalClient, type QueryResult } from './internal-client.js';

export class InternalPool {
  private readonly idle: InternalClient[] = [];
  private readonly waiters: Array<(c: InternalClient) => void> = [];
  private open = 0;
  private closed = false;

  constructor(
    readonly options: BackendConnectOptions,
    private readonly maxSize = 4,
  ) {}

  async query(sql: string, params?: ReadonlyArray<string | null>): Promise<QueryResult> {
    const client = await this.acquire();
    try {
      return await client.query(sql, params);
    } finally {
      this.release(client);
    }
  }

  /** Runs fn with one client held for its duration (several statements on one connection). */
  async withClient<T>(fn: (c: InternalClient) => Promise<T>): Promise<T> {
    const client = await this.acquire();
    try {
      return await fn(client);
    } finally {
      this.release(client);
    }
  }

  async acquire(): Promise<InternalClient> {
    if (this.closed) throw new Error('internal pool is closed');
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (!c.closed) return c;
      this.open--;
    }
    if (this.open < this.maxSize) {
      this.open++;
      try {
        return new InternalClient(await connectBackend(this.options));
      } catch (err) {
        this.open--;
        throw err;
      }
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(client: InternalClient): void {
    if (client.closed) {
      this.open--;
      // a waiter gets a fresh connection
      const w = this.waiters.shift();
      if (w) this.acquire().then(w, () => {});
      return;
    }
    const w = this.waiters.shift();
    if (w) w(client);
    else if (this.closed) client.close();
    else this.idle.push(client);
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.close();
  }
}
