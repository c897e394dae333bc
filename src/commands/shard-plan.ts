/**
 * Deciding where a newly distributed table's shards go, with Citus's rules:
 *
 * - hash tables join a colocation group: `colocate_with => 'default'` picks the
 *   oldest group with the same shard count, replication factor, distribution
 *   column type and collation; `'none'` makes a new group; a table name joins
 *   that table's group (types must match). Joining a group copies the group's
 *   hash ranges and placements, which is what makes co-located joins local.
 *   A new group gets Citus's uniform ranges (shard-interval.ts) and places
 *   shard i on the i-th (mod n) active worker with shouldhaveshards, by node id.
 * - reference tables have one shard with a placement on every active worker,
 *   all in the single reference colocation group.
 *
 * Foreign keys are checked here too: they must point at a co-located hash
 * table through the distribution column, or at a reference table.
 */
import type { InternalClient } from '../pool/internal-client.js';
import { PgError } from '../protocol/errors.js';
import { computeShardIntervals, MAX_SHARD_COUNT } from '../metadata/shard-interval.js';
import {
  allocateShardIds,
  findColocationGroup,
  insertColocationGroup,
  readColocationGroup,
  readGroupShards,
  readPartition,
  readTableShards,
  readWorkerNodes,
  type PlannedShard,
} from '../metadata/catalog-writes.js';
import type { RelationInfo } from './common.js';
import type { ShardRef } from './shard-ddl.js';
import type { TableDefinition } from './table-definition.js';

export interface HashRequest {
  method: 'hash';
  distAttnum: number;
  typeOid: number;
  collation: number;
  colocateWith: 'default' | 'none' | RelationInfo;
  shardCount: number;
  shardCountGiven: boolean;
}

export interface ShardPlan {
  colocationId: number;
  shards: PlannedShard[];
}

function noWorkers(): PgError {
  return new PgError({ code: '22023', message: "couldn't find any worker nodes", hint: 'Add more worker nodes with citus_add_node.' });
}

export async function planHashShards(client: InternalClient, rel: RelationInfo, req: HashRequest): Promise<ShardPlan> {
  if (req.shardCount < 1 || req.shardCount > MAX_SHARD_COUNT) {
    throw new PgError({ code: '22023', message: `${req.shardCount} is outside the valid range for parameter "shard_count" (1 .. ${MAX_SHARD_COUNT})` });
  }
  let colocationId: number | null = null;
  if (typeof req.colocateWith === 'object') {
    const source = req.colocateWith;
    if (req.shardCountGiven) {
      throw new PgError({ code: '22023', message: 'Cannot use colocate_with with a table and shard_count at the same time' });
    }
    const partition = await readPartition(client, source.oid);
    if (!partition || partition.method !== 'h') {
      throw new PgError({
        code: '42P16',
        message: 'cannot distribute relation',
        detail: 'Currently, colocate_with option is only supported for hash distributed tables.',
      });
    }
    const r = await client.query('SELECT atttypid, attcollation FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = $2', [
      String(source.oid),
      String(partition.distAttnum),
    ]);
    const [typeOid, collation] = [Number(r.rows[0]?.[0]), Number(r.rows[0]?.[1])];
    if (typeOid !== req.typeOid || collation !== req.collation) {
      throw new PgError({
        code: 'XX000',
        message: `cannot colocate tables ${source.name} and ${rel.name}`,
        detail: `Distribution column ${typeOid !== req.typeOid ? 'types' : 'collations'} don't match for ${source.name} and ${rel.name}.`,
      });
    }
    colocationId = partition.colocationId;
  } else if (req.colocateWith === 'default') {
    colocationId = await findColocationGroup(client, {
      shardCount: req.shardCount,
      replicationFactor: 1,
      distributionColumnType: req.typeOid,
      distributionColumnCollation: req.collation,
    });
  }

  if (colocationId !== null) {
    const groupShards = await readGroupShards(client, colocationId);
    if (groupShards.length > 0) {
      const ids = await allocateShardIds(client, groupShards.length);
      return { colocationId, shards: groupShards.map((s, i) => ({ ...s, shardId: ids[i]! })) };
    }
    const group = await readColocationGroup(client, colocationId);
    if (group) req = { ...req, shardCount: group.shardCount };
  }

  const nodes = (await readWorkerNodes(client)).filter((n) => n.isActive && n.shouldHaveShards);
  if (nodes.length === 0) throw noWorkers();
  colocationId ??= await insertColocationGroup(client, {
    shardCount: req.shardCount,
    replicationFactor: 1,
    distributionColumnType: req.typeOid,
    distributionColumnCollation: req.collation,
  });
  const ids = await allocateShardIds(client, req.shardCount);
  const intervals = computeShardIntervals(req.shardCount, 1);
  return {
    colocationId,
    shards: intervals.map((iv, i) => ({
      shardId: ids[i]!,
      minValue: iv.minValue,
      maxValue: iv.maxValue,
      groupIds: [nodes[i % nodes.length]!.groupId],
    })),
  };
}

export async function planReferenceShard(client: InternalClient): Promise<ShardPlan> {
  const nodes = (await readWorkerNodes(client)).filter((n) => n.isActive);
  if (nodes.length === 0) throw noWorkers();
  const group = { shardCount: 1, replicationFactor: -1, distributionColumnType: 0, distributionColumnCollation: 0 };
  const existing = await client.query(
    'SELECT colocationid FROM pgweave.colocation WHERE shardcount = 1 AND replicationfactor = -1 AND distributioncolumntype = 0 ORDER BY colocationid LIMIT 1',
  );
  const colocationId = existing.rows[0] ? Number(existing.rows[0][0]) : await insertColocationGroup(client, group);
  const [shardId] = await allocateShardIds(client, 1);
  return { colocationId, shards: [{ shardId: shardId!, minValue: null, maxValue: null, groupIds: nodes.map((n) => n.groupId) }] };
}

const NOT_COLOCATED = {
  code: '0A000',
  message: 'cannot create foreign key constraint since relations are not colocated or not referencing a reference table',
  detail: 'A distributed table can only have foreign keys if it is referencing another colocated hash distributed table or a reference table',
};

/**
 * Checks the table's foreign keys against Citus's rules and returns, for
 * shard index i, the shard each foreign key must point at.
 */
export async function planForeignKeys(
  client: InternalClient,
  def: TableDefinition,
  method: 'hash' | 'reference',
  distAttnum: number | null,
  plan: ShardPlan,
): Promise<(shardIndex: number) => (relid: number) => ShardRef> {
  const targets = new Map<number, { schema: string; name: string; shards: PlannedShard[] }>();
  for (const c of def.constraints) {
    if (c.type !== 'f' || targets.has(c.referencedRelid)) continue;
    if (c.referencedRelid === def.oid) {
      if (method === 'hash') checkDistributionColumnOrdinal(c.columns, c.referencedColumns, distAttnum!, distAttnum!);
      targets.set(def.oid, { schema: def.schema, name: def.name, shards: plan.shards });
      continue;
    }
    const partition = await readPartition(client, c.referencedRelid);
    if (!partition) throw new PgError(NOT_COLOCATED);
    if (partition.method === 'h') {
      if (method === 'reference') {
        throw new PgError({
          code: '0A000',
          message: 'cannot create foreign key constraint since foreign keys from reference tables and local tables to distributed tables are not supported',
          detail: 'Reference tables and local tables can only have foreign keys to reference tables and local tables',
        });
      }
      if (partition.colocationId !== plan.colocationId) throw new PgError(NOT_COLOCATED);
      checkDistributionColumnOrdinal(c.columns, c.referencedColumns, distAttnum!, partition.distAttnum!);
    }
    const name = await client.query(
      'SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1',
      [String(c.referencedRelid)],
    );
    targets.set(c.referencedRelid, { schema: name.rows[0]![0]!, name: name.rows[0]![1]!, shards: await readTableShards(client, c.referencedRelid) });
  }
  return (shardIndex) => (relid) => {
    const t = targets.get(relid)!;
    const shard = t.shards.length === 1 ? t.shards[0]! : t.shards[shardIndex]!;
    return { schema: t.schema, name: t.name, shardId: shard.shardId };
  };
}

function checkDistributionColumnOrdinal(columns: number[], referenced: number[], distAttnum: number, referencedDistAttnum: number): void {
  const at = columns.indexOf(distAttnum);
  if (at < 0 || referenced[at] !== referencedDistAttnum) {
    throw new PgError({
      code: '0A000',
      message: 'cannot create foreign key constraint',
      detail:
        'Foreign keys are supported in two cases, either in between two colocated tables including partition column in the same ordinal in the both tables or from distributed to reference tables',
    });
  }
}
