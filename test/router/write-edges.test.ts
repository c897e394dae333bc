/**
 * Known corners of writes, each compared with a plain PostgreSQL running the
 * same statements (one pgweave cluster, 2 workers, and one plain server for
 * the file):
 * - a multi-shard INSERT … ON CONFLICT … RETURNING that skips rows returns
 *   the rest in VALUES order;
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

/** Runs `sql` on both servers; their rows (as text) must be equal, in order. */
async function same(sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>> {
  const [expected, actual] = await Promise.all([reference.query(sql, params), weave.query(sql, params)]);
  assert.deepEqual(actual.rows, expected.rows, sql);
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
