/**
 * The escalation suite of issue 10, against a real 2-worker cluster: a role
 * (alice) with no privilege on the distributed table `secret` and
 * row-level-security-limited access to `tenant_data` tries every path the
 * coordinator offers. Roles are created through the coordinator (so they
 * reach the workers with their SCRAM verifiers), every node logs every
 * statement (log_statement = 'all'), and "no rows" is checked on the wire:
 * no DataRow and no CopyData reached the client.
 *
 *   1. every read path of `secret` → 42501, nothing returned
 *   2. RESET ROLE, SET ROLE, SET SESSION AUTHORIZATION, a plpgsql RESET ROLE,
 *      COPY … TO PROGRAM, pg_read_file, run_command_on_*: no escalation
 *   3. RLS holds on every path; a policy change reaches every shard
 *   4. GRANT makes every path work, REVOKE stops it — at once, also through
 *      a second coordinator process
 *   5. wrong password, unknown role, NOLOGIN, connection limit, the internal
 *      role: the right SQLSTATEs; no password in any node's log or in the
 *      coordinator's output
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { Client, captureOutput, loginOutcome, logsContaining, postgresLogs, type Outcome } from './support.js';

const PASSWORDS = {
  alice: 'Alice-pw-7f3a9c',
  aliceNew: 'Alice-pw-new-8e61b0',
  bob: 'Bob-pw-91c2d4',
  app: 'App-pw-55d0e7',
  nologin: 'Nologin-pw-2b8e11',
  limited: 'Limited-pw-c4d1aa',
  wrong: 'Wrong-pw-0d9c3f',
};

let cluster: TestCluster;
let admin: Client;
let alice: Client;
let output: ReturnType<typeof captureOutput>;
let second: Coordinator | null = null;
const clients: Client[] = [];

const addr = () => cluster.config.listen;

async function login(user: string, password: string, at = addr()): Promise<Client> {
  const c = await Client.login(at, user, password);
  clients.push(c);
  return c;
}

before(async () => {
  output = captureOutput();
  cluster = await startTestCluster({ workers: 2 });
  admin = await login('postgres', cluster.password);
  for (const w of cluster.workers) await admin.ok(`SELECT citus_add_node('${w.host}', ${w.port})`);
  // Every statement every node receives goes to its log: the password check at the end is meaningful.
  await admin.ok("ALTER SYSTEM SET log_statement = 'all'");
  await admin.ok('SELECT pg_reload_conf()');
  for (const sql of ["ALTER SYSTEM SET log_statement = ''all''", 'SELECT pg_reload_conf()']) {
    const r = await admin.ok(`SELECT * FROM run_command_on_workers('${sql}')`);
    assert.deepEqual(r.map((row) => row[2]), ['t', 't'], JSON.stringify(r));
  }

  await admin.ok(`CREATE ROLE alice LOGIN PASSWORD '${PASSWORDS.alice}'`);
  await admin.ok(`CREATE ROLE bob LOGIN PASSWORD '${PASSWORDS.bob}'`);
  await admin.ok(`CREATE ROLE app LOGIN NOINHERIT PASSWORD '${PASSWORDS.app}'`);
  await admin.ok('GRANT alice, bob TO app');
  await admin.ok(`CREATE ROLE nologin_role NOLOGIN PASSWORD '${PASSWORDS.nologin}'`);
  await admin.ok(`CREATE ROLE limited LOGIN PASSWORD '${PASSWORDS.limited}' CONNECTION LIMIT 1`);
  await admin.ok('CREATE SCHEMA alice_space AUTHORIZATION alice');

  await admin.ok('CREATE TABLE secret (id int PRIMARY KEY, payload text)');
  await admin.ok("INSERT INTO secret SELECT i, 'classified-' || i FROM generate_series(1, 100) i");
  await admin.ok("SELECT create_distributed_table('secret', 'id', shard_count => 4)");

  await admin.ok('CREATE TABLE tenant_data (tenant text NOT NULL, id int NOT NULL, amount int, PRIMARY KEY (tenant, id))');
  await admin.ok("INSERT INTO tenant_data SELECT 'alice', i, i FROM generate_series(1, 10) i");
  await admin.ok("INSERT INTO tenant_data SELECT 'bob', i, 100 + i FROM generate_series(1, 20) i");
  await admin.ok("INSERT INTO tenant_data SELECT 'shared', i, 1000 FROM generate_series(1, 5) i");
  // The policy exists before distribution: shards are created with the table's policies and grants.
  await admin.ok('ALTER TABLE tenant_data ENABLE ROW LEVEL SECURITY');
  await admin.ok('CREATE POLICY tenant_isolation ON tenant_data USING (tenant = current_user)');
  await admin.ok('GRANT SELECT ON tenant_data TO alice, bob, limited');
  await admin.ok("SELECT create_distributed_table('tenant_data', 'tenant', shard_count => 4)");

  alice = await login('alice', PASSWORDS.alice);
});

after(async () => {
  for (const c of clients) c.close();
  await second?.close();
  await cluster?.stop();
  output?.stop();
});

/** Every way to read `secret`, with what it returns once alice may read it. */
const SECRET_READS: Array<{ path: string; sql: string; rows: number; copy?: boolean }> = [
  { path: 'router query', sql: 'SELECT payload FROM secret WHERE id = 7', rows: 1 },
  { path: 'multi-shard query', sql: 'SELECT * FROM secret', rows: 100 },
  { path: 'multi-shard aggregate', sql: 'SELECT count(*), max(id) FROM secret', rows: 1 },
  { path: 'join', sql: 'SELECT s.payload FROM secret s JOIN tenant_data t ON s.id = t.id', rows: 10 },
  { path: 'CTE', sql: 'WITH x AS (SELECT * FROM secret) SELECT * FROM x', rows: 100 },
  { path: 'subquery', sql: 'SELECT t.id FROM tenant_data t WHERE t.id IN (SELECT id FROM secret)', rows: 10 },
  { path: 'COPY secret TO STDOUT', sql: 'COPY secret TO STDOUT', rows: 100, copy: true },
  { path: 'COPY (SELECT …) TO STDOUT', sql: 'COPY (SELECT * FROM secret WHERE id < 50) TO STDOUT', rows: 49, copy: true },
];

const SECRET_WRITES = [
  "UPDATE secret SET payload = 'x' WHERE id = 1 RETURNING payload",
  'DELETE FROM secret WHERE id = 2 RETURNING *',
  "INSERT INTO secret VALUES (1000, 'x') RETURNING *",
];

function assertDenied(r: Outcome, what: string): void {
  assert.equal(r.error, '42501', `${what}: expected 42501, got ${r.error} ${r.message ?? ''}`);
  assert.equal(r.rows.length, 0, `${what}: rows reached the client`);
  assert.equal(r.copyData.length, 0, `${what}: COPY data reached the client`);
}

function assertNothingReturned(r: Outcome, what: string): void {
  assert.ok(r.error, `${what}: expected an error`);
  assert.equal(r.rows.length, 0, `${what}: rows reached the client`);
  assert.equal(r.copyData.length, 0, `${what}: COPY data reached the client`);
}

async function assertSecretDenied(c: Client, who: string): Promise<void> {
  for (const read of SECRET_READS) assertDenied(await c.query(read.sql), `${who}, ${read.path}`);
}

async function preparedRead(c: Client, name: string): Promise<Outcome> {
  const parsed = await c.prepare(name, 'SELECT payload FROM secret WHERE id = $1');
  if (parsed.error) return parsed;
  return c.execute(name, ['7']);
}

/** The result column of run_command_on_workers rows (nodename, nodeport, success, result). */
function results(rows: string[][]): string[] {
  return rows.map((r) => r[3]!);
}

async function shardNames(table: string): Promise<string[]> {
  const r = await admin.ok(`SELECT shardid FROM pg_dist_shard WHERE logicalrelid = '${table}'::regclass ORDER BY shardid`);
  return r.map((row) => `${table}_${row[0]}`);
}

async function assertStillAlice(c: Client): Promise<void> {
  assert.deepEqual(await c.ok('SELECT current_user, session_user'), [['alice', 'alice']]);
  assert.deepEqual(await c.ok('SELECT rolsuper FROM pg_roles WHERE rolname = current_user'), [['f']]);
  assertDenied(await c.query('SELECT payload FROM secret WHERE id = 7'), 'after the attempt');
}

test('1. no privilege on secret: every read path gets 42501 and no rows', async () => {
  await assertSecretDenied(alice, 'alice');
  const prepared = await preparedRead(alice, 'secret_by_id');
  assertDenied(prepared, 'prepared statement');
  for (const sql of SECRET_WRITES) assertDenied(await alice.query(sql), sql);
});

test('2. RESET ROLE, SET ROLE, SET SESSION AUTHORIZATION, plpgsql, programs, files, run_command_on_*: no escalation', async () => {
  assert.equal((await alice.query('RESET ROLE')).error, undefined);
  await assertStillAlice(alice);
  for (const sql of [
    'SET ROLE postgres',
    'SET ROLE pgweave_internal',
    'SET SESSION AUTHORIZATION postgres',
    'SET SESSION AUTHORIZATION pgweave_internal',
    "SELECT set_config('role', 'postgres', false)",
    "SELECT set_config('session_authorization', 'postgres', false)",
  ]) {
    assertNothingReturned(await alice.query(sql), sql);
    await assertStillAlice(alice);
  }

  await alice.ok(`CREATE FUNCTION alice_space.peek() RETURNS bigint LANGUAGE plpgsql AS $$
    BEGIN EXECUTE 'RESET ROLE'; RETURN (SELECT count(*) FROM secret); END $$`);
  assertDenied(await alice.query('SELECT alice_space.peek()'), 'plpgsql EXECUTE RESET ROLE');
  await assertStillAlice(alice);

  assertNothingReturned(await alice.query("COPY secret TO PROGRAM 'cat > /tmp/pgweave-secret-copy'"), 'COPY secret TO PROGRAM');
  assertDenied(await alice.query("COPY (SELECT 1) TO PROGRAM 'id'"), 'COPY … TO PROGRAM');
  assertDenied(await alice.query("COPY (SELECT 1) TO '/tmp/pgweave-escalation'"), 'COPY … TO file');
  assertDenied(await alice.query("SELECT pg_read_file('PG_VERSION')"), 'pg_read_file');
  assertDenied(await alice.query("SELECT pg_read_file('/etc/passwd')"), 'pg_read_file absolute');
  assertDenied(await alice.query("SELECT pg_ls_dir('.')"), 'pg_ls_dir');
  await assertStillAlice(alice);

  // Citus's RPC functions run as the caller on the workers.
  assert.deepEqual(results(await alice.ok("SELECT * FROM run_command_on_workers('SELECT current_user')")), ['alice', 'alice']);
  assert.deepEqual(results(await alice.ok("SELECT * FROM run_command_on_workers('SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user')")), ['false', 'false']);
  for (const sql of ['SET ROLE postgres', 'SET SESSION AUTHORIZATION postgres', `SET ROLE ${'pgweave_internal'}`]) {
    const r = await alice.ok(`SELECT * FROM run_command_on_workers('${sql}')`);
    for (const row of r) {
      assert.equal(row[2], 'f', `${sql} on a worker`);
      assert.match(row[3]!, /permission denied/);
    }
  }
  const onShards = await alice.ok("SELECT * FROM run_command_on_shards('secret', 'RESET ROLE; SELECT count(*) FROM %s')");
  assert.equal(onShards.length, 4);
  for (const row of onShards) {
    assert.equal(row[1], 'f');
    assert.match(row[2]!, /permission denied for table secret_\d+/);
  }
  for (const shard of await shardNames('secret')) {
    const r = await alice.ok(`SELECT * FROM run_command_on_workers('SELECT count(*) FROM ${shard}')`);
    for (const row of r) assert.equal(row[2], 'f', `${shard}: ${row[3]}`);
  }
  {
    const placements = await alice.ok(`SELECT * FROM run_command_on_placements('secret', 'SELECT payload FROM %s LIMIT 1')`);
    assert.equal(placements.length, 4);
    for (const row of placements) assert.equal(row[3], 'f');
  }
  // Changing its own role attributes needs what alice does not have, on the coordinator and so nowhere.
  for (const sql of ['ALTER ROLE alice SUPERUSER', 'ALTER ROLE alice BYPASSRLS', 'CREATE ROLE evil SUPERUSER LOGIN', 'GRANT pg_read_server_files TO alice', 'GRANT postgres TO alice']) {
    assertNothingReturned(await alice.query(sql), sql);
  }
  // Straight to a worker as itself: the shard's own privileges hold there too.
  const direct = await login('alice', PASSWORDS.alice, cluster.workers[0]!);
  for (const shard of await shardNames('secret')) {
    const r = await direct.query(`SELECT * FROM ${shard}`);
    assert.ok(r.error === '42501' || r.error === '42P01', `${shard} on worker 1: ${r.error} ${r.message}`);
    assert.equal(r.rows.length, 0);
  }
  assert.deepEqual(await direct.ok('SELECT rolsuper FROM pg_roles WHERE rolname = current_user'), [['f']]);
  await assertStillAlice(alice);
});

test('2b. Citus functions check their callers: table owner for (un)distribution, superuser for nodes', async () => {
  const w = cluster.workers[0]!;
  for (const sql of [
    "SELECT undistribute_table('secret')",
    "SELECT create_reference_table('secret')",
    `SELECT citus_add_node('${w.host}', ${w.port})`,
    `SELECT master_add_node('${w.host}', ${w.port})`,
    `SELECT citus_remove_node('${w.host}', ${w.port})`,
    `SELECT citus_set_node_property('${w.host}', ${w.port}, 'shouldhaveshards', false)`,
    "SELECT citus_set_coordinator_host('127.0.0.1')",
  ]) {
    assertDenied(await alice.query(sql), sql);
  }
  const notOwner = await alice.query("SELECT create_distributed_table('tenant_data', 'id')");
  assert.ok(notOwner.error === '42501' || notOwner.error === 'XX000', `${notOwner.error} ${notOwner.message}`);
  await admin.ok('CREATE TABLE plain_local (id int PRIMARY KEY)');
  const local = await alice.query("SELECT create_distributed_table('plain_local', 'id')");
  assert.equal(local.error, '42501');
  assert.equal(local.message, 'must be owner of table plain_local');
  // Its own table in its own schema: alice may distribute it, and the shards are hers.
  await alice.ok('CREATE TABLE alice_space.notes (id int PRIMARY KEY, body text)');
  await alice.ok("INSERT INTO alice_space.notes VALUES (1, 'mine')");
  await alice.ok("SELECT create_distributed_table('alice_space.notes', 'id', shard_count => 2)");
  assert.deepEqual(await alice.ok('SELECT body FROM alice_space.notes WHERE id = 1'), [['mine']]);
  const owners = await admin.ok("SELECT * FROM run_command_on_shards('alice_space.notes', $$SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = '%s'::regclass$$)");
  assert.deepEqual(owners.map((r) => r[2]), ['alice', 'alice']);
  assert.deepEqual(await admin.ok('SELECT count(*) FROM pg_dist_node'), [['2']], 'the nodes are untouched');
});

test('3. row-level security: alice sees only her tenant on every path; a policy change reaches every shard', async () => {
  assert.deepEqual(await alice.ok("SELECT count(*), sum(amount) FROM tenant_data WHERE tenant = 'alice'"), [['10', '55']]);
  assert.deepEqual(await alice.ok("SELECT count(*), sum(amount) FROM tenant_data WHERE tenant = 'bob'"), [['0', 'NULL']]);
  assert.deepEqual(await alice.ok('SELECT tenant, count(*) FROM tenant_data GROUP BY tenant ORDER BY 1'), [['alice', '10']]);
  assert.deepEqual(await alice.ok('SELECT count(*), sum(amount), min(amount), max(amount), avg(amount) FROM tenant_data'), [
    ['10', '55', '1', '10', '5.5000000000000000'],
  ]);
  assert.deepEqual(await alice.ok('SELECT DISTINCT tenant FROM tenant_data'), [['alice']]);
  const copy = await alice.query('COPY tenant_data TO STDOUT');
  assert.equal(copy.error, undefined, copy.message);
  const lines = copy.copyData.join('').split('\n').filter(Boolean);
  assert.equal(lines.length, 10);
  for (const l of lines) assert.ok(l.startsWith('alice\t'), l);
  const copyQuery = await alice.query("COPY (SELECT tenant, amount FROM tenant_data WHERE tenant IN ('alice', 'bob')) TO STDOUT");
  assert.equal(copyQuery.copyData.join('').split('\n').filter(Boolean).length, 10);

  const bob = await login('bob', PASSWORDS.bob);
  assert.deepEqual(await bob.ok('SELECT tenant, count(*), sum(amount) FROM tenant_data GROUP BY tenant'), [['bob', '20', '2210']]);
  assert.deepEqual(await bob.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'alice'"), [['0']]);

  // A policy change after distribution reaches every shard, enforced on every path.
  await admin.ok("ALTER POLICY tenant_isolation ON tenant_data USING (tenant = current_user OR tenant = 'shared')");
  assert.deepEqual(await shardPolicies('tenant_data', 'tenant_isolation'), Array(4).fill("((tenant = CURRENT_USER) OR (tenant = 'shared'::text))"));
  assert.deepEqual(await alice.ok('SELECT tenant, count(*) FROM tenant_data GROUP BY tenant ORDER BY 1'), [['alice', '10'], ['shared', '5']]);
  assert.deepEqual(await alice.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'shared'"), [['5']], 'router');
  assert.deepEqual(await alice.ok('SELECT count(*), sum(amount) FROM tenant_data'), [['15', '5055']], 'aggregate');
  const copied = await alice.query('COPY tenant_data TO STDOUT');
  assert.equal(copied.copyData.join('').split('\n').filter(Boolean).length, 15, 'COPY TO');
  assert.deepEqual(await bob.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'alice'"), [['0']]);
  await admin.ok('ALTER POLICY tenant_isolation ON tenant_data USING (tenant = current_user)');
  assert.deepEqual(await alice.ok('SELECT tenant, count(*) FROM tenant_data GROUP BY tenant ORDER BY 1'), [['alice', '10']]);
  assert.deepEqual(await alice.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'shared'"), [['0']], 'router');
});

/** The USING expression of policy `name` on every shard of `table` (pg_policy on the workers). */
async function shardPolicies(table: string, name: string): Promise<string[]> {
  const r = await admin.ok(
    `SELECT * FROM run_command_on_shards('${table}', $$SELECT coalesce((SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '%s'::regclass AND polname = '${name}'), '<none>')$$)`,
  );
  for (const row of r) assert.equal(row[1], 't', row[2]);
  return r.map((row) => row[2]!);
}

test('3d. CREATE / ALTER … RENAME / DROP POLICY and ENABLE / FORCE / DISABLE ROW LEVEL SECURITY after distribution', async () => {
  const bob = await login('bob', PASSWORDS.bob);
  await admin.ok('CREATE TABLE ledger (tenant text NOT NULL, id int NOT NULL, amount int, PRIMARY KEY (tenant, id))');
  await admin.ok("INSERT INTO ledger SELECT t, i, i FROM unnest(ARRAY['alice', 'bob']) t, generate_series(1, 8) i");
  await admin.ok('GRANT SELECT, INSERT ON ledger TO alice, bob');
  await admin.ok("SELECT create_distributed_table('ledger', 'tenant', shard_count => 4)");
  const count = async (c: Client) => (await c.ok('SELECT count(*) FROM ledger'))[0]![0];
  assert.equal(await count(alice), '16', 'no row-level security yet');

  await admin.ok('ALTER TABLE ledger ENABLE ROW LEVEL SECURITY');
  assert.equal(await count(alice), '0', 'enabled without policies: default deny on every shard');
  const flags = await admin.ok("SELECT * FROM run_command_on_shards('ledger', $$SELECT relrowsecurity FROM pg_class WHERE oid = '%s'::regclass$$)");
  assert.deepEqual(flags.map((r) => r[2]), ['t', 't', 't', 't']);

  // The table's own name in the expression is the shard's name on each shard.
  await admin.ok('CREATE POLICY own_rows ON ledger FOR SELECT TO alice, bob USING (ledger.tenant = current_user)');
  assert.deepEqual(await shardPolicies('ledger', 'own_rows'), Array(4).fill('(tenant = CURRENT_USER)'));
  assert.equal(await count(alice), '8');
  assert.deepEqual(await alice.ok("SELECT count(*) FROM ledger WHERE tenant = 'bob'"), [['0']], 'router');
  assert.deepEqual(await bob.ok('SELECT tenant, sum(amount) FROM ledger GROUP BY tenant'), [['bob', '36']]);
  const insert = await alice.query("INSERT INTO ledger VALUES ('bob', 100, 1)");
  assert.equal(insert.error, '42501', `no INSERT policy: ${insert.message}`);

  await admin.ok("CREATE POLICY own_inserts ON ledger FOR INSERT TO alice WITH CHECK (tenant = current_user)");
  assert.equal((await alice.query("INSERT INTO ledger VALUES ('bob', 100, 1)")).error, '42501', 'WITH CHECK on the shard');
  await alice.ok("INSERT INTO ledger VALUES ('alice', 100, 1)");
  assert.equal(await count(alice), '9');

  await admin.ok('ALTER POLICY own_rows ON ledger RENAME TO tenant_rows');
  assert.deepEqual(await shardPolicies('ledger', 'own_rows'), Array(4).fill('<none>'));
  assert.deepEqual(await shardPolicies('ledger', 'tenant_rows'), Array(4).fill('(tenant = CURRENT_USER)'));
  await admin.ok('ALTER POLICY tenant_rows ON ledger TO alice');
  assert.equal(await count(bob), '0', 'bob is no longer among the policy roles');
  assert.equal(await count(alice), '9');

  const refused = await admin.query('CREATE POLICY peek ON ledger USING (tenant IN (SELECT tenant FROM tenant_data))');
  assert.equal(refused.error, '0A000', refused.message);
  assert.equal(refused.message, 'cannot create policy');
  const refusedAlter = await admin.query('ALTER POLICY tenant_rows ON ledger USING (EXISTS (SELECT 1 FROM secret))');
  assert.equal(refusedAlter.error, '0A000', refusedAlter.message);
  assert.deepEqual(await shardPolicies('ledger', 'peek'), Array(4).fill('<none>'), 'nothing reached the shards');
  assert.equal((await alice.query('DROP POLICY tenant_rows ON ledger')).error, '42501', 'only the owner drops a policy');

  await admin.ok('DROP POLICY tenant_rows ON ledger');
  assert.deepEqual(await shardPolicies('ledger', 'tenant_rows'), Array(4).fill('<none>'));
  assert.equal(await count(alice), '0', 'no SELECT policy left');
  await admin.ok('DROP POLICY IF EXISTS tenant_rows ON ledger');

  await admin.ok('ALTER TABLE ledger DISABLE ROW LEVEL SECURITY');
  assert.equal(await count(alice), '17');
  // FORCE subjects the owner too, on the shards as on the coordinator.
  await admin.ok('ALTER TABLE ledger OWNER TO bob');
  await admin.ok('ALTER TABLE ledger ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY');
  assert.equal(await count(bob), '0', 'the owner under FORCE ROW LEVEL SECURITY');
  await admin.ok('ALTER TABLE ledger NO FORCE ROW LEVEL SECURITY');
  assert.equal(await count(bob), '17', 'the owner without FORCE');
  await admin.ok('DROP TABLE ledger');
});

test('3a. a privileged session that SET ROLE to a tenant is limited like the tenant on the workers too', async () => {
  // The dangerous direction: worker connections first used as a superuser, then SET ROLE alice.
  const su = await login('postgres', cluster.password);
  assert.deepEqual(await su.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'bob'"), [['20']]);
  await su.ok('SET ROLE alice');
  assert.deepEqual(await su.ok('SELECT current_user'), [['alice']]);
  assert.deepEqual(await su.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'bob'"), [['0']], 'RLS as alice on the shard');
  assertDenied(await su.query('SELECT payload FROM secret WHERE id = 7'), 'secret after SET ROLE alice');
  // Citus functions see the current role too, as Citus checks GetUserId().
  assert.deepEqual(results(await su.ok("SELECT * FROM run_command_on_workers('SELECT current_user')")), ['alice', 'alice']);
  const onShards = await su.ok("SELECT * FROM run_command_on_shards('secret', 'SELECT count(*) FROM %s')");
  for (const row of onShards) assert.equal(row[1], 'f', 'run_command_on_shards as alice');
  const w = cluster.workers[0]!;
  assertDenied(await su.query(`SELECT citus_set_node_property('${w.host}', ${w.port}, 'shouldhaveshards', false)`), 'node management as alice');
  assertDenied(await su.query("SELECT undistribute_table('secret')"), 'undistribute_table as alice');
  await su.ok('RESET ROLE');
  assert.deepEqual(results(await su.ok("SELECT * FROM run_command_on_workers('SELECT current_user')")), ['postgres', 'postgres']);
});

test('3b. SET ROLE on an application connection follows the statement to the workers', async () => {
  // app logs in, holds worker connections, then acts as one tenant after another (a common RLS pattern).
  const app = await login('app', PASSWORDS.app);
  const router = (tenant: string) => `SELECT count(*) FROM tenant_data WHERE tenant = '${tenant}'`;
  assertDenied(await app.query(router('alice')), 'app without SET ROLE (router)');
  await app.ok('SET ROLE alice');
  assert.deepEqual(await app.ok(router('alice')), [['10']], 'as alice');
  await app.ok('SET ROLE bob');
  assert.deepEqual(await app.ok(router('alice')), [['0']], 'as bob, alice\'s rows');
  assert.deepEqual(await app.ok(router('bob')), [['20']], 'as bob');
  await app.ok('RESET ROLE');
  assertDenied(await app.query(router('alice')), 'app after RESET ROLE (router)');
});

test('3c. SET ROLE then multi-shard queries on the same connection', async () => {
  const app = await login('app', PASSWORDS.app);
  assertDenied(await app.query('SELECT count(*) FROM tenant_data'), 'app without SET ROLE (multi-shard)');
  await app.ok('SET ROLE alice');
  assert.deepEqual(await app.ok('SELECT tenant, count(*) FROM tenant_data GROUP BY tenant'), [['alice', '10']]);
  await app.ok('SET ROLE bob');
  assert.deepEqual(await app.ok('SELECT tenant, count(*) FROM tenant_data GROUP BY tenant'), [['bob', '20']]);
  await app.ok('RESET ROLE');
  assertDenied(await app.query('SELECT count(*) FROM tenant_data'), 'app after RESET ROLE (multi-shard)');
});

test('4. GRANT opens every path at once, REVOKE closes it at once — also through a second coordinator', async () => {
  second = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 } });
  const alice2 = await login('alice', PASSWORDS.alice, second.address);
  await assertSecretDenied(alice2, 'alice via the second coordinator');
  // Prepared before the GRANT, executed after it (and after the REVOKE).
  assert.equal((await alice.prepare('held', 'SELECT payload FROM secret WHERE id = $1')).error, undefined);

  await admin.ok('GRANT SELECT ON secret TO alice');
  for (const [who, c] of [['alice', alice], ['alice via the second coordinator', alice2]] as const) {
    for (const read of SECRET_READS) {
      const r = await c.query(read.sql);
      assert.equal(r.error, undefined, `${who}, ${read.path}: ${r.error} ${r.message}`);
      const got = read.copy ? r.copyData.join('').split('\n').filter(Boolean).length : r.rows.length;
      assert.equal(got, read.rows, `${who}, ${read.path}`);
    }
    const prepared = await preparedRead(c, `after_grant_${c === alice ? 1 : 2}`);
    assert.deepEqual(prepared.rows, [['classified-7']], `${who}, prepared statement`);
  }
  assert.deepEqual((await alice.execute('held', ['8'])).rows, [['classified-8']]);
  assert.deepEqual(await alice.ok('SELECT count(*), max(id) FROM secret'), [['100', '100']]);

  await admin.ok('REVOKE SELECT ON secret FROM alice');
  await assertSecretDenied(alice, 'alice after REVOKE');
  await assertSecretDenied(alice2, 'alice via the second coordinator after REVOKE');
  // (A simple query between the Executes: after a failed Execute the session skips the next extended cycle, see 4b.)
  assertDenied(await alice.execute('held', ['8']), 'statement prepared before the GRANT');
  await alice.ok('SELECT 1');
  assertDenied(await alice.execute('after_grant_1', ['7']), 'statement prepared while granted');
  assertDenied(await alice2.execute('after_grant_2', ['7']), 'statement prepared while granted, second coordinator');
});

test('4b. after a failed Execute, the next Bind/Execute/Sync is still answered', async () => {
  // Not a leak (nothing is returned), but the client gets neither rows nor an error: protocol state of the session.
  const first = await alice.execute('held', ['9']);
  assertDenied(first, 'first Execute');
  const second = await alice.execute('held', ['9']);
  assert.equal(second.error, '42501', `second Execute: got ${second.error ?? 'no error'}, ${second.tags.length} CommandComplete`);
});

test('5. wrong password, unknown role, NOLOGIN, connection limit, internal role: the right SQLSTATEs', async () => {
  assert.equal(await loginOutcome(addr(), 'alice', PASSWORDS.wrong), '28P01');
  assert.equal(await loginOutcome(addr(), 'no_such_role', PASSWORDS.wrong), '28P01');
  assert.equal(await loginOutcome(addr(), 'nologin_role', PASSWORDS.nologin), '28000');
  assert.equal(await loginOutcome(addr(), cluster.config.internal.user, cluster.config.internal.password), '28P01');
  assert.equal(await loginOutcome(addr(), 'pgweave_internal', PASSWORDS.wrong), '28P01');

  // CONNECTION LIMIT 1 holds on the coordinator and, propagated, on every worker.
  const limits = await admin.ok("SELECT * FROM run_command_on_workers('SELECT rolconnlimit FROM pg_roles WHERE rolname = ''limited''')");
  assert.deepEqual(results(limits), ['1', '1']);
  const first = await login('limited', PASSWORDS.limited);
  assert.deepEqual(await first.ok('SELECT count(*) FROM tenant_data'), [['0']], 'one session uses one connection per node');
  assert.equal(await loginOutcome(addr(), 'limited', PASSWORDS.limited), '53300');
  first.close();
  let again = '';
  for (let i = 0; i < 50 && again !== 'ok'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    again = await loginOutcome(addr(), 'limited', PASSWORDS.limited);
  }
  assert.equal(again, 'ok', 'the slot is free again once the session ended');

  // A new password: the old one stops working everywhere, the new one works everywhere (same verifier on every node).
  await admin.ok(`ALTER ROLE alice PASSWORD '${PASSWORDS.aliceNew}'`);
  assert.equal(await loginOutcome(addr(), 'alice', PASSWORDS.alice), '28P01');
  const renewed = await login('alice', PASSWORDS.aliceNew);
  assert.deepEqual(await renewed.ok('SELECT count(*) FROM tenant_data'), [['10']]);
  assert.deepEqual(await renewed.ok("SELECT count(*) FROM tenant_data WHERE tenant = 'alice'"), [['10']]);
  const verifier = (await admin.ok("SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'"))[0]![0]!;
  assert.match(verifier, /^SCRAM-SHA-256\$4096:/);
  const onWorkers = await admin.ok("SELECT * FROM run_command_on_workers('SELECT rolpassword FROM pg_authid WHERE rolname = ''alice''')");
  assert.deepEqual(results(onWorkers), [verifier, verifier]);
});

test('5b. no password in any node\'s log or in the coordinator\'s output', async () => {
  // The verifiers were logged (log_statement = 'all' worked); the passwords never were.
  const logs = postgresLogs(cluster.dir);
  assert.ok(logs.length >= 3, `PostgreSQL logs found: ${logs.join(', ')}`);
  assert.ok(logsContaining(logs, ['SCRAM-SHA-256$']).length > 0, 'statements are logged');
  const needles = [...Object.values(PASSWORDS), cluster.password, cluster.config.internal.password];
  assert.deepEqual(logsContaining(logs, needles), []);
  const printed = output.text();
  for (const n of needles) assert.ok(!printed.includes(n), 'the coordinator printed a password');
});
