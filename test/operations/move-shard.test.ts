/**
 * citus_move_shard_placement over logical replication, on a real 3-worker
 * cluster: a shard group moves while a writer inserts and updates through
 * the coordinator and a reader counts — nothing lost, no error, rows where
 * their hash says, nothing left behind; block_writes mode; the replica
 * identity rule; Citus's errors; superusers only.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { PgError } from '../../src/protocol/errors.js';
import { call, makeContext, onNode, type TestContext } from '../commands/command-context.js';
import { moveFaults } from '../../src/operations/move-shard.js';
import { currentLsn } from '../../src/operations/logical-copy.js';
import { cleanupOrphanedResources } from '../../src/operations/cleanup.js';
import { checkNoLeftovers, checkRowsByHash, loadRows, placements, Workload, type OperationsCluster, startOperationsCluster } from './support.js';

let ops: OperationsCluster | undefined;
let cluster: TestCluster;
let t: TestContext;
let sql: pg.Client;

before(async () => {
  ops = await startOperationsCluster(3);
  ({ cluster, t, sql } = ops);
});

after(async () => {
  await ops?.stop();
});

test('a shard group moves while a writer and a reader run: nothing lost, no errors, rows where their hash says', async (ctx) => {
  await sql.query('CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL)');
  await sql.query('CREATE TABLE item_notes (id bigint PRIMARY KEY, v int, note text)');
  await sql.query("SELECT create_distributed_table('items', 'id', shard_count => 4)");
  await sql.query("SELECT create_distributed_table('item_notes', 'id', colocate_with => 'items')");
  await sql.query('CREATE INDEX items_v ON items (v)');
  const expected = await loadRows(cluster.url, 'items', 3000);
  const work = new Workload(cluster.url, 'items', 3001);
  for (const [k, v] of expected) work.expected.set(k, v);
  await work.start();
  const [w1, , w3] = cluster.workers;
  const before = (await placements(t.ctx)).filter((p) => p.port === w1!.port && p.table === 'items');
  await new Promise((r) => setTimeout(r, 300));
  let last = Date.now();
  moveFaults.atStep = (step) => {
    ctx.diagnostic(`step ${step} after ${Date.now() - last} ms`);
    last = Date.now();
  };
  for (const p of before) {
    await call(t.ctx, 'citus_move_shard_placement', [String(p.shardId), w1!.host, String(w1!.port), w3!.host, String(w3!.port)]);
  }
  moveFaults.atStep = null;
  await new Promise((r) => setTimeout(r, 300));
  const report = await work.stop();
  ctx.diagnostic(`writes: ${report.inserts} inserts, ${report.updates} updates; longest write ${report.longestWriteMs} ms; reads ${report.reads}`);
  assert.deepEqual(report.errors, []);
  assert.deepEqual(report.readErrors, []);
  assert.ok(report.inserts > 0 && report.reads > 0);
  await work.verify();

  const after = await placements(t.ctx);
  assert.equal(after.filter((p) => p.port === w1!.port).length, 0, 'nothing left on the source');
  const movedRanges = new Set(before.map((p) => p.min));
  const group = after.filter((p) => movedRanges.has(p.min));
  assert.equal(group.length, before.length * 2);
  assert.ok(group.every((p) => p.port === w3!.port), 'co-located shards moved along');
  assert.equal(await checkRowsByHash(t.ctx, 'items'), work.expected.size);
  // The index came along, renamed for the shard.
  for (const p of before) {
    const idx = await onNode(t.ctx, w3!, `SELECT count(*) FROM pg_indexes WHERE indexname = 'items_v_${p.shardId}'`);
    assert.equal(idx.rows[0]![0], '1', `index of shard ${p.shardId}`);
  }
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test("the cutover's WAL position covers asynchronously committed writes, flushed for the walsender", async () => {
  // A logical walsender sends only flushed WAL; under synchronous_commit = off a commit
  // record waits in the WAL buffers for the WAL writer (here: 10 s), below the written position.
  const node = cluster.workers[1]!;
  const pool = t.ctx.pools.get(node.host, node.port, t.ctx.database);
  await pool.query("ALTER SYSTEM SET wal_writer_delay = '10s'");
  await pool.query('SELECT pg_reload_conf()');
  try {
    await pool.query('CREATE TABLE lsn_probe (v int)');
    await new Promise((r) => setTimeout(r, 500)); // the WAL writer takes the new delay after its current sleep
    for (let i = 0; i < 3; i++) {
      const committed = await pool.withClient(async (c) => {
        await c.query('SET synchronous_commit = off');
        await c.query(`INSERT INTO lsn_probe VALUES (${i})`);
        const r = await c.query('SELECT pg_catalog.pg_current_wal_insert_lsn()::text');
        await c.query('RESET synchronous_commit');
        return r.rows[0]![0]!;
      });
      const lsn = await currentLsn(pool);
      const r = await pool.query('SELECT $1::pg_lsn >= $2::pg_lsn, pg_catalog.pg_current_wal_flush_lsn() >= $1::pg_lsn', [lsn, committed]);
      assert.deepEqual(r.rows[0], ['t', 't'], `position ${lsn}, commit before ${committed}`);
    }
  } finally {
    await pool.query('DROP TABLE IF EXISTS lsn_probe');
    await pool.query('ALTER SYSTEM RESET wal_writer_delay');
    await pool.query('SELECT pg_reload_conf()');
  }
});

test('old shards stay for statements planned before the switch; a move back drops them at once', async () => {
  const [p] = (await placements(t.ctx)).filter((x) => x.table === 'items');
  const other = cluster.workers.find((w) => w.port !== p!.port)!;
  const notes = (await placements(t.ctx)).find((x) => x.table === 'item_notes' && x.min === p!.min)!;
  const oldTables = () => onNode(t.ctx, p!, `SELECT relname FROM pg_class WHERE relname IN ('items_${p!.shardId}', 'item_notes_${notes.shardId}') ORDER BY 1`);
  await call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), p!.host, String(p!.port), other.host, String(other.port)]);
  // Automatic cleanup leaves old shards younger than its delay.
  await cleanupOrphanedResources(t.ctx, { afterMs: 3_600_000 });
  assert.deepEqual((await oldTables()).rows, [['item_notes_' + notes.shardId], ['items_' + p!.shardId]]);
  // Moving the group back to that node needs the names: the move drops them first.
  await call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), other.host, String(other.port), p!.host, String(p!.port)]);
  assert.equal((await placements(t.ctx)).find((x) => x.shardId === p!.shardId)!.port, p!.port);
  assert.equal(await checkRowsByHash(t.ctx, 'items'), (await sql.query('SELECT count(*)::int AS n FROM items')).rows[0].n);
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test('a table without a replica identity moves only with block_writes (or force_logical)', async () => {
  await sql.query('CREATE TABLE plain (id bigint, v int)');
  await sql.query("SELECT create_distributed_table('plain', 'id', shard_count => 2, colocate_with => 'none')");
  await sql.query('INSERT INTO plain SELECT g, g FROM generate_series(1, 500) g');
  const [p] = await placements(t.ctx).then((ps) => ps.filter((x) => x.table === 'plain'));
  const target = cluster.workers.find((w) => w.port !== p!.port)!;
  await assert.rejects(call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), p!.host, String(p!.port), target.host, String(target.port)]), (err: unknown) => {
    assert.ok(err instanceof PgError);
    assert.match(err.message, /cannot use logical replication to transfer shards of the relation plain since it doesn't have a REPLICA IDENTITY or PRIMARY KEY/);
    return true;
  });
  await call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), p!.host, String(p!.port), target.host, String(target.port)], { shard_transfer_mode: 'block_writes' });
  const moved = (await placements(t.ctx)).find((x) => x.shardId === p!.shardId)!;
  assert.equal(moved.port, target.port);
  assert.equal(await checkRowsByHash(t.ctx, 'plain'), 500);
  assert.deepEqual((await sql.query('SELECT count(*)::int AS n, sum(v)::int AS s FROM plain')).rows, [{ n: 500, s: 125250 }]);
  await sql.query('UPDATE plain SET v = v + 1 WHERE id = 7');
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test("Citus's errors: same node, missing placement, unknown node, reference tables, non-superusers", async () => {
  const [p] = (await placements(t.ctx)).filter((x) => x.table === 'items');
  const other = cluster.workers.find((w) => w.port !== p!.port)!;
  const err = (code: string, re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof PgError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  };
  await assert.rejects(call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), p!.host, String(p!.port), p!.host, String(p!.port)]), err('22023', /same node/));
  await assert.rejects(call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), other.host, String(other.port), p!.host, String(p!.port)]), err('XX000', /could not find placement matching/));
  await assert.rejects(call(t.ctx, 'citus_move_shard_placement', [String(p!.shardId), p!.host, String(p!.port), 'nowhere', '1']), err('22023', /node at "nowhere:1" does not exist/));
  await sql.query('CREATE TABLE codes (code text PRIMARY KEY)');
  await sql.query("SELECT create_reference_table('codes')");
  const ref = await sql.query("SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'codes'::regclass");
  await assert.rejects(call(t.ctx, 'citus_move_shard_placement', [String(ref.rows[0].shardid), p!.host, String(p!.port), other.host, String(other.port)]), err('0A000', /reference table/));
  await sql.query("CREATE ROLE mover LOGIN PASSWORD 'pw'");
  const plain = await makeContext(cluster, { user: 'mover', password: 'pw' });
  try {
    await assert.rejects(call(plain.ctx, 'citus_move_shard_placement', [String(p!.shardId), p!.host, String(p!.port), other.host, String(other.port)]), err('42501', /permission denied for function citus_move_shard_placement/));
  } finally {
    plain.close();
  }
  // The node-id form, through SQL.
  const ids = await sql.query('SELECT nodeid, nodeport FROM pg_dist_node');
  const idOf = (port: number) => String(ids.rows.find((r) => Number(r.nodeport) === port).nodeid);
  await sql.query('SELECT citus_move_shard_placement($1, $2, $3)', [String(p!.shardId), idOf(p!.port), idOf(other.port)]);
  assert.equal((await placements(t.ctx)).find((x) => x.shardId === p!.shardId)!.port, other.port);
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});
