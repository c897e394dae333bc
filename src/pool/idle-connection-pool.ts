/**
 * Idle connections to workers, shared by client sessions between
 * transactions (DESIGN.md decision 9: keyed by node, database and role, so a
 * connection only ever serves the role it authenticated as). A session takes
 * one when it first needs a node and gives it back once it is idle outside a
 * transaction block; worker-side prepared statements travel with it (their
 * names are unique per process). Connections idle for too long are closed.
 */
import type { BackendConnection } from './backend-connection.js';
import { encodeTerminate } from './frontend-encoders.js';

export interface IdleConnection {
  conn: BackendConnection;
  /** Names of the worker-side prepared statements on this connection. */
  prepared: Set<string>;
  idleSince: number;
}

export function connectionKey(host: string, port: number, database: string, user: string): string {
  return `${host}\u0000${port}\u0000${database}\u0000${user}`;
}

export class IdleConnectionPool {
  private readonly idle = new Map<string, IdleConnection[]>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxIdlePerKey = 16,
    private readonly idleTimeoutMs = 60_000,
  ) {
    this.timer = setInterval(() => this.expire(), Math.min(idleTimeoutMs, 10_000));
    this.timer.unref();
  }

  take(key: string): IdleConnection | null {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const c = list.pop()!;
      c.conn.socket.removeListener('error', noop);
      if (!c.conn.socket.destroyed) return c;
    }
    return null;
  }

  give(key: string, conn: BackendConnection, prepared: Set<string>): void {
    if (conn.socket.destroyed) return;
    let list = this.idle.get(key);
    if (!list) {
      list = [];
      this.idle.set(key, list);
    }
    if (list.some((c) => c.conn === conn)) return; // already idle here: never hand one connection out twice
    if (list.length >= this.maxIdlePerKey) {
      conn.socket.end(encodeTerminate());
      return;
    }
    // An idle socket's error (a reset by a stopping server, a write after close) must not be an unhandled 'error' event.
    conn.socket.on('error', noop);
    list.push({ conn, prepared, idleSince: Date.now() });
  }

  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  private expire(): void {
    const cutoff = Date.now() - this.idleTimeoutMs;
    for (const [key, list] of this.idle) {
      const keep = list.filter((c) => c.idleSince >= cutoff && !c.conn.socket.destroyed);
      for (const c of list) if (!keep.includes(c)) c.conn.socket.end(encodeTerminate());
      if (keep.length === 0) this.idle.delete(key);
      else this.idle.set(key, keep);
    }
  }

  close(): void {
    clearInterval(this.timer);
    for (const list of this.idle.values()) for (const c of list) c.conn.socket.end(encodeTerminate());
    this.idle.clear();
  }
}

function noop(): void {}
