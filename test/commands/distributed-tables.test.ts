/**
 * create_distributed_table, create_reference_table and undistribute_table
 * against a real 2-worker cluster: rows moved into exactly the shard their
 * PostgreSQL hash selects (checked on the workers), shard definitions
 * (constraints, indexes, no sequence defaults), co-location, foreign keys,
 * Citus's errors, get_shard_id_for_distribution_column, citus_shards sizes,
 * and a second database (its shards live in the same-named worker database).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { PgError } from '../../src/protocol/errors.js';
import { refreshShardSizes } from '../../src/commands/shard-functions.js';
import { call, makeContext, onNode, type TestContext } from './command-context.js';

let cluster: TestCluster;
let t: TestContext;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  t = await makeContext(cluster);
  for (const w of cluster.workers) await call(t.ctx, 'citus_add_node', [w.host, String(w.port)]);
});

after(async () => {
  t?.close();
  await cluster?.stop();
});

function pgError(code: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PgError, `expected a PgError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

interface ShardRow {
  shardid: string;
  min: string | null;
  max: string | null;
  host: string;
  port: number;
}

async function shardsOf(table: string): Promise<ShardRow[]> {
  const r = await t.client.query(
    `SELECT s.shardid, s.shardminvalue, s.shardmaxvalue, n.nodename, n.nodeport
     FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
     WHERE s.logicalrelid = $1::regclass ORDER BY s.shardminvalue::int NULLS FIRST, n.nodeport`,
    [table],
  );
  return r.rows.map((row) => ({ shardid: row[0]!, min: row[1], max: row[2], host: row[3]!, port: Number(row[4]) }));
}

test('a table with 100 000 rows: every row lands in the shard its hash selects', async () => {
  await t.client.query(`CREATE TABLE t (id int PRIMARY KEY, payload text NOT NULL DEFAULT 'p', seq bigserial, CHECK (id > 0));
                        CREATE INDEX t_payload_idx ON t (payload);
                        INSERT INTO t (id, payload) SELECT i, md5(i::text) FROM generate_series(1, 100000) i`);
  assert.deepEqual(await call(t.ctx, 'create_distributed_table', ['t', 'id']), [['']]);

  const shards = await shardsOf('t');
  assert.equal(shards.length, 32, 'citus.shard_count defaults to 32');
  assert.equal(shards[0]!.shardid, '102008', 'shard ids start at 102008');
  assert.equal(shards[0]!.min, '-2147483648');
  assert.equal(shards[31]!.max, '2147483647');
  assert.deepEqual((await t.client.query('SELECT count(*) FROM ONLY t')).rows, [['0']], 'the coordinator table is empty');

  let total = 0;
  for (const s of shards) {
    const shard = `t_${s.shardid}`;
    const misplaced = await onNode(t.ctx, s, `SELECT count(*) FROM ${shard} WHERE hashint4(id) NOT BETWEEN $1 AND $2`, [s.min, s.max]);
    assert.deepEqual(misplaced.rows, [['0']], `rows outside the range of ${shard}`);
    total += Number((await onNode(t.ctx, s, `SELECT count(*) FROM ${shard}`)).rows[0]![0]);
  }
  assert.equal(total, 100000);

  // Shards alternate between the two workers, by node id.
  assert.equal(shards[0]!.port, cluster.workers[0]!.port);
  assert.equal(shards[1]!.port, cluster.workers[1]!.port);

  // The shard's definition: constraints and indexes renamed, no sequence default.
  const s0 = shards[0]!;
  const indexes = await onNode(t.ctx, s0, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 't_102008'::regclass ORDER BY 1`);
  assert.deepEqual(indexes.rows, [['t_payload_idx_102008'], ['t_pkey_102008']]);
  const checks = await onNode(t.ctx, s0, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 't_102008'::regclass AND contype = 'c'`);
  assert.deepEqual(checks.rows, [['t_id_check_102008', 'CHECK ((id > 0))']]);
  const defaults = await onNode(t.ctx, s0, `SELECT attname, pg_get_expr(adbin, adrelid) FROM pg_attrdef JOIN pg_attribute ON attrelid = adrelid AND attnum = adnum WHERE adrelid = 't_102008'::regclass`);
  assert.deepEqual(defaults.rows, [['payload', "'p'::text"]]);
  const owner = await onNode(t.ctx, s0, `SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 't_102008'::regclass`);
  assert.deepEqual(owner.rows, [['postgres']]);

  // citus_shards lists every placement; sizes appear after a refresh.
  await refreshShardSizes(t.ctx);
  const listed = await t.client.query(`SELECT shard_name, citus_table_type, nodeport, shard_size FROM citus_shards WHERE table_name = 't'::regclass ORDER BY shardid`);
  assert.equal(listed.rows.length, 32);
  assert.deepEqual(listed.rows[0]!.slice(0, 3), ['t_102008', 'distributed', String(cluster.workers[0]!.port)]);
  for (const row of listed.rows) assert.ok(Number(row[3]) > 0, `size of ${row[0]}`);
  const tables = await t.client.query(`SELECT table_name::text, citus_table_type, distribution_column, shard_count, table_size IS NOT NULL FROM citus_tables`);
  assert.deepEqual(tables.rows, [['t', 'distributed', 'id', '32', 't']]);

  // get_shard_id_for_distribution_column agrees with where the row is.
  for (const id of ['1', '42', '99999']) {
    const [[shardId]] = (await call(t.ctx, 'get_shard_id_for_distribution_column', ['t', id])) as [[string]];
    const holder = shards.find((s) => s.shardid === shardId)!;
    const found = await onNode(t.ctx, holder, `SELECT count(*) FROM t_${shardId} WHERE id = $1`, [id]);
    assert.deepEqual(found.rows, [['1']], `row ${id} in shard ${shardId}`);
  }
});

test('Citus-compatible catalog rows', async () => {
  const partition = await t.client.query(`SELECT logicalrelid::text, partmethod, partkey IS NOT NULL, repmodel, autoconverted FROM pg_dist_partition WHERE logicalrelid = 't'::regclass`);
  assert.deepEqual(partition.rows, [['t', 'h', 't', 's', 'f']]);
  const group = await t.client.query(`SELECT shardcount, replicationfactor, distributioncolumntype::regtype::text FROM pg_dist_colocation c JOIN pg_dist_partition p USING (colocationid) WHERE p.logicalrelid = 't'::regclass`);
  assert.deepEqual(group.rows, [['32', '1', 'integer']]);
  const name = await t.client.query(`SELECT shard_name('t'::regclass, 102008)`);
  assert.deepEqual(name.rows, [['t_102008']]);
});

test('errors: unknown table, unknown column, already distributed, bad arguments', async () => {
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['no_such_table', 'id']), pgError('42P01', /relation "no_such_table" does not exist/));
  await t.client.query('CREATE TABLE e1 (id int, v text)');
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e1', 'nope']), pgError('42703', /column "nope" of relation "e1" does not exist/));
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['t', 'id']), pgError('XX000', /table "t" is already distributed/));
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e1', 'id', 'bogus']), pgError('22P02'));
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e1', 'id'], { shard_count: '0' }), pgError('22023', /outside the valid range/));
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e1']), pgError('42883', /function create_distributed_table\(unknown\) does not exist/));
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e1', 'id'], { no_such_arg: '1' }), pgError('42883'));
  assert.deepEqual(await call(t.ctx, 'create_distributed_table', [null, 'id']), [[null]], 'STRICT: a NULL table is a no-op');
  await t.client.query('CREATE TEMP TABLE tmp1 (id int)');
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['tmp1', 'id']), pgError('0A000', /cannot distribute a temporary table/));
  await t.client.query('CREATE VIEW v1 AS SELECT 1 AS id');
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['v1', 'id']), pgError('42809'));
  // Nothing of the failed calls is left behind.
  assert.deepEqual((await t.client.query(`SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'e1'::regclass`)).rows, [['0']]);
});

test('only the table owner may distribute it', async () => {
  await t.client.query("CREATE ROLE bob LOGIN PASSWORD 'bob-pw'; GRANT ALL ON e1 TO bob");
  const bob = await makeContext(cluster, { user: 'bob', password: 'bob-pw' });
  try {
    await assert.rejects(call(bob.ctx, 'create_distributed_table', ['e1', 'id']), pgError('42501', /must be owner of table e1/));
  } finally {
    bob.close();
  }
});

test('grants, row-level security and the owner reach the shards; missing roles are created on the workers', async () => {
  await t.client.query(`CREATE ROLE owner_role LOGIN PASSWORD 'o-pw'; CREATE ROLE app_reader LOGIN PASSWORD 'r-pw';
                        CREATE SCHEMA secure AUTHORIZATION owner_role;
                        CREATE TABLE secure.docs (tenant int, body text);
                        ALTER TABLE secure.docs OWNER TO owner_role;
                        GRANT USAGE ON SCHEMA secure TO app_reader;
                        GRANT SELECT ON secure.docs TO app_reader;
                        ALTER TABLE secure.docs ENABLE ROW LEVEL SECURITY;
                        CREATE POLICY tenant_only ON secure.docs FOR SELECT TO app_reader USING (tenant = 7)`);
  await call(t.ctx, 'create_distributed_table', ['secure.docs', 'tenant'], { shard_count: '2' });
  const [s] = await shardsOf('secure.docs');
  const shard = `secure.docs_${s!.shardid}`;
  const rel = await onNode(t.ctx, s!, `SELECT pg_get_userbyid(relowner), relrowsecurity, relacl::text FROM pg_class WHERE oid = $1::regclass`, [shard]);
  assert.deepEqual(rel.rows[0]!.slice(0, 2), ['owner_role', 't']);
  assert.match(rel.rows[0]![2]!, /app_reader=r\/owner_role/);
  const policy = await onNode(t.ctx, s!, `SELECT policyname, roles::text, qual FROM pg_policies WHERE schemaname = 'secure'`);
  assert.deepEqual(policy.rows, [['tenant_only', '{app_reader}', '(tenant = 7)']]);
  const role = await onNode(t.ctx, s!, `SELECT rolcanlogin, rolpassword = $1 FROM pg_authid WHERE rolname = 'app_reader'`, [
    (await t.client.query(`SELECT rolpassword FROM pg_authid WHERE rolname = 'app_reader'`)).rows[0]![0]!,
  ]);
  assert.deepEqual(role.rows, [['t', 't']], 'the same SCRAM verifier, so the client can log in to the worker as itself');
});

test('a primary key without the distribution column is refused with Citus\'s error', async () => {
  await t.client.query('CREATE TABLE e2 (id bigint PRIMARY KEY, tenant int)');
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e2', 'tenant']), (err: unknown) => {
    assert.ok(err instanceof PgError);
    assert.equal(err.message, 'cannot create constraint on "e2"');
    assert.match(err.fields.detail ?? '', /cannot have UNIQUE, EXCLUDE, or PRIMARY KEY constraints that do not include the partition column/);
    return true;
  });
});

test('a NULL in the distribution column rolls everything back', async () => {
  await t.client.query('CREATE TABLE e3 (k int, v int); INSERT INTO e3 VALUES (1, 1), (NULL, 2)');
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['e3', 'k']), pgError('22004', /cannot be NULL/));
  assert.deepEqual((await t.client.query('SELECT count(*) FROM e3')).rows, [['2']], 'rows stay on the coordinator');
  assert.deepEqual((await t.client.query(`SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'e3'::regclass`)).rows, [['0']]);
  const leftovers = await call(t.ctx, 'run_command_on_workers', [`SELECT count(*) FROM pg_class WHERE relname LIKE 'e3\\_%'`]);
  for (const row of leftovers) assert.deepEqual(row.slice(2), ['t', '0']);
  const prepared = await call(t.ctx, 'run_command_on_workers', ['SELECT count(*) FROM pg_prepared_xacts']);
  for (const row of prepared) assert.deepEqual(row.slice(2), ['t', '0']);
});

test('co-location: default group, by table name, none; differing types are refused', async () => {
  await t.client.query(`CREATE TABLE orders (id int, customer int, PRIMARY KEY (customer, id));
                        CREATE TABLE items (id int, customer int, PRIMARY KEY (customer, id));
                        CREATE TABLE lonely (customer int);
                        CREATE TABLE texty (customer text);
                        INSERT INTO orders SELECT i, i % 100 FROM generate_series(1, 1000) i;
                        INSERT INTO items SELECT i, i % 100 FROM generate_series(1, 3000) i`);
  await call(t.ctx, 'create_distributed_table', ['orders', 'customer']);
  await call(t.ctx, 'create_distributed_table', ['items', 'customer'], { colocate_with: 'orders' });
  await call(t.ctx, 'create_distributed_table', ['lonely', 'customer'], { colocate_with: 'none' });
  const groups = await t.client.query(`SELECT logicalrelid::text, colocationid FROM pg_dist_partition WHERE logicalrelid::text IN ('t', 'orders', 'items', 'lonely') ORDER BY 1`);
  const byName = Object.fromEntries(groups.rows.map((r) => [r[0], r[1]]));
  assert.equal(byName.orders, byName.t, "'default' joins the existing int group with 32 shards");
  assert.equal(byName.items, byName.orders);
  assert.notEqual(byName.lonely, byName.orders);

  const [orders, items] = [await shardsOf('orders'), await shardsOf('items')];
  assert.deepEqual(items.map((s) => [s.min, s.max, s.port]), orders.map((s) => [s.min, s.max, s.port]), 'same ranges on the same nodes');

  await assert.rejects(call(t.ctx, 'create_distributed_table', ['texty', 'customer'], { colocate_with: 'orders' }), (err: unknown) => {
    assert.ok(err instanceof PgError);
    assert.equal(err.message, 'cannot colocate tables orders and texty');
    assert.equal(err.fields.detail, "Distribution column types don't match for orders and texty.");
    return true;
  });
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['texty', 'customer'], { colocate_with: 'e1' }), pgError('42P16', /cannot distribute relation/));
  await assert.rejects(
    call(t.ctx, 'create_distributed_table', ['texty', 'customer'], { colocate_with: 'orders', shard_count: '8' }),
    pgError('22023', /colocate_with with a table and shard_count/),
  );
  await call(t.ctx, 'create_distributed_table', ['texty', 'customer'], { shard_count: '8' });
  assert.equal((await shardsOf('texty')).length, 8);
});

test('citus.shard_count sets the shard count of new tables', async () => {
  await t.client.query('CREATE TABLE six (id int)');
  t.ctx.settings.set('citus.shard_count', '6');
  try {
    await call(t.ctx, 'create_distributed_table', ['six', 'id']);
  } finally {
    t.ctx.settings.delete('citus.shard_count');
  }
  const shards = await shardsOf('six');
  assert.equal(shards.length, 6);
  assert.deepEqual(shards.map((s) => s.min), ['-2147483648', '-1431655766', '-715827884', '-2', '715827880', '1431655762']);
});

test('foreign keys: to a co-located table and to a reference table become shard-to-shard keys', async () => {
  await t.client.query(`CREATE TABLE countries (code text PRIMARY KEY);
                        INSERT INTO countries VALUES ('fr'), ('de');
                        CREATE TABLE customers (id int PRIMARY KEY, country text REFERENCES countries);
                        CREATE TABLE visits (customer int REFERENCES customers, at int)`);
  await assert.rejects(call(t.ctx, 'create_distributed_table', ['customers', 'id']), pgError('0A000', /not colocated or not referencing a reference table/));
  await call(t.ctx, 'create_reference_table', ['countries']);
  await call(t.ctx, 'create_distributed_table', ['customers', 'id']);
  await call(t.ctx, 'create_distributed_table', ['visits', 'customer'], { colocate_with: 'customers' });

  const [ref] = await shardsOf('countries');
  const customers = await shardsOf('customers');
  const visits = await shardsOf('visits');
  const fks = await onNode(
    t.ctx,
    visits[3]!,
    `SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND conrelid IN ($1::regclass, $2::regclass) ORDER BY 1`,
    [`visits_${visits[3]!.shardid}`, `customers_${customers[3]!.shardid}`],
  );
  assert.deepEqual(fks.rows, [
    [`customers_${customers[3]!.shardid}`, `countries_${ref!.shardid}`],
    [`visits_${visits[3]!.shardid}`, `customers_${customers[3]!.shardid}`],
  ]);
  // The shard keys are enforced on the worker.
  const c0 = `customers_${customers[0]!.shardid}`;
  await assert.rejects(onNode(t.ctx, customers[0]!, `INSERT INTO ${c0} VALUES (-5, 'xx')`), pgError('23503'));
  await onNode(t.ctx, customers[0]!, `INSERT INTO ${c0} VALUES (-5, 'fr')`);

  // A reference table referencing a distributed one is refused.
  await t.client.query('CREATE TABLE bad_ref (customer int REFERENCES customers)');
  await assert.rejects(call(t.ctx, 'create_reference_table', ['bad_ref']), pgError('0A000', /from reference tables and local tables to distributed tables/));
});

test('a table whose rows are referenced by a local table cannot be distributed, and nothing changes', async () => {
  await t.client.query(`CREATE TABLE plans (id int PRIMARY KEY); INSERT INTO plans VALUES (1), (2);
                        CREATE TABLE subscriptions (plan int REFERENCES plans); INSERT INTO subscriptions VALUES (1)`);
  await assert.rejects(call(t.ctx, 'create_reference_table', ['plans']), pgError('0A000', /rows of table "subscriptions" reference it/));
  assert.deepEqual((await t.client.query('SELECT count(*) FROM plans')).rows, [['2']]);
  assert.deepEqual((await t.client.query(`SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'plans'::regclass`)).rows, [['0']]);
});

test('reference tables: one shard, a placement with all rows on every worker', async () => {
  const shards = await shardsOf('countries');
  assert.equal(shards.length, 2);
  assert.deepEqual(shards.map((s) => [s.min, s.max]), [[null, null], [null, null]]);
  const rows = await call(t.ctx, 'run_command_on_placements', ['countries', 'SELECT string_agg(code, \',\' ORDER BY code) FROM %s']);
  assert.deepEqual(rows.map((r) => r.slice(3)), [['t', 'de,fr'], ['t', 'de,fr']]);
  const p = await t.client.query(`SELECT partmethod, repmodel, partkey FROM pg_dist_partition WHERE logicalrelid = 'countries'::regclass`);
  assert.deepEqual(p.rows, [['n', 't', null]]);
  assert.deepEqual(await call(t.ctx, 'get_shard_id_for_distribution_column', ['countries']), [[shards[0]!.shardid]]);
});

test('undistribute_table brings the rows back and drops the shards', async () => {
  await t.client.query('CREATE TABLE u (id int PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY, g int GENERATED ALWAYS AS (id * 2) STORED, v jsonb)');
  await t.client.query(`INSERT INTO u (id, v) SELECT i, jsonb_build_object('i', i, 's', E'q"\\\\x') FROM generate_series(1, 500) i`);
  const before = await t.client.query('SELECT md5(string_agg(u::text, \',\' ORDER BY id)) FROM u');
  await call(t.ctx, 'create_distributed_table', ['u', 'id'], { shard_count: '4' });
  const shards = await shardsOf('u');
  await call(t.ctx, 'undistribute_table', ['u']);
  const after = await t.client.query('SELECT md5(string_agg(u::text, \',\' ORDER BY id)) FROM u');
  assert.deepEqual(after.rows, before.rows, 'identical rows, generated and identity columns included');
  assert.deepEqual((await t.client.query(`SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'u'::regclass`)).rows, [['0']]);
  for (const s of shards) {
    const r = await onNode(t.ctx, s, 'SELECT to_regclass($1) IS NULL', [`u_${s.shardid}`]);
    assert.deepEqual(r.rows, [['t']]);
  }
  await assert.rejects(call(t.ctx, 'undistribute_table', ['u']), pgError('22023', /not distributed/));
  await assert.rejects(call(t.ctx, 'undistribute_table', ['customers']), pgError('0A000', /foreign key/));
});

test('values round-trip exactly through the shards, whatever their type', async () => {
  await t.client.query(`CREATE TABLE kinds (k uuid PRIMARY KEY, a int[], b bytea, f float8, n numeric, ts timestamptz, j json, t text COLLATE "C");
    INSERT INTO kinds SELECT md5(i::text)::uuid, ARRAY[i, NULL], decode(md5(i::text), 'hex'), i / 7.0, i / 3.0, '2024-01-01'::timestamptz + i * interval '1 hour', '{"a": [1, "x"]}', E'line\\nbreak "q" \\\\ ' || i
    FROM generate_series(1, 300) i; INSERT INTO kinds (k) VALUES ('00000000-0000-0000-0000-000000000000')`);
  const before = await t.client.query('SELECT md5(string_agg(kinds::text, \',\' ORDER BY k)) FROM kinds');
  await call(t.ctx, 'create_distributed_table', ['kinds', 'k'], { shard_count: '3' });
  const shards = await shardsOf('kinds');
  for (const s of shards) {
    const misplaced = await onNode(t.ctx, s, `SELECT count(*) FROM kinds_${s.shardid} WHERE uuid_hash(k) NOT BETWEEN $1 AND $2`, [s.min, s.max]);
    assert.deepEqual(misplaced.rows, [['0']]);
  }
  await call(t.ctx, 'undistribute_table', ['kinds']);
  const after = await t.client.query('SELECT md5(string_agg(kinds::text, \',\' ORDER BY k)) FROM kinds');
  assert.deepEqual(after.rows, before.rows);
});

test('another database gets its own catalog, and its shards live in the same-named database on the workers', async () => {
  await t.client.query('CREATE DATABASE "App DB"');
  const app = await makeContext(cluster, { database: 'App DB' });
  try {
    // A new database starts with the nodes of the "postgres" database's catalog.
    assert.deepEqual(await call(app.ctx, 'citus_get_active_worker_nodes', []), cluster.workers.map((w) => [w.host, String(w.port)]));
    await app.client.query('CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Deals" ("Id" bigint, amount int); INSERT INTO "Sales"."Deals" SELECT i, i FROM generate_series(1, 100) i');
    await call(app.ctx, 'create_distributed_table', ['"Sales"."Deals"', 'Id'], { shard_count: '4' });
    const shards = await app.client.query(`SELECT shardid, shard_name FROM citus_shards ORDER BY shardid`);
    assert.equal(shards.rows.length, 4);
    assert.equal(shards.rows[0]![1], `"Sales"."Deals_${shards.rows[0]![0]}"`);
    const counts = await call(app.ctx, 'run_command_on_shards', ['"Sales"."Deals"', 'SELECT count(*) FROM %s']);
    assert.equal(counts.reduce((sum, r) => sum + Number(r[2]), 0), 100);
    const inDb = await app.ctx.pools.get(cluster.workers[0]!.host, cluster.workers[0]!.port, 'App DB').query(`SELECT count(*) FROM pg_tables WHERE schemaname = 'Sales'`);
    assert.deepEqual(inDb.rows, [['2']]);
    // The first database's catalog does not see them.
    assert.deepEqual((await t.client.query(`SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE '%Deals%'`)).rows, [['0']]);
  } finally {
    app.close();
  }
});
