/**
 * run_command_on_workers / _shards / _placements against a real 2-worker
 * cluster: Citus's result rules (command tag, single value, the first error
 * line), `%s` as the shard name, and that commands run as the caller, with
 * the caller's privileges on the workers — never as the internal role.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/postgres.js';
import { call, makeContext, type TestContext } from './command-context.js';

let cluster: TestCluster;
let t: TestContext;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  t = await makeContext(cluster);
  for (const w of cluster.workers) await call(t.ctx, 'citus_add_node', [w.host, String(w.port)]);
  await t.client.query('CREATE TABLE events (id bigint, kind text); INSERT INTO events SELECT i, \'k\' FROM generate_series(1, 1000) i');
  await call(t.ctx, 'create_distributed_table', ['events', 'id'], { shard_count: '4' });
});

after(async () => {
  t?.close();
  await cluster?.stop();
});

const workers = () => cluster.workers.map((w) => [w.host, String(w.port)]);

test('run_command_on_workers returns a value, a command tag, or the error', async () => {
  const one = await call(t.ctx, 'run_command_on_workers', ['SELECT 1 + 1']);
  assert.deepEqual(one, workers().map((w) => [...w, 't', '2']));
  const tag = await call(t.ctx, 'run_command_on_workers', ['CREATE TABLE IF NOT EXISTS scratch (x int)']);
  assert.deepEqual(tag.map((r) => r.slice(2)), [['t', 'CREATE TABLE'], ['t', 'CREATE TABLE']]);
  const failed = await call(t.ctx, 'run_command_on_workers', ['SELECT * FROM no_such_table']);
  assert.deepEqual(failed.map((r) => r.slice(2)), [
    ['f', 'ERROR:  relation "no_such_table" does not exist'],
    ['f', 'ERROR:  relation "no_such_table" does not exist'],
  ]);
  const rows = await call(t.ctx, 'run_command_on_workers', ['SELECT generate_series(1, 2)'], { parallel: 'false' });
  assert.deepEqual(rows.map((r) => r.slice(2)), [['f', 'expected a single row in query result'], ['f', 'expected a single row in query result']]);
  const cols = await call(t.ctx, 'run_command_on_workers', ['SELECT 1, 2']);
  assert.equal(cols[0]![3], 'expected a single column in query target');
  const nothing = await call(t.ctx, 'run_command_on_workers', ['SELECT NULL']);
  assert.deepEqual(nothing[0]!.slice(2), ['t', '']);
  const size = await call(t.ctx, 'run_command_on_workers', ['SELECT pg_database_size(current_database())']);
  for (const r of size) assert.ok(Number(r[3]) > 0);
});

test('run_command_on_shards puts each shard name in place of %s', async () => {
  const counts = await call(t.ctx, 'run_command_on_shards', ['events', 'SELECT count(*) FROM %s']);
  const shards = await t.client.query(`SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'events'::regclass ORDER BY shardid`);
  assert.deepEqual(counts.map((r) => r[0]), shards.rows.map((r) => r[0]));
  assert.equal(counts.reduce((sum, r) => sum + Number(r[2]), 0), 1000);
  const names = await call(t.ctx, 'run_command_on_shards', ['events', "SELECT '%s'"]);
  assert.deepEqual(names.map((r) => r[2]), shards.rows.map((r) => `events_${r[0]}`));
  const placements = await call(t.ctx, 'run_command_on_placements', ['events', 'SELECT count(*) > 0 FROM %s']);
  assert.equal(placements.length, 4);
  for (const p of placements) assert.deepEqual(p.slice(3), ['t', 't']);
  assert.deepEqual(
    placements.map((p) => p[1]),
    [0, 1, 2, 3].map((i) => String(cluster.workers[i % 2]!.port)),
  );
});

test('commands run as the caller, with the caller\'s privileges on the workers', async () => {
  const who = await call(t.ctx, 'run_command_on_workers', ['SELECT current_user']);
  assert.deepEqual(who.map((r) => r[3]), ['postgres', 'postgres'], 'not the internal role');

  await t.client.query("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'");
  await call(t.ctx, 'run_command_on_workers', ["CREATE ROLE alice LOGIN PASSWORD 'alice-pw'"]);
  const alice = await makeContext(cluster, { user: 'alice', password: 'alice-pw' });
  try {
    const me = await call(alice.ctx, 'run_command_on_workers', ['SELECT current_user']);
    assert.deepEqual(me.map((r) => r[3]), ['alice', 'alice']);
    const denied = await call(alice.ctx, 'run_command_on_shards', ['events', 'SELECT count(*) FROM %s']);
    for (const r of denied) {
      assert.equal(r[1], 'f');
      assert.match(r[2]!, /^ERROR: {2}permission denied for table events_\d+$/);
    }
    await call(t.ctx, 'run_command_on_shards', ['events', 'GRANT SELECT ON %s TO alice']);
    const allowed = await call(alice.ctx, 'run_command_on_shards', ['events', 'SELECT count(*) FROM %s']);
    assert.equal(allowed.reduce((sum, r) => sum + Number(r[2]), 0), 1000);
  } finally {
    alice.close();
  }
});

test('a node that cannot be reached is reported, not fatal', async () => {
  const port = await freePort();
  await t.ctx.pools.get(cluster.coordinatorPg.host, cluster.coordinatorPg.port, 'postgres')
    .query("INSERT INTO pgweave.node (groupid, nodename, nodeport) VALUES (99, '127.0.0.1', $1)", [String(port)]);
  t.ctx.metadata.invalidate('postgres');
  try {
    const rows = await call(t.ctx, 'run_command_on_workers', ['SELECT 1']);
    assert.deepEqual(rows.at(-1), ['127.0.0.1', String(port), 'f', `failed to connect to 127.0.0.1:${port}`]);
    assert.deepEqual(rows.slice(0, 2).map((r) => r.slice(2)), [['t', '1'], ['t', '1']]);
  } finally {
    await t.ctx.pools.get(cluster.coordinatorPg.host, cluster.coordinatorPg.port, 'postgres').query('DELETE FROM pgweave.node WHERE groupid = 99');
    t.ctx.metadata.invalidate('postgres');
  }
});

test('a table that is not distributed is an error', async () => {
  await t.client.query('CREATE TABLE plain_local (x int)');
  await assert.rejects(call(t.ctx, 'run_command_on_shards', ['plain_local', 'SELECT 1']), /relation plain_local is not distributed/);
});
