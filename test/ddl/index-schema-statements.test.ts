/**
 * ALTER INDEX (RENAME, SET, RESET), COMMENT ON INDEX / COLUMN / TABLE,
 * ALTER TABLE … SET SCHEMA and GRANT / REVOKE … ON ALL TABLES IN SCHEMA on
 * distributed and reference tables, through the coordinator on a 2-worker
 * cluster; every effect is checked in the workers' catalogs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoPreparedTransactions, onShards, pgError, shardsOf, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
const T = { timeout: 120_000 };

before(async () => {
  c = await startDdlCluster();
  await q(`CREATE TABLE orders (id int PRIMARY KEY, customer int, note text);
           CREATE INDEX orders_customer_idx ON orders (customer);
           CREATE TABLE plans (name text PRIMARY KEY)`);
  await q(`SELECT create_distributed_table('orders', 'id', shard_count => 4)`);
  await q(`SELECT create_reference_table('plans')`);
});

after(async () => {
  await c?.stop();
});

const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);

test('ALTER INDEX RENAME / SET / RESET and COMMENT ON INDEX reach every shard index', T, async () => {
  assert.equal((await q('ALTER INDEX orders_customer_idx RENAME TO "Orders By Customer"')).command, 'ALTER');
  const indexes = `SELECT c.relname, c.reloptions::text AS options, obj_description(c.oid, 'pg_class') AS comment
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass AND NOT i.indisprimary`;
  for (const { shard, rows } of await onShards(c, 'orders', indexes)) {
    assert.deepEqual(rows, [{ relname: `Orders By Customer_${shard.shardId}`, options: null, comment: null }]);
  }
  await q('ALTER INDEX "Orders By Customer" SET (fillfactor = 70)');
  await q(`COMMENT ON INDEX "Orders By Customer" IS 'by customer'`);
  for (const { shard, rows } of await onShards(c, 'orders', indexes)) {
    assert.deepEqual(rows, [{ relname: `Orders By Customer_${shard.shardId}`, options: '{fillfactor=70}', comment: 'by customer' }]);
  }
  await q('ALTER INDEX public."Orders By Customer" RESET (fillfactor)');
  await q(`COMMENT ON INDEX "Orders By Customer" IS NULL`);
  for (const { rows } of await onShards(c, 'orders', indexes)) assert.deepEqual([rows[0].options, rows[0].comment], [null, null]);

  // The reference table's primary key index, on every node.
  await q(`ALTER INDEX plans_pkey RENAME TO plans_by_name`);
  const ref = await onShards(c, 'plans', `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass`);
  assert.equal(ref.length, 2);
  for (const { shard, rows } of ref) assert.deepEqual(rows, [{ relname: `plans_by_name_${shard.shardId}` }]);

  await assert.rejects(q('ALTER INDEX "Orders By Customer" ALTER COLUMN 1 SET STATISTICS 100'), pgError('0A000'));
  // An index of a local table is not touched by propagation.
  await q('CREATE TABLE local_t (a int); CREATE INDEX local_t_a ON local_t (a)');
  await q('ALTER INDEX local_t_a RENAME TO local_t_a2');
  await assertNoPreparedTransactions(c);
});

test('COMMENT ON TABLE and COLUMN reach every shard', T, async () => {
  await q(`COMMENT ON TABLE orders IS 'all orders'`);
  await q(`COMMENT ON COLUMN orders.note IS 'free text'`);
  const comments = `SELECT obj_description($1::regclass, 'pg_class') AS t, col_description($1::regclass, 3) AS c`;
  for (const { rows } of await onShards(c, 'orders', comments)) assert.deepEqual(rows, [{ t: 'all orders', c: 'free text' }]);
});

test('ALTER TABLE SET SCHEMA moves every shard and the table stays usable through the coordinator', T, async () => {
  await q('CREATE SCHEMA archive');
  await q(`INSERT INTO orders VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c')`);
  assert.equal((await q('ALTER TABLE orders SET SCHEMA archive')).command, 'ALTER');
  const shards = await shardsOf(c, 'archive.orders');
  assert.equal(shards.length, 4);
  for (const s of shards) {
    const r = await s.worker.query(`SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1`, [s.name]);
    assert.deepEqual(r.rows, [{ nspname: 'archive' }], `${s.name} moved`);
  }
  assert.deepEqual((await q('SELECT note FROM archive.orders WHERE id = 2')).rows, [{ note: 'b' }]);
  assert.deepEqual((await q('SELECT count(*)::int AS n FROM archive.orders')).rows, [{ n: 3 }]);
  await q(`INSERT INTO archive.orders VALUES (4, 40, 'd')`);
  await assert.rejects(q('SELECT * FROM public.orders'), pgError('42P01'));
  await q('ALTER TABLE archive.orders SET SCHEMA public');
  assert.deepEqual((await q('SELECT count(*)::int AS n FROM orders')).rows, [{ n: 4 }]);
  await assertNoPreparedTransactions(c);
});

test('GRANT / REVOKE ON ALL TABLES IN SCHEMA covers the shards', T, async () => {
  await q(`CREATE ROLE reader LOGIN PASSWORD 'reader-pw'`);
  const granted = `SELECT has_table_privilege('reader', $1::regclass, 'SELECT') AS s`;
  for (const { rows } of await onShards(c, 'orders', granted)) assert.deepEqual(rows, [{ s: false }]);
  assert.equal((await q('GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader')).command, 'GRANT');
  for (const t of ['orders', 'plans']) for (const { rows } of await onShards(c, t, granted)) assert.deepEqual(rows, [{ s: true }], t);
  assert.equal((await q('REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM reader')).command, 'REVOKE');
  for (const t of ['orders', 'plans']) for (const { rows } of await onShards(c, t, granted)) assert.deepEqual(rows, [{ s: false }], t);
  await assertNoPreparedTransactions(c);
});
