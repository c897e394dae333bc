/**
 * Node management against a real 2-worker cluster: citus_add_node and its
 * checks (a node that is down, a node misconfigured for pgweave),
 * citus_get_active_worker_nodes, citus_set_node_property,
 * citus_set_coordinator_host, citus_remove_node (refused while placements
 * remain), and that only superusers may call them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { freePort, startTestPostgres } from '../helpers/postgres.js';
import { startPostgres, stopPostgres } from '../../src/cluster/postgres-server.js';
import { connectBackend } from '../../src/pool/backend-connection.js';
import { InternalClient } from '../../src/pool/internal-client.js';
import { PgError } from '../../src/protocol/errors.js';
import { call, makeContext, type TestContext } from './command-context.js';

let cluster: TestCluster;
let t: TestContext;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  t = await makeContext(cluster);
});

after(async () => {
  t?.close();
  await cluster?.stop();
});

function pgError(code: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PgError, `expected a PgError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

test('citus_add_node registers each worker once and returns its node id', async () => {
  const [w1, w2] = cluster.workers;
  const id1 = await call(t.ctx, 'citus_add_node', [w1!.host, String(w1!.port)]);
  const id2 = await call(t.ctx, 'master_add_node', [w2!.host, String(w2!.port)]);
  assert.deepEqual(id1, [['1']]);
  assert.deepEqual(id2, [['2']]);
  assert.deepEqual(await call(t.ctx, 'citus_add_node', [w1!.host, String(w1!.port)]), [['1']], 'adding again returns the same id');
  const nodes = await t.client.query('SELECT nodeid, groupid, nodename, nodeport, isactive, noderole, shouldhaveshards FROM pg_dist_node ORDER BY nodeid');
  assert.deepEqual(nodes.rows, [
    ['1', '1', w1!.host, String(w1!.port), 't', 'primary', 't'],
    ['2', '2', w2!.host, String(w2!.port), 't', 'primary', 't'],
  ]);
  assert.deepEqual(await call(t.ctx, 'citus_get_active_worker_nodes', []), [
    [w1!.host, String(w1!.port)],
    [w2!.host, String(w2!.port)],
  ]);
});

test('citus_add_node on a closed port says the node cannot be reached', async () => {
  const port = await freePort();
  await assert.rejects(call(t.ctx, 'citus_add_node', ['127.0.0.1', String(port)]), pgError('08001', new RegExp(`connection to the remote node 127.0.0.1:${port} failed`)));
  const count = await t.client.query('SELECT count(*) FROM pg_dist_node');
  assert.deepEqual(count.rows, [['2']]);
});

test('citus_add_node on a misconfigured node says exactly what to change', async () => {
  const plain = await startTestPostgres();
  try {
    const admin = new InternalClient(
      await connectBackend({ host: plain.host, port: plain.port, user: 'postgres', database: 'postgres', credentials: { password: plain.password } }),
    );
    const { user, password } = cluster.config.internal;
    await admin.query(`CREATE ROLE ${user} SUPERUSER LOGIN PASSWORD '${password}'`);
    await admin.query('ALTER SYSTEM SET max_prepared_transactions = 0');
    await admin.query("ALTER SYSTEM SET wal_level = 'replica'");
    admin.close();
    await stopPostgres(plain.dataDir, 'fast');
    await startPostgres({ dataDir: plain.dataDir, port: plain.port, superuserPassword: '' }, join(dirname(plain.dataDir), 'server.log'));
    await assert.rejects(call(t.ctx, 'citus_add_node', [plain.host, String(plain.port)]), (err: unknown) => {
      assert.ok(err instanceof PgError);
      assert.equal(err.code, '55000');
      assert.match(err.message, new RegExp(`set max_prepared_transactions to at least \\d+ in postgresql.conf on 127.0.0.1:${plain.port} and restart`));
      assert.match(err.message, new RegExp(`set wal_level = logical in postgresql.conf on 127.0.0.1:${plain.port} and restart`));
      return true;
    });
    const count = await t.client.query('SELECT count(*) FROM pg_dist_node');
    assert.deepEqual(count.rows, [['2']]);
  } finally {
    await plain.stop();
  }
});

test('citus_set_node_property toggles shouldhaveshards; other properties are refused', async () => {
  const w2 = cluster.workers[1]!;
  await call(t.ctx, 'citus_set_node_property', [w2.host, String(w2.port), 'shouldhaveshards', 'false']);
  let r = await t.client.query('SELECT shouldhaveshards FROM pg_dist_node WHERE nodeport = $1', [String(w2.port)]);
  assert.deepEqual(r.rows, [['f']]);
  // A table created now puts every shard on the first worker.
  await t.client.query('CREATE TABLE only_first (id bigint)');
  await call(t.ctx, 'create_distributed_table', ['only_first', 'id'], { shard_count: '4' });
  const groups = await t.client.query(
    "SELECT DISTINCT groupid FROM pg_dist_placement JOIN pg_dist_shard USING (shardid) WHERE logicalrelid = 'only_first'::regclass",
  );
  assert.deepEqual(groups.rows, [['1']]);
  await call(t.ctx, 'undistribute_table', ['only_first']);
  await call(t.ctx, 'citus_set_node_property', [w2.host, String(w2.port), 'shouldhaveshards', 'true']);
  r = await t.client.query('SELECT shouldhaveshards FROM pg_dist_node WHERE nodeport = $1', [String(w2.port)]);
  assert.deepEqual(r.rows, [['t']]);
  await assert.rejects(call(t.ctx, 'citus_set_node_property', [w2.host, String(w2.port), 'isactive', 'false']), pgError('22023', /shouldhaveshards/));
  await assert.rejects(call(t.ctx, 'citus_set_node_property', ['nowhere', '1', 'shouldhaveshards', 'false']), pgError('22023', /node at "nowhere:1" does not exist/));
});

test('citus_set_coordinator_host registers the coordinator as group 0, not as a worker', async () => {
  await call(t.ctx, 'citus_set_coordinator_host', [cluster.coordinatorPg.host]);
  const r = await t.client.query('SELECT groupid, nodename, nodeport, shouldhaveshards FROM pg_dist_node WHERE groupid = 0');
  assert.deepEqual(r.rows, [['0', cluster.coordinatorPg.host, String(cluster.coordinatorPg.port), 'f']]);
  assert.equal((await call(t.ctx, 'citus_get_active_worker_nodes', [])).length, 2);
  await call(t.ctx, 'citus_set_coordinator_host', ['localhost', String(cluster.coordinatorPg.port)]);
  const again = await t.client.query('SELECT nodename FROM pg_dist_node WHERE groupid = 0');
  assert.deepEqual(again.rows, [['localhost']]);
});

test('citus_remove_node refuses while the node holds the only placement of a shard', async () => {
  const w1 = cluster.workers[0]!;
  await t.client.query('CREATE TABLE pinned (id int)');
  await call(t.ctx, 'create_distributed_table', ['pinned', 'id'], { shard_count: '2' });
  await assert.rejects(call(t.ctx, 'citus_remove_node', [w1.host, String(w1.port)]), (err: unknown) => {
    assert.ok(err instanceof PgError);
    assert.match(err.message, new RegExp(`cannot remove or disable the node ${w1.host}:${w1.port} because because it contains the only shard placement for shard \\d+`));
    assert.equal(err.fields.hint, 'To proceed, either drop the tables or use undistribute_table() function to convert them to local tables');
    return true;
  });
  await call(t.ctx, 'undistribute_table', ['pinned']);
});

test('citus_remove_node removes a node without distributed placements, dropping its reference copies', async () => {
  const w2 = cluster.workers[1]!;
  await t.client.query("CREATE TABLE codes (code text PRIMARY KEY); INSERT INTO codes VALUES ('a'), ('b')");
  await call(t.ctx, 'create_reference_table', ['codes']);
  await call(t.ctx, 'citus_remove_node', [w2.host, String(w2.port)]);
  assert.deepEqual(await call(t.ctx, 'citus_get_active_worker_nodes', []), [[cluster.workers[0]!.host, String(cluster.workers[0]!.port)]]);
  const placements = await t.client.query("SELECT count(*) FROM pg_dist_placement JOIN pg_dist_shard USING (shardid) WHERE logicalrelid = 'codes'::regclass");
  assert.deepEqual(placements.rows, [['1']]);
  await assert.rejects(call(t.ctx, 'citus_remove_node', [w2.host, String(w2.port)]), pgError('22023', /does not exist/));

  // Adding it back copies the reference table onto it again.
  await call(t.ctx, 'citus_add_node', [w2.host, String(w2.port)]);
  const copies = await call(t.ctx, 'run_command_on_placements', ['codes', 'SELECT string_agg(code, \',\' ORDER BY code) FROM %s']);
  assert.equal(copies.length, 2);
  for (const row of copies) assert.deepEqual(row.slice(3), ['t', 'a,b']);
});

test('node management is for superusers only', async () => {
  await t.client.query("CREATE ROLE plain_user LOGIN PASSWORD 'pw'");
  const other = await makeContext(cluster, { user: 'plain_user', password: 'pw' });
  try {
    await assert.rejects(call(other.ctx, 'citus_add_node', ['127.0.0.1', '1']), pgError('42501', /permission denied for function citus_add_node/));
    await assert.rejects(call(other.ctx, 'citus_remove_node', ['127.0.0.1', '1']), pgError('42501'));
  } finally {
    other.close();
  }
});
