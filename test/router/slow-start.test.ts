/**
 * Citus-style slow start for multi-shard task lists (executor/slow-start.ts):
 * a node's shard tasks start on one connection and, while tasks wait, more
 * connections join — capped by citus.max_adaptive_executor_pool_size, all at
 * once with citus.force_max_query_parallelization.
 *
 * Which connection served a task is read from the task itself
 * (pg_backend_pid() in the result rows), so no test depends on timing: the
 * tasks sleep long enough that a node's first connection cannot run them
 * all before the second one is up, and the assertions are about which
 * backends answered (more than one per node; never more than the cap; in a
 * transaction block, a shard group always on the same backend).
 *
 * Transaction blocks: the block's extra connections join it; its writes over
 * several connections roll back or commit completely (two-phase commit
 * across the connections), and a router statement in the block reads the
 * writes an extra connection made (connection–shard affinity).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, nodeOfKeys, nodeUrl, textClient } from './support.js';

let cluster: TestCluster;
let c: pg.Client;
const KEYS = Array.from({ length: 64 }, (_, i) => i + 1);
/** Worker port of each key's shard. */
let portOf: Map<number, number>;
const SLOW = `pg_sleep(0.05)::text = ''`;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query(`CREATE TABLE items (k bigint NOT NULL PRIMARY KEY, v int NOT NULL)`);
  await c.query(`SELECT create_distributed_table('items', 'k', shard_count => 16)`);
  await c.query(`INSERT INTO items (k, v) VALUES ${KEYS.map((k) => `(${k}, 0)`).join(', ')}`);
  portOf = await nodeOfKeys(c, 'items', KEYS);
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

/** Distinct backend pids per worker port, from rows (k, pid). */
function backendsPerNode(rows: Array<{ k: string; pid: string }>): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  for (const r of rows) {
    const port = portOf.get(Number(r.k))!;
    const set = out.get(port) ?? new Set<string>();
    set.add(r.pid);
    out.set(port, set);
  }
  return out;
}

function describe(m: Map<number, Set<string>>): string {
  return [...m].map(([port, pids]) => `${port}: ${pids.size}`).join(', ');
}

async function values(): Promise<number[]> {
  const s = await textClient(cluster.url);
  try {
    const r = await s.query(`SELECT k, v FROM items`);
    return r.rows.sort((a, b) => Number(a.k) - Number(b.k)).map((row) => Number(row.v));
  } finally {
    await s.end();
  }
}

async function preparedOnWorkers(): Promise<number> {
  let n = 0;
  for (const w of cluster.workers) {
    const d = await textClient(nodeUrl(cluster, w.port));
    n += Number((await d.query('SELECT count(*) AS n FROM pg_prepared_xacts')).rows[0].n);
    await d.end();
  }
  return n;
}

test('a slow multi-shard read is served by more than one connection per node', async (t) => {
  const r = await c.query(`SELECT k, pg_backend_pid() AS pid FROM items WHERE ${SLOW}`);
  assert.equal(r.rows.length, KEYS.length);
  const per = backendsPerNode(r.rows);
  t.diagnostic(`backends per worker: ${describe(per)}`);
  assert.equal(per.size, 2);
  for (const [port, pids] of per) {
    assert.ok(pids.size > 1, `worker ${port}: ${pids.size} connection(s) served 8 slow tasks`);
    assert.ok(pids.size <= 8);
  }
});

test('citus.max_adaptive_executor_pool_size caps the connections per node; SET takes effect', async (t) => {
  const s = await textClient(cluster.url);
  try {
    await s.query('SET citus.max_adaptive_executor_pool_size = 1');
    const one = backendsPerNode((await s.query(`SELECT k, pg_backend_pid() AS pid FROM items WHERE ${SLOW}`)).rows);
    await s.query('SET citus.max_adaptive_executor_pool_size = 2');
    const two = backendsPerNode((await s.query(`SELECT k, pg_backend_pid() AS pid FROM items WHERE ${SLOW}`)).rows);
    t.diagnostic(`pool size 1: ${describe(one)}; pool size 2: ${describe(two)}`);
    for (const pids of one.values()) assert.equal(pids.size, 1);
    for (const pids of two.values()) assert.ok(pids.size <= 2);
  } finally {
    await s.end();
  }
});

test('citus.force_max_query_parallelization opens the connections at once; a failing write leaves nothing', async (t) => {
  const s = await textClient(cluster.url);
  try {
    await s.query(`SET citus.force_max_query_parallelization = on`);
    const read = backendsPerNode((await s.query(`SELECT k, pg_backend_pid() AS pid FROM items WHERE ${SLOW}`)).rows);
    t.diagnostic(`forced: ${describe(read)}`);
    for (const pids of read.values()) assert.ok(pids.size > 1);
    // A write outside a block over several connections: all or nothing.
    const before = await values();
    await assert.rejects(s.query(`UPDATE items SET v = v + 1 / (CASE WHEN k = 7 THEN 0 ELSE 1 END)`), (err: { code?: string }) => err.code === '22012');
    assert.deepEqual(await values(), before, 'a failed multi-connection write changed nothing');
    const ok = await s.query(`UPDATE items SET v = v + 1 RETURNING k, pg_backend_pid() AS pid`);
    assert.equal(ok.rowCount, KEYS.length);
    t.diagnostic(`forced write: ${describe(backendsPerNode(ok.rows))}`);
    assert.deepEqual(await values(), before.map((v) => v + 1));
    assert.equal(await preparedOnWorkers(), 0);
  } finally {
    await s.end();
  }
});

for (const end of ['ROLLBACK', 'COMMIT'] as const) {
  test(`in a block: extra connections keep their shard groups, and ${end} ends the writes of all of them`, async (t) => {
    const s = await textClient(cluster.url);
    const before = await values();
    try {
      await s.query('BEGIN');
      const read = backendsPerNode((await s.query(`SELECT k, pg_backend_pid() AS pid FROM items WHERE ${SLOW}`)).rows);
      const write = await s.query(`UPDATE items SET v = v + 10 RETURNING k, pg_backend_pid() AS pid`);
      assert.equal(write.rowCount, KEYS.length);
      const wrote = backendsPerNode(write.rows);
      t.diagnostic(`read: ${describe(read)}; write: ${describe(wrote)}`);
      for (const [port, pids] of read) {
        assert.ok(pids.size > 1, `worker ${port}: one connection only`);
        assert.deepEqual([...wrote.get(port)!].sort(), [...pids].sort(), 'each shard group is written on the connection that read it');
      }
      // Router statements in the block see the writes, whichever connection made them.
      for (const k of KEYS) {
        const r = await s.query({ text: 'SELECT v FROM items WHERE k = $1', values: [k] });
        assert.equal(Number(r.rows[0].v), before[k - 1]! + 10, `key ${k} reads its own write`);
      }
      await s.query(end);
    } finally {
      await s.query('ROLLBACK').catch(() => {});
      await s.end();
    }
    assert.deepEqual(await values(), end === 'COMMIT' ? before.map((v) => v + 10) : before);
    assert.equal(await preparedOnWorkers(), 0);
  });
}

test('a REPEATABLE READ block: extra connections read with the block\'s snapshot', async (t) => {
  const s = await textClient(cluster.url);
  const other = await textClient(cluster.url);
  const before = await values();
  try {
    await s.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await s.query('SELECT v FROM items WHERE k = 1');
    await other.query('UPDATE items SET v = v + 100');
    const r = await s.query(`SELECT k, v, pg_backend_pid() AS pid FROM items WHERE ${SLOW}`);
    const per = backendsPerNode(r.rows);
    t.diagnostic(`backends per worker: ${describe(per)}`);
    for (const pids of per.values()) assert.ok(pids.size > 1);
    const seen = r.rows.sort((a, b) => Number(a.k) - Number(b.k)).map((row) => Number(row.v));
    assert.deepEqual(seen, before, 'every connection of the block reads the snapshot the block took before the update');
    await s.query('COMMIT');
  } finally {
    await s.query('ROLLBACK').catch(() => {});
    await s.end();
    await other.end();
  }
  assert.deepEqual(await values(), before.map((v) => v + 100));
});

test('sessions that end right after multi-shard reads never hand a closing connection to another session', { timeout: 120_000 }, async (t) => {
  // A multi-shard read ends its per-node transactions with a COMMIT whose reply may still be on
  // its way when the client (here: at once) terminates; the session's close must not let that
  // reply pool a connection whose Terminate follows. Router clients take pooled connections all
  // the time and must never see one of them go.
  const routers = await Promise.all([0, 1, 2].map(() => textClient(cluster.url)));
  let stop = false;
  const errors: string[] = [];
  let statements = 0;
  const load = routers.map(async (r, j) => {
    for (let i = j; !stop; i++) {
      try {
        await r.query({ text: 'SELECT v FROM items WHERE k = $1', values: [KEYS[i % KEYS.length]] });
        statements++;
      } catch (err) {
        errors.push(`${(err as { code?: string }).code}: ${(err as Error).message}`);
      }
    }
  });
  // Each ending session writes keys of its own (no lock waits between them).
  const enders = [0, 1, 2].map(async (j) => {
    for (let i = 0; i < 25; i++) {
      const s = await textClient(cluster.url);
      try {
        await s.query('SELECT k, v FROM items');
        await s.query(`UPDATE items SET v = v WHERE k IN (${KEYS.slice(j * 8, j * 8 + 8).join(', ')})`);
        await s.query('SELECT k, v FROM items');
      } catch (err) {
        errors.push(`${(err as { code?: string }).code}: ${(err as Error).message}`);
      } finally {
        await s.end();
      }
    }
  });
  try {
    await Promise.all(enders);
  } finally {
    stop = true;
    await Promise.all(load);
    for (const r of routers) await r.end().catch(() => {});
  }
  t.diagnostic(`router statements meanwhile: ${statements}, errors: ${errors.length}${errors[0] ? ` (first: ${errors[0]})` : ''}`);
  assert.deepEqual(errors, []);
});

test('no connection is left behind: the pool takes the extra connections back', async () => {
  const d = await textClient(nodeUrl(cluster, cluster.workers[0]!.port));
  try {
    // Every session is closed or idle: no backend of the coordinator's is inside a transaction.
    const r = await d.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pgweave' AND state <> 'idle'`);
    assert.equal(r.rows[0].n, '0');
  } finally {
    await d.end();
  }
});
