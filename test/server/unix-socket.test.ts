/**
 * The coordinator's Unix-domain socket (src/server/listen-socket.ts): a local
 * cluster's coordinator listens on `DIR/.s.PGSQL.<port>` beside its TCP port,
 * so `psql -h DIR -p PORT` reaches it as it would a PostgreSQL server.
 * Shown: psql and node-postgres through the socket (SCRAM asked, routed
 * statements served); `trust` counts a socket client as local; a socket file
 * left by a dead server is replaced; a live one makes the start fail.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/postgres.js';
import { startCoordinator } from '../../src/server/index.js';
import { socketPath } from '../../src/pool/node-sockets.js';
import { run } from './support.js';

let cluster: TestCluster;
let work: string;

before(async () => {
  cluster = await startTestCluster({ workers: 1 });
  work = mkdtempSync(join(tmpdir(), 'pgweave-socket-'));
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    const w = cluster.workers[0]!;
    await admin.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
    await admin.query('CREATE TABLE sock_items (k int PRIMARY KEY, v text)');
    await admin.query(`SELECT create_distributed_table('sock_items', 'k', shard_count => 4)`);
    await admin.query(`INSERT INTO sock_items SELECT k, 'v' || k FROM generate_series(1, 10) k`);
  } finally {
    await admin.end();
  }
});

after(async () => {
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** psql through the socket directory `dir` on `port`. */
function psqlVia(dir: string, port: number, sql: string, password: string | null, user = 'postgres') {
  const env: NodeJS.ProcessEnv = { PGHOST: dir, PGPORT: String(port), PGUSER: user, PGDATABASE: 'postgres', PGPASSWORD: password ?? '' };
  return run('psql', ['-X', '-At', '-w', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env });
}

test('a local cluster coordinator listens on its socket directory, with a world-connectable socket file', () => {
  const dir = cluster.config.listen.socketDir;
  assert.ok(dir, 'the config names a socket directory for the coordinator');
  assert.equal(cluster.coordinator.address.socketDir, dir);
  const path = socketPath(dir, cluster.coordinator.address.port);
  assert.ok(statSync(path).isSocket(), `${path} is a socket`);
  assert.equal(statSync(path).mode & 0o777, 0o777);
});

test('psql through the socket asks for the password and runs routed and multi-shard statements', async () => {
  const dir = cluster.config.listen.socketDir!;
  const port = cluster.coordinator.address.port;
  const ok = await psqlVia(dir, port, 'SELECT v FROM sock_items WHERE k = 7; SELECT count(*) FROM sock_items', cluster.password);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(ok.stdout.trim().split('\n'), ['v7', '10']);
  const wrong = await psqlVia(dir, port, 'SELECT 1', 'not the password');
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /password authentication failed for user "postgres"/);
  const none = await psqlVia(dir, port, 'SELECT 1', null);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /password/);
});

test('node-postgres through the socket: prepared statements and a transaction block', async () => {
  const c = new pg.Client({ host: cluster.config.listen.socketDir, port: cluster.coordinator.address.port, user: 'postgres', database: 'postgres', password: cluster.password });
  await c.connect();
  try {
    const r = await c.query({ name: 'by_key', text: 'SELECT v FROM sock_items WHERE k = $1', values: [3] });
    assert.deepEqual(r.rows, [{ v: 'v3' }]);
    await c.query('BEGIN');
    await c.query(`UPDATE sock_items SET v = 'changed' WHERE k = 3`);
    await c.query('COMMIT');
    const again = await c.query({ name: 'by_key', text: 'SELECT v FROM sock_items WHERE k = $1', values: [3] });
    assert.deepEqual(again.rows, [{ v: 'changed' }]);
  } finally {
    await c.end();
  }
});

test('with trust, a socket client counts as local, as on a loopback address', async () => {
  const dir = join(work, 'trust');
  mkdirSync(dir);
  const coordinator = await startCoordinator({ ...cluster.config, auth: { method: 'trust' }, listen: { host: '127.0.0.1', port: 0, socketDir: dir } });
  try {
    // Only a trusted (local) client gets this answer for the internal role; a remote one is asked for a password.
    const r = await psqlVia(dir, coordinator.address.port, 'SELECT 1', null, cluster.config.internal.user);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is reserved for the coordinator's internal use/);
  } finally {
    await coordinator.close();
  }
  assert.equal(existsSync(socketPath(dir, coordinator.address.port)), false, 'closing removes the socket file');
});

test('a socket file left by a dead server is replaced; one in use makes the start fail', async () => {
  const dir = join(work, 'stale');
  mkdirSync(dir);
  const port = await freePort();
  const path = socketPath(dir, port);

  // Something that answers on the socket: the coordinator must not take it over.
  const squatter = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve) => squatter.listen(path, resolve));
  try {
    await assert.rejects(startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port, socketDir: dir } }), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EADDRINUSE');
      assert.match(err.message, /another server is listening on the Unix-domain socket/);
      return true;
    });
  } finally {
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
  }

  // A file nobody answers on (a crashed server's): replaced. The failed start above also freed its TCP port.
  writeFileSync(path, '');
  const coordinator = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port, socketDir: dir } });
  try {
    assert.ok(statSync(path).isSocket());
    const r = await psqlVia(dir, port, 'SELECT count(*) FROM sock_items', cluster.password);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '10');
  } finally {
    await coordinator.close();
  }
});
