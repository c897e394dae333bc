/**
 * ALTER TABLE propagation through the coordinator, checked on every shard on
 * the workers: columns, defaults (sequence defaults stay on the coordinator),
 * NOT NULL, CHECK / PRIMARY KEY / UNIQUE (named and unnamed), foreign keys to
 * co-located and reference tables, renames, and Citus's errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoPreparedTransactions, onShards, pgError, shardsOf, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
/** A hang must fail the test, not block the run. */
const T = { timeout: 120_000 };

before(async () => {
  c = await startDdlCluster();
  await q(`CREATE TABLE orders (id bigint, tenant int NOT NULL, amount int, note text);
           INSERT INTO orders SELECT i, i % 10, i, 'x' FROM generate_series(1, 500) i;
           SELECT create_distributed_table('orders', 'tenant', shard_count => 4);
           CREATE TABLE tenants (tenant int PRIMARY KEY, name text);
           INSERT INTO tenants SELECT i, 't' || i FROM generate_series(0, 9) i;
           SELECT create_distributed_table('tenants', 'tenant', colocate_with => 'orders');
           CREATE TABLE currencies (code text PRIMARY KEY); INSERT INTO currencies VALUES ('EUR'), ('USD');
           SELECT create_reference_table('currencies')`);
});

after(async () => {
  await c?.stop();
});

const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);

/** Columns of every shard of `table`: name, type, not null, default. */
async function shardColumns(table: string) {
  return onShards(
    c,
    table,
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS def
     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
  );
}

async function shardConstraints(table: string) {
  return onShards(c, table, `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY conname`);
}

test('columns: add, drop, rename, type, defaults, NOT NULL', T, async () => {
  await q(`ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new', ADD COLUMN created date DEFAULT '2024-01-01'`);
  await q('ALTER TABLE orders DROP COLUMN note');
  await q('ALTER TABLE orders RENAME COLUMN amount TO cents');
  await q('ALTER TABLE orders ALTER COLUMN cents TYPE bigint');
  await q(`ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'open', ALTER COLUMN created DROP DEFAULT`);
  await q('ALTER TABLE orders ALTER COLUMN id SET NOT NULL');
  await q('ALTER TABLE orders ALTER COLUMN status DROP NOT NULL');
  for (const { rows } of await shardColumns('orders')) {
    assert.deepEqual(rows, [
      { name: 'id', type: 'bigint', notnull: true, def: null },
      { name: 'tenant', type: 'integer', notnull: true, def: null },
      { name: 'cents', type: 'bigint', notnull: false, def: null },
      { name: 'status', type: 'text', notnull: false, def: "'open'::text" },
      { name: 'created', type: 'date', notnull: false, def: null },
    ]);
  }
  let rows = 0;
  for (const shard of await shardsOf(c, 'orders')) {
    const r = await shard.worker.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'new' AND created = '2024-01-01')::int AS ok FROM public."${shard.name}"`);
    assert.equal(r.rows[0].n, r.rows[0].ok);
    rows += r.rows[0].n;
  }
  assert.equal(rows, 500);
  const cols = await q(`SELECT attname FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
  assert.deepEqual(cols.rows.map((r) => r.attname), ['id', 'tenant', 'cents', 'status', 'created']);
  await assertNoPreparedTransactions(c);
});

test('sequence defaults stay on the coordinator', T, async () => {
  await q('CREATE SEQUENCE order_seq');
  await q(`ALTER TABLE orders ALTER COLUMN id SET DEFAULT nextval('order_seq')`);
  const def = await q(`SELECT pg_get_expr(adbin, adrelid) AS def FROM pg_attrdef WHERE adrelid = 'orders'::regclass AND adnum = 1`);
  assert.equal(def.rows[0].def, "nextval('order_seq'::regclass)");
  for (const { rows } of await shardColumns('orders')) assert.equal(rows[0].def, null);

  await assert.rejects(q('ALTER TABLE orders ADD COLUMN line bigserial'), pgError('0A000', /because the table is not empty/));
  await q(`CREATE TABLE events (tenant int, payload text); SELECT create_distributed_table('events', 'tenant', colocate_with => 'orders')`);
  await q('ALTER TABLE events ADD COLUMN seq bigserial');
  for (const { rows } of await shardColumns('events')) assert.deepEqual(rows[2], { name: 'seq', type: 'bigint', notnull: true, def: null });
  await assertNoPreparedTransactions(c);
});

test('constraints: CHECK, PRIMARY KEY, UNIQUE, named and unnamed, drop and rename', T, async () => {
  await q('ALTER TABLE orders ADD CONSTRAINT positive CHECK (cents > 0), ADD CHECK (tenant >= 0)');
  await q('ALTER TABLE orders ADD PRIMARY KEY (tenant, id)');
  await q('ALTER TABLE orders ADD UNIQUE (id, tenant)');
  const names = (await q(`SELECT conname FROM pg_constraint WHERE conrelid = 'orders'::regclass ORDER BY conname`)).rows.map((r) => r.conname);
  assert.deepEqual(names, ['orders_id_tenant_key', 'orders_pkey', 'orders_tenant_check', 'positive']);
  for (const { shard, rows } of await shardConstraints('orders')) {
    assert.deepEqual(
      rows.map((r) => r.conname),
      names.map((n) => `${n}_${shard.shardId}`),
    );
    assert.equal(rows.find((r) => r.conname.startsWith('orders_pkey'))!.def, 'PRIMARY KEY (tenant, id)');
  }
  await q('ALTER TABLE orders RENAME CONSTRAINT positive TO cents_positive');
  await q('ALTER TABLE orders DROP CONSTRAINT orders_tenant_check');
  for (const { shard, rows } of await shardConstraints('orders')) {
    assert.deepEqual(
      rows.map((r) => r.conname),
      ['cents_positive', 'orders_id_tenant_key', 'orders_pkey'].map((n) => `${n}_${shard.shardId}`),
    );
  }
  // Rows on some shards violate this one: it fails everywhere.
  await assert.rejects(q('ALTER TABLE orders ADD CONSTRAINT small CHECK (cents < 400)'), pgError('23514'));
  for (const { rows } of await shardConstraints('orders')) assert.ok(!rows.some((r) => r.conname.startsWith('small')));

  await assert.rejects(
    q('ALTER TABLE orders ADD CONSTRAINT by_id UNIQUE (id)'),
    pgError('0A000', /^cannot create constraint on "orders"$/, /do not include the partition column/),
  );
  await assert.rejects(q('ALTER TABLE orders ADD COLUMN code text UNIQUE'), pgError('0A000', /cannot create constraint on "orders"/));
  await assert.rejects(q('ALTER TABLE orders ALTER COLUMN tenant TYPE bigint'), pgError('0A000', /^cannot execute ALTER TABLE command involving partition column$/));
  await assert.rejects(q('ALTER TABLE orders DROP COLUMN tenant'), pgError('0A000', /dropping partition column/));
  assert.equal((await q(`SELECT count(*)::int AS n FROM pg_constraint WHERE conname IN ('by_id', 'orders_code_key')`)).rows[0].n, 0);
  await assertNoPreparedTransactions(c);
});

test('foreign keys: co-located on the distribution column, to a reference table, and Citus errors', T, async () => {
  await q('ALTER TABLE orders ADD CONSTRAINT orders_tenant_fk FOREIGN KEY (tenant) REFERENCES tenants (tenant) ON DELETE CASCADE');
  await q(`ALTER TABLE orders ADD COLUMN currency text DEFAULT 'EUR' REFERENCES currencies (code)`);
  const tenantShards = await shardsOf(c, 'tenants');
  const [currencyShard] = await shardsOf(c, 'currencies');
  for (const [i, { shard, rows }] of (await onShards(c, 'orders', `SELECT conname, confrelid::regclass::text AS target FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY 1`)).entries()) {
    assert.deepEqual(rows, [
      { conname: `orders_currency_fkey_${shard.shardId}`, target: currencyShard!.name },
      { conname: `orders_tenant_fk_${shard.shardId}`, target: tenantShards[i]!.name },
    ]);
  }
  await assert.rejects(q(`INSERT INTO orders (id, tenant, cents, currency) VALUES (9999, 3, 1, 'XXX')`), pgError('23503'));

  await q(`CREATE TABLE other (id int PRIMARY KEY); SELECT create_distributed_table('other', 'id', colocate_with => 'none')`);
  await assert.rejects(q('ALTER TABLE orders ADD FOREIGN KEY (tenant) REFERENCES other (id)'), pgError('0A000', /not colocated or not referencing a reference table/));
  await assert.rejects(
    q('ALTER TABLE orders ADD FOREIGN KEY (cents) REFERENCES tenants (tenant)'),
    pgError('0A000', /^cannot create foreign key constraint$/, /either in between two colocated tables including partition column/),
  );
  await q('ALTER TABLE tenants ADD UNIQUE (tenant, name)');
  await assert.rejects(
    q('ALTER TABLE orders ADD COLUMN tname text, ADD FOREIGN KEY (tenant, tname) REFERENCES tenants (tenant, name) ON DELETE SET NULL'),
    pgError('0A000', /^cannot create foreign key constraint$/, /SET NULL or SET DEFAULT is not supported in ON DELETE/),
  );
  await q(`CREATE TABLE regions (id int PRIMARY KEY, tenant int); SELECT create_reference_table('regions')`);
  await assert.rejects(
    q('ALTER TABLE regions ADD FOREIGN KEY (tenant) REFERENCES tenants (tenant)'),
    pgError('0A000', /foreign keys from reference tables and local tables to distributed tables are not supported/),
  );
  await q('CREATE TABLE local_t (tenant int)');
  await assert.rejects(q('ALTER TABLE local_t ADD FOREIGN KEY (tenant) REFERENCES tenants (tenant)'), pgError('0A000', /local tables to distributed tables/));
  await assertNoPreparedTransactions(c);
});

test('reference tables: every copy changes', T, async () => {
  await q(`ALTER TABLE currencies ADD COLUMN name text DEFAULT 'n/a', ADD CONSTRAINT code_len CHECK (length(code) = 3)`);
  const shards = await shardsOf(c, 'currencies');
  assert.equal(shards.length, 2, 'one copy per worker');
  for (const { shard, rows } of await shardConstraints('currencies')) {
    assert.ok(rows.some((r) => r.conname === `code_len_${shard.shardId}`));
  }
  for (const { rows } of await shardColumns('currencies')) assert.equal(rows[1].def, "'n/a'::text");
});

test('renaming a table renames its shards', T, async () => {
  await q(`CREATE TABLE old_name (id int); SELECT create_distributed_table('old_name', 'id', shard_count => 2)`);
  const before = await shardsOf(c, 'old_name');
  await q('ALTER TABLE old_name RENAME TO new_name');
  const after = await shardsOf(c, 'new_name');
  assert.deepEqual(after.map((s) => s.shardId), before.map((s) => s.shardId));
  for (const s of after) {
    const r = await s.worker.query('SELECT to_regclass($1) IS NOT NULL AS present, to_regclass($2) IS NULL AS gone', [`public.new_name_${s.shardId}`, `public.old_name_${s.shardId}`]);
    assert.deepEqual(r.rows[0], { present: true, gone: true });
  }
  await q('INSERT INTO new_name VALUES (1), (2)');
  assert.equal((await q('SELECT count(*)::int AS n FROM new_name')).rows[0].n, 2);
});

test('a role that does not own the table cannot alter it anywhere', T, async () => {
  await q(`CREATE ROLE mallory LOGIN PASSWORD 'pw'`);
  const url = new URL(c.cluster.url);
  url.username = 'mallory';
  url.password = 'pw';
  const pg = (await import('pg')).default;
  const mallory = new pg.Client({ connectionString: url.toString() });
  await mallory.connect();
  try {
    await assert.rejects(mallory.query('ALTER TABLE orders ADD COLUMN evil int'), pgError('42501', /must be owner of table orders/));
    await assert.rejects(mallory.query('CREATE INDEX evil ON orders (cents)'), pgError('42501'));
  } finally {
    await mallory.end();
  }
  for (const { rows } of await shardColumns('orders')) assert.ok(!rows.some((r) => r.name === 'evil'));
  await assertNoPreparedTransactions(c);
});
