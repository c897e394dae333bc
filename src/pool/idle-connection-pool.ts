/**
 * Idle connections to workers, shared by client sessions between
 * transactions (DESIGN.md decision 9: keyed by node, database and role, so a
 * connection only ever serves the role it authenticated as). A session takes
 * one when it first needs a node and gives it back once it is idle outside a
 * transaction block; worker-side prepared statements travel with it (their
 * names are unique per process). Connections idle for too long are closed.
 *
 * Parked connections: a session between transactions may keep its link
 * (listeners, prepared statements, no pool round trip at its next block)
 * while offering it to others (`park`). A session that finds no idle
 * connection claims the longest-parked one instead of opening a new one:
 * `claim` makes its holder let go (false: the holder is using it again).
 * The holder takes it back with `withdraw`. So connections are shared as
 * before when sessions outnumber them, and a busy session keeps its own.
 */
import type { BackendConnection } from './backend-connection.js';
import { encodeTerminate } from './frontend-encoders.js';

export interface IdleConnection {
  conn: BackendConnection;
  /** Names of the worker-side prepared statements on this connection. */
  prepared: Set<string>;
  idleSince: number;
  /** A parked connection's holder lets go of it (false: it cannot now, the entry is dropped). */
  claim?: () => boolean;
}

export function connectionKey(host: string, port: number, database: string, user: string): string {
  return `${host}\u0000${port}\u0000${database}\u0000${user}`;
}

export class IdleConnectionPool {
  private readonly idle = new Map<string, IdleConnection[]>();
  /** Parked connections per key, longest-parked first. */
  private readonly parked = new Map<string, Set<IdleConnection>>();
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
    // No idle one: the longest-parked connection whose holder lets go of it.
    const parked = this.parked.get(key);
    if (parked) {
      for (const c of parked) {
        parked.delete(c);
        if (!c.conn.socket.destroyed && c.claim!()) {
          c.claim = undefined;
          return c;
        }
      }
    }
    return null;
  }

  /**
   * Offers a connection its session keeps holding (see the module comment);
   * returns the entry to `withdraw` it with.
   */
  park(key: string, conn: BackendConnection, prepared: Set<string>, claim: () => boolean): IdleConnection {
    let set = this.parked.get(key);
    if (!set) {
      set = new Set();
      this.parked.set(key, set);
    }
    const entry: IdleConnection = { conn, prepared, idleSince: Date.now(), claim };
    set.add(entry);
    return entry;
  }

  /** The holder of a parked connection uses it again; false when another session claimed it already. */
  withdraw(key: string, entry: IdleConnection): boolean {
    return this.parked.get(key)?.delete(entry) ?? false;
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
    // A connection parked for that long is taken from its holder (an idle session holds none for ever).
    for (const [key, set] of this.parked) {
      for (const c of set) {
        if (c.idleSince >= cutoff) continue;
        set.delete(c);
        if (c.claim!()) c.conn.socket.end(encodeTerminate());
      }
      if (set.size === 0) this.parked.delete(key);
    }
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
    // Parked connections belong to their sessions, which close them.
    this.parked.clear();
  }
}

function noop(): void {}
