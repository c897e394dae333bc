/**
 * A local PostgreSQL created by src/cluster/postgres-server.ts: SCRAM login,
 * the settings the design relies on, loopback-only listening, and idempotent
 * start/stop.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findPgBinaries } from '../../src/cluster/pg-binaries.js';
import { initPostgres, postgresPid, startPostgres, stopPostgres, type PostgresServerOptions } from '../../src/cluster/postgres-server.js';
import { freePort, startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function show(url: string, setting: string): Promise<string> {
  const rows = await query<Record<string, string>>(url, `SHOW ${setting}`);
  return Object.values(rows[0]!)[0]!;
}

/** Resolves true if a TCP connection to host:port succeeds. */
function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(2000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

test('findPgBinaries finds PostgreSQL 15 or newer', () => {
  const bins = findPgBinaries();
  assert.ok(bins.majorVersion >= 15, `major version ${bins.majorVersion}`);
  assert.match(bins.bindir, /\//);
});

describe('a test PostgreSQL', () => {
  let server: TestPostgres;
  before(async () => {
    server = await startTestPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  test('accepts a SCRAM login with its password', async () => {
    const rows = await query<{ one: number }>(server.url, 'SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
    const [verifier] = await query<{ rolpassword: string }>(server.url, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'");
    assert.match(verifier!.rolpassword, /^SCRAM-SHA-256\$/);
  });

  test('rejects a wrong password', async () => {
    const url = `postgres://postgres:wrong@${server.host}:${server.port}/postgres`;
    await assert.rejects(query(url, 'SELECT 1'), /password authentication failed/);
  });

  test('has the settings distributed transactions and shard moves need', async () => {
    assert.equal(await show(server.url, 'wal_level'), 'logical');
    const maxPrepared = Number(await show(server.url, 'max_prepared_transactions'));
    assert.ok(maxPrepared > 0);
    assert.equal(maxPrepared, Number(await show(server.url, 'max_connections')));
    assert.equal(Number(await show(server.url, 'max_connections')), 300);
    assert.equal(await show(server.url, 'password_encryption'), 'scram-sha-256');
    assert.equal(await show(server.url, 'fsync'), 'off');
    assert.equal(await show(server.url, 'server_encoding'), 'UTF8');
  });

  test('allows only SCRAM over loopback TCP in pg_hba.conf', async () => {
    const rules = await query<{ type: string; auth_method: string; address: string }>(
      server.url,
      'SELECT type, auth_method, address FROM pg_hba_file_rules',
    );
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      assert.equal(rule.type, 'host');
      assert.equal(rule.auth_method, 'scram-sha-256');
      assert.ok(['127.0.0.1', '::1'].includes(rule.address), rule.address);
    }
  });

  test('listens on 127.0.0.1 only, without Unix sockets', async () => {
    assert.equal(await show(server.url, 'listen_addresses'), '127.0.0.1');
    assert.equal(await show(server.url, 'unix_socket_directories'), '');
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && !a.internal && a.family === 'IPv4');
    if (external) assert.equal(await canConnect(external.address, server.port), false, `reachable on ${external.address}`);
    assert.equal(await canConnect('::1', server.port), false, 'reachable on ::1');
  });
});

describe('initPostgres, startPostgres, stopPostgres', () => {
  let dir: string;
  let options: PostgresServerOptions;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgweave-test-lifecycle-'));
    chmodSync(dir, 0o755);
    options = {
      dataDir: join(dir, 'data'),
      port: await freePort(),
      superuserPassword: randomBytes(12).toString('hex'),
      superuser: 'admin',
      fast: true,
      maxConnections: 50,
      extraConf: { application_name: "it's pgweave" },
    };
  });
  after(async () => {
    await stopPostgres(options.dataDir, 'immediate');
    rmSync(dir, { recursive: true, force: true });
  });

  test('initialises, starts idempotently, stops idempotently, restarts', async () => {
    const url = `postgres://admin:${options.superuserPassword}@127.0.0.1:${options.port}/postgres`;
    assert.equal(postgresPid(options.dataDir), null, 'no pid before init');
    await initPostgres(options);
    await assert.rejects(initPostgres(options), /already holds/);

    await startPostgres(options, join(dir, 'server.log'));
    const pid = postgresPid(options.dataDir);
    assert.ok(pid && pid > 0);
    await startPostgres(options, join(dir, 'server.log'));
    assert.equal(postgresPid(options.dataDir), pid, 'a second start leaves the running server alone');

    assert.equal(await show(url, 'max_prepared_transactions'), '50');
    assert.equal(await show(url, 'application_name'), "it's pgweave");
    assert.deepEqual(await query(url, 'SELECT current_user AS u'), [{ u: 'admin' }]);

    await stopPostgres(options.dataDir);
    assert.equal(postgresPid(options.dataDir), null);
    await stopPostgres(options.dataDir);
    assert.equal(await canConnect('127.0.0.1', options.port), false);

    await startPostgres(options, join(dir, 'server.log'));
    assert.notEqual(postgresPid(options.dataDir), null);
    assert.deepEqual(await query(url, 'SELECT 2 AS two'), [{ two: 2 }]);
  });
});
