/**
 * The bank test (issue 6): accounts over 3 workers (4 shards: two on one
 * node) and a co-located table of transfer legs; concurrent transfers
 * between accounts on different nodes (explicit blocks and multi-statement
 * implicit transactions); concurrent readers summing all balances in one
 * statement, in READ COMMITTED blocks and in multi-statement REPEATABLE READ
 * blocks. With the commit gate on, no read may see a wrong total; with
 * `pgweave.atomic_visibility = off` the same workload must show wrong totals
 * (so the test can fail). Counts are printed as diagnostics.
 *
 * PGWEAVE_BANK_TRANSFERS scales the run (default 2000 transfers with the
 * gate on; the 100 000 is `PGWEAVE_BANK_TRANSFERS=100000`).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { checkInvariants, connect, createBank, describeCounts, nodesOfAccounts, runBank } from './support.js';

const TRANSFERS = Number(process.env.PGWEAVE_BANK_TRANSFERS ?? 2000);
const ACCOUNTS = 24;

let cluster: TestCluster;
let admin: pg.Client;
let nodeOf: Map<number, number>;
let nodeUrls: string[];
const committed = new Set<number>();

before(async () => {
  cluster = await startTestCluster({ workers: 3 });
  admin = await connect(cluster.url, 'bank-admin');
  for (const w of cluster.workers) await admin.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  await createBank(admin, ACCOUNTS);
  nodeOf = await nodesOfAccounts(admin, ACCOUNTS);
  nodeUrls = [cluster.coordinatorPg, ...cluster.workers].map((n) => `postgres://postgres:${encodeURIComponent(cluster.password)}@${n.host}:${n.port}/postgres`);
});

after(async () => {
  await admin?.end().catch(() => {});
  await cluster?.stop();
});

test('the accounts are spread over three workers, two shards on one of them', async () => {
  assert.equal(new Set(nodeOf.values()).size, 3);
  const shards = await admin.query("SELECT n.nodeport, count(*) AS n FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'accounts'::regclass GROUP BY 1");
  assert.ok(shards.rows.some((r) => Number(r.n) === 2), JSON.stringify(shards.rows));
});

test('with the commit gate on, no read sees a wrong total', { timeout: 80 * 60_000 }, async (t) => {
  const counts = await runBank({
    url: cluster.url,
    accounts: ACCOUNTS,
    nodeOf,
    transfers: TRANSFERS,
    writers: 6,
    readers: 3,
    atomicVisibility: true,
    firstTransferId: 1,
    seed: 1,
  });
  t.diagnostic(describeCounts('gate on', counts));
  for (const tid of counts.committed) committed.add(tid);
  assert.equal(counts.transfersCommitted, TRANSFERS);
  assert.ok(counts.statementReads > 0 && counts.readCommittedReads > 0 && counts.repeatableReads > 0, 'every kind of read ran');
  assert.equal(counts.statementWrong + counts.readCommittedWrong + counts.repeatableWrong, 0, counts.firstWrong ?? '');
  const inv = await checkInvariants(admin, nodeUrls, ACCOUNTS, committed, []);
  assert.deepEqual(inv, { total: ACCOUNTS * 1000, accountsMatchingLegs: true, halfTransfers: 0, missingCommitted: [], presentUncertain: 0, prepared: 0, records: 0 });
});

test('with pgweave.atomic_visibility = off, the same workload sees wrong totals', { timeout: 20 * 60_000 }, async (t) => {
  const counts = await runBank({
    url: cluster.url,
    accounts: ACCOUNTS,
    nodeOf,
    transfers: Math.max(TRANSFERS, 4000),
    writers: 6,
    readers: 3,
    atomicVisibility: false,
    stopAfterWrong: 20,
    firstTransferId: 10_000_000,
    seed: 2,
  });
  t.diagnostic(describeCounts('gate off', counts));
  for (const tid of counts.committed) committed.add(tid);
  assert.ok(counts.statementWrong + counts.readCommittedWrong + counts.repeatableWrong > 0, 'without the gate some read sees half a transfer');
  // Atomic commit still holds: only visibility was given up.
  const inv = await checkInvariants(admin, nodeUrls, ACCOUNTS, committed, []);
  assert.equal(inv.total, ACCOUNTS * 1000);
  assert.equal(inv.accountsMatchingLegs, true);
  assert.equal(inv.halfTransfers, 0);
  assert.deepEqual(inv.missingCommitted, []);
});
