/**
 * Joins of distributed tables with local (coordinator-only) tables
 * (src/planner/recursive-planner.ts `replaceLocalTables`): the local table
 * becomes an intermediate result shipped to the task nodes like a reference
 * table, so the rest pushes down — except where a reference table could not
 * (the local side preserved by an outer join against shards), which keeps
 * the pull. Every statement is compared with a plain PostgreSQL.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { assertSameResult, compareResults, type DifferentialPair, explainLines, runQuery, startDifferentialPair, textClient } from './support.js';

let pair: DifferentialPair | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  `CREATE TABLE orders (okey int8 PRIMARY KEY, cust int, total numeric(12,2), status char(1))`,
  `INSERT INTO orders SELECT g, 1 + g % 150, round((g % 977) * 3.7, 2), (ARRAY['F','O','P'])[1 + g % 3] FROM generate_series(1, 3000) g`,
  `CREATE TABLE promo (cust int, pct int, label text)`,
  `INSERT INTO promo SELECT g, g % 7, 'p' || g FROM generate_series(1, 200, 3) g`,
];

before(async () => {
  pair = await startDifferentialPair('local_joins', SETUP, [`SELECT create_distributed_table('orders', 'okey', shard_count => 6)`]);
  ({ weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

async function same(sql: string): Promise<string[]> {
  await assertSameResult(weave, reference, sql, /ORDER BY/i.test(sql));
  return explainLines(weave, sql, 'COSTS OFF');
}

function has(lines: string[], pattern: RegExp, yes = true): void {
  assert.equal(lines.some((l) => pattern.test(l)), yes, `${pattern} ${yes ? 'not ' : ''}in:\n${lines.join('\n')}`);
}

test('an inner join with a local table ships the local table and pushes down (aggregates, ORDER BY, LIMIT, local filter)', async () => {
  for (const sql of [
    `SELECT o.cust, sum(o.total * p.pct) AS s, count(*) FROM orders o JOIN promo p ON p.cust = o.cust GROUP BY 1 ORDER BY 1`,
    `SELECT p.label, o.okey, o.total FROM orders o, promo p WHERE p.cust = o.cust AND p.pct > 3 ORDER BY o.total DESC, o.okey LIMIT 7`,
    `SELECT o.status, avg(o.total) FROM promo p JOIN orders o USING (cust) WHERE p.label LIKE 'p1%' GROUP BY o.status ORDER BY 1`,
  ]) {
    const lines = await same(sql);
    has(lines, /Distributed Subplan 1$/);
    has(lines, /^Custom Scan \(pgweave Pushdown\)/);
  }
});

test('a LEFT JOIN from a distributed table to a local table pushes down; the local table preserved keeps the pull', async () => {
  const nullable = await same(`SELECT o.okey, p.pct FROM orders o LEFT JOIN promo p ON p.cust = o.cust WHERE o.okey % 50 = 0 ORDER BY 1`);
  has(nullable, /Distributed Subplan 1$/);
  has(nullable, /^Custom Scan \(pgweave Pushdown\)/);
  const preserved = await same(`SELECT p.cust, count(o.okey) FROM promo p LEFT JOIN orders o ON o.cust = p.cust AND o.total > 3000 GROUP BY 1 ORDER BY 1`);
  has(preserved, /Distributed Subplan/, false);
});

test('temporary tables are local too; above pgweave.local_table_ship_threshold the rest runs on the coordinator', async () => {
  for (const c of [weave, reference]) {
    await c.query(`CREATE TEMP TABLE vip AS SELECT g AS cust FROM generate_series(1, 150, 10) g`);
  }
  const sql = `SELECT v.cust, count(*) FROM orders o JOIN vip v ON v.cust = o.cust GROUP BY 1 ORDER BY 1`;
  has(await same(sql), /^Custom Scan \(pgweave Pushdown\)/);
  await weave.query(`SET pgweave.local_table_ship_threshold = 0`);
  try {
    await assertSameResult(weave, reference, sql, true);
    const analyzed = await explainLines(weave, sql, 'ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF');
    has(analyzed, /local_table_ship_threshold/);
  } finally {
    await weave.query(`RESET pgweave.local_table_ship_threshold`);
  }
});

test('a role with SELECT on some columns of the local table joins on those columns; another column is refused with 42501', async () => {
  await weave.query(`CREATE ROLE local_joins_reader LOGIN PASSWORD 'local-joins-pw'`);
  await weave.query(`GRANT SELECT ON orders TO local_joins_reader`);
  await weave.query(`GRANT SELECT (cust, pct) ON promo TO local_joins_reader`);
  const url = new URL(pair!.cluster.url);
  url.username = 'local_joins_reader';
  url.password = 'local-joins-pw';
  const reader = await textClient(url.toString(), 'local_joins_reader');
  try {
    // The copy holds only the columns the statement names, so only their privileges are checked, as on PostgreSQL.
    const sql = `SELECT o.cust, sum(o.total * p.pct) AS s FROM orders o JOIN promo p ON p.cust = o.cust GROUP BY 1 ORDER BY 1`;
    const [mine, theirs] = [await runQuery(weave, sql), await runQuery(reader, sql)];
    assert.ok(mine.ok && theirs.ok, `${sql}: ${!theirs.ok && theirs.message}`);
    assert.equal(compareResults(mine.result, theirs.result, 'total'), null);
    has(await explainLines(reader, sql, 'COSTS OFF'), /Distributed Subplan 1$/);
    await assert.rejects(reader.query(`SELECT p.label, count(*) FROM orders o JOIN promo p ON p.cust = o.cust GROUP BY 1`), (e: { code?: string }) => e.code === '42501');
  } finally {
    await reader.end();
  }
});
