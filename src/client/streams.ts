/**
 * Producers and consumers over pgweave's stream functions.
 *
 *   const producer = client.producer();
 *   await producer.send('orders', [{ key: 'c1', value: { total: 10 } }]);
 *
 *   const consumer = client.consumer({ topic: 'orders', group: 'billing', mode: 'exactly-once' });
 *   for await (const batch of consumer) {
 *     for (const e of batch.events) await batch.query('INSERT INTO ledger VALUES ($1, $2)', [e.key, e.value]);
 *     await batch.commit();
 *   }
 *
 * A consumer owns one connection. Each iteration polls the group (waiting
 * up to `waitMs` for events, woken by publishes) and yields a batch from the
 * partitions it leases. `commit()` stores, per partition, the offset after
 * the batch with the lease epoch it was delivered under:
 *
 * - at-least-once: the commit is its own statement, after processing; a
 *   crash before it redelivers the batch.
 * - exactly-once: the batch is a transaction on the consumer's connection:
 *   BEGIN before the batch is yielded, `batch.query()` runs inside it, and
 *   commit() adds the offsets (pgweave_streams.commit_offsets) and COMMITs —
 *   one distributed transaction, so the writes and the offsets commit
 *   together or not at all. A consumer whose lease was taken over cannot
 *   commit (FencedError), so its writes roll back.
 *
 * Moving on without commit() (next iteration) means the batch failed: it is
 * redelivered (and counts toward the group's max_deliveries). A background
 * heartbeat keeps the leases while a batch is processed.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { quoteLiteral } from '../sql/quote.js';
import { Connection, PgError, type ConnectionOptions, type QueryResult } from './connection.js';

/** SQLSTATE of a commit refused because another consumer holds the partition now. */
export const FENCED_SQLSTATE = 'PW001';

export class FencedError extends Error {
  readonly code = FENCED_SQLSTATE;
  constructor(readonly error: PgError) {
    super(error.message);
    this.name = 'FencedError';
  }
}

export interface ProducerEvent<V = unknown> {
  /** Events with the same key go to the same partition, in order. */
  key?: string | null;
  /** JSON value (jsonb topics) or a Buffer (bytea topics). */
  value: V;
  headers?: Record<string, unknown> | null;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
}

export interface StreamEvent<V = unknown> {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: V;
  headers: Record<string, unknown> | null;
  publishedAt: Date;
  /** Deliveries of this event so far (groups with max_deliveries). */
  deliveries: number | null;
}

export type DeliveryMode = 'at-least-once' | 'exactly-once';

export interface ConsumerOptions {
  topic: string;
  group: string;
  /** Unique per consumer; default host-pid-random. */
  consumerId?: string;
  mode?: DeliveryMode;
  /** Most events per batch (default 100). */
  maxEvents?: number;
  /** How long one poll waits for events (default 1000 ms). */
  waitMs?: number;
  /** Used when the group is created by this consumer: where it starts, its lease timeout, dead-lettering. */
  start?: 'earliest' | 'latest';
  leaseTimeoutMs?: number;
  maxDeliveries?: number | null;
  deadLetterTopic?: string | null;
  /** Heartbeat interval while a batch is processed (default leaseTimeoutMs / 3, else 3000 ms). */
  heartbeatMs?: number;
}

export interface TopicOptions {
  partitions?: number;
  /** A PostgreSQL interval, e.g. '7 days'. */
  retention?: string | null;
  payloadType?: 'jsonb' | 'bytea';
}

export interface LagRow {
  topic: string;
  partition: number;
  owner: string | null;
  committedOffset: number;
  endOffset: number;
  lag: number;
}

type PayloadType = 'jsonb' | 'bytea';

/** A connection with the streams API. */
export class StreamsClient {
  private constructor(
    readonly connection: Connection,
    private readonly target: string | ConnectionOptions,
  ) {}

  static async connect(target: string | ConnectionOptions): Promise<StreamsClient> {
    return new StreamsClient(await Connection.open(target), target);
  }

  query<R = Record<string, string | null>>(sql: string, params?: ReadonlyArray<unknown>): Promise<QueryResult<R>> {
    return this.connection.query<R>(sql, params);
  }

  async createTopic(name: string, options: TopicOptions = {}): Promise<void> {
    await this.connection.query('SELECT pgweave.create_topic($1, partitions => $2, retention => $3, payload_type => $4)', [
      name,
      options.partitions ?? 8,
      options.retention ?? null,
      options.payloadType ?? 'jsonb',
    ]);
  }

  async dropTopic(name: string): Promise<void> {
    await this.connection.query('SELECT pgweave.drop_topic($1)', [name]);
  }

  async topics(): Promise<Array<{ topic: string; partitions: number; payloadType: PayloadType; retention: string | null }>> {
    const r = await this.connection.query('SELECT * FROM pgweave.list_topics()');
    return r.rows.map((row) => ({ topic: row.topic!, partitions: Number(row.partitions), payloadType: row.payload_type as PayloadType, retention: row.retention }));
  }

  async lag(group: string): Promise<LagRow[]> {
    const r = await this.connection.query('SELECT * FROM pgweave.consumer_lag($1)', [group]);
    return r.rows.map((row) => ({
      topic: row.topic!,
      partition: Number(row.partition),
      owner: row.owner,
      committedOffset: Number(row.committed_offset),
      endOffset: Number(row.end_offset),
      lag: Number(row.lag),
    }));
  }

  /** A producer sharing this client's connection. */
  producer(): Producer {
    return new Producer(this.connection);
  }

  /** A consumer on a connection of its own (its batches may be transactions). */
  consumer<V = unknown>(options: ConsumerOptions): Consumer<V> {
    return new Consumer<V>(() => Connection.open(this.target), options);
  }

  close(): void {
    this.connection.close();
  }
}

async function payloadTypeOf(conn: Connection, topic: string): Promise<PayloadType> {
  const r = await conn.query('SELECT * FROM pgweave.list_topics()');
  const row = r.rows.find((t) => t.topic === topic);
  if (!row) throw new Error(`topic "${topic}" does not exist (or is not readable)`);
  return row.payload_type === 'bytea' ? 'bytea' : 'jsonb';
}

export class Producer {
  private readonly types = new Map<string, PayloadType>();

  constructor(private readonly connection: Connection) {}

  /**
   * Publishes events in one round trip. Outside a transaction each
   * partition's events commit together; events of one key keep their order.
   */
  async send<V>(topic: string, events: ProducerEvent<V> | Array<ProducerEvent<V>>): Promise<RecordMetadata[]> {
    const list = Array.isArray(events) ? events : [events];
    if (list.length === 0) return [];
    let type = this.types.get(topic);
    if (!type) {
      type = await payloadTypeOf(this.connection, topic);
      this.types.set(topic, type);
    }
    const body = list.map((e) => {
      const binary = Buffer.isBuffer(e.value);
      if (type === 'bytea' && !binary) throw new TypeError(`topic "${topic}" stores bytes: event values must be Buffers`);
      return {
        key: e.key ?? null,
        payload: binary ? '\\x' + (e.value as unknown as Buffer).toString('hex') : e.value,
        binary: binary || undefined,
        headers: e.headers ?? null,
      };
    });
    const r = await this.connection.query('SELECT * FROM pgweave.publish_batch($1, $2)', [topic, JSON.stringify(body)]);
    const out = new Array<RecordMetadata>(list.length);
    for (const row of r.rows) {
      const partition = Number(row.partition);
      const first = Number(row.first_offset);
      const positions = row.positions!.slice(1, -1).split(',').map(Number);
      positions.forEach((pos, i) => (out[pos - 1] = { topic, partition, offset: first + i }));
    }
    return out;
  }
}

function decodeValue(type: PayloadType, payload: string | null): unknown {
  if (payload === null) return null;
  const parsed = JSON.parse(payload) as unknown;
  if (type === 'bytea' && typeof parsed === 'string' && parsed.startsWith('\\x')) return Buffer.from(parsed.slice(2), 'hex');
  return parsed;
}

export class Batch<V = unknown> {
  private done = false;

  constructor(
    private readonly consumer: Consumer<V>,
    readonly events: Array<StreamEvent<V>>,
    /** partition → [epoch, next offset] */
    private readonly positions: Map<number, [string, number]>,
    readonly mode: DeliveryMode,
  ) {}

  get committed(): boolean {
    return this.done;
  }

  /** Runs SQL on the consumer's connection — inside the batch's transaction in exactly-once mode. */
  query<R = Record<string, string | null>>(sql: string, params?: ReadonlyArray<unknown>): Promise<QueryResult<R>> {
    return this.consumer.connectionFor(this).query<R>(sql, params);
  }

  /** The offsets this commit stores: [partition, epoch, next offset]. */
  offsets(): Array<[number, string, number]> {
    return [...this.positions].map(([p, [epoch, next]]) => [p, epoch, next]);
  }

  /** Commits the batch (with the transaction's writes in exactly-once mode). */
  async commit(): Promise<void> {
    if (this.done) return;
    await this.consumer.commitBatch(this);
    this.done = true;
  }
}

export class Consumer<V = unknown> implements AsyncIterable<Batch<V>> {
  readonly consumerId: string;
  readonly mode: DeliveryMode;
  private connection: Connection | null = null;
  private opening: Promise<Connection> | null = null;
  private payloadType: PayloadType | null = null;
  private current: Batch<V> | null = null;
  private inTransaction = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private closed = false;
  private groupReady = false;

  constructor(
    private readonly open: () => Promise<Connection>,
    readonly options: ConsumerOptions,
  ) {
    this.consumerId = options.consumerId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.mode = options.mode ?? 'at-least-once';
  }

  private async conn(): Promise<Connection> {
    if (this.connection && !this.connection.closed) return this.connection;
    this.opening ??= this.open().finally(() => (this.opening = null));
    this.connection = await this.opening;
    this.inTransaction = false;
    return this.connection;
  }

  /** @internal */
  connectionFor(batch: Batch<V>): Connection {
    if (batch !== this.current || !this.connection) throw new Error('this batch is over: the consumer has moved on');
    return this.connection;
  }

  private async setup(c: Connection): Promise<void> {
    if (this.groupReady) return;
    this.payloadType = await payloadTypeOf(c, this.options.topic);
    await c.query(
      'SELECT pgweave.create_consumer_group($1, $2, start => $3, lease_timeout_ms => $4, max_deliveries => $5, dead_letter_topic => $6)',
      [
        this.options.group,
        this.options.topic,
        this.options.start ?? 'earliest',
        this.options.leaseTimeoutMs ?? 10000,
        this.options.maxDeliveries ?? null,
        this.options.deadLetterTopic ?? null,
      ],
    );
    this.groupReady = true;
    const every = this.options.heartbeatMs ?? Math.max(200, Math.floor((this.options.leaseTimeoutMs ?? 9000) / 3));
    this.heartbeat = setInterval(() => {
      const c2 = this.connection;
      if (!c2 || c2.closed || !this.current) return;
      c2.query('SELECT pgweave.consumer_heartbeat($1, $2, $3)', [this.options.group, this.options.topic, this.consumerId]).catch(() => {});
    }, every);
    this.heartbeat.unref();
  }

  /** Polls once: the next batch, or null when nothing arrived within waitMs. */
  async poll(): Promise<Batch<V> | null> {
    if (this.closed) return null;
    const c = await this.conn();
    await this.setup(c);
    await this.abandon();
    const r = await c.query('SELECT * FROM pgweave.poll_events($1, $2, $3, max_events => $4, wait_ms => $5)', [
      this.options.group,
      this.consumerId,
      this.options.topic,
      this.options.maxEvents ?? 100,
      this.options.waitMs ?? 1000,
    ]);
    if (r.rows.length === 0) return null;
    const positions = new Map<number, [string, number]>();
    const events = r.rows.map((row) => {
      const e: StreamEvent<V> = {
        topic: this.options.topic,
        partition: Number(row.partition),
        offset: Number(row.offset),
        key: row.key,
        value: decodeValue(this.payloadType!, row.payload) as V,
        headers: row.headers === null ? null : (JSON.parse(row.headers!) as Record<string, unknown>),
        publishedAt: new Date(row.published_at!),
        deliveries: row.deliveries === null ? null : Number(row.deliveries),
      };
      const prev = positions.get(e.partition);
      if (!prev || prev[1] < e.offset + 1) positions.set(e.partition, [row.epoch!, e.offset + 1]);
      return e;
    });
    if (this.mode === 'exactly-once') {
      await c.query('BEGIN');
      this.inTransaction = true;
    }
    this.current = new Batch<V>(this, events, positions, this.mode);
    return this.current;
  }

  /** The previous batch was not committed: roll its transaction back (it will be delivered again). */
  private async abandon(): Promise<void> {
    this.current = null;
    if (this.inTransaction && this.connection && !this.connection.closed) {
      this.inTransaction = false;
      await this.connection.query('ROLLBACK');
    }
  }

  /** @internal */
  async commitBatch(batch: Batch<V>): Promise<void> {
    const c = this.connectionFor(batch);
    const offsets = JSON.stringify(batch.offsets().map(([p, epoch, next]) => [p, Number(epoch), next]));
    const call = `SELECT pgweave_streams.commit_offsets(${quoteLiteral(this.options.group)}, ${quoteLiteral(this.options.topic)}, ${quoteLiteral(this.consumerId)}, ${quoteLiteral(offsets)}::jsonb)`;
    try {
      if (this.mode === 'at-least-once') {
        await c.query(call);
      } else {
        // A simple-protocol statement after the batch's writes: the session counts the coordinator as
        // written, so the offsets take part in the transaction's (two-phase) commit.
        await c.query(call);
        this.inTransaction = false;
        const r = await c.query('COMMIT');
        if (r.command !== 'COMMIT') throw new Error(`the batch transaction ended with ${r.command}`);
      }
      this.current = null;
    } catch (err) {
      if (this.inTransaction) {
        this.inTransaction = false;
        await c.query('ROLLBACK').catch(() => {});
      }
      this.current = null;
      if (err instanceof PgError && err.code === FENCED_SQLSTATE) throw new FencedError(err);
      throw err;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch<V>> {
    while (!this.closed) {
      const batch = await this.poll();
      if (batch) yield batch;
    }
  }

  /** Leaves the group (its partitions go to the others at once) and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    const c = this.connection;
    if (c && !c.closed) {
      await this.abandon().catch(() => {});
      if (this.groupReady) await c.query('SELECT pgweave.leave_group($1, $2, $3)', [this.options.group, this.options.topic, this.consumerId]).catch(() => {});
      c.close();
    }
  }
}
