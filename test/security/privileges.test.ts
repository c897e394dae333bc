/**
 * Privileges beyond single tables (issue 10), against a real 2-worker
 * cluster: GRANT on sequences (which stay on the coordinator) and on
 * functions (made equal on workers that have the function), GRANT … ON ALL
 * TABLES IN SCHEMA reaching every shard, ALTER DEFAULT PRIVILEGES holding for
 * tables distributed later, and DROP OWNED BY / REASSIGN OWNED BY on every
 * node with pgweave's catalog consistent afterwards. Each is checked in the
 * workers' catalogs and through what the limited role can then do.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestCluster } from '../helpers/cluster.js';
import { Client, startSecurityCluster, type SecurityCluster } from './support.js';

const PASSWORDS = { carol: 'Carol-pw-3e9a71', dave: 'Dave-pw-b1c8f2' };

let cluster: TestCluster;
let admin: Client;
let carol: Client;
let login: SecurityCluster['login'];
let stop: SecurityCluster['stop'] | undefined;

before(async () => {
  ({ cluster, admin, login, stop } = await startSecurityCluster());
  await admin.ok(`CREATE ROLE carol LOGIN PASSWORD '${PASSWORDS.carol}'`);
  await admin.ok(`CREATE ROLE dave LOGIN PASSWORD '${PASSWORDS.dave}'`);
  await admin.ok('CREATE ROLE erin NOLOGIN');
  carol = await login('carol', PASSWORDS.carol);
});

after(async () => {
  await stop?.();
});

/** The result column of run_command_on_workers / _shards rows, failing on any node's error. */
async function onWorkers(sql: string): Promise<string[]> {
  const r = await admin.ok(`SELECT * FROM run_command_on_workers($cmd$${sql}$cmd$)`);
  for (const row of r) assert.equal(row[2], 't', row[3]);
  return r.map((row) => row[3]!);
}

/** The result on every placement of every shard of `table` (a reference table's shard on each node). */
async function onShards(table: string, sql: string): Promise<string[]> {
  const r = await admin.ok(`SELECT * FROM run_command_on_placements('${table}', $cmd$${sql}$cmd$)`);
  for (const row of r) assert.equal(row[3], 't', row[4]);
  return r.map((row) => row[4]!);
}

test('GRANT USAGE on a sequence lets a role insert with a serial default; REVOKE stops it', async () => {
  await admin.ok('CREATE TABLE orders (id bigserial, tenant int NOT NULL, note text, PRIMARY KEY (tenant, id))');
  await admin.ok("SELECT create_distributed_table('orders', 'tenant', shard_count => 4)");
  await admin.ok('GRANT SELECT, INSERT ON orders TO carol');
  const denied = await carol.query("INSERT INTO orders (tenant, note) VALUES (1, 'a')");
  assert.equal(denied.error, '42501', denied.message);
  assert.match(denied.message ?? '', /sequence orders_id_seq/);

  await admin.ok('GRANT USAGE ON SEQUENCE orders_id_seq TO carol');
  await carol.ok("INSERT INTO orders (tenant, note) VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  assert.deepEqual(await carol.ok('SELECT count(DISTINCT id), count(*) FROM orders'), [['3', '3']]);

  await admin.ok('REVOKE USAGE ON SEQUENCE orders_id_seq FROM carol');
  assert.equal((await carol.query("INSERT INTO orders (tenant, note) VALUES (4, 'd')")).error, '42501');
  await admin.ok('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO carol');
  await carol.ok("INSERT INTO orders (tenant, note) VALUES (4, 'd')");
  assert.deepEqual(await carol.ok('SELECT count(*) FROM orders'), [['4']]);
});

test('GRANT / REVOKE EXECUTE on a function: equal on the workers that have it, enforced on the shards', async () => {
  const fn = 'CREATE FUNCTION public.double_it(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$';
  await admin.ok(fn);
  // CREATE FUNCTION through the coordinator creates it on every worker too.
  assert.deepEqual(await onWorkers("SELECT count(*) FROM pg_proc WHERE oid = 'public.double_it(int)'::regprocedure"), ['1', '1']);
  await admin.ok('CREATE FUNCTION public.coordinator_only(x int) RETURNS int LANGUAGE sql AS $$ SELECT x $$');
  await admin.ok('CREATE TABLE measures (tenant int NOT NULL, v int)');
  await admin.ok('INSERT INTO measures SELECT i % 8, i FROM generate_series(1, 40) i');
  await admin.ok("SELECT create_distributed_table('measures', 'tenant', shard_count => 4)");
  await admin.ok('GRANT SELECT ON measures TO carol');

  await admin.ok('REVOKE EXECUTE ON FUNCTION double_it(int) FROM PUBLIC');
  await admin.ok('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC');
  const acl = "SELECT coalesce(proacl::text, 'default') FROM pg_proc WHERE oid = 'public.double_it(int)'::regprocedure";
  assert.deepEqual(await onWorkers(acl), ['{postgres=X/postgres}', '{postgres=X/postgres}']);
  assert.equal((await carol.query('SELECT sum(double_it(v)) FROM measures')).error, '42501');

  await admin.ok('GRANT EXECUTE ON FUNCTION double_it(int) TO carol');
  assert.deepEqual(await onWorkers(acl), ['{postgres=X/postgres,carol=X/postgres}', '{postgres=X/postgres,carol=X/postgres}']);
  assert.deepEqual(await carol.ok('SELECT sum(double_it(v)) FROM measures'), [['1640']], 'multi-shard, on the shards');
  assert.deepEqual(await carol.ok('SELECT double_it(v) FROM measures WHERE tenant = 3 ORDER BY 1 LIMIT 1'), [['6']], 'router');
  // A function no shard query uses: GRANT … ON ROUTINE works the same.
  await admin.ok('GRANT EXECUTE ON ROUTINE coordinator_only(int) TO carol');
  assert.deepEqual(await carol.ok('SELECT coordinator_only(7)'), [['7']]);

  // The worker's copy is made to match even if it had drifted.
  await onWorkers('GRANT EXECUTE ON FUNCTION public.double_it(int) TO dave');
  await admin.ok('REVOKE EXECUTE ON FUNCTION double_it(int) FROM carol');
  assert.deepEqual(await onWorkers(acl), ['{postgres=X/postgres}', '{postgres=X/postgres}']);
  assert.equal((await carol.query('SELECT sum(double_it(v)) FROM measures')).error, '42501');
  assert.equal((await carol.query('SELECT double_it(v) FROM measures WHERE tenant = 3')).error, '42501');
});

test('GRANT / REVOKE … ON ALL TABLES IN SCHEMA reaches every shard of the schema\'s tables', async () => {
  await admin.ok('CREATE SCHEMA app');
  await admin.ok('GRANT USAGE ON SCHEMA app TO carol');
  await admin.ok('CREATE TABLE app.events (tenant int NOT NULL, v int)');
  await admin.ok('INSERT INTO app.events SELECT i % 5, i FROM generate_series(1, 20) i');
  await admin.ok("SELECT create_distributed_table('app.events', 'tenant', shard_count => 4)");
  await admin.ok('CREATE TABLE app.kinds (k int PRIMARY KEY)');
  await admin.ok('INSERT INTO app.kinds VALUES (1), (2)');
  await admin.ok("SELECT create_reference_table('app.kinds')");
  assert.equal((await carol.query('SELECT count(*) FROM app.events')).error, '42501');

  await admin.ok('GRANT SELECT ON ALL TABLES IN SCHEMA app TO carol');
  const canRead = "SELECT has_table_privilege('carol', '%s', 'SELECT')::text";
  assert.deepEqual(await onShards('app.events', canRead), ['true', 'true', 'true', 'true']);
  assert.deepEqual(await onShards('app.kinds', canRead), ['true', 'true'], 'the reference table on both nodes');
  assert.deepEqual(await carol.ok('SELECT count(*) FROM app.events'), [['20']], 'multi-shard');
  assert.deepEqual(await carol.ok('SELECT count(*) FROM app.events WHERE tenant = 2'), [['4']], 'router');
  assert.deepEqual(await carol.ok('SELECT count(*) FROM app.events e JOIN app.kinds k ON k.k = e.tenant'), [['8']], 'join with the reference table');

  await admin.ok('REVOKE ALL ON ALL TABLES IN SCHEMA app FROM carol');
  assert.deepEqual(await onShards('app.events', canRead), ['false', 'false', 'false', 'false']);
  assert.equal((await carol.query('SELECT count(*) FROM app.events')).error, '42501');
  assert.equal((await carol.query('SELECT count(*) FROM app.events WHERE tenant = 2')).error, '42501');
  assert.equal((await carol.query('SELECT * FROM app.kinds')).error, '42501');
});

test('ALTER DEFAULT PRIVILEGES: tables and sequences created and distributed later carry them on every shard', async () => {
  await admin.ok('ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT, INSERT ON TABLES TO carol');
  await admin.ok('ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT USAGE ON SEQUENCES TO carol');
  const defaults = await onWorkers("SELECT string_agg(defaclobjtype::text || ':' || defaclacl::text, ' ' ORDER BY defaclobjtype) FROM pg_default_acl WHERE defaclnamespace = 'app'::regnamespace");
  assert.deepEqual(defaults, ['S:{carol=U/postgres} r:{carol=ar/postgres}', 'S:{carol=U/postgres} r:{carol=ar/postgres}']);

  await admin.ok('CREATE TABLE app.later (id serial, tenant int NOT NULL, PRIMARY KEY (tenant, id))');
  await admin.ok("SELECT create_distributed_table('app.later', 'tenant', shard_count => 4)");
  assert.deepEqual(await onShards('app.later', "SELECT has_table_privilege('carol', '%s', 'INSERT')::text"), ['true', 'true', 'true', 'true']);
  await carol.ok('INSERT INTO app.later (tenant) SELECT i FROM generate_series(1, 10) i');
  assert.deepEqual(await carol.ok('SELECT count(*), count(DISTINCT id) FROM app.later'), [['10', '10']]);
  assert.equal((await carol.query('DELETE FROM app.later')).error, '42501', 'only what the defaults grant');

  await admin.ok('ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE INSERT ON TABLES FROM carol');
  await admin.ok('CREATE TABLE app.later2 (tenant int NOT NULL)');
  await admin.ok("SELECT create_distributed_table('app.later2', 'tenant', shard_count => 4)");
  assert.equal((await carol.query('INSERT INTO app.later2 VALUES (1)')).error, '42501');
  assert.deepEqual(await carol.ok('SELECT count(*) FROM app.later2'), [['0']]);
});

test('REASSIGN OWNED BY and DROP OWNED BY act on every node; the catalog follows', async () => {
  await admin.ok('GRANT CREATE ON SCHEMA public TO dave');
  const dave = await login('dave', PASSWORDS.dave);
  await dave.ok('CREATE TABLE dave_items (tenant int NOT NULL, v text)');
  await dave.ok("INSERT INTO dave_items SELECT i, 'x' FROM generate_series(1, 12) i");
  await dave.ok("SELECT create_distributed_table('dave_items', 'tenant', shard_count => 4)");
  await dave.ok('CREATE TABLE dave_ref (k int PRIMARY KEY)');
  await dave.ok("SELECT create_reference_table('dave_ref')");
  await admin.ok('GRANT SELECT ON measures TO dave');
  const owner = "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = '%s'::regclass";
  assert.deepEqual(await onShards('dave_items', owner), ['dave', 'dave', 'dave', 'dave']);

  await admin.ok('REASSIGN OWNED BY dave TO erin');
  assert.deepEqual(await admin.ok("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname IN ('dave_items', 'dave_ref') ORDER BY relname"), [['erin'], ['erin']]);
  assert.deepEqual(await onShards('dave_items', owner), ['erin', 'erin', 'erin', 'erin']);
  assert.deepEqual(await onShards('dave_ref', owner), ['erin', 'erin'], 'the reference table on both nodes');
  assert.equal((await dave.query('ALTER TABLE dave_items ADD COLUMN w int')).error, '42501', 'dave no longer owns it');
  assert.deepEqual(await dave.ok('SELECT count(*) FROM measures'), [['40']], 'grants to dave stay (REASSIGN moves ownership only)');

  const shardTables = "SELECT count(*) FROM pg_class WHERE relname ~ '^dave_(items|ref)_[0-9]+$'";
  assert.deepEqual(await onWorkers(shardTables), ['3', '3']);
  await admin.ok('GRANT SELECT ON measures TO erin');
  await admin.ok('DROP OWNED BY erin, dave');
  assert.deepEqual(await onWorkers(shardTables), ['0', '0'], 'the shards are gone');
  assert.deepEqual(await admin.ok("SELECT count(*) FROM pg_class WHERE relname IN ('dave_items', 'dave_ref')"), [['0']]);
  assert.deepEqual(await admin.ok("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'dave%'"), [['0']]);
  assert.deepEqual(await admin.ok("SELECT count(*) FROM citus_shards WHERE table_name::text LIKE 'dave%'"), [['0']]);
  assert.equal((await dave.query('SELECT count(*) FROM measures')).error, '42501', 'grants to dave are gone on every path');
  assert.deepEqual(await onShards('measures', "SELECT has_table_privilege('dave', '%s', 'SELECT')::text"), ['false', 'false', 'false', 'false']);
  assert.deepEqual(await onWorkers("SELECT has_schema_privilege('dave', 'public', 'CREATE')::text"), ['false', 'false']);

  // The names are free again, on the coordinator and in the catalog.
  await admin.ok('CREATE TABLE dave_items (tenant int NOT NULL)');
  await admin.ok("SELECT create_distributed_table('dave_items', 'tenant', shard_count => 2)");
  await admin.ok('INSERT INTO dave_items VALUES (1), (2)');
  assert.deepEqual(await admin.ok('SELECT count(*) FROM dave_items'), [['2']]);
  await admin.ok('DROP ROLE erin');
  assert.deepEqual(await onWorkers("SELECT count(*) FROM pg_roles WHERE rolname = 'erin'"), ['0', '0']);

  // Inside a block the workers change with the block (in-block.test.ts): a ROLLBACK brings everything back.
  await admin.ok('BEGIN');
  await admin.ok('DROP OWNED BY carol');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await carol.ok('SELECT count(*) FROM orders'), [['4']], 'nothing of carol\'s was dropped');
});
