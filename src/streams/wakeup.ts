/**
 * Wakes consumers waiting in `pgweave.poll(…, wait_ms => …)` when events are
 * published, without them polling the workers in a loop.
 *
 * Publishing transactions cannot NOTIFY themselves: a transaction that
 * touched several nodes is prepared for two-phase commit, and PostgreSQL
 * refuses PREPARE TRANSACTION after NOTIFY. So the coordinator that ran the
 * publish sends the notification itself, once the publish has committed:
 * it wakes its own waiters at once and sends `NOTIFY pgweave_streams, topic`
 * on the coordinator PostgreSQL, which every coordinator process LISTENs to
 * (one listener connection per process and database). Notifications for a
 * topic are coalesced: at most one NOTIFY is in flight per topic, followed
 * by one more if publishes happened meanwhile.
 *
 * A waiter is armed before the consumer reads, so a publish that commits
 * between the read and the wait is not missed. Publishes the coordinator
 * cannot see commit (plain INSERT/COPY, or pgweave.publish inside the
 * client's own transaction block) wake waiters at their next recheck.
 */
import { connectBackend } from '../pool/backend-connection.js';
import { InternalClient } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { quoteLiteral } from '../sql/quote.js';
import { STREAMS_CHANNEL } from './schema.js';
import { closeClientConnections } from './client-connections.js';

interface Listener {
  client: InternalClient | null;
  ready: Promise<void> | null;
  waiters: Map<string, Set<() => void>>;
}

export interface Waiter {
  /** Resolves on a publish to the topic, or after `timeoutMs`. */
  wait(timeoutMs: number): Promise<void>;
  cancel(): void;
}

export class StreamsWaker {
  private readonly listeners = new Map<string, Listener>();
  private readonly notifying = new Map<string, { again: boolean }>();
  private closed = false;

  constructor(
    private readonly pools: NodePools,
    private readonly coordinator: NodeAddress,
  ) {}

  private listener(database: string): Listener {
    let l = this.listeners.get(database);
    if (!l) {
      l = { client: null, ready: null, waiters: new Map() };
      this.listeners.set(database, l);
    }
    return l;
  }

  private ensureListening(database: string, l: Listener): Promise<void> {
    if (l.client && !l.client.closed) return Promise.resolve();
    l.ready ??= (async () => {
      const conn = await connectBackend({
        host: this.coordinator.host,
        port: this.coordinator.port,
        database,
        user: this.pools.internal.user,
        credentials: { password: this.pools.internal.password },
        params: [['application_name', 'pgweave streams listener']],
      });
      conn.socket.setKeepAlive(true, 10000);
      conn.socket.unref();
      const client = new InternalClient(conn);
      client.onNotification = (channel, payload) => {
        if (channel === STREAMS_CHANNEL) this.wakeLocal(database, payload);
      };
      conn.socket.on('close', () => {
        if (l.client === client) l.client = null;
        // Whoever waits may have missed something: let them look again.
        for (const set of l.waiters.values()) for (const w of [...set]) w();
      });
      await client.query(`LISTEN ${STREAMS_CHANNEL}`);
      if (this.closed) client.close();
      l.client = client;
    })().finally(() => {
      l.ready = null;
    });
    return l.ready;
  }

  /**
   * Registers interest in a topic before the caller reads, so nothing
   * published after the read is missed. Resolves once the listener is up.
   */
  async arm(database: string, topic: string): Promise<Waiter> {
    const l = this.listener(database);
    let fired = false;
    let wake: (() => void) | null = null;
    const callback = () => {
      fired = true;
      wake?.();
    };
    let set = l.waiters.get(topic);
    if (!set) {
      set = new Set();
      l.waiters.set(topic, set);
    }
    set.add(callback);
    const remove = () => {
      const s = l.waiters.get(topic);
      s?.delete(callback);
      if (s && s.size === 0) l.waiters.delete(topic);
    };
    try {
      await this.ensureListening(database, l);
    } catch {
      // Without a listener the waiter still times out and the consumer rechecks.
    }
    return {
      wait: (timeoutMs) =>
        new Promise<void>((resolve) => {
          if (fired || timeoutMs <= 0) {
            remove();
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            remove();
            resolve();
          }, timeoutMs);
          wake = () => {
            clearTimeout(timer);
            remove();
            resolve();
          };
        }),
      cancel: remove,
    };
  }

  private wakeLocal(database: string, topic: string): void {
    const set = this.listeners.get(database)?.waiters.get(topic);
    if (set) for (const w of [...set]) w();
  }

  /** A publish to `topic` has committed: wake waiters here and on every other coordinator. */
  published(database: string, topic: string): void {
    if (this.closed) return;
    this.wakeLocal(database, topic);
    const key = `${database}\u0000${topic}`;
    const state = this.notifying.get(key);
    if (state) {
      state.again = true;
      return;
    }
    const mine = { again: false };
    this.notifying.set(key, mine);
    const send = (): void => {
      let pool;
      try {
        pool = this.pools.get(this.coordinator.host, this.coordinator.port, database);
      } catch {
        this.notifying.delete(key);
        return;
      }
      // NOTIFY assigns a transaction id, so its commit would wait for a WAL flush: not needed for a wake-up.
      pool
        .query(`BEGIN; SET LOCAL synchronous_commit TO off; NOTIFY ${STREAMS_CHANNEL}, ${quoteLiteral(topic)}; COMMIT`)
        .catch(() => {})
        .finally(() => {
          if (mine.again && !this.closed) {
            mine.again = false;
            send();
          } else this.notifying.delete(key);
        });
    };
    send();
  }

  close(): void {
    this.closed = true;
    for (const l of this.listeners.values()) {
      l.client?.close();
      for (const set of l.waiters.values()) for (const w of [...set]) w();
    }
    this.listeners.clear();
  }
}

const wakers = new WeakMap<NodePools, StreamsWaker>();

/** The waker of the coordinator that owns `pools` (one per coordinator instance). */
export function wakerFor(pools: NodePools, coordinator: NodeAddress): StreamsWaker {
  let w = wakers.get(pools);
  if (!w) {
    w = new StreamsWaker(pools, coordinator);
    wakers.set(pools, w);
  }
  return w;
}

/** Closes the streams listeners of a coordinator (its shutdown). */
export function closeStreams(pools: NodePools): void {
  wakers.get(pools)?.close();
  wakers.delete(pools);
  closeClientConnections(pools);
}
