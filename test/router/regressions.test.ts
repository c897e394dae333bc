/**
 * Minimal cases of router and session bugs found by the differential test
 * (and by reading the planner), each reduced to the fewest statements that
 * show it. A small cluster: one distributed table and a co-located one, 4
 * shards over 2 workers, and a reference table; expected results are known
 * from the data, so no second PostgreSQL is needed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, nodeOfKeys, nodeUrl, runStatement, textClient, withTextClient } from './support.js';

let cluster: TestCluster;
let c: pg.Client;
/** Two tenants whose shard groups are on different workers. */
let a: number;
let b: number;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await setUp();
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

/** Sets up the shared tables (after the first test, which needs a catalog without tables). */
async function setUp(): Promise<void> {
  await c.query(`
    CREATE TABLE t (tenant_id bigint NOT NULL, id int NOT NULL, country text NOT NULL, v int NOT NULL DEFAULT 0,
                    ts timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00', PRIMARY KEY (tenant_id, id));
    CREATE TABLE u (tenant_id bigint NOT NULL, id int NOT NULL, w int NOT NULL, PRIMARY KEY (tenant_id, id));
    CREATE TABLE r (id int PRIMARY KEY, label text NOT NULL);
    INSERT INTO r VALUES (1, 'one'), (2, 'two'), (3, 'three');`);
  await c.query(`SELECT create_distributed_table('t', 'tenant_id', shard_count => 4)`);
  await c.query(`SELECT create_distributed_table('u', 'tenant_id', colocate_with => 't')`);
  await c.query(`SELECT create_reference_table('r')`);
  // Tenants 1..8, one row each in t (country DE for odd tenants, FR for even) and in u.
  await c.query(`INSERT INTO t (tenant_id, id, country) VALUES ${[1, 2, 3, 4, 5, 6, 7, 8].map((x) => `(${x}, 1, '${x % 2 ? 'DE' : 'FR'}')`).join(', ')}`);
  await c.query(`INSERT INTO u (tenant_id, id, w) VALUES ${[1, 2, 3, 4, 5, 6, 7, 8].map((x) => `(${x}, 1, ${x * 10})`).join(', ')}`);
  const nodes = await nodeOfKeys(c, 't', [1, 2, 3, 4, 5, 6, 7, 8]);
  a = 1;
  b = [2, 3, 4, 5, 6, 7, 8].find((x) => nodes.get(x) !== nodes.get(1))!;
  assert.ok(b, 'some tenant lives on the other worker');
}

/** A client of its own, so a test that leaves a transaction open harms no other. */
const withClient = <T>(fn: (s: pg.Client) => Promise<T>): Promise<T> => withTextClient(cluster.url, fn);

test('SET citus.shard_count is honoured before the first table is distributed', async () => {
  // A database of its own whose catalog the coordinator has loaded (citus_add_node ran) and which holds no table yet.
  await c.query('CREATE DATABASE fresh_catalog');
  const url = cluster.url.replace(/\/postgres$/, '/fresh_catalog');
  const admin = await textClient(url);
  try {
    await addWorkers(admin, cluster);
    await admin.query('SELECT count(*) FROM pg_dist_node');
  } finally {
    await admin.end();
  }
  const s = await textClient(url);
  try {
    await s.query('SET citus.shard_count = 3');
    await s.query('CREATE TABLE first_table (k int PRIMARY KEY)');
    await s.query(`SELECT create_distributed_table('first_table', 'k')`);
    const r = await s.query(`SELECT shard_count FROM citus_tables WHERE table_name = 'first_table'::regclass`);
    assert.deepEqual(r.rows, [{ shard_count: '3' }]);
  } finally {
    await s.end();
  }
});

test('after a simple query on the coordinator, an extended-protocol router query is answered', async () => {
  const s = await textClient(cluster.url);
  try {
    await s.query('SELECT 1'); // a simple query forwarded to the coordinator PostgreSQL
    const r = await runStatement(s, { kind: 'prepared', sql: 'SELECT country FROM t WHERE tenant_id = $1', params: [a] }, 10_000);
    assert.deepEqual(r, { ok: true, results: [{ command: 'SELECT', rowCount: 1, fields: ['country'], types: [25], rows: [['DE']] }] });
  } finally {
    await s.end().catch(() => {});
  }
});

test('a query string of several statements runs router statements on their shards', async () => {
  await withClient(async (s) => {
    const r = await s.query(`BEGIN; UPDATE t SET v = v + 1 WHERE tenant_id = ${a}; UPDATE t SET v = v + 1 WHERE tenant_id = ${b}; COMMIT`);
    assert.equal((r as unknown as pg.QueryResult[]).length, 4);
  });
  const after = await c.query(`SELECT tenant_id, v FROM t WHERE tenant_id IN (${a}, ${b}) ORDER BY tenant_id`);
  assert.deepEqual(after.rows.map((x) => Number(x.v)), [1, 1]);
  await c.query(`UPDATE t SET v = 0 WHERE tenant_id IN (${a}, ${b})`);
});

test('a router statement after non-ASCII text in the same query string', async () => {
  const r = await withClient(async (s) => (await s.query(`SELECT 'äöü' AS x; SELECT country FROM t WHERE tenant_id = ${a}`)) as unknown as pg.QueryResult[]);
  assert.deepEqual(r.map((x) => x.rows), [[{ x: 'äöü' }], [{ country: 'DE' }]]);
});

test('SET after the session has used a worker reaches that worker', async () => {
  const s = await textClient(cluster.url);
  try {
    await s.query(`SELECT ts FROM t WHERE tenant_id = ${a}`); // opens the session's link to a's worker
    await s.query(`SET TimeZone = 'Asia/Tokyo'`);
    const r = await s.query(`SELECT ts FROM t WHERE tenant_id = ${a}`);
    assert.deepEqual(r.rows, [{ ts: '2024-01-01 09:00:00+09' }]);
  } finally {
    await s.end();
  }
});

test('SET LOCAL in a transaction block reaches the workers', async () => {
  const s = await textClient(cluster.url);
  try {
    await s.query('BEGIN');
    await s.query(`SET LOCAL TimeZone = 'America/New_York'`);
    const r = await s.query(`SELECT ts FROM t WHERE tenant_id = ${a}`);
    await s.query('COMMIT');
    assert.deepEqual(r.rows, [{ ts: '2023-12-31 19:00:00-05' }]);
  } finally {
    await s.end();
  }
});

// Wrong results: equalities are collected from the whole statement without
// regard to scope, so a condition pins a relation it does not restrict.

test('a condition inside a subquery does not pin an outer reference to the same table', async () => {
  // Tenant 1's rows are in DE; 4 tenants have DE rows.
  const r = await c.query(`SELECT count(*) FROM t WHERE country IN (SELECT country FROM t WHERE tenant_id = ${a})`);
  assert.deepEqual(r.rows, [{ count: '4' }]);
});

test('an alias reused inside a subquery does not pin the outer relation', async () => {
  const r = await c.query(`SELECT count(*) FROM t x WHERE EXISTS (SELECT 1 FROM u x WHERE x.tenant_id = ${a})`);
  assert.deepEqual(r.rows, [{ count: '8' }]);
});

test('a constant in the ON clause of a LEFT JOIN does not pin the preserved side', async () => {
  const r = await c.query(`SELECT count(*) AS all_rows, count(u.id) AS matched FROM t LEFT JOIN u ON u.tenant_id = t.tenant_id AND t.tenant_id = ${a}`);
  assert.deepEqual(r.rows, [{ all_rows: '8', matched: '1' }]);
});

test('an UPDATE with a subquery on a co-located table, pinned by unqualified columns, routes', async () => {
  const r = await c.query(`UPDATE t SET v = (SELECT w FROM u WHERE tenant_id = ${a} AND id = 1) WHERE tenant_id = ${a} RETURNING v`);
  assert.deepEqual(r.rows, [{ v: '10' }]);
  await c.query(`UPDATE t SET v = 0 WHERE tenant_id = ${a}`);
});

/** The rows of reference table r on every worker, read from the placements directly. */
async function referenceReplicas(): Promise<string[]> {
  const shard = (await c.query(`SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'r'::regclass`)).rows[0].shardid as string;
  const out: string[] = [];
  for (const w of cluster.workers) {
    const direct = await textClient(nodeUrl(cluster, w.port));
    try {
      out.push(JSON.stringify((await direct.query(`SELECT * FROM r_${shard} ORDER BY id`)).rows));
    } finally {
      await direct.end();
    }
  }
  return out;
}

test('a write to a reference table that reads a distributed table keeps the replicas identical', async () => {
  let refused = false;
  try {
    await c.query(`UPDATE r SET label = label || '!' WHERE id IN (SELECT id FROM t WHERE tenant_id = ${a})`);
  } catch (err) {
    // Citus refuses this ("cannot perform select on a distributed table and modify a reference table").
    assert.equal((err as { code?: string }).code, '0A000', String(err));
    refused = true;
  }
  const replicas = await referenceReplicas();
  assert.equal(replicas[0], replicas[1], `replicas differ (refused: ${refused})`);
});

test('a data-modifying CTE on a reference table writes every replica', async () => {
  const r = await c.query(`WITH changed AS (UPDATE r SET label = label || '?' WHERE id = 2 RETURNING id) SELECT count(*) FROM changed`);
  assert.deepEqual(r.rows, [{ count: '1' }]);
  const replicas = (await referenceReplicas()).map((x) => (JSON.parse(x) as Array<{ id: string; label: string }>).find((row) => row.id === '2'));
  assert.deepEqual(replicas, [{ id: '2', label: 'two?' }, { id: '2', label: 'two?' }]);
});

test('a data-modifying CTE over all shards either deletes what it reports or is refused', async () => {
  await c.query(`UPDATE t SET v = 999 WHERE tenant_id IN (${a}, ${b})`);
  let reported: string | null = null;
  try {
    reported = (await c.query(`WITH gone AS (DELETE FROM t WHERE v = 999 RETURNING tenant_id) SELECT count(*) FROM gone`)).rows[0].count;
  } catch (err) {
    assert.equal((err as { code?: string }).code, '0A000', String(err));
  }
  const left = (await c.query('SELECT count(*) FROM t WHERE v = 999')).rows[0].count;
  if (reported === null) assert.equal(left, '2', 'refused, and nothing deleted');
  else assert.deepEqual([reported, left], ['2', '0'], 'the rows it reports deleted are gone');
});

/** The rows of `table`'s shard that holds `value` (get_shard_id_for_distribution_column), read on its worker. */
async function rowsOfShardHolding(table: string, value: string): Promise<Array<Record<string, string>>> {
  const id = (await c.query(`SELECT get_shard_id_for_distribution_column('${table}', '${value.replace(/'/g, "''")}') AS id`)).rows[0].id;
  const r = await c.query(
    `SELECT s.shardid, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid JOIN pg_dist_node n ON n.groupid = p.groupid
      WHERE s.shardid = ${Number(id)}`,
  );
  assert.equal(r.rows.length, 1);
  const direct = await textClient(nodeUrl(cluster, Number(r.rows[0].nodeport)));
  try {
    await direct.query(`SET TimeZone = 'UTC'`);
    return (await direct.query(`SELECT * FROM ${table}_${r.rows[0].shardid} ORDER BY v`)).rows;
  } finally {
    await direct.end();
  }
}

test('an INSERT value the TypeScript hash declines gets PostgreSQL\'s error or goes where PostgreSQL hashes it', async () => {
  await c.query(`CREATE TABLE vc (k varchar(5) PRIMARY KEY, v int NOT NULL);
    CREATE TABLE tz (k timestamptz PRIMARY KEY, v int NOT NULL);`);
  await c.query(`SELECT create_distributed_table('vc', 'k', shard_count => 4)`);
  await c.query(`SELECT create_distributed_table('tz', 'k', shard_count => 4)`);
  // Too long for varchar(5): PostgreSQL's 22001, by simple and by extended protocol.
  const tooLong = { code: '22001', message: 'value too long for type character varying(5)' };
  await assert.rejects(c.query(`INSERT INTO vc VALUES ('abcdefgh', 1)`), (e: Error & { code?: string }) => (assert.deepEqual({ code: e.code, message: e.message }, tooLong), true));
  await assert.rejects(c.query({ text: 'INSERT INTO vc VALUES ($1, $2)', values: ['abcdefgh', 1] }), (e: Error & { code?: string }) => (assert.deepEqual({ code: e.code, message: e.message }, tooLong), true));
  // Trailing spaces beyond the length are cut by PostgreSQL: the canonical value is routed.
  await c.query(`INSERT INTO vc VALUES ('abcde   ', 1)`);
  await c.query({ text: 'INSERT INTO vc VALUES ($1, $2)', values: ['fghij   ', 2] });
  assert.deepEqual((await rowsOfShardHolding('vc', 'abcde')).filter((x) => x.k === 'abcde'), [{ k: 'abcde', v: '1' }]);
  assert.deepEqual((await rowsOfShardHolding('vc', 'fghij')).filter((x) => x.k === 'fghij'), [{ k: 'fghij', v: '2' }]);
  // A time zone name: the row lands in the shard of PostgreSQL's hash (simple, prepared, and several rows).
  await c.query(`INSERT INTO tz VALUES ('2024-01-01 10:00 Europe/Paris', 1)`);
  await c.query({ name: 'tz_ins', text: 'INSERT INTO tz VALUES ($1, $2)', values: ['2024-06-01 10:00 Europe/Paris', 2] });
  await c.query({ name: 'tz_ins', text: 'INSERT INTO tz VALUES ($1, $2)', values: ['2024-02-02 03:04 America/New_York', 3] });
  await c.query(`INSERT INTO tz VALUES ('2024-03-03 10:00 Asia/Tokyo', 4), ('2024-04-04 10:00 Europe/Paris', 5)`);
  const expected: Array<[string, string, string]> = [
    ['2024-01-01 10:00 Europe/Paris', '2024-01-01 09:00:00+00', '1'],
    ['2024-06-01 10:00 Europe/Paris', '2024-06-01 08:00:00+00', '2'],
    ['2024-02-02 03:04 America/New_York', '2024-02-02 08:04:00+00', '3'],
    ['2024-03-03 10:00 Asia/Tokyo', '2024-03-03 01:00:00+00', '4'],
    ['2024-04-04 10:00 Europe/Paris', '2024-04-04 08:00:00+00', '5'],
  ];
  for (const [input, utc, v] of expected) {
    assert.deepEqual((await rowsOfShardHolding('tz', input)).filter((x) => x.v === v), [{ k: utc, v }], input);
  }
  assert.equal((await c.query('SELECT count(*) FROM tz')).rows[0].count, '5');
  // Non-ASCII citext, lowercased by the server's locale.
  await c.query('CREATE EXTENSION IF NOT EXISTS citext');
  await c.query(`CREATE TABLE ct (k citext PRIMARY KEY, v int NOT NULL)`);
  await c.query(`SELECT create_distributed_table('ct', 'k', shard_count => 4)`);
  await c.query(`INSERT INTO ct VALUES ('Ärger', 1)`);
  await c.query({ name: 'ct_ins', text: 'INSERT INTO ct VALUES ($1, $2)', values: ['Öl', 2] });
  await c.query({ name: 'ct_ins', text: 'INSERT INTO ct VALUES ($1, $2)', values: ['Ünïcödé', 3] });
  for (const [k, v] of [['Ärger', '1'], ['Öl', '2'], ['Ünïcödé', '3']]) {
    assert.deepEqual((await rowsOfShardHolding('ct', k)).filter((x) => x.v === v), [{ k, v }], k);
  }
  assert.equal((await c.query('SELECT count(*) FROM ct')).rows[0].count, '3');
});

test('FOR UPDATE / FOR SHARE OF an alias or an unaliased table name routes: the names it locks are FROM items, not tables', async () => {
  await withClient(async (s) => {
    await s.query('BEGIN');
    const r = await s.query(`SELECT x.id, y.w FROM t x JOIN u y ON y.tenant_id = x.tenant_id AND y.id = x.id WHERE x.tenant_id = ${a} FOR UPDATE OF x`);
    assert.deepEqual(r.rows, [{ id: '1', w: '10' }]);
    const q = await s.query(`SELECT id FROM t WHERE tenant_id = ${b} FOR SHARE OF t`);
    assert.deepEqual(q.rows, [{ id: '1' }]);
    const n = await s.query(`SELECT t.id FROM t, u WHERE t.tenant_id = ${a} AND u.tenant_id = t.tenant_id FOR UPDATE OF t, u NOWAIT`);
    assert.deepEqual(n.rows, [{ id: '1' }]);
    await s.query('COMMIT');
  });
});
