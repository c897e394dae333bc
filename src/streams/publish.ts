/**
 * Publishing: events grouped by partition, one INSERT per partition into
 * its shard, run as the client on the worker (in the client's transaction
 * when it has one). The shard's triggers number the rows: one statement
 * takes the partition's counter lock once, so a batch of N events costs one
 * lock and one counter update, and offsets inside a batch are consecutive
 * in input order.
 *
 * Outside a transaction block each partition's INSERT commits on its own
 * (a batch is atomic per partition); inside one, everything commits with
 * the block. After an autocommit publish the coordinator wakes consumers.
 */
import { PgError } from '../protocol/errors.js';
import { textArray, perNode, type StreamAccess } from './access.js';
import { nextKeylessPartition, partitionForKey, type Topic, type TopicPartition } from './topics.js';
import { wakerFor } from './wakeup.js';

export interface EventInput {
  key: string | null;
  /** jsonb text, or bytea text form ('\x…') for bytea topics. */
  payload: string | null;
  /** jsonb object text. */
  headers: string | null;
}

export interface PublishedRange {
  partition: number;
  firstOffset: string;
  count: number;
  /** 0-based positions of the partition's events in the input, in offset order. */
  positions: number[];
}

export const MAX_BATCH_EVENTS = 100_000;

/** Parses the JSON array the library and `publish_batch` send: [{key?, payload, headers?}, …]. */
export function parseEventBatch(text: string): EventInput[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new PgError({ code: '22P02', message: `invalid input syntax for type json: ${(err as Error).message}` });
  }
  if (!Array.isArray(parsed)) throw new PgError({ code: '22023', message: 'events must be a JSON array of {"key", "payload", "headers"} objects' });
  if (parsed.length > MAX_BATCH_EVENTS) throw new PgError({ code: '54000', message: `a batch holds at most ${MAX_BATCH_EVENTS} events` });
  return parsed.map((e, i) => {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) {
      throw new PgError({ code: '22023', message: `event ${i + 1} of the batch is not a JSON object` });
    }
    const o = e as Record<string, unknown>;
    const key = o.key === undefined || o.key === null ? null : String(o.key);
    const payload = o.payload === undefined ? null : typeof o.payload === 'string' && o.binary === true ? o.payload : JSON.stringify(o.payload);
    const headers = o.headers === undefined || o.headers === null ? null : JSON.stringify(o.headers);
    return { key, payload, headers };
  });
}

function insertSql(topic: Topic, p: TopicPartition, single: boolean): string {
  const payloadCast = topic.payloadType === 'bytea' ? 'bytea' : 'jsonb';
  if (single) {
    return `INSERT INTO ${p.shardTable} (key, payload, headers) VALUES ($1, $2::${payloadCast}, $3::jsonb) RETURNING event_offset`;
  }
  return `WITH ins AS (
  INSERT INTO ${p.shardTable} (key, payload, headers)
  SELECT u.k, u.p::${payloadCast}, u.h::jsonb FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[])) WITH ORDINALITY AS u(k, p, h, i) ORDER BY u.i
  RETURNING event_offset)
SELECT pg_catalog.min(event_offset), pg_catalog.count(*) FROM ins`;
}

interface Rows {
  keys: Array<string>;
  events: EventInput[];
}

/** Inserts rows into one partition in one statement; returns the first offset. */
async function insertRows(run: (sql: string, params: Array<string | null>) => Promise<Array<Array<string | null>>>, topic: Topic, p: TopicPartition, rows: Rows): Promise<string> {
  if (rows.events.length === 1) {
    const r = await run(insertSql(topic, p, true), [rows.keys[0]!, rows.events[0]!.payload, rows.events[0]!.headers]);
    return r[0]![0]!;
  }
  const r = await run(insertSql(topic, p, false), [
    textArray(rows.keys),
    textArray(rows.events.map((e) => e.payload)),
    textArray(rows.events.map((e) => e.headers)),
  ]);
  return r[0]![0]!;
}

/**
 * Group commit for autocommit publishes: while one INSERT into a partition
 * is in flight (holding the partition's counter lock until its commit), the
 * publishes that arrive for that partition from other sessions of the same
 * role queue up and go together as the next INSERT — one lock, one commit,
 * one WAL flush for all of them. A combined INSERT that fails is retried
 * publish by publish, so one bad event fails only its own publish.
 */
class PartitionCombiner {
  private readonly queue: Array<{ rows: Rows; resolve(first: string): void; reject(err: unknown): void }> = [];
  private running = false;

  constructor(private readonly maxRows: number) {}

  submit(rows: Rows, run: (rows: Rows) => Promise<string>): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      if (!this.running) void this.pump(run);
    });
  }

  private async pump(run: (rows: Rows) => Promise<string>): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const group = [this.queue.shift()!];
        let count = group[0]!.rows.events.length;
        while (this.queue.length > 0 && count + this.queue[0]!.rows.events.length <= this.maxRows) {
          const next = this.queue.shift()!;
          count += next.rows.events.length;
          group.push(next);
        }
        if (group.length === 1) {
          await run(group[0]!.rows).then(group[0]!.resolve, group[0]!.reject);
          continue;
        }
        const all: Rows = { keys: group.flatMap((g) => g.rows.keys), events: group.flatMap((g) => g.rows.events) };
        try {
          let offset = BigInt(await run(all));
          for (const g of group) {
            g.resolve(String(offset));
            offset += BigInt(g.rows.events.length);
          }
        } catch {
          for (const g of group) await run(g.rows).then(g.resolve, g.reject);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

const MAX_COMBINED_ROWS = 5000;
const combiners = new WeakMap<object, Map<string, PartitionCombiner>>();

function combinerFor(access: StreamAccess, p: TopicPartition): PartitionCombiner {
  let map = combiners.get(access.pools);
  if (!map) {
    map = new Map();
    combiners.set(access.pools, map);
  }
  const key = `${access.database}\u0000${access.user}\u0000${p.shardId}`;
  let c = map.get(key);
  if (!c) {
    c = new PartitionCombiner(MAX_COMBINED_ROWS);
    map.set(key, c);
  }
  return c;
}

/**
 * Publishes `events` to `topic`. Keyed events go to their key's partition;
 * keyless ones all go to one partition chosen round-robin. Inside the
 * client's transaction block the INSERTs run on the session's own worker
 * connections (they commit with the block); outside one they go through
 * the partition's group commit (PartitionCombiner) as the client's role.
 */
export async function publishEvents(access: StreamAccess, topic: Topic, events: EventInput[]): Promise<PublishedRange[]> {
  if (events.length === 0) return [];
  const byPartition = new Map<number, { p: TopicPartition; events: EventInput[]; positions: number[] }>();
  let keyless: TopicPartition | null = null;
  events.forEach((e, i) => {
    let p: TopicPartition;
    if (e.key === null) p = keyless ??= nextKeylessPartition(topic);
    else p = partitionForKey(topic, e.key);
    const g = byPartition.get(p.partition) ?? { p, events: [], positions: [] };
    g.events.push(e);
    g.positions.push(i);
    byPartition.set(p.partition, g);
  });
  const groups = [...byPartition.values()];
  const combine = !access.inTransactionBlock && access.onNodeAutocommit !== undefined;
  const ranges = await perNode(groups, (g) => g.p.node, async (node, list) => {
    const out: PublishedRange[] = [];
    const publishGroup = async (g: (typeof list)[number]): Promise<void> => {
      const rows: Rows = { keys: g.events.map((e) => e.key ?? g.p.anchorKey), events: g.events };
      let first: string;
      if (combine) {
        const autocommit = access.onNodeAutocommit!;
        first = await combinerFor(access, g.p).submit(rows, (r) =>
          insertRows(async (sql, params) => (await autocommit(node, sql, params)).rows, topic, g.p, r),
        );
      } else {
        first = await insertRows(async (sql, params) => (await access.onNode(node, sql, params, true)).rows, topic, g.p, rows);
      }
      out.push({ partition: g.p.partition, firstOffset: first, count: g.events.length, positions: g.positions });
    };
    // Partitions of one node: in parallel through the combiners (separate connections), in order on the session's link.
    if (combine) await Promise.all(list.map(publishGroup));
    else for (const g of list) await publishGroup(g);
    return out;
  });
  if (!access.inTransactionBlock) wakerFor(access.pools, access.coordinatorAddress).published(access.database, topic.name);
  ranges.sort((a, b) => a.partition - b.partition);
  return ranges;
}
