/**
 * Topics as the coordinator sees them: the registry rows in
 * pgweave_streams.topic / topic_partition joined with the distributed
 * catalog (which shard, on which node, under which name), cached per
 * database and refreshed when the catalog changes or after a few seconds.
 *
 * Partition i of a topic is the i-th shard of its events table in hash-range
 * order. A key routes by PostgreSQL's hashtext, exactly as a plain INSERT
 * into the table routes, so SQL producers and the library agree. An event
 * without a key gets its partition's anchor key (`~N`, the first such string
 * that hashes into the partition), chosen round-robin per batch; reads
 * report anchor keys as NULL.
 */
import { PgError } from '../protocol/errors.js';
import type { InternalPool } from '../pool/internal-pool.js';
import type { Catalog, DistributedTable, WorkerNode } from '../metadata/types.js';
import { hashText } from '../sql/hash.js';
import { quoteQualified } from '../sql/quote.js';

export interface TopicPartition {
  partition: number;
  shardId: number;
  anchorKey: string;
  /** First hash value of the shard's range. */
  minValue: number;
  node: WorkerNode;
  /** Quoted, schema-qualified shard table name. */
  shardTable: string;
}

export interface Topic {
  name: string;
  schema: string;
  table: string;
  relid: number;
  payloadType: 'jsonb' | 'bytea';
  retention: string | null;
  partitions: TopicPartition[];
}

interface Cached {
  topic: Topic;
  catalogVersion: number;
  loadedAt: number;
}

const MAX_AGE_MS = 5000;
const caches = new WeakMap<object, Map<string, Cached>>();
const roundRobin = new Map<string, number>();

/** Valid topic names: SQL identifiers that need no quoting, optionally schema-qualified. */
const TOPIC_NAME = /^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/;

export function checkTopicName(name: string): { schema: string | null; table: string } {
  if (!TOPIC_NAME.test(name)) {
    throw new PgError({
      code: '42602',
      message: `invalid topic name "${name}"`,
      hint: 'Topic names are lower-case SQL identifiers (letters, digits, _), optionally schema-qualified.',
    });
  }
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: null, table: name } : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

/** Anchor keys: for each partition the first `~N` that hashes into it. */
export function anchorKeys(minValues: number[]): string[] {
  const anchors: Array<string | null> = minValues.map(() => null);
  let missing = minValues.length;
  for (let n = 0; missing > 0; n++) {
    const key = `~${n}`;
    const i = indexForHash(minValues, hashText(key));
    if (anchors[i] === null) {
      anchors[i] = key;
      missing--;
    }
  }
  return anchors as string[];
}

function indexForHash(mins: number[], hash: number): number {
  let lo = 0;
  let hi = mins.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (mins[mid]! <= hash) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export function partitionForKey(topic: Topic, key: string): TopicPartition {
  return topic.partitions[indexForHash(topic.partitions.map((p) => p.minValue), hashText(key))]!;
}

/** The partition for a batch of keyless events: round-robin per topic in this process. */
export function nextKeylessPartition(topic: Topic): TopicPartition {
  const n = roundRobin.get(topic.name) ?? Math.floor(Math.random() * topic.partitions.length);
  roundRobin.set(topic.name, n + 1);
  return topic.partitions[n % topic.partitions.length]!;
}

/** Builds a Topic from its registry rows and the catalog's table; null when the table is no longer distributed. */
export function buildTopic(row: Array<string | null>, parts: Array<Array<string | null>>, table: DistributedTable | undefined): Topic | null {
  if (!table || table.method !== 'hash') return null;
  const byShard = new Map(table.shards.map((s) => [s.shardId, s]));
  const partitions: TopicPartition[] = [];
  for (const p of parts) {
    const shard = byShard.get(Number(p[1]));
    const node = shard?.placements[0]?.node;
    if (!shard || !node) return null;
    partitions.push({
      partition: Number(p[0]),
      shardId: shard.shardId,
      anchorKey: p[2]!,
      minValue: shard.minValue,
      node,
      shardTable: quoteQualified(table.schema, shard.shardName),
    });
  }
  partitions.sort((a, b) => a.partition - b.partition);
  return {
    name: row[0]!,
    schema: row[1]!,
    table: row[2]!,
    relid: Number(row[3]),
    payloadType: row[4] === 'bytea' ? 'bytea' : 'jsonb',
    retention: row[5],
    partitions,
  };
}

export function noSuchTopic(name: string): PgError {
  return new PgError({ code: '42704', message: `topic "${name}" does not exist`, hint: 'Create it with SELECT pgweave.create_topic(name, partitions => N).' });
}

/**
 * The topic named `name` in this database (the cache is keyed by the
 * coordinator's pools object, so each coordinator process/instance has its own).
 */
export async function loadTopic(
  owner: object,
  database: string,
  pool: InternalPool,
  catalog: Catalog,
  name: string,
): Promise<Topic> {
  let cache = caches.get(owner);
  if (!cache) {
    cache = new Map();
    caches.set(owner, cache);
  }
  const key = `${database}\u0000${name}`;
  const hit = cache.get(key);
  if (hit && hit.catalogVersion === catalog.version && Date.now() - hit.loadedAt < MAX_AGE_MS) return hit.topic;
  const r = await pool.query(
    `SELECT name, relation_schema, relation_name, relid, payload_type, retention::text FROM pgweave_streams.topic WHERE name = $1`,
    [name],
  );
  const row = r.rows[0];
  if (!row) {
    cache.delete(key);
    throw noSuchTopic(name);
  }
  const parts = await pool.query(
    'SELECT partition, shard_id, anchor_key FROM pgweave_streams.topic_partition WHERE topic = $1 ORDER BY partition',
    [name],
  );
  const topic = buildTopic(row, parts.rows, catalog.tablesById.get(Number(row[3])));
  if (!topic) {
    throw new PgError({ code: '55000', message: `the events table of topic "${name}" is no longer distributed as the topic expects` });
  }
  cache.set(key, { topic, catalogVersion: catalog.version, loadedAt: Date.now() });
  return topic;
}

/** Drops cached topics of a database (after create/drop). */
export function forgetTopics(owner: object, database: string): void {
  const cache = caches.get(owner);
  if (!cache) return;
  for (const key of [...cache.keys()]) if (key.startsWith(database + '\u0000')) cache.delete(key);
}

/** Names of the topics of a database. */
export async function topicNames(pool: InternalPool): Promise<string[]> {
  const r = await pool.query('SELECT name FROM pgweave_streams.topic ORDER BY name');
  return r.rows.map((row) => row[0]!);
}
