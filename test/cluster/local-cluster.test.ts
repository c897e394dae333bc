/**
 * A cluster created by src/cluster/local-cluster.ts (through the test helper):
 * every node has the same SCRAM verifiers for the client superuser and the
 * internal role, the internal role can log in everywhere, and the in-process
 * coordinator accepts the client.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { loadClusterState, postgresPid, quoteIdent, quoteLiteral } from '../../src/cluster/index.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
});

after(async () => {
  await cluster?.stop();
});

async function query<T extends pg.QueryResultRow>(config: pg.ClientConfig, sql: string): Promise<T[]> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

test('the coordinator accepts the client superuser', async () => {
  const rows = await query<{ one: number }>({ connectionString: cluster.url }, 'SELECT 1 AS one');
  assert.deepEqual(rows, [{ one: 1 }]);
});

test('every node stores identical verifiers for postgres and pgweave_internal', async () => {
  const nodes = [cluster.coordinatorPg, ...cluster.workers];
  const verifiers = await Promise.all(
    nodes.map((n) =>
      query<{ rolname: string; rolpassword: string; rolsuper: boolean }>(
        { host: n.host, port: n.port, user: 'postgres', password: cluster.password, database: 'postgres' },
        "SELECT rolname, rolpassword, rolsuper FROM pg_authid WHERE rolname IN ('postgres', 'pgweave_internal') ORDER BY rolname",
      ),
    ),
  );
  assert.equal(verifiers[0]!.length, 2);
  for (const row of verifiers[0]!) {
    assert.match(row.rolpassword, /^SCRAM-SHA-256\$/);
    assert.equal(row.rolsuper, true);
  }
  for (const v of verifiers.slice(1)) assert.deepEqual(v, verifiers[0]);
});

test('the internal role logs in to every node with its password', async () => {
  const { user, password } = cluster.config.internal;
  for (const n of [cluster.coordinatorPg, ...cluster.workers]) {
    const rows = await query<{ u: string }>({ host: n.host, port: n.port, user, password, database: 'postgres' }, 'SELECT current_user AS u');
    assert.deepEqual(rows, [{ u: 'pgweave_internal' }]);
  }
});

test('cluster.json records every node and its running data directory', () => {
  const state = loadClusterState(cluster.dir);
  assert.ok(state);
  assert.deepEqual(state.nodes.map((n) => n.role), ['coordinator', 'worker', 'worker']);
  for (const node of state.nodes) {
    assert.ok(existsSync(join(node.dataDir, 'PG_VERSION')), node.dataDir);
    assert.notEqual(postgresPid(node.dataDir), null, `${node.name} running`);
  }
  assert.equal(state.storageDir, null, 'a temp dir is reachable, so data lives under it');
});

test('quoteIdent and quoteLiteral escape what they must', () => {
  assert.equal(quoteIdent('a"b'), '"a""b"');
  assert.equal(quoteLiteral("it's"), "'it''s'");
  assert.equal(quoteLiteral('a\\b'), "E'a\\\\b'");
});
