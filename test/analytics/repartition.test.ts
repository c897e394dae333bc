/**
 * Repartition joins (src/planner/repartition-planner.ts, src/session/repartition-tables.ts):
 * joins of distributed tables on columns that are not both distribution
 * columns, with both sides re-hashed by the join key on the workers into
 * buckets that meet on one node. Every statement is compared with a plain
 * PostgreSQL holding the same rows (values, order where defined, column
 * names and types), and EXPLAIN must show the repartition strategy — or,
 * inside a transaction block and with citus.enable_repartition_joins off,
 * why it did not run. The test data is small, so the session lowers
 * pgweave.repartition_join_threshold to 0.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { nodeUrl } from '../router/support.js';
import { pollUntil } from '../server/support.js';
import { sendCancel } from '../server/raw-protocol.js';
import { assertSameResult, compareResults, type DifferentialPair, explainLines, runQuery, startDifferentialPair, textClient } from './support.js';

let pair: DifferentialPair | undefined;
let cluster: TestCluster | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  // orders: by id; cust (int4) joins custs.cid (int8), alt (int8) joins custs.alt (int4); both have NULL keys.
  `CREATE TABLE orders (id int8 PRIMARY KEY, cust int4, alt int8, amount numeric(10,2), note text)`,
  `INSERT INTO orders SELECT g, CASE WHEN g % 31 = 0 THEN NULL ELSE g % 2600 END, CASE WHEN g % 17 = 0 THEN NULL ELSE g % 900 END,
     round((g % 997) / 3.0, 2), (ARRAY['x','y',NULL,'z'])[1 + g % 4] FROM generate_series(1, 4000) g`,
  `CREATE TABLE custs (cid int8 PRIMARY KEY, alt int4, region text, code varchar(10), pad text, cost money)`,
  `INSERT INTO custs SELECT g, CASE WHEN g % 13 = 0 THEN NULL ELSE g % 1100 END, (ARRAY['north','south','east',NULL])[1 + g % 4],
     'c' || (g % 700), repeat('p', 80), (g % 70)::money FROM generate_series(1, 2500) g`,
  // items: joined by its text tag to custs.code (varchar).
  `CREATE TABLE items (iid int PRIMARY KEY, tag text, weight real, pad text, cost money)`,
  `INSERT INTO items SELECT g, CASE WHEN g % 11 = 0 THEN NULL ELSE 'c' || (g % 900) END, g / 8.0, repeat('q', 100), (g % 50)::money FROM generate_series(1, 3000) g`,
];

before(async () => {
  pair = await startDifferentialPair('repartition', SETUP, [
    `SELECT create_distributed_table('orders', 'id', shard_count => 4)`,
    `SELECT create_distributed_table('custs', 'cid', shard_count => 3, colocate_with => 'none')`,
    `SELECT create_distributed_table('items', 'iid', shard_count => 5, colocate_with => 'none')`,
  ]);
  ({ cluster, weave, reference } = pair);
  await weave.query(`SET pgweave.repartition_join_threshold = 0`);
}, { timeout: 300_000 });

after(() => pair?.stop());

function explain(sql: string): Promise<string[]> {
  return explainLines(weave, sql);
}

/** Same result as PostgreSQL, and EXPLAIN shows a repartition by `by` (e.g. 'o.cust = c.cid as pg_catalog.int8'). */
async function same(sql: string, by: string | null, ordered = /ORDER BY/i.test(sql)): Promise<string[]> {
  await assertSameResult(weave, reference, sql, ordered);
  const lines = await explain(sql);
  const join = lines.find((l) => l.startsWith('  Join Strategy: '));
  if (by === null) assert.ok(!join?.includes('repartition'), `${sql}\n${lines.join('\n')}`);
  else assert.ok(join?.startsWith(`  Join Strategy: repartition (by ${by}; 8 buckets on 2 nodes)`), `${sql}\n${lines.join('\n')}`);
  return lines;
}

const INT = 'o.cust = c.cid as pg_catalog.int8';
const ALT = 'o.alt = c.alt as pg_catalog.int8';

test('inner joins on int4 = int8 keys: aggregates, GROUP BY the key, count(DISTINCT), ORDER BY … LIMIT', async () => {
  await same(`SELECT c.region, count(*), sum(o.amount), avg(o.amount), min(o.note), max(c.code)
                FROM orders o JOIN custs c ON o.cust = c.cid GROUP BY c.region ORDER BY c.region NULLS FIRST`, INT);
  await same(`SELECT o.cust, count(*), sum(o.amount) FROM orders o JOIN custs c ON o.cust = c.cid GROUP BY o.cust ORDER BY 2 DESC, 1 LIMIT 10`, INT);
  await same(`SELECT count(DISTINCT c.region), count(*), sum(c.alt) FROM orders o, custs c WHERE o.cust = c.cid`, INT);
  await same(`SELECT o.id, c.cid, c.region FROM orders o JOIN custs c ON c.cid = o.cust ORDER BY o.amount DESC, o.id LIMIT 20 OFFSET 3`, INT);
  await same(`SELECT DISTINCT c.region, o.note FROM orders o JOIN custs c ON c.cid = o.cust ORDER BY 1, 2`, INT);
});

test('each side\'s own filters run on its shards before the rows move', async () => {
  const lines = await same(`SELECT c.region, count(*) FROM orders o JOIN custs c ON o.cust = c.cid
                             WHERE o.amount > 100 AND c.region <> 'east' GROUP BY 1 ORDER BY 1`, INT);
  assert.ok(lines.some((l) => l.startsWith('  ->  Repartition "public"."orders" o by "cust" into pg_temp.pgweave_repartition_')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('Shard Filter:') && l.includes('amount')), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('Shard Filter:') && l.includes('region')), lines.join('\n'));
});

test('outer joins on keys with NULLs on both sides: preserved rows appear exactly once', async () => {
  await same(`SELECT c.region, count(o.id), count(*), sum(o.amount) FROM custs c LEFT JOIN orders o ON o.alt = c.alt GROUP BY 1 ORDER BY 1`, 'c.alt = o.alt as pg_catalog.int8');
  await same(`SELECT count(*), count(o.id), count(c.cid), sum(o.amount), count(o.alt), count(c.alt) FROM orders o FULL JOIN custs c ON o.alt = c.alt`, ALT);
  await same(`SELECT c.cid, o.id FROM orders o RIGHT JOIN custs c ON o.alt = c.alt AND o.amount < 50 ORDER BY c.cid, o.id NULLS FIRST LIMIT 60`, ALT);
  await same(`SELECT o.id, c.cid FROM orders o LEFT JOIN custs c ON o.cust = c.cid WHERE c.cid IS NULL ORDER BY o.id`, INT);
  await same(`SELECT coalesce(o.note, '-') AS note, count(*) FROM orders o FULL JOIN custs c ON c.cid = o.cust WHERE o.id IS NULL OR o.id % 3 = 0 GROUP BY 1 ORDER BY 1`, INT);
});

test('TPC-H Q13 shape: customers LEFT JOIN orders on a non-distribution column, counted per customer', async () => {
  await same(`SELECT c.cid, count(o.id) AS n FROM custs c LEFT JOIN orders o ON c.cid = o.cust AND o.note <> 'z' GROUP BY c.cid ORDER BY n DESC, c.cid LIMIT 25`, 'c.cid = o.cust as pg_catalog.int8');
});

test('TPC-H Q13 itself: a FROM subquery grouped by the preserved side\'s key runs per bucket, its counts counted again', async () => {
  await same(`SELECT c_count, count(*) AS custdist
                FROM (SELECT c.cid, count(o.id) FROM custs c LEFT OUTER JOIN orders o ON c.cid = o.cust AND o.note <> 'z' GROUP BY c.cid) AS c_orders (c_custkey, c_count)
               GROUP BY c_count ORDER BY custdist DESC, c_count DESC`, 'c.cid = o.cust as pg_catalog.int8');
  // Grouped by orders' key, orders preserved: the NULL keys are one group, in bucket 0.
  await same(`SELECT n, count(*) FROM (SELECT o.cust, count(c.cid) AS n FROM orders o LEFT JOIN custs c ON o.cust = c.cid GROUP BY 1) AS x GROUP BY n ORDER BY 1`, INT);
  // Grouped by the NULL-extended side's key, or by a column that is not the key: not per bucket, but still right.
  await same(`SELECT n, count(*) FROM (SELECT c.cid, count(*) AS n FROM orders o LEFT JOIN custs c ON o.cust = c.cid GROUP BY c.cid) AS x GROUP BY n ORDER BY 1`, null);
  await same(`SELECT n, count(*) FROM (SELECT o.note, count(*) AS n FROM orders o JOIN custs c ON o.cust = c.cid GROUP BY o.note) AS x GROUP BY n ORDER BY 1`, null);
});

test('a varchar key joined to a text key hashes as text; a three-way join on one key class', async () => {
  await same(`SELECT c.region, count(*), sum(i.weight) FROM custs c JOIN items i ON c.code = i.tag GROUP BY 1 ORDER BY 1`, 'c.code = i.tag as pg_catalog.text');
  // money compares with = but has no hash operator class: not repartitioned.
  const lines = await same(`SELECT i.cost, count(*) FROM custs c JOIN items i ON c.cost = i.cost GROUP BY 1 ORDER BY 1`, null);
  assert.ok(lines.some((l) => l.startsWith('  Not Repartitioned: the join keys have types that do not hash alike')), lines.join('\n'));
  const sql = `SELECT count(*), sum(o.amount) FROM orders o JOIN custs c ON o.cust = c.cid JOIN items i ON i.iid = c.cid WHERE i.weight > 10`;
  const three = await same(sql, 'o.cust = c.cid = i.iid as pg_catalog.int8');
  assert.ok(three.some((l) => l.includes('Shard Filter: i.weight > 10')), three.join('\n'));
});

test('inside a transaction block, or with citus.enable_repartition_joins off, the statement runs another way', async () => {
  const sql = `SELECT c.region, sum(o.amount) FROM orders o JOIN custs c ON c.cid = o.cust GROUP BY 1 ORDER BY 1`;
  const expected = await runQuery(reference, sql);
  await weave.query('BEGIN');
  try {
    const actual = await runQuery(weave, sql);
    assert.ok(expected.ok && actual.ok);
    assert.equal(compareResults(expected.result, actual.result, 'total'), null);
    const lines = await explain(sql);
    assert.ok(lines.some((l) => l.startsWith('  Not Repartitioned: inside a transaction block')), lines.join('\n'));
  } finally {
    await weave.query('COMMIT');
  }
  await weave.query('SET citus.enable_repartition_joins = off');
  try {
    const lines = await same(sql, null);
    assert.ok(lines.some((l) => l.startsWith('  Not Repartitioned: citus.enable_repartition_joins is off')), lines.join('\n'));
  } finally {
    await weave.query('RESET citus.enable_repartition_joins');
  }
  await same(sql, 'o.cust = c.cid as pg_catalog.int8');
});

test('staging tables are gone after a statement, and after one that fails on a worker', async () => {
  const bad = await runQuery(weave, `SELECT c.region, sum(1 / (o.amount - o.amount)) FROM orders o JOIN custs c ON c.cid = o.cust GROUP BY 1`);
  assert.ok(!bad.ok && bad.code === '22012', JSON.stringify(bad));
  await same(`SELECT count(*) FROM orders o JOIN custs c ON c.cid = o.cust`, INT);
  for (const w of cluster!.workers) {
    const c = await textClient(nodeUrl(cluster!, w.port));
    try {
      const r = await c.query(`SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'pgweave_repartition%'`);
      assert.equal(r.rows[0].n, '0');
    } finally {
      await c.end();
    }
  }
});

test('a repartition join cancelled while the rows move ends with 57014 and leaves no staging tables', async () => {
  const c = await textClient(cluster!.url, 'repartition-cancel');
  const workers = await Promise.all(cluster!.workers.map((w) => textClient(nodeUrl(cluster!, w.port))));
  try {
    await c.query(`SET pgweave.repartition_join_threshold = 0`);
    const key = c as unknown as { processID: number; secretKey: number };
    // Every orders row sleeps 2 ms on its shard: the statement runs for many seconds unless cancelled.
    const running = runQuery(c, `SELECT count(*) FROM orders o JOIN custs c ON o.cust = c.cid WHERE (coalesce(o.note, '') || pg_sleep(0.002)::text) IS NOT NULL`);
    const busy = await pollUntil(async () => {
      for (const w of workers) {
        const r = await w.query(`SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pgweave_repartition%pg_sleep%' AND pid <> pg_backend_pid()`);
        if (r.rows.length > 0) return true;
      }
      return false;
    });
    assert.ok(busy, 'a worker runs the statement');
    await sendCancel(cluster!.config.listen, key.processID, key.secretKey);
    const out = await running;
    assert.ok(!out.ok && out.code === '57014', JSON.stringify(out));
    const count = `SELECT count(*) FROM orders o JOIN custs c ON o.cust = c.cid`;
    assert.deepEqual((await c.query(count)).rows, (await reference.query(count)).rows);
    for (const w of workers) assert.equal((await w.query(`SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'pgweave_repartition%'`)).rows[0].n, '0');
  } finally {
    await Promise.all([c, ...workers].map((x) => x.end()));
  }
});
