/**
 * Aggregates split into worker partials and a coordinator final step that
 * need more than SQL's own aggregates (src/planner/aggregate-combines.ts):
 * json_agg, whose separator between two shards' arrays depends on the
 * elements' JSON category and on whether the next element is NULL, and the
 * float variances, standard deviations and covariance/regression families,
 * merged from the shards' double precision transition states as
 * PostgreSQL's parallel plans merge them. Every statement is compared with a
 * plain PostgreSQL holding the same rows, and its EXPLAIN must show the
 * partial aggregate in the worker query (a pull would also give the right
 * answer).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { assertSameResult, collectionParts, explainLines, runQuery, startDifferentialPair, textClient, type DifferentialPair } from './support.js';

let pair: DifferentialPair;

const SETUP = [
  `CREATE TYPE pair AS (a int, b text)`,
  `CREATE DOMAIN pair_d AS pair`,
  `CREATE DOMAIN ints_d AS int[]`,
  `CREATE TABLE m (id int NOT NULL, tenant int NOT NULL, g int, v int, t text, f float8, r real, p pair, arr int[], j jsonb, flag bool)`,
  `INSERT INTO m SELECT id, id % 17, id % 5, CASE WHEN id % 7 = 0 THEN NULL ELSE id END, 'w"' || id,
     CASE WHEN id % 9 = 0 THEN NULL ELSE id * 1.37 + 0.1 END, (id % 13) / 3.0,
     CASE WHEN id % 6 = 0 THEN NULL ELSE ROW(id, 'x,' || id)::pair END,
     CASE WHEN id % 4 = 0 THEN NULL ELSE ARRAY[id, id + 1] END,
     CASE WHEN id % 8 = 0 THEN NULL ELSE jsonb_build_object('k', id) END, id % 3 = 0
     FROM generate_series(1, 400) id`,
  // One-row groups (the sample forms are NULL), NaN, infinities, a group of NULLs only.
  `INSERT INTO m (id, tenant, g, v, f, r) VALUES (1001, 1, 100, 5, 2.5, 1.5), (1002, 2, 101, 1, 'NaN', 2), (1003, 3, 101, 2, 4, 'NaN'),
     (1004, 4, 102, 3, 'Infinity', 1), (1005, 5, 102, 4, 1, '-Infinity'), (1006, 6, 103, NULL, NULL, NULL), (1007, 7, 103, NULL, NULL, NULL)`,
];

before(async () => {
  pair = await startDifferentialPair('aggregate-split', SETUP, [`SELECT create_distributed_table('m', 'tenant', shard_count => 6)`]);
}, { timeout: 300_000 });

after(async () => {
  await pair?.stop();
});

/** The worker query (EXPLAIN VERBOSE) computes `partial`, and the planner is the aggregate pushdown. */
async function assertSplitOn(c: pg.Client, sql: string, partial: string): Promise<void> {
  const lines = await explainLines(c, sql, 'VERBOSE, COSTS OFF');
  assert.ok(lines.some((l) => l.startsWith('  Planner: aggregate-pushdown')), `${sql}: not split:\n${lines.join('\n')}`);
  assert.ok(lines.some((l) => l.includes('Query: ') && l.includes(partial)), `${sql}: no ${partial} in the worker query:\n${lines.join('\n')}`);
}

const assertSplit = (sql: string, partial: string): Promise<void> => assertSplitOn(pair.weave, sql, partial);

/** The top-level elements of a json array's text, each with the separator before it ('' for the first). */
function jsonArrayParts(text: string): Array<{ sep: string; element: string }> {
  const parts = collectionParts(text, '[', ']');
  assert.ok(parts, text);
  return parts;
}

/**
 * json_agg results of both sides: the same rows, each array holding the
 * same elements (the order is unspecified), every separator as
 * json_agg_transfn writes it — ", \n " before a non-null element of a
 * structured category, ", " otherwise — checked on PostgreSQL's side too.
 */
async function sameJsonAgg(sql: string, structured: boolean): Promise<void> {
  const expected = await runQuery(pair.reference, sql);
  const actual = await runQuery(pair.weave, sql);
  assert.ok(expected.ok, `PostgreSQL failed: ${sql}: ${!expected.ok && expected.message}`);
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && actual.message}`);
  assert.deepEqual(actual.result.fields, expected.result.fields, sql);
  assert.deepEqual(actual.result.types, expected.result.types, sql);
  assert.equal(actual.result.rows.length, expected.result.rows.length, sql);
  let structuredSeen = false;
  expected.result.rows.forEach((row, i) => row.forEach((e, k) => {
    const a = actual.result.rows[i]![k]!;
    if (e === null || !e.startsWith('[')) {
      assert.equal(a, e, `${sql}: row ${i}`);
      return;
    }
    const [ep, ap] = [jsonArrayParts(e), jsonArrayParts(a)];
    assert.deepEqual(ap.map((p) => p.element).sort(), ep.map((p) => p.element).sort(), `${sql}: row ${i}: elements`);
    for (const [side, parts] of [['PostgreSQL', ep], ['pgweave', ap]] as const) {
      parts.forEach((p, n) => {
        const want = n === 0 ? '' : structured && p.element !== 'null' ? ', \n ' : ', ';
        assert.equal(p.sep, want, `${sql}: row ${i}: ${side}'s separator before element ${n} (${p.element})`);
        if (want === ', \n ') structuredSeen = true;
      });
    }
  }));
  assert.equal(structuredSeen, structured, `${sql}: structured separators expected: ${structured}`);
  await assertSplit(sql, 'json_agg(');
}

test('json_agg of scalars, composites, arrays, domains over them and NULLs: the shards\' arrays joined with json_agg\'s own separators', async () => {
  const cases: Array<[string, boolean]> = [
    ['json_agg(v)', false],
    ['json_agg(t)', false],
    ['json_agg(j)', false],
    ['json_agg(p)', true],
    ['json_agg(p::pair_d)', true],
    ['json_agg(ROW(v, t))', true],
    ['json_agg(arr)', true],
    ['json_agg(arr::ints_d)', true],
    ['json_agg(p) FILTER (WHERE flag)', true],
  ];
  for (const [agg, structured] of cases) {
    await sameJsonAgg(`SELECT g, ${agg} FROM m WHERE id <= 400 GROUP BY g ORDER BY g`, structured);
    await sameJsonAgg(`SELECT ${agg}, count(*) FROM m WHERE id <= 400 AND g = 1`, structured);
  }
  // Each shard's first row (the lowest ids, inserted first) has a NULL element: its array joins with ", " only.
  await sameJsonAgg(`SELECT json_agg(CASE WHEN id <= 30 THEN NULL ELSE p END) FROM m WHERE id <= 400`, true);
  // HAVING, and groups the filter leaves empty (json_agg of no rows is NULL).
  await sameJsonAgg(`SELECT g, json_agg(arr) FILTER (WHERE v > 390) AS late FROM m WHERE id <= 400 GROUP BY g HAVING count(*) > 70 ORDER BY g`, true);
  await sameJsonAgg(`SELECT json_agg(p) FROM m WHERE id < 0`, false);
  await sameJsonAgg(`SELECT g, json_agg(p) FROM m WHERE id < 0 GROUP BY g`, false);
});

/**
 * Float results: equal within compareResults' float tolerance (their low
 * bits depend on the accumulation order, in PostgreSQL too), every other
 * column exactly; and the statement is split.
 */
async function closeFloats(sql: string, partial: string): Promise<void> {
  await assertSameResult(pair.weave, pair.reference, sql, true);
  await assertSplit(sql, partial);
}

test('float variances and standard deviations: the shards\' float8_accum states merged as PostgreSQL\'s parallel plans merge them', async () => {
  const all = 'var_pop(f), var_samp(f), variance(f), stddev_pop(f), stddev_samp(f), stddev(f), var_pop(r), var_samp(r), stddev_pop(r), stddev(r)';
  const state = 'pgweave_float8_accum_state(';
  await closeFloats(`SELECT g, ${all} FROM m GROUP BY g ORDER BY g`, state);
  await closeFloats(`SELECT ${all} FROM m WHERE g < 100`, state);
  await closeFloats(`SELECT ${all} FROM m WHERE id < 0`, state);
  await closeFloats(`SELECT g, variance(f) FILTER (WHERE flag), stddev_samp(f * 2) FROM m GROUP BY g HAVING stddev(r) > 0.5 OR g > 99 ORDER BY g`, state);
  await closeFloats(`SELECT g, var_samp(f) + 1 AS shifted, count(*) FROM m GROUP BY g ORDER BY var_samp(f) NULLS FIRST, g`, state);
  // Integer and numeric inputs keep their exact combine beside the float ones.
  await closeFloats(`SELECT g, var_pop(v), var_pop(v::float8), stddev(v::numeric) FROM m GROUP BY g ORDER BY g`, state);
});

test('covariance, correlation and regressions: the shards\' float8_regr_accum states merged', async () => {
  const aggs = ['covar_pop(f, r)', 'covar_samp(f, v)', 'corr(f, r)', 'regr_avgx(f, r)', 'regr_avgy(f, r)', 'regr_intercept(f, r)', 'regr_r2(f, r)',
    'regr_slope(f, v)', 'regr_sxx(f, r)', 'regr_sxy(f, r)', 'regr_syy(f, r)', 'regr_count(f, r)'].join(', ');
  await closeFloats(`SELECT g, ${aggs} FROM m GROUP BY g ORDER BY g`, 'pgweave_float8_regr_accum_state(');
  await closeFloats(`SELECT ${aggs} FROM m WHERE g < 100`, 'pgweave_float8_regr_accum_state(');
  await closeFloats(`SELECT ${aggs} FROM m WHERE id < 0`, 'pgweave_float8_regr_accum_state(');
});

test('a new database and a worker added later get the support functions on first use', async () => {
  const { cluster } = pair;
  await pair.weave.query('CREATE DATABASE split_later');
  const c = await textClient(cluster.url.replace(/\/postgres$/, '/split_later'), 'aggregate-split');
  try {
    const [first, second] = cluster.workers;
    await c.query(`SELECT citus_add_node('${first!.host}', ${first!.port})`);
    const sql = (table: string) => `SELECT var_pop(x), stddev_samp(x::real), json_agg(ARRAY[k]) FROM ${table}`;
    const check = async (table: string) => {
      // The statement first (EXPLAIN would create the functions everywhere itself), its plan after.
      const r = await c.query({ text: sql(table), rowMode: 'array' });
      await assertSplitOn(c, sql(table), 'pgweave_float8_accum_state(');
      const [varPop, stddev, json] = (r.rows as string[][])[0]!;
      assert.ok(Math.abs(Number(varPop) - 1.25) < 1e-12, varPop);
      assert.ok(Math.abs(Number(stddev) - Math.sqrt(5 / 3)) < 1e-12, stddev);
      const parts = jsonArrayParts(json!);
      assert.deepEqual(parts.map((p) => p.element).sort(), ['[1]', '[2]', '[3]', '[4]']);
      assert.ok(parts.slice(1).every((p) => p.sep === ', \n '), json);
    };
    for (const table of ['before_add', 'after_add']) {
      if (table === 'after_add') await c.query(`SELECT citus_add_node('${second!.host}', ${second!.port})`);
      await c.query(`CREATE TABLE ${table} (k int, x float8)`);
      await c.query(`SELECT create_distributed_table('${table}', 'k', shard_count => 4)`);
      await c.query(`INSERT INTO ${table} VALUES (1, 1), (2, 2), (3, 3), (4, 4)`);
      await check(table);
    }
    // The second table's shards are on both workers, the second one registered after the first split ran.
    const nodes = await c.query(`SELECT count(DISTINCT nodeport) AS n FROM citus_shards WHERE table_name = 'after_add'::regclass`);
    assert.deepEqual(nodes.rows, [{ n: '2' }]);
  } finally {
    await c.end();
  }
});
