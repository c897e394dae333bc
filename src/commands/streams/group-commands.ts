/**
 * Consumer groups: create_consumer_group, poll_events (leases per
 * partition, epochs fence a consumer that lost its lease), commit_offset(s),
 * consumer_heartbeat, leave_group, seek_group, and what a group shows of
 * itself (consumer_lag, consumer_leases).
 */
import { PgError } from '../../protocol/errors.js';
import { quoteLiteral } from '../../sql/quote.js';
import { ensureGroup, poll } from '../../streams/consume.js';
import { groupLag, groupLeases, seek } from '../../streams/maintenance.js';
import type { CommandDefinition, Rows } from '../command-types.js';
import { OID, MAX_PARTITIONS, access, topicFor, requireRead, notInBlock, intArg, nullableInt, payloadOut } from './stream-access.js';
import { createTopic } from './topic-commands.js';

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


export const GROUP_COMMANDS: CommandDefinition[] = [createGroup, pollEvents, commitOffset, heartbeat, leaveGroup, seekGroup, consumerLag, consumerLeases];
