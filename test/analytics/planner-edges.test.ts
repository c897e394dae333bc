/**
 * Planner edge cases found while mapping result type OIDs (issue #4,
 * "correct results for any SQL"): each statement is compared with a plain
 * PostgreSQL holding the same rows.
 *
 * - LIMIT/OFFSET/FETCH without ORDER BY over a distributed table, in a CTE,
 *   a FROM subquery, IN (…), nested, joined, prepared: the row pushdown's
 *   worker query had an empty ORDER BY (`ORDER BY LIMIT 2`, a syntax
 *   error). Any rows are a valid answer there, so those compare the row
 *   count and that every row is one of the table's.
 * - FETCH FIRST n ROWS WITH TIES: the deparser wrote it as LIMIT n, which
 *   drops the ties wherever a query is deparsed (worker and final queries,
 *   subplans).
 * - Anonymous records (ROW(…), whole rows of a subquery) in results staged
 *   in temporary tables (pushdown partial results, intermediate results,
 *   INSERT … SELECT between tables that are not co-located): a table
 *   cannot hold a column of type record (42P16).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { assertSameResult, compareResults, type DifferentialPair, runQuery, startDifferentialPair } from './support.js';

let pair: DifferentialPair | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  `CREATE TABLE t (k int PRIMARY KEY, v int, w text)`,
  `INSERT INTO t SELECT g, g % 7, 'w' || g FROM generate_series(1, 100) g`,
  `CREATE TABLE u (k int PRIMARY KEY, x int)`,
  `INSERT INTO u SELECT g, g * 2 FROM generate_series(1, 60) g`,
  `CREATE TYPE pair AS (a int, b text)`,
  `CREATE TABLE c (k int, p pair)`,
  `CREATE TABLE tt (k int, s text)`,
];

before(async () => {
  pair = await startDifferentialPair('planner-edges', SETUP, [
    `SELECT create_distributed_table('t', 'k', shard_count => 4)`,
    `SELECT create_distributed_table('u', 'k', colocate_with => 'none', shard_count => 3)`,
    `SELECT create_distributed_table('c', 'k', colocate_with => 't')`,
    `SELECT create_distributed_table('tt', 'k', colocate_with => 'none', shard_count => 5)`,
  ]);
  ({ weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

/**
 * `sql` (no ORDER BY: PostgreSQL may return any rows) on both sides: the
 * same columns and row count, and every pgweave row is a row of `universe`
 * on PostgreSQL.
 */
async function sameCountFrom(sql: string, universe: string, values?: unknown[]): Promise<void> {
  const expected = await runQuery(reference, sql, 60_000, values);
  const actual = await runQuery(weave, sql, 60_000, values);
  assert.ok(expected.ok, `PostgreSQL failed: ${sql}: ${!expected.ok && expected.message}`);
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && `${actual.code} ${actual.message}`}`);
  assert.deepEqual(actual.result.fields, expected.result.fields, sql);
  assert.deepEqual(actual.result.types, expected.result.types, sql);
  assert.equal(actual.result.rows.length, expected.result.rows.length, sql);
  const all = await runQuery(reference, universe);
  assert.ok(all.ok, universe);
  const known = new Set(all.result.rows.map((r) => JSON.stringify(r)));
  for (const r of actual.result.rows) assert.ok(known.has(JSON.stringify(r)), `${JSON.stringify(r)} is not a row of ${universe} (${sql})`);
}

/** Same result as PostgreSQL, with values (extended protocol) when given. */
async function same(sql: string, values?: unknown[], ordered = /ORDER BY/i.test(sql)): Promise<void> {
  if (!values) return assertSameResult(weave, reference, sql, ordered);
  const expected = await runQuery(reference, sql, 60_000, values);
  const actual = await runQuery(weave, sql, 60_000, values);
  assert.ok(expected.ok, `PostgreSQL failed: ${sql}: ${!expected.ok && expected.message}`);
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && `${actual.code} ${actual.message}`}`);
  assert.equal(compareResults(expected.result, actual.result, ordered ? 'total' : 'none'), null, sql);
}

test('LIMIT without ORDER BY over a distributed table: top level, CTE, FROM subquery, OFFSET, FETCH FIRST, LIMIT ALL', async () => {
  const rows = 'SELECT k, v FROM t';
  await sameCountFrom('SELECT k, v FROM t LIMIT 2', rows);
  await sameCountFrom('WITH x AS (SELECT k, v FROM t LIMIT 2) SELECT k, v FROM x', rows);
  await sameCountFrom('SELECT * FROM (SELECT k, v FROM t LIMIT 2) s', rows);
  await sameCountFrom('SELECT * FROM (SELECT k, v FROM t LIMIT 3 OFFSET 5) s', rows);
  await sameCountFrom('SELECT * FROM (SELECT k, v FROM t OFFSET 96) s', rows);
  await sameCountFrom('SELECT * FROM (SELECT k, v FROM t FETCH FIRST 4 ROWS ONLY) s', rows);
  await sameCountFrom('SELECT * FROM (SELECT k, v FROM t OFFSET 3 ROWS FETCH NEXT 2 ROWS ONLY) s', rows);
  await sameCountFrom('SELECT * FROM (SELECT k, v FROM t LIMIT ALL) s', rows);
  await sameCountFrom('SELECT DISTINCT v FROM t LIMIT 3', 'SELECT DISTINCT v FROM t');
  await same('SELECT count(*) FROM (SELECT k, v FROM t LIMIT 7) s');
});

test('LIMIT without ORDER BY nested, joined with another distributed table, in IN (…), prepared', async () => {
  await sameCountFrom('SELECT * FROM (SELECT * FROM (SELECT k, v FROM t LIMIT 10) a LIMIT 3) b', 'SELECT k, v FROM t');
  await same('SELECT count(*) FROM (SELECT k FROM t LIMIT 5) a JOIN u ON a.k = u.k');
  await same('SELECT count(*) FROM u WHERE k IN (SELECT k FROM t LIMIT 5)');
  await sameCountFrom('SELECT u.k, u.x FROM (SELECT k FROM t LIMIT 5) a JOIN u ON a.k = u.k', 'SELECT k, x FROM u');
  await sameCountFrom('SELECT k, v FROM t LIMIT $1', 'SELECT k, v FROM t', [3]);
  await same('SELECT count(*) FROM (SELECT v FROM t LIMIT $1 OFFSET $2) s', [3, 98]);
  await same('WITH x AS (SELECT v FROM t LIMIT $1) SELECT count(*) FROM x', [4]);
});

test('ORDER BY … LIMIT in subqueries and CTEs compares exactly', async () => {
  await same('SELECT * FROM (SELECT k, v FROM t ORDER BY k LIMIT 3 OFFSET 2) s ORDER BY k');
  await same('WITH x AS (SELECT k, w FROM t ORDER BY w DESC FETCH FIRST 5 ROWS ONLY) SELECT x.k, x.w, u.x FROM x LEFT JOIN u ON u.k = x.k ORDER BY x.w');
  await same('SELECT k FROM u WHERE k IN (SELECT k FROM t ORDER BY v DESC, k LIMIT 6) ORDER BY k');
  await same('SELECT k, v FROM t ORDER BY k LIMIT $1 OFFSET $2', [4, 10]);
});

test('FETCH FIRST … WITH TIES keeps the ties (top level, subquery, CTE, IN, offset, prepared)', async () => {
  await same('SELECT k, v FROM t ORDER BY v FETCH FIRST 2 ROWS WITH TIES', undefined, false);
  await same('SELECT count(*) FROM (SELECT v FROM t ORDER BY v FETCH FIRST 2 ROWS WITH TIES) a');
  await same('SELECT k, v FROM t ORDER BY v DESC, k / 10 OFFSET 2 FETCH FIRST 2 ROWS WITH TIES', undefined, false);
  await same('SELECT count(*) FROM (SELECT k FROM t ORDER BY v DESC OFFSET 3 FETCH FIRST 2 ROWS WITH TIES) a');
  await same('WITH x AS (SELECT v FROM t ORDER BY v FETCH FIRST 16 ROWS WITH TIES) SELECT v, count(*) FROM x GROUP BY v ORDER BY v');
  await same('SELECT count(*) FROM u WHERE k IN (SELECT v FROM t ORDER BY v DESC FETCH FIRST 1 ROW WITH TIES)');
  await same('SELECT v, count(*) FROM t GROUP BY v ORDER BY count(*) DESC FETCH FIRST 1 ROW WITH TIES', undefined, false);
  await same('SELECT count(*) FROM (SELECT v FROM t ORDER BY v FETCH FIRST $1 ROWS WITH TIES) a', [2]);
});

test('anonymous records in a pushdown: ROW(…), (a, b), nested rows and whole rows of a subquery are staged field by field', async () => {
  await same('SELECT ROW(v, w) FROM t ORDER BY k LIMIT 3');
  await same('SELECT (v, w), k FROM t ORDER BY k LIMIT 3');
  await same('SELECT DISTINCT ROW(v, w) AS r FROM t ORDER BY 1 LIMIT 3');
  await same('SELECT DISTINCT ROW(v, w) AS r FROM t ORDER BY r DESC LIMIT 3');
  await same('SELECT ROW(v, ROW(w, k)) FROM t ORDER BY 1 LIMIT 3');
  await same('SELECT ROW(k) FROM t ORDER BY 1 DESC LIMIT 3');
  await same('SELECT k FROM t ORDER BY ROW(v, w), k LIMIT 3');
  await same('SELECT s FROM (SELECT k, w FROM t) s ORDER BY s.k LIMIT 3');
  await same('SELECT s FROM (SELECT k, w FROM t) s ORDER BY s DESC LIMIT 3');
  await same('SELECT s, s.k FROM (SELECT k, w FROM t WHERE k < 9) s (k, w) ORDER BY 2 LIMIT 3');
  // Functions of a whole row (its field names visible) run where the names are known: on the workers, or on the
  // coordinator over pulled tables; the rebuilt ROW(…) is only output, ordered and de-duplicated.
  await same('SELECT row_to_json(s), s FROM (SELECT k, w FROM t) s ORDER BY s DESC LIMIT 3');
  await same('SELECT to_jsonb(s), (s).k FROM (SELECT k, w FROM t) s ORDER BY s.k LIMIT 3');
  await same('SELECT k, json_agg(s) FROM (SELECT k, w FROM t) s GROUP BY k ORDER BY k LIMIT 3');
  await same('SELECT json_agg(s ORDER BY s.k) FROM (SELECT k, w FROM t WHERE k < 5) s');
  await same('SELECT row_to_json(x.r), (x.r).w FROM (SELECT s AS r FROM (SELECT k, w FROM t) s ORDER BY s.k LIMIT 3) x');
  // A subquery of `*`: how many fields only the catalog knows, so its whole row is not split.
  await same('SELECT s FROM (SELECT * FROM t) s ORDER BY s LIMIT 3');
  await same('SELECT DISTINCT s FROM (SELECT t.* FROM t WHERE k < 9) s ORDER BY s');
  // Grouped by the distribution column: the whole query per shard.
  await same('SELECT k, ROW(v, count(*)) FROM t GROUP BY k ORDER BY k LIMIT 3');
  // GROUP BY a record or an aggregate of records: pulled.
  await same('SELECT ROW(v, w), count(*) FROM t GROUP BY 1 ORDER BY 1 LIMIT 3');
  await same('SELECT v, array_agg(ROW(k, w) ORDER BY k) AS a, count(*) FROM t WHERE k < 20 GROUP BY v ORDER BY 1');
  await same('SELECT v, cardinality(array_agg(ROW(k, w))) FROM t GROUP BY v ORDER BY 1');
});

test('anonymous records in CTEs and subqueries planned on their own, and records the planner cannot see', async () => {
  await same('WITH x AS (SELECT s, s.v FROM (SELECT v, count(*) AS c FROM t GROUP BY v) s) SELECT x.s FROM x JOIN u ON u.k = x.v ORDER BY 1');
  await same('WITH x AS (SELECT s AS r, s.k FROM (SELECT k, w FROM t) s ORDER BY s.k LIMIT 3) SELECT x.r FROM x JOIN u ON u.k = x.k ORDER BY 1');
  await same('SELECT r FROM (SELECT DISTINCT ROW(v, w) AS r FROM t) s ORDER BY 1 LIMIT 3');
  // Records only PostgreSQL's types reveal: the staging table is refused and the tables are pulled instead.
  await same('SELECT COALESCE(ROW(v, w), NULL) FROM t ORDER BY k LIMIT 3');
  await same(`SELECT json_each('{"a":1}'::json), k FROM t ORDER BY k LIMIT 2`);
  // Inside a transaction block the refused CREATE has aborted the block: a clear 0A000, not 42P16.
  await weave.query('BEGIN');
  try {
    const inBlock = await runQuery(weave, 'SELECT COALESCE(ROW(v, w), NULL) FROM t ORDER BY k LIMIT 3');
    assert.ok(!inBlock.ok && inBlock.code === '0A000', JSON.stringify(inBlock));
    assert.match(inBlock.message, /anonymous record/);
  } finally {
    await weave.query('ROLLBACK');
  }
  await weave.query('BEGIN');
  try {
    const ok = await runQuery(weave, 'SELECT ROW(v, w) FROM t ORDER BY k LIMIT 2');
    assert.ok(ok.ok && ok.result.rows.length === 2, JSON.stringify(ok));
  } finally {
    await weave.query('COMMIT');
  }
});

/** Runs `sql` on both sides and asserts the same outcome: both fail with the same SQLSTATE, or both succeed. */
async function sameOutcome(sql: string): Promise<void> {
  const expected = await runQuery(reference, sql);
  const actual = await runQuery(weave, sql);
  if (!expected.ok) {
    assert.ok(!actual.ok, `pgweave succeeded where PostgreSQL failed with ${expected.code}: ${sql}`);
    assert.equal(actual.code, expected.code, `${sql}: ${actual.message}`);
    assert.equal(actual.message, expected.message, sql);
    return;
  }
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && `${actual.code} ${actual.message}`}`);
  assert.equal(actual.result.command, expected.result.command, sql);
}

test('INSERT … SELECT of ROW(…) into a composite column: PostgreSQL refuses it (42846), an explicit cast stores it; into text it is the row\'s text', async () => {
  // INSERT … SELECT reads the SELECT as a subquery: its record column has no assignment cast to pair, on PostgreSQL too.
  await sameOutcome(`INSERT INTO c SELECT g, ROW(g, 'x') FROM generate_series(1, 3) g`); // coordinator
  await sameOutcome(`INSERT INTO c SELECT k, ROW(k, w) FROM t WHERE k < 4`); // co-located: shard to shard
  await sameOutcome(`INSERT INTO c SELECT k, ROW(x, 'a') FROM u WHERE k < 4`); // not co-located
  await sameOutcome(`INSERT INTO c VALUES (7, ROW(7, 'x'))`);
  await sameOutcome(`INSERT INTO c SELECT g + 200, (g, 'y')::pair FROM generate_series(1, 2) g`);
  await sameOutcome(`INSERT INTO c SELECT k, ROW(k, w)::pair FROM t WHERE k < 4`);
  await sameOutcome(`INSERT INTO c SELECT k + 100, ROW(x, 'a'::text)::pair FROM u WHERE k < 4`);
  // The composite's own OID differs between the two servers: compared as text.
  await same('SELECT k, p::text AS p, (p).a, (p).b FROM c ORDER BY k, (p).b');
  // Into text: the record's output text, whichever path moves the rows.
  await sameOutcome(`INSERT INTO tt SELECT k, ROW(x, 'a') FROM u WHERE k < 4`);
  await sameOutcome(`INSERT INTO tt SELECT k, ROW(k, w) FROM t WHERE k < 4`);
  await sameOutcome(`INSERT INTO tt SELECT g, ROW(g, 'x') FROM generate_series(1, 3) g`);
  await sameOutcome(`INSERT INTO tt SELECT k, (k, ROW(v, w)) FROM t WHERE k BETWEEN 10 AND 12`);
  await same('SELECT k, s FROM tt ORDER BY k, s');
  // A record only its function's type reveals, between tables that are not co-located: refused clearly.
  const fn = await runQuery(weave, `INSERT INTO tt SELECT k, json_each('{"a":1}'::json) FROM t WHERE k < 3`);
  assert.ok(!fn.ok && fn.code === '0A000', JSON.stringify(fn));
  assert.match(fn.message, /anonymous record/);
});

test('GROUP BY DISTINCT keeps one of each grouping set, through aggregate pushdown, pulls and worker queries', async () => {
  for (const sql of [
    `SELECT v, count(*) FROM t GROUP BY DISTINCT ROLLUP (v), ROLLUP (v) ORDER BY 1 NULLS FIRST, 2`,
    `SELECT v, w IS NULL AS nw, count(*) FROM t GROUP BY DISTINCT ROLLUP (v, (w IS NULL)), ROLLUP (v) ORDER BY 1 NULLS FIRST, 2 NULLS FIRST, 3`,
    `SELECT t.v, count(*) FROM t JOIN u ON u.k = t.v GROUP BY DISTINCT CUBE (t.v), ROLLUP (t.v) ORDER BY 1 NULLS FIRST, 2`,
    `SELECT s.v, s.n FROM (SELECT v, count(*) AS n FROM t GROUP BY DISTINCT ROLLUP (v), ROLLUP (v)) s ORDER BY 1 NULLS FIRST, 2`,
  ]) {
    await assertSameResult(weave, reference, sql, true);
  }
});
