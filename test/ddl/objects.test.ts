/**
 * Objects shards depend on, on a 3-worker cluster of which 2 are registered
 * at first: types, domains, collations, extensions and functions created
 * through the coordinator reach every worker (all or nothing); objects that
 * exist only on the coordinator's PostgreSQL (created before pgweave
 * propagated them) are created on the workers by create_distributed_table /
 * create_reference_table before the shards; a node added afterwards gets
 * them before its reference table copies. Tables using them are written and
 * read through the coordinator. Worker catalogs are checked directly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { assertNoPreparedTransactions, pgError, shardsOf, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
/** The client superuser connected to the coordinator's PostgreSQL directly, bypassing pgweave. */
let direct: pg.Client;
const T = { timeout: 180_000 };

before(async () => {
  c = await startDdlCluster({ workers: 3, registered: 2 });
  const pgAddr = c.cluster.coordinatorPg;
  direct = new pg.Client({ host: pgAddr.host, port: pgAddr.port, user: 'postgres', password: c.cluster.password, database: 'postgres' });
  await direct.connect();
});

after(async () => {
  await direct?.end();
  await c?.stop();
});

const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);
const registered = () => c.workers.slice(0, 2);

async function onEachWorker(workers: pg.Client[], sql: string, params?: unknown[]): Promise<any[][]> {
  return Promise.all(workers.map(async (w) => (await w.query(sql, params)).rows));
}

test('CREATE / ALTER / DROP TYPE reach every worker; an enum column is written and read through the coordinator', T, async () => {
  await q(`CREATE TYPE mood AS ENUM ('sad', 'ok')`);
  const labels = "SELECT array_agg(enumlabel ORDER BY enumsortorder)::text AS l FROM pg_enum WHERE enumtypid = to_regtype('public.mood')";
  assert.deepEqual(await onEachWorker(registered(), labels), [[{ l: '{sad,ok}' }], [{ l: '{sad,ok}' }]]);

  await q(`CREATE TABLE people (id int PRIMARY KEY, m mood NOT NULL)`);
  await q(`SELECT create_distributed_table('people', 'id', shard_count => 4)`);
  await q(`ALTER TYPE mood ADD VALUE 'happy'`);
  await q(`ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'`);
  assert.deepEqual(await onEachWorker(registered(), labels), [[{ l: '{blue,ok,happy}' }], [{ l: '{blue,ok,happy}' }]]);
  await q(`INSERT INTO people VALUES (1, 'happy'), (2, 'blue'), (3, 'ok')`);
  assert.deepEqual((await q('SELECT m::text FROM people WHERE id = 1')).rows, [{ m: 'happy' }]);
  assert.deepEqual((await q(`SELECT count(*)::int AS n FROM people WHERE m > 'blue'`)).rows, [{ n: 2 }], 'enum order holds on the shards');
  await assert.rejects(q(`INSERT INTO people VALUES (4, 'angry')`), pgError('22P02'));

  await q(`CREATE TYPE pair AS (a int, b text)`);
  await q(`ALTER TYPE pair ADD ATTRIBUTE c bool`);
  const attrs = "SELECT array_agg(attname ORDER BY attnum)::text AS a FROM pg_attribute WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = to_regtype('public.pair')) AND attnum > 0";
  assert.deepEqual(await onEachWorker(registered(), attrs), [[{ a: '{a,b,c}' }], [{ a: '{a,b,c}' }]]);
  await q('DROP TYPE pair');
  assert.deepEqual(await onEachWorker(registered(), "SELECT to_regtype('public.pair') AS t"), [[{ t: null }], [{ t: null }]]);

  // All or nothing: a type that already exists on one worker fails the statement everywhere.
  await c.workers[1]!.query('CREATE TYPE clash AS ENUM (\'x\')');
  await assert.rejects(q(`CREATE TYPE clash AS ENUM ('x', 'y')`), pgError('42710'));
  assert.equal((await direct.query("SELECT to_regtype('public.clash') AS t")).rows[0].t, null, 'the coordinator rolled back');
  assert.deepEqual((await c.workers[0]!.query("SELECT to_regtype('public.clash') AS t")).rows, [{ t: null }]);
  await c.workers[1]!.query('DROP TYPE clash');
  await assertNoPreparedTransactions(c);
});

test('CREATE EXTENSION reaches every worker; a citext distribution column routes case-insensitively', T, async () => {
  await q('CREATE EXTENSION citext');
  assert.deepEqual(await onEachWorker(registered(), "SELECT extname FROM pg_extension WHERE extname = 'citext'"), [[{ extname: 'citext' }], [{ extname: 'citext' }]]);
  await q('CREATE TABLE users (email citext PRIMARY KEY, n int)');
  await q(`SELECT create_distributed_table('users', 'email', shard_count => 4)`);
  await q(`INSERT INTO users VALUES ('Alice@Example.com', 1), ('bob@example.com', 2)`);
  assert.deepEqual((await q(`SELECT n FROM users WHERE email = 'ALICE@EXAMPLE.COM'`)).rows, [{ n: 1 }]);
  assert.deepEqual((await q(`SELECT n FROM users WHERE email = $1`, ['BOB@example.COM'])).rows, [{ n: 2 }]);
  await assert.rejects(q(`INSERT INTO users VALUES ('ALICE@example.com', 3)`), pgError('23505'));
});

test('a domain with a CHECK and a function in a column default and a CHECK constraint', T, async () => {
  await q('CREATE DOMAIN posint AS int CHECK (VALUE > 0)');
  await q(`CREATE FUNCTION default_label() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'label' $$`);
  await q(`CREATE FUNCTION is_even(int) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT $1 % 2 = 0 $$`);
  assert.deepEqual(
    await onEachWorker(registered(), "SELECT to_regtype('public.posint') IS NOT NULL AS d, to_regprocedure('public.is_even(integer)') IS NOT NULL AS f"),
    [[{ d: true, f: true }], [{ d: true, f: true }]],
  );
  await q('CREATE TABLE items (id int PRIMARY KEY, qty posint, label text DEFAULT default_label(), even int CHECK (is_even(even)))');
  await q(`SELECT create_distributed_table('items', 'id', shard_count => 4)`);
  await q('INSERT INTO items (id, qty, even) VALUES (1, 5, 2)');
  assert.deepEqual((await q('SELECT qty, label FROM items WHERE id = 1')).rows, [{ qty: 5, label: 'label' }]);
  await assert.rejects(q('INSERT INTO items (id, qty, even) VALUES (2, -1, 2)'), pgError('23514'));
  await assert.rejects(q('INSERT INTO items (id, qty, even) VALUES (3, 1, 3)'), pgError('23514'));

  await q(`CREATE OR REPLACE FUNCTION default_label() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'relabel' $$`);
  assert.deepEqual(await onEachWorker(registered(), "SELECT public.default_label() AS l"), [[{ l: 'relabel' }], [{ l: 'relabel' }]]);
  await q('DROP FUNCTION IF EXISTS no_such_function(int)');
});

test('objects only the coordinator has are created on the workers before the shards, and on a node added later', T, async () => {
  // Created on the coordinator's PostgreSQL directly: no worker has them.
  await direct.query(`CREATE SCHEMA app;
    CREATE TYPE app.status AS ENUM ('new', 'done');
    CREATE COLLATION app.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    CREATE DOMAIN app.code AS text COLLATE app.nocase CHECK (length(VALUE) <= 8);
    CREATE FUNCTION app.next_code() RETURNS app.code LANGUAGE sql AS $$ SELECT 'c1'::app.code $$;
    CREATE EXTENSION hstore;
    CREATE TABLE app.tasks (id bigint PRIMARY KEY, s app.status NOT NULL DEFAULT 'new', code app.code DEFAULT app.next_code(), attrs hstore, tags app.status[]);
    CREATE TABLE app.kinds (code app.code PRIMARY KEY, s app.status)`);
  for (const w of registered()) {
    assert.deepEqual((await w.query("SELECT to_regtype('app.status') AS t")).rows, [{ t: null }]);
  }
  await q(`SELECT create_distributed_table('app.tasks', 'id', shard_count => 4)`);
  await q(`SELECT create_reference_table('app.kinds')`);
  const check = `SELECT to_regtype('app.status') IS NOT NULL AS status, to_regtype('app.code') IS NOT NULL AS code,
                        (SELECT collisdeterministic FROM pg_collation WHERE collname = 'nocase') AS det,
                        to_regprocedure('app.next_code()') IS NOT NULL AS fn,
                        (SELECT count(*)::int FROM pg_extension WHERE extname = 'hstore') AS ext,
                        (SELECT pg_get_userbyid(typowner) FROM pg_type WHERE oid = to_regtype('app.status')) AS owner`;
  const expected = { status: true, code: true, det: false, fn: true, ext: 1, owner: 'postgres' };
  assert.deepEqual(await onEachWorker(registered(), check), [[expected], [expected]]);

  await q(`INSERT INTO app.tasks (id, attrs, tags) VALUES (1, 'a=>1', '{new,done}'), (2, 'b=>2', NULL)`);
  await q(`INSERT INTO app.kinds VALUES ('ABC', 'done')`);
  assert.deepEqual((await q(`SELECT s::text, code::text, attrs -> 'a' AS a FROM app.tasks WHERE id = 1`)).rows, [{ s: 'new', code: 'c1', a: '1' }]);
  assert.deepEqual((await q(`SELECT s::text FROM app.kinds WHERE code = 'abc'`)).rows, [{ s: 'done' }], 'the nondeterministic collation holds on the shard');
  await assert.rejects(q(`INSERT INTO app.kinds VALUES ('toolongcode', 'new')`), pgError('23514'));

  // A third node: the objects arrive before its copy of the reference table.
  const third = c.cluster.workers[2]!;
  await q('SELECT citus_add_node($1, $2)', [third.host, third.port]);
  assert.deepEqual(await onEachWorker([c.workers[2]!], check), [[expected]]);
  const kinds = (await shardsOf(c, 'app.kinds')).find((s) => s.worker === c.workers[2]);
  assert.ok(kinds, 'the new node holds a placement of the reference table');
  assert.deepEqual((await c.workers[2]!.query(`SELECT code::text, s::text FROM app."${kinds.name}"`)).rows, [{ code: 'ABC', s: 'done' }]);
  await assertNoPreparedTransactions(c);
});
