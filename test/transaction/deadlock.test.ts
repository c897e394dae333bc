/**
 * Distributed deadlocks: two transactions lock a row each on different
 * workers, then each waits for the other's row — a cycle no single
 * PostgreSQL sees. The detector must cancel one of them (the younger) with
 * 40P01 within a few seconds; the other then commits. Also: a cycle between
 * a multi-shard UPDATE outside a block and a block, and citus_lock_waits()
 * showing the waits while they last.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { connect, sleep } from './support.js';

let cluster: TestCluster;
let admin: pg.Client;
/** Two keys whose shards live on different workers. */
let keyA: number;
let keyB: number;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  admin = await connect(cluster.url, 'deadlock-admin');
  for (const w of cluster.workers) await admin.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  await admin.query('CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)');
  await admin.query("SELECT create_distributed_table('items', 'id', shard_count => 4)");
  await admin.query('INSERT INTO items VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0)');
  const r = await admin.query(
    `SELECT k, n.nodeport AS port FROM generate_series(1, 8) k
       JOIN pg_dist_shard s ON s.logicalrelid = 'items'::regclass AND hashint4(k) BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int
       JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) ORDER BY k`,
  );
  const ports = r.rows.map((row) => [Number(row.k), Number(row.port)] as const);
  keyA = ports[0]![0];
  keyB = ports.find(([, p]) => p !== ports[0]![1])![0];
});

after(async () => {
  await admin?.end().catch(() => {});
  await cluster?.stop();
});

async function outcome(p: Promise<unknown>): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  try {
    await p;
    return { ok: true };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { ok: false, code: e.code ?? '?', message: e.message ?? '' };
  }
}

test('a deadlock across two workers: the younger transaction gets 40P01 within seconds, the other commits', async (t) => {
  const older = await connect(cluster.url, 'deadlock-older');
  const younger = await connect(cluster.url, 'deadlock-younger');
  try {
    await older.query('BEGIN');
    await older.query(`UPDATE items SET v = v + 1 WHERE id = ${keyA}`);
    await sleep(50); // the younger transaction starts later
    await younger.query('BEGIN');
    await younger.query(`UPDATE items SET v = v + 10 WHERE id = ${keyB}`);
    const started = Date.now();
    const olderWaits = outcome(older.query(`UPDATE items SET v = v + 1 WHERE id = ${keyB}`));
    await sleep(100);
    const youngerWaits = outcome(younger.query(`UPDATE items SET v = v + 10 WHERE id = ${keyA}`));

    // While both wait (until the detector acts), the waits are visible.
    let waits = await admin.query('SELECT * FROM citus_lock_waits()');
    for (let i = 0; i < 30 && waits.rows.length < 2; i++) {
      await sleep(20);
      waits = await admin.query('SELECT * FROM citus_lock_waits()');
    }
    t.diagnostic(`citus_lock_waits() during the deadlock: ${JSON.stringify(waits.rows)}`);

    const y = await youngerWaits;
    const elapsed = Date.now() - started;
    t.diagnostic(`victim cancelled after ${elapsed} ms: ${JSON.stringify(y)}`);
    assert.equal(y.ok, false);
    assert.equal((y as { code: string }).code, '40P01');
    assert.match((y as { message: string }).message, /distributed deadlock/);
    assert.ok(elapsed < 10_000, `cancelled after ${elapsed} ms`);
    assert.ok(waits.rows.length >= 1, JSON.stringify(waits.rows));
    assert.ok(waits.rows.every((r) => r.waiting_transaction !== null && r.blocking_transaction !== null), 'both sides are distributed transactions');

    // The victim's block is aborted, exactly as PostgreSQL's own victim's.
    await assert.rejects(younger.query('SELECT 1'), (err: { code?: string }) => err.code === '25P02');
    assert.equal((await younger.query('COMMIT')).command, 'ROLLBACK');

    assert.deepEqual(await olderWaits, { ok: true });
    assert.equal((await older.query('COMMIT')).command, 'COMMIT');
    const rows = await admin.query(`SELECT id, v FROM items WHERE id IN (${keyA}, ${keyB}) ORDER BY id`);
    assert.deepEqual(
      rows.rows.map((r) => [Number(r.id), Number(r.v)]),
      [[keyA, 1], [keyB, 1]].sort((a, b) => a[0]! - b[0]!),
    );
  } finally {
    await older.end().catch(() => {});
    await younger.end().catch(() => {});
  }
});

test('a multi-shard UPDATE outside a block can be part of a deadlock too', async (t) => {
  const block = await connect(cluster.url, 'deadlock-block');
  const statement = await connect(cluster.url, 'deadlock-statement');
  try {
    await admin.query('UPDATE items SET v = 0');
    // The statement is the younger: it begins after the block holds keyB.
    await block.query('BEGIN');
    await block.query(`UPDATE items SET v = v + 1 WHERE id = ${keyB}`);
    const holdA = await connect(cluster.url, 'deadlock-hold');
    await holdA.query('BEGIN');
    await holdA.query(`UPDATE items SET v = v + 100 WHERE id = ${keyA}`);
    // The multi-shard UPDATE waits on both nodes: for holdA on keyA's node, for the block on keyB's.
    const multi = outcome(statement.query(`UPDATE items SET v = v + 1000 WHERE id IN (${keyA}, ${keyB})`));
    await sleep(300);
    await holdA.query('ROLLBACK'); // now the statement holds keyA and still waits for keyB (the block's)
    await holdA.end();
    await sleep(200);
    const blockWaits = outcome(block.query(`UPDATE items SET v = v + 1 WHERE id = ${keyA}`));
    const [m, b] = await Promise.all([multi, blockWaits]);
    t.diagnostic(`statement: ${JSON.stringify(m)}, block: ${JSON.stringify(b)}`);
    const victims = [m, b].filter((x) => !x.ok);
    assert.equal(victims.length, 1);
    assert.equal((victims[0] as { code: string }).code, '40P01');
    if (b.ok) assert.equal((await block.query('COMMIT')).command, 'COMMIT');
    else await block.query('ROLLBACK');
  } finally {
    await block.end().catch(() => {});
    await statement.end().catch(() => {});
  }
});
