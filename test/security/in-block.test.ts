/**
 * Privilege statements inside a transaction block (issue 10), against a real
 * 2-worker cluster: ENABLE / FORCE ROW LEVEL SECURITY, CREATE / ALTER / DROP
 * POLICY, DROP OWNED BY and REASSIGN OWNED BY run on the block's own worker
 * connections, so ROLLBACK leaves every node as it was and COMMIT changes
 * every node. Checked in the workers' catalogs (through fresh connections,
 * which see only committed state) and through what a limited role can do.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestCluster } from '../helpers/cluster.js';
import { Client, startSecurityCluster, type SecurityCluster } from './support.js';

const PASSWORDS = { carol: 'Carol-pw-9a1b2c', dave: 'Dave-pw-3d4e5f' };

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
  await admin.ok('CREATE TABLE accounts (tenant text NOT NULL, id int NOT NULL, amount int, PRIMARY KEY (tenant, id))');
  await admin.ok("INSERT INTO accounts SELECT t, i, i FROM unnest(ARRAY['carol', 'dave', 'other']) t, generate_series(1, 6) i");
  await admin.ok("SELECT create_distributed_table('accounts', 'tenant', shard_count => 4)");
  await admin.ok('GRANT SELECT ON accounts TO carol');
  carol = await login('carol', PASSWORDS.carol);
});

after(async () => {
  await stop?.();
});

/** The value of `sql` (with %s for the shard) on every placement of `table`, committed state. */
async function onShards(table: string, sql: string): Promise<string[]> {
  const r = await admin.ok(`SELECT * FROM run_command_on_placements('${table}', $cmd$${sql}$cmd$)`);
  for (const row of r) assert.equal(row[3], 't', row[4]);
  return r.map((row) => row[4]!);
}

const RLS_FLAGS = "SELECT relrowsecurity || '/' || relforcerowsecurity FROM pg_class WHERE oid = '%s'::regclass";
const POLICIES = "SELECT coalesce(string_agg(polname || ':' || pg_get_expr(polqual, polrelid), ',' ORDER BY polname), '-') FROM pg_policy WHERE polrelid = '%s'::regclass";
const OWNER = "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = '%s'::regclass";
const CAROL_READS = "SELECT has_table_privilege('carol', '%s', 'SELECT')::text";

test('RLS and policies in a block: ROLLBACK leaves every shard unchanged, COMMIT changes every shard', async () => {
  await admin.ok('BEGIN');
  await admin.ok('ALTER TABLE accounts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY');
  await admin.ok('CREATE POLICY own_rows ON accounts USING (tenant = current_user)');
  await admin.ok("ALTER POLICY own_rows ON accounts USING (tenant = current_user OR tenant = 'other')");
  await admin.ok("INSERT INTO accounts VALUES ('carol', 100, 1), ('dave', 100, 1)");
  await admin.ok('ROLLBACK');
  assert.deepEqual(await onShards('accounts', RLS_FLAGS), Array(4).fill('false/false'));
  assert.deepEqual(await onShards('accounts', POLICIES), Array(4).fill('-'));
  assert.deepEqual(await admin.ok("SELECT count(*) FROM pg_policy WHERE polrelid = 'accounts'::regclass"), [['0']]);
  assert.deepEqual(await carol.ok('SELECT count(*) FROM accounts'), [['18']], 'no row-level security anywhere');

  await admin.ok('BEGIN');
  await admin.ok('ALTER TABLE accounts ENABLE ROW LEVEL SECURITY');
  await admin.ok('CREATE POLICY own_rows ON accounts USING (tenant = current_user)');
  await admin.ok("INSERT INTO accounts VALUES ('carol', 100, 1), ('dave', 100, 1)");
  await admin.ok('COMMIT');
  assert.deepEqual(await onShards('accounts', RLS_FLAGS), Array(4).fill('true/false'));
  assert.deepEqual(await onShards('accounts', POLICIES), Array(4).fill('own_rows:(tenant = CURRENT_USER)'));
  assert.deepEqual(await carol.ok('SELECT tenant, count(*) FROM accounts GROUP BY tenant'), [['carol', '7']], 'multi-shard');
  assert.deepEqual(await carol.ok("SELECT count(*) FROM accounts WHERE tenant = 'dave'"), [['0']], 'router');

  await admin.ok('BEGIN');
  await admin.ok('DROP POLICY own_rows ON accounts');
  await admin.ok('ALTER TABLE accounts DISABLE ROW LEVEL SECURITY');
  assert.deepEqual(await admin.ok('SELECT count(*) FROM accounts'), [['20']], 'the block reads its own change');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await onShards('accounts', POLICIES), Array(4).fill('own_rows:(tenant = CURRENT_USER)'));
  assert.deepEqual(await carol.ok('SELECT count(*) FROM accounts'), [['7']]);

  await admin.ok('BEGIN');
  await admin.ok('DROP POLICY own_rows ON accounts');
  await admin.ok('ALTER TABLE accounts DISABLE ROW LEVEL SECURITY');
  await admin.ok('COMMIT');
  assert.deepEqual(await onShards('accounts', POLICIES), Array(4).fill('-'));
  assert.deepEqual(await onShards('accounts', RLS_FLAGS), Array(4).fill('false/false'));
  assert.deepEqual(await carol.ok('SELECT count(*) FROM accounts'), [['20']]);
});

test('a failing policy statement in a block fails the block; nothing of it reaches any node', async () => {
  await admin.ok('BEGIN');
  await admin.ok('CREATE POLICY p1 ON accounts USING (true)');
  const refused = await admin.query('CREATE POLICY p1 ON accounts USING (false)');
  assert.equal(refused.error, '42710', refused.message);
  assert.equal((await admin.query('SELECT 1')).error, '25P02');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await onShards('accounts', POLICIES), Array(4).fill('-'));
});

test('REASSIGN OWNED BY in a block: ROLLBACK keeps every owner, COMMIT moves the table and its shards together', async () => {
  await admin.ok('GRANT CREATE ON SCHEMA public TO dave');
  const dave = await login('dave', PASSWORDS.dave);
  await dave.ok('CREATE TABLE dave_notes (tenant int NOT NULL, body text)');
  await dave.ok("INSERT INTO dave_notes SELECT i, 'n' FROM generate_series(1, 10) i");
  await dave.ok("SELECT create_distributed_table('dave_notes', 'tenant', shard_count => 4)");
  assert.deepEqual(await onShards('dave_notes', OWNER), Array(4).fill('dave'));

  await admin.ok('BEGIN');
  await admin.ok('REASSIGN OWNED BY dave TO erin');
  assert.deepEqual(await admin.ok("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'dave_notes'"), [['erin']]);
  await admin.ok('INSERT INTO dave_notes VALUES (11, $$in the block$$)');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await onShards('dave_notes', OWNER), Array(4).fill('dave'), 'the shards keep their owner');
  assert.deepEqual(await admin.ok("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'dave_notes'"), [['dave']]);
  await dave.ok('ALTER TABLE dave_notes ADD COLUMN extra int');

  await admin.ok('BEGIN');
  await admin.ok('REASSIGN OWNED BY dave TO erin');
  await admin.ok('COMMIT');
  assert.deepEqual(await onShards('dave_notes', OWNER), Array(4).fill('erin'));
  assert.deepEqual(await admin.ok("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'dave_notes'"), [['erin']]);
  assert.equal((await dave.query('ALTER TABLE dave_notes ADD COLUMN more int')).error, '42501', 'dave owns it no longer');
  await admin.ok('ALTER TABLE dave_notes OWNER TO dave');
});

test('DROP OWNED BY in a block: ROLLBACK keeps every grant, COMMIT revokes on every shard; dropping a distributed table is refused', async () => {
  assert.deepEqual(await onShards('accounts', CAROL_READS), Array(4).fill('true'));
  await admin.ok('BEGIN');
  await admin.ok('DROP OWNED BY carol');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await onShards('accounts', CAROL_READS), Array(4).fill('true'));
  assert.deepEqual(await carol.ok('SELECT count(*) FROM accounts'), [['20']]);

  await admin.ok('BEGIN');
  await admin.ok('DROP OWNED BY carol');
  await admin.ok('COMMIT');
  assert.deepEqual(await onShards('accounts', CAROL_READS), Array(4).fill('false'));
  assert.equal((await carol.query('SELECT count(*) FROM accounts')).error, '42501');
  assert.equal((await carol.query("SELECT count(*) FROM accounts WHERE tenant = 'carol'")).error, '42501');

  // dave owns a distributed table: its catalog rows cannot be deleted inside the block.
  await admin.ok('BEGIN');
  const refused = await admin.query('DROP OWNED BY dave');
  assert.equal(refused.error, '0A000', refused.message);
  assert.match(refused.message ?? '', /dave_notes/);
  assert.equal((await admin.query('SELECT 1')).error, '25P02', 'the block failed');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await onShards('dave_notes', OWNER), Array(4).fill('dave'));
  assert.deepEqual(await admin.ok('SELECT count(*) FROM dave_notes'), [['10']]);
});
