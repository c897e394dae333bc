/**
 * The deparser (src/sql/deparse.ts) on trees of PostgreSQL's own parser:
 * deparsed SQL parses back to the same tree (locations aside), including the
 * clauses pgsql-deparser alone drops or garbles (WITH TIES, GROUP BY
 * DISTINCT, window frames and references, subscripts of expressions,
 * SEARCH/CYCLE, OVERRIDING, quoted CTE and window names).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { deparseSql } from '../../src/sql/deparse.js';
import { initParser, parseSql, type Node } from '../../src/sql/parse.js';

before(() => initParser());

/** A parse tree without its text locations (they move when the text is written again). */
function withoutLocations(tree: Node): Node {
  return JSON.parse(JSON.stringify(tree, (k, v) => (k === 'location' || k === 'stmt_location' || k === 'stmt_len' ? undefined : v)));
}

function assertRoundTrip(sql: string): void {
  const tree = parseSql(sql).stmts[0]!.stmt;
  const text = deparseSql(tree);
  assert.deepEqual(withoutLocations(parseSql(text).stmts[0]!.stmt), withoutLocations(tree), `${sql}\n  deparsed as: ${text}`);
}

test('GROUP BY DISTINCT keeps its DISTINCT, alone and with WITH TIES, in subqueries too', () => {
  for (const sql of [
    `SELECT a, b, count(*) FROM t GROUP BY DISTINCT ROLLUP (a, b), ROLLUP (a, c)`,
    `SELECT a FROM t GROUP BY DISTINCT a, CUBE (b, c) HAVING count(*) > 1`,
    `SELECT a FROM t GROUP BY DISTINCT a ORDER BY a FETCH FIRST 3 ROWS WITH TIES`,
    `SELECT * FROM (SELECT a, count(*) FROM t GROUP BY DISTINCT GROUPING SETS ((a), (a), ())) s`,
    `SELECT a FROM t GROUP BY a, b`,
    `SELECT a FROM t ORDER BY a OFFSET 2 FETCH FIRST 5 ROWS WITH TIES`,
  ]) {
    assertRoundTrip(sql);
  }
});

test('window frames keep their bounds and exclusions; window references and names survive', () => {
  for (const sql of [
    `SELECT last_value(a) OVER (PARTITION BY b ORDER BY c ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM t`,
    `SELECT count(*) OVER (ORDER BY a GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM t`,
    `SELECT sum(a) OVER (ORDER BY b ROWS BETWEEN 5 PRECEDING AND 2 PRECEDING EXCLUDE TIES) FROM t`,
    `SELECT sum(a) OVER (ORDER BY b ROWS BETWEEN 2 FOLLOWING AND 5 FOLLOWING EXCLUDE GROUP) FROM t`,
    `SELECT sum(a) OVER (ORDER BY b RANGE BETWEEN '1 day'::interval PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW) FROM t`,
    `SELECT sum(a) OVER (ORDER BY b ROWS UNBOUNDED PRECEDING), sum(a) OVER (ORDER BY b RANGE CURRENT ROW), sum(a) OVER (ORDER BY b ROWS 3 PRECEDING) FROM t`,
    `SELECT sum(a) OVER (ORDER BY b RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING), row_number() OVER () FROM t`,
    `SELECT count(*) OVER (w ORDER BY b), sum(a) OVER w, rank() OVER ("W" ROWS 2 PRECEDING) FROM t WINDOW w AS (PARTITION BY c), "W" AS (w ORDER BY d)`,
    `SELECT count(*) OVER ("W") FROM t WINDOW "W" AS (ORDER BY a)`,
  ]) {
    assertRoundTrip(sql);
  }
});

test('subscripts of expressions, SEARCH/CYCLE, OVERRIDING and quoted CTE names survive', () => {
  for (const sql of [
    `SELECT (ARRAY['a', 'b'])[1 + g % 2], (ARRAY[1, 2])[1:2], (row(1, 2)).f1, (f(x)).y, ($1::int[])[1], a[1] FROM t`,
    `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SEARCH DEPTH FIRST BY n SET ord SELECT * FROM t`,
    `WITH RECURSIVE x(a) AS NOT MATERIALIZED (SELECT 1 UNION SELECT a + 1 FROM x) SEARCH BREADTH FIRST BY a SET o CYCLE a SET c TO true DEFAULT false USING p SELECT * FROM x`,
    `WITH RECURSIVE "R"(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM "R") CYCLE n SET "Is" USING "P" SELECT * FROM "R"`,
    `INSERT INTO t OVERRIDING SYSTEM VALUE VALUES (DEFAULT, 1)`,
    `INSERT INTO t (a, b) OVERRIDING USER VALUE SELECT a, b FROM u`,
    `WITH "Ab" AS (SELECT 1 AS "X y") SELECT "X y" FROM "Ab"`,
    `WITH "select"("Col") AS (SELECT 1) SELECT "Col" FROM "select"`,
  ]) {
    assertRoundTrip(sql);
  }
});
