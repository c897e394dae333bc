/**
 * Reads what a shard operation works on from the catalog: the shard group of
 * a shard (the shards of every co-located table covering the same hash
 * range), and nodes by address or group.
 */
import { PgError } from '../protocol/errors.js';
import type { InternalClient } from '../pool/internal-client.js';
import { quoteQualified } from '../sql/quote.js';
import { shardName } from '../metadata/shard-name.js';
import { readNode, type NodeRow } from '../metadata/catalog-writes.js';

type Queryable = { query: InternalClient['query'] };

export interface GroupShard {
  shardId: number;
  relationId: number;
  schema: string;
  table: string;
  /** Quoted, schema-qualified name of the shard table on its node. */
  qualifiedName: string;
}

export interface ShardGroup {
  colocationId: number;
  minValue: string | null;
  maxValue: string | null;
  /** Ordered by table oid, so every operation locks them in the same order. */
  shards: GroupShard[];
}

export async function readShardGroup(client: Queryable, shardId: number): Promise<ShardGroup> {
  const head = await client.query(
    `SELECT p.colocationid, p.partmethod, s.shardminvalue, s.shardmaxvalue FROM pgweave.shard s
     JOIN pgweave.partition p ON p.logicalrelid = s.logicalrelid WHERE s.shardid = $1`,
    [String(shardId)],
  );
  const h = head.rows[0];
  if (!h) throw new PgError({ code: 'XX000', message: `could not find valid entry for shard ${shardId}` });
  if (h[1] !== 'h') throw new PgError({ code: '0A000', message: `cannot move shard ${shardId} of a reference table`, detail: 'Reference tables have a copy on every node.' });
  const r = await client.query(
    `SELECT s.shardid, s.logicalrelid, n.nspname, c.relname FROM pgweave.partition p
     JOIN pgweave.shard s ON s.logicalrelid = p.logicalrelid
     JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE p.colocationid = $1 AND p.partmethod = 'h'
       AND s.shardminvalue IS NOT DISTINCT FROM $2 AND s.shardmaxvalue IS NOT DISTINCT FROM $3
     ORDER BY s.logicalrelid, s.shardid`,
    [h[0], h[2], h[3]],
  );
  return {
    colocationId: Number(h[0]),
    minValue: h[2],
    maxValue: h[3],
    shards: r.rows.map((row) => ({
      shardId: Number(row[0]),
      relationId: Number(row[1]),
      schema: row[2]!,
      table: row[3]!,
      qualifiedName: quoteQualified(row[2]!, shardName(row[3]!, Number(row[0]))),
    })),
  };
}

export async function requireNode(client: Queryable, host: string, port: number): Promise<NodeRow> {
  const node = await readNode(client, host, port);
  if (!node) throw new PgError({ code: '22023', message: `node at "${host}:${port}" does not exist` });
  return node;
}

export async function nodeById(client: Queryable, nodeId: number): Promise<NodeRow> {
  const r = await client.query(`SELECT nodename, nodeport FROM pgweave.node WHERE nodeid = $1`, [String(nodeId)]);
  if (!r.rows[0]) throw new PgError({ code: '22023', message: `node with node id ${nodeId} could not be found` });
  return requireNode(client, r.rows[0][0]!, Number(r.rows[0][1]));
}

/** Group ids holding an active placement of each shard. */
export async function placementGroups(client: Queryable, shardIds: number[]): Promise<Map<number, number[]>> {
  const r = await client.query(
    `SELECT shardid, groupid FROM pgweave.placement WHERE shardid = ANY($1::bigint[]) AND shardstate = 1 ORDER BY placementid`,
    ['{' + shardIds.join(',') + '}'],
  );
  const out = new Map<number, number[]>(shardIds.map((id) => [id, []]));
  for (const [s, g] of r.rows) out.get(Number(s))!.push(Number(g));
  return out;
}
