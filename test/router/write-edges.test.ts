/**
 * Known corners of writes, each compared with a plain PostgreSQL running the
 * same statements (one pgweave cluster, 2 workers, and one plain server for
 * the file):
 * - a multi-shard INSERT … ON CONFLICT … RETURNING that skips rows returns
 *   the rest in VALUES order;
 * - INSERT … SELECT … ORDER BY … RETURNING returns the rows in the
 *   SELECT's order;
 * - a multi-shard INSERT failing on several shards always reports the error
 *   of the shard whose first row comes first in VALUES order;
 * - a data-modifying CTE on a coordinator table feeding an INSERT into a
 *   distributed table (and the other way round) runs atomically;
 * - rows moved between nodes as text keep exact floats whatever the
 *   session's extra_float_digits.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { addWorkers, nodeOfKeys, nodeUrl, textClient, withTextClient } from './support.js';

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;

const SCHEMA = `
CREATE TABLE kv (k bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0 CHECK (n >= 0));
CREATE TABLE local_kv (k bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
`;
const DISTRIBUTE = [`SELECT create_distributed_table('kv', 'k', shard_count := 8)`];

/** Runs `sql` on both servers; their rows (as text) must be equal, in order (`unordered`: as multisets). */
async function same(sql: string, params?: unknown[], unordered = false): Promise<Array<Record<string, unknown>>> {
  const [expected, actual] = await Promise.all([reference.query(sql, params), weave.query(sql, params)]);
  const sorted = (rows: Array<Record<string, unknown>>) => (unordered ? rows.map((r) => JSON.stringify(r)).sort() : rows);
  assert.deepEqual(sorted(actual.rows), sorted(expected.rows), sql);
  assert.equal(actual.rowCount, expected.rowCount, sql);
  return actual.rows;
}

async function both(sql: string): Promise<void> {
  await reference.query(sql);
  await weave.query(sql);
}

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url);
  reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
  await both(SCHEMA);
  for (const sql of DISTRIBUTE) await weave.query(sql);
});

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

test('keys 1..8 lie on both workers', async () => {
  const nodes = await nodeOfKeys(weave, 'kv', [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(new Set(nodes.values()).size, 2);
});

test('a multi-shard INSERT … ON CONFLICT … RETURNING that skips rows returns the others in VALUES order', async () => {
  await both('TRUNCATE kv');
  await both(`INSERT INTO kv (k, v) VALUES (2, 'old'), (5, 'old'), (7, 'old')`);
  const keys = [8, 2, 1, 7, 6, 5, 4, 3];
  const values = keys.map((k) => `(${k}, 'new${k}')`).join(', ');
  await same(`INSERT INTO kv (k, v) VALUES ${values} ON CONFLICT DO NOTHING RETURNING k, v`);
  await both('TRUNCATE kv');
  await both(`INSERT INTO kv (k, v, n) VALUES (2, 'old', 1), (5, 'old', 0), (7, 'old', 1)`);
  await same(`INSERT INTO kv AS t (k, v) VALUES ${values} ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE t.n = 0 RETURNING *`);
  // Parameters, a cast key, a duplicate inside the statement, RETURNING an expression.
  await same(`INSERT INTO kv (k, v) VALUES ($1, 'p'), (3::bigint, 'c'), ('4', 'q'), ($2, 'p2'), (1, 'dup'), ($1, 'dup') ON CONFLICT DO NOTHING RETURNING v || k::text AS vk`, [12, 11]);
  // Nothing skipped: still in order.
  await same(`INSERT INTO kv (k, v) VALUES (31, 'a'), (30, 'b'), (29, 'c'), (28, 'd') RETURNING k`);
  await same('SELECT * FROM kv ORDER BY k');
});

/** Two keys of `kv` on different workers: [key, its worker's port] each. */
async function keysOnTwoWorkers(): Promise<Array<[number, number]>> {
  const nodes = await nodeOfKeys(weave, 'kv', Array.from({ length: 40 }, (_, i) => 100 + i));
  const first = [...nodes][0]!;
  const other = [...nodes].find(([, port]) => port !== first[1])!;
  return [first, other];
}

async function errorCode(c: pg.Client, sql: string): Promise<string> {
  try {
    await c.query(sql);
  } catch (err) {
    return (err as { code: string }).code;
  }
  return 'no error';
}

test('a multi-shard INSERT failing on several shards reports the error of its first row, like PostgreSQL', async () => {
  const [[a], [b]] = await keysOnTwoWorkers();
  await both('TRUNCATE kv');
  await both(`INSERT INTO kv (k, v) VALUES (${a}, 'taken')`);
  // Row 1: a unique violation; row 2, on the other worker: a CHECK violation.
  const sql = `INSERT INTO kv (k, v, n) VALUES (${a}, 'dup', 0), (${b}, 'bad', -1)`;
  assert.equal(await errorCode(reference, sql), '23505');
  for (let i = 0; i < 5; i++) assert.equal(await errorCode(weave, sql), '23505');
  assert.equal(await errorCode(weave, `INSERT INTO kv (k, v, n) VALUES (${b}, 'bad', -1), (${a}, 'dup', 0)`), '23514');
});

test("the first row's error wins even when its shard answers last", async () => {
  const [[a, portA], [b]] = await keysOnTwoWorkers();
  await both('TRUNCATE kv');
  const holder = await textClient(cluster.url, 'write-edges-holder');
  try {
    // Another transaction holds key a: row 1 waits for it, row 2 fails at once on the other worker.
    await holder.query('BEGIN');
    await holder.query(`INSERT INTO kv (k, v) VALUES (${a}, 'held')`);
    let answered = false;
    const answer = errorCode(weave, `INSERT INTO kv (k, v, n) VALUES (${a}, 'dup', 0), (${b}, 'bad', -1)`).finally(() => (answered = true));
    await withTextClient(nodeUrl(cluster, portA), async (w) => {
      // Until row 1 waits for the lock (or the INSERT answered without waiting for it: the wrong answer).
      while (!answered) {
        const r = await w.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%dup%'`);
        if (r.rowCount! > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    await holder.query('COMMIT');
    assert.equal(await answer, '23505');
  } finally {
    await holder.end();
  }
});

test('a DELETE … RETURNING of a coordinator table feeds an INSERT into a distributed table, atomically', async () => {
  await both('TRUNCATE kv, local_kv');
  await both(`INSERT INTO local_kv (k, v, n) SELECT g, 'l' || g, g FROM generate_series(1, 20) g`);
  await same(`WITH d AS (DELETE FROM local_kv WHERE k <= 10 RETURNING *) INSERT INTO kv SELECT * FROM d`);
  await same('SELECT * FROM kv ORDER BY k');
  await same('SELECT * FROM local_kv ORDER BY k');
  await same(`WITH d AS (DELETE FROM local_kv WHERE k > 15 RETURNING k, v) INSERT INTO kv (k, v) SELECT k, v FROM d RETURNING k, v`, undefined, true);
  // The INSERT fails (k = 11 is taken): the DELETE is rolled back with it.
  await both(`INSERT INTO kv (k, v) VALUES (11, 'taken')`);
  assert.equal(await errorCode(reference, `WITH d AS (DELETE FROM local_kv RETURNING *) INSERT INTO kv SELECT * FROM d`), '23505');
  assert.equal(await errorCode(weave, `WITH d AS (DELETE FROM local_kv RETURNING *) INSERT INTO kv SELECT * FROM d`), '23505');
  await same('SELECT * FROM local_kv ORDER BY k');
  await same('SELECT * FROM kv ORDER BY k');
  // In a block, rolled back.
  await both('BEGIN');
  await same(`WITH d AS (UPDATE local_kv SET n = n + 100 WHERE k = 12 RETURNING k + 1000 AS k, v, n) INSERT INTO kv SELECT * FROM d RETURNING *`, undefined, true);
  await same('SELECT * FROM kv WHERE k > 1000');
  await both('ROLLBACK');
  await same('SELECT * FROM local_kv ORDER BY k');
  await same('SELECT * FROM kv ORDER BY k');
});

test('INSERT … SELECT … ORDER BY … RETURNING returns the rows in the SELECT\'s order, also when ON CONFLICT skips some', async () => {
  await both('TRUNCATE kv');
  await both(`INSERT INTO kv (k, v, n) SELECT g, 'd' || g, g % 3 FROM generate_series(1, 24) g`);
  // ORDER BY in the SELECT: the coordinator mode (insert-select-planner.ts), from a distributed table and from no table.
  await same(`INSERT INTO kv (k, v) SELECT k + 100, v FROM kv ORDER BY n, k DESC RETURNING k, v, n`);
  await same(`INSERT INTO kv (k, v) SELECT g, 'g' || g FROM generate_series(200, 231) g ORDER BY g % 7, g RETURNING * -- a comment\n;`);
  // Rows skipped on some shards (the keys 1..24 exist), an expression in RETURNING, parameters.
  await same(`INSERT INTO kv AS t (k, v) SELECT g, 'x' FROM generate_series(1, 40) g ORDER BY g % 5 DESC, g ON CONFLICT DO NOTHING RETURNING t.k * 2 AS k2`);
  await same(`INSERT INTO kv AS t (k, v) SELECT k, 'u' FROM kv WHERE k < $1 ORDER BY v ON CONFLICT (k) DO UPDATE SET v = excluded.v || t.k WHERE t.n = 1 RETURNING k, v`, [20]);
  await same('SELECT * FROM kv ORDER BY k');
  // Into a reference table.
  await both('CREATE TABLE kv_ref (k bigint PRIMARY KEY, v text)');
  await weave.query(`SELECT create_reference_table('kv_ref')`);
  await same(`INSERT INTO kv_ref SELECT k, v FROM kv WHERE k < 30 ORDER BY v DESC, k RETURNING k`);
});

test('a data-modifying WITH on a distributed table feeding an INSERT … SELECT is refused, not run on a copy', async () => {
  await both('TRUNCATE kv, local_kv');
  await both(`INSERT INTO kv (k, v, n) SELECT g, 'd' || g, g FROM generate_series(1, 20) g`);
  // Both paths of INSERT … SELECT would run the DELETE on pulled copies of kv: the rows would stay.
  assert.equal(await errorCode(weave, `WITH d AS (DELETE FROM kv WHERE k <= 10 RETURNING *) INSERT INTO local_kv SELECT * FROM d`), '0A000');
  assert.equal(await errorCode(weave, `WITH d AS (UPDATE kv SET n = n + 1 WHERE k <= 10 RETURNING k + 100, v, n) INSERT INTO kv SELECT * FROM d`), '0A000');
  await weave.query('TRUNCATE local_kv');
  assert.deepEqual((await weave.query('SELECT count(*) AS c, sum(n) AS s FROM kv')).rows, [{ c: '20', s: '210' }]);
});

test('rows pulled as text keep exact floats at extra_float_digits 0, and the client still sees its setting', async () => {
  const setup = [
    `CREATE TYPE pair AS (a float8, b text)`,
    `CREATE TABLE fl (k bigint PRIMARY KEY, f float8, p pair, fa float4[])`,
    `INSERT INTO fl SELECT g, 0.1::float8 + 0.2 * g, ROW(0.1::float8 + 0.2 * g, 'x')::pair, ARRAY[(0.1 * g)::float4] FROM generate_series(1, 8) g`,
  ];
  for (const sql of setup) await both(sql);
  await weave.query(`SELECT create_distributed_table('fl', 'k', shard_count := 4)`);
  await both('SET extra_float_digits = 0');
  try {
    // A window function over all rows: fl is pulled — as text, for its composite column.
    await same(`SELECT k, f = 0.1::float8 + 0.2 * k AS exact, (p).a = 0.1::float8 + 0.2 * k AS in_composite, fa[1] = (0.1 * k)::float4 AS in_array,
      f::text AS shown, p::text AS shown_pair, row_number() OVER (ORDER BY f DESC) FROM fl ORDER BY k`);
    // A filter the pull runs on the shards computes its text at the session's setting.
    await same(`SELECT k, f = 0.1::float8 + 0.2 * k AS exact, rank() OVER (ORDER BY p) FROM fl WHERE f::text = '0.3' OR (p).a::text = '0.5' ORDER BY k`);
    // A join with a coordinator table: fl's rows shipped as an intermediate result or pulled.
    await both('TRUNCATE local_kv');
    await both(`INSERT INTO local_kv (k, v) SELECT g, 'l' FROM generate_series(1, 8) g`);
    await same(`SELECT l.k, f.f = 0.1::float8 + 0.2 * f.k AS exact, (f.p).a = 0.1::float8 + 0.2 * f.k AS in_composite FROM local_kv l LEFT JOIN fl f ON f.k = l.k ORDER BY l.k`);
    await same('SHOW extra_float_digits');
  } finally {
    await both('RESET extra_float_digits');
  }
});

test('rows moved as text between nodes (broadcast, shipped local table, INSERT … SELECT) keep exact floats at extra_float_digits 0', async () => {
  for (const sql of [
    `CREATE TABLE fl2 (id bigint, k bigint, f float8, p pair)`,
    `CREATE TABLE local_fl (k bigint PRIMARY KEY, p pair)`,
    `INSERT INTO local_fl SELECT g, ROW(0.1::float8 + 0.2 * g, 'l')::pair FROM generate_series(1, 8) g`,
  ]) await both(sql);
  await weave.query(`SELECT create_distributed_table('fl2', 'id', shard_count := 4, colocate_with := 'none')`);
  await both('SET extra_float_digits = 0');
  try {
    // INSERT … SELECT whose rows change shards (repartitioned), as text for the composite column.
    await same(`INSERT INTO fl2 SELECT k * 7, k, f, p FROM fl`);
    await same(`SELECT k, f = 0.1::float8 + 0.2 * k AS exact, (p).a = 0.1::float8 + 0.2 * k AS in_composite FROM fl2 ORDER BY k`);
    // A join on composite values of tables that are not co-located: one side broadcast.
    await same(`SELECT a.k, b.id FROM fl a JOIN fl2 b ON a.p = b.p ORDER BY a.k`);
    // A coordinator table joined on the distribution column: shipped to the workers as an intermediate result.
    await same(`SELECT f.k, (l.p).a = f.f AS same_value FROM fl f JOIN local_fl l ON l.k = f.k ORDER BY f.k`);
  } finally {
    await both('RESET extra_float_digits');
  }
});
