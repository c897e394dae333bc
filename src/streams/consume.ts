/**
 * Consuming: `poll` for consumer groups, `read` for group-less readers
 * (replay, `pgweave streams tail`), and the dead-letter move.
 *
 * poll(group, consumer, topic):
 *
 *   arm waker → acquire (heartbeat + rebalance, one call on the coordinator
 *   PostgreSQL) → read each leased partition from the group's next offset,
 *   as the client, one query per worker → [dead-letter bookkeeping] →
 *   events? return them : wait for a publish (or the recheck interval) and
 *   go again until wait_ms is over.
 *
 * Offsets are gap-free and in commit order (README.md), so reading
 * `event_offset >= next` in offset order never skips an event that commits
 * later. Each returned event carries the lease epoch; the consumer commits
 * (partition, epoch, next offset), and a commit whose epoch is stale is
 * refused (fencing).
 *
 * Dead letters (groups with max_deliveries): the lease remembers which
 * offset headed the last delivery and how often. Delivering the same head
 * again means the previous delivery failed; from the second attempt the
 * partition is delivered one event at a time (so the failing event is
 * isolated), and an event that headed max_deliveries failed deliveries is
 * moved to the group's dead-letter topic — the insert there and the offset
 * advance commit together (two-phase commit, internal role).
 */
import { PgError } from '../protocol/errors.js';
import { connectBackend } from '../pool/backend-connection.js';
import { InternalClient } from '../pool/internal-client.js';
import { commitTwoPhase, ensureLiveness } from '../transaction/two-phase-commit.js';
import { quoteLiteral } from '../sql/quote.js';
import type { WorkerNode } from '../metadata/types.js';
import { perNode, type Row, type StreamAccess } from './access.js';
import { loadTopic, partitionForKey, nextKeylessPartition, type Topic, type TopicPartition } from './topics.js';
import { wakerFor } from './wakeup.js';

export interface StreamEvent {
  partition: number;
  offset: string;
  key: string | null;
  payload: string | null;
  headers: string | null;
  publishedAt: string;
}

export interface PolledEvent extends StreamEvent {
  epoch: string;
  /** Deliveries of this partition's head so far (groups with max_deliveries), else null. */
  deliveries: number | null;
}

export interface PollRequest {
  group: string;
  consumer: string;
  topic: string;
  maxEvents: number;
  waitMs: number;
  /** How often a waiting poll looks again without a notification (rebalancing, unseen publishes). */
  recheckMs?: number;
}

interface Lease {
  partition: number;
  epoch: string;
  nextOffset: string;
  headOffset: string | null;
  headDeliveries: number;
}

interface GroupConfig {
  maxDeliveries: number | null;
  deadLetterTopic: string | null;
}

const DEFAULT_RECHECK_MS = 1000;

/** How long a waiting poll sleeps without a notification (PGWEAVE_STREAMS_RECHECK_MS overrides the 1 s default). */
function recheckMs(): number {
  const v = Number(process.env.PGWEAVE_STREAMS_RECHECK_MS);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_RECHECK_MS;
}

/** Columns every read returns, in this order. */
const EVENT_COLUMNS = 'partition, event_offset, key, payload, headers, published_at';

function readSql(items: Array<{ p: TopicPartition; from: string; limit: number }>): string {
  const parts = items.map(
    (i) => `(SELECT ${EVENT_COLUMNS} FROM ${i.p.shardTable} WHERE event_offset >= ${BigInt(i.from)} ORDER BY event_offset LIMIT ${i.limit})`,
  );
  return parts.length === 1 ? parts[0]!.slice(1, -1) : parts.join('\nUNION ALL\n');
}

function toEvent(topic: Topic, row: Row): StreamEvent {
  const partition = Number(row[0]);
  const key = row[2];
  return {
    partition,
    offset: row[1]!,
    key: key !== null && key === topic.partitions[partition]?.anchorKey ? null : key,
    payload: row[3],
    headers: row[4],
    publishedAt: row[5]!,
  };
}

/** Reads each partition from its position (as the client), in offset order per partition. */
export async function readPartitions(
  access: StreamAccess,
  topic: Topic,
  positions: Array<{ partition: number; from: string; limit: number }>,
): Promise<StreamEvent[]> {
  const items = positions.filter((p) => p.limit > 0).map((p) => ({ ...p, p: topic.partitions[p.partition]! }));
  if (items.length === 0) return [];
  const rows = await perNode(items, (i) => i.p.node, async (node: WorkerNode, list) => (await access.onNode(node, readSql(list))).rows);
  const events = rows.map((r) => toEvent(topic, r));
  events.sort((a, b) => a.partition - b.partition || (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1));
  return events;
}

/** The next offset of each partition (its counter), read with the internal role. */
export async function endOffsets(access: StreamAccess, topic: Topic): Promise<Map<number, string>> {
  const rows = await perNode(topic.partitions, (p) => p.node, async (node, list) => {
    await access.pools.ensureDatabase(node.host, node.port, access.database);
    const r = await access.pools
      .get(node.host, node.port, access.database)
      .query('SELECT partition, next_offset FROM pgweave_streams.partition_counter WHERE shard_id = ANY($1::bigint[])', [
        '{' + list.map((p) => p.shardId).join(',') + '}',
      ]);
    return r.rows;
  });
  return new Map(rows.map((r) => [Number(r[0]), r[1]!]));
}

/** The first offset still stored in each partition (retention deletes older ones); null when empty. */
export async function firstOffsets(access: StreamAccess, topic: Topic): Promise<Map<number, string | null>> {
  const rows = await perNode(topic.partitions, (p) => p.node, async (node, list) => {
    const sql = list.map((p) => `SELECT ${p.partition}, (SELECT pg_catalog.min(event_offset) FROM ${p.shardTable})`).join(' UNION ALL ');
    return (await access.onNode(node, sql)).rows;
  });
  return new Map(rows.map((r) => [Number(r[0]), r[1]]));
}

/** Creates a consumer group for a topic (idempotent); its leases start at `start`. */
export async function ensureGroup(
  access: StreamAccess,
  topic: Topic,
  group: string,
  options: { leaseTimeoutMs?: number; maxDeliveries?: number | null; deadLetterTopic?: string | null; start?: 'earliest' | 'latest' } = {},
): Promise<boolean> {
  const start = options.start ?? 'earliest';
  const offsets = start === 'latest' ? await endOffsets(access, topic) : null;
  return access.coordinator.withClient(async (c) => {
    await c.query('BEGIN');
    try {
      const r = await c.query(
        `INSERT INTO pgweave_streams.consumer_group (group_name, topic, lease_timeout_ms, max_deliveries, dead_letter_topic)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_name, topic) DO NOTHING RETURNING 1`,
        [group, topic.name, String(options.leaseTimeoutMs ?? 10000), options.maxDeliveries == null ? null : String(options.maxDeliveries), options.deadLetterTopic ?? null],
      );
      const created = r.rows.length > 0;
      await c.query(
        `INSERT INTO pgweave_streams.lease (group_name, topic, partition, next_offset)
         SELECT $1, $2, p, COALESCE(o, 0) FROM ROWS FROM (pg_catalog.unnest($3::int[]), pg_catalog.unnest($4::bigint[])) AS u(p, o)
         ON CONFLICT DO NOTHING`,
        [
          group,
          topic.name,
          '{' + topic.partitions.map((p) => p.partition).join(',') + '}',
          '{' + topic.partitions.map((p) => offsets?.get(p.partition) ?? 'NULL').join(',') + '}',
        ],
      );
      await c.query('COMMIT');
      return created;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

async function acquire(access: StreamAccess, topic: Topic, group: string, consumer: string): Promise<{ leases: Lease[]; config: GroupConfig }> {
  // acquire() runs first and alone (a join could skip calling it); the group's settings ride along per row.
  // Heartbeats and lease moves commit without waiting for a WAL flush: one lost in a crash is harmless,
  // since a consumer holding a lease the database forgot cannot commit under its epoch.
  const [g, t, c] = [group, topic.name, consumer].map(quoteLiteral);
  const sql = `BEGIN; SET LOCAL synchronous_commit TO off;
    SELECT a.partition, a.epoch, a.next_offset, a.head_offset, a.head_deliveries,
      (SELECT g.max_deliveries FROM pgweave_streams.consumer_group g WHERE g.group_name = ${g} AND g.topic = ${t}),
      (SELECT g.dead_letter_topic FROM pgweave_streams.consumer_group g WHERE g.group_name = ${g} AND g.topic = ${t})
    FROM pgweave_streams.acquire(${g}, ${t}, ${c}) a;
    COMMIT`;
  const run = () =>
    access.coordinator.withClient(async (client) => {
      try {
        return await client.query(sql);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  let r;
  try {
    r = await run();
  } catch (err) {
    if (!(err instanceof PgError) || err.code !== '42704') throw err;
    await ensureGroup(access, topic, group);
    r = await run();
  }
  const leases = r.rows.map((row) => ({
    partition: Number(row[0]),
    epoch: row[1]!,
    nextOffset: row[2]!,
    headOffset: row[3],
    headDeliveries: Number(row[4]),
  }));
  const first = r.rows[0];
  return { leases, config: { maxDeliveries: first?.[5] == null ? null : Number(first[5]), deadLetterTopic: first?.[6] ?? null } };
}

/** One consumer's poll: its share of the group's partitions, from the committed offsets. */
export async function poll(access: StreamAccess, req: PollRequest): Promise<PolledEvent[]> {
  const deadline = Date.now() + Math.max(0, req.waitMs);
  const waker = wakerFor(access.pools, access.coordinatorAddress);
  for (;;) {
    const topic = await loadTopic(access.pools, access.database, access.coordinator, await access.catalog(), req.topic);
    const waiter = req.waitMs > 0 ? await waker.arm(access.database, topic.name) : null;
    try {
      const { events, deadLettered } = await pollOnce(access, topic, req);
      const left = deadline - Date.now();
      if (deadLettered && events.length === 0) continue; // the partition continues after the dead letter: read again now
      if (events.length > 0 || left <= 0 || !waiter) return events;
      await waiter.wait(Math.min(left, req.recheckMs ?? recheckMs()));
    } finally {
      waiter?.cancel();
    }
  }
}

async function pollOnce(access: StreamAccess, topic: Topic, req: PollRequest): Promise<{ events: PolledEvent[]; deadLettered: boolean }> {
  const { leases, config } = await acquire(access, topic, req.group, req.consumer);
  if (leases.length === 0) return { events: [], deadLettered: false };
  let deadLettered = false;
  const perPartition = Math.max(1, Math.ceil(req.maxEvents / leases.length));
  const events = await readPartitions(
    access,
    topic,
    leases.map((l) => ({ partition: l.partition, from: l.nextOffset, limit: perPartition })),
  );
  const byPartition = new Map<number, StreamEvent[]>();
  for (const e of events) {
    const list = byPartition.get(e.partition) ?? [];
    list.push(e);
    byPartition.set(e.partition, list);
  }
  const leaseOf = new Map(leases.map((l) => [l.partition, l]));
  const deliveries = new Map<number, number>();
  if (config.maxDeliveries !== null) {
    const updates: Array<{ lease: Lease; head: string; count: number }> = [];
    for (const [partition, list] of byPartition) {
      const lease = leaseOf.get(partition)!;
      const head = list[0]!.offset;
      const count = lease.headOffset === head ? lease.headDeliveries + 1 : 1;
      if (count > config.maxDeliveries) {
        await deadLetter(access, topic, req, lease, list[0]!, config, count - 1);
        byPartition.delete(partition);
        deadLettered = true;
        continue;
      }
      if (count > 1) list.length = 1;
      deliveries.set(partition, count);
      updates.push({ lease, head, count });
    }
    if (updates.length > 0) {
      await access.coordinator.query(
        `UPDATE pgweave_streams.lease l SET head_offset = u.h, head_deliveries = u.d
         FROM ROWS FROM (pg_catalog.unnest($4::int[]), pg_catalog.unnest($5::bigint[]), pg_catalog.unnest($6::bigint[]), pg_catalog.unnest($7::int[])) AS u(p, ep, h, d)
         WHERE l.group_name = $1 AND l.topic = $2 AND l.owner = $3 AND l.partition = u.p AND l.epoch = u.ep`,
        [
          req.group,
          topic.name,
          req.consumer,
          '{' + updates.map((u) => u.lease.partition).join(',') + '}',
          '{' + updates.map((u) => u.lease.epoch).join(',') + '}',
          '{' + updates.map((u) => u.head).join(',') + '}',
          '{' + updates.map((u) => u.count).join(',') + '}',
        ],
      );
    }
  }
  const out: PolledEvent[] = [];
  for (const [partition, list] of [...byPartition].sort((a, b) => a[0] - b[0])) {
    const lease = leaseOf.get(partition)!;
    // Retention may have deleted events below the committed offset's successor; the first one read is where the partition continues.
    for (const e of list) out.push({ ...e, epoch: lease.epoch, deliveries: deliveries.get(partition) ?? null });
  }
  return { events: out, deadLettered };
}

/**
 * Moves a partition's head event to the dead-letter topic and advances the
 * group past it, atomically: the insert (a worker) and the offset (the
 * coordinator PostgreSQL) commit through two-phase commit.
 */
async function deadLetter(
  access: StreamAccess,
  topic: Topic,
  req: PollRequest,
  lease: Lease,
  event: StreamEvent,
  config: GroupConfig,
  failedDeliveries: number,
): Promise<void> {
  const dlqName = config.deadLetterTopic ?? `${topic.name}_dead_letter`;
  const dlq = await loadTopic(access.pools, access.database, access.coordinator, await access.catalog(), dlqName);
  if (dlq.payloadType !== topic.payloadType) {
    throw new PgError({ code: '42804', message: `dead-letter topic "${dlqName}" stores ${dlq.payloadType}, topic "${topic.name}" stores ${topic.payloadType}` });
  }
  const target: TopicPartition = event.key === null ? nextKeylessPartition(dlq) : partitionForKey(dlq, event.key);
  const headers = JSON.stringify({
    ...(event.headers ? (JSON.parse(event.headers) as object) : {}),
    dead_letter: {
      group: req.group,
      topic: topic.name,
      partition: event.partition,
      offset: Number(event.offset),
      deliveries: failedDeliveries,
      published_at: event.publishedAt,
    },
  });
  await ensureLiveness(access.pools, access.coordinatorAddress, access.internalDatabase);
  await access.pools.ensureDatabase(target.node.host, target.node.port, access.database);
  const workerConn = await connectBackend({
    host: target.node.host,
    port: target.node.port,
    database: access.database,
    user: access.pools.internal.user,
    credentials: { password: access.pools.internal.password },
    params: [['application_name', 'pgweave streams dead-letter']],
  });
  const worker = new InternalClient(workerConn);
  const coordinator = await access.coordinator.acquire();
  try {
    await worker.query('BEGIN');
    await worker.query(
      `INSERT INTO ${target.shardTable} (key, payload, headers) VALUES ($1, $2::${dlq.payloadType}, $3::jsonb)`,
      [event.key ?? target.anchorKey, event.payload, headers],
    );
    await coordinator.query('BEGIN');
    const moved = await coordinator.query(
      `UPDATE pgweave_streams.lease SET next_offset = $5::bigint + 1, head_offset = NULL, head_deliveries = 0
       WHERE group_name = $1 AND topic = $2 AND partition = $3 AND epoch = $4 AND next_offset <= $5::bigint RETURNING 1`,
      [req.group, topic.name, String(lease.partition), lease.epoch, event.offset],
    );
    if (moved.rows.length === 0) {
      await coordinator.query('ROLLBACK');
      await worker.query('ROLLBACK');
      return;
    }
    await commitTwoPhase(coordinator, [{ client: worker, groupId: target.node.groupId, label: `${target.node.host}:${target.node.port}` }]);
  } catch (err) {
    await coordinator.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    access.coordinator.release(coordinator);
    worker.close();
  }
  wakerFor(access.pools, access.coordinatorAddress).published(access.database, dlq.name);
}

/** Group-less read from explicit positions (replay, tail): up to maxEvents per call, spread over partitions. */
export async function readFrom(
  access: StreamAccess,
  topic: Topic,
  positions: Map<number, string>,
  maxEvents: number,
  waitMs: number,
): Promise<StreamEvent[]> {
  const deadline = Date.now() + Math.max(0, waitMs);
  const waker = wakerFor(access.pools, access.coordinatorAddress);
  const per = Math.max(1, Math.ceil(maxEvents / Math.max(1, positions.size)));
  for (;;) {
    const waiter = waitMs > 0 ? await waker.arm(access.database, topic.name) : null;
    try {
      const events = await readPartitions(
        access,
        topic,
        [...positions].map(([partition, from]) => ({ partition, from, limit: per })),
      );
      const left = deadline - Date.now();
      if (events.length > 0 || left <= 0 || !waiter) return events;
      await waiter.wait(Math.min(left, recheckMs()));
    } finally {
      waiter?.cancel();
    }
  }
}
