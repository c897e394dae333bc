/**
 * Interrupted moves on a real cluster. At every step a move is either
 * abandoned as if its coordinator process died (moveFaults + AbandonMove:
 * no cleanup runs, its connections close) or fails; a target worker is
 * restarted mid-copy; a background rebalance is stopped mid-move. Each time
 * the old placement keeps serving reads and writes, and after cleanup no
 * node has a replication slot, publication, subscription or orphan table.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { startPostgres, stopPostgres } from '../../src/cluster/postgres-server.js';
import { AbandonMove, moveFaults, type MoveStep } from '../../src/operations/move-shard.js';
import { call, type TestContext } from '../commands/command-context.js';
import { checkNoLeftovers, checkRowsByHash, placements, type OperationsCluster, startOperationsCluster } from './support.js';

let ops: OperationsCluster | undefined;
let cluster: TestCluster;
let t: TestContext;
let sql: pg.Client;
let rows = 0;

before(async () => {
  ops = await startOperationsCluster(2);
  ({ cluster, t, sql } = ops);
  await sql.query('CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL)');
  await sql.query('CREATE INDEX items_v ON items (v)');
  await sql.query("SELECT create_distributed_table('items', 'id', shard_count => 4)");
  await sql.query('INSERT INTO items SELECT g, 0 FROM generate_series(1, 2000) g');
  rows = 2000;
});

after(async () => {
  moveFaults.atStep = null;
  await ops?.stop();
});

async function firstShard() {
  const p = (await placements(t.ctx)).find((x) => x.table === 'items')!;
  const target = cluster.workers.find((w) => w.port !== p.port)!;
  return { p, target };
}

function moveArgs(p: { shardId: number; host: string; port: number }, target: { host: string; port: number }) {
  return [String(p.shardId), p.host, String(p.port), target.host, String(target.port)];
}

/** The cluster serves every row and accepts writes to every shard, and rows sit where their hash says. */
async function checkServing(): Promise<void> {
  await sql.query('INSERT INTO items SELECT g, 0 FROM generate_series($1::int + 1, $1::int + 20) g', [rows]);
  rows += 20;
  const updated = await sql.query('UPDATE items SET v = v + 1');
  assert.equal(updated.rowCount, rows, 'every row updated');
  const r = await sql.query('SELECT count(*)::int AS n FROM items');
  assert.equal(r.rows[0].n, rows);
  assert.equal(await checkRowsByHash(t.ctx, 'items'), rows);
}

/** Runs `fn` again (every 200 ms, up to 10 s) while it fails with SQLSTATE 40001. */
async function retryOnSerializationFailure(fn: () => Promise<void>): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== '40001' || Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

const STEPS: MoveStep[] = ['start', 'tables', 'publication', 'subscription', 'copied', 'indexes', 'caught-up', 'blocked'];

for (const step of STEPS) {
  test(`a move abandoned (process death) after '${step}' leaves the old placement serving; cleanup removes its leftovers`, async () => {
    const { p, target } = await firstShard();
    moveFaults.atStep = (s) => {
      if (s === step) throw new AbandonMove(`abandoned at ${s}`);
    };
    try {
      await assert.rejects(call(t.ctx, 'citus_move_shard_placement', moveArgs(p, target)), /abandoned at/);
    } finally {
      moveFaults.atStep = null;
    }
    assert.equal((await placements(t.ctx)).find((x) => x.shardId === p.shardId)!.port, p.port, 'still on the source');
    await checkServing();
    await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
    await checkNoLeftovers(t.ctx, cluster);
  });

  test(`a move failing after '${step}' rolls back and removes what it created`, async () => {
    const { p, target } = await firstShard();
    moveFaults.atStep = (s) => {
      if (s === step) throw new Error(`failed at ${s}`);
    };
    try {
      await assert.rejects(call(t.ctx, 'citus_move_shard_placement', moveArgs(p, target)), /failed at/);
    } finally {
      moveFaults.atStep = null;
    }
    assert.equal((await placements(t.ctx)).find((x) => x.shardId === p.shardId)!.port, p.port);
    await checkServing();
    // No cleanup call: the failed move removed its objects itself (old shards are not involved).
    await checkNoLeftovers(t.ctx, cluster);
  });
}

test('a move whose process dies right after the switch has moved; cleanup removes the rest', async () => {
  const { p, target } = await firstShard();
  moveFaults.atStep = (s) => {
    if (s === 'switched') throw new AbandonMove('abandoned after the switch');
  };
  try {
    await assert.rejects(call(t.ctx, 'citus_move_shard_placement', moveArgs(p, target)));
  } finally {
    moveFaults.atStep = null;
  }
  assert.equal((await placements(t.ctx)).find((x) => x.shardId === p.shardId)!.port, target.port, 'on the target');
  // The coordinator learns of a switch whose mover died from the switch notification (up to 2 s): until then a
  // write may still reach the old shard, which refuses it with 40001 — a serialization failure a client retries.
  await retryOnSerializationFailure(checkServing);
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test('old shards that cannot be made to refuse writes fail the move before the switch; the old placement keeps serving', async () => {
  const { p, target } = await firstShard();
  const source = t.ctx.pools.get(p.host, p.port, t.ctx.database);
  moveFaults.atStep = async (s) => {
    // Without the trigger function the shard-moved triggers cannot be created.
    if (s === 'blocked') await source.query('DROP FUNCTION pg_catalog.pgweave_shard_moved()');
  };
  try {
    await assert.rejects(call(t.ctx, 'citus_move_shard_placement', moveArgs(p, target)), /pgweave_shard_moved\(\) does not exist/);
  } finally {
    moveFaults.atStep = null;
  }
  assert.equal((await placements(t.ctx)).find((x) => x.shardId === p.shardId)!.port, p.port, 'still on the source');
  await checkServing();
  await checkNoLeftovers(t.ctx, cluster);
});

test('the target worker restarts during the copy: the move completes or rolls back, nothing is left', async () => {
  const { p, target } = await firstShard();
  const index = cluster.workers.indexOf(target);
  const dataDir = join(cluster.dir, 'nodes', `worker${index + 1}`);
  moveFaults.atStep = async (s) => {
    if (s !== 'subscription') return;
    await stopPostgres(dataDir, 'immediate');
    await startPostgres({ dataDir, port: target.port, superuserPassword: '' }, join(cluster.dir, 'log', `pg-worker${index + 1}.log`));
  };
  let outcome = 'moved';
  try {
    await call(t.ctx, 'citus_move_shard_placement', moveArgs(p, target));
  } catch {
    outcome = 'rolled back';
  } finally {
    moveFaults.atStep = null;
  }
  const now = (await placements(t.ctx)).find((x) => x.shardId === p.shardId)!.port;
  assert.equal(now, outcome === 'moved' ? target.port : p.port, outcome);
  await checkServing();
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test('citus_rebalance_stop stops a background rebalance mid-move; the moving shard stays where it was', async () => {
  const [w1, w2] = cluster.workers;
  // Everything on worker 1 first, so a rebalance has moves to make.
  for (const p of (await placements(t.ctx)).filter((x) => x.port === w2!.port)) {
    await call(t.ctx, 'citus_move_shard_placement', moveArgs(p, w1!));
  }
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let paused!: () => void;
  const reached = new Promise<void>((r) => (paused = r));
  moveFaults.atStep = async (s) => {
    if (s === 'copied') {
      paused();
      await gate;
    }
  };
  try {
    const job = await sql.query('SELECT citus_rebalance_start() AS id');
    assert.ok(job.rows[0].id);
    await reached;
    const progress = await sql.query('SELECT * FROM get_rebalance_progress()');
    const moving = progress.rows.filter((r) => r.status === 'running').map((r) => Number(r.shardid));
    assert.equal(moving.length, 1);
    await sql.query('SELECT citus_rebalance_stop()');
    release();
    await sql.query('SELECT citus_rebalance_wait()');
    const status = await sql.query('SELECT state FROM citus_rebalance_status()');
    assert.equal(status.rows[0].state, 'cancelled');
    assert.equal((await placements(t.ctx)).find((x) => x.shardId === moving[0])!.port, w1!.port);
  } finally {
    moveFaults.atStep = null;
    release();
  }
  await checkServing();
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});
