/**
 * The shard-operation cleanup job: every few seconds, for each database this
 * coordinator serves, removes what finished or dead operations left on the
 * nodes — subscriptions, replication slots (which would hold WAL for ever),
 * publications, half-copied tables, and the old shards of completed moves
 * once their delay passed (operations/cleanup.ts). Objects of operations
 * still running are never touched (their liveness lock is held). A failing
 * round is retried at the next tick.
 */
import type { NodePools } from '../pool/node-pools.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import { cleanupDatabase } from '../operations/cleanup.js';
import type { OperationConfig } from '../operations/context.js';
import { DatabaseLoop } from './database-loop.js';

export class CleanupLoop extends DatabaseLoop {
  constructor(pools: NodePools, metadata: MetadataCache, config: OperationConfig, intervalMs = 10_000) {
    super(intervalMs, (database) => cleanupDatabase({ database, config, pools, metadata }));
  }
}
