/**
 * Recursive planning (src/planner/recursive-planner.ts, src/session/intermediate-results.ts):
 * CTEs and uncorrelated subqueries that cannot run with the rest of the
 * statement are planned on their own, computed first as intermediate
 * results, and shipped to the workers so the rest pushes down — or kept on
 * the coordinator when the rest runs there. Every statement is compared with
 * a plain PostgreSQL holding the same rows (values, column names and types,
 * order where defined), and EXPLAIN must show the subplans (`Distributed
 * Subplan N`) or, for correlated subqueries, none.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { assertSameResult, compareResults, type DifferentialPair, explainLines, runQuery, startDifferentialPair } from './support.js';

let pair: DifferentialPair | undefined;
let cluster: TestCluster | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  `CREATE TABLE orders (okey int8 PRIMARY KEY, cust int, total numeric(12,2), status char(1), odate date)`,
  `INSERT INTO orders SELECT g, 1 + g % 150, round((g % 977) * 3.7, 2), (ARRAY['F','O','P'])[1 + g % 3], date '2024-01-01' + g % 300 FROM generate_series(1, 3000) g`,
  `CREATE TABLE items (okey int8, line int, supp int, qty int, price numeric(12,2), PRIMARY KEY (okey, line))`,
  `INSERT INTO items SELECT o, l, 1 + (o * 7 + l) % 40, 1 + (o + l) % 11, round(((o * l) % 500) / 3.0, 2) FROM generate_series(1, 3000) o, generate_series(1, 1 + o % 4) l`,
  `CREATE TABLE customers (cid int PRIMARY KEY, name text, nation int, bal numeric(12,2))`,
  `INSERT INTO customers SELECT g, 'cust ' || g, g % 5, round(((g * 37) % 2000 - 300) / 1.5, 2) FROM generate_series(1, 200) g`,
  `CREATE TABLE suppliers (sid int PRIMARY KEY, name text, nation int)`,
  `INSERT INTO suppliers SELECT g, 'supp ' || g, g % 5 FROM generate_series(1, 40) g`,
  `CREATE TABLE nations (nid int PRIMARY KEY, name text)`,
  `INSERT INTO nations VALUES (0, 'FRANCE'), (1, 'GERMANY'), (2, 'PERU'), (3, 'JAPAN'), (4, 'KENYA')`,
];

before(async () => {
  pair = await startDifferentialPair('recursive', SETUP, [
    `SELECT create_distributed_table('orders', 'okey', shard_count => 6)`,
    `SELECT create_distributed_table('items', 'okey', colocate_with => 'orders')`,
    `SELECT create_distributed_table('customers', 'cid', shard_count => 4)`,
    `SELECT create_distributed_table('suppliers', 'sid', colocate_with => 'none')`,
    `SELECT create_reference_table('nations')`,
  ]);
  ({ cluster, weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

function explain(sql: string, options = 'COSTS OFF'): Promise<string[]> {
  return explainLines(weave, sql, options);
}

/** Same result as PostgreSQL; returns pgweave's EXPLAIN. */
async function same(sql: string, ordered = /ORDER BY/i.test(sql)): Promise<string[]> {
  await assertSameResult(weave, reference, sql, ordered);
  return explain(sql);
}

function has(lines: string[], pattern: RegExp): void {
  assert.ok(lines.some((l) => pattern.test(l)), `${pattern} not in:\n${lines.join('\n')}`);
}

test('a CTE read twice (TPC-H Q15): computed once by a partial-aggregate pushdown, shipped, the rest pushed down', async () => {
  const lines = await same(`WITH revenue (supplier_no, total_revenue) AS (
      SELECT supp, sum(qty * price) FROM items WHERE okey > 100 GROUP BY supp)
    SELECT s.sid, s.name, total_revenue FROM suppliers s, revenue
     WHERE s.sid = supplier_no AND total_revenue >= (SELECT max(total_revenue) * 0.9 FROM revenue) ORDER BY s.sid`);
  has(lines, /^ {2}->  Distributed Subplan 1$/);
  has(lines, /Intermediate Result: pg_temp\.pgweave_intermediate_1 \(shipped to 2 nodes\)/);
  has(lines, /^ +Planner: aggregate-pushdown$/);
  has(lines, /^Custom Scan \(pgweave Pushdown\)/);
  assert.ok(!lines.some((l) => /Pull "public"\."items"/.test(l)), lines.join('\n'));
});

test('IN over a grouped subquery (TPC-H Q18) and a scalar subquery in HAVING over other tables (Q11)', async () => {
  const q18 = await same(`SELECT c.name, o.okey, o.total, sum(i.qty) AS q FROM customers c, orders o, items i
     WHERE o.okey IN (SELECT okey FROM items GROUP BY okey HAVING sum(qty) > 30)
       AND c.cid = o.cust AND o.okey = i.okey
     GROUP BY c.name, o.okey, o.total ORDER BY o.total DESC, o.okey LIMIT 20`);
  has(q18, /Distributed Subplan 1$/);
  const q11 = await same(`SELECT i.supp, sum(i.price * i.qty) AS value FROM items i, suppliers s, nations n
     WHERE i.supp = s.sid AND s.nation = n.nid AND n.name = 'GERMANY'
     GROUP BY i.supp HAVING sum(i.price * i.qty) > (
       SELECT sum(i2.price * i2.qty) * 0.05 FROM items i2, suppliers s2, nations n2 WHERE i2.supp = s2.sid AND s2.nation = n2.nid AND n2.name = 'GERMANY')
     ORDER BY value DESC, 1`);
  has(q11, /Distributed Subplan 1$/);
  has(q11, /^Custom Scan \(pgweave Pushdown\)/);
});

test('a grouped FROM subquery over an outer join (TPC-H Q13) and scalar subqueries over another table (Q22)', async () => {
  const q13 = await same(`SELECT c_count, count(*) AS custdist FROM (
      SELECT c.cid, count(o.okey) FROM customers c LEFT OUTER JOIN orders o ON c.cid = o.cust AND o.status <> 'F' GROUP BY c.cid
    ) AS c_orders (c_custkey, c_count) GROUP BY c_count ORDER BY custdist DESC, c_count DESC`);
  // Its only subquery would itself be pulled (or joined by broadcast/repartition, which the join planners do for
  // the whole statement too): no subplan, the statement goes to the join planners (test/analytics/repartition).
  assert.ok(!q13.some((l) => /Distributed Subplan/.test(l)), q13.join('\n'));
  const q22 = await same(`SELECT nation, count(*) AS numcust, sum(bal) AS totbal FROM customers
     WHERE bal > (SELECT avg(total) / 10 FROM orders WHERE total > 100) AND cid NOT IN (SELECT cust FROM orders WHERE status = 'P' AND cust IS NOT NULL)
     GROUP BY nation ORDER BY nation`);
  has(q22, /Distributed Subplan 2$/);
  has(q22, /^Custom Scan \(pgweave Pushdown\)/);
});

test('subplans nest: a grouped FROM subquery whose own scalar subquery is planned on its own', async () => {
  const lines = await same(`SELECT n, count(*) AS c FROM (
      SELECT cust AS n FROM orders WHERE total > (SELECT avg(bal) FROM customers) GROUP BY cust HAVING count(*) > 2) x
    GROUP BY n ORDER BY c DESC, n LIMIT 15`);
  has(lines, /Distributed Subplan 1$/);
  has(lines, /Distributed Subplan 1_1$/);
});

test('a CTE with a volatile function is computed once; a CTE joined with itself', async () => {
  const sql = `WITH r AS (SELECT okey, random() AS x FROM orders WHERE okey < 50) SELECT count(*) FROM r a JOIN r b ON a.okey = b.okey AND a.x = b.x`;
  const actual = await runQuery(weave, sql);
  assert.ok(actual.ok, sql);
  assert.deepEqual(actual.result.rows, [['49']]);
  has(await explain(sql), /Distributed Subplan 1$/);
  const lines = await same(`WITH big AS (SELECT cust, sum(total) AS t FROM orders GROUP BY cust)
    SELECT a.cust, a.t, b.cust AS other FROM big a JOIN big b ON floor(a.t / 2000) = floor(b.t / 2000) AND a.cust < b.cust ORDER BY 1, 3 LIMIT 10`);
  has(lines, /kept on the coordinator/);
  // A CTE nothing reads is not computed (PostgreSQL does not run it either).
  const unused = await explain(`WITH never AS (SELECT cust FROM orders GROUP BY cust), once AS (SELECT supp, count(*) FROM items GROUP BY supp)
    SELECT s.name, once.count FROM suppliers s JOIN once ON once.supp = s.sid ORDER BY 1 LIMIT 5`);
  assert.ok(!unused.some((l) => /Distributed Subplan 2/.test(l)), unused.join('\n'));
});

test('correlated subqueries are not planned on their own; results still match', async () => {
  const lines = await same(`SELECT c.cid, c.bal FROM customers c WHERE c.bal > (SELECT avg(total) / 20 FROM orders o WHERE o.cust = c.cid) ORDER BY 1`);
  assert.ok(!lines.some((l) => l.includes('Distributed Subplan')), lines.join('\n'));
  // The IN subquery is uncorrelated as a whole although its own subquery is correlated inside it (TPC-H Q20).
  const q20 = await same(`SELECT s.name FROM suppliers s, nations n WHERE s.sid IN (
      SELECT i.supp FROM items i WHERE i.qty > (SELECT avg(i2.qty) FROM items i2 WHERE i2.supp = i.supp) AND i.okey IN (SELECT okey FROM orders WHERE status = 'O'))
    AND s.nation = n.nid AND n.name <> 'PERU' ORDER BY s.name`);
  has(q20, /Distributed Subplan 1$/);
});

test('a CTE read only inside EXISTS is left to the coordinator, which reads it only as far as each EXISTS needs', async () => {
  // A cross join: computing it whole as a subplan is what PostgreSQL never does here.
  const lines = await same(`WITH few AS (SELECT cust, count(*) AS n FROM orders GROUP BY cust),
         big AS (SELECT o.okey, c.cid FROM orders o CROSS JOIN customers c)
    SELECT f.cust FROM few f WHERE f.n > 19 OR EXISTS (SELECT 1 FROM big b WHERE b.cid = f.cust + 1) ORDER BY 1`);
  assert.ok(!lines.some((l) => l.includes('Distributed Subplan')), lines.join('\n'));
  // Read in FROM as well: computed once as a subplan, as before.
  const both = await same(`WITH few AS (SELECT cust, count(*) AS n FROM orders GROUP BY cust)
    SELECT c.cid FROM customers c JOIN few f ON f.cust = c.cid WHERE EXISTS (SELECT 1 FROM few g WHERE g.cust = c.cid + 1 AND g.n > 19) ORDER BY 1`);
  has(both, /Distributed Subplan 1$/);
});

test('inside a transaction block the intermediate results stay on the coordinator', async () => {
  const sql = `WITH revenue AS (SELECT supp, sum(qty * price) AS total FROM items GROUP BY supp)
    SELECT s.name, r.total FROM suppliers s JOIN revenue r ON r.supp = s.sid WHERE s.nation = 2 ORDER BY 2 DESC, 1`;
  const expected = await runQuery(reference, sql);
  await weave.query('BEGIN');
  try {
    await weave.query(`UPDATE items SET qty = qty WHERE okey = 7`);
    const actual = await runQuery(weave, sql);
    assert.ok(expected.ok && actual.ok, sql);
    assert.equal(compareResults(expected.result, actual.result, 'total'), null);
    has(await explain(sql), /Intermediate Results Kept On Coordinator: inside a transaction block/);
    await weave.query(`UPDATE suppliers SET nation = nation WHERE sid = 3`);
  } finally {
    await weave.query('COMMIT');
  }
  has(await same(sql), /shipped to 2 nodes/);
});

test('EXPLAIN VERBOSE shows each subplan query; EXPLAIN ANALYZE runs them', async () => {
  const sql = `SELECT count(*) FROM orders WHERE cust IN (SELECT cid FROM customers WHERE bal > 500)`;
  const verbose = await explain(sql, 'COSTS OFF, VERBOSE');
  has(verbose, /Query: SELECT cid FROM customers WHERE bal > 500/);
  const analyzed = await explain(sql, 'ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF');
  has(analyzed, /Distributed Subplan 1$/);
  await same(sql);
});

test('the same table inside an uncorrelated subquery and outside it; a CTE read in the select list; literal and collated CTE columns', async () => {
  const twice = await same(`SELECT okey, line, qty FROM items WHERE qty > (SELECT avg(qty) + 3 FROM items) ORDER BY okey, line LIMIT 20`);
  has(twice, /Distributed Subplan 1$/);
  has(twice, /^Custom Scan \(pgweave Pushdown\)/);
  const select = await same(`WITH m AS (SELECT max(total) AS mx FROM orders) SELECT okey, total, (SELECT mx FROM m) - total AS gap FROM orders WHERE okey < 40 ORDER BY okey`);
  has(select, /Distributed Subplan 1$/);
  has(select, /^Custom Scan \(pgweave Pushdown\)/);
  await same(`WITH c AS (SELECT 'x' AS v, status::text COLLATE "C" AS s, count(*) AS n FROM orders GROUP BY 2)
    SELECT o.okey, c.v, c.s, c.n FROM orders o JOIN c ON c.s = o.status::text WHERE o.okey < 20 ORDER BY 1`);
  // Shipped columns with names that need quoting (quotes, upper case, spaces) and a collation.
  const odd = await same(`WITH c AS (SELECT status::text COLLATE "C" AS "Odd ""S"" Col", count(*) AS "N n" FROM orders GROUP BY 1)
    SELECT o.okey, c."Odd ""S"" Col", c."N n" FROM orders o JOIN c ON c."Odd ""S"" Col" = o.status::text WHERE o.okey < 20 ORDER BY 1`);
  has(odd, /Distributed Subplan 1$/);
  has(odd, /^Custom Scan \(pgweave Pushdown\)/);
  // NOT IN over a subquery that yields a NULL: no row qualifies, as in PostgreSQL.
  const sql = `SELECT count(*) FROM customers WHERE cid NOT IN (SELECT CASE WHEN okey = 5 THEN NULL ELSE cust END FROM orders WHERE okey < 10)`;
  const [expected, actual] = [await runQuery(reference, sql), await runQuery(weave, sql)];
  assert.ok(expected.ok && actual.ok, sql);
  assert.equal(compareResults(expected.result, actual.result, 'none'), null, sql);
  has(await explain(sql), /Distributed Subplan 1$/);
});

test('a CTE over a local table is computed on the coordinator and shipped; a prepared statement runs the recursive plan twice', async () => {
  for (const c of [weave, reference]) {
    await c.query(`CREATE TABLE promo (cust int, pct int)`);
    await c.query(`INSERT INTO promo SELECT g, g % 7 FROM generate_series(1, 150, 3) g`);
  }
  const local = await same(`WITH p AS (SELECT cust, pct FROM promo) SELECT o.cust, sum(o.total * p.pct) AS s FROM orders o JOIN p ON p.cust = o.cust GROUP BY 1 ORDER BY 1`);
  has(local, /Distributed Subplan 1$/);
  has(local, /^ +Planner: coordinator$/);
  has(local, /^Custom Scan \(pgweave Pushdown\)/);
  const sql = `WITH revenue AS (SELECT supp, sum(qty * price) AS total FROM items GROUP BY supp)
    SELECT s.name, r.total FROM suppliers s JOIN revenue r ON r.supp = s.sid WHERE s.nation = 1 ORDER BY 2 DESC, 1`;
  const expected = await reference.query({ text: sql, rowMode: 'array' });
  for (let i = 0; i < 2; i++) {
    const actual = await weave.query({ name: 'recursive_q15', text: sql, rowMode: 'array' });
    assert.deepEqual(actual.rows, expected.rows);
  }
});

test('subqueries whose columns a table could not hold keep their previous plan (one name twice, anonymous records)', async () => {
  for (const sql of [
    `SELECT a, b FROM (SELECT cust, cust FROM orders GROUP BY cust) x(a, b) ORDER BY a LIMIT 5`,
    `WITH r AS (SELECT ROW(okey, cust) AS rr FROM orders WHERE okey < 5) SELECT count(*) FROM r`,
    `WITH r AS (SELECT o.cust, c.cid AS cust2, 1, 2 FROM orders o JOIN customers c ON c.cid = o.cust WHERE o.okey < 9) SELECT count(*) FROM r`,
  ]) {
    const [expected, actual] = [await runQuery(reference, sql), await runQuery(weave, sql)];
    assert.ok(expected.ok, sql);
    assert.ok(actual.ok, `${sql}: ${!actual.ok && actual.message}`);
    assert.equal(compareResults(expected.result, actual.result, 'total'), null, sql);
  }
});

test('a CTE reading earlier CTEs is planned over their results, shipping them along when it pushes down', async () => {
  const lines = await same(`WITH a AS (SELECT cust, sum(total) AS t FROM orders GROUP BY cust),
         b AS (SELECT a.cust, a.t, count(*) AS n FROM a JOIN orders o ON o.cust = a.cust AND o.status = 'O' GROUP BY a.cust, a.t),
         c AS (SELECT cust, t FROM a WHERE t > 5000)
    SELECT cu.name, b.t, b.n, (SELECT count(*) FROM c) AS big FROM customers cu JOIN b ON b.cust = cu.cid ORDER BY b.t DESC, 1 LIMIT 10`);
  has(lines, /Distributed Subplan 3$/);
  has(lines, /^ +Planner: aggregate-pushdown$/);
  has(lines, /^ +Planner: pull over intermediate results$/);
  const pushed = await same(`WITH a AS (SELECT cust, sum(total) AS t FROM orders GROUP BY cust),
         b AS (SELECT a.cust, a.t, count(*) AS n FROM a JOIN orders o ON o.cust = a.cust AND o.status = 'O' GROUP BY a.cust, a.t)
    SELECT cu.name, b.t, b.n FROM customers cu JOIN b ON b.cust = cu.cid ORDER BY b.t DESC, 1 LIMIT 10`);
  has(pushed, /Distributed Subplan 2$/);
  has(pushed, /^Custom Scan \(pgweave Pushdown\)/);
});
