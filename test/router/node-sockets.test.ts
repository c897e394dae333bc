/**
 * The coordinator reaches the nodes of a local cluster through their
 * Unix-domain sockets (src/pool/node-sockets.ts): cheaper than loopback TCP
 * for every statement it forwards.
 *
 * A worker backend reached through its socket has no client address:
 * inet_client_port() is NULL there, a number over TCP. Shown: routed
 * statements — on the shared pipelined channels and in a block on the
 * session's own connection — and the coordinator PostgreSQL's link arrive
 * through the sockets; the socket asks for SCRAM like TCP does; a socket
 * directory that cannot be reached falls back to TCP.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { psqlPath } from '../../src/cluster/psql.js';
import { setNodeSockets } from '../../src/pool/node-sockets.js';
import { addWorkers, run, textClient, withTextClient } from './support.js';

let cluster: TestCluster;
let admin: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  admin = await textClient(cluster.url);
  await addWorkers(admin, cluster);
  await admin.query('CREATE TABLE items (k bigint PRIMARY KEY, v int NOT NULL)');
  await admin.query(`SELECT create_distributed_table('items', 'k', shard_count => 4)`);
  await admin.query('INSERT INTO items SELECT k, k FROM generate_series(1, 20) k');
});

after(async () => {
  await admin?.end().catch(() => {});
  await cluster?.stop();
});

/** Whether the worker backend serving key `k` for this client sees a client port (TCP) or none (its socket). */
async function overTcp(c: pg.Client, k: number): Promise<boolean> {
  const r = await c.query({ text: 'SELECT inet_client_port() AS port FROM items WHERE k = $1', values: [k] });
  assert.equal(r.rows.length, 1);
  return r.rows[0].port !== null;
}

test('the config of a local cluster names every node socket directory', () => {
  assert.ok(cluster.config.coordinator.socketDir, 'the coordinator PostgreSQL has a socket directory');
  for (const w of cluster.config.workers) assert.equal(w.socketDir, cluster.config.coordinator.socketDir);
});

test('routed statements, pipelined or in a block, reach the workers through their sockets', async () => {
  for (let k = 1; k <= 8; k++) assert.equal(await overTcp(admin, k), false, `autocommit read of key ${k}`);
  await admin.query('BEGIN');
  try {
    assert.equal(await overTcp(admin, 3), false, 'in a block');
    await admin.query('UPDATE items SET v = v + 1 WHERE k = 3');
  } finally {
    await admin.query('COMMIT');
  }
  // A statement on local objects only runs on the coordinator PostgreSQL.
  const local = await admin.query('SELECT inet_client_port() AS port');
  assert.equal(local.rows[0].port, null, 'the coordinator PostgreSQL link');
});

test('the socket asks for SCRAM, as TCP does', async () => {
  const dir = cluster.config.workers[0]!.socketDir!;
  const port = String(cluster.config.workers[0]!.port);
  const args = ['-X', '-A', '-t', '-w', '-h', dir, '-p', port, '-U', 'postgres', '-d', 'postgres', '-c', 'SELECT inet_client_port() IS NULL'];
  // run() starts from this process's environment: an empty PGPASSWORD counts as none.
  const env = { PGPASSWORD: '', PGPASSFILE: '/nonexistent' };
  const refused = await run(psqlPath(), args, { env });
  assert.notEqual(refused.code, 0, 'no password: refused');
  assert.match(refused.stderr, /password/);
  const wrong = await run(psqlPath(), args, { env: { ...env, PGPASSWORD: 'not-the-password' } });
  assert.notEqual(wrong.code, 0, 'a wrong password: refused');
  assert.match(wrong.stderr, /password authentication failed/);
  const ok = await run(psqlPath(), args, { env: { ...env, PGPASSWORD: cluster.password } });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), 't');
});

test('a socket directory that cannot be reached falls back to TCP', async () => {
  // A role of its own: its worker connections are new ones, opened after the change.
  await admin.query(`CREATE ROLE sockets_fallback LOGIN PASSWORD 'fallback-pw'`);
  await admin.query('GRANT SELECT ON items TO sockets_fallback');
  setNodeSockets(cluster.config.workers.map((w) => ({ ...w, socketDir: '/nonexistent/pgweave-sockets' })));
  try {
    const url = new URL(cluster.url);
    url.username = 'sockets_fallback';
    url.password = 'fallback-pw';
    await withTextClient(url.toString(), async (c) => {
      for (let k = 1; k <= 8; k++) assert.equal(await overTcp(c, k), true, `key ${k} over TCP`);
      const r = await c.query('SELECT sum(v)::int AS s FROM items');
      assert.equal(r.rows[0].s, '211', 'a multi-shard read over TCP');
    });
  } finally {
    setNodeSockets(cluster.config.workers);
  }
});
