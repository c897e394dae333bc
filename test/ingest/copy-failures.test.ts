/**
 * COPY … FROM STDIN into a distributed table when something dies: the client
 * disconnecting mid-stream, a worker stopped (pg_ctl stop -m immediate)
 * mid-stream, and a worker killed inside the two-phase commit (before the
 * commit point: nothing; after it: everything). In every case, once the
 * worker is back and `recover_prepared_transactions()` has run, the table
 * holds all of the COPY or none of it, on every node, and no prepared
 * transaction is left.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { loadClusterState, nodeServerOptions, startPostgres, stopPostgres, workerNodes } from '../../src/cluster/index.js';
import { faults } from '../../src/transaction/fault-injection.js';
import { frontend, message } from '../server/raw-protocol.js';
import { addWorkers, clusterEndpoint, copyIn, rawConnect, textClient } from './support.js';

let cluster: TestCluster;
let weave: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  weave = await textClient(cluster.url);
  await addWorkers(weave, cluster);
  await weave.query('SET citus.shard_count = 4');
  await weave.query('CREATE TABLE ev (tenant_id int NOT NULL, id bigint NOT NULL, body text, PRIMARY KEY (tenant_id, id))');
  await weave.query(`SELECT create_distributed_table('ev', 'tenant_id')`);
});

after(async () => {
  faults.handler = null;
  await weave?.end().catch(() => {});
  await cluster?.stop();
});

function rows(from: number, n: number): Buffer {
  let s = '';
  for (let i = from; i < from + n; i++) s += `${i % 97}\t${i}\tbody of row ${i} ${'x'.repeat(40)}\n`;
  return Buffer.from(s);
}

function workerUrl(port: number): string {
  return `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/postgres`;
}

/** Rows of ev on each worker (straight from the shards) and prepared transactions left anywhere. */
async function onWorkers(): Promise<{ rows: number[]; prepared: number }> {
  const out: number[] = [];
  let prepared = 0;
  for (const w of cluster.workers) {
    const c = await textClient(workerUrl(w.port));
    try {
      const shards = await c.query(`SELECT relname FROM pg_class WHERE relname ~ '^ev_[0-9]+$' AND relkind = 'r'`);
      let n = 0;
      for (const s of shards.rows) n += Number((await c.query(`SELECT count(*) FROM public.${s.relname}`)).rows[0].count);
      out.push(n);
      prepared += Number((await c.query('SELECT count(*) FROM pg_prepared_xacts')).rows[0].count);
    } finally {
      await c.end();
    }
  }
  return { rows: out, prepared };
}

function worker(index: number) {
  const state = loadClusterState(cluster.dir)!;
  const node = workerNodes(state)[index]!;
  return { state, node };
}

async function stopWorker(index: number): Promise<void> {
  await stopPostgres(worker(index).node.dataDir, 'immediate');
}

async function startWorker(index: number): Promise<void> {
  const { state, node } = worker(index);
  await startPostgres(nodeServerOptions(state, node), node.logFile);
}

async function recoverAndCount(): Promise<{ total: string; workers: { rows: number[]; prepared: number } }> {
  // The coordinator reconnects lazily: a first statement may meet the old, dead connection.
  for (let i = 0; i < 20; i++) {
    try {
      await weave.query('SELECT recover_prepared_transactions()');
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const total = (await weave.query('SELECT count(*) FROM ev')).rows[0].count as string;
  return { total, workers: await onWorkers() };
}

test('the client disconnects in the middle of a COPY: nothing remains', async () => {
  await weave.query('TRUNCATE ev');
  const raw = await rawConnect(clusterEndpoint(cluster));
  raw.write(frontend.query('COPY ev FROM STDIN'));
  const g = await raw.next();
  assert.equal(g?.type, 'G');
  for (let i = 0; i < 20; i++) raw.write(message('d', rows(i * 2000, 2000)));
  await new Promise((r) => setTimeout(r, 300));
  raw.write(message('d', Buffer.from('5\t999999\thalf a ro')));
  raw.destroy();
  await new Promise((r) => setTimeout(r, 1000));
  const after = await recoverAndCount();
  assert.equal(after.total, '0');
  assert.deepEqual(after.workers, { rows: [0, 0], prepared: 0 });
  // the shards are not left locked: a new COPY goes through
  const again = await rawConnect(clusterEndpoint(cluster));
  const out = await copyIn(again, 'COPY ev FROM STDIN', [rows(0, 1000)]);
  again.destroy();
  assert.equal(out.tag, 'COPY 1000');
  await weave.query('TRUNCATE ev');
});

test('a worker stopped in the middle of a COPY: the COPY fails, nothing remains anywhere after recovery', async () => {
  await weave.query('TRUNCATE ev');
  const raw = await rawConnect(clusterEndpoint(cluster));
  raw.write(frontend.query('COPY ev FROM STDIN'));
  assert.equal((await raw.next())?.type, 'G');
  for (let i = 0; i < 10; i++) raw.write(message('d', rows(i * 5000, 5000)));
  await new Promise((r) => setTimeout(r, 500));
  await stopWorker(1);
  for (let i = 10; i < 14; i++) raw.write(message('d', rows(i * 5000, 5000)));
  raw.write(message('c'));
  const answer = await raw.readUntil('Z', 60_000);
  raw.destroy();
  const error = answer.find((m) => m.type === 'E');
  assert.ok(error, `the COPY must fail, got ${answer.map((m) => m.type).join('')}`);
  assert.ok(!answer.some((m) => m.type === 'C'), 'no command tag');
  await startWorker(1);
  const after = await recoverAndCount();
  assert.equal(after.total, '0');
  assert.deepEqual(after.workers, { rows: [0, 0], prepared: 0 });
});

test('a worker killed between the PREPAREs: rolled back everywhere', async () => {
  await weave.query('TRUNCATE ev');
  let fired = false;
  faults.handler = async (point) => {
    if (point === 'between-prepares' && !fired) {
      fired = true;
      await stopWorker(1);
    }
  };
  try {
    const raw = await rawConnect(clusterEndpoint(cluster));
    const out = await copyIn(raw, 'COPY ev FROM STDIN', [rows(0, 3000)]);
    raw.destroy();
    assert.ok(fired, 'the COPY went through two-phase commit');
    assert.equal(out.ok, false, 'the COPY fails');
  } finally {
    faults.handler = null;
  }
  await startWorker(1);
  const after = await recoverAndCount();
  assert.equal(after.total, '0');
  assert.deepEqual(after.workers, { rows: [0, 0], prepared: 0 });
});

test('a worker killed after the commit point: recovery completes the COPY everywhere', async () => {
  await weave.query('TRUNCATE ev');
  let fired = false;
  faults.handler = async (point) => {
    if (point === 'after-record' && !fired) {
      fired = true;
      await stopWorker(0);
    }
  };
  try {
    const raw = await rawConnect(clusterEndpoint(cluster));
    await copyIn(raw, 'COPY ev FROM STDIN', [rows(0, 3000)]);
    raw.destroy();
    assert.ok(fired, 'the COPY reached its commit point');
  } finally {
    faults.handler = null;
  }
  await startWorker(0);
  const after = await recoverAndCount();
  assert.equal(after.total, '3000');
  assert.equal(after.workers.rows[0]! + after.workers.rows[1]!, 3000);
  assert.ok(after.workers.rows.every((n) => n > 0));
  assert.equal(after.workers.prepared, 0);
});
