/**
 * A block's openings as prepared statements (session/prepared-batch.ts):
 * a worker joining a block gets BEGIN and the deadlock detector's tag as
 * named prepared statements (the tag a parameter), and the coordinator
 * PostgreSQL gets the block's BEGIN and the SELECT of its characteristics
 * and time the same way — parsed once per connection, not per block. The
 * block still has the BEGIN's characteristics, SET LOCALs and savepoints
 * on the worker; a failing statement still aborts it; a new worker
 * connection (after the old one was terminated) gets the statements
 * prepared again; and a client's DEALLOCATE ALL on the coordinator
 * PostgreSQL does not break the next BEGIN.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, nodeUrl, textClient } from '../router/support.js';

let cluster: TestCluster;
let c: pg.Client;

/** classid of the deadlock detector's tag locks (transaction/deadlock-detection.ts TAG_LOCK_KEY). */
const TAG_LOCK_KEY = 0x70677774;

/** What the worker backend serving key 1's shard says about itself, read inside the client's block. */
const WORKER_VIEW = `SELECT pg_backend_pid() AS pid,
  (SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%pg_advisory_xact_lock_shared(${TAG_LOCK_KEY}, $1)') AS tag_prepared,
  (SELECT count(*) FROM pg_prepared_statements WHERE statement = 'BEGIN') AS begin_prepared,
  (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = ${TAG_LOCK_KEY}) AS tagged,
  current_setting('transaction_isolation') AS isolation, current_setting('transaction_read_only') AS read_only,
  current_setting('statement_timeout') AS timeout
  FROM acct WHERE id = 1`;

before(async () => {
  cluster = await startTestCluster({ workers: 1 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query('CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)');
  await c.query(`SELECT create_distributed_table('acct', 'id', shard_count => 2)`);
  await c.query('INSERT INTO acct SELECT g, 0 FROM generate_series(1, 10) g');
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

test('a joining worker gets BEGIN and the tag as prepared statements, and is tagged', async () => {
  await c.query('BEGIN');
  const { rows } = await c.query(WORKER_VIEW);
  await c.query('COMMIT');
  assert.equal(rows[0].tag_prepared, '1');
  assert.equal(rows[0].begin_prepared, '1');
  assert.equal(rows[0].tagged, '1');
  assert.equal(rows[0].isolation, 'read committed');
});

test("the prepared opening keeps the BEGIN's characteristics", async () => {
  await c.query('BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY');
  const { rows } = await c.query(WORKER_VIEW);
  await c.query('COMMIT');
  assert.equal(rows[0].isolation, 'serializable');
  assert.equal(rows[0].read_only, 'on');
  assert.equal(rows[0].tagged, '1');
  // The extended protocol (a parameter) joins the same way.
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  const x = await c.query('SELECT current_setting($1) AS iso FROM acct WHERE id = 1', ['transaction_isolation']);
  await c.query('COMMIT');
  assert.equal(x.rows[0].iso, 'repeatable read');
});

test('SET LOCAL and open savepoints still reach a joining worker', async () => {
  await c.query('BEGIN');
  await c.query(`SET LOCAL statement_timeout = '17s'`);
  await c.query('SAVEPOINT a');
  const { rows } = await c.query(WORKER_VIEW);
  await c.query('UPDATE acct SET bal = bal + 5 WHERE id = 1');
  await c.query('ROLLBACK TO SAVEPOINT a');
  await c.query('COMMIT');
  assert.equal(rows[0].timeout, '17s');
  assert.equal(rows[0].tagged, '1');
  const after = await c.query('SELECT bal FROM acct WHERE id = 1');
  assert.equal(after.rows[0].bal, '0');
});

test('a failing first statement of a block still aborts the block', async () => {
  await c.query('BEGIN');
  await assert.rejects(c.query('UPDATE acct SET bal = bal / 0 WHERE id = 1'), (e: { code?: string }) => e.code === '22012');
  await assert.rejects(c.query('SELECT bal FROM acct WHERE id = 1'), (e: { code?: string }) => e.code === '25P02');
  await c.query('ROLLBACK');
  // The extended protocol, too.
  await c.query('BEGIN');
  await assert.rejects(c.query('UPDATE acct SET bal = bal / $1 WHERE id = 1', [0]), (e: { code?: string }) => e.code === '22012');
  await assert.rejects(c.query('SELECT bal FROM acct WHERE id = $1', [1]), (e: { code?: string }) => e.code === '25P02');
  await c.query('ROLLBACK');
  const { rows } = await c.query('SELECT bal FROM acct WHERE id = 1');
  assert.equal(rows[0].bal, '0');
});

test('a new worker connection gets the opening statements prepared again', async () => {
  await c.query('BEGIN');
  const first = (await c.query(WORKER_VIEW)).rows[0];
  await c.query('COMMIT');
  // Every backend of the client role on the worker goes (the session's link and pooled ones).
  const w = new pg.Client({ connectionString: nodeUrl(cluster, cluster.workers[0]!.port) });
  await w.connect();
  try {
    await w.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database()`);
  } finally {
    await w.end();
  }
  // The session learns of the loss when the socket closes; a statement racing it may see 08006.
  let view: Record<string, string> | null = null;
  for (let attempt = 0; attempt < 20 && view === null; attempt++) {
    await c.query('BEGIN');
    try {
      view = (await c.query(WORKER_VIEW)).rows[0];
      await c.query('COMMIT');
    } catch (err) {
      assert.match(String((err as { code?: string }).code), /^08/);
      await c.query('ROLLBACK');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  assert.ok(view, 'a block ran on a new worker connection');
  assert.notEqual(view.pid, first.pid);
  assert.equal(view.tag_prepared, '1');
  assert.equal(view.tagged, '1');
});

test("a client's DEALLOCATE ALL on the coordinator does not break the next BEGIN", async () => {
  await c.query('BEGIN');
  await c.query('COMMIT');
  const before = await c.query(`SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = 'BEGIN'`);
  assert.equal(before.rows[0].n, '1', 'the coordinator PostgreSQL holds BEGIN as a prepared statement');
  await c.query('DEALLOCATE ALL');
  await c.query('BEGIN');
  const iso = await c.query('SHOW transaction_isolation');
  await c.query('UPDATE acct SET bal = bal + 1 WHERE id = 2');
  await c.query('COMMIT');
  assert.equal(iso.rows[0].transaction_isolation, 'read committed');
  const { rows } = await c.query('SELECT bal FROM acct WHERE id = 2');
  assert.equal(rows[0].bal, '1');
  const again = await c.query(`SELECT count(*) AS n FROM pg_prepared_statements WHERE statement = 'BEGIN'`);
  assert.equal(again.rows[0].n, '1');
});
