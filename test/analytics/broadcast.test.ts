/**
 * Broadcast joins (src/planner/broadcast-planner.ts, src/session/broadcast-tables.ts):
 * joins of distributed tables that are not co-located, or not joined on
 * their distribution columns, run on the shards of the larger side with the
 * smaller side shipped to every task node. Every statement is compared with
 * a plain PostgreSQL holding the same rows (values, order where defined,
 * column names and types), and EXPLAIN must show the strategy expected —
 * broadcast where it is safe and cheaper, the plain pull where a broadcast
 * would duplicate preserved rows (outer joins), inside transaction blocks,
 * or where broadcasting would move more than pulling.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { commitStats } from '../../src/transaction/distributed-commit.js';
import type { TestCluster } from '../helpers/cluster.js';
import { assertSameResult, compareResults, type DifferentialPair, explainLines, runQuery, startDifferentialPair } from './support.js';

let pair: DifferentialPair | undefined;
let cluster: TestCluster | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  // sales: the big side, distributed by id; customers and products each by their own key, not co-located with it.
  `CREATE TABLE sales (id int8 PRIMARY KEY, cust int, prod int, qty int, price numeric(10,2), note text COLLATE "C", sold date)`,
  `INSERT INTO sales SELECT g, CASE WHEN g % 29 = 0 THEN NULL ELSE g % 230 END, g % 57, 1 + g % 9, round((g % 1000) / 7.0, 2),
     (ARRAY['a','B','b','ä',NULL])[1 + g % 5], date '2024-01-01' + (g % 400) FROM generate_series(1, 30000) g`,
  `CREATE TABLE customers (cid int PRIMARY KEY, name text, region text, tier int)`,
  `INSERT INTO customers SELECT g, 'cust ' || g, (ARRAY['north','south','east',NULL])[1 + g % 4], g % 3 FROM generate_series(1, 200) g`,
  `CREATE TABLE products (pid int PRIMARY KEY, label varchar(20), category text, weight real)`,
  `INSERT INTO products SELECT g, 'p' || g, (ARRAY['tools','toys','food'])[1 + g % 3], g / 4.0 FROM generate_series(0, 49) g`,
  `CREATE TABLE regions (region text PRIMARY KEY, manager text)`,
  `INSERT INTO regions VALUES ('north', 'Ann'), ('south', 'Bo'), ('west', 'Cy')`,
];

before(async () => {
  pair = await startDifferentialPair('broadcast', SETUP, [
    `SELECT create_distributed_table('sales', 'id', shard_count => 6)`,
    `SELECT create_distributed_table('customers', 'cid', shard_count => 4)`,
    `SELECT create_distributed_table('products', 'pid', colocate_with => 'none')`,
    `SELECT create_reference_table('regions')`,
  ]);
  ({ cluster, weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

function explain(sql: string): Promise<string[]> {
  return explainLines(weave, sql);
}

/** Same result as PostgreSQL; `strategy` is 'broadcast' (with the anchor table) or 'pull'. */
async function same(sql: string, strategy: { broadcast: string } | 'pull', ordered = /ORDER BY/i.test(sql)): Promise<string[]> {
  await assertSameResult(weave, reference, sql, ordered);
  const lines = await explain(sql);
  const join = lines.find((l) => l.startsWith('  Join Strategy: '));
  if (strategy === 'pull') {
    assert.equal(join, undefined, `${sql}\n${lines.join('\n')}`);
    assert.ok(lines.some((l) => l.startsWith('  Planner: pull')), `${sql}\n${lines.join('\n')}`);
  } else {
    assert.match(join ?? '', new RegExp(`broadcast .*tasks on the shards of "public"\\."${strategy.broadcast}"`), `${sql}\n${lines.join('\n')}`);
  }
  return lines;
}

const SALES = { broadcast: 'sales' };

test('inner join with a table not co-located: aggregates grouped by the broadcast side, ORDER BY', async () => {
  await same(`SELECT c.region, count(*), sum(s.qty * s.price), avg(s.qty), min(s.note), max(s.sold)
                FROM sales s JOIN customers c ON c.cid = s.cust GROUP BY c.region ORDER BY c.region NULLS FIRST`, SALES);
  await same(`SELECT region, count(DISTINCT prod) AS prods FROM sales, customers WHERE cust = cid AND tier = 1 GROUP BY region ORDER BY 1`, SALES);
  await same(`SELECT count(*) FROM sales s, customers c WHERE s.cust = c.cid`, SALES);
});

test('rows with ORDER BY … LIMIT/OFFSET and DISTINCT over a broadcast join', async () => {
  await same(`SELECT s.id, c.name, s.note FROM sales s JOIN customers c ON c.cid = s.cust ORDER BY s.note COLLATE "C" DESC NULLS LAST, s.id LIMIT 25 OFFSET 5`, SALES);
  await same(`SELECT DISTINCT c.region, s.qty FROM sales s JOIN customers c ON c.cid = s.cust ORDER BY 1, 2`, SALES);
  await same(`SELECT s.id, c.name FROM sales s JOIN customers c ON c.cid = s.cust WHERE s.id < 400`, SALES, false);
});

test('three distributed tables in different co-location groups and a reference table; the filter goes to the broadcast shards', async () => {
  const lines = await same(`SELECT p.category, r.manager, sum(s.qty) AS units, count(*) AS n
                FROM sales s, customers c, products p, regions r
               WHERE s.cust = c.cid AND s.prod = p.pid AND c.region = r.region AND p.category <> 'food' AND c.tier = 2
               GROUP BY p.category, r.manager HAVING count(*) > 5 ORDER BY units DESC, 1, 2`, SALES);
  assert.ok(lines.some((l) => l.startsWith('  ->  Broadcast "public"."customers" as pg_temp.pgweave_broadcast_')), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('  ->  Broadcast "public"."products" as pg_temp.pgweave_broadcast_')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('Shard Filter:') && l.includes('tier')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('Shard Filter:') && l.includes('category')), lines.join('\n'));
});

test('LEFT JOIN: the inner side is broadcast, conditions on it stay after the join', async () => {
  await same(`SELECT s.id, c.name FROM sales s LEFT JOIN customers c ON c.cid = s.cust WHERE c.cid IS NULL ORDER BY s.id LIMIT 20`, SALES);
  await same(`SELECT coalesce(c.region, '?') AS region, count(*), count(c.cid) FROM sales s LEFT JOIN customers c ON c.cid = s.cust AND c.tier = 0
               GROUP BY 1 ORDER BY 1`, SALES);
  await same(`SELECT count(*) FROM sales s LEFT JOIN customers c ON c.cid = s.cust WHERE coalesce(c.tier, 9) = 9`, SALES);
  await same(`SELECT c.tier, count(*) FROM customers c RIGHT JOIN sales s ON c.cid = s.cust GROUP BY c.tier ORDER BY 1`, SALES);
});

test('outer joins that would duplicate preserved rows of a broadcast side are not broadcast that way', async () => {
  // customers preserved: broadcasting customers would repeat its unmatched rows once per shard.
  for (const sql of [
    `SELECT c.cid, count(s.id) FROM customers c LEFT JOIN sales s ON s.cust = c.cid GROUP BY c.cid ORDER BY 2, 1 LIMIT 30`,
    `SELECT c.cid, s.id FROM customers c FULL JOIN sales s ON s.cust = c.cid WHERE s.id IS NULL OR s.id < 50 ORDER BY 1, 2`,
  ]) {
    const expected = await runQuery(reference, sql);
    const actual = await runQuery(weave, sql);
    assert.ok(expected.ok && actual.ok, sql);
    assert.equal(compareResults(expected.result, actual.result, 'total'), null, sql);
    const join = (await explain(sql)).find((l) => l.startsWith('  Join Strategy: '));
    assert.ok(join === undefined || !join.includes('shards of "public"."sales"'), `${sql}: ${join}`);
  }
});

test('a broadcast table whose names need quoting (quotes, upper case, spaces) and a collated column', async () => {
  for (const c of [weave, reference]) {
    await c.query(`CREATE TABLE "Odd Customers" ("Cust ""Id""" int PRIMARY KEY, "Region Name" text COLLATE "C", "TIER" int)`);
    await c.query(`INSERT INTO "Odd Customers" SELECT g, (ARRAY['north','South','east',NULL])[1 + g % 4], g % 3 FROM generate_series(1, 200) g`);
  }
  await weave.query(`SELECT create_distributed_table('"Odd Customers"', 'Cust "Id"', shard_count => 4)`);
  await same(`SELECT c."Region Name", count(*), sum(s.qty) FROM sales s JOIN "Odd Customers" c ON c."Cust ""Id""" = s.cust
               WHERE c."TIER" < 2 GROUP BY 1 ORDER BY 1 NULLS FIRST`, SALES);
});

test('a self-join on a non-distribution column moves less by pulling than by broadcasting the table itself', async () => {
  await same(`SELECT count(*) FROM sales a JOIN sales b ON a.cust = b.prod AND a.qty = b.qty WHERE a.id < 2000`, 'pull');
});

test('a FROM subquery that only joins and filters runs per anchor shard (TPC-H Q7–Q9 shape)', async () => {
  await same(`SELECT region, sum(v) AS total, count(*) FROM (SELECT c.region, s.qty * s.price AS v FROM sales s JOIN customers c ON c.cid = s.cust WHERE c.tier > 0) AS x
               GROUP BY region ORDER BY total DESC`, SALES);
  // GROUP BY cust means the subquery's cust (sales.prod), not the output alias.
  await same(`SELECT min(id) AS cust, count(*) FROM (SELECT s.prod AS cust, s.cust AS id FROM sales s JOIN products p ON p.pid = s.prod WHERE category = 'toys') AS x
               GROUP BY cust ORDER BY 1, 2`, SALES);
  // id below the subquery is sales.cust, not sales' distribution column: groups span shards (co-located pushdown, no broadcast).
  const sql = `SELECT id, count(*) FROM (SELECT s.cust AS id FROM sales s WHERE s.qty > 2) AS x GROUP BY id ORDER BY 2 DESC, 1 LIMIT 8`;
  const [expected, actual] = [await runQuery(reference, sql), await runQuery(weave, sql)];
  assert.ok(expected.ok && actual.ok, sql);
  assert.equal(compareResults(expected.result, actual.result, 'total'), null, sql);
  // The outer condition on "category" names the subquery's column (a label), not products.category: it must not filter products' shards.
  const lines = await same(`SELECT category, count(*) FROM (SELECT p.label AS category, s.id FROM sales s JOIN products p ON p.pid = s.prod) AS x
               WHERE category IN ('p3', 'p4') GROUP BY category ORDER BY 1`, SALES);
  assert.ok(!lines.some((l) => l.includes('Shard Filter')), lines.join('\n'));
  await same(`SELECT x.id, x.name FROM (SELECT s.id, c.name FROM sales s, customers c WHERE s.cust = c.cid AND c.region = 'east') x ORDER BY x.id DESC LIMIT 7`, SALES);
});

test('semi and anti joins (EXISTS, NOT EXISTS, IN) over broadcast or co-located tables run per anchor shard', async () => {
  await same(`SELECT c.region, count(*), sum(s.qty) FROM sales s JOIN customers c ON c.cid = s.cust
               WHERE EXISTS (SELECT 1 FROM products p WHERE p.pid = s.prod AND p.category = 'toys') GROUP BY 1 ORDER BY 1`, SALES);
  await same(`SELECT s.id, s.prod FROM sales s WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.pid = s.prod AND p.weight > 5)
               AND s.cust IN (SELECT cid FROM customers WHERE tier = 1) ORDER BY s.id DESC LIMIT 15`, SALES);
  // s2 is tied to s by the distribution column: co-located with the anchor, not broadcast.
  await same(`SELECT c.tier, count(*) FROM sales s, customers c WHERE s.cust = c.cid
               AND EXISTS (SELECT 1 FROM sales s2 WHERE s2.id = s.id AND s2.qty > 3) AND NOT EXISTS (SELECT 1 FROM regions r WHERE r.region = c.region)
               GROUP BY 1 ORDER BY 1`, SALES);
  // The subquery reads sales without tying it to an outer shard: never per shard of the outer side.
  for (const sql of [
    `SELECT c.cid FROM customers c WHERE EXISTS (SELECT 1 FROM sales s WHERE s.cust = c.cid AND s.qty = 9) ORDER BY 1`,
    `SELECT p.pid, count(*) FROM products p, customers c WHERE c.cid = p.pid AND p.pid NOT IN (SELECT prod FROM sales WHERE qty = 1 AND prod IS NOT NULL) GROUP BY 1 ORDER BY 1`,
  ]) {
    const [expected, actual] = [await runQuery(reference, sql), await runQuery(weave, sql)];
    assert.ok(expected.ok && actual.ok, sql);
    assert.equal(compareResults(expected.result, actual.result, 'total'), null, sql);
  }
});

/** Tables in the staging schema of broadcast joins in blocks, on every worker (none may outlive a block). */
async function stagingTables(): Promise<number> {
  let n = 0;
  for (const w of cluster!.workers) {
    const c = new pg.Client({ host: w.host, port: w.port, user: 'postgres', password: cluster!.password, database: 'postgres' });
    await c.connect();
    try {
      const r = await c.query(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'pgweave_staging'`);
      n += r.rows[0].n as number;
    } finally {
      await c.end();
    }
  }
  return n;
}

// Last in the file: it writes (both servers alike), and the dead rows change the tables' sizes the strategy choice reads.
test('inside a transaction block: broadcast over staging tables reading the block\'s own writes, then two-phase commit', async () => {
  const sql = `SELECT c.region, sum(s.qty), count(*) FROM sales s JOIN customers c ON c.cid = s.cust GROUP BY 1 ORDER BY 1`;
  const writes = [
    `UPDATE sales SET qty = qty + 100 WHERE id % 50 = 0`,
    `UPDATE customers SET region = 'west' WHERE cid % 7 = 0`,
  ];
  const before = commitStats.multiNode;
  for (const c of [weave, reference]) await c.query('BEGIN');
  try {
    // One connection per worker: see EXTRAS_IN_BLOCK below.
    await weave.query('SET LOCAL citus.max_adaptive_executor_pool_size = 1');
    for (const w of writes) for (const c of [weave, reference]) await c.query(w);
    const expected = await runQuery(reference, sql);
    const actual = await runQuery(weave, sql);
    assert.ok(expected.ok && actual.ok, !actual.ok ? actual.message : '');
    assert.equal(compareResults(expected.result, actual.result, 'total'), null);
    const lines = await explain(sql);
    assert.match(lines.find((l) => l.startsWith('  Join Strategy: ')) ?? lines.join('\n'), /broadcast .*tasks on the shards of "public"\."sales"/);
    assert.ok(lines.some((l) => l.startsWith('  ->  Broadcast "public"."customers" as pgweave_staging.')), lines.join('\n'));
    // A write after the join, on every worker: the commit needs PREPARE TRANSACTION on each.
    for (const c of [weave, reference]) await c.query(`UPDATE sales SET note = 'after' WHERE id % 97 = 0`);
    assert.equal(await stagingTables(), 0);
  } finally {
    for (const c of [weave, reference]) await c.query('COMMIT');
  }
  assert.equal(commitStats.multiNode, before + 1, 'one two-phase commit');
  await same(sql, SALES);
  const after = `SELECT count(*) FROM sales WHERE note = 'after'`;
  const [e, a] = [await runQuery(reference, after), await runQuery(weave, after)];
  assert.ok(e.ok && a.ok && Number(a.result.rows[0]![0]) > 0);
  assert.deepEqual(a.result.rows, e.result.rows);

  // ROLLBACK: nothing of the block stays, staging tables included.
  const total = `SELECT sum(qty) FROM sales`;
  const was = await runQuery(weave, total);
  await weave.query('BEGIN');
  await weave.query('SET LOCAL citus.max_adaptive_executor_pool_size = 1');
  await weave.query(`UPDATE sales SET qty = qty + 1 WHERE id % 3 = 0`);
  const inBlock = await runQuery(weave, sql);
  assert.ok(inBlock.ok, !inBlock.ok ? `${inBlock.code} ${inBlock.message}` : '');
  await weave.query('ROLLBACK');
  const now = await runQuery(weave, total);
  assert.ok(was.ok && now.ok);
  assert.deepEqual(now.result.rows, was.result.rows);
  assert.equal(await stagingTables(), 0);

});

/**
 * Known bug (todo): in a block, a multi-shard write whose tasks spread over extra connections (slow start under
 * load, or citus.force_max_query_parallelization) leaves those shards' uncommitted rows on the extras, but a pull
 * or a broadcast then reads every shard of a node through the node's main connection (pull-tables.ts linkFor per
 * node) and misses them; reading through the affine connection instead moves the anchor tasks away from the
 * connection holding the staging tables (broadcast-tables.ts creates them per node). The other block tests here
 * and in pushdown-params pin one connection per worker so they do not depend on the host's load.
 */
const EXTRAS_IN_BLOCK = 'a block\'s pulls and broadcasts read shards per node, not through the connection that wrote them';

test('inside a block whose multi-shard writes ran on several connections per worker, a broadcast and a pull read those writes', { todo: EXTRAS_IN_BLOCK }, async () => {
  // All connections at once (no slow start): the UPDATEs' tasks spread over extra connections of the block,
  // which then hold those shards' uncommitted rows; every later read of those shards must go to them.
  const queries = [
    { sql: `SELECT c.region, sum(s.qty), count(*) FROM sales s JOIN customers c ON c.cid = s.cust GROUP BY 1 ORDER BY 1`, strategy: 'broadcast' },
    { sql: `SELECT c.tier, sum(s.qty) FROM sales s FULL JOIN customers c ON c.cid = s.cust GROUP BY 1 ORDER BY 1`, strategy: 'any' },
  ];
  for (const c of [weave, reference]) await c.query('BEGIN');
  try {
    await weave.query('SET LOCAL citus.force_max_query_parallelization = on');
    for (const w of [`UPDATE sales SET qty = qty + 1000 WHERE id % 3 = 0`, `UPDATE customers SET region = 'west', tier = 9 WHERE cid % 5 = 0`]) {
      for (const c of [weave, reference]) await c.query(w);
    }
    for (const q of queries) {
      const expected = await runQuery(reference, q.sql);
      const actual = await runQuery(weave, q.sql);
      assert.ok(expected.ok && actual.ok, !actual.ok ? actual.message : '');
      assert.equal(compareResults(expected.result, actual.result, 'total'), null, q.sql);
    }
  } finally {
    for (const c of [weave, reference]) await c.query('ROLLBACK');
  }
});
