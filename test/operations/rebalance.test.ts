/**
 * Growing and shrinking a loaded cluster while the application writes: a
 * third worker joins and citus_rebalance_start spreads the shard groups onto
 * it in the background (status and progress visible from a session) while a
 * writer inserts and updates and a reader counts; then the node is drained
 * and removed. Zero lost writes, zero errors, even shards, every row where
 * its hash says, nothing left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestCluster } from '../helpers/cluster.js';
import { PgError } from '../../src/protocol/errors.js';
import { call, type TestContext } from '../commands/command-context.js';
import { checkNoLeftovers, checkRowsByHash, loadRows, placements, Workload, type OperationsCluster, startOperationsCluster } from './support.js';

const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));
let ops: OperationsCluster | undefined;
let cluster: TestCluster;
let t: TestContext;
let sql: pg.Client;

before(async () => {
  ops = await startOperationsCluster(3, 2);
  ({ cluster, t, sql } = ops);
  await sql.query('CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL)');
  await sql.query('CREATE TABLE events (id bigint, seq int, PRIMARY KEY (id, seq))');
  await sql.query("CREATE TABLE kinds (k int PRIMARY KEY); INSERT INTO kinds VALUES (1), (2)");
  await sql.query("SELECT create_reference_table('kinds')");
  await sql.query("SELECT create_distributed_table('items', 'id', shard_count => 8)");
  await sql.query("SELECT create_distributed_table('events', 'id', colocate_with => 'items')");
  await loadRows(cluster.url, 'items', 20000);
  await sql.query('INSERT INTO events SELECT g % 1000, g FROM generate_series(1, 10000) g');
});

after(async () => {
  await ops?.stop();
});

function countsByPort(ps: Array<{ port: number; table: string }>, table: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of ps) if (p.table === table) m.set(p.port, (m.get(p.port) ?? 0) + 1);
  return m;
}

test('a third worker joins and a background rebalance spreads shards while writes and reads go on', async (ctx) => {
  const work = new Workload(cluster.url, 'items', 20001);
  for (let i = 1; i <= 20000; i++) work.expected.set(i, 0);
  await work.start();
  const w3 = cluster.workers[2]!;
  await sql.query('SELECT citus_add_node($1, $2)', [w3.host, w3.port]);
  const plan = await sql.query('SELECT * FROM get_rebalance_table_shards_plan()');
  assert.ok(plan.rows.length >= 2, 'the plan moves shard groups onto the new node');
  assert.ok(plan.rows.every((r) => Number(r.targetport) === w3.port));

  const job = await sql.query('SELECT citus_rebalance_start() AS id');
  assert.ok(Number(job.rows[0].id) > 0);
  // Progress and status are visible from another session while the job runs.
  const watcher = new pg.Client({ connectionString: cluster.url });
  await watcher.connect();
  let sawRunning = false;
  for (let i = 0; i < 600; i++) {
    const status = await watcher.query('SELECT state, details FROM citus_rebalance_status()');
    if (status.rows[0].state === 'running') sawRunning = true;
    if (status.rows[0].state !== 'running') break;
    const progress = await watcher.query('SELECT shardid, progress, status FROM get_rebalance_progress()');
    assert.equal(progress.rows.length, plan.rows.length);
    await new Promise((r) => setTimeout(r, 100));
  }
  await watcher.query('SELECT citus_rebalance_wait()');
  await watcher.end();
  assert.ok(sawRunning);
  const status = await sql.query('SELECT state, details FROM citus_rebalance_status()');
  assert.equal(status.rows[0].state, 'finished');
  const longestBlockedMs = JSON.parse(status.rows[0].details).longest_blocked_ms;
  assert.equal(typeof longestBlockedMs, 'number', 'the job reports how long writes were blocked at its cutovers');
  const progress = await sql.query('SELECT progress FROM get_rebalance_progress()');
  assert.ok(progress.rows.every((r) => Number(r.progress) === 2));

  await new Promise((r) => setTimeout(r, 300));
  const report = await work.stop();
  ctx.diagnostic(
    `writes during rebalance: ${report.inserts} inserts, ${report.updates} updates, ${report.reads} reads; ` +
      `writes blocked at a cutover at most ${longestBlockedMs} ms (job); longest write seen by the writer ${report.longestWriteMs} ms`,
  );
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.readErrors, []);
  await work.verify();

  const ps = await placements(t.ctx);
  for (const table of ['items', 'events']) {
    const counts = [...countsByPort(ps, table).values()].sort();
    assert.deepEqual(counts, [2, 3, 3], `${table} spread evenly`);
  }
  // Co-located shards stayed together.
  const byRange = new Map<number, Set<number>>();
  for (const p of ps) byRange.set(p.min, (byRange.get(p.min) ?? new Set()).add(p.port));
  for (const ports of byRange.values()) assert.equal(ports.size, 1);
  assert.equal(await checkRowsByHash(t.ctx, 'items'), work.expected.size);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 10000);
  assert.deepEqual((await sql.query('SELECT * FROM get_rebalance_table_shards_plan()')).rows, []);
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test('a node is drained and removed; citus_remove_node refuses before', async () => {
  const w3 = cluster.workers[2]!;
  await assert.rejects(call(t.ctx, 'citus_remove_node', [w3.host, String(w3.port)]), (err: unknown) => {
    assert.ok(err instanceof PgError);
    assert.match(err.message, /cannot remove or disable the node .* because because it contains the only shard placement for shard \d+/);
    return true;
  });
  await sql.query('SELECT citus_drain_node($1, $2)', [w3.host, w3.port]);
  const ps = await placements(t.ctx);
  assert.equal(ps.filter((p) => p.port === w3.port).length, 0);
  const shouldHave = await sql.query('SELECT shouldhaveshards FROM pg_dist_node WHERE nodeport = $1', [w3.port]);
  assert.equal(shouldHave.rows[0].shouldhaveshards, false);
  await sql.query('SELECT citus_remove_node($1, $2)', [w3.host, w3.port]);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 10000);
  assert.deepEqual((await sql.query('SELECT count(*)::int AS n FROM items')).rows, [{ n: await checkRowsByHash(t.ctx, 'items') }]);
  assert.deepEqual((await sql.query('SELECT count(*)::int AS n FROM kinds')).rows, [{ n: 2 }]);
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  const remaining = cluster.workers.slice(0, 2);
  await checkNoLeftovers(t.ctx, { ...cluster, workers: remaining });
});

test('rebalance_table_shards by_disk_size evens out sizes; unknown strategies are refused', async () => {
  await assert.rejects(sql.query("SELECT rebalance_table_shards(rebalance_strategy => 'by_magic')"), /could not find rebalance strategy with name by_magic/);
  // Make one node heavy: its shards get many more rows.
  const ps = await placements(t.ctx);
  const heavyPort = ps.find((p) => p.table === 'items')!.port;
  await sql.query(`INSERT INTO events SELECT g, s FROM generate_series(1, 4000) g, generate_series(20000, 20010) s`);
  const planBefore = await sql.query("SELECT * FROM get_rebalance_table_shards_plan(rebalance_strategy => 'by_disk_size')");
  await sql.query("SELECT rebalance_table_shards(rebalance_strategy => 'by_disk_size')");
  assert.deepEqual((await sql.query("SELECT * FROM get_rebalance_table_shards_plan(rebalance_strategy => 'by_disk_size')")).rows, []);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 10000 + 4000 * 11);
  void heavyPort;
  void planBefore;
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, { ...cluster, workers: cluster.workers.slice(0, 2) });
});

test('pgweave rebalance drains with a progress bar, then finds nothing to move', async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'rebalance', '--url', cluster.url, ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
    });
  const [w1, w2] = cluster.workers;
  await sql.query("SELECT citus_set_node_property($1, $2, 'shouldhaveshards', false)", [w2!.host, w2!.port]);
  const plan = await run(['--plan', '--drain-only']);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /-> 127\.0\.0\.1:\d+/);
  const drained = await run(['--drain-only']);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stderr, /\[#+-*\] \d+\/\d+ shard groups/);
  assert.match(drained.stdout, /rebalance job \d+: finished/);
  assert.ok((await placements(t.ctx)).every((p) => p.port === w1!.port));
  await sql.query("SELECT citus_set_node_property($1, $2, 'shouldhaveshards', true)", [w2!.host, w2!.port]);
  const balanced = await run([]);
  assert.equal(balanced.code, 0, balanced.stderr);
  const again = await run([]);
  assert.match(again.stdout, /the cluster is balanced: nothing to move/);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 10000 + 4000 * 11);
});
