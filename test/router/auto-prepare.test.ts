/**
 * Auto-prepared simple reads (src/session/auto-prepare.ts): a simple Query
 * reading one shard, whose constants are each compared with a column, runs
 * as the channel's prepared statement bound to those constants — and the
 * client cannot tell: rows, columns, tags and errors are those of the
 * literal text on a plain PostgreSQL loaded alike. Constants anywhere else
 * keep the literal path; a value the worker refuses at Bind, or a shape it
 * refuses at Parse, runs the literal text instead, so the error is
 * PostgreSQL's own, position included, and nothing is answered twice or out
 * of order. One pgweave cluster (2 workers, pipelined channels on) and one
 * plain server for the file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { rawLogin, errorFieldsOf, message } from '../server/raw-protocol.js';
import { autoPrepareStats } from '../../src/session/auto-prepare.js';
import { addWorkers, textClient } from './support.js';

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;

const SCHEMA = `
CREATE TABLE kinds (code text PRIMARY KEY, label text NOT NULL);
CREATE TABLE accounts (id int PRIMARY KEY, kind text, name text, balance numeric, created timestamptz, f float8, tags text[]);
INSERT INTO kinds VALUES ('gold', 'Gold'), ('iron', 'Iron');
INSERT INTO accounts
  SELECT i, CASE WHEN i % 2 = 0 THEN 'gold' ELSE 'iron' END,
         CASE WHEN i = 3 THEN 'bob''s' WHEN i = 2 THEN 'ünïcødé ✓' ELSE 'n' || i END,
         i * 1.25, timestamptz '2024-01-01 00:00+00' + i * interval '1 day', i / 3.0, ARRAY['t' || i]
  FROM generate_series(1, 40) i;
`;

async function both(sql: string): Promise<void> {
  await reference.query(sql);
  await weave.query(sql);
}

/** Runs `sql` (simple protocol) on both servers: rows, tag and columns must be equal. */
async function same(sql: string): Promise<void> {
  const [expected, actual] = await Promise.all([reference.query(sql), weave.query(sql)]);
  assert.deepEqual(actual.rows, expected.rows, sql);
  assert.equal(actual.command, expected.command, sql);
  assert.equal(actual.rowCount, expected.rowCount, sql);
  assert.deepEqual(
    actual.fields.map((f) => [f.name, f.dataTypeID, f.dataTypeSize, f.dataTypeModifier, f.format]),
    expected.fields.map((f) => [f.name, f.dataTypeID, f.dataTypeSize, f.dataTypeModifier, f.format]),
    sql,
  );
}

/** Runs `sql` on both servers: both must fail alike (code, message, detail, hint, context, position — a bound parameter's error has none). */
async function sameError(sql: string): Promise<void> {
  const failure = (c: pg.Client) =>
    c.query(sql).then(
      () => assert.fail(`${sql} succeeded`),
      (e: pg.DatabaseError) => ({ code: e.code, message: e.message, detail: e.detail, hint: e.hint, where: e.where, position: e.position }),
    );
  const [expected, actual] = await Promise.all([failure(reference), failure(weave)]);
  assert.deepEqual(actual, expected, sql);
}

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url);
  reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
  await both(SCHEMA);
  await weave.query(`SELECT create_distributed_table('accounts', 'id', shard_count := 8)`);
  await weave.query(`SELECT create_reference_table('kinds')`);
});

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

const AUTO_PREPARED = [
  'SELECT * FROM accounts WHERE id = 7',
  `SELECT name, balance FROM accounts WHERE id = 3 AND name = 'bob''s'`,
  `SELECT id, created FROM accounts WHERE id = 12 AND created >= '2024-01-05 00:00+00'`,
  `SELECT a.id, k.label FROM accounts a JOIN kinds k ON k.code = a.kind WHERE a.id = 6 AND k.code = 'gold'`,
  'SELECT count(*), sum(balance) FROM accounts WHERE id = 9 AND f > 1',
  'SELECT * FROM accounts WHERE 4 = id',
  'SELECT * FROM accounts WHERE id = 99999',
  `SELECT id FROM accounts WHERE id = 2 AND name = 'ünïcødé ✓'`,
  `SELECT id FROM accounts WHERE id = 5 /* 'not a constant' */ AND name <> 'x' -- and 'this' neither`,
  `SELECT id, tags FROM accounts WHERE id = 8 AND tags = '{t8}'`,
  `SELECT "id" FROM "accounts" WHERE "id" = 10;`,
  `SELECT code FROM kinds WHERE label = 'Gold'`,
];

test('one-shard reads whose constants are compared with columns are answered auto-prepared, as the literal text is', async () => {
  // The channels to each worker open in the background: until they are ready, reads take the literal path.
  for (let i = 0; i < 100; i++) {
    const n = autoPrepareStats.answered;
    for (let id = 1; id <= 8; id++) await same(`SELECT * FROM accounts WHERE id = ${id}`);
    if (autoPrepareStats.answered - n === 8) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const before = autoPrepareStats.answered;
  for (const sql of AUTO_PREPARED) await same(sql);
  // Again: the shapes are planned and prepared already.
  for (const sql of AUTO_PREPARED) await same(sql);
  assert.equal(autoPrepareStats.answered - before, 2 * AUTO_PREPARED.length);
  // Other values of the same shapes.
  for (let id = 1; id <= 40; id++) await same(`SELECT * FROM accounts WHERE id = ${id}`);
  assert.equal(autoPrepareStats.answered - before, 2 * AUTO_PREPARED.length + 40);
});

test('constants anywhere else, writes, multi-shard reads and blocks keep the literal path', async () => {
  const literal = [
    'SELECT * FROM accounts WHERE id = -3',
    'SELECT * FROM accounts WHERE id = 3 LIMIT 1',
    'SELECT id, 5 AS five FROM accounts WHERE id = 3',
    `SELECT * FROM accounts WHERE id = '3'::int`,
    `SELECT id FROM accounts WHERE id = 3 AND created > timestamptz '2024-01-01 00:00+00'`,
    'SELECT id FROM accounts WHERE id = 3 AND balance > 1.5',
    `SELECT id FROM accounts WHERE id = 3 AND name = E'bob\\'s'`,
    'SELECT id FROM accounts WHERE id IN (3)',
    'SELECT id FROM accounts WHERE id = 3000000000',
    'SELECT id FROM accounts WHERE id > 38 ORDER BY id',
    'SELECT id FROM accounts WHERE id = 3 FOR UPDATE',
    'UPDATE accounts SET balance = balance WHERE id = 3',
  ];
  const before = autoPrepareStats.answered;
  for (const sql of literal) await same(sql);
  await both('BEGIN');
  await same('SELECT * FROM accounts WHERE id = 7');
  await both('COMMIT');
  assert.equal(autoPrepareStats.answered - before, 0);
});

test('a value or a shape the worker refuses gets PostgreSQL’s own error for the literal text', async () => {
  const before = { ...autoPrepareStats };
  await sameError(`SELECT id FROM accounts WHERE id = 3 AND created = 'not a time'`);
  await sameError(`SELECT id FROM accounts WHERE id = 3 AND nosuch = 5`);
  await sameError(`SELECT id FROM accounts WHERE id = 3 AND name = 5`);
  await sameError(`SELECT id FROM accounts WHERE id = 'abc'`);
  assert.ok(autoPrepareStats.refused - before.refused >= 3, 'refused at the worker, then run literally');
  // The session goes on auto-prepared.
  await same('SELECT * FROM accounts WHERE id = 11');
  assert.equal(autoPrepareStats.answered - before.answered, 1);
});

test('a refused Query and the Query after it in the same packet are answered once each, in order', async () => {
  const conn = await rawLogin(cluster.config.listen, 'postgres', cluster.password);
  try {
    const query = (sql: string) => message('Q', Buffer.from(sql + '\0', 'utf8'));
    const bad = `SELECT id FROM accounts WHERE id = 3 AND created = 'not a time'`;
    conn.write(Buffer.concat([query(bad), query('SELECT id FROM accounts WHERE id = 4')]));
    const types: string[] = [];
    let error = null;
    while (types.filter((t) => t === 'Z').length < 2) {
      const m = await conn.next();
      assert.ok(m, 'the connection stays open');
      types.push(m.type);
      if (m.type === 'E') error = errorFieldsOf(m);
    }
    assert.deepEqual(types, ['E', 'Z', 'T', 'D', 'C', 'Z']);
    assert.equal(error?.code, '22007');
    assert.equal(error?.position, String(bad.indexOf("'") + 1), 'the literal text’s error, with its position');
  } finally {
    conn.destroy();
  }
});
