/**
 * Events in and out without a group: publish, publish_batch, read_topic
 * (by position or from the start or end) and topic_offsets.
 */
import { PgError } from '../../protocol/errors.js';
import { readFrom, firstOffsets, endOffsets } from '../../streams/consume.js';
import { parseEventBatch, publishEvents } from '../../streams/publish.js';
import type { CommandDefinition } from '../command-types.js';
import { OID, access, topicFor, requireRead, intArg, payloadOut } from './stream-access.js';

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


export const EVENT_COMMANDS: CommandDefinition[] = [publish, publishBatch, readTopic, topicOffsets];
