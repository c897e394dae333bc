/**
 * `pgweave/client`: the TypeScript library for pgweave streams (producers,
 * consumer groups with at-least-once or exactly-once batches) and plain
 * queries. It speaks the PostgreSQL protocol to any pgweave coordinator.
 *
 *   import { StreamsClient } from 'pgweave/client';
 *   const client = await StreamsClient.connect(process.env.DATABASE_URL!);
 */
export { Connection, parseConnectionString, PgError, type ConnectionOptions, type QueryResult } from './connection.js';
export { copyFromStream, copyFromStatement, type CopyFromOptions, type CopyFromResult, type CopyProgress, type CopyStatementOptions } from './copy-from.js';
export {
  StreamsClient,
  Producer,
  Consumer,
  Batch,
  FencedError,
  FENCED_SQLSTATE,
  type ConsumerOptions,
  type DeliveryMode,
  type LagRow,
  type ProducerEvent,
  type RecordMetadata,
  type StreamEvent,
  type TopicOptions,
} from './streams.js';
