/**
 * What a session's worker connection carries from one transaction block to
 * the next, and to other sessions.
 *
 * Worker-side prepared statements are named after their text and parameter
 * types (session/worker-statements.ts): a worker connection given back to
 * the idle pool keeps its statements, and a later session routing the same
 * text binds them without a Parse of its own. Named per session instead,
 * every new client session (pgbench opens new ones per run) parsed every
 * statement again on every pooled connection it happened to get.
 *
 * Between its blocks a session keeps its worker link, parked in the idle
 * pool (pool/idle-connection-pool.ts): its next block uses it again, while
 * a session that finds no idle connection claims it instead of opening one.
 *
 * Parses are counted on the coordinator's sockets to the workers (wrapping
 * net.Socket's write path in this test process, where the coordinator
 * runs). The blocks keep the statements on the session's own worker link
 * (autocommit statements go through the shared pipelined channels).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, nodeUrl, textClient } from './support.js';

let cluster: TestCluster;
let admin: pg.Client;
/** Names of the Parse messages the coordinator sent to worker PostgreSQL servers. */
const workerParses: string[] = [];
type WriteGeneric = (this: net.Socket, writev: boolean, data: unknown, encoding: string, cb: () => void) => unknown;
const proto = net.Socket.prototype as unknown as { _writeGeneric: WriteGeneric };
const original = proto._writeGeneric;

/** A block's opening (BEGIN and the deadlock tag), prepared once per connection (session/prepared-batch.ts): not the client's statements. */
const OPENING = /^(BEGIN|SELECT pg_catalog\.pg_advisory_xact_lock_shared\()/;

function noteParses(buf: Buffer): void {
  for (let pos = 0; pos + 5 <= buf.length; pos += 1 + buf.readInt32BE(pos + 1)) {
    if (buf[pos] !== 0x50) continue;
    const nameEnd = buf.indexOf(0, pos + 5);
    if (!OPENING.test(buf.toString('utf8', nameEnd + 1, buf.indexOf(0, nameEnd + 1)))) workerParses.push(buf.toString('utf8', pos + 5, nameEnd));
  }
}

before(async () => {
  proto._writeGeneric = function (this: net.Socket, writev, data, encoding, cb) {
    if (cluster?.workers.some((w) => w.port === this.remotePort)) {
      if (writev) for (const c of data as Array<{ chunk: Buffer }>) noteParses(Buffer.from(c.chunk));
      else if (Buffer.isBuffer(data)) noteParses(data);
    }
    return original.call(this, writev, data, encoding, cb);
  };
  // TCP: the test tells the coordinator's connections apart by port.
  cluster = await startTestCluster({ workers: 2, tcpOnly: true });
  admin = await textClient(cluster.url);
  await addWorkers(admin, cluster);
  await admin.query('CREATE TABLE wsn (id int PRIMARY KEY, v int NOT NULL)');
  await admin.query(`SELECT create_distributed_table('wsn', 'id', shard_count => 4)`);
  await admin.query('INSERT INTO wsn SELECT g, g FROM generate_series(1, 10) g');
});

after(async () => {
  proto._writeGeneric = original;
  await admin?.end().catch(() => {});
  await cluster?.stop();
});

/** One block in a new session running a prepared statement (named `q`) on key 1; returns the worker Parses it caused. */
async function blockInNewSession(text: string): Promise<{ parses: string[]; value: unknown }> {
  const c = await textClient(cluster.url, 'wsn-test');
  const from = workerParses.length;
  try {
    await c.query('BEGIN');
    const r = await c.query({ name: 'q', text, values: [1] });
    await c.query('COMMIT');
    return { parses: workerParses.slice(from).filter((n) => n.startsWith('pgw') && !n.startsWith('pgwc')), value: r.rows[0] };
  } finally {
    await c.end();
  }
}

test('a later session binds the statement a pooled worker connection already holds, without parsing it again', async () => {
  const first = await blockInNewSession('SELECT v FROM wsn WHERE id = $1');
  assert.deepEqual(first.value, { v: '1' });
  assert.equal(first.parses.length, 1, 'the first session prepares the statement on the worker');
  // The session's link went back to the pool with its statement; the next session takes it (LIFO).
  const second = await blockInNewSession('SELECT v FROM wsn WHERE id = $1');
  assert.deepEqual(second.value, { v: '1' });
  assert.deepEqual(second.parses, [], 'the same text is bound under the same name');
  // A different text gets its own statement (and name).
  const third = await blockInNewSession('SELECT v + 1 AS w FROM wsn WHERE id = $1');
  assert.deepEqual(third.value, { w: '2' });
  assert.equal(third.parses.length, 1);
  assert.notEqual(third.parses[0], first.parses[0]);
});

/** Client-role connections the coordinator holds to the worker of key 1 (idle, parked or in use). */
async function workerConnections(): Promise<number> {
  let n = 0;
  for (const w of cluster.workers) {
    const direct = await textClient(nodeUrl(cluster, w.port), 'wsn-count');
    try {
      const r = await direct.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pgweave' AND backend_type = 'client backend'`);
      n += Number(r.rows[0].n);
    } finally {
      await direct.end();
    }
  }
  return n;
}

/**
 * The worker backend serving a session's statement on key 1 inside its open
 * block (extended protocol, as pgbench -M prepared).
 */
async function backendPid(c: pg.Client): Promise<number> {
  const r = await c.query('SELECT pg_backend_pid() AS pid FROM wsn WHERE id = $1', [1]);
  return Number(r.rows[0].pid);
}

test('a session keeps its worker connection across its blocks; one without a connection claims a parked one', async () => {
  const a = await textClient(cluster.url, 'wsn-park');
  const b = await textClient(cluster.url, 'wsn-park');
  const c = await textClient(cluster.url, 'wsn-park');
  try {
    await a.query('BEGIN');
    await b.query('BEGIN');
    const pidA = await backendPid(a);
    const pidB = await backendPid(b);
    assert.notEqual(pidA, pidB);
    // B's block ends first, A's last: given back to a pool, A's connection would be the one B takes next.
    await b.query('COMMIT');
    await a.query('COMMIT');
    for (let i = 0; i < 3; i++) {
      await b.query('BEGIN');
      assert.equal(await backendPid(b), pidB, 'B runs its next block on its own connection');
      await b.query('UPDATE wsn SET v = v WHERE id = $1', [1]);
      await b.query('COMMIT');
      await a.query('BEGIN');
      assert.equal(await backendPid(a), pidA, 'so does A');
      await a.query('COMMIT');
    }
    // C takes an idle connection, or one that A or B holds between blocks: it opens none.
    const before = await workerConnections();
    await c.query('BEGIN');
    await backendPid(c);
    await c.query('COMMIT');
    assert.equal(await workerConnections(), before);
    // The session it was taken from goes on with another connection.
    for (const s of [a, b]) {
      await s.query('BEGIN');
      assert.deepEqual((await s.query('SELECT v FROM wsn WHERE id = $1', [1])).rows, [{ v: '1' }]);
      await s.query('COMMIT');
    }
  } finally {
    await Promise.all([a.end(), b.end(), c.end()]);
  }
});

test('a parked connection that then gets session-level SETs is not claimed by another session', async () => {
  const a = await textClient(cluster.url, 'wsn-set');
  const c = await textClient(cluster.url, 'wsn-set');
  const timeout = async (s: pg.Client) => (await s.query(`SELECT current_setting('statement_timeout') AS t FROM wsn WHERE id = $1`, [1])).rows;
  try {
    // A's link is parked after its block; its SET then goes to that link, which must stay A's.
    await a.query('BEGIN');
    await backendPid(a);
    await a.query('COMMIT');
    await a.query(`SET statement_timeout = '123s'`);
    await c.query('BEGIN');
    assert.deepEqual(await timeout(c), [{ t: '0' }], 'C does not run on a connection carrying A\'s SET');
    await c.query('COMMIT');
    await a.query('BEGIN');
    assert.deepEqual(await timeout(a), [{ t: '123s' }]);
    await a.query('COMMIT');
  } finally {
    await Promise.all([a.end(), c.end()]);
  }
});

test('a session of simple Queries only offers its worker connection to others once its block ends', async () => {
  // A role of its own: its pool starts empty, so B can only get A's connection or a new one.
  await admin.query(`CREATE ROLE wsn_simple LOGIN PASSWORD 'wsn-simple-pw'`);
  await admin.query('GRANT SELECT, UPDATE ON wsn TO wsn_simple');
  const url = new URL(cluster.url);
  url.username = 'wsn_simple';
  url.password = 'wsn-simple-pw';
  const a = await textClient(url.toString(), 'wsn-simple');
  const b = await textClient(url.toString(), 'wsn-simple');
  try {
    // pg sends a query without parameters as one simple Query: A's session never sees a Sync.
    await a.query('BEGIN');
    const pidA = Number((await a.query('SELECT pg_backend_pid() AS pid FROM wsn WHERE id = 1')).rows[0].pid);
    await a.query('UPDATE wsn SET v = v WHERE id = 1');
    await a.query('COMMIT');
    await b.query('BEGIN');
    assert.equal(await backendPid(b), pidA, "B claims A's parked connection instead of opening one");
    await b.query('COMMIT');
    // A goes on, on a connection of its own.
    await a.query('BEGIN');
    assert.deepEqual((await a.query('SELECT v FROM wsn WHERE id = 1')).rows, [{ v: '1' }]);
    await a.query('COMMIT');
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
});
