/**
 * Distributed objects (Citus's pg_dist_object) on a 3-worker cluster of
 * which 2 are registered at first: objects that exist only on the
 * coordinator's PostgreSQL (created there directly, as before any worker
 * existed) reach the workers before ALTER TABLE on a distributed table uses
 * them, before ALTER TYPE changes them and before GRANT … ON TYPE; objects
 * created through the coordinator are recorded, dropped ones forgotten; a
 * node added later receives every recorded object. Worker catalogs are
 * checked directly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { assertNoPreparedTransactions, pgError, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
/** The client superuser connected to the coordinator's PostgreSQL directly, bypassing pgweave. */
let direct: pg.Client;
const T = { timeout: 180_000 };

before(async () => {
  c = await startDdlCluster({ workers: 3, registered: 2 });
  const pgAddr = c.cluster.coordinatorPg;
  direct = new pg.Client({ host: pgAddr.host, port: pgAddr.port, user: 'postgres', password: c.cluster.password, database: 'postgres' });
  await direct.connect();
  await q('CREATE TABLE m (id int PRIMARY KEY, v int)');
  await q(`SELECT create_distributed_table('m', 'id', shard_count => 4)`);
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

/** pg_dist_object through the coordinator, as "type schema.name" strings. */
async function distObjects(): Promise<string[]> {
  const r = await q(`SELECT type, array_to_string(object_names, '.') AS name FROM pg_dist_object ORDER BY 1, 2`);
  return r.rows.map((row) => `${row.type} ${row.name}`);
}

test('objects only the coordinator has reach the workers before ALTER TABLE ADD COLUMN / ALTER COLUMN TYPE / ADD CONSTRAINT uses them', T, async () => {
  await direct.query(`CREATE TYPE lvl AS ENUM ('lo', 'hi');
    CREATE DOMAIN pct AS int CHECK (VALUE BETWEEN 0 AND 100);
    CREATE FUNCTION small(int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 < 1000';
    CREATE TYPE mood AS ENUM ('sad', 'glad')`);
  assert.deepEqual(await onEachWorker(registered(), "SELECT to_regtype('public.lvl') AS t"), [[{ t: null }], [{ t: null }]]);

  await q('ALTER TABLE m ADD COLUMN l lvl');
  await q('ALTER TABLE m ALTER COLUMN v TYPE pct');
  await q('ALTER TABLE m ADD CONSTRAINT id_small CHECK (small(id))');
  // Inside a block the objects reach the workers before the block's own shard DDL.
  await q('BEGIN');
  await q(`ALTER TABLE m ADD COLUMN md mood DEFAULT 'glad'`);
  await q('COMMIT');

  const check = `SELECT to_regtype('public.lvl') IS NOT NULL AS lvl, to_regtype('public.pct') IS NOT NULL AS pct,
                        to_regprocedure('public.small(integer)') IS NOT NULL AS small, to_regtype('public.mood') IS NOT NULL AS mood`;
  const all = { lvl: true, pct: true, small: true, mood: true };
  assert.deepEqual(await onEachWorker(registered(), check), [[all], [all]]);

  await q(`INSERT INTO m (id, v, l) VALUES (1, 50, 'hi'), (2, 7, 'lo')`);
  assert.deepEqual((await q(`SELECT v, l::text, md::text FROM m WHERE id = 1`)).rows, [{ v: 50, l: 'hi', md: 'glad' }]);
  await assert.rejects(q(`INSERT INTO m (id, v) VALUES (3, 150)`), pgError('23514'), 'the domain CHECK holds on the shard');
  await assert.rejects(q(`INSERT INTO m (id, v) VALUES (5000, 1)`), pgError('23514'), 'the CHECK calling the function holds on the shard');

  const recorded = await distObjects();
  for (const o of ['type public.lvl', 'type public.pct', 'function public.small', 'type public.mood']) assert.ok(recorded.includes(o), `${o} in ${recorded}`);
  await assertNoPreparedTransactions(c);
});

test('CREATE through the coordinator is recorded (also inside a block), DROP forgotten; ALTER TYPE on a coordinator-only type', T, async () => {
  await q('CREATE TYPE spare AS (a int, b text)');
  await q('CREATE EXTENSION cube');
  await q('BEGIN');
  await q(`CREATE TYPE in_block AS ENUM ('x')`);
  assert.ok(!(await distObjects()).includes('type public.in_block'), 'recorded once the block commits');
  await q('COMMIT');
  await q(`CREATE TYPE gone AS ENUM ('z')`);
  let recorded = await distObjects();
  for (const o of ['type public.spare', 'extension cube', 'type public.in_block', 'type public.gone']) assert.ok(recorded.includes(o), `${o} in ${recorded}`);

  await q('DROP TYPE gone');
  assert.ok(!(await distObjects()).includes('type public.gone'));
  const rows = await c.coordinatorPg.query(`SELECT count(*)::int AS n FROM pgweave.dist_object o WHERE pg_identify_object_as_address(o.classid, o.objid, o.objsubid) IS NULL
                                            OR (pg_identify_object_as_address(o.classid, o.objid, o.objsubid)).object_names IS NULL`);
  assert.deepEqual(rows.rows, [{ n: 0 }], 'the record of the dropped type is gone');

  // A type created before the workers: the ALTER creates it on them first, then changes it everywhere.
  await direct.query(`CREATE TYPE early AS ENUM ('a')`);
  await q(`ALTER TYPE early ADD VALUE 'b'`);
  const labels = "SELECT array_agg(enumlabel ORDER BY enumsortorder)::text AS l FROM pg_enum WHERE enumtypid = to_regtype('public.early')";
  assert.deepEqual(await onEachWorker(registered(), labels), [[{ l: '{a,b}' }], [{ l: '{a,b}' }]]);
  assert.ok((await distObjects()).includes('type public.early'));
  // The same for a rename; the record follows the object (its names are read from it).
  await direct.query(`CREATE TYPE early_name AS (x int)`);
  await q('ALTER TYPE early_name RENAME TO later_name');
  assert.deepEqual(await onEachWorker(registered(), "SELECT to_regtype('public.later_name') IS NOT NULL AS t"), [[{ t: true }], [{ t: true }]]);
  recorded = await distObjects();
  assert.ok(recorded.includes('type public.later_name') && !recorded.includes('type public.early_name'), `${recorded}`);
  await assertNoPreparedTransactions(c);
});

test('GRANT / REVOKE … ON TYPE | DOMAIN reach every worker; a coordinator-only type arrives with its privileges', T, async () => {
  await q(`CREATE ROLE type_user LOGIN`);
  const usage = (type: string) =>
    onEachWorker(registered(), `SELECT has_type_privilege('type_user', $1, 'USAGE') AS u`, [type]).then((rs) => rs.map((r) => r[0].u));

  await q(`CREATE TYPE secret AS ENUM ('s')`);
  await q('REVOKE USAGE ON TYPE secret FROM PUBLIC');
  assert.deepEqual(await usage('public.secret'), [false, false]);
  await q('GRANT USAGE ON TYPE secret TO type_user');
  assert.deepEqual(await usage('public.secret'), [true, true]);

  // Created on the coordinator only: the GRANT creates it on the workers, then grants there too.
  await direct.query('CREATE DOMAIN code AS text; REVOKE USAGE ON DOMAIN code FROM PUBLIC');
  await q('GRANT USAGE ON DOMAIN code TO type_user');
  assert.deepEqual(await usage('public.code'), [true, true]);
  await q('REVOKE USAGE ON DOMAIN code FROM type_user');
  assert.deepEqual(await usage('public.code'), [false, false]);

  // Privileges granted on the coordinator only travel with the type when a column needs it.
  await direct.query(`CREATE TYPE priv AS ENUM ('p'); REVOKE USAGE ON TYPE priv FROM PUBLIC; GRANT USAGE ON TYPE priv TO type_user WITH GRANT OPTION`);
  await q('ALTER TABLE m ADD COLUMN p priv');
  const acl = "SELECT typacl::text AS acl FROM pg_type WHERE oid = to_regtype('public.priv')";
  const expected = (await direct.query(acl)).rows;
  assert.deepEqual(await onEachWorker(registered(), acl), [expected, expected]);
  await assertNoPreparedTransactions(c);
});

test('a node added later receives every recorded object, used by a table or not', T, async () => {
  const third = c.cluster.workers[2]!;
  await q('SELECT citus_add_node($1, $2)', [third.host, third.port]);
  const check = `SELECT to_regtype('public.spare') IS NOT NULL AS spare, to_regtype('public.in_block') IS NOT NULL AS in_block,
                        to_regtype('public.early') IS NOT NULL AS early, to_regtype('public.lvl') IS NOT NULL AS lvl,
                        (SELECT count(*)::int FROM pg_extension WHERE extname = 'cube') AS cube,
                        has_type_privilege('type_user', 'public.secret', 'USAGE') AS secret`;
  assert.deepEqual(await onEachWorker([c.workers[2]!], check), [[{ spare: true, in_block: true, early: true, lvl: true, cube: 1, secret: true }]]);
  await assertNoPreparedTransactions(c);
});
