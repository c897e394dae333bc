/**
 * Reads and writes of catalog rows, on a connection the caller holds inside
 * its catalog transaction (commands/common.ts beginCatalogTransaction). Kept
 * here so the catalog's table layout (catalog-schema.ts) is known to the
 * metadata module only; commands speak in terms of colocation groups, shards
 * and placements.
 */
import type { InternalClient } from '../pool/internal-client.js';

export interface ColocationGroup {
  colocationId: number;
  shardCount: number;
  replicationFactor: number;
  distributionColumnType: number;
  distributionColumnCollation: number;
}

export interface PartitionRow {
  relationId: number;
  method: 'h' | 'n';
  distAttnum: number | null;
  colocationId: number;
}

export interface PlannedShard {
  shardId: number;
  /** null for reference tables. */
  minValue: number | null;
  maxValue: number | null;
  groupIds: number[];
}

export interface NodeRow {
  nodeId: number;
  groupId: number;
  host: string;
  port: number;
  isActive: boolean;
  shouldHaveShards: boolean;
}

const nodeColumns = 'nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards';
const toNode = (r: (string | null)[]): NodeRow => ({
  nodeId: Number(r[0]),
  groupId: Number(r[1]),
  host: r[2]!,
  port: Number(r[3]),
  isActive: r[4] === 't',
  shouldHaveShards: r[5] === 't',
});

/** Primary nodes other than the coordinator (group 0), by node id. */
export async function readWorkerNodes(client: InternalClient | { query: InternalClient['query'] }): Promise<NodeRow[]> {
  const r = await client.query(`SELECT ${nodeColumns} FROM pgweave.node WHERE noderole = 'primary' AND groupid <> 0 ORDER BY nodeid`);
  return r.rows.map(toNode);
}

export async function readNode(client: { query: InternalClient['query'] }, host: string, port: number): Promise<NodeRow | null> {
  const r = await client.query(`SELECT ${nodeColumns} FROM pgweave.node WHERE nodename = $1 AND nodeport = $2`, [host, String(port)]);
  return r.rows[0] ? toNode(r.rows[0]) : null;
}

export async function readPartition(client: InternalClient, relationId: number): Promise<PartitionRow | null> {
  const r = await client.query('SELECT partmethod, distattnum, colocationid FROM pgweave.partition WHERE logicalrelid = $1', [String(relationId)]);
  const row = r.rows[0];
  if (!row) return null;
  return { relationId, method: row[0] as 'h' | 'n', distAttnum: row[1] === null ? null : Number(row[1]), colocationId: Number(row[2]) };
}

export async function findColocationGroup(client: InternalClient, g: Omit<ColocationGroup, 'colocationId'>): Promise<number | null> {
  const r = await client.query(
    `SELECT g.colocationid FROM pgweave.colocation g
     WHERE g.shardcount = $1 AND g.replicationfactor = $2 AND g.distributioncolumntype = $3 AND g.distributioncolumncollation = $4
       AND EXISTS (SELECT 1 FROM pgweave.partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid WHERE p.colocationid = g.colocationid)
     ORDER BY g.colocationid LIMIT 1`,
    [String(g.shardCount), String(g.replicationFactor), String(g.distributionColumnType), String(g.distributionColumnCollation)],
  );
  return r.rows[0] ? Number(r.rows[0][0]) : null;
}

export async function readColocationGroup(client: InternalClient, colocationId: number): Promise<ColocationGroup | null> {
  const r = await client.query(
    'SELECT shardcount, replicationfactor, distributioncolumntype, distributioncolumncollation FROM pgweave.colocation WHERE colocationid = $1',
    [String(colocationId)],
  );
  const row = r.rows[0];
  if (!row) return null;
  return {
    colocationId,
    shardCount: Number(row[0]),
    replicationFactor: Number(row[1]),
    distributionColumnType: Number(row[2]),
    distributionColumnCollation: Number(row[3]),
  };
}

export async function insertColocationGroup(client: InternalClient, g: Omit<ColocationGroup, 'colocationId'>): Promise<number> {
  const r = await client.query(
    `INSERT INTO pgweave.colocation (shardcount, replicationfactor, distributioncolumntype, distributioncolumncollation)
     VALUES ($1, $2, $3, $4) RETURNING colocationid`,
    [String(g.shardCount), String(g.replicationFactor), String(g.distributionColumnType), String(g.distributionColumnCollation)],
  );
  return Number(r.rows[0]![0]);
}

/** Shards (sorted by range) and their placement groups of one existing table of a colocation group. */
export async function readGroupShards(client: InternalClient, colocationId: number): Promise<PlannedShard[]> {
  const r = await client.query(
    `WITH rep AS (SELECT min(p.logicalrelid) AS relid FROM pgweave.partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
                  WHERE p.colocationid = $1)
     SELECT s.shardid, s.shardminvalue, s.shardmaxvalue, array_agg(pl.groupid ORDER BY pl.placementid)::text
     FROM pgweave.shard s JOIN rep ON s.logicalrelid = rep.relid
     JOIN pgweave.placement pl ON pl.shardid = s.shardid AND pl.shardstate = 1
     GROUP BY s.shardid, s.shardminvalue, s.shardmaxvalue
     ORDER BY s.shardminvalue::integer NULLS FIRST, s.shardid`,
    [String(colocationId)],
  );
  return r.rows.map((row) => ({
    shardId: Number(row[0]),
    minValue: row[1] === null ? null : Number(row[1]),
    maxValue: row[2] === null ? null : Number(row[2]),
    groupIds: row[3]!.replace(/[{}]/g, '').split(',').filter(Boolean).map(Number),
  }));
}

/** Shards of a table (sorted by range) with their active placement groups. */
export async function readTableShards(client: InternalClient, relationId: number): Promise<PlannedShard[]> {
  const r = await client.query(
    `SELECT s.shardid, s.shardminvalue, s.shardmaxvalue, COALESCE(array_agg(pl.groupid ORDER BY pl.placementid) FILTER (WHERE pl.groupid IS NOT NULL), '{}')::text
     FROM pgweave.shard s LEFT JOIN pgweave.placement pl ON pl.shardid = s.shardid AND pl.shardstate = 1
     WHERE s.logicalrelid = $1
     GROUP BY s.shardid, s.shardminvalue, s.shardmaxvalue
     ORDER BY s.shardminvalue::integer NULLS FIRST, s.shardid`,
    [String(relationId)],
  );
  return r.rows.map((row) => ({
    shardId: Number(row[0]),
    minValue: row[1] === null ? null : Number(row[1]),
    maxValue: row[2] === null ? null : Number(row[2]),
    groupIds: row[3]!.replace(/[{}]/g, '').split(',').filter(Boolean).map(Number),
  }));
}

export async function allocateShardIds(client: InternalClient, count: number): Promise<number[]> {
  const r = await client.query(`SELECT nextval('pgweave.shardid_seq') FROM pg_catalog.generate_series(1, $1)`, [String(count)]);
  return r.rows.map((row) => Number(row[0]));
}

/** Inserts the pg_dist_partition, pg_dist_shard and pg_dist_placement rows of a newly distributed table. */
export async function insertTableMetadata(client: InternalClient, partition: PartitionRow, shards: PlannedShard[]): Promise<void> {
  await client.query(
    `INSERT INTO pgweave.partition (logicalrelid, partmethod, distattnum, colocationid, repmodel) VALUES ($1, $2, $3, $4, $5)`,
    [String(partition.relationId), partition.method, partition.distAttnum === null ? null : String(partition.distAttnum), String(partition.colocationId), partition.method === 'n' ? 't' : 's'],
  );
  const ids = shards.map((s) => s.shardId);
  const mins = shards.map((s) => (s.minValue === null ? null : String(s.minValue)));
  const maxs = shards.map((s) => (s.maxValue === null ? null : String(s.maxValue)));
  await client.query(
    `INSERT INTO pgweave.shard (shardid, logicalrelid, shardminvalue, shardmaxvalue)
     SELECT u.id, $1, u.lo, u.hi FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(id, lo, hi)`,
    [String(partition.relationId), pgArray(ids.map(String)), pgArray(mins), pgArray(maxs)],
  );
  const placementShards: string[] = [];
  const placementGroups: string[] = [];
  for (const s of shards) for (const g of s.groupIds) {
    placementShards.push(String(s.shardId));
    placementGroups.push(String(g));
  }
  await client.query(
    `INSERT INTO pgweave.placement (shardid, groupid) SELECT u.s, u.g FROM unnest($1::bigint[], $2::integer[]) AS u(s, g)`,
    [pgArray(placementShards), pgArray(placementGroups)],
  );
}

/** Removes a table's partition, shard and placement rows. */
export async function deleteTableMetadata(client: InternalClient, relationId: number): Promise<void> {
  await client.query('DELETE FROM pgweave.shard WHERE logicalrelid = $1', [String(relationId)]);
  await client.query('DELETE FROM pgweave.partition WHERE logicalrelid = $1', [String(relationId)]);
}

function pgArray(values: Array<string | null>): string {
  return '{' + values.map((v) => (v === null ? 'NULL' : '"' + v.replace(/["\\]/g, '\\$&') + '"')).join(',') + '}';
}

/** An object every node holds (pg_dist_object): its catalog's oid and its own. */
export interface DistributedObjectId {
  classId: number;
  objectId: number;
}

/** Records objects as distributed (kept if already recorded). */
export async function recordDistributedObjects(client: Pick<InternalClient, 'query'>, objects: DistributedObjectId[]): Promise<void> {
  if (objects.length === 0) return;
  await client.query(
    `INSERT INTO pgweave.dist_object (classid, objid)
     SELECT u.c, u.o FROM unnest($1::oid[], $2::oid[]) AS u(c, o)
     ON CONFLICT DO NOTHING`,
    [pgArray(objects.map((o) => String(o.classId))), pgArray(objects.map((o) => String(o.objectId)))],
  );
}

/**
 * The recorded objects that still exist; records of
 * objects dropped since (through the coordinator or directly) are removed.
 */
export async function readDistributedObjects(client: Pick<InternalClient, 'query'>): Promise<DistributedObjectId[]> {
  await forgetDroppedObjects(client);
  const r = await client.query('SELECT classid, objid FROM pgweave.dist_object WHERE objsubid = 0 ORDER BY classid, objid');
  return r.rows.map((row) => ({ classId: Number(row[0]), objectId: Number(row[1]) }));
}

/** Removes the records of objects that no longer exist. */
export async function forgetDroppedObjects(client: Pick<InternalClient, 'query'>): Promise<void> {
  await client.query(
    `DELETE FROM pgweave.dist_object o
     WHERE (pg_catalog.pg_identify_object_as_address(o.classid, o.objid, o.objsubid)).object_names IS NULL`,
  );
}
