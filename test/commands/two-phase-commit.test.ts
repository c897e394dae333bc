/**
 * src/transaction against a real 2-worker cluster: commitTwoPhase commits
 * everywhere or nowhere (a participant whose transaction failed, one that was
 * rolled back, a failing coordinator commit), and recoverPreparedTransactions
 * resolves what a dead coordinator left (record → commit, none → roll back)
 * while leaving transactions of a live coordinator alone.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ensureCatalog } from '../../src/metadata/catalog-schema.js';
import { connectBackend } from '../../src/pool/backend-connection.js';
import { InternalClient } from '../../src/pool/internal-client.js';
import { NodePools } from '../../src/pool/node-pools.js';
import { PgError } from '../../src/protocol/errors.js';
import { recoverPreparedTransactions } from '../../src/transaction/recovery.js';
import { LIVENESS_LOCK_KEY, commitTwoPhase, ensureLiveness, releaseLiveness, type Participant } from '../../src/transaction/two-phase-commit.js';
import { call, makeContext, type TestContext } from './command-context.js';

let cluster: TestCluster;
let t: TestContext;
let pools: NodePools;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  t = await makeContext(cluster);
  pools = t.ctx.pools;
  for (const w of cluster.workers) await call(t.ctx, 'citus_add_node', [w.host, String(w.port)]);
  await ensureCatalog(pools, cluster.coordinatorPg, 'postgres');
  await ensureLiveness(pools, cluster.coordinatorPg, 'postgres');
  for (const w of cluster.workers) await pools.get(w.host, w.port, 'postgres').query('CREATE TABLE IF NOT EXISTS tpc (v text)');
  await pools.get(cluster.coordinatorPg.host, cluster.coordinatorPg.port, 'postgres').query('CREATE TABLE IF NOT EXISTS tpc (v text)');
});

after(async () => {
  releaseLiveness();
  t?.close();
  await cluster?.stop();
});

const coordinatorPool = () => pools.get(cluster.coordinatorPg.host, cluster.coordinatorPg.port, 'postgres');

async function open(): Promise<{ coordinator: InternalClient; participants: Participant[]; release(): void }> {
  const coordinator = await coordinatorPool().acquire();
  await coordinator.query('BEGIN');
  const held: Array<[InternalClient, ReturnType<NodePools['get']>]> = [];
  const participants: Participant[] = [];
  for (const [i, w] of cluster.workers.entries()) {
    const pool = pools.get(w.host, w.port, 'postgres');
    const client = await pool.acquire();
    held.push([client, pool]);
    await client.query('BEGIN');
    participants.push({ client, groupId: i + 1, label: `${w.host}:${w.port}` });
  }
  return {
    coordinator,
    participants,
    release() {
      coordinatorPool().release(coordinator);
      for (const [c, p] of held) p.release(c);
    },
  };
}

async function valuesEverywhere(): Promise<string[][]> {
  const nodes = [cluster.coordinatorPg, ...cluster.workers];
  return Promise.all(nodes.map(async (n) => (await pools.get(n.host, n.port, 'postgres').query('SELECT v FROM tpc ORDER BY v')).rows.map((r) => r[0]!)));
}

async function preparedEverywhere(): Promise<number> {
  let n = 0;
  for (const w of cluster.workers) n += Number((await pools.get(w.host, w.port, 'postgres').query('SELECT count(*) FROM pg_prepared_xacts')).rows[0]![0]);
  return n;
}

test('a distributed commit is visible on every node, and leaves no prepared transaction or record', async () => {
  const tx = await open();
  try {
    await tx.coordinator.query("INSERT INTO tpc VALUES ('a')");
    for (const p of tx.participants) await p.client.query("INSERT INTO tpc VALUES ('a')");
    await commitTwoPhase(tx.coordinator, tx.participants);
  } finally {
    tx.release();
  }
  assert.deepEqual(await valuesEverywhere(), [['a'], ['a'], ['a']]);
  assert.equal(await preparedEverywhere(), 0);
  assert.deepEqual((await coordinatorPool().query('SELECT count(*) FROM pgweave.transaction')).rows, [['0']]);
});

test('a participant whose transaction failed rolls back every node', async () => {
  const tx = await open();
  try {
    await tx.coordinator.query("INSERT INTO tpc VALUES ('b')");
    await tx.participants[0]!.client.query("INSERT INTO tpc VALUES ('b')");
    await tx.participants[1]!.client.query('SELECT 1/0').catch(() => {});
    await assert.rejects(commitTwoPhase(tx.coordinator, tx.participants), (err: unknown) => err instanceof PgError && /rolled back before it could be prepared/.test(err.message));
  } finally {
    tx.release();
  }
  assert.deepEqual(await valuesEverywhere(), [['a'], ['a'], ['a']]);
  assert.equal(await preparedEverywhere(), 0);
});

test('a coordinator commit that fails rolls the prepared participants back', async () => {
  const tx = await open();
  try {
    await tx.coordinator.query('CREATE TEMP TABLE parent (id int PRIMARY KEY); CREATE TEMP TABLE child (id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)');
    await tx.coordinator.query('INSERT INTO child VALUES (1)'); // violates the deferred key at COMMIT
    for (const p of tx.participants) await p.client.query("INSERT INTO tpc VALUES ('c')");
    await assert.rejects(commitTwoPhase(tx.coordinator, tx.participants), (err: unknown) => err instanceof PgError && err.code === '23503');
  } finally {
    tx.release();
  }
  assert.deepEqual(await valuesEverywhere(), [['a'], ['a'], ['a']]);
  assert.equal(await preparedEverywhere(), 0);
  assert.deepEqual((await coordinatorPool().query('SELECT count(*) FROM pgweave.transaction')).rows, [['0']]);
});

test('recovery commits what a dead coordinator decided, rolls back the rest, and spares a live coordinator', async () => {
  const [w1, w2] = cluster.workers;
  const dead = 123456789;
  const alive = 987654321;
  const prepare = async (w: { host: string; port: number }, value: string, gid: string) => {
    const c = new InternalClient(await connectBackend({ host: w.host, port: w.port, database: 'postgres', user: cluster.config.internal.user, credentials: { password: cluster.config.internal.password } }));
    await c.query(`BEGIN; INSERT INTO tpc VALUES ('${value}'); PREPARE TRANSACTION '${gid}'`);
    c.close();
  };
  await prepare(w1!, 'decided', `pgweave_${dead}_1_7_0`);
  await prepare(w2!, 'decided', `pgweave_${dead}_1_7_1`);
  await prepare(w1!, 'undecided', `pgweave_${dead}_1_8_0`);
  await prepare(w2!, 'in-flight', `pgweave_${alive}_1_3_0`);
  await coordinatorPool().query(`INSERT INTO pgweave.transaction (gid, groupid) VALUES ('pgweave_${dead}_1_7_0', 1), ('pgweave_${dead}_1_7_1', 2)`);

  // Another coordinator process is alive: it holds its liveness lock.
  const live = new InternalClient(await connectBackend({ host: cluster.coordinatorPg.host, port: cluster.coordinatorPg.port, database: 'postgres', user: cluster.config.internal.user, credentials: { password: cluster.config.internal.password } }));
  await live.query(`SELECT pg_advisory_lock(${LIVENESS_LOCK_KEY}, ${alive})`);
  try {
    const result = await recoverPreparedTransactions(pools, cluster.config, 'postgres');
    assert.deepEqual(result, { committed: 2, rolledBack: 1, unreachable: [] });
    const [, v1, v2] = await valuesEverywhere();
    assert.deepEqual(v1, ['a', 'decided']);
    assert.deepEqual(v2, ['a', 'decided']);
    assert.equal(await preparedEverywhere(), 1, 'the live coordinator\'s transaction is still prepared');
    assert.deepEqual((await coordinatorPool().query('SELECT count(*) FROM pgweave.transaction')).rows, [['0']]);
  } finally {
    live.close();
  }
  // Once that coordinator is gone, its leftover (no record) is rolled back.
  for (let i = 0; i < 50; i++) {
    const held = await coordinatorPool().query(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${alive}`);
    if (held.rows[0]![0] === '0') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const later = await recoverPreparedTransactions(pools, cluster.config, 'postgres');
  assert.deepEqual(later, { committed: 0, rolledBack: 1, unreachable: [] });
  assert.equal(await preparedEverywhere(), 0);
});
