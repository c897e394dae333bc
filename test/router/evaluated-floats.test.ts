/**
 * INSERTs into a distributed table whose rows the coordinator PostgreSQL
 * evaluates first (a serial default, a left-out column, an expression): the
 * evaluated values travel to the shard as text, and a session with
 * extra_float_digits at 0 or less would print float4/float8 (and geometric)
 * values rounded. The stored value must be the one PostgreSQL itself
 * computes, bit for bit, whatever the session's setting — while text the
 * statement computes itself (`f::text`) still follows the session's setting,
 * and the session's setting stays what the client set.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, textClient, withTextClient } from './support.js';

let cluster: TestCluster;
let c: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query(`
    CREATE TABLE fl (k int NOT NULL, id serial, f8 float8, f4 float4, p point, arr float8[], s text, PRIMARY KEY (k, id))`);
  await c.query(`SELECT create_distributed_table('fl', 'k', shard_count => 4)`);
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

/** The exact value of the INSERTed row `k`: each column compared with PostgreSQL's own value of the expression. */
async function assertExact(s: pg.Client, k: number): Promise<void> {
  const r = await s.query(`
    SELECT f8 = 0.1::float8 + 0.2 AS f8, f4 = 1::float4 / 3::float4 AS f4,
           p ~= point(0.1::float8 + 0.2, 1.0 / 3) AS p, arr = ARRAY[0.1::float8 + 0.2, 2.0 / 3] AS arr
      FROM fl WHERE k = $1`, [k]);
  assert.equal(r.rows.length, 1, `row ${k}`);
  assert.deepEqual(r.rows[0], { f8: 't', f4: 't', p: 't', arr: 't' }, `row ${k} holds PostgreSQL's exact values`);
}

const VALUES = `0.1::float8 + 0.2, 1::float4 / 3::float4, point(0.1::float8 + 0.2, 1.0 / 3), ARRAY[0.1::float8 + 0.2, 2.0 / 3]`;

for (const digits of ['0', '-1', '-15']) {
  test(`evaluated INSERTs store exact floats with extra_float_digits = ${digits}`, async () => {
    await withTextClient(cluster.url, async (s) => {
      const base = 100 * (Number(digits) + 20);
      await s.query(`SET extra_float_digits = ${digits}`);
      // serial default left out: the coordinator evaluates the row (simple protocol, one row).
      await s.query(`INSERT INTO fl (k, f8, f4, p, arr) VALUES (${base + 1}, ${VALUES})`);
      // Several rows in several shards (multi-row evaluation), simple protocol.
      await s.query(`INSERT INTO fl (k, f8, f4, p, arr) VALUES (${base + 2}, ${VALUES}), (${base + 3}, ${VALUES}), (${base + 4}, ${VALUES})`);
      // Extended protocol with a parameter.
      await s.query({ text: `INSERT INTO fl (k, f8, f4, p, arr) VALUES ($1, ${VALUES})`, values: [base + 5] });
      // Named prepared statement, in a transaction block (the evaluation's savepoint path).
      await s.query('BEGIN');
      await s.query({ name: 'ins_fl', text: `INSERT INTO fl (k, f8, f4, p, arr) VALUES ($1, ${VALUES})`, values: [base + 6] });
      await s.query({ name: 'ins_fl', text: `INSERT INTO fl (k, f8, f4, p, arr) VALUES ($1, ${VALUES})`, values: [base + 7] });
      assert.equal((await s.query('SHOW extra_float_digits')).rows[0].extra_float_digits, digits, 'the block keeps the session\'s setting');
      await s.query('COMMIT');
      // ON CONFLICT: the conflicting row is updated with the evaluated (exact) values.
      await s.query(`INSERT INTO fl (k, id, f8) VALUES (${base + 8}, 1, 1) `);
      await s.query(`INSERT INTO fl (k, id, f8, f4, p, arr) VALUES (${base + 8}, 1, ${VALUES}) ON CONFLICT (k, id) DO UPDATE
                       SET f8 = excluded.f8, f4 = excluded.f4, p = excluded.p, arr = excluded.arr`);
      for (let k = base + 1; k <= base + 8; k++) await assertExact(s, k);
      assert.equal((await s.query('SHOW extra_float_digits')).rows[0].extra_float_digits, digits, 'the session keeps its setting');
      // f::text computed by the statement itself follows the session's setting, as on one PostgreSQL.
      await s.query(`INSERT INTO fl (k, s) VALUES (${base + 9}, (0.1::float8 + 0.2)::text)`);
      const expected = (await s.query('SELECT (0.1::float8 + 0.2)::text AS t')).rows[0].t;
      assert.equal((await s.query('SELECT s FROM fl WHERE k = $1', [base + 9])).rows[0].s, expected);
    });
  });
}

test('the evaluated values read back as PostgreSQL\'s own text under extra_float_digits = 3', async () => {
  await withTextClient(cluster.url, async (s) => {
    await s.query('SET extra_float_digits = 0');
    await s.query(`INSERT INTO fl (k, f8, f4, p, arr) VALUES (9001, ${VALUES})`);
    await s.query('SET extra_float_digits = 3');
    const stored = (await s.query('SELECT f8::text, f4::text, p::text, arr::text FROM fl WHERE k = 9001')).rows[0];
    const direct = (await s.query(`SELECT v.f8::text, v.f4::text, v.p::text, v.arr::text
                                     FROM (SELECT ${VALUES}) v(f8, f4, p, arr)`)).rows[0];
    assert.deepEqual(stored, direct);
    assert.equal(stored.f8, '0.30000000000000004');
  });
});

test('an evaluated INSERT with a WITH clause of its own', async () => {
  await withTextClient(cluster.url, async (s) => {
    await s.query('SET extra_float_digits = 0');
    await s.query(`WITH v AS (SELECT 0.1::float8 AS x) INSERT INTO fl (k, f8, f4, p, arr) VALUES (9002, ${VALUES})`);
    // Its CTE moved to the top of the evaluation's WITH: still visible to the VALUES.
    await s.query(`WITH v AS (SELECT 0.1::float8 + 0.2 AS x) INSERT INTO fl (k, f8, f4, p, arr) VALUES (9003, (SELECT x FROM v), 1::float4 / 3::float4, point(0.1::float8 + 0.2, 1.0 / 3), ARRAY[0.1::float8 + 0.2, 2.0 / 3])`);
    await assertExact(s, 9002);
    await assertExact(s, 9003);
  });
});
