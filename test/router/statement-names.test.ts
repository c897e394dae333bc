/**
 * The session's own prepared statements on its coordinator link (`pgws<n>`:
 * the BEGIN of a transaction block with its SELECT, prepared pulls) share
 * the coordinator PostgreSQL's namespace with the client's statements that
 * are forwarded there (statements on local tables). A client naming its
 * statements like ours — over the extended protocol (Parse, Bind, Describe,
 * Close) or in SQL (PREPARE, EXECUTE, DEALLOCATE) — before or after the
 * session prepared its own, must get its own statements back, and the
 * session's blocks must keep working, also after DEALLOCATE ALL and
 * DISCARD ALL.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, textClient, withTextClient } from './support.js';
import { frontend, message, rawLogin } from '../server/raw-protocol.js';
import { escapeSql, escapeStatementName } from '../../src/session/client-statement-names.js';
import { initParser } from '../../src/sql/parse.js';

let cluster: TestCluster;
let c: pg.Client;
/** Names the session's own statements take on a coordinator link. */
let ours: string[];

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query('CREATE TABLE d (k int PRIMARY KEY, v int NOT NULL, at timestamptz)');
  await c.query(`SELECT create_distributed_table('d', 'k', shard_count => 4)`);
  await c.query('CREATE TABLE loc (x int NOT NULL); INSERT INTO loc VALUES (1000)');
  // A session that ran blocks holds the session's own statements on its coordinator link.
  ours = await withTextClient(cluster.url, async (s) => {
    await blocks(s, 1);
    const r = await s.query(`SELECT name FROM pg_prepared_statements WHERE name ~ '^pgws[0-9]+$' ORDER BY name`);
    return r.rows.map((x) => x.name as string);
  });
  assert.ok(ours.length > 0, 'the session prepares statements of its own on the coordinator link');
  // The next numbers too: statements the session may prepare later in a test.
  const highest = Math.max(...ours.map((n) => Number(n.slice(4))));
  for (let i = 1; i <= 3; i++) ours.push(`pgws${highest + i}`);
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

let round = 0;

/** `n` transaction blocks touching the distributed table (writes, a read, a transaction-time INSERT). */
async function blocks(s: pg.Client, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const k = ++round;
    await s.query('BEGIN');
    await s.query('INSERT INTO d (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v', [k, k]);
    await s.query(`INSERT INTO d (k, v, at) VALUES (${k + 100000}, 1, now())`);
    const r = await s.query('SELECT v FROM d WHERE k = $1', [k]);
    assert.equal(r.rows[0]?.v, String(k));
    await s.query('COMMIT');
  }
}

/** The client's statement named `name` answers `x + i` (extended protocol: node-postgres Binds it by name). */
const statementText = (i: number): string => `SELECT x + ${i} AS r FROM loc`;

async function prepareClientStatements(s: pg.Client): Promise<void> {
  for (const [i, name] of ours.entries()) {
    if (i % 2 === 0) await s.query({ name, text: statementText(i) });
    else await s.query(`PREPARE ${name} AS ${statementText(i)}`);
  }
}

async function checkClientStatements(s: pg.Client): Promise<void> {
  for (const [i, name] of ours.entries()) {
    const r = i % 2 === 0 ? await s.query({ name, text: statementText(i) }) : await s.query(`EXECUTE ${name}`);
    assert.equal(r.rows[0]?.r, String(1000 + i), `the client's statement ${name}`);
  }
}

test('client statements named like the session\'s, prepared before its blocks', async () => {
  await withTextClient(cluster.url, async (s) => {
    await prepareClientStatements(s);
    await blocks(s, 3);
    await checkClientStatements(s);
    await blocks(s, 1);
    await checkClientStatements(s);
  });
});

test('client statements named like the session\'s, prepared after its blocks', async () => {
  await withTextClient(cluster.url, async (s) => {
    await blocks(s, 2);
    await prepareClientStatements(s);
    await checkClientStatements(s);
    await blocks(s, 2);
    await checkClientStatements(s);
  });
});

test('DEALLOCATE, DEALLOCATE ALL and DISCARD ALL of a client using the session\'s names', async () => {
  await withTextClient(cluster.url, async (s) => {
    await blocks(s, 1);
    const name = ours[1]!;
    await s.query(`PREPARE ${name} AS SELECT 1 AS r`);
    await s.query(`DEALLOCATE ${name}`);
    await blocks(s, 1);
    await s.query(`PREPARE ${name} AS SELECT 2 AS r`);
    assert.equal((await s.query(`EXECUTE ${name}`)).rows[0]?.r, '2');
    await s.query('DEALLOCATE ALL');
    await blocks(s, 1);
    await s.query(`PREPARE ${name} AS SELECT 3 AS r`);
    await blocks(s, 1);
    assert.equal((await s.query(`EXECUTE ${name}`)).rows[0]?.r, '3');
    await s.query('DISCARD ALL');
    await blocks(s, 1);
    // A prepared pull: its final query is a statement of the session's on the coordinator link.
    const pulled = { text: 'SELECT count(*) AS n, max(v) AS m FROM d WHERE v > $1', values: [-1] };
    const before = (await s.query(pulled)).rows[0];
    await s.query('DEALLOCATE ALL');
    assert.deepEqual((await s.query(pulled)).rows[0], before, 'a prepared pull after DEALLOCATE ALL');
    await s.query('DISCARD ALL');
    assert.deepEqual((await s.query(pulled)).rows[0], before, 'a prepared pull after DISCARD ALL');
    // A DEALLOCATE ALL that fails (an aborted block) leaves the session's statements: prepared again all the same.
    await s.query('BEGIN');
    await assert.rejects(s.query('SELECT 1 / 0'));
    await assert.rejects(s.query('DEALLOCATE ALL'), { code: '25P02' });
    await s.query('ROLLBACK');
    assert.deepEqual((await s.query(pulled)).rows[0], before, 'a prepared pull after a failed DEALLOCATE ALL');
    await blocks(s, 1);
    await s.query(`PREPARE ${name} AS SELECT 4 AS r`);
    assert.equal((await s.query(`EXECUTE ${name}`)).rows[0]?.r, '4');
    await blocks(s, 1);
  });
});

test('Parse, Describe, Bind and Close messages of a client using the session\'s names', async () => {
  const conn = await rawLogin(cluster.config.listen, 'postgres', cluster.password);
  try {
    const run = async (bytes: Buffer[]): Promise<Array<{ type: string; text: string }>> => {
      conn.write(Buffer.concat([...bytes, frontend.sync()]));
      const got = await conn.readUntil('Z');
      return got.map((m) => ({ type: m.type, text: m.body.toString('utf8') }));
    };
    const simple = async (sql: string): Promise<void> => {
      conn.write(frontend.query(sql));
      const got = await conn.readUntil('Z');
      assert.ok(!got.some((m) => m.type === 'E'), `${sql}: ${got.map((m) => m.body.toString('utf8')).join(' ')}`);
    };
    const block = async (): Promise<void> => {
      const k = ++round;
      for (const sql of ['BEGIN', `INSERT INTO d (k, v) VALUES (${k}, ${k})`, `SELECT v FROM d WHERE k = ${k}`, 'COMMIT']) await simple(sql);
    };
    const name = ours[0]!;
    // Prepared before a block, described, then closed.
    let got = await run([frontend.parse({ name, text: 'SELECT x + 1 AS first FROM loc' }), frontend.describe({ type: 'S', name })]);
    assert.deepEqual(got.map((m) => m.type), ['1', 't', 'T', 'Z']);
    assert.ok(got[2]!.text.includes('first'), 'the client\'s statement is described');
    await block();
    got = await run([frontend.bind({ statement: name }), frontend.execute({}), frontend.close({ type: 'S', name })]);
    assert.deepEqual(got.map((m) => m.type), ['2', 'D', 'C', '3', 'Z'], got.map((m) => m.text).join(' '));
    assert.ok(got[1]!.text.includes('1001'));
    await block();
    // Prepared again under the same name after the session's block, bound and executed.
    got = await run([frontend.parse({ name, text: 'SELECT x + 2 AS second FROM loc' }), frontend.bind({ statement: name }), frontend.execute({})]);
    assert.deepEqual(got.map((m) => m.type), ['1', '2', 'D', 'C', 'Z'], got.map((m) => m.text).join(' '));
    assert.ok(got[2]!.text.includes('1002'));
    await block();
    got = await run([message('C', Buffer.from(`S${name}\0`))]);
    assert.deepEqual(got.map((m) => m.type), ['3', 'Z']);
    await block();
  } finally {
    conn.destroy();
  }
});

test('a client statement named like the session\'s former parameter probe', async () => {
  await withTextClient(cluster.url, async (s) => {
    await s.query('PREPARE pgweave_param_probe AS SELECT 5 AS r');
    // A prepared pushdown: the session describes it and converts its parameters on the coordinator link.
    const r = await s.query({ text: 'SELECT count(*) AS n, sum(v) AS total FROM d WHERE v >= $1 AND k > $2', values: [0, -5] });
    assert.equal(r.rows.length, 1);
    assert.equal((await s.query('EXECUTE pgweave_param_probe')).rows[0]?.r, '5');
  });
});

test('escapeSql: the names of PREPARE, EXECUTE and DEALLOCATE only, wherever they stand', async () => {
  await initParser();
  const cases: Array<[string, string | null]> = [
    ['PREPARE pgws1 AS SELECT 1', 'PREPARE "pgws_1" AS SELECT 1'],
    ['prepare PGWS2 (int) as select $1; execute Pgws2(1)', 'prepare "pgws_2" (int) as select $1; execute "pgws_2"(1)'],
    ['DEALLOCATE PREPARE "pgws3"', 'DEALLOCATE PREPARE "pgws_3"'],
    ['deallocate /* c */ pgws4', 'deallocate /* c */ "pgws_4"'],
    ['EXPLAIN (COSTS OFF) EXECUTE pgws5', 'EXPLAIN (COSTS OFF) EXECUTE "pgws_5"'],
    ['CREATE TABLE execute AS EXECUTE pgws6', 'CREATE TABLE execute AS EXECUTE "pgws_6"'],
    ['PREPARE "PGWS7" AS SELECT 1', null],
    ['PREPARE mine AS SELECT 1 AS prepare, 2 AS pgws8', null],
    ['SELECT \'PREPARE pgws9\'', null],
  ];
  for (const [sql, expected] of cases) assert.equal(escapeSql(sql), expected, sql);
  let all = 0;
  for (const sql of ['DEALLOCATE ALL', 'deallocate prepare all', 'DISCARD ALL', 'DISCARD PLANS', 'DEALLOCATE x']) escapeSql(sql, () => all++);
  assert.equal(all, 3, 'DEALLOCATE ALL, DEALLOCATE PREPARE ALL and DISCARD ALL deallocate every statement');
  assert.equal(escapeStatementName('pgws'), 'pgws_');
  assert.equal(escapeStatementName('xpgws1'), 'xpgws1');
});
