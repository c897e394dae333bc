/**
 * Group and topic upkeep: lag, lease listing, replay (seek), retention and
 * lease expiry. Retention and expiry are what the cron jobs installed with
 * the first topic of a database run (`SELECT pgweave.expire_leases();
 * SELECT pgweave.apply_retention()`).
 */
import { PgError } from '../protocol/errors.js';
import { perNode, type StreamAccess } from './access.js';
import { endOffsets, firstOffsets } from './consume.js';
import { loadTopic, topicNames, type Topic } from './topics.js';
import { STREAMS_LOCK_KEY } from './schema.js';

export interface LagRow {
  topic: string;
  partition: number;
  owner: string | null;
  epoch: string;
  nextOffset: string;
  endOffset: string;
  lag: string;
  committedAt: string | null;
}

async function topicOf(access: StreamAccess, name: string): Promise<Topic> {
  return loadTopic(access.pools, access.database, access.coordinator, await access.catalog(), name);
}

/** Per partition of every topic the group consumes: committed position, end, and the difference. */
export async function groupLag(access: StreamAccess, group: string): Promise<LagRow[]> {
  const leases = await access.coordinator.query(
    `SELECT topic, partition, owner, epoch, next_offset, committed_at FROM pgweave_streams.lease WHERE group_name = $1 ORDER BY topic, partition`,
    [group],
  );
  if (leases.rows.length === 0) throw new PgError({ code: '42704', message: `consumer group "${group}" does not exist` });
  const ends = new Map<string, Map<number, string>>();
  for (const t of new Set(leases.rows.map((r) => r[0]!))) ends.set(t, await endOffsets(access, await topicOf(access, t)));
  return leases.rows.map((r) => {
    const end = ends.get(r[0]!)?.get(Number(r[1])) ?? r[4]!;
    const lag = BigInt(end) - BigInt(r[4]!);
    return {
      topic: r[0]!,
      partition: Number(r[1]),
      owner: r[2],
      epoch: r[3]!,
      nextOffset: r[4]!,
      endOffset: end,
      lag: String(lag < 0n ? 0n : lag),
      committedAt: r[5],
    };
  });
}

/** The group's leases with their owners, hand-off requests and the owners' heartbeat age. */
export async function groupLeases(access: StreamAccess, group: string): Promise<Array<Array<string | null>>> {
  const r = await access.coordinator.query(
    `SELECT l.topic, l.partition, l.owner, l.new_owner, l.epoch, l.next_offset,
            (extract(epoch FROM clock_timestamp() - c.last_heartbeat) * 1000)::bigint
     FROM pgweave_streams.lease l
     LEFT JOIN pgweave_streams.consumer c ON c.group_name = l.group_name AND c.topic = l.topic AND c.consumer_id = l.owner
     WHERE l.group_name = $1 ORDER BY l.topic, l.partition`,
    [group],
  );
  return r.rows;
}

export interface SeekTarget {
  partition: number | null;
  offset: string | null;
  timestamp: string | null;
  /** 'earliest' | 'latest' when neither offset nor timestamp is given. */
  position: string | null;
}

/**
 * Moves the group's position (replay or skip). Every moved lease gets a new
 * epoch, so a batch in flight under the old position cannot commit over it.
 */
export async function seek(access: StreamAccess, group: string, topicName: string, target: SeekTarget): Promise<Array<[number, string]>> {
  const topic = await topicOf(access, topicName);
  const partitions = target.partition === null ? topic.partitions : [topic.partitions[target.partition]].filter((p) => p !== undefined);
  if (partitions.length === 0) throw new PgError({ code: '22023', message: `topic "${topicName}" has no partition ${target.partition}` });
  const to = new Map<number, string>();
  if (target.offset !== null) {
    if (!/^\d+$/.test(target.offset.trim())) throw new PgError({ code: '22023', message: `invalid offset "${target.offset}"` });
    for (const p of partitions) to.set(p.partition, target.offset.trim());
  } else if (target.timestamp !== null) {
    const ends = await endOffsets(access, topic);
    const rows = await perNode(partitions, (p) => p.node, async (node, list) => {
      const sql = list
        .map((p) => `SELECT ${p.partition}, (SELECT pg_catalog.min(event_offset) FROM ${p.shardTable} WHERE published_at >= $1::timestamptz)`)
        .join(' UNION ALL ');
      return (await access.onNode(node, sql, [target.timestamp])).rows;
    });
    for (const r of rows) to.set(Number(r[0]), r[1] ?? ends.get(Number(r[0])) ?? '0');
  } else {
    const position = (target.position ?? 'earliest').toLowerCase();
    if (position === 'latest') {
      const ends = await endOffsets(access, topic);
      for (const p of partitions) to.set(p.partition, ends.get(p.partition) ?? '0');
    } else if (position === 'earliest') {
      const firsts = await firstOffsets(access, topic);
      for (const p of partitions) to.set(p.partition, firsts.get(p.partition) ?? '0');
    } else {
      throw new PgError({ code: '22023', message: `invalid position "${target.position}"`, hint: "Use 'earliest' or 'latest', or give to_offset or to_timestamp." });
    }
  }
  await access.coordinator.withClient(async (c) => {
    await c.query('BEGIN');
    try {
      await c.query(`SELECT pg_catalog.pg_advisory_xact_lock(${STREAMS_LOCK_KEY}, pg_catalog.hashtext($1 || '/' || $2))`, [group, topic.name]);
      const r = await c.query(
        `UPDATE pgweave_streams.lease l SET next_offset = u.o, epoch = l.epoch + 1, head_offset = NULL, head_deliveries = 0
         FROM ROWS FROM (pg_catalog.unnest($3::int[]), pg_catalog.unnest($4::bigint[])) AS u(p, o)
         WHERE l.group_name = $1 AND l.topic = $2 AND l.partition = u.p RETURNING 1`,
        [group, topic.name, '{' + [...to.keys()].join(',') + '}', '{' + [...to.values()].join(',') + '}'],
      );
      if (r.rows.length === 0) throw new PgError({ code: '42704', message: `consumer group "${group}" does not consume topic "${topic.name}"` });
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
  return [...to].sort((a, b) => a[0] - b[0]);
}

/**
 * Deletes events older than their topic's retention. Per partition it
 * deletes a prefix (everything up to the newest expired offset), so what
 * remains is still gap-free.
 */
export async function applyRetention(access: StreamAccess, only: string | null): Promise<number> {
  const names = only === null ? await topicNames(access.coordinator) : [only];
  let deleted = 0;
  for (const name of names) {
    const topic = await topicOf(access, name);
    if (!topic.retention) continue;
    const counts = await perNode(topic.partitions, (p) => p.node, async (node, list) => {
      await access.pools.ensureDatabase(node.host, node.port, access.database);
      const pool = access.pools.get(node.host, node.port, access.database);
      const out: number[] = [];
      for (const p of list) {
        const r = await pool.query(
          `DELETE FROM ${p.shardTable} WHERE event_offset <= (
             SELECT pg_catalog.max(event_offset) FROM ${p.shardTable} WHERE published_at < pg_catalog.now() - $1::interval)`,
          [topic.retention],
        );
        out.push(Number(/(\d+)$/.exec(r.command)?.[1] ?? 0));
      }
      return out;
    });
    deleted += counts.reduce((a, b) => a + b, 0);
  }
  return deleted;
}

/** Frees the leases of consumers that stopped heartbeating, in every group of the database. */
export async function expireLeases(access: StreamAccess): Promise<number> {
  const r = await access.coordinator.query('SELECT pgweave_streams.expire_leases()');
  return Number(r.rows[0]?.[0] ?? 0);
}
