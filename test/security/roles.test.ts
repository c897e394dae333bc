/**
 * Role, membership, role-setting, schema and default-privilege propagation
 * (src/commands/roles) against a real cluster whose second worker joins
 * late: every change made through the coordinator leaves the workers'
 * pg_authid / pg_auth_members / pg_db_role_setting / pg_namespace /
 * pg_default_acl equal to the coordinator's, passwords travel as the
 * coordinator-computed SCRAM verifier (identical to the one PostgreSQL
 * computes), changes are all-or-nothing, the internal role is out of reach,
 * and a node added later receives every role.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { connectBackend } from '../../src/pool/backend-connection.js';
import { InternalClient } from '../../src/pool/internal-client.js';
import { scramVerifier } from '../../src/commands/roles/scram-verifier.js';
import { Client, loginOutcome } from './support.js';

let cluster: TestCluster;
let admin: Client;
const clients: Client[] = [];

async function login(user: string, password: string, at = cluster.config.listen): Promise<Client> {
  const c = await Client.login(at, user, password);
  clients.push(c);
  return c;
}

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  admin = await login('postgres', cluster.password);
  // Only the first worker for now: the second one joins later and must receive every role.
  await admin.ok(`SELECT citus_add_node('${cluster.workers[0]!.host}', ${cluster.workers[0]!.port})`);
});

after(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

/** One value computed by `sql` on the coordinator, then on each registered worker (as postgres). */
async function everywhere(sql: string): Promise<string[]> {
  const here = (await admin.ok(sql))[0]?.[0] ?? 'NULL';
  const there = await admin.ok(`SELECT * FROM run_command_on_workers($pgw$${sql}$pgw$)`);
  for (const r of there) assert.equal(r[2], 't', `${sql} on ${r[0]}:${r[1]}: ${r[3]}`);
  return [here, ...there.map((r) => (r[3] === '' ? 'NULL' : r[3]!))];
}

/** Asserts that `sql` computes the same value on every node, and returns it. */
async function same(sql: string, what: string): Promise<string> {
  const values = await everywhere(sql);
  for (const v of values.slice(1)) assert.equal(v, values[0], `${what}: coordinator ${values[0]} vs worker ${v}`);
  return values[0]!;
}

const roleRow = (name: string) =>
  `SELECT coalesce((SELECT row(rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
     rolconnlimit, rolvaliduntil AT TIME ZONE 'UTC', rolpassword)::text FROM pg_authid WHERE rolname = '${name}'), 'absent')`;
const MEMBERSHIPS = `SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
  SELECT r.rolname || '>' || m.rolname || CASE WHEN a.admin_option THEN '*' ELSE '' END AS x
  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE r.rolname !~ '^pg_') s`;
const SETTINGS = `SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
  SELECT coalesce(d.datname, '*') || ':' || r.rolname || ':' || array_to_string(s.setconfig, ';') AS x
  FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase) s`;
const schemaRow = (name: string) =>
  `SELECT coalesce((SELECT pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '-') FROM pg_namespace WHERE nspname = '${name}'), 'absent')`;
const DEFAULT_ACLS = `SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
  SELECT pg_get_userbyid(defaclrole) || '/' || coalesce(n.nspname, '*') || '/' || defaclobjtype::text || '/' || defaclacl::text AS x
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace) s`;

test('CREATE ROLE and ALTER ROLE: attributes, connection limit, expiry and the verifier are the same on every node', async () => {
  await admin.ok("CREATE ROLE r1 LOGIN CREATEDB CONNECTION LIMIT 5 VALID UNTIL '2031-02-03 04:05:06+00' PASSWORD 'R1-pw-aa01'");
  const row = await same(roleRow('r1'), 'r1 created');
  assert.match(row, /SCRAM-SHA-256\$4096:/);
  assert.match(row, /2031-02-03 04:05:06/);
  await admin.ok("ALTER ROLE r1 NOCREATEDB CREATEROLE NOINHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity'");
  assert.match(await same(roleRow('r1'), 'r1 altered'), /^\(f,f,t,f,t,f,f,-1,infinity,/);
  await admin.ok("ALTER ROLE r1 VALID UNTIL '2040-01-01'");
  await same(roleRow('r1'), 'r1 expiry');
  await admin.ok("ALTER ROLE r1 VALID UNTIL 'infinity' INHERIT");
  await same(roleRow('r1'), 'r1 back');

  // The password works on the coordinator and straight on the worker: it is the same verifier.
  const r1 = await login('r1', 'R1-pw-aa01');
  assert.deepEqual(await r1.ok('SELECT current_user'), [['r1']]);
  assert.equal(await loginOutcome(cluster.workers[0]!, 'r1', 'R1-pw-aa01'), 'ok');

  // A role changes its own password (no privilege needed); it propagates like any other.
  await r1.ok("ALTER ROLE CURRENT_USER PASSWORD 'R1-pw-bb02'");
  await same(roleRow('r1'), 'r1 own password');
  assert.equal(await loginOutcome(cluster.config.listen, 'r1', 'R1-pw-aa01'), '28P01');
  assert.equal(await loginOutcome(cluster.config.listen, 'r1', 'R1-pw-bb02'), 'ok');
  assert.equal(await loginOutcome(cluster.workers[0]!, 'r1', 'R1-pw-bb02'), 'ok');
});

test('password forms: quoting, ENCRYPTED, NULL, empty, a given verifier', async () => {
  await admin.ok(`CREATE USER q1 WITH ENCRYPTED PASSWORD 'it''s a "pw"' LOGIN`);
  await same(roleRow('q1'), 'quoted');
  assert.equal(await loginOutcome(cluster.config.listen, 'q1', `it's a "pw"`), 'ok');
  await admin.ok(String.raw`ALTER ROLE q1 PASSWORD E'back\\slash\'quote'`);
  assert.equal(await loginOutcome(cluster.config.listen, 'q1', String.raw`back\slash'quote`), 'ok');
  await admin.ok('ALTER ROLE q1 PASSWORD $pw$dollar quoted$pw$ /* a comment */ CONNECTION LIMIT 3');
  assert.equal(await loginOutcome(cluster.config.listen, 'q1', 'dollar quoted'), 'ok');
  await same(roleRow('q1'), 'dollar quoted');
  await admin.ok(`ALTER ROLE q1 PASSWORD 'multi'\n'line'`);
  assert.equal(await loginOutcome(cluster.config.listen, 'q1', 'multiline'), 'ok');
  await same(roleRow('q1'), 'continued literal');

  const given = scramVerifier('given-pw-cc03');
  await admin.ok(`ALTER ROLE q1 PASSWORD '${given}'`);
  assert.equal((await everywhere("SELECT rolpassword FROM pg_authid WHERE rolname = 'q1'")).every((v) => v === given), true);
  assert.equal(await loginOutcome(cluster.config.listen, 'q1', 'given-pw-cc03'), 'ok');

  await admin.ok('ALTER ROLE q1 PASSWORD NULL');
  assert.deepEqual(await everywhere("SELECT coalesce(rolpassword, 'none') FROM pg_authid WHERE rolname = 'q1'"), ['none', 'none']);
  await admin.ok("ALTER ROLE q1 PASSWORD 'again-dd04'");
  await admin.ok("ALTER ROLE q1 PASSWORD ''");
  assert.deepEqual(await everywhere("SELECT coalesce(rolpassword, 'none') FROM pg_authid WHERE rolname = 'q1'"), ['none', 'none']);
});

test('the coordinator computes the verifier PostgreSQL would (SASLprep included)', async () => {
  const internal = new InternalClient(
    await connectBackend({ ...cluster.coordinatorPg, user: cluster.config.internal.user, database: 'postgres', credentials: { password: cluster.config.internal.password } }),
  );
  try {
    const passwords = ['plain', 'tab\there', 'pässwörd', 'ﬁx-ligature', 'ＡＢＣ-fullwidth', 'no\u00A0break', 'soft\u00ADhyphen', '\u0627\u0644\u0639', 'mixed a\u0627', '\u2163 roman four'];
    for (const [i, pw] of passwords.entries()) {
      // Straight to PostgreSQL (not through the coordinator, which would rewrite it): PostgreSQL computes this one.
      await internal.query(`CREATE ROLE saslprep_${i} PASSWORD '${pw.replace(/'/g, "''")}'`);
      const stored = (await internal.query(`SELECT rolpassword FROM pg_authid WHERE rolname = 'saslprep_${i}'`)).rows[0]![0]!;
      const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored)!;
      assert.equal(scramVerifier(pw, Buffer.from(m[2]!, 'base64'), Number(m[1])), stored, JSON.stringify(pw));
      await internal.query(`DROP ROLE saslprep_${i}`);
    }
  } finally {
    internal.close();
  }
});

test('memberships: GRANT/REVOKE, ADMIN OPTION, ALTER GROUP, CREATE ROLE … IN ROLE', async () => {
  await admin.ok('CREATE ROLE g1 NOLOGIN');
  await admin.ok('CREATE ROLE g2 NOLOGIN');
  await admin.ok('GRANT g1 TO r1');
  await admin.ok('GRANT g1, g2 TO q1 WITH ADMIN OPTION');
  assert.equal(await same(MEMBERSHIPS, 'grants'), 'g1>q1*,g1>r1,g2>q1*');
  await admin.ok('REVOKE ADMIN OPTION FOR g1 FROM q1');
  await admin.ok('REVOKE g2 FROM q1');
  assert.equal(await same(MEMBERSHIPS, 'revokes'), 'g1>q1,g1>r1');
  await admin.ok('ALTER GROUP g2 ADD USER r1, q1');
  await admin.ok('ALTER GROUP g1 DROP USER q1');
  assert.equal(await same(MEMBERSHIPS, 'ALTER GROUP'), 'g1>r1,g2>q1,g2>r1');
  await admin.ok('CREATE ROLE m1 IN ROLE g1 ROLE q1 ADMIN r1');
  assert.equal(await same(MEMBERSHIPS, 'CREATE ROLE … IN ROLE'), 'g1>m1,g1>r1,g2>q1,g2>r1,m1>q1,m1>r1*');
  // A role with CREATEROLE manages roles too; PostgreSQL decides what it may do, on the coordinator.
  const r1 = await login('r1', 'R1-pw-bb02');
  await r1.ok('CREATE ROLE made_by_r1 LOGIN');
  await r1.ok('GRANT g2 TO made_by_r1');
  await same(roleRow('made_by_r1'), 'created by a CREATEROLE role');
  assert.match(await same(MEMBERSHIPS, 'granted by a CREATEROLE role'), /g2>made_by_r1/);
});

test('a role without CREATEROLE changes nothing anywhere', async () => {
  await admin.ok("CREATE ROLE weak LOGIN PASSWORD 'Weak-pw-ee05'");
  const weak = await login('weak', 'Weak-pw-ee05');
  for (const sql of ['CREATE ROLE w2', 'ALTER ROLE r1 NOLOGIN', 'DROP ROLE g1', 'GRANT g1 TO weak', 'ALTER ROLE weak CREATEROLE', 'ALTER ROLE r1 RENAME TO r9']) {
    const r = await weak.query(sql);
    assert.equal(r.error, '42501', `${sql}: ${r.error} ${r.message}`);
  }
  assert.equal(await same(roleRow('w2'), 'w2'), 'absent');
  assert.match(await same(roleRow('r1'), 'r1 unchanged'), /^\(f,t,t,f,t,/);
});

test('ALTER ROLE … SET: per-role and per-database settings, CURRENT_USER', async () => {
  await admin.ok("ALTER ROLE r1 SET work_mem = '8MB'");
  await admin.ok("ALTER ROLE r1 IN DATABASE postgres SET statement_timeout = '5s'");
  await admin.ok('ALTER ROLE r1 SET search_path = alpha, "Beta"');
  const r1 = await login('r1', 'R1-pw-bb02');
  await r1.ok("ALTER ROLE CURRENT_USER SET lock_timeout = '7s'");
  const settings = await same(SETTINGS, 'settings');
  assert.match(settings, /\*:r1:work_mem=8MB;search_path=alpha, "Beta";lock_timeout=7s/);
  assert.match(settings, /postgres:r1:statement_timeout=5s/);
  assert.doesNotMatch(settings, /pgweave_internal/);
  await admin.ok('ALTER ROLE r1 RESET work_mem');
  await admin.ok('ALTER ROLE r1 IN DATABASE postgres RESET ALL');
  assert.doesNotMatch(await same(SETTINGS, 'reset'), /work_mem|statement_timeout/);
});

test('ALTER ROLE … RENAME and DROP ROLE', async () => {
  await admin.ok("CREATE ROLE ren LOGIN PASSWORD 'Ren-pw-ff06'");
  const before = await same(roleRow('ren'), 'ren');
  await admin.ok('ALTER ROLE ren RENAME TO "Renamed Role"');
  assert.equal(await same(roleRow('ren'), 'old name'), 'absent');
  assert.equal(await same(roleRow('Renamed Role'), 'new name'), before);
  assert.equal(await loginOutcome(cluster.config.listen, 'Renamed Role', 'Ren-pw-ff06'), 'ok');
  await admin.ok('DROP ROLE "Renamed Role", made_by_r1');
  assert.equal(await same(roleRow('Renamed Role'), 'dropped'), 'absent');
  assert.equal(await same(roleRow('made_by_r1'), 'dropped'), 'absent');
  await admin.ok('DROP ROLE IF EXISTS never_existed');
});

test('all or nothing: a DROP ROLE a worker refuses is undone on the coordinator', async () => {
  await admin.ok('CREATE ROLE victim NOLOGIN');
  // Something only the worker has depends on the role.
  const r = await admin.ok("SELECT * FROM run_command_on_workers('CREATE TABLE worker_only (x int); ALTER TABLE worker_only OWNER TO victim')");
  assert.equal(r[0]![2], 't', r[0]![3]);
  const dropped = await admin.query('DROP ROLE victim');
  assert.equal(dropped.error, '2BP01', dropped.message);
  assert.match(await same(roleRow('victim'), 'victim kept everywhere'), /^\(/);
  await admin.ok("SELECT * FROM run_command_on_workers('DROP TABLE worker_only')");
  await admin.ok('DROP ROLE victim');
  assert.equal(await same(roleRow('victim'), 'victim dropped'), 'absent');
});

test('inside a transaction block the workers change at once (as Citus propagates roles)', async () => {
  await admin.ok('BEGIN');
  await admin.ok("CREATE ROLE in_txn LOGIN PASSWORD 'Txn-pw-1a2b'");
  await admin.ok('GRANT g1 TO in_txn');
  await admin.ok('ALTER ROLE in_txn CONNECTION LIMIT 2');
  await admin.ok('COMMIT');
  assert.match(await same(roleRow('in_txn'), 'committed block'), /,2,/);
  assert.match(await same(MEMBERSHIPS, 'committed block'), /g1>in_txn/);

  await admin.ok('BEGIN');
  await admin.ok('CREATE ROLE rolled_back');
  await admin.ok('ROLLBACK');
  assert.deepEqual(await everywhere(roleRow('rolled_back').replace(/row\(.*\)::text/s, "'present'")), ['absent', 'present']);
  // The next statement about it repairs the worker side.
  await admin.ok('CREATE ROLE rolled_back CONNECTION LIMIT 4');
  assert.match(await same(roleRow('rolled_back'), 'recreated'), /,4,/);

  // A failure after the statement aborts the client's block, as any error does in PostgreSQL.
  await admin.ok('BEGIN');
  const reserved = await admin.query('ALTER ROLE pgweave_internal CONNECTION LIMIT 1');
  assert.equal(reserved.error, '42501');
  assert.equal((await admin.query('SELECT 1')).error, '25P02');
  await admin.ok('ROLLBACK');
});

test('the internal role is out of reach of every role statement', async () => {
  for (const sql of [
    "ALTER ROLE pgweave_internal PASSWORD 'x'",
    'ALTER ROLE pgweave_internal NOLOGIN',
    'DROP ROLE pgweave_internal',
    'GRANT pgweave_internal TO r1',
    'GRANT g1 TO pgweave_internal',
    'CREATE ROLE sneaky IN ROLE pgweave_internal',
    'ALTER ROLE pgweave_internal RENAME TO gone',
    'ALTER ROLE pgweave_internal SET work_mem = 1',
  ]) {
    const r = await admin.query(sql);
    assert.equal(r.error, '42501', `${sql}: ${r.error} ${r.message}`);
  }
  assert.match(await same(roleRow('pgweave_internal'), 'internal role untouched'), /^\(t,t,f,f,t,f,f,-1,,SCRAM/);
  assert.equal(await same(roleRow('sneaky'), 'sneaky'), 'absent');
});

test('schemas: CREATE SCHEMA, GRANT … ON SCHEMA, OWNER TO, RENAME TO — with a distributed table inside', async () => {
  await admin.ok('CREATE SCHEMA s1 AUTHORIZATION r1');
  assert.match(await same(schemaRow('s1'), 's1'), /^r1 /);
  await admin.ok('GRANT USAGE ON SCHEMA s1 TO g1, weak');
  await admin.ok('GRANT CREATE ON SCHEMA s1 TO g2 WITH GRANT OPTION');
  await same(schemaRow('s1'), 's1 grants');
  await admin.ok('REVOKE USAGE ON SCHEMA s1 FROM weak');
  assert.doesNotMatch(await same(schemaRow('s1'), 's1 revoke'), /weak/);
  await admin.ok('ALTER SCHEMA s1 OWNER TO g2');
  assert.match(await same(schemaRow('s1'), 's1 owner'), /^g2 /);

  await admin.ok('CREATE TABLE s1.items (id int PRIMARY KEY, v text)');
  await admin.ok("INSERT INTO s1.items SELECT i, 'v' || i FROM generate_series(1, 20) i");
  await admin.ok("SELECT create_distributed_table('s1.items', 'id', shard_count => 2)");
  await admin.ok('ALTER SCHEMA s1 RENAME TO s2');
  assert.equal(await same(schemaRow('s1'), 's1 renamed away'), 'absent');
  await same(schemaRow('s2'), 's2');
  assert.deepEqual(await admin.ok('SELECT count(*) FROM s2.items'), [['20']]);
  assert.deepEqual(await admin.ok('SELECT v FROM s2.items WHERE id = 3'), [['v3']]);

  await admin.ok('GRANT CREATE ON DATABASE postgres TO r1');
  const r1 = await login('r1', 'R1-pw-bb02');
  await r1.ok('CREATE SCHEMA AUTHORIZATION CURRENT_USER');
  assert.match(await same(schemaRow('r1'), 'schema named after its owner'), /^r1 /);
});

test('ALTER DEFAULT PRIVILEGES: for the current user (not the internal role), FOR ROLE, IN SCHEMA', async () => {
  await admin.ok('ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO g1');
  await admin.ok('ALTER DEFAULT PRIVILEGES FOR ROLE r1 IN SCHEMA s2 GRANT INSERT, SELECT ON TABLES TO weak');
  await admin.ok('ALTER DEFAULT PRIVILEGES FOR ROLE r1 REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC');
  const acls = await same(DEFAULT_ACLS, 'default privileges');
  assert.match(acls, /postgres\/\*\/r\/.*g1=r\/postgres/);
  assert.match(acls, /r1\/s2\/r\/.*weak=ar\/r1/);
  assert.doesNotMatch(acls, /pgweave_internal/);
  await admin.ok('ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM g1');
  assert.doesNotMatch(await same(DEFAULT_ACLS, 'revoked default'), /g1=r/);
});

test('a node added later receives every role: attributes, verifiers, memberships', async () => {
  const w2 = cluster.workers[1]!;
  assert.equal(await loginOutcome(w2, 'r1', 'R1-pw-bb02'), '28P01', 'not there before the node joins');
  await admin.ok(`SELECT citus_add_node('${w2.host}', ${w2.port})`);
  const roles = (await admin.ok("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1")).map((r) => r[0]!);
  assert.ok(roles.includes('r1') && roles.includes('g2') && roles.includes('in_txn'));
  for (const role of roles) {
    const values = await everywhere(roleRow(role));
    assert.equal(values.length, 3);
    assert.equal(values[2], values[0], `${role} on the new node`);
  }
  await same(MEMBERSHIPS, 'memberships on the new node');
  assert.equal(await loginOutcome(w2, 'r1', 'R1-pw-bb02'), 'ok');
  const r1 = await login('r1', 'R1-pw-bb02');
  const who = await r1.ok('SELECT * FROM run_command_on_workers($$SELECT current_user$$)');
  assert.deepEqual(who.map((r) => [r[2], r[3]]), [['t', 'r1'], ['t', 'r1']]);
  // Adding it again changes nothing.
  await admin.ok(`SELECT citus_add_node('${w2.host}', ${w2.port})`);
});
