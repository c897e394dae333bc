/**
 * Pushdown with merge (src/planner/pushdown-planner.ts): each aggregate the
 * coordinator combines from partial results, grouped and ungrouped, with
 * HAVING, ORDER BY/LIMIT, DISTINCT and window functions over the groups;
 * GROUP BY a distribution column pushed down whole; ORDER BY … LIMIT
 * pushed to the shards. Every statement is compared with a plain
 * PostgreSQL holding the same rows: values, order where defined, and the
 * column names and type OIDs of the RowDescription. EXPLAIN names the
 * planner each statement must take, so a silent fallback to pulling fails.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { compareResults, runQuery, textClient } from './support.js';

let cluster: TestCluster | undefined;
let plain: TestPostgres | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  `CREATE TABLE ev (id int8 NOT NULL, tenant int NOT NULL, kind text, n int, s smallint, b bigint, amount numeric(12,3), f float8, r real, flag bool, dur interval, note varchar(20) COLLATE "C", PRIMARY KEY (tenant, id))`,
  `INSERT INTO ev SELECT g, g % 17, (ARRAY['click','view','buy',NULL])[1 + g % 4], CASE WHEN g % 11 = 0 THEN NULL ELSE g % 97 END, (g % 7)::smallint,
     CASE WHEN g % 13 = 0 THEN NULL ELSE g::bigint * 1000003 END, CASE WHEN g % 9 = 0 THEN NULL ELSE round((g * 7.123) % 500, 3) END, g / 7.0, (g % 10) / 3.0,
     g % 5 = 0, make_interval(secs => g % 61), (ARRAY['b','a','B','ä'])[1 + g % 4] FROM generate_series(1, 3000) g`,
  `CREATE TABLE ev_detail (id int8 NOT NULL, tenant int NOT NULL, weight int, PRIMARY KEY (tenant, id))`,
  `INSERT INTO ev_detail SELECT g, g % 17, g % 23 FROM generate_series(1, 3000, 3) g`,
  `CREATE TABLE kinds (kind text PRIMARY KEY, label text)`,
  `INSERT INTO kinds VALUES ('click', 'C'), ('view', 'V'), ('buy', 'B')`,
];

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url, 'pushdown');
  reference = await textClient(plain.url, 'pushdown');
  for (const w of cluster.workers) await weave.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  for (const c of [weave, reference]) for (const s of SETUP) await c.query(s);
  await weave.query(`SELECT create_distributed_table('ev', 'tenant', shard_count => 6)`);
  await weave.query(`SELECT create_distributed_table('ev_detail', 'tenant', colocate_with => 'ev')`);
  await weave.query(`SELECT create_reference_table('kinds')`);
}, { timeout: 300_000 });

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

async function plannerOf(sql: string): Promise<string> {
  const r = await weave.query({ text: `EXPLAIN (COSTS OFF) ${sql}`, rowMode: 'array' });
  const line = (r.rows as string[][]).map((x) => x[0]!).find((l) => l.startsWith('  Planner: ')) ?? '';
  return line.replace('  Planner: ', '').split(' ')[0]!;
}

async function same(sql: string, planner: string, ordered = /ORDER BY/i.test(sql)): Promise<void> {
  const expected = await runQuery(reference, sql);
  const actual = await runQuery(weave, sql);
  assert.ok(expected.ok, `PostgreSQL failed: ${sql}: ${!expected.ok && expected.message}`);
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && actual.message}`);
  assert.equal(compareResults(expected.result, actual.result, ordered ? 'total' : 'none'), null, sql);
  assert.equal(await plannerOf(sql), planner, sql);
}

const AGGREGATES: Array<[string, string]> = [
  ['count(*)', 'aggregate-pushdown'],
  ['count(n)', 'aggregate-pushdown'],
  ['count(*) FILTER (WHERE flag)', 'aggregate-pushdown'],
  ['sum(n)', 'aggregate-pushdown'],
  ['sum(s)', 'aggregate-pushdown'],
  ['sum(b)', 'aggregate-pushdown'],
  ['sum(amount)', 'aggregate-pushdown'],
  ['sum(dur)', 'aggregate-pushdown'],
  ['avg(n)', 'aggregate-pushdown'],
  ['avg(s)', 'aggregate-pushdown'],
  ['avg(b)', 'aggregate-pushdown'],
  ['avg(amount)', 'aggregate-pushdown'],
  ['avg(dur)', 'aggregate-pushdown'],
  ['min(amount)', 'aggregate-pushdown'],
  ['max(note)', 'aggregate-pushdown'],
  ['min(f)', 'aggregate-pushdown'],
  ['max(r)', 'aggregate-pushdown'],
  ['bool_and(flag)', 'aggregate-pushdown'],
  ['bool_or(flag)', 'aggregate-pushdown'],
  ['every(n > 3)', 'aggregate-pushdown'],
  ['bit_and(n)', 'aggregate-pushdown'],
  ['bit_or(b)', 'aggregate-pushdown'],
  ['bit_xor(s)', 'aggregate-pushdown'],
  ['count(DISTINCT n)', 'aggregate-pushdown'],
  ['sum(DISTINCT amount)', 'aggregate-pushdown'],
  ['avg(DISTINCT f)', 'aggregate-pushdown'],
  // avg(real) accumulates in double precision; a partial sum(real) would not: pulled.
  ['avg(r)', 'pull'],
  // Variances of integers and numeric: from exact count, sum and sum of squares, to the last digit.
  ['stddev(n)', 'aggregate-pushdown'],
  ['variance(s)', 'aggregate-pushdown'],
  ['var_pop(b)', 'aggregate-pushdown'],
  ['var_samp(amount)', 'aggregate-pushdown'],
  ['stddev_pop(amount)', 'aggregate-pushdown'],
  ['stddev_samp(b)', 'aggregate-pushdown'],
  ['stddev(n) FILTER (WHERE flag)', 'aggregate-pushdown'],
  ['string_agg(DISTINCT kind, \',\')', 'pull'],
  ['string_agg(kind, \',\' ORDER BY kind)', 'pull'],
];

for (const [agg, planner] of AGGREGATES) {
  test(`${agg}: values, names and types as PostgreSQL's, grouped and not`, async () => {
    await same(`SELECT ${agg} FROM ev`, planner);
    await same(`SELECT kind, ${agg} FROM ev GROUP BY kind ORDER BY kind`, planner);
    await same(`SELECT ${agg} AS x, s FROM ev WHERE id > 2990 GROUP BY s ORDER BY 2`, planner);
    await same(`SELECT ${agg} FROM ev WHERE id < 0`, planner);
  });
}

/** Float results whose low bits depend on the summation order (in PostgreSQL too): equal to 1e-12 relative (1e-6 for real). */
async function close(sql: string, planner = 'aggregate-pushdown'): Promise<void> {
  const expected = await runQuery(reference, sql);
  const actual = await runQuery(weave, sql);
  assert.ok(expected.ok && actual.ok, sql);
  assert.deepEqual(actual.result.types, expected.result.types, sql);
  assert.deepEqual(actual.result.fields, expected.result.fields, sql);
  assert.equal(actual.result.rows.length, expected.result.rows.length, sql);
  expected.result.rows.forEach((row, i) => row.forEach((v, j) => {
    const a = Number(actual.result.rows[i]![j]);
    const e = Number(v);
    const tolerance = expected.result.types[j] === 700 ? 1e-6 : 1e-12; // real sums in single precision
    assert.ok(Math.abs(a - e) <= tolerance * Math.max(1, Math.abs(e)), `${sql}: row ${i} column ${j}: PostgreSQL ${v}, pgweave ${actual.result.rows[i]![j]}`);
  }));
  assert.equal(await plannerOf(sql), planner, sql);
}

test('float variances are combined from the shards\' double precision states, equal up to accumulation order', async () => {
  for (const sql of [`SELECT stddev(f), var_pop(r) FROM ev`, `SELECT s, variance(f), stddev_pop(r), corr(f, r) FROM ev GROUP BY s ORDER BY s`]) {
    await close(sql);
  }
});

test('float sum and avg are combined from partial sums, equal up to summation order', async () => {
  for (const agg of ['sum(f)', 'sum(r)', 'avg(f)']) {
    await close(`SELECT ${agg} FROM ev`);
    await close(`SELECT ${agg} FROM ev GROUP BY s ORDER BY s`);
  }
});

test('HAVING, ORDER BY an aggregate, LIMIT/OFFSET, DISTINCT and window functions over combined groups', async () => {
  const p = 'aggregate-pushdown';
  await same(`SELECT kind, count(*) FROM ev GROUP BY kind HAVING sum(n) > 1000 ORDER BY count(*) DESC, kind NULLS FIRST`, p);
  await same(`SELECT s, avg(amount) AS a FROM ev GROUP BY s ORDER BY a DESC NULLS LAST LIMIT 3 OFFSET 1`, p);
  await same(`SELECT DISTINCT count(*) > 400 FROM ev GROUP BY kind`, p, false);
  await same(`SELECT kind, sum(n), rank() OVER (ORDER BY sum(n) DESC) FROM ev GROUP BY kind ORDER BY 3, 1`, p);
  await same(`SELECT n % 5 AS m, count(DISTINCT kind), max(amount) - min(amount) FROM ev GROUP BY 1 ORDER BY m`, p);
  await same(`SELECT upper(kind), count(*) + 1, coalesce(sum(b), 0)::text FROM ev GROUP BY kind ORDER BY 1`, p);
  await same(`SELECT note, count(*) FROM ev GROUP BY note ORDER BY note`, p);
  await same(`SELECT count(*) FROM ev HAVING count(*) > 5`, p);
  // distinct values of the distribution column live on one shard: per-shard distinct counts add up
  await same(`SELECT kind, count(DISTINCT tenant), sum(DISTINCT tenant) FROM ev GROUP BY kind ORDER BY kind`, p);
  // …but not when the worker groups by another DISTINCT argument too: pulled
  await same(`SELECT count(DISTINCT tenant), count(DISTINCT n) FROM ev`, 'pull');
  await same(`SELECT count(DISTINCT e.tenant) FROM ev e JOIN ev_detail d ON d.tenant = e.tenant AND d.id = e.id`, p);
});

test('joins of co-located tables and reference tables aggregate on the shards', async () => {
  await same(`SELECT k.label, count(*), sum(d.weight) FROM ev e JOIN ev_detail d ON d.tenant = e.tenant AND d.id = e.id JOIN kinds k ON k.kind = e.kind GROUP BY k.label ORDER BY 1`, 'aggregate-pushdown');
  await same(`SELECT e.tenant, count(*), string_agg(e.kind, ',' ORDER BY e.id) FROM ev e JOIN ev_detail d ON d.tenant = e.tenant AND d.id = e.id GROUP BY e.tenant ORDER BY 2 DESC, 1 LIMIT 5`, 'grouped-pushdown');
});

test('GROUP BY the distribution column runs whole on the shards', async () => {
  const p = 'grouped-pushdown';
  await same(`SELECT tenant, count(*), stddev(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM ev GROUP BY tenant ORDER BY tenant`, 'pull');
  await same(`SELECT tenant, count(*), stddev(n), sum(f) FROM ev GROUP BY tenant HAVING count(*) > 100 ORDER BY sum(n) DESC LIMIT 4`, p);
  await same(`SELECT DISTINCT count(*) FROM ev GROUP BY tenant`, p, false);
  await same(`SELECT tenant, kind, count(*) FROM ev GROUP BY tenant, kind ORDER BY 3 DESC, 1, 2 NULLS FIRST LIMIT 7`, p);
});

test('ORDER BY … LIMIT and DISTINCT without aggregates are pushed to the shards', async () => {
  const p = 'order-limit-pushdown';
  await same(`SELECT id, kind, amount FROM ev ORDER BY amount DESC NULLS LAST, id LIMIT 10`, p);
  // * is pulled: the catalog's column list may be stale inside a block that altered the table
  await same(`SELECT * FROM ev ORDER BY id DESC LIMIT 5 OFFSET 3`, 'pull');
  await same(`SELECT id FROM ev WHERE n > 90 ORDER BY f * -1, id`, p);
  await same(`SELECT note FROM ev ORDER BY note COLLATE "C" DESC, id LIMIT 6`, p);
  await same(`SELECT DISTINCT kind, s FROM ev`, p, false);
  await same(`SELECT DISTINCT kind FROM ev ORDER BY kind NULLS FIRST LIMIT 2`, p);
  await same(`SELECT e.id, k.label FROM ev e JOIN kinds k USING (kind) ORDER BY e.id LIMIT 3`, p);
  await same(`SELECT id FROM ev ORDER BY id FETCH FIRST 2 ROWS WITH TIES`, p);
  // constants among the outputs and sort keys: positions in the worker query, never constants read as positions
  await same(`SELECT 2 AS two, id FROM ev ORDER BY two, id DESC LIMIT 4`, p);
  await same(`SELECT 5 AS k, count(*) FROM ev GROUP BY 1`, 'pull', false);
});

test('EXPLAIN of a pushdown shows the worker query and the combine query', async () => {
  const r = await weave.query({ text: `EXPLAIN (VERBOSE, COSTS OFF) SELECT kind, avg(n) FROM ev GROUP BY kind`, rowMode: 'array' });
  const lines = (r.rows as string[][]).map((x) => x[0]!);
  const text = lines.join('\n');
  assert.equal(lines[0], 'Custom Scan (pgweave Pushdown)', text);
  assert.ok(lines.includes('  Task Count: 6'), text);
  assert.match(text, /Query: SELECT kind AS pgweave_k1, sum\(n\) AS pgweave_p1, count\(n\) AS pgweave_p2 FROM "public"\."ev_\d+"/, text);
  assert.match(text, /Query: SELECT pgweave_k1 AS kind, \(sum\("pgweave_p1"\)::numeric \/ sum\("pgweave_p2"\)::numeric\) AS avg/, text);
  const a = await weave.query({ text: `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT kind, avg(n) FROM ev GROUP BY kind`, rowMode: 'array' });
  assert.ok((a.rows as string[][]).some((x) => /actual rows=4 loops=1/.test(x[0]!)), (a.rows as string[][]).join('\n'));
});

test('extended protocol: a named prepared pushdown runs twice; with parameters too; a block sees its own writes', async () => {
  const sql = 'SELECT kind, count(*), avg(n) FROM ev GROUP BY kind ORDER BY kind';
  const expected = await runQuery(reference, sql);
  assert.ok(expected.ok);
  for (let i = 0; i < 2; i++) {
    const r = await weave.query({ name: 'pushdown_prepared', text: sql, rowMode: 'array' });
    assert.deepEqual(r.rows, expected.result.rows);
  }
  const withParam = await weave.query({ text: 'SELECT kind, count(*) FROM ev WHERE n > $1 GROUP BY kind ORDER BY kind', values: [50], rowMode: 'array' });
  const plainParam = await reference.query({ text: 'SELECT kind, count(*) FROM ev WHERE n > $1 GROUP BY kind ORDER BY kind', values: [50], rowMode: 'array' });
  assert.deepEqual(withParam.rows, plainParam.rows);
  await weave.query('BEGIN');
  try {
    await weave.query(`INSERT INTO ev (id, tenant, kind, n) VALUES (100001, 3, 'zzz', 7), (100002, 4, 'zzz', 8)`);
    const r = await weave.query({ text: `SELECT kind, count(*), sum(n) FROM ev WHERE kind > 'v' GROUP BY kind ORDER BY kind`, rowMode: 'array' });
    assert.deepEqual(r.rows.at(-1), ['zzz', '2', '15']);
  } finally {
    await weave.query('ROLLBACK');
  }
  const after = await weave.query({ text: `SELECT count(*) FROM ev WHERE kind = 'zzz'`, rowMode: 'array' });
  assert.deepEqual(after.rows, [['0']]);
});

/** A value of an order-insensitive aggregate in a canonical form: its elements (or object entries) sorted. */
function canonical(v: string | null, kind: 'array' | 'string' | 'json'): string | null {
  if (v === null) return null;
  if (kind === 'string') return v.split(',').sort().join(',');
  if (kind === 'array') return v.slice(1, -1).split(',').sort().join(',');
  const parsed = JSON.parse(v) as unknown;
  if (Array.isArray(parsed)) return JSON.stringify(parsed.map((e) => JSON.stringify(e)).sort());
  return JSON.stringify(Object.entries(parsed as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

test('array_agg, string_agg and JSON aggregates without ORDER BY: the shards\' results concatenated (the order is unspecified in PostgreSQL too)', async () => {
  const cases: Array<[string, 'array' | 'string' | 'json']> = [
    ['array_agg(n)', 'array'],
    ['array_agg(note)', 'array'],
    ['array_agg(n) FILTER (WHERE flag)', 'array'],
    ['string_agg(kind, \',\')', 'string'],
    ['string_agg(note::text, \',\') FILTER (WHERE n > 50)', 'string'],
    ['jsonb_agg(amount)', 'json'],
    ['json_agg(n)', 'json'],
    ['json_agg(ROW(n, kind)) FILTER (WHERE flag)', 'json'],
    ['jsonb_object_agg(id, n)', 'json'],
    ['json_object_agg(id, kind)', 'json'],
  ];
  for (const [agg, kind] of cases) {
    for (const sql of [`SELECT s, ${agg} FROM ev WHERE id < 400 GROUP BY s ORDER BY s`, `SELECT ${agg} FROM ev WHERE id BETWEEN 10 AND 90`, `SELECT ${agg} FROM ev WHERE id < 0`]) {
      const expected = await runQuery(reference, sql);
      const actual = await runQuery(weave, sql);
      assert.ok(expected.ok && actual.ok, `${sql}: ${!actual.ok ? actual.message : ''}`);
      assert.deepEqual(actual.result.types, expected.result.types, sql);
      assert.deepEqual(actual.result.fields, expected.result.fields, sql);
      const last = expected.result.fields.length - 1;
      const norm = (rows: Array<Array<string | null>>) => rows.map((r) => [...r.slice(0, last), canonical(r[last]!, kind)]);
      assert.deepEqual(norm(actual.result.rows), norm(expected.result.rows), sql);
      assert.equal(await plannerOf(sql), 'aggregate-pushdown', sql);
    }
  }
  // Arrays of character(n): cast back to bpchar[] (never character[], which SQL reads as char(1)[]), every character kept.
  const bpchar = `SELECT array_agg(kind::character(5)) FROM ev WHERE id < 9`;
  const [e, a] = [await runQuery(reference, bpchar), await runQuery(weave, bpchar)];
  assert.ok(e.ok && a.ok);
  assert.equal(canonical(a.result.rows[0]![0]!, 'array'), canonical(e.result.rows[0]![0]!, 'array'));
  assert.equal(await plannerOf(bpchar), 'aggregate-pushdown');
  // With ORDER BY inside the aggregate the order is defined: pulled (or whole on the shards when grouped by tenant).
  await same(`SELECT kind, array_agg(n ORDER BY id) FROM ev WHERE id < 300 GROUP BY kind ORDER BY kind`, 'pull');
});

test('GROUPING SETS, ROLLUP and CUBE: the finest grouping as partial aggregates, the sets formed on the coordinator', async () => {
  const p = 'aggregate-pushdown';
  await same(`SELECT kind, s, count(*), sum(amount), avg(n), stddev(n) FROM ev GROUP BY ROLLUP (kind, s) ORDER BY GROUPING(kind, s), kind NULLS FIRST, s NULLS FIRST`, p);
  await same(`SELECT kind, flag, count(*), max(note), GROUPING(kind, flag) FROM ev GROUP BY CUBE (kind, flag) ORDER BY 5, 1, 2`, p);
  await same(`SELECT kind, s, count(n), min(b) FROM ev GROUP BY GROUPING SETS ((kind), (s), ()) ORDER BY GROUPING(kind), GROUPING(s), 1, 2`, p);
  await same(`SELECT tenant, kind, count(*) FROM ev GROUP BY ROLLUP (tenant, kind) HAVING count(*) > 40 ORDER BY GROUPING(tenant, kind), 1, 2`, p);
  await same(`SELECT kind, s % 2 AS odd, count(DISTINCT n), sum(n) FROM ev GROUP BY kind, ROLLUP (s % 2) ORDER BY GROUPING(s % 2), 1, 2`, p);
  await same(`SELECT count(*), sum(n) FROM ev GROUP BY ()`, p);
  await same(`SELECT kind, s, count(*) FROM ev GROUP BY ROLLUP ((kind, s)) ORDER BY GROUPING(kind), 1, 2`, p);
  // count(DISTINCT tenant) adds up per-shard counts only within one finest group: not across grouping sets.
  await same(`SELECT kind, count(DISTINCT tenant) FROM ev GROUP BY ROLLUP (kind) ORDER BY GROUPING(kind), 1`, 'pull');
});
