/**
 * The SQL interface of streams (src/streams), as coordinator functions under
 * the pgweave name (DESIGN.md decision 4: what goes beyond Citus lives there):
 *
 *   pgweave.create_topic(name, partitions => 8, retention => NULL, payload_type => 'jsonb')
 *   pgweave.alter_topic(name, retention)          pgweave.drop_topic(name)
 *   pgweave.list_topics()
 *   pgweave.publish(topic, payload, key => NULL, headers => NULL) → (partition, offset)
 *   pgweave.publish_batch(topic, events jsonb)    → (partition, first_offset, count, positions int[]) per partition
 *   pgweave.create_consumer_group(group, topic, start => 'earliest', lease_timeout_ms => 10000,
 *                                 max_deliveries => NULL, dead_letter_topic => NULL)
 *   pgweave.poll_events(group, consumer, topic, max_events => 100, wait_ms => 0)
 *   pgweave.commit_offset(group, topic, consumer, partition, epoch, next_offset)
 *   pgweave_streams.commit_offsets(group, topic, consumer, '[[p, epoch, next], …]') (several partitions at once)
 *   pgweave.consumer_heartbeat(group, topic, consumer)   pgweave.leave_group(group, topic, consumer)
 *   pgweave.seek_group(group, topic, partition => NULL, to_offset => NULL, to_timestamp => NULL, start => 'earliest')
 *   pgweave.read_topic(topic, positions => NULL, start => 'earliest', max_events => 100, wait_ms => 0)
 *   pgweave.topic_offsets(topic)  pgweave.consumer_lag(group)   pgweave.consumer_leases(group)
 *   pgweave.expire_leases()       pgweave.apply_retention(topic => NULL)
 *
 * A topic's events table is an ordinary distributed table created through
 * the client's session (so the client owns it and privileges apply),
 * distributed by `key` with one shard per partition; then, in one
 * distributed transaction, every shard gets its offset counter and
 * triggers, and the registry its rows.
 */
import { PgError } from '../protocol/errors.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import { parseSql } from '../sql/parse.js';
import { readWorkerNodes } from '../metadata/catalog-writes.js';
import type { StreamAccess } from '../streams/access.js';
import { clientConnectionsFor } from '../streams/client-connections.js';
import { ensureGroup, poll, readFrom, firstOffsets, endOffsets } from '../streams/consume.js';
import { queryOnSessionLink } from '../streams/link-runner.js';
import { applyRetention, expireLeases, groupLag, groupLeases, seek } from '../streams/maintenance.js';
import { parseEventBatch, publishEvents } from '../streams/publish.js';
import { ensureCoordinatorSchema, eventsTableSql, partitionStatements, workerSchemaSql } from '../streams/schema.js';
import { anchorKeys, checkTopicName, forgetTopics, loadTopic, type Topic } from '../streams/topics.js';
import { TYPE_OID, voidResult, type CommandDefinition, type Rows } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseInt32, resolveRelation } from './common.js';
import type { CommandContext } from './context.js';
import { distributeTable, withDistributedChange } from './distribute-table.js';
import { runDistributedUtility } from './ddl/run-utility.js';

const OID = { ...TYPE_OID, jsonb: 3802, timestamptz: 1184 } as const;
const MAX_PARTITIONS = 4096;
const MAINTENANCE_SCHEDULE = '10 seconds';

async function access(ctx: CommandContext): Promise<StreamAccess> {
  await ensureDatabaseCatalog(ctx);
  const coordinator = coordinatorPool(ctx);
  await ensureCoordinatorSchema(coordinator, `${ctx.config.coordinator.host}:${ctx.config.coordinator.port}/${ctx.database}`);
  const linkFor = ctx.linkFor;
  const fallback = clientConnectionsFor(ctx.pools);
  return {
    database: ctx.database,
    user: ctx.user,
    coordinatorAddress: ctx.config.coordinator,
    internalDatabase: ctx.config.internalDatabase ?? 'postgres',
    coordinator,
    pools: ctx.pools,
    catalog: () => ctx.metadata.get(ctx.database),
    onNode: linkFor
      ? async (node, sql, params, write) => queryOnSessionLink(await linkFor(node, write ?? false), sql, params)
      : (node, sql, params) => fallback.query(node, ctx.database, ctx.user, ctx.credentials, sql, params),
    onNodeAutocommit: (node, sql, params) => fallback.query(node, ctx.database, ctx.user, ctx.credentials, sql, params),
    inTransactionBlock: ctx.inTransactionBlock ?? false,
  };
}

async function topicFor(a: StreamAccess, name: string): Promise<Topic> {
  return loadTopic(a.pools, a.database, a.coordinator, await a.catalog(), name);
}

const readChecks = new WeakMap<object, Map<string, number>>();
const READ_CHECK_TTL_MS = 2000;

/**
 * The client may read the topic (SELECT on its table, as PostgreSQL
 * decides). A positive answer is remembered for a moment per role: polls
 * repeat it constantly, and the events themselves are read as the client
 * (so PostgreSQL checks every read anyway).
 */
async function requireRead(ctx: CommandContext, topic: Topic): Promise<void> {
  let seen = readChecks.get(ctx.pools);
  if (!seen) readChecks.set(ctx.pools, (seen = new Map()));
  const key = `${ctx.database}\u0000${ctx.user}\u0000${topic.relid}`;
  if ((seen.get(key) ?? 0) > Date.now()) return;
  const r = await coordinatorPool(ctx).query('SELECT pg_catalog.has_table_privilege($1, $2::pg_catalog.oid, $3)', [ctx.user, String(topic.relid), 'SELECT']);
  if (r.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: `permission denied for topic ${topic.name}` });
  seen.set(key, Date.now() + READ_CHECK_TTL_MS);
}

function notInBlock(ctx: CommandContext, fn: string, hint?: string): void {
  if (ctx.inTransactionBlock) throw new PgError({ code: '25001', message: `${fn}() cannot run inside a transaction block`, hint });
}

function intArg(args: Map<string, string | null>, name: string, min: number, max: number): number {
  const n = parseInt32(args.get(name)!, name);
  if (n < min || n > max) throw new PgError({ code: '22023', message: `${name} must be between ${min} and ${max}` });
  return n;
}

function nullableInt(args: Map<string, string | null>, name: string, min: number, max: number): number | null {
  return args.get(name) == null ? null : intArg(args, name, min, max);
}

function payloadOut(topic: Topic, payload: string | null): string | null {
  return payload !== null && topic.payloadType === 'bytea' ? JSON.stringify(payload) : payload;
}

const createTopic: CommandDefinition = {
  name: 'create_topic',
  params: [
    { name: 'name', type: 'text' },
    { name: 'partitions', type: 'integer', default: '8' },
    { name: 'retention', type: 'interval', default: null },
    { name: 'payload_type', type: 'text', default: 'jsonb' },
  ],
  returns: [{ name: 'create_topic', typeOid: OID.void }],
  setReturning: false,
  async run(args, ctx) {
    notInBlock(ctx, 'create_topic');
    const name = args.get('name')!;
    const { schema, table } = checkTopicName(name);
    const partitions = intArg(args, 'partitions', 1, MAX_PARTITIONS);
    const payloadType = args.get('payload_type')!.toLowerCase();
    if (payloadType !== 'jsonb' && payloadType !== 'bytea') throw new PgError({ code: '22023', message: `payload_type must be 'jsonb' or 'bytea'` });
    const a = await access(ctx);
    const retention = args.get('retention') == null ? null : (await a.coordinator.query('SELECT $1::interval::text', [args.get('retention')!])).rows[0]![0]!;
    const exists = await a.coordinator.query('SELECT 1 FROM pgweave_streams.topic WHERE name = $1', [name]);
    if (exists.rows.length > 0) throw new PgError({ code: '42710', message: `topic "${name}" already exists` });

    const qualified = schema ? quoteQualified(schema, table) : quoteIdent(table);
    await ctx.runAsClient(eventsTableSql(qualified, payloadType));
    try {
      await distributeTable(ctx, { table: qualified, method: 'hash', distributionColumn: 'key', colocateWith: 'none', shardCount: partitions });
    } catch (err) {
      await ctx.runAsClient(`DROP TABLE IF EXISTS ${qualified}`).catch(() => {});
      throw err;
    }
    try {
      await registerTopic(ctx, name, qualified, partitions, payloadType, retention);
    } catch (err) {
      // Leave nothing half-made: the events table goes away with its shards.
      const rel = await resolveRelation(ctx, qualified).catch(() => null);
      const table = rel ? (await ctx.metadata.get(ctx.database)).tablesById.get(rel.oid) : undefined;
      if (table) {
        const sql = `DROP TABLE ${qualified}`;
        await runDistributedUtility({ ...ctx, inTransactionBlock: false }, sql, parseSql(sql).stmts[0]!.stmt, [table]).catch(() => {});
      }
      throw err;
    }
    forgetTopics(ctx.pools, ctx.database);
    await scheduleMaintenance(ctx).catch(() => {});
    return voidResult();
  },
};

/** Numbers the shards of a freshly distributed events table and records the topic, in one distributed transaction. */
async function registerTopic(ctx: CommandContext, name: string, qualified: string, partitions: number, payloadType: string, retention: string | null): Promise<void> {
    const rel = await resolveRelation(ctx, qualified);
    const distributed = (await ctx.metadata.get(ctx.database)).tablesById.get(rel.oid);
    if (!distributed) throw new PgError({ code: 'XX000', message: `table ${qualified} was not distributed` });
    const shards = [...distributed.shards].sort((x, y) => x.minValue - y.minValue);
    const anchors = anchorKeys(shards.map((s) => s.minValue));
    await withDistributedChange(ctx, async (coordinator, workers) => {
      const nodes = new Map((await readWorkerNodes(coordinator)).map((n) => [n.groupId, n]));
      const statements = new Map<number, string[]>();
      shards.forEach((s, i) => {
        const groupId = s.placements[0]!.groupId;
        const list = statements.get(groupId) ?? [workerSchemaSql()];
        list.push(...partitionStatements(rel.schema, rel.name, s.shardId, i));
        statements.set(groupId, list);
      });
      for (const [groupId, list] of statements) {
        const node = nodes.get(groupId);
        if (!node) throw new PgError({ code: 'XX000', message: `no node for group ${groupId}` });
        const { client } = await workers.open(ctx, node);
        await client.query(list.join(';\n'));
      }
      await coordinator.query(
        `INSERT INTO pgweave_streams.topic (name, relation_schema, relation_name, relid, partitions, payload_type, retention)
         VALUES ($1, $2, $3, $4, $5, $6, $7::interval)`,
        [name, rel.schema, rel.name, String(rel.oid), String(partitions), payloadType, retention],
      );
      await coordinator.query(
        `INSERT INTO pgweave_streams.topic_partition (topic, partition, shard_id, anchor_key)
         SELECT $1, u.i - 1, u.s, u.a FROM ROWS FROM (pg_catalog.unnest($2::bigint[]), pg_catalog.unnest($3::text[])) WITH ORDINALITY AS u(s, a, i)`,
        [name, '{' + shards.map((s) => s.shardId).join(',') + '}', '{' + anchors.map((k) => `"${k}"`).join(',') + '}'],
      );
    });
}

/**
 * Installs the database's streams maintenance job (lease expiry, retention)
 * in cron.job when the cron schema exists (every coordinator creates it).
 */
async function scheduleMaintenance(ctx: CommandContext): Promise<void> {
  const internal = ctx.pools.get(ctx.config.coordinator.host, ctx.config.coordinator.port, ctx.config.internalDatabase ?? 'postgres');
  const has = await internal.query(`SELECT pg_catalog.to_regclass('cron.job') IS NOT NULL`);
  if (has.rows[0]?.[0] !== 't') return;
  await internal.query(
    `INSERT INTO cron.job (schedule, command, database, username, jobname) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (username, jobname) DO NOTHING`,
    [
      MAINTENANCE_SCHEDULE,
      'SELECT pgweave.expire_leases(); SELECT pgweave.apply_retention()',
      ctx.database,
      ctx.pools.internal.user,
      `pgweave_streams_maintenance:${ctx.database}`,
    ],
  );
}

const alterTopic: CommandDefinition = {
  name: 'alter_topic',
  params: [
    { name: 'name', type: 'text' },
    { name: 'retention', type: 'interval', default: null },
  ],
  nullable: ['retention'],
  returns: [{ name: 'alter_topic', typeOid: OID.void }],
  setReturning: false,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('name')!);
    const owner = await a.coordinator.query('SELECT pg_catalog.pg_has_role($1, c.relowner, $2) FROM pg_catalog.pg_class c WHERE c.oid = $3', [ctx.user, 'MEMBER', String(topic.relid)]);
    if (owner.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: `must be owner of topic ${topic.name}` });
    await a.coordinator.query('UPDATE pgweave_streams.topic SET retention = $2::interval WHERE name = $1', [topic.name, args.get('retention') ?? null]);
    forgetTopics(ctx.pools, ctx.database);
    return voidResult();
  },
};

const dropTopic: CommandDefinition = {
  name: 'drop_topic',
  params: [{ name: 'name', type: 'text' }],
  returns: [{ name: 'drop_topic', typeOid: OID.void }],
  setReturning: false,
  async run(args, ctx) {
    notInBlock(ctx, 'drop_topic');
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('name')!);
    const table = (await a.catalog()).tablesById.get(topic.relid)!;
    const sql = `DROP TABLE ${quoteQualified(topic.schema, topic.table)}`;
    await runDistributedUtility({ ...ctx, inTransactionBlock: false }, sql, parseSql(sql).stmts[0]!.stmt, [table]);
    await a.coordinator.query('DELETE FROM pgweave_streams.topic WHERE name = $1', [topic.name]);
    for (const p of topic.partitions) {
      await a.pools
        .get(p.node.host, p.node.port, ctx.database)
        .query('DELETE FROM pgweave_streams.partition_counter WHERE shard_id = $1', [String(p.shardId)])
        .catch(() => {});
    }
    forgetTopics(ctx.pools, ctx.database);
    return voidResult();
  },
};

const listTopics: CommandDefinition = {
  name: 'list_topics',
  params: [],
  returns: [
    { name: 'topic', typeOid: OID.text },
    { name: 'partitions', typeOid: OID.int4 },
    { name: 'payload_type', typeOid: OID.text },
    { name: 'retention', typeOid: OID.text },
    { name: 'relation', typeOid: OID.text },
  ],
  setReturning: true,
  async run(_args, ctx) {
    const a = await access(ctx);
    const r = await a.coordinator.query(
      `SELECT name, partitions, payload_type, retention::text, pg_catalog.format('%I.%I', relation_schema, relation_name)
       FROM pgweave_streams.topic WHERE pg_catalog.has_table_privilege($1, relid, 'SELECT') ORDER BY name`,
      [ctx.user],
    );
    return r.rows;
  },
};

const publish: CommandDefinition = {
  name: 'publish',
  params: [
    { name: 'topic', type: 'text' },
    { name: 'payload', type: 'jsonb' },
    { name: 'key', type: 'text', default: null },
    { name: 'headers', type: 'jsonb', default: null },
  ],
  nullable: ['payload'],
  returns: [
    { name: 'partition', typeOid: OID.int4 },
    { name: 'offset', typeOid: OID.int8 },
  ],
  setReturning: false,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    const [range] = await publishEvents(a, topic, [{ key: args.get('key') ?? null, payload: args.get('payload') ?? null, headers: args.get('headers') ?? null }]);
    return [[String(range!.partition), range!.firstOffset]];
  },
};

const publishBatch: CommandDefinition = {
  name: 'publish_batch',
  params: [
    { name: 'topic', type: 'text' },
    { name: 'events', type: 'jsonb' },
  ],
  returns: [
    { name: 'partition', typeOid: OID.int4 },
    { name: 'first_offset', typeOid: OID.int8 },
    { name: 'count', typeOid: OID.int4 },
    { name: 'positions', typeOid: 1007 },
  ],
  setReturning: true,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    const ranges = await publishEvents(a, topic, parseEventBatch(args.get('events')!));
    return ranges.map((r) => [String(r.partition), r.firstOffset, String(r.count), '{' + r.positions.map((i) => i + 1).join(',') + '}']);
  },
};

const createGroup: CommandDefinition = {
  name: 'create_consumer_group',
  params: [
    { name: 'group_name', type: 'text' },
    { name: 'topic', type: 'text' },
    { name: 'start', type: 'text', default: 'earliest' },
    { name: 'lease_timeout_ms', type: 'integer', default: '10000' },
    { name: 'max_deliveries', type: 'integer', default: null },
    { name: 'dead_letter_topic', type: 'text', default: null },
  ],
  returns: [{ name: 'create_consumer_group', typeOid: OID.bool }],
  setReturning: false,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    await requireRead(ctx, topic);
    const start = args.get('start')!.toLowerCase();
    if (start !== 'earliest' && start !== 'latest') throw new PgError({ code: '22023', message: `start must be 'earliest' or 'latest'` });
    const maxDeliveries = nullableInt(args, 'max_deliveries', 1, 1_000_000);
    let deadLetter = args.get('dead_letter_topic') ?? null;
    if (maxDeliveries !== null) {
      deadLetter ??= `${topic.name}_dead_letter`;
      const exists = await a.coordinator.query('SELECT 1 FROM pgweave_streams.topic WHERE name = $1', [deadLetter]);
      if (exists.rows.length === 0) {
        notInBlock(ctx, 'create_consumer_group', `It creates the dead-letter topic "${deadLetter}"; create it first, or call this outside the block.`);
        const dl = new Map<string, string | null>([
          ['name', deadLetter],
          ['partitions', String(Math.min(topic.partitions.length, 8))],
          ['retention', null],
          ['payload_type', topic.payloadType],
        ]);
        await createTopic.run(dl, ctx);
      }
    }
    const created = await ensureGroup(a, topic, args.get('group_name')!, {
      start,
      leaseTimeoutMs: intArg(args, 'lease_timeout_ms', 100, 86_400_000),
      maxDeliveries,
      deadLetterTopic: deadLetter,
    });
    return [[created ? 't' : 'f']];
  },
};

const pollEvents: CommandDefinition = {
  name: 'poll_events',
  params: [
    { name: 'group_name', type: 'text' },
    { name: 'consumer', type: 'text' },
    { name: 'topic', type: 'text' },
    { name: 'max_events', type: 'integer', default: '100' },
    { name: 'wait_ms', type: 'integer', default: '0' },
  ],
  returns: [
    { name: 'partition', typeOid: OID.int4 },
    { name: 'offset', typeOid: OID.int8 },
    { name: 'epoch', typeOid: OID.int8 },
    { name: 'key', typeOid: OID.text },
    { name: 'payload', typeOid: OID.jsonb },
    { name: 'headers', typeOid: OID.jsonb },
    { name: 'published_at', typeOid: OID.timestamptz },
    { name: 'deliveries', typeOid: OID.int4 },
  ],
  setReturning: true,
  async run(args, ctx): Promise<Rows> {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    await requireRead(ctx, topic);
    const events = await poll(a, {
      group: args.get('group_name')!,
      consumer: args.get('consumer')!,
      topic: topic.name,
      maxEvents: intArg(args, 'max_events', 1, 100_000),
      waitMs: intArg(args, 'wait_ms', 0, 3_600_000),
    });
    return events.map((e) => [
      String(e.partition),
      e.offset,
      e.epoch,
      e.key,
      payloadOut(topic, e.payload),
      e.headers,
      e.publishedAt,
      e.deliveries === null ? null : String(e.deliveries),
    ]);
  },
};

const commitOffset: CommandDefinition = {
  name: 'commit_offset',
  params: [
    { name: 'group_name', type: 'text' },
    { name: 'topic', type: 'text' },
    { name: 'consumer', type: 'text' },
    { name: 'partition', type: 'integer' },
    { name: 'epoch', type: 'bigint' },
    { name: 'next_offset', type: 'bigint' },
  ],
  returns: [{ name: 'commit_offset', typeOid: OID.int4 }],
  setReturning: false,
  async run(args, ctx) {
    // Runs in the client's session: inside a transaction block it commits with the block's other writes
    // (the coordinator joins the block's two-phase commit since this assigns it a transaction id).
    await access(ctx);
    for (const n of ['epoch', 'next_offset']) {
      if (!/^\d+$/.test(args.get(n)!.trim())) throw new PgError({ code: '22P02', message: `invalid input syntax for type bigint: "${args.get(n)}"` });
    }
    const offsets = JSON.stringify([[intArg(args, 'partition', 0, MAX_PARTITIONS), Number(args.get('epoch')), Number(args.get('next_offset'))]]);
    const r = await ctx.runAsClient('SELECT pgweave_streams.commit_offsets($1, $2, $3, $4::jsonb)', [args.get('group_name')!, args.get('topic')!, args.get('consumer')!, offsets]);
    return [[r.rows[0]?.[0] ?? '0']];
  },
};

const heartbeat: CommandDefinition = {
  name: 'consumer_heartbeat',
  params: [
    { name: 'group_name', type: 'text' },
    { name: 'topic', type: 'text' },
    { name: 'consumer', type: 'text' },
  ],
  returns: [{ name: 'consumer_heartbeat', typeOid: OID.bool }],
  setReturning: false,
  async run(args, ctx) {
    const a = await access(ctx);
    // A heartbeat need not survive a crash: committed without waiting for a WAL flush.
    const [g, t, c] = [args.get('group_name')!, args.get('topic')!, args.get('consumer')!].map(quoteLiteral);
    const r = await a.coordinator.withClient(async (client) => {
      try {
        return await client.query(`BEGIN; SET LOCAL synchronous_commit TO off;
          UPDATE pgweave_streams.consumer SET last_heartbeat = pg_catalog.clock_timestamp()
          WHERE group_name = ${g} AND topic = ${t} AND consumer_id = ${c} RETURNING 1; COMMIT`);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
    return [[r.rows.length > 0 ? 't' : 'f']];
  },
};

const leaveGroup: CommandDefinition = {
  name: 'leave_group',
  params: [
    { name: 'group_name', type: 'text' },
    { name: 'topic', type: 'text' },
    { name: 'consumer', type: 'text' },
  ],
  returns: [{ name: 'leave_group', typeOid: OID.int4 }],
  setReturning: false,
  async run(args, ctx) {
    const a = await access(ctx);
    const r = await a.coordinator.query('SELECT pgweave_streams.leave($1, $2, $3)', [args.get('group_name')!, args.get('topic')!, args.get('consumer')!]);
    return [[r.rows[0]?.[0] ?? '0']];
  },
};

const seekGroup: CommandDefinition = {
  name: 'seek_group',
  params: [
    { name: 'group_name', type: 'text' },
    { name: 'topic', type: 'text' },
    { name: 'partition', type: 'integer', default: null },
    { name: 'to_offset', type: 'bigint', default: null },
    { name: 'to_timestamp', type: 'timestamptz', default: null },
    { name: 'start', type: 'text', default: 'earliest' },
  ],
  returns: [
    { name: 'partition', typeOid: OID.int4 },
    { name: 'next_offset', typeOid: OID.int8 },
  ],
  setReturning: true,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    await requireRead(ctx, topic);
    const moved = await seek(a, args.get('group_name')!, topic.name, {
      partition: nullableInt(args, 'partition', 0, MAX_PARTITIONS),
      offset: args.get('to_offset') ?? null,
      timestamp: args.get('to_timestamp') ?? null,
      position: args.get('start') ?? null,
    });
    return moved.map(([p, o]) => [String(p), o]);
  },
};

const readTopic: CommandDefinition = {
  name: 'read_topic',
  params: [
    { name: 'topic', type: 'text' },
    { name: 'positions', type: 'jsonb', default: null },
    { name: 'start', type: 'text', default: 'earliest' },
    { name: 'max_events', type: 'integer', default: '100' },
    { name: 'wait_ms', type: 'integer', default: '0' },
  ],
  returns: [
    { name: 'partition', typeOid: OID.int4 },
    { name: 'offset', typeOid: OID.int8 },
    { name: 'key', typeOid: OID.text },
    { name: 'payload', typeOid: OID.jsonb },
    { name: 'headers', typeOid: OID.jsonb },
    { name: 'published_at', typeOid: OID.timestamptz },
  ],
  setReturning: true,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    const given = new Map<number, string>();
    const text = args.get('positions');
    if (text != null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new PgError({ code: '22023', message: 'positions must be a JSON object {"partition": offset, …}' });
      }
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        if (!/^\d+$/.test(k) || !topic.partitions[Number(k)] || !/^\d+$/.test(String(v))) {
          throw new PgError({ code: '22023', message: `invalid position ${JSON.stringify(k)}: ${JSON.stringify(v)}` });
        }
        given.set(Number(k), String(v));
      }
    }
    const start = args.get('start')!.toLowerCase();
    if (start !== 'earliest' && start !== 'latest') throw new PgError({ code: '22023', message: `start must be 'earliest' or 'latest'` });
    const positions = new Map<number, string>();
    const missing = topic.partitions.filter((p) => !given.has(p.partition));
    const defaults = missing.length === 0 ? null : start === 'latest' ? await endOffsets(a, topic) : await firstOffsets(a, topic);
    for (const p of topic.partitions) positions.set(p.partition, given.get(p.partition) ?? defaults?.get(p.partition) ?? '0');
    const events = await readFrom(a, topic, positions, intArg(args, 'max_events', 1, 100_000), intArg(args, 'wait_ms', 0, 3_600_000));
    return events.map((e) => [String(e.partition), e.offset, e.key, payloadOut(topic, e.payload), e.headers, e.publishedAt]);
  },
};

const topicOffsets: CommandDefinition = {
  name: 'topic_offsets',
  params: [{ name: 'topic', type: 'text' }],
  returns: [
    { name: 'partition', typeOid: OID.int4 },
    { name: 'first_offset', typeOid: OID.int8 },
    { name: 'end_offset', typeOid: OID.int8 },
  ],
  setReturning: true,
  async run(args, ctx) {
    const a = await access(ctx);
    const topic = await topicFor(a, args.get('topic')!);
    await requireRead(ctx, topic);
    const [firsts, ends] = await Promise.all([firstOffsets(a, topic), endOffsets(a, topic)]);
    return topic.partitions.map((p) => [String(p.partition), firsts.get(p.partition) ?? null, ends.get(p.partition) ?? '0']);
  },
};

const consumerLag: CommandDefinition = {
  name: 'consumer_lag',
  params: [{ name: 'group_name', type: 'text' }],
  returns: [
    { name: 'topic', typeOid: OID.text },
    { name: 'partition', typeOid: OID.int4 },
    { name: 'owner', typeOid: OID.text },
    { name: 'epoch', typeOid: OID.int8 },
    { name: 'committed_offset', typeOid: OID.int8 },
    { name: 'end_offset', typeOid: OID.int8 },
    { name: 'lag', typeOid: OID.int8 },
    { name: 'committed_at', typeOid: OID.timestamptz },
  ],
  setReturning: true,
  async run(args, ctx) {
    const a = await access(ctx);
    const rows = await groupLag(a, args.get('group_name')!);
    for (const t of new Set(rows.map((r) => r.topic))) await requireRead(ctx, await topicFor(a, t));
    return rows.map((r) => [r.topic, String(r.partition), r.owner, r.epoch, r.nextOffset, r.endOffset, r.lag, r.committedAt]);
  },
};

const consumerLeases: CommandDefinition = {
  name: 'consumer_leases',
  params: [{ name: 'group_name', type: 'text' }],
  returns: [
    { name: 'topic', typeOid: OID.text },
    { name: 'partition', typeOid: OID.int4 },
    { name: 'owner', typeOid: OID.text },
    { name: 'new_owner', typeOid: OID.text },
    { name: 'epoch', typeOid: OID.int8 },
    { name: 'next_offset', typeOid: OID.int8 },
    { name: 'heartbeat_age_ms', typeOid: OID.int8 },
  ],
  setReturning: true,
  async run(args, ctx) {
    const a = await access(ctx);
    return groupLeases(a, args.get('group_name')!);
  },
};

const expire: CommandDefinition = {
  name: 'expire_leases',
  params: [],
  returns: [{ name: 'expire_leases', typeOid: OID.int4 }],
  setReturning: false,
  async run(_args, ctx) {
    return [[String(await expireLeases(await access(ctx)))]];
  },
};

const retention: CommandDefinition = {
  name: 'apply_retention',
  params: [{ name: 'topic', type: 'text', default: null }],
  returns: [{ name: 'apply_retention', typeOid: OID.int8 }],
  setReturning: false,
  async run(args, ctx) {
    const a = await access(ctx);
    const only = args.get('topic') ?? null;
    if (only !== null) {
      const owner = await a.coordinator.query(
        'SELECT pg_catalog.pg_has_role($1, c.relowner, $2) FROM pgweave_streams.topic t JOIN pg_catalog.pg_class c ON c.oid = t.relid WHERE t.name = $3',
        [ctx.user, 'MEMBER', only],
      );
      if (owner.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: `must be owner of topic ${only}` });
    } else {
      const su = await a.coordinator.query('SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1', [ctx.user]);
      if (su.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: 'apply_retention() for every topic is for superusers; name a topic you own' });
    }
    return [[String(await applyRetention(a, only))]];
  },
};

export const STREAM_COMMANDS: CommandDefinition[] = [
  createTopic,
  alterTopic,
  dropTopic,
  listTopics,
  publish,
  publishBatch,
  createGroup,
  pollEvents,
  commitOffset,
  heartbeat,
  leaveGroup,
  seekGroup,
  readTopic,
  topicOffsets,
  consumerLag,
  consumerLeases,
  expire,
  retention,
];
