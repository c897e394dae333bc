/**
 * What shard operations (moves, the rebalancer, splits, cleanup) work with.
 * The commands layer's CommandContext has all of it; the DDL of a shard table
 * comes from the commands layer too (it owns shard-ddl), passed down as
 * `ShardDefinitions` so this module never imports upward (DESIGN.md).
 */
import { connectBackend } from '../pool/backend-connection.js';
import { InternalClient } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import type { NodeAddress } from '../metadata/types.js';

export interface OperationConfig {
  coordinator: NodeAddress;
  internalDatabase?: string;
  internal: { user: string; password: string };
}

export interface OperationContext {
  database: string;
  config: OperationConfig;
  pools: NodePools;
  metadata: MetadataCache;
}

/** The SQL that recreates one distributed table's shard on another node. */
export interface ShardTableDdl {
  /** Schema (with its owner and grants) and the roles the shard names, made to exist on the node. */
  prepareNode(node: NodeAddress): Promise<void>;
  /** Table, owner, constraints other than foreign keys (so the replica identity), grants, policies. */
  table(shardId: number): string[];
  /** Indexes: built after the initial copy, which is faster than maintaining them row by row. */
  indexes(shardId: number): string[];
  /** Foreign keys to the co-located shards (same hash range) and reference tables. */
  foreignKeys(shardId: number): string[];
  /** Whether the table has foreign keys (splits do not recreate them yet). */
  hasForeignKeys: boolean;
  /**
   * Copies the rows of shard table `from` matching `where` (SQL over its
   * columns) into shard table `to`, in batches; `source` is inside a
   * transaction (a cursor reads), `target` commits each batch.
   */
  copyRows(source: InternalClient, from: string, target: InternalClient, to: string, where: string): Promise<number>;
}

/** Loads the DDL builder of a distributed table (by pg_class oid). */
export type ShardDefinitions = (relationId: number) => Promise<ShardTableDdl>;

/** An unpooled internal-role connection for work that holds a connection for long (locks, waits). */
export async function dedicatedConnection(ctx: OperationContext, node: NodeAddress, database = ctx.database): Promise<InternalClient> {
  const options = ctx.pools.get(node.host, node.port, database).options;
  return new InternalClient(await connectBackend({ ...options, params: [['application_name', 'pgweave shard operation']] }));
}

export function coordinatorPool(ctx: OperationContext) {
  return ctx.pools.get(ctx.config.coordinator.host, ctx.config.coordinator.port, ctx.database);
}
