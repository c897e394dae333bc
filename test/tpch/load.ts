/**
 * Loads generated TPC-H data into a pgweave cluster (tables created and
 * filled through the coordinator, then distributed: create_distributed_table
 * moves the existing rows into the shards) and into a plain PostgreSQL, in
 * the layout the issue asks for: lineitem and orders distributed by order key
 * and co-located, partsupp, part, supplier and customer by their keys,
 * nation and region as reference tables.
 */
import type pg from 'pg';
import { copyChunks, TPCH_DDL, TPCH_TABLES, type TpchData } from './generator.js';
import { copyIn } from '../analytics/support.js';

const DISTRIBUTION: Array<[string, string]> = [
  [`region`, `SELECT create_reference_table('region')`],
  [`nation`, `SELECT create_reference_table('nation')`],
  [`orders`, `SELECT create_distributed_table('orders', 'o_orderkey')`],
  [`lineitem`, `SELECT create_distributed_table('lineitem', 'l_orderkey', colocate_with => 'orders')`],
  [`part`, `SELECT create_distributed_table('part', 'p_partkey')`],
  [`partsupp`, `SELECT create_distributed_table('partsupp', 'ps_partkey')`],
  [`supplier`, `SELECT create_distributed_table('supplier', 's_suppkey')`],
  [`customer`, `SELECT create_distributed_table('customer', 'c_custkey')`],
];

/**
 * Secondary indexes on foreign keys (the spec allows them): without
 * lineitem's, PostgreSQL answers Q17 and Q20 by scanning lineitem once per
 * outer row — minutes at scale 0.1.
 */
const TPCH_INDEXES = [`CREATE INDEX lineitem_part_supp ON lineitem (l_partkey, l_suppkey)`];

/** Creates and fills the eight tables (no distribution), then their secondary indexes. */
export async function createAndCopy(c: pg.Client, data: TpchData): Promise<void> {
  for (const t of TPCH_TABLES) {
    await c.query(TPCH_DDL[t]);
    const tag = await copyIn(c, `COPY ${t} FROM STDIN`, copyChunks(data.rows[t]));
    if (tag !== `COPY ${data.rows[t].length}`) throw new Error(`loading ${t}: ${tag}, expected COPY ${data.rows[t].length}`);
  }
  for (const sql of TPCH_INDEXES) await c.query(sql);
}

/** Plain PostgreSQL: tables, rows, ANALYZE. */
export async function loadPlain(c: pg.Client, data: TpchData): Promise<void> {
  await createAndCopy(c, data);
  await c.query('ANALYZE');
}

/**
 * pgweave: register the workers, create and fill the tables on the
 * coordinator, then distribute them over `shardCount` shards.
 */
export async function loadPgweave(c: pg.Client, data: TpchData, workers: Array<{ host: string; port: number }>, shardCount = 8): Promise<void> {
  for (const w of workers) await c.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  await c.query(`SET citus.shard_count = ${shardCount}`);
  await createAndCopy(c, data);
  for (const [, sql] of DISTRIBUTION) await c.query(sql);
  await c.query('ANALYZE');
}
