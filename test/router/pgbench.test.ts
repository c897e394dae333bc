/**
 * pgbench's own tables, distributed, under pgbench's own transactions.
 *
 * `pgbench -i -s 2` runs through the coordinator (local tables, COPY into
 * them), then the tables are distributed so that every transaction pgbench
 * -S and -N sends is routable to one worker:
 *  - pgbench_accounts by aid: both scripts touch one account per transaction;
 *  - pgbench_history by aid, co-located with pgbench_accounts: the INSERT of
 *    -N lands in the shard group of the account its UPDATE changed, so the
 *    whole transaction runs on one node and commits in one phase (a local
 *    history table would make every transaction a two-node 2PC);
 *  - pgbench_branches and pgbench_tellers as reference tables: small, read
 *    by pgbench at start-up (scale detection) and never written by -S or -N.
 *
 * -S and -N run in -M simple and -M prepared (-c 4 -j 2 -t 200, no vacuum):
 * every transaction must complete, none fail. The same -N runs, with the same
 * --random-seed, also go to a plain PostgreSQL initialised at the same scale:
 * per-client random sequences depend only on the seed, and balances only add
 * up deltas (order does not matter), so every account balance and the
 * multiset of history rows must come out identical. Finally every shard is
 * checked on its worker: no row outside the shard's hash range, and the
 * coordinator's count over that range equals the worker's count.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { addWorkers, nodeUrl, run, textClient } from './support.js';

const SCALE = 2;
const CLIENTS = 4;
const TRANSACTIONS = 200;

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url);
  reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
});

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

interface PgbenchOutcome {
  processed: number;
  planned: number;
  failed: number;
  tps: number;
  output: string;
}

/** Runs pgbench and reads its summary (PostgreSQL 15 prints the failed count). */
async function pgbench(url: string, args: string[]): Promise<PgbenchOutcome> {
  const r = await run('pgbench', [...args, url], { timeoutMs: 300_000 });
  const output = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.code, 0, `pgbench ${args.join(' ')} exited with ${r.code}:\n${output}`);
  const processed = /number of transactions actually processed: (\d+)\/(\d+)/.exec(r.stdout);
  assert.ok(processed, `no transaction count in pgbench output:\n${output}`);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  const tps = /tps = ([\d.]+)/.exec(r.stdout);
  return { processed: Number(processed[1]), planned: Number(processed[2]), failed: failed ? Number(failed[1]) : 0, tps: tps ? Number(tps[1]) : 0, output };
}

test('pgbench -i through the coordinator, then the pgbench tables distributed', { timeout: 300_000 }, async (t) => {
  for (const url of [cluster.url, plain.url]) {
    const r = await run('pgbench', ['-i', '-q', '-s', String(SCALE), url], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
  }
  await weave.query(`SELECT create_distributed_table('pgbench_accounts', 'aid')`);
  await weave.query(`SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts')`);
  await weave.query(`SELECT create_reference_table('pgbench_branches')`);
  await weave.query(`SELECT create_reference_table('pgbench_tellers')`);
  const tables = await weave.query(`SELECT table_name::text AS name, citus_table_type AS type, shard_count FROM citus_tables ORDER BY 1`);
  assert.deepEqual(
    tables.rows.map((r) => `${r.name} ${r.type} ${r.shard_count}`),
    ['pgbench_accounts distributed 32', 'pgbench_branches reference 1', 'pgbench_history distributed 32', 'pgbench_tellers reference 1'],
  );
  const count = await weave.query('SELECT count(*) FROM pgbench_accounts');
  assert.deepEqual(count.rows, [{ count: String(100000 * SCALE) }]);
  t.diagnostic(`pgbench -i -s ${SCALE}: ${100000 * SCALE} accounts in 32 shards on ${cluster.workers.length} workers`);
});

for (const mode of ['simple', 'prepared'] as const) {
  test(`pgbench -S -M ${mode}: every transaction completes, none fails`, { timeout: 300_000 }, async (t) => {
    const r = await pgbench(cluster.url, ['-S', '-M', mode, '-c', String(CLIENTS), '-j', '2', '-t', String(TRANSACTIONS), '--no-vacuum']);
    t.diagnostic(`-S -M ${mode}: ${r.processed}/${r.planned} transactions, ${r.failed} failed, ${r.tps} tps`);
    assert.equal(r.failed, 0, r.output);
    assert.equal(r.processed, CLIENTS * TRANSACTIONS, r.output);
    assert.equal(r.planned, CLIENTS * TRANSACTIONS, r.output);
  });

  test(`pgbench -N -M ${mode}: every transaction completes, none fails; PostgreSQL runs the same`, { timeout: 300_000 }, async (t) => {
    const seed = mode === 'simple' ? '1001' : '2002';
    const args = ['-N', '-M', mode, '-c', String(CLIENTS), '-j', '2', '-t', String(TRANSACTIONS), '--no-vacuum', `--random-seed=${seed}`];
    const r = await pgbench(cluster.url, args);
    t.diagnostic(`-N -M ${mode}: ${r.processed}/${r.planned} transactions, ${r.failed} failed, ${r.tps} tps`);
    assert.equal(r.failed, 0, r.output);
    assert.equal(r.processed, CLIENTS * TRANSACTIONS, r.output);
    const p = await pgbench(plain.url, args);
    assert.equal(p.processed, CLIENTS * TRANSACTIONS, p.output);
  });
}

test('balances: the sum over accounts equals the sum of history deltas, and equals PostgreSQL account by account', { timeout: 300_000 }, async (t) => {
  const sums = `SELECT (SELECT sum(abalance) FROM pgbench_accounts) AS accounts, (SELECT sum(delta) FROM pgbench_history) AS history,
                       (SELECT count(*) FROM pgbench_history) AS transactions,
                       (SELECT sum(bbalance) FROM pgbench_branches) AS branches, (SELECT sum(tbalance) FROM pgbench_tellers) AS tellers`;
  const w = (await weave.query(sums)).rows[0];
  const p = (await reference.query(sums)).rows[0];
  t.diagnostic(`pgweave: sum(abalance) ${w.accounts}, sum(delta) ${w.history} over ${w.transactions} history rows`);
  assert.equal(w.transactions, String(2 * CLIENTS * TRANSACTIONS), 'one history row per -N transaction');
  assert.equal(w.accounts, w.history);
  assert.deepEqual(w, p, 'the same totals as PostgreSQL fed the same transactions');

  const balances = 'SELECT aid, abalance FROM pgbench_accounts WHERE abalance <> 0 ORDER BY aid';
  const wb = (await weave.query(balances)).rows;
  const pb = (await reference.query(balances)).rows;
  t.diagnostic(`${wb.length} accounts changed`);
  assert.ok(wb.length > 0);
  assert.deepEqual(wb, pb, 'every account balance equals PostgreSQL’s');

  const history = 'SELECT tid, bid, aid, delta, count(*) FROM pgbench_history GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4';
  assert.deepEqual((await weave.query(history)).rows, (await reference.query(history)).rows, 'the same history rows (times aside)');
});

test('every row sits in the shard its hash selects', { timeout: 300_000 }, async (t) => {
  const shards = await weave.query(
    `SELECT s.logicalrelid::text AS rel, s.shardid, s.shardminvalue AS min, s.shardmaxvalue AS max, n.nodeport AS port
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
      WHERE s.logicalrelid IN ('pgbench_accounts'::regclass, 'pgbench_history'::regclass)
      ORDER BY 1, s.shardminvalue::int`,
  );
  assert.equal(shards.rows.length, 64);
  const workers = new Map<string, pg.Client>();
  try {
    for (const w of cluster.workers) workers.set(String(w.port), await textClient(nodeUrl(cluster, w.port)));
    const totals = new Map<string, number>();
    for (const s of shards.rows) {
      const worker = workers.get(s.port)!;
      const shard = `${s.rel}_${s.shardid}`;
      const onWorker = (await worker.query(`SELECT count(*) AS all, count(*) FILTER (WHERE hashint4(aid) NOT BETWEEN $1 AND $2) AS misplaced FROM ${shard}`, [s.min, s.max])).rows[0];
      assert.equal(onWorker.misplaced, '0', `${shard} holds rows outside its hash range`);
      const viaCoordinator = (await weave.query(`SELECT count(*) FROM ${s.rel} WHERE hashint4(aid) BETWEEN $1 AND $2`, [s.min, s.max])).rows[0].count;
      assert.equal(viaCoordinator, onWorker.all, `${shard}: the coordinator counts ${viaCoordinator} rows in its range, the worker holds ${onWorker.all}`);
      totals.set(s.rel, (totals.get(s.rel) ?? 0) + Number(onWorker.all));
    }
    assert.equal(totals.get('pgbench_accounts'), 100000 * SCALE);
    assert.equal(totals.get('pgbench_history'), 2 * CLIENTS * TRANSACTIONS);
    t.diagnostic(`64 shards checked on ${workers.size} workers: ${totals.get('pgbench_accounts')} accounts, ${totals.get('pgbench_history')} history rows`);
  } finally {
    for (const c of workers.values()) await c.end().catch(() => {});
  }
});
