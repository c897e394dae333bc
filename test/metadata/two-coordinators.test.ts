/**
 * Two coordinator processes on one cluster: a table distributed through one
 * is routed correctly by the other immediately after, because each caches the
 * catalog and drops it on the NOTIFY the change sends (issue: distributed
 * tables, item 4). The second coordinator runs in-process on its own port,
 * with its own metadata cache and connections, exactly as a second
 * `pgweave serve` would.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';

let cluster: TestCluster;
let second: Coordinator;
let a: pg.Client;
let b: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  second = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 } });
  a = new pg.Client({ connectionString: cluster.url });
  b = new pg.Client({ connectionString: cluster.url.replace(`:${cluster.config.listen.port}/`, `:${second.address.port}/`) });
  await a.connect();
  await b.connect();
  for (const w of cluster.workers) await a.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
});

after(async () => {
  await a?.end();
  await b?.end();
  await second?.close();
  await cluster?.stop();
});

test('a table distributed through one coordinator is routed by the other at once', async () => {
  await a.query('CREATE TABLE items (id int PRIMARY KEY, v text)');
  // The second coordinator caches the catalog (no distributed table yet).
  assert.equal((await b.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 0);
  await a.query("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 500) g");
  await a.query("SELECT create_distributed_table('items', 'id')");
  // Right after: the coordinator table is empty; only correct routing finds the rows.
  const one = await b.query('SELECT v FROM items WHERE id = 42');
  assert.deepEqual(one.rows, [{ v: 'v42' }]);
  assert.equal((await b.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 500);
  await b.query("INSERT INTO items VALUES (1000, 'from b')");
  assert.deepEqual((await a.query('SELECT v FROM items WHERE id = 1000')).rows, [{ v: 'from b' }]);
});

test('undistributing through one coordinator is seen by the other', async () => {
  await a.query('CREATE TABLE gone (id int PRIMARY KEY)');
  await a.query("SELECT create_distributed_table('gone', 'id')");
  await b.query('INSERT INTO gone VALUES (1), (2), (3)');
  await a.query("SELECT undistribute_table('gone')");
  assert.equal((await b.query('SELECT count(*)::int AS n FROM gone')).rows[0].n, 3);
  await b.query('INSERT INTO gone VALUES (4)');
  assert.equal((await a.query('SELECT count(*)::int AS n FROM gone')).rows[0].n, 4);
});
