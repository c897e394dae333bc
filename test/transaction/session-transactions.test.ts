/**
 * Session transactions across nodes, exactly as PostgreSQL reports them:
 * the same statement scripts run through pgweave (a table distributed over
 * two workers, the keys used on different workers) and against a plain
 * PostgreSQL database (the coordinator's server, database `plain`, the same
 * tables undistributed); every statement's outcome — command tag and rows,
 * or SQLSTATE and message — must be the same. Covers isolation levels and
 * READ ONLY reaching the workers, savepoints, the aborted state (25P02),
 * implicit transactions of multi-statement queries, COMMIT/ROLLBACK AND
 * CHAIN, statement timeouts (session SETs and SET LOCAL reaching workers),
 * and, separately, idle-in-transaction timeouts, REPEATABLE READ snapshots
 * taken on every node together, and two-phase commit with coordinator-local
 * writes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { connect, sleep } from './support.js';
import { faults } from '../../src/transaction/fault-injection.js';

let cluster: TestCluster;
let admin: pg.Client;
let dist: pg.Client;
let plain: pg.Client;
let A: number;
let B: number;

function plainUrl(database: string): string {
  const n = cluster.coordinatorPg;
  return `postgres://postgres:${encodeURIComponent(cluster.password)}@${n.host}:${n.port}/${database}`;
}

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  admin = await connect(cluster.url, 'session-admin');
  for (const w of cluster.workers) await admin.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  await admin.query('CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)');
  await admin.query("SELECT create_distributed_table('t', 'id', shard_count => 4)");
  await admin.query('INSERT INTO t VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0)');
  await admin.query('CREATE TABLE notes (id int PRIMARY KEY, note text)');
  const r = await admin.query(
    `SELECT k, n.nodeport AS port FROM generate_series(1, 8) k
       JOIN pg_dist_shard s ON s.logicalrelid = 't'::regclass AND hashint4(k) BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int
       JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid) ORDER BY k`,
  );
  const ports = r.rows.map((row) => [Number(row.k), Number(row.port)] as const);
  A = ports[0]![0];
  B = ports.find(([, p]) => p !== ports[0]![1])![0];

  const direct = await connect(plainUrl('postgres'), 'session-plain-admin');
  await direct.query('CREATE DATABASE plain');
  await direct.end();
  plain = await connect(plainUrl('plain'), 'session-plain');
  await plain.query('CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)');
  await plain.query('INSERT INTO t VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0)');
  await plain.query('CREATE TABLE notes (id int PRIMARY KEY, note text)');
  dist = await connect(cluster.url, 'session-dist');
});

after(async () => {
  for (const c of [dist, plain, admin]) await c?.end().catch(() => {});
  await cluster?.stop();
});

type Outcome = string;

async function outcomeOf(c: pg.Client, sql: string): Promise<Outcome> {
  try {
    const r = (await c.query({ text: sql, rowMode: 'array' })) as unknown as pg.QueryArrayResult | pg.QueryArrayResult[];
    const list = Array.isArray(r) ? r : [r];
    return list.map((x) => `${x.command} ${JSON.stringify(x.rows)}`).join(' | ');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `ERROR ${e.code}: ${e.message}`;
  }
}

/** Runs a script on both systems (after resetting the rows) and compares every outcome. */
async function same(script: string[]): Promise<string[]> {
  const resetSql = 'UPDATE t SET v = 0';
  for (const c of [dist, plain]) {
    await c.query('ROLLBACK').catch(() => {});
    await c.query(resetSql);
    await c.query('DELETE FROM notes');
  }
  const expected: Outcome[] = [];
  const actual: Outcome[] = [];
  for (const raw of script) {
    const sql = raw.replaceAll('$A', String(A)).replaceAll('$B', String(B));
    expected.push(await outcomeOf(plain, sql));
    actual.push(await outcomeOf(dist, sql));
  }
  const lines = script.map((s, i) => `${s}\n    PostgreSQL: ${expected[i]}\n    pgweave:    ${actual[i]}`);
  assert.deepEqual(actual, expected, lines.join('\n'));
  return actual;
}

const both = 'SELECT id, v FROM t WHERE id IN ($A, $B) ORDER BY id';

test('savepoints, ROLLBACK TO and RELEASE across nodes', async () => {
  await same([
    'BEGIN',
    'UPDATE t SET v = 1 WHERE id = $A',
    'SAVEPOINT s1',
    'UPDATE t SET v = 2 WHERE id = $B',
    'ROLLBACK TO SAVEPOINT s1',
    'UPDATE t SET v = 3 WHERE id = $B',
    'RELEASE SAVEPOINT s1',
    'COMMIT',
    both,
  ]);
  await same([
    'BEGIN',
    'SAVEPOINT a',
    'UPDATE t SET v = 1 WHERE id = $A',
    'SAVEPOINT b',
    'UPDATE t SET v = 1 / 0 WHERE id = $B',
    'UPDATE t SET v = 2 WHERE id = $A',
    'ROLLBACK TO SAVEPOINT b',
    'UPDATE t SET v = 5 WHERE id = $B',
    both,
    'ROLLBACK TO SAVEPOINT a',
    both,
    'UPDATE t SET v = 6 WHERE id = $B',
    'RELEASE SAVEPOINT a',
    'ROLLBACK TO SAVEPOINT a',
    'COMMIT',
    both,
  ]);
});

test('the aborted state: 25P02 for everything but the end of the block, on any node', async () => {
  await same([
    'BEGIN',
    'UPDATE t SET v = 1 WHERE id = $A',
    'SELECT 1 / 0',
    'UPDATE t SET v = 1 WHERE id = $B',
    'SELECT v FROM t WHERE id = $A',
    'SAVEPOINT x',
    'COMMIT',
    both,
  ]);
  await same(['BEGIN', 'UPDATE t SET v = 1 WHERE id = $A', 'UPDATE t SET v = 1 / 0 WHERE id = $B', 'SELECT 1', 'ROLLBACK', both]);
});

test('a multi-statement query is one transaction across nodes', async () => {
  await same(['UPDATE t SET v = 7 WHERE id = $A; UPDATE t SET v = 7 WHERE id = $B; SELECT 1 / 0', both]);
  await same(['UPDATE t SET v = 8 WHERE id = $A; UPDATE t SET v = 8 WHERE id = $B', both]);
  await same(["INSERT INTO notes VALUES (1, 'x'); UPDATE t SET v = 9 WHERE id = $A; UPDATE t SET v = 9 WHERE id = $B; INSERT INTO notes VALUES (1, 'dup')", both, 'SELECT count(*) FROM notes']);
  await same(['BEGIN; UPDATE t SET v = 10 WHERE id = $A; UPDATE t SET v = 10 WHERE id = $B; COMMIT', both]);
});

test('isolation levels and READ ONLY reach the workers', async () => {
  const onWorker = (k: string) => `SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only') FROM t WHERE id = ${k}`;
  await same(['BEGIN ISOLATION LEVEL REPEATABLE READ', onWorker('$A'), onWorker('$B'), 'COMMIT']);
  await same(['START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', onWorker('$B'), 'UPDATE t SET v = 1 WHERE id = $A', 'ROLLBACK']);
  await same(['BEGIN', 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', onWorker('$A'), 'COMMIT']);
  await same(["SET default_transaction_isolation = 'repeatable read'", 'BEGIN', onWorker('$B'), 'COMMIT', 'RESET default_transaction_isolation', 'BEGIN', onWorker('$B'), 'COMMIT']);
  await same(['BEGIN READ ONLY', 'UPDATE t SET v = 1 WHERE id = $B', 'ROLLBACK']);
});

test('COMMIT AND CHAIN and ROLLBACK AND CHAIN keep the characteristics', async (t) => {
  const out = await same([
    'BEGIN ISOLATION LEVEL REPEATABLE READ',
    'UPDATE t SET v = 1 WHERE id = $A',
    'COMMIT AND CHAIN',
    "SELECT current_setting('transaction_isolation') FROM t WHERE id = $B",
    'UPDATE t SET v = 2 WHERE id = $B',
    'ROLLBACK AND CHAIN',
    'SHOW transaction_isolation',
    "SELECT current_setting('transaction_isolation') FROM t WHERE id = $A",
    'COMMIT',
    'COMMIT AND CHAIN',
    both,
  ]);
  t.diagnostic(out.join('\n'));
});

test('statement timeouts: session SETs and SET LOCAL reach the workers', async () => {
  await same([
    'SELECT v FROM t WHERE id = $A',
    "SET statement_timeout = '300ms'",
    'SELECT pg_sleep(3) FROM t WHERE id = $A',
    'RESET statement_timeout',
    'SELECT pg_sleep(0.5) IS NULL FROM t WHERE id = $A',
    'BEGIN',
    "SET LOCAL statement_timeout = '300ms'",
    'SELECT pg_sleep(3) FROM t WHERE id = $B',
    'ROLLBACK',
    'SELECT pg_sleep(0.5) IS NULL FROM t WHERE id = $B',
  ]);
});

test('PREPARE TRANSACTION of a block that touched workers is refused', async () => {
  await dist.query('BEGIN');
  await dist.query(`UPDATE t SET v = 1 WHERE id = ${A}`);
  await assert.rejects(dist.query("PREPARE TRANSACTION 'mine'"), (e: { code?: string }) => e.code === '0A000');
  await dist.query('ROLLBACK');
});

test('a block writing coordinator-local and distributed tables commits everywhere or nowhere', async () => {
  await dist.query('UPDATE t SET v = 0');
  await dist.query('DELETE FROM notes');
  await dist.query('BEGIN');
  await dist.query("INSERT INTO notes VALUES (1, 'kept')");
  await dist.query(`UPDATE t SET v = 1 WHERE id = ${A}`);
  await dist.query(`UPDATE t SET v = 1 WHERE id = ${B}`);
  assert.equal((await dist.query('COMMIT')).command, 'COMMIT');
  assert.deepEqual((await dist.query('SELECT note FROM notes')).rows, [{ note: 'kept' }]);
  assert.deepEqual((await dist.query(`SELECT sum(v) AS s FROM t WHERE id IN (${A}, ${B})`)).rows, [{ s: '2' }]);
  // A deferred constraint fails at COMMIT on the coordinator: the workers roll back too.
  await dist.query('CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)');
  await dist.query('BEGIN');
  await dist.query('INSERT INTO child VALUES (1)');
  await dist.query(`UPDATE t SET v = 5 WHERE id = ${A}`);
  await dist.query(`UPDATE t SET v = 5 WHERE id = ${B}`);
  await assert.rejects(dist.query('COMMIT'), (e: { code?: string }) => e.code === '23503');
  assert.deepEqual((await dist.query(`SELECT sum(v) AS s FROM t WHERE id IN (${A}, ${B})`)).rows, [{ s: '2' }]);
  assert.deepEqual((await admin.query("SELECT count(*) AS n FROM pgweave.transaction")).rows, [{ n: '0' }]);
});

test('a block writing one worker commits with one phase, even when an INSERT\'s now() was evaluated on the coordinator', async () => {
  // pgbench -N's shape: the INSERT's CURRENT_TIMESTAMP is computed on the coordinator PostgreSQL
  // (rolled back to a savepoint): that leaves the coordinator with an xid but no write, so it is
  // no writing participant, and one written worker means one-phase commit (no PREPARE).
  await dist.query(`CREATE TABLE hist (id int NOT NULL, delta int NOT NULL, at timestamp NOT NULL)`);
  await dist.query(`SELECT create_distributed_table('hist', 'id', colocate_with => 't')`);
  await dist.query('UPDATE t SET v = 0');
  await dist.query('DELETE FROM notes');
  const points: string[] = [];
  faults.handler = (p) => {
    points.push(p);
  };
  try {
    const nBlock = [
      'BEGIN',
      `UPDATE t SET v = v + 7 WHERE id = ${A}`,
      `SELECT v FROM t WHERE id = ${A}`,
      `INSERT INTO hist (id, delta, at) VALUES (${A}, 7, CURRENT_TIMESTAMP)`,
      'END',
    ];
    for (const sql of nBlock) await dist.query(sql);
    assert.equal(points.join(', '), '', 'no two-phase commit step ran');
    // The same over the extended protocol with prepared statements, as pgbench -N -M prepared runs it.
    const prepared = [
      { name: 'n_begin', text: 'BEGIN' },
      { name: 'n_update', text: 'UPDATE t SET v = v + $1 WHERE id = $2', values: [0, A] },
      { name: 'n_select', text: 'SELECT v FROM t WHERE id = $1', values: [A] },
      { name: 'n_insert', text: 'INSERT INTO hist (id, delta, at) VALUES ($1, $2, CURRENT_TIMESTAMP)', values: [A, 0] },
      { name: 'n_end', text: 'END' },
    ];
    for (let round = 0; round < 2; round++) for (const q of prepared) await dist.query(q);
    assert.equal(points.join(', '), '', 'no two-phase commit step ran (extended protocol)');
    await dist.query(`DELETE FROM hist WHERE delta = 0`);
    assert.deepEqual((await dist.query(`SELECT v::text FROM t WHERE id = ${A}`)).rows, [{ v: '7' }]);
    assert.deepEqual((await dist.query(`SELECT delta::text, (at IS NOT NULL)::text AS stamped FROM hist WHERE id = ${A}`)).rows, [{ delta: '7', stamped: 'true' }]);

    // A coordinator-local write after the evaluation: the coordinator wrote, so two phases and both commit.
    await dist.query('BEGIN');
    await dist.query(`INSERT INTO hist (id, delta, at) VALUES (${A}, 8, CURRENT_TIMESTAMP)`);
    await dist.query(`INSERT INTO notes VALUES (8, 'after the evaluation')`);
    await dist.query('COMMIT');
    assert.ok(points.includes('before-prepare'), `two-phase commit with the coordinator (${points.join(', ')})`);
    points.length = 0;
    // … and before it.
    await dist.query('BEGIN');
    await dist.query(`INSERT INTO notes VALUES (9, 'before the evaluation')`);
    await dist.query(`INSERT INTO hist (id, delta, at) VALUES (${A}, 9, CURRENT_TIMESTAMP)`);
    await dist.query('COMMIT');
    assert.ok(points.includes('before-prepare'), `two-phase commit with the coordinator (${points.join(', ')})`);
    assert.deepEqual((await dist.query('SELECT id::text FROM notes ORDER BY id')).rows, [{ id: '8' }, { id: '9' }]);
    assert.deepEqual((await dist.query(`SELECT delta::text FROM hist WHERE id = ${A} ORDER BY delta`)).rows, [{ delta: '7' }, { delta: '8' }, { delta: '9' }]);
  } finally {
    faults.handler = null;
    await dist.query('ROLLBACK').catch(() => {});
    await dist.query('DROP TABLE hist').catch(() => {});
    await dist.query('DELETE FROM notes');
  }
});

test('a REPEATABLE READ block sees every node as of its first statement', async () => {
  const writer = await connect(cluster.url, 'session-writer');
  try {
    await dist.query('UPDATE t SET v = 0');
    await dist.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    assert.deepEqual((await dist.query(`SELECT v FROM t WHERE id = ${A}`)).rows, [{ v: '0' }]);
    // Committed after the block's first statement, on the other node: invisible to the block.
    await writer.query(`UPDATE t SET v = 1 WHERE id = ${B}; UPDATE t SET v = 1 WHERE id = ${A}`);
    assert.deepEqual((await dist.query(`SELECT v FROM t WHERE id = ${B}`)).rows, [{ v: '0' }]);
    assert.deepEqual((await dist.query('SELECT sum(v) AS s FROM t')).rows, [{ s: '0' }]);
    await dist.query('COMMIT');
    assert.deepEqual((await dist.query('SELECT sum(v) AS s FROM t')).rows, [{ s: '2' }]);
  } finally {
    await writer.end();
  }
});

test('idle_in_transaction_session_timeout ends the session and releases the workers\' locks', async () => {
  const c = await connect(cluster.url, 'session-idle');
  const other = await connect(cluster.url, 'session-other');
  try {
    await c.query("SET idle_in_transaction_session_timeout = '400ms'");
    await c.query('BEGIN');
    await c.query(`UPDATE t SET v = 42 WHERE id = ${A}`);
    await c.query(`UPDATE t SET v = 42 WHERE id = ${B}`);
    const fatal = new Promise<{ code?: string }>((resolve) => c.once('error', resolve));
    await sleep(1500);
    await assert.rejects(c.query('SELECT 1'));
    // As PostgreSQL reports it: FATAL 25P03 before the connection closes.
    assert.equal((await fatal).code, '25P03');
    // Nothing of it committed, and its row locks are gone.
    await other.query("SET statement_timeout = '5s'");
    await other.query(`UPDATE t SET v = v WHERE id IN (${A}, ${B})`);
    assert.deepEqual((await other.query(`SELECT count(*) AS n FROM t WHERE v = 42`)).rows, [{ n: '0' }]);
  } finally {
    await c.end().catch(() => {});
    await other.end().catch(() => {});
  }
});
