/**
 * Role changes made inside functions (issue 10): CREATE / ALTER / DROP ROLE,
 * GRANT role and RENAME inside DO blocks, procedures and functions called by
 * SELECT reach every worker —
 * the same attributes, SCRAM verifier and memberships — in the same commit
 * as the coordinator's change: a DO that fails, or a block rolled back,
 * leaves no node changed. A non-superuser's function that changes roles is
 * refused (0A000) rather than letting roles diverge; the internal role stays
 * out of reach (42501). A procedure that commits by itself is synced right
 * after. The same over the extended protocol (node-postgres with
 * parameters: Parse/Bind/Execute/Sync). Against a real 2-worker cluster,
 * checked in every node's pg_authid.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { Client, loginOutcome, startSecurityCluster, type SecurityCluster } from './support.js';
import { frontend } from '../server/raw-protocol.js';

let cluster: TestCluster;
let admin: Client;
let login: SecurityCluster['login'];
let stop: SecurityCluster['stop'] | undefined;

before(async () => {
  ({ cluster, admin, login, stop } = await startSecurityCluster());
  await admin.ok('CREATE TABLE notes (tenant int NOT NULL, body text)');
  await admin.ok("INSERT INTO notes SELECT i, 'n' || i FROM generate_series(1, 20) i");
  await admin.ok("SELECT create_distributed_table('notes', 'tenant', shard_count => 4)");
});

after(async () => {
  await stop?.();
});

/** A role's row (attributes, verifier) on the coordinator, then on each worker; 'absent' where it does not exist. */
async function everywhere(sql: string): Promise<string[]> {
  const here = (await admin.ok(sql))[0]?.[0] ?? 'NULL';
  const there = await admin.ok(`SELECT * FROM run_command_on_workers($pgw$${sql}$pgw$)`);
  for (const r of there) assert.equal(r[2], 't', `${sql} on ${r[0]}:${r[1]}: ${r[3]}`);
  return [here, ...there.map((r) => r[3]!)];
}

const roleRow = (name: string) =>
  `SELECT coalesce((SELECT row(rolsuper, rolcreatedb, rolcanlogin, rolconnlimit, rolpassword)::text FROM pg_authid WHERE rolname = '${name}'), 'absent')`;
const memberOf = (member: string) =>
  `SELECT coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = '${member}'), '-')`;

async function same(sql: string, what: string): Promise<string> {
  const values = await everywhere(sql);
  for (const v of values.slice(1)) assert.equal(v, values[0], `${what}: coordinator ${values[0]} vs worker ${v}`);
  return values[0]!;
}

test('CREATE ROLE … PASSWORD in a DO block: the same role and verifier on every node; it logs in and reads shards', async () => {
  await admin.ok(`DO $$ BEGIN CREATE ROLE do_role LOGIN PASSWORD 'Do-pw-41b7e2'; END $$`);
  const row = await same(roleRow('do_role'), 'created in DO');
  assert.match(row, /SCRAM-SHA-256\$4096:/);
  assert.equal(await loginOutcome(cluster.workers[0]!, 'do_role', 'Do-pw-41b7e2'), 'ok', 'straight to a worker: the same verifier');
  await admin.ok('GRANT SELECT ON notes TO do_role');
  const c = await login('do_role', 'Do-pw-41b7e2');
  assert.deepEqual(await c.ok('SELECT count(*) FROM notes'), [['20']], 'multi-shard, authenticated on every worker as itself');
  assert.deepEqual(await c.ok('SELECT body FROM notes WHERE tenant = 3'), [['n3']], 'router');
});

test('ALTER ROLE and GRANT role inside a procedure called by CALL; a plpgsql function; RAISE NOTICE still reaches the client', async () => {
  await admin.ok('CREATE ROLE fn_group NOLOGIN');
  await admin.ok(`CREATE PROCEDURE set_up(r text, pw text) LANGUAGE plpgsql AS $$
    BEGIN
      EXECUTE format('ALTER ROLE %I CREATEDB CONNECTION LIMIT 7 PASSWORD %L', r, pw);
      EXECUTE format('GRANT fn_group TO %I', r);
      RAISE NOTICE 'set up %', r;
    END $$`);
  const r = await admin.query("CALL set_up('do_role', 'Do-pw-2nd-9c0d11')");
  assert.equal(r.error, undefined, r.message);
  assert.deepEqual(r.tags, ['CALL']);
  assert.match(await same(roleRow('do_role'), 'altered in CALL'), /^\(f,t,t,7,SCRAM/);
  assert.equal(await same(memberOf('do_role'), 'granted in CALL'), 'fn_group');
  assert.equal(await loginOutcome(cluster.config.listen, 'do_role', 'Do-pw-41b7e2'), '28P01');
  assert.equal(await loginOutcome(cluster.workers[1]!, 'do_role', 'Do-pw-2nd-9c0d11'), 'ok');

  // A procedure with OUT parameters: its row reaches the client.
  await admin.ok(`CREATE PROCEDURE limit_of(r text, INOUT n int DEFAULT NULL) LANGUAGE plpgsql AS $$
    BEGIN EXECUTE format('ALTER ROLE %I CONNECTION LIMIT 3', r); SELECT rolconnlimit INTO n FROM pg_roles WHERE rolname = r; END $$`);
  const out = await admin.query("CALL limit_of('do_role')");
  assert.deepEqual(out.rows, [['3']]);
  assert.match(await same(roleRow('do_role'), 'limit from CALL'), /^\(f,t,t,3,/);
});

test('a plpgsql function that runs ALTER ROLE, called by SELECT: the workers follow; ROLLBACK undoes it everywhere', async () => {
  await admin.ok(`CREATE FUNCTION limit_role(r text, n int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN EXECUTE format('ALTER ROLE %I CONNECTION LIMIT %s', r, n); RETURN n; END $$`);
  assert.deepEqual(await admin.ok("SELECT limit_role('do_role', 9)"), [['9']]);
  assert.match(await same(roleRow('do_role'), 'SELECT f()'), /^\(f,t,t,9,/);
  assert.deepEqual(await admin.ok("SELECT x FROM (SELECT limit_role('do_role', 11) AS x) s"), [['11']], 'inside a subquery');
  assert.match(await same(roleRow('do_role'), 'SELECT … FROM (SELECT f())'), /^\(f,t,t,11,/);
  await admin.ok('BEGIN');
  assert.deepEqual(await admin.ok("SELECT limit_role('do_role', 12)"), [['12']]);
  await admin.ok('ROLLBACK');
  assert.match(await same(roleRow('do_role'), 'rolled back'), /^\(f,t,t,11,/);
  await admin.ok('BEGIN');
  await admin.ok("SELECT limit_role('do_role', 13)");
  await admin.ok('COMMIT');
  assert.match(await same(roleRow('do_role'), 'committed'), /^\(f,t,t,13,/);
});

test('RENAME and DROP ROLE in DO blocks; a DO that fails changes nothing anywhere', async () => {
  await admin.ok(`DO $$ BEGIN CREATE ROLE to_rename; CREATE ROLE to_drop; END $$`);
  await same(roleRow('to_drop'), 'created');
  await admin.ok(`DO $$ BEGIN ALTER ROLE to_rename RENAME TO renamed_in_do; DROP ROLE to_drop; END $$`);
  assert.equal(await same(roleRow('to_rename'), 'old name'), 'absent');
  assert.notEqual(await same(roleRow('renamed_in_do'), 'new name'), 'absent');
  assert.equal(await same(roleRow('to_drop'), 'dropped'), 'absent');

  const failed = await admin.query(`DO $$ BEGIN CREATE ROLE never_made; PERFORM 1 / 0; END $$`);
  assert.equal(failed.error, '22012');
  assert.equal(await same(roleRow('never_made'), 'failed DO'), 'absent');
  assert.deepEqual(await admin.ok('SELECT 1'), [['1']], 'the session goes on');
});

test('inside a transaction block: COMMIT puts the role everywhere, ROLLBACK nowhere', async () => {
  await admin.ok('BEGIN');
  await admin.ok(`DO $$ BEGIN CREATE ROLE in_block LOGIN PASSWORD 'Blk-pw-77aa01'; END $$`);
  await admin.ok('INSERT INTO notes VALUES (1, $$in block$$), (2, $$in block$$)');
  await admin.ok('ROLLBACK');
  assert.equal(await same(roleRow('in_block'), 'rolled back'), 'absent');

  await admin.ok('BEGIN');
  await admin.ok(`DO $$ BEGIN CREATE ROLE in_block LOGIN PASSWORD 'Blk-pw-77aa01'; END $$`);
  await admin.ok('GRANT SELECT ON notes TO in_block');
  await admin.ok('COMMIT');
  assert.match(await same(roleRow('in_block'), 'committed'), /SCRAM/);
  const c = await login('in_block', 'Blk-pw-77aa01');
  assert.deepEqual(await c.ok('SELECT count(*) FROM notes'), [['20']]);
});

test('a procedure that commits by itself: its role change reaches the workers right after', async () => {
  await admin.ok(`CREATE PROCEDURE two_steps() LANGUAGE plpgsql AS $$
    BEGIN CREATE ROLE step_one; COMMIT; CREATE ROLE step_two CREATEDB; END $$`);
  await admin.ok('CALL two_steps()');
  assert.notEqual(await same(roleRow('step_one'), 'first step'), 'absent');
  assert.match(await same(roleRow('step_two'), 'second step'), /^\(f,t,/);
});

test('a non-superuser\'s function that changes roles is refused; the internal role is out of reach', async () => {
  await admin.ok(`CREATE ROLE manager LOGIN CREATEROLE PASSWORD 'Mgr-pw-5e6f70'`);
  const manager = await login('manager', 'Mgr-pw-5e6f70');
  const refused = await manager.query(`DO $$ BEGIN CREATE ROLE made_by_manager; END $$`);
  assert.equal(refused.error, '0A000', refused.message);
  assert.equal(await same(roleRow('made_by_manager'), 'refused'), 'absent');
  // The statement itself works, as a role statement the coordinator propagates.
  await manager.ok('CREATE ROLE made_by_manager');
  assert.notEqual(await same(roleRow('made_by_manager'), 'as a statement'), 'absent');
  // A DO without role changes is not affected.
  assert.deepEqual((await manager.query(`DO $$ BEGIN PERFORM 1; END $$`)).tags, ['DO']);

  const internal = cluster.config.internal.user;
  const before = await everywhere(roleRow(internal));
  for (const sql of [`ALTER ROLE ${internal} CONNECTION LIMIT 1`, `ALTER ROLE ${internal} PASSWORD 'x'`, `ALTER ROLE ${internal} RENAME TO gone`]) {
    const r = await admin.query(`DO $$ BEGIN ${sql}; END $$`);
    assert.equal(r.error, '42501', `${sql}: ${r.error} ${r.message}`);
  }
  assert.deepEqual(await everywhere(roleRow(internal)), before);
  assert.deepEqual(await admin.ok('SELECT count(*) FROM notes'), [['20']], 'the coordinator still works as the internal role');
});

/** node-postgres as the cluster's superuser: queries with parameters use the extended protocol. */
async function extendedClient(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: cluster.url });
  await c.connect();
  c.on('error', () => {});
  return c;
}

test('over the extended protocol: a role made by SELECT f($1) logs in through pgweave; ALTER ROLE … PASSWORD in a function reaches the workers', async () => {
  await admin.ok(`CREATE FUNCTION make_role(r text, pw text) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, pw); RETURN r; END $$`);
  await admin.ok(`CREATE FUNCTION set_password(r text, pw text) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', r, pw); RETURN r; END $$`);
  const ext = await extendedClient();
  try {
    const made = await ext.query('SELECT make_role($1, $2) AS made', ['ext_role', 'Ext-pw-3a9c55']);
    assert.deepEqual(made.rows, [{ made: 'ext_role' }]);
    assert.match(await same(roleRow('ext_role'), 'created over the extended protocol'), /SCRAM-SHA-256\$4096:/);
    await admin.ok('GRANT SELECT ON notes TO ext_role');
    const c = await login('ext_role', 'Ext-pw-3a9c55');
    assert.deepEqual(await c.ok('SELECT count(*) FROM notes'), [['20']], 'worker connections authenticate as the new role');

    // A prepared statement (named, run twice): the second run is watched too.
    const setPw = { name: 'set_pw', text: 'SELECT set_password($1, $2)' };
    await ext.query({ ...setPw, values: ['ext_role', 'Ext-pw-2nd-71d0e4'] });
    await ext.query({ ...setPw, values: ['ext_role', 'Ext-pw-3rd-0b8f26'] });
    await same(roleRow('ext_role'), 'password changed in a function');
    assert.equal(await loginOutcome(cluster.workers[1]!, 'ext_role', 'Ext-pw-3rd-0b8f26'), 'ok', 'straight to a worker: the new verifier');
    assert.equal(await loginOutcome(cluster.config.listen, 'ext_role', 'Ext-pw-2nd-71d0e4'), '28P01');

    // As JDBC does: Describe of the statement before Bind / Execute (answered by the coordinator, which runs it).
    admin.conn.write(Buffer.concat([
      frontend.parse({ name: 'jdbc_make', text: 'SELECT make_role($1, $2)', types: [] }),
      frontend.describe({ type: 'S', name: 'jdbc_make' }),
      frontend.bind({ statement: 'jdbc_make', values: ['ext_jdbc', 'Jdbc-pw-6d4e19'] }),
      frontend.execute({}),
      frontend.sync(),
    ]));
    const replies = await admin.conn.readUntil('Z', 30_000);
    assert.equal(replies.map((m) => m.type).join(''), '1tT2DCZ');
    assert.match(await same(roleRow('ext_jdbc'), 'created after Describe of the statement'), /SCRAM/);

    // DO over the extended protocol (a named statement); in a block, ROLLBACK undoes it everywhere, COMMIT keeps it.
    await ext.query({ name: 'ext_do', text: `DO $$ BEGIN CREATE ROLE ext_do CREATEDB; END $$` });
    assert.match(await same(roleRow('ext_do'), 'DO over the extended protocol'), /^\(f,t,/);
    await ext.query('BEGIN');
    await ext.query('SELECT make_role($1, $2)', ['ext_rolled_back', 'Rb-pw-5c1d02']);
    await ext.query('ROLLBACK');
    assert.equal(await same(roleRow('ext_rolled_back'), 'rolled back'), 'absent');
    await ext.query('BEGIN');
    await ext.query('SELECT make_role($1, $2)', ['ext_in_block', 'Blk-pw-8e2f13']);
    await ext.query('COMMIT');
    assert.match(await same(roleRow('ext_in_block'), 'committed'), /SCRAM/);

    // A failing call changes nothing anywhere, and the connection goes on.
    await assert.rejects(ext.query('SELECT make_role($1, $2)', ['ext_role', 'x']), (e: { code?: string }) => e.code === '42710');
    assert.deepEqual((await ext.query('SELECT $1::int + 1 AS n', [1])).rows, [{ n: 2 }]);
  } finally {
    await ext.end();
  }

  // A non-superuser over the extended protocol: 0A000, nothing changed.
  const manager = new pg.Client({ host: cluster.config.listen.host, port: cluster.config.listen.port, user: 'manager', password: 'Mgr-pw-5e6f70', database: 'postgres' });
  await manager.connect();
  manager.on('error', () => {});
  try {
    await assert.rejects(manager.query('SELECT make_role($1, $2)', ['made_by_mgr_ext', 'Mgr-ext-pw-1']), (e: { code?: string }) => e.code === '0A000');
    assert.equal(await same(roleRow('made_by_mgr_ext'), 'refused'), 'absent');
  } finally {
    await manager.end();
  }
});
