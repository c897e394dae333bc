/**
 * Decorrelation (src/planner/decorrelate.ts): correlated scalar-aggregate
 * subqueries become LEFT JOINs to derived tables grouped by the correlation
 * keys, which the recursive planner computes on the shards. Every statement
 * is compared with a plain PostgreSQL holding the same rows (values, column
 * names and types, order where defined); EXPLAIN VERBOSE shows the derived
 * table (`pgweave_dc1`) for the shapes rewritten, and not for the shapes
 * that must keep PostgreSQL's per-row evaluation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { assertSameResult, type DifferentialPair, explainLines, runQuery, startDifferentialPair } from './support.js';

let pair: DifferentialPair | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  // Outer rows: keys with and without inner rows, NULL keys, text keys differing by case.
  `CREATE TABLE parts (id int PRIMARY KEY, pk int, pk8 int8, supp int, name text, brand text, lim int)`,
  `INSERT INTO parts SELECT g, CASE WHEN g % 17 = 0 THEN NULL ELSE g % 60 END, g % 60, g % 7,
     CASE WHEN g % 2 = 0 THEN 'Name' || (g % 9) ELSE 'name' || (g % 9) END, 'Brand#' || (g % 5), g % 12 FROM generate_series(1, 300) g`,
  // Inner rows: keys 0..39 only (40..59 have no group), NULL keys, NULL quantities.
  `CREATE TABLE lines (lid int8 PRIMARY KEY, pk int, supp int, qty int, price numeric(10,2), name text)`,
  `INSERT INTO lines SELECT g, CASE WHEN g % 23 = 0 THEN NULL ELSE g % 40 END, g % 7, CASE WHEN g % 11 = 0 THEN NULL ELSE 1 + g % 13 END,
     round((g % 97) * 1.25, 2), CASE WHEN g % 3 = 0 THEN 'NAME' || (g % 9) ELSE 'name' || (g % 9) END FROM generate_series(1, 4000) g`,
  `CREATE TABLE stock (pid int, wh int, qty int, PRIMARY KEY (pid, wh))`,
  `INSERT INTO stock SELECT g, w, (g * w) % 9 FROM generate_series(1, 300, 2) g, generate_series(1, 3) w`,
  `CREATE TABLE brands (brand text PRIMARY KEY, tier int)`,
  `INSERT INTO brands SELECT 'Brand#' || g, g % 3 FROM generate_series(0, 4) g`,
];

before(async () => {
  pair = await startDifferentialPair('decorrelate', SETUP, [
    `SELECT create_distributed_table('parts', 'id', shard_count => 4)`,
    `SELECT create_distributed_table('lines', 'lid', shard_count => 6, colocate_with => 'none')`,
    `SELECT create_distributed_table('stock', 'pid', colocate_with => 'parts')`,
    `SELECT create_reference_table('brands')`,
  ]);
  ({ weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

function explain(sql: string): Promise<string[]> {
  return explainLines(weave, sql, 'VERBOSE, COSTS OFF');
}

/** Same result as PostgreSQL (ordered by the statement's ORDER BY); returns whether EXPLAIN shows the derived table. */
async function same(sql: string): Promise<boolean> {
  await assertSameResult(weave, reference, sql, /ORDER BY/i.test(sql));
  return (await explain(sql)).some((l) => l.includes('pgweave_dc1'));
}

async function rewritten(sql: string): Promise<void> {
  assert.ok(await same(sql), `not decorrelated:\n${(await explain(sql)).join('\n')}`);
}

async function kept(sql: string): Promise<void> {
  assert.ok(!(await same(sql)), `decorrelated, but must not be:\n${(await explain(sql)).join('\n')}`);
}

test('TPC-H Q17 shape: avg per key, groups missing for some outer rows, NULL keys on both sides; lines is not pulled', async () => {
  const sql = `SELECT sum(l.price) / 7.0 AS avg_yearly, count(*) FROM lines l, parts p
     WHERE p.pk = l.pk AND p.brand IN ('Brand#1', 'Brand#3')
       AND l.qty < (SELECT 0.9 * avg(qty) FROM lines WHERE lines.pk = p.pk)`;
  await rewritten(sql);
  const lines = await explain(sql);
  assert.ok(!lines.some((l) => /Pull "public"\."lines"/.test(l)), lines.join('\n'));
});

test('the select list: avg, sum, min/max, NULL for missing groups and NULL outer keys; the column keeps its name', async () => {
  await rewritten(`SELECT id, pk, (SELECT avg(qty) FROM lines WHERE lines.pk = parts.pk) FROM parts ORDER BY id`);
  await rewritten(`SELECT id, (SELECT sum(qty) * 2 FROM lines l WHERE l.pk = p.pk) AS twice FROM parts p ORDER BY id`);
  await rewritten(`SELECT id, (SELECT max(price) - min(price) FROM lines l WHERE l.pk = p.pk)::text FROM parts p ORDER BY id`);
});

test('count(*) and count(x) of a missing group are 0, not NULL', async () => {
  await rewritten(`SELECT id, pk, (SELECT count(*) FROM lines l WHERE l.pk = p.pk) FROM parts p ORDER BY id`);
  await rewritten(`SELECT id, (SELECT count(qty) + 1 FROM lines l WHERE l.pk = p.pk) AS n FROM parts p ORDER BY id`);
  await rewritten(`SELECT id FROM parts p WHERE (SELECT count(*) FROM lines l WHERE l.pk = p.pk AND l.qty > 12) = 0 ORDER BY id`);
  await rewritten(`SELECT id FROM parts p WHERE p.lim >= (SELECT count(qty) FROM lines l WHERE l.pk = p.pk AND l.supp = 3) ORDER BY id`);
});

test('two correlation keys and extra conditions of the subquery (TPC-H Q20 shape, nested in IN)', async () => {
  await rewritten(`SELECT id, (SELECT sum(qty) FROM lines l WHERE l.pk = p.pk AND l.supp = p.supp AND l.price > 10) FROM parts p ORDER BY id`);
  await rewritten(`SELECT b.brand, b.tier FROM brands b WHERE b.brand IN (
      SELECT p.brand FROM parts p WHERE p.lim > (SELECT 0.1 * sum(qty) FROM lines l WHERE l.pk = p.pk AND l.supp = p.supp AND l.qty > 2))
    ORDER BY b.brand`);
});

test('nested levels: in a FROM subquery, and a decorrelated subquery inside another one', async () => {
  await rewritten(`SELECT x.brand, count(*), sum(x.a) FROM (
      SELECT p.brand, (SELECT avg(qty) FROM lines l WHERE l.pk = p.pk) AS a FROM parts p) x GROUP BY x.brand ORDER BY x.brand`);
  await rewritten(`SELECT id FROM parts p WHERE p.lim * 10 < (
      SELECT sum(qty) FROM lines l WHERE l.pk = p.pk AND l.qty > (SELECT avg(qty) FROM lines l2 WHERE l2.supp = l.supp)) ORDER BY id`);
});

test('cross-type keys (int = bigint) and text keys with a COLLATE on either side', async () => {
  await rewritten(`SELECT id, (SELECT count(*) FROM lines l WHERE l.pk = p.pk8) FROM parts p ORDER BY id`);
  await rewritten(`SELECT id, (SELECT sum(qty) FROM lines l WHERE p.pk8 = l.pk + 0) FROM parts p ORDER BY id`);
  await rewritten(`SELECT id, (SELECT count(*) FROM lines l WHERE l.name COLLATE "C" = p.name) FROM parts p ORDER BY id`);
  await rewritten(`SELECT id, (SELECT max(qty) FROM lines l WHERE l.name = p.name COLLATE "C") FROM parts p ORDER BY id`);
});

test('a nondeterministic collation on the outer side groups what it compares equal (no row counted twice)', async () => {
  for (const c of [weave, reference]) await c.query(`CREATE COLLATION IF NOT EXISTS ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`);
  await rewritten(`SELECT id, name, (SELECT count(*) FROM lines l WHERE l.name = p.name COLLATE ci) FROM parts p ORDER BY id`);
});

test('EXISTS and NOT EXISTS with equality correlation (TPC-H Q22 shape): NULL keys on both sides, extra conditions, the select list', async () => {
  // Where a broadcast join can run the statement as written, it does (semi/anti joins per shard, or a pull when smaller).
  await same(`SELECT id FROM parts p WHERE NOT EXISTS (SELECT * FROM lines l WHERE l.pk = p.pk AND l.qty > 5) ORDER BY id`);
  await same(`SELECT id FROM parts p WHERE p.lim > 2 AND EXISTS (SELECT 1 FROM lines l WHERE l.pk = p.pk AND l.supp = p.supp) ORDER BY id`);
  await same(`SELECT id, EXISTS (SELECT 1 FROM lines l WHERE l.pk = p.pk8) FROM parts p ORDER BY id`);
  // Inside a FROM subquery beside an uncorrelated scalar subquery (Q22): no broadcast join, so decorrelated.
  await rewritten(`SELECT c, count(*) FROM (SELECT substring(p.name from 1 for 4) AS c FROM parts p
      WHERE p.lim > (SELECT avg(lim) FROM parts) AND NOT EXISTS (SELECT * FROM lines l WHERE l.name = p.name AND l.qty > 3)) x GROUP BY c ORDER BY c`);
  await rewritten(`SELECT c, count(*) FROM (SELECT p.pk AS c FROM parts p
      WHERE p.lim > (SELECT avg(lim) FROM parts) AND EXISTS (SELECT 1 FROM lines l WHERE l.pk = p.pk AND l.supp = p.supp)) x GROUP BY c ORDER BY c`);
});

test('shapes PostgreSQL must evaluate per row are left as they are, with the same results', async () => {
  // Correlation by a non-equality, under OR, LIMIT inside, a volatile function, a division that could fail.
  await kept(`SELECT id, (SELECT count(*) FROM lines l WHERE l.pk < p.pk) FROM parts p ORDER BY id`);
  await kept(`SELECT id FROM parts p WHERE p.lim = 0 OR p.lim < (SELECT avg(qty) FROM lines l WHERE l.pk = p.pk) ORDER BY id`);
  await kept(`SELECT id, (SELECT sum(qty) FROM (SELECT qty FROM lines l WHERE l.pk = p.pk ORDER BY l.lid LIMIT 3) s) FROM parts p ORDER BY id`);
  await kept(`SELECT id, (SELECT sum(qty) FROM lines l WHERE l.pk = p.pk LIMIT 1) FROM parts p ORDER BY id`);
  await kept(`SELECT id, (SELECT count(*) FROM lines l WHERE l.pk = p.pk AND random() < 2) FROM parts p ORDER BY id`);
  await kept(`SELECT id, (SELECT sum(100 / qty) FROM lines l WHERE l.pk = p.pk) FROM parts p ORDER BY id`);
  // An outer column outside the correlation equality, and an expression whose zero-row value is neither NULL nor a count.
  await kept(`SELECT id, (SELECT sum(qty + p.lim) FROM lines l WHERE l.pk = p.pk) FROM parts p ORDER BY id`);
  await kept(`SELECT id, (SELECT coalesce(sum(qty), -1) FROM lines l WHERE l.pk = p.pk) FROM parts p ORDER BY id`);
  // Correlated on co-located distribution columns: the subquery runs per shard as it is.
  await kept(`SELECT p.id, count(*) FROM parts p, lines l WHERE l.pk = p.pk AND l.qty > 11
      AND EXISTS (SELECT 1 FROM stock s WHERE s.pid = p.id AND s.qty > 4) GROUP BY p.id ORDER BY p.id`);
  await kept(`SELECT p.id, l.lid FROM parts p, lines l WHERE l.pk = p.pk AND l.qty > 12
      AND p.lim < (SELECT sum(qty) FROM stock s WHERE s.pid = p.id) ORDER BY p.id, l.lid`);
  // EXISTS of an aggregate is always true; EXISTS correlated by a non-equality.
  await kept(`SELECT id FROM parts p WHERE EXISTS (SELECT count(*) FROM lines l WHERE l.pk = p.pk) ORDER BY id`);
  await kept(`SELECT id FROM parts p WHERE NOT EXISTS (SELECT 1 FROM lines l WHERE l.pk = p.pk AND l.supp <> p.supp) ORDER BY id`);
});

test('a scalar subquery over a distributed table keeps PostgreSQL\'s column name (not the intermediate table\'s c1)', async () => {
  for (const sql of [
    `SELECT (SELECT max(qty) FROM lines)::text`,
    `SELECT (SELECT max(qty) FROM lines), (SELECT min(price) AS low FROM lines) + 1, (SELECT 1 + max(qty) FROM lines)`,
    `SELECT id, (SELECT max(qty) FROM lines) - lim FROM parts ORDER BY id LIMIT 5`,
  ]) {
    const expected = await runQuery(reference, sql);
    const actual = await runQuery(weave, sql);
    assert.ok(expected.ok && actual.ok, sql);
    assert.deepEqual(actual.result.fields, expected.result.fields, sql);
    assert.deepEqual(actual.result.rows, expected.result.rows, sql);
  }
});
