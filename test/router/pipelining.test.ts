/**
 * Pipelined worker connections (src/executor/pipelined-channel.ts):
 * autocommit router statements of many sessions share one connection per
 * (worker, database, role), each request with its own Sync.
 *
 * The coordinator here has one channel per worker and a stall limit far
 * beyond any test (so no statement falls back to a connection of its own
 * because the machine is slow). Every statement returns the worker
 * backend's pid: sessions served by the channel report the same pid.
 *
 * Shown: many concurrent sessions (simple and extended protocol) answered
 * correctly through one worker backend; an error in one session's request
 * leaves the others' requests on the same channel untouched; sessions
 * with SETs or in a block keep their own connections (their state never
 * reaches the shared backend); a worker
 * stopped while requests wait on the channel gives each affected client a
 * class-08 error, and later statements work once it is back; a cancel
 * never reaches another session's statement — sent only while nothing of
 * another session is queued on the channel.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { nodeServerOptions, startPostgres, stopPostgres } from '../../src/cluster/index.js';
import { sendCancel } from '../server/raw-protocol.js';
import { addWorkers, clusterState, nodeOfKeys, nodeUrl, textClient, workerByPort } from './support.js';

let cluster: TestCluster;
let admin: pg.Client;
const clients: pg.Client[] = [];
/** Keys whose shards are on the first worker. */
let keys: number[] = [];

before(async () => {
  cluster = await startTestCluster({ workers: 2, coordinator: { pipelineChannels: 1, pipelineStallMs: 600_000 } });
  admin = await textClient(cluster.url);
  await addWorkers(admin, cluster);
  await admin.query('CREATE TABLE items (k bigint PRIMARY KEY, v int NOT NULL)');
  await admin.query(`SELECT create_distributed_table('items', 'k', shard_count => 4)`);
  const all = Array.from({ length: 60 }, (_, i) => i + 1);
  await admin.query(`INSERT INTO items SELECT k, k * 10 FROM generate_series(1, 60) k`);
  const nodes = await nodeOfKeys(admin, 'items', all);
  keys = all.filter((k) => nodes.get(k) === cluster.workers[0]!.port).slice(0, 16);
  assert.equal(keys.length, 16, 'sixteen keys on the first worker');
  for (let i = 0; i < 16; i++) clients.push(await textClient(cluster.url));
});

after(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await admin?.end().catch(() => {});
  await cluster?.stop();
});

/** Session i reads its own key: [pid, v]; odd sessions use the extended protocol. */
async function read(i: number): Promise<{ pid: string; v: string }> {
  const k = keys[i]!;
  const r = i % 2 === 1
    ? await clients[i]!.query({ text: 'SELECT pg_backend_pid() AS pid, v FROM items WHERE k = $1', values: [k], ...(i % 4 === 1 ? { name: 'read' } : {}) })
    : await clients[i]!.query(`SELECT pg_backend_pid() AS pid, v FROM items WHERE k = ${k}`);
  assert.equal(r.rows.length, 1);
  const row = r.rows[0] as { pid: string; v: string };
  assert.equal(row.v, String(k * 10), `session ${i} reads its own row`);
  return row;
}

/** Rounds of all sessions at once until one round is served by a single backend (the channel is open). */
async function untilPipelined(): Promise<string> {
  for (let round = 0; round < 200; round++) {
    const rows = await Promise.all(clients.map((_, i) => read(i)));
    const pids = new Set(rows.map((r) => r.pid));
    if (pids.size === 1) return rows[0]!.pid;
  }
  assert.fail('the sessions were never served by one pipelined worker connection');
}

test('sixteen sessions, simple and extended protocol, are served correctly through one worker connection', async () => {
  const pid = await untilPipelined();
  const seen = new Set<string>();
  for (let round = 0; round < 10; round++) {
    const rows = await Promise.all(clients.map((_, i) => read(i)));
    for (const r of rows) seen.add(r.pid);
  }
  assert.deepEqual([...seen], [pid], 'every statement ran on the one pipelined backend');
  // Autocommit writes go the same way, each committed on its own.
  await Promise.all(clients.map((c, i) => c.query({ text: 'UPDATE items SET v = v + 1 WHERE k = $1', values: [keys[i]] })));
  const r = await admin.query(`SELECT sum(v)::text AS s FROM items WHERE k = ANY($1)`, [keys]);
  assert.equal((r.rows[0] as { s: string }).s, String(keys.reduce((a, k) => a + k * 10 + 1, 0)));
  await Promise.all(clients.map((c, i) => c.query({ text: 'UPDATE items SET v = v - 1 WHERE k = $1', values: [keys[i]] })));
});

test('an error in one session’s pipelined statement leaves the other sessions’ statements alone', async () => {
  const pid = await untilPipelined();
  const outcomes = await Promise.allSettled(
    clients.map((c, i) =>
      i === 5
        ? c.query({ text: 'SELECT pg_backend_pid() AS pid, 1 / (v - v) AS boom FROM items WHERE k = $1', values: [keys[i]] })
        : i === 6
          ? c.query(`SELECT pg_backend_pid() AS pid, 1 / (v - v) AS boom FROM items WHERE k = ${keys[i]}`)
          : read(i),
    ),
  );
  for (const [i, o] of outcomes.entries()) {
    if (i === 5 || i === 6) {
      assert.equal(o.status, 'rejected');
      assert.equal((o as PromiseRejectedResult).reason.code, '22012', `session ${i}: division by zero`);
    } else {
      assert.equal(o.status, 'fulfilled', `session ${i}: ${(o as PromiseRejectedResult).reason?.message}`);
      assert.equal((o as PromiseFulfilledResult<{ pid: string }>).value.pid, pid, `session ${i} shared the channel`);
    }
  }
  // The failed sessions go on.
  assert.equal((await read(5)).pid, pid);
  assert.equal((await read(6)).pid, pid);
});

test('sessions with SETs or in a transaction block keep connections of their own (nothing of theirs lands on the channel)', async () => {
  const pid = await untilPipelined();
  const pidOf = async (c: pg.Client, k: number) => ((await c.query(`SELECT pg_backend_pid() AS pid FROM items WHERE k = ${k}`)).rows[0] as { pid: string }).pid;
  const withSet = await textClient(cluster.url);
  const inBlock = await textClient(cluster.url);
  try {
    await withSet.query(`SET statement_timeout = '5min'`);
    await inBlock.query('BEGIN');
    for (let round = 0; round < 3; round++) {
      const [a, b, c] = await Promise.all([pidOf(withSet, keys[0]!), pidOf(inBlock, keys[1]!), read(2)]);
      assert.notEqual(a, pid, 'a session with a SET runs on its own connection');
      assert.notEqual(b, pid, 'a transaction block runs on its own connection');
      assert.equal(c.pid, pid);
    }
    assert.equal(((await withSet.query(`SELECT current_setting('statement_timeout') AS t FROM items WHERE k = ${keys[0]}`)).rows[0] as { t: string }).t, '5min');
    await inBlock.query('COMMIT');
  } finally {
    await withSet.end();
    await inBlock.end();
  }
  // The channel's backend never saw the SET.
  const onChannel = ((await clients[2]!.query(`SELECT current_setting('statement_timeout') AS t, pg_backend_pid() AS pid FROM items WHERE k = ${keys[2]}`)).rows[0] as { t: string; pid: string });
  assert.equal(onChannel.pid, pid);
  assert.equal(onChannel.t, '0');
});

test('a cancel never reaches another session’s statement (queued ahead or behind), and ends its own when alone', async () => {
  await untilPipelined();
  const sleeper = clients[0]!;
  const waiter = clients[2]!;
  const key = (c: pg.Client) => c as unknown as { processID: number; secretKey: number };
  // The sleeper's statement runs on the channel; the waiter's request is queued behind it.
  const sleeping = sleeper.query(`SELECT pg_sleep(1.5), v FROM items WHERE k = ${keys[0]}`);
  await new Promise((r) => setTimeout(r, 200));
  const waiting = waiter.query(`SELECT v FROM items WHERE k = ${keys[2]}`);
  const bystanding = read(4);
  await new Promise((r) => setTimeout(r, 200));
  // The waiter cancels: its statement is not running, the backend runs the sleeper's — nothing is sent.
  await sendCancel(cluster.config.listen, key(waiter).processID, key(waiter).secretKey);
  const [slept, waited, bystood] = await Promise.allSettled([sleeping, waiting, bystanding]);
  assert.equal(slept.status, 'fulfilled', `the sleeper was not cancelled: ${(slept as PromiseRejectedResult).reason?.message}`);
  assert.equal(bystood.status, 'fulfilled', `the statement behind was not cancelled: ${(bystood as PromiseRejectedResult).reason?.message}`);
  // The waiter's own statement either ran or was cancelled (57014): nothing else.
  if (waited.status === 'rejected') assert.equal(waited.reason.code, '57014');

  // Alone on its channel, a statement is cancelled as usual (57014), and the sessions go on.
  await untilPipelined();
  const long = sleeper.query(`SELECT pg_sleep(60), v FROM items WHERE k = ${keys[0]}`);
  long.catch(() => {});
  // Cancelled once it runs on the worker (a cancel before the request is sent has nothing to cancel).
  const worker = await textClient(nodeUrl(cluster, cluster.workers[0]!.port), 'pgweave-test-admin');
  try {
    for (let i = 0; i < 600; i++) {
      const r = await worker.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'`);
      if ((r.rows[0] as { n: string }).n === '1') break;
      await new Promise((res) => setTimeout(res, 50));
    }
  } finally {
    await worker.end();
  }
  await sendCancel(cluster.config.listen, key(sleeper).processID, key(sleeper).secretKey);
  await assert.rejects(long, (err: { code?: string }) => err.code === '57014');
  await untilPipelined();
});

test('a worker stopped while requests wait on its channel: each client gets a class-08 error, later statements work', async () => {
  await untilPipelined();
  const state = clusterState(cluster);
  const first = workerByPort(cluster, cluster.workers[0]!.port);
  // One long statement holds the channel; the others queue behind it.
  const queued = [clients[0]!.query(`SELECT pg_sleep(30), v FROM items WHERE k = ${keys[0]}`)];
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 1; i < 8; i++) queued.push(read(i) as Promise<never>);
  const settled = Promise.allSettled(queued); // handled from now on: they fail while the worker stops
  await new Promise((r) => setTimeout(r, 200));
  try {
    await stopPostgres(first.dataDir, 'immediate');
    const outcomes = await settled;
    for (const [i, o] of outcomes.entries()) {
      assert.equal(o.status, 'rejected', `session ${i} got an error`);
      assert.match(String((o as PromiseRejectedResult).reason.code), /^08/, `session ${i}: ${(o as PromiseRejectedResult).reason.message}`);
    }
  } finally {
    await startPostgres(nodeServerOptions(state, first), first.logFile);
  }
  // The same sessions work again (the channel is opened anew).
  for (let i = 0; i < 8; i++) await read(i);
  await untilPipelined();
});
