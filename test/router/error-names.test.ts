/**
 * Errors a worker raises on a shard name the shard's objects
 * (`users_102021`, `users_pkey_102021`); the client gets the names it wrote,
 * in the text and in the table_name / constraint_name fields that drivers and
 * ORMs read to tell which constraint failed (session/shard-error-names.ts).
 * Every statement runs on a plain PostgreSQL with the same schema too, and
 * the error must match field for field: SQLSTATE, message, detail, hint,
 * schema, table, column, constraint. Simple and extended protocol, in and
 * out of transaction blocks, router, multi-shard and reference-table writes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { addWorkers, textClient } from './support.js';
import { clusterEndpoint, copyIn, plainEndpoint, rawConnect, type Endpoint } from '../ingest/support.js';

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;

const LONG = 'a_constraint_name_long_enough_that_the_shard_suffix_is_clipped';

const SCHEMA = `
  CREATE SCHEMA app;
  CREATE TABLE app.users (tenant_id int NOT NULL, user_id int NOT NULL, email text NOT NULL, score int,
    CONSTRAINT users_score_check CHECK (score >= 0), PRIMARY KEY (tenant_id, user_id));
  CREATE UNIQUE INDEX users_email_idx ON app.users (tenant_id, email);
  CREATE TABLE orders (tenant_id int NOT NULL, order_id int NOT NULL, amount int, note text,
    CONSTRAINT ${LONG} CHECK (amount > 0), PRIMARY KEY (tenant_id, order_id));
  CREATE TABLE plans (plan_id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO app.users VALUES (1, 1, 'a@x', 1), (2, 1, 'b@x', 1), (3, 1, 'c@x', 1);
  INSERT INTO orders VALUES (1, 1, 5, NULL);
  INSERT INTO plans VALUES (1, 'basic');`;

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url);
  reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
  await reference.query(SCHEMA);
  await weave.query(SCHEMA);
  await weave.query(`SELECT create_distributed_table('app.users', 'tenant_id', shard_count => 4)`);
  await weave.query(`SELECT create_distributed_table('orders', 'tenant_id', colocate_with => 'app.users')`);
  await weave.query(`SELECT create_reference_table('plans')`);
});

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

const FIELDS = ['code', 'message', 'detail', 'hint', 'schema', 'table', 'column', 'constraint'] as const;

async function errorOf(c: pg.Client, sql: string, values?: unknown[], block = false): Promise<Record<string, string | undefined>> {
  if (block) await c.query('BEGIN');
  try {
    await c.query(values ? { text: sql, values } : sql);
  } catch (e) {
    const err = e as Record<string, string | undefined>;
    return Object.fromEntries(FIELDS.map((f) => [f, err[f]]));
  } finally {
    if (block) await c.query('ROLLBACK');
  }
  assert.fail(`no error from: ${sql}`);
}

async function sameError(sql: string, values?: unknown[], block = false): Promise<Record<string, string | undefined>> {
  const expected = await errorOf(reference, sql, values, block);
  const actual = await errorOf(weave, sql, values, block);
  assert.deepEqual(actual, expected, sql);
  return actual;
}

const CASES: Array<{ what: string; sql: string; values?: unknown[] }> = [
  { what: 'unique violation of the primary key by key', sql: `INSERT INTO app.users VALUES (2, 1, 'z@x', 0)` },
  { what: 'unique violation of a unique index', sql: `INSERT INTO app.users VALUES (3, 7, 'c@x', 0)` },
  { what: 'NOT NULL on a router UPDATE', sql: `UPDATE app.users SET email = NULL WHERE tenant_id = 1` },
  { what: 'a CHECK constraint', sql: `UPDATE app.users SET score = -1 WHERE tenant_id = 2 AND user_id = 1` },
  { what: 'the primary key, with a parameter', sql: `INSERT INTO app.users VALUES ($1, 1, 'q@x', 0)`, values: [1] },
  { what: 'a multi-shard UPDATE', sql: `UPDATE app.users SET score = CASE WHEN tenant_id = 2 THEN -1 ELSE score END` },
  { what: 'a reference table', sql: `INSERT INTO plans VALUES (1, 'again')` },
];

for (const c of CASES) {
  test(`${c.what}: the client's names, as PostgreSQL reports them`, async () => {
    const err = await sameError(c.sql, c.values);
    assert.ok(!/_10\d{4}/.test(JSON.stringify(err)), `no shard name in ${JSON.stringify(err)}`);
    await sameError(c.sql, c.values, true);
  });
}

test('a multi-row INSERT across shards failing on one row names the table, not its shard', async () => {
  const err = await sameError(`INSERT INTO app.users VALUES (1, 50, 'n1@x', 0), (2, 50, NULL, 0), (3, 50, 'n3@x', 0)`);
  assert.equal(err.table, 'users');
  assert.equal(err.message, 'null value in column "email" of relation "users" violates not-null constraint');
});

test('COPY and INSERT … SELECT into a distributed table report the client\'s names', async () => {
  for (const c of [weave, reference]) await c.query(`CREATE TABLE staged (tenant_id int, user_id int, email text, score int)`);
  await weave.query(`INSERT INTO staged VALUES (3, 1, 'dup@x', 0)`);
  await reference.query(`INSERT INTO staged VALUES (3, 1, 'dup@x', 0)`);
  await sameError(`INSERT INTO app.users SELECT * FROM staged`);
  const copy = async (e: Endpoint): Promise<Record<string, string | undefined>> => {
    const raw = await rawConnect(e);
    try {
      const o = await copyIn(raw, 'COPY app.users FROM STDIN', [Buffer.from('2\t1\tcopy@x\t0\n')]);
      return { code: o.error?.code, message: o.error?.message, detail: o.error?.detail, table: o.error?.table, constraint: o.error?.constraint };
    } finally {
      raw.destroy();
    }
  };
  const [expected, actual] = [await copy(plainEndpoint(plain)), await copy(clusterEndpoint(cluster))];
  assert.equal(actual.code, '23505');
  assert.deepEqual(actual, expected);
});

test('a foreign key: the referenced shard in the detail becomes its table too', async () => {
  await weave.query(`CREATE TABLE app.visits (tenant_id int NOT NULL, user_id int NOT NULL, FOREIGN KEY (tenant_id, user_id) REFERENCES app.users)`);
  await reference.query(`CREATE TABLE app.visits (tenant_id int NOT NULL, user_id int NOT NULL, FOREIGN KEY (tenant_id, user_id) REFERENCES app.users)`);
  await weave.query(`SELECT create_distributed_table('app.visits', 'tenant_id', colocate_with => 'app.users')`);
  const err = await sameError(`INSERT INTO app.visits VALUES (1, 99)`);
  assert.match(err.detail ?? '', /is not present in table "users"/);
});

test('a constraint name Citus\'s rule clipped and hashed on the shard keeps the shard\'s name; the table is named', async () => {
  const err = await errorOf(weave, `INSERT INTO orders VALUES (1, 9, -3, NULL)`);
  assert.equal(err.code, '23514');
  assert.equal(err.table, 'orders');
  assert.match(err.message ?? '', /^new row for relation "orders" violates check constraint "a_constraint_name_long_enough_that_the_shard_[^"]*_10\d+"$/);
});

test('a value that merely looks like a shard name is left as the worker wrote it', async () => {
  const shard = (await weave.query(`SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'orders'::regclass ORDER BY shardid LIMIT 1`)).rows[0].shardid as string;
  const err = await errorOf(weave, `SELECT * FROM orders WHERE tenant_id = 1 AND amount = $1`, [`orders_${shard}`]);
  assert.equal(err.code, '22P02');
  assert.equal(err.message, `invalid input syntax for type integer: "orders_${shard}"`);
  const row = await errorOf(weave, `INSERT INTO app.users VALUES (1, 1, $1, 0)`, [`users_${shard}`]);
  assert.equal(row.constraint, 'users_pkey');
});
