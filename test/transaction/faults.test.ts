/**
 * Faults during the bank workload (issue 6): kill -9 a worker, kill -9 the
 * coordinator process, kill and restart the coordinator PostgreSQL — at
 * each step of the commit protocol (before PREPARE, between PREPAREs, right
 * after the commit record, between COMMIT PREPAREDs; transaction/
 * fault-injection.ts) and at random moments. After recovery: the total is
 * conserved, every account matches its legs, every transfer is complete or
 * absent, every transfer the client saw commit is present, and no prepared
 * transaction or commit record is left over. Reads that completed never saw
 * a wrong total.
 *
 * PGWEAVE_FAULT_TRANSFERS scales the runs (default 200 transfers per run).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { loadClusterState, workerNodes, type ClusterNode, type ClusterState } from '../../src/cluster/index.js';
import { FAULT_POINTS, faults, type FaultPoint } from '../../src/transaction/fault-injection.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/postgres.js';
import {
  bounded,
  checkInvariants,
  closeClient,
  connect,
  createBank,
  describeCounts,
  killPostgres,
  nodesOfAccounts,
  prng,
  restartPostgres,
  runBank,
  sleep,
  StuckError,
  type BankCounts,
} from './support.js';

const TRANSFERS = Number(process.env.PGWEAVE_FAULT_TRANSFERS ?? 200);
const ACCOUNTS = 24;
const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

let cluster: TestCluster;
let state: ClusterState;
let nodeOf: Map<number, number>;
let nodeUrls: string[];
let nextTransferId = 1;
const committed = new Set<number>();
const uncertain = new Set<number>();
const rnd = prng(42);

before(async () => {
  cluster = await startTestCluster({ workers: 3 });
  state = loadClusterState(cluster.dir)!;
  const admin = await connect(cluster.url, 'faults-admin');
  try {
    for (const w of cluster.workers) await admin.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
    await createBank(admin, ACCOUNTS);
    nodeOf = await nodesOfAccounts(admin, ACCOUNTS);
  } finally {
    await admin.end();
  }
  nodeUrls = [cluster.coordinatorPg, ...cluster.workers].map((n) => `postgres://postgres:${encodeURIComponent(cluster.password)}@${n.host}:${n.port}/postgres`);
});

after(async () => {
  faults.handler = null;
  await cluster?.stop();
});

function coordinatorNode(): ClusterNode {
  return state.nodes.find((n) => n.role === 'coordinator')!;
}

/** Restarts of killed servers still in progress (awaited before checking). */
const restarts: Array<Promise<void>> = [];

function crash(node: ClusterNode, downMs: number): void {
  killPostgres(node.dataDir);
  restarts.push(sleep(downMs).then(() => restartPostgres(state, node)));
}

async function workload(url: string, label: string, transfers = TRANSFERS, onTransfer?: (n: number) => void): Promise<BankCounts> {
  const first = nextTransferId;
  nextTransferId += transfers;
  const counts = await runBank({
    url,
    accounts: ACCOUNTS,
    nodeOf,
    transfers,
    writers: 4,
    readers: 2,
    atomicVisibility: true,
    tolerateErrors: true,
    firstTransferId: first,
    seed: first,
    onTransfer,
  });
  for (const t of counts.committed) committed.add(t);
  for (const t of counts.uncertain) uncertain.add(t);
  return counts;
}

/** Waits for the restarts, runs recovery until nothing is left, and checks every invariant. */
async function recoveredAndConsistent(t: { diagnostic(s: string): void }, label: string, counts: BankCounts): Promise<void> {
  await Promise.all(restarts.splice(0));
  let admin: pg.Client | null = null;
  const deadline = Date.now() + 90_000;
  let inv: Awaited<ReturnType<typeof checkInvariants>> | null = null;
  for (;;) {
    try {
      admin ??= await bounded(connect(cluster.url, 'faults-check'), 'faults-check: connecting');
      await bounded(admin.query('SELECT recover_prepared_transactions()'), 'faults-check: SELECT recover_prepared_transactions()');
      inv = await checkInvariants(admin, nodeUrls, ACCOUNTS, committed, uncertain);
      if ((inv.prepared === 0 && inv.records === 0) || Date.now() > deadline) break;
    } catch (err) {
      if (err instanceof StuckError || Date.now() > deadline) throw err;
      if (admin) await closeClient(admin, 'faults-check');
      admin = null;
    }
    await sleep(300);
  }
  if (admin) await closeClient(admin, 'faults-check');
  t.diagnostic(`${describeCounts(label, counts)}; after recovery: ${JSON.stringify({ ...inv, uncertainTransfers: uncertain.size })}`);
  assert.equal(counts.statementWrong + counts.readCommittedWrong + counts.repeatableWrong, 0, counts.firstWrong ?? '');
  assert.equal(inv!.total, ACCOUNTS * 1000, 'the total is conserved');
  assert.equal(inv!.accountsMatchingLegs, true, 'every account matches its legs');
  assert.equal(inv!.halfTransfers, 0, 'no transfer is half there');
  assert.deepEqual(inv!.missingCommitted, [], 'every transfer the client saw commit is present');
  assert.equal(inv!.prepared, 0, 'no prepared transaction is left');
  assert.equal(inv!.records, 0, 'no commit record is left');
}

test('kill -9 a worker at each step of the commit protocol, and at random moments', { timeout: 15 * 60_000 }, async (t) => {
  const workers = workerNodes(state);
  for (const point of FAULT_POINTS) {
    let seen = 0;
    const at = 5 + Math.floor(rnd() * 20);
    let fired = false;
    faults.handler = (p: FaultPoint) => {
      if (p !== point || fired || ++seen < at) return;
      fired = true;
      crash(workers[Math.floor(rnd() * workers.length)]!, 300 + Math.floor(rnd() * 700));
    };
    let counts: BankCounts;
    try {
      counts = await workload(cluster.url, `worker killed at ${point}`, Math.ceil(TRANSFERS / 2));
    } finally {
      faults.handler = null;
    }
    assert.ok(fired, `the fault point ${point} was reached`);
    await recoveredAndConsistent(t, `worker killed at ${point}`, counts);
  }
  // Random moments: a worker crashes every few dozen transfers.
  const counts = await workload(cluster.url, 'workers killed at random moments', TRANSFERS, (n) => {
    if (n > 0 && n % 60 === 0) crash(workers[Math.floor(rnd() * workers.length)]!, 200 + Math.floor(rnd() * 800));
  });
  await recoveredAndConsistent(t, 'workers killed at random moments', counts);
});

test('kill -9 the coordinator PostgreSQL at each step of the commit protocol, and at random moments', { timeout: 15 * 60_000 }, async (t) => {
  for (const point of FAULT_POINTS) {
    let seen = 0;
    const at = 5 + Math.floor(rnd() * 20);
    let fired = false;
    faults.handler = (p: FaultPoint) => {
      if (p !== point || fired || ++seen < at) return;
      fired = true;
      crash(coordinatorNode(), 300 + Math.floor(rnd() * 500));
    };
    let counts: BankCounts;
    try {
      counts = await workload(cluster.url, `coordinator PostgreSQL killed at ${point}`, Math.ceil(TRANSFERS / 2));
    } finally {
      faults.handler = null;
    }
    assert.ok(fired, `the fault point ${point} was reached`);
    await recoveredAndConsistent(t, `coordinator PostgreSQL killed at ${point}`, counts);
  }
  const counts = await workload(cluster.url, 'coordinator PostgreSQL restarted at random moments', TRANSFERS, (n) => {
    if (n > 0 && n % 70 === 0) crash(coordinatorNode(), 200 + Math.floor(rnd() * 600));
  });
  await recoveredAndConsistent(t, 'coordinator PostgreSQL restarted at random moments', counts);
});

test('kill -9 the coordinator process at each step of the commit protocol, and at random moments', { timeout: 15 * 60_000 }, async (t) => {
  // A second coordinator process, started as `pgweave serve` would be, that crashes itself at the
  // fault points (PGWEAVE_FAULTS) and is killed at random moments; it is restarted each time.
  const port = await freePort();
  const config = JSON.parse(readFileSync(join(cluster.dir, 'pgweave.json'), 'utf8'));
  config.listen = { host: '127.0.0.1', port };
  const configFile = join(cluster.dir, 'faults-coordinator.json');
  writeFileSync(configFile, JSON.stringify(config), { mode: 0o600 });
  const url = `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/postgres`;
  const probability = 1.5 / TRANSFERS;
  const kill = (c: ChildProcess | null) => {
    try {
      if (c?.pid && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  let child: ChildProcess | null = null;
  let crashes = 0;
  let stopping = false;
  let log = '';
  const startChild = () => {
    const c = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
      env: { ...process.env, PGWEAVE_FAULTS: FAULT_POINTS.map((p) => `${p}:${probability}`).join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    c.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    c.on('exit', () => {
      if (stopping) return;
      crashes++;
      setTimeout(() => {
        if (!stopping) child = startChild();
      }, 100);
    });
    return c;
  };
  child = startChild();
  try {
    const counts = await workload(url, 'coordinator process killed', TRANSFERS * 2, (n) => {
      if (n > 0 && n % 90 === 0) kill(child); // a random moment
    });
    stopping = true;
    t.diagnostic(`coordinator process crashes: ${crashes} (${(log.match(/PGWEAVE_FAULTS: crashing at [a-z-]+/g) ?? []).join(', ')})`);
    assert.ok(crashes >= 2, `the coordinator process crashed ${crashes} times`);
    kill(child);
    await recoveredAndConsistent(t, 'coordinator process killed', counts);
  } finally {
    stopping = true;
    kill(child);
  }
});
