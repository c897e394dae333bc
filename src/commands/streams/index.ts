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
import type { CommandDefinition } from '../command-types.js';
import { EVENT_COMMANDS } from './event-commands.js';
import { GROUP_COMMANDS } from './group-commands.js';
import { TOPIC_COMMANDS } from './topic-commands.js';

export const STREAM_COMMANDS: CommandDefinition[] = [...TOPIC_COMMANDS, ...EVENT_COMMANDS, ...GROUP_COMMANDS];
