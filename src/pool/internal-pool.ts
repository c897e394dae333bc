/**
 * A small pool of InternalClients to one node as the internal role. Queries
 * take an idle client, open a new one while under the cap, or wait for one.
 *
 * A waiter always settles: it gets a released client, or — when a slot
 * frees up because the released client was lost (the node crashed) or a
 * connection attempt failed — a fresh connection or that attempt's class-08
 * error; the pool's close rejects whoever still waits. (A waiter left behind
 * would hang its caller for good: the recovery round and every reader
 * waiting for it at the commit gate, a catalog load, a client's login.)
 */
import { connectBackend, type BackendConnectOptions } from './backend-connection.js';
import { InternalClient, type QueryResult } from './internal-client.js';
import { PgError } from '../protocol/errors.js';

interface Waiter {
  resolve(c: InternalClient): void;
  reject(err: unknown): void;
}

export class InternalPool {
  private readonly idle: InternalClient[] = [];
  private readonly waiters: Waiter[] = [];
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
    if (this.closed) throw closedError();
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
        this.wakeWaiter(); // its slot is free again: a waiter tries in turn (and fails alike while the node is down)
        throw err;
      }
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  release(client: InternalClient): void {
    if (client.closed) {
      this.open--;
      this.wakeWaiter();
      return;
    }
    const w = this.waiters.shift();
    if (w) w.resolve(client);
    else if (this.closed) client.close();
    else this.idle.push(client);
  }

  /** The first waiter gets a fresh connection (the caller freed a slot), or the error of opening it. */
  private wakeWaiter(): void {
    const w = this.waiters.shift();
    if (w) this.acquire().then(w.resolve, w.reject);
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.close();
    for (const w of this.waiters.splice(0)) w.reject(closedError());
  }
}

function closedError(): PgError {
  return new PgError({ code: '57P01', message: 'the coordinator is shutting down: its internal connections are closed' });
}
