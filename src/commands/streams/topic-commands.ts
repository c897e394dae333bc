/**
 * Topics: create_topic (an ordinary distributed table with one shard per
 * partition, then its counters, triggers and registry rows in one
 * distributed transaction), alter_topic, drop_topic, list_topics, and the
 * maintenance the cron job runs (expire_leases, apply_retention).
 */
import { PgError } from '../../protocol/errors.js';
import { quoteIdent, quoteQualified } from '../../sql/quote.js';
import { parseSql } from '../../sql/parse.js';
import { readWorkerNodes } from '../../metadata/catalog-writes.js';
import { applyRetention, expireLeases } from '../../streams/maintenance.js';
import { eventsTableSql, partitionStatements, workerSchemaSql } from '../../streams/schema.js';
import { anchorKeys, checkTopicName, forgetTopics } from '../../streams/topics.js';
import { voidResult, type CommandDefinition } from '../command-types.js';
import { resolveRelation } from '../common.js';
import type { CommandContext } from '../context.js';
import { distributeTable, withDistributedChange } from '../distribute-table.js';
import { runDistributedUtility } from '../ddl/run-utility.js';
import { OID, MAX_PARTITIONS, MAINTENANCE_SCHEDULE, access, topicFor, notInBlock, intArg } from './stream-access.js';

export const createTopic: CommandDefinition = {
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


export const TOPIC_COMMANDS: CommandDefinition[] = [createTopic, alterTopic, dropTopic, listTopics, expire, retention];
