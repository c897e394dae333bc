/**
 * DDL propagation through the coordinator on a 2-worker cluster: every
 * statement's effect is checked on every shard, directly on the workers.
 * Covers the 100 000-row table of issue 3 (add column, create index,
 * co-located foreign key afterwards), CREATE / DROP INDEX in all its forms,
 * all-or-nothing failure (no shard changed, no prepared transaction left),
 * and Citus's errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoPreparedTransactions, onShards, pgError, runUtilityDirect, shardsOf, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
/** A hang must fail the test, not block the run. */
const T = { timeout: 120_000 };

before(async () => {
  c = await startDdlCluster();
});

after(async () => {
  await c?.stop();
});

const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);

test('a distributed 100 000-row table: add column, create index and a co-located foreign key reach every shard', T, async () => {
  await q(`CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
           INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 100000) i`);
  await q(`SELECT create_distributed_table('big', 'id', shard_count => 8)`);
  await q(`CREATE TABLE child (id int, big_id int NOT NULL, PRIMARY KEY (big_id, id));
           INSERT INTO child SELECT i, i FROM generate_series(1, 1000) i`);
  await q(`SELECT create_distributed_table('child', 'big_id', colocate_with => 'big')`);

  assert.equal((await q(`ALTER TABLE big ADD COLUMN note text DEFAULT 'n'`)).command, 'ALTER');
  const bigShards = await shardsOf(c, 'big');
  assert.equal(bigShards.length, 8);
  let total = 0;
  for (const shard of bigShards) {
    const r = await shard.worker.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE note = 'n')::int AS noted FROM public."${shard.name}"`);
    assert.equal(r.rows[0].n, r.rows[0].noted, `every row of ${shard.name} has the default`);
    total += r.rows[0].n;
  }
  assert.equal(total, 100000);

  assert.equal((await q('CREATE INDEX big_v_idx ON big (v)')).command, 'CREATE');
  for (const { shard, rows } of await onShards(c, 'big', 'SELECT indexrelid::regclass::text AS name, indisvalid FROM pg_index WHERE indrelid = $1::regclass')) {
    assert.ok(rows.some((r) => r.name === `big_v_idx_${shard.shardId}` && r.indisvalid), `${shard.name} has the index`);
  }

  await q('ALTER TABLE child ADD CONSTRAINT child_big_fk FOREIGN KEY (big_id) REFERENCES big (id)');
  const childShards = await shardsOf(c, 'child');
  childShards.forEach((shard, i) => assert.equal(shard.worker, bigShards[i]!.worker, 'co-located shards share a node'));
  for (const [i, { shard, rows }] of (await onShards(c, 'child', `SELECT conname, confrelid::regclass::text AS target FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'`)).entries()) {
    assert.deepEqual(rows, [{ conname: `child_big_fk_${shard.shardId}`, target: bigShards[i]!.name }]);
  }
  await assertNoPreparedTransactions(c);
});

test('CREATE INDEX: unique, partial, expressions, INCLUDE, unnamed, CONCURRENTLY; DROP INDEX', T, async () => {
  await q(`CREATE TABLE items (id bigint, tenant int, name text, price numeric);
           SELECT create_distributed_table('items', 'tenant', shard_count => 4)`);
  await q('CREATE UNIQUE INDEX items_tenant_id ON items (tenant, id) INCLUDE (price)');
  await q(`CREATE INDEX items_cheap ON items (lower(name) DESC NULLS LAST) WITH (fillfactor = 70) WHERE price < 10`);
  await q('CREATE INDEX ON items (price)');
  await q('CREATE INDEX CONCURRENTLY items_name ON items USING hash (name)');
  const coordinatorIndexes = (await q(`SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = 'items'::regclass ORDER BY 1`)).rows.map((r) => r.name);
  assert.deepEqual(coordinatorIndexes, ['items_cheap', 'items_name', 'items_price_idx', 'items_tenant_id']);
  for (const { shard, rows } of await onShards(c, 'items', `SELECT indexrelid::regclass::text AS name, indisvalid AS valid, pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`)) {
    const id = shard.shardId;
    assert.deepEqual(rows.map((r) => r.name), [`items_cheap_${id}`, `items_name_${id}`, `items_price_idx_${id}`, `items_tenant_id_${id}`]);
    assert.ok(rows.every((r) => r.valid));
    assert.equal(rows[0].def, `CREATE INDEX items_cheap_${id} ON public.${shard.name} USING btree (lower(name) DESC NULLS LAST) WITH (fillfactor='70') WHERE (price < (10)::numeric)`);
    assert.equal(rows[3].def, `CREATE UNIQUE INDEX items_tenant_id_${id} ON public.${shard.name} USING btree (tenant, id) INCLUDE (price)`);
  }

  await assert.rejects(q('CREATE UNIQUE INDEX items_id ON items (id)'), pgError('0A000', /creating unique indexes on non-partition columns is currently unsupported/));
  await assert.rejects(q('CREATE UNIQUE INDEX CONCURRENTLY items_id ON items (id)'), pgError('0A000', /non-partition columns/));
  await assert.rejects(q('CREATE UNIQUE INDEX items_expr ON items ((tenant + 1))'), pgError('0A000', /non-partition columns/));

  // DROP INDEX names no table, so it is sent straight to the DDL code here.
  assert.equal(await runUtilityDirect(c, 'DROP INDEX items_cheap, items_price_idx'), 'DROP INDEX');
  assert.equal(await runUtilityDirect(c, 'DROP INDEX CONCURRENTLY items_name'), 'DROP INDEX');
  for (const { shard, rows } of await onShards(c, 'items', 'SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass')) {
    assert.deepEqual(rows.map((r) => r.name), [`items_tenant_id_${shard.shardId}`]);
  }
  await assertNoPreparedTransactions(c);
});

test('a DDL statement that fails on one shard changes no shard and leaves no prepared transaction', T, async () => {
  await q(`CREATE TABLE acct (id int, owner text, balance int);
           INSERT INTO acct SELECT i, 'o' || i, i FROM generate_series(1, 200) i;
           SELECT create_distributed_table('acct', 'id', shard_count => 4)`);
  const shards = await shardsOf(c, 'acct');
  const victim = shards[shards.length - 1]!;
  await victim.worker.query(`CREATE INDEX "acct_owner_idx_${victim.shardId}" ON public."${victim.name}" (balance)`);

  await assert.rejects(q('CREATE INDEX acct_owner_idx ON acct (owner)'), pgError('42P07', /already exists/));
  const indexes = await onShards(c, 'acct', 'SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass');
  for (const { shard, rows } of indexes) {
    assert.deepEqual(rows.map((r) => r.name), shard.shardId === victim.shardId ? [`acct_owner_idx_${victim.shardId}`] : []);
  }
  assert.equal((await q(`SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = 'acct'`)).rows[0].n, 0, 'nor on the coordinator');
  await assertNoPreparedTransactions(c);

  // A CHECK that the rows of one shard violate: no shard gets the column or the constraint.
  await assert.rejects(q('ALTER TABLE acct ADD COLUMN flag int DEFAULT 0, ADD CONSTRAINT small CHECK (balance < 200)'), pgError('23514'));
  for (const { rows } of await onShards(c, 'acct', `SELECT (SELECT count(*)::int FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'flag') AS cols,
                                                     (SELECT count(*)::int FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c') AS checks`)) {
    assert.deepEqual(rows, [{ cols: 0, checks: 0 }]);
  }
  await assertNoPreparedTransactions(c);
  await victim.worker.query(`DROP INDEX public."acct_owner_idx_${victim.shardId}"`);
});

test('CREATE INDEX CONCURRENTLY that fails on a shard leaves the coordinator index invalid and says how to clean up', T, async () => {
  await q(`CREATE TABLE conc (id int, v int); SELECT create_distributed_table('conc', 'id', shard_count => 2)`);
  const [first] = await shardsOf(c, 'conc');
  await first!.worker.query(`CREATE INDEX "conc_v_idx_${first!.shardId}" ON public."${first!.name}" (id)`);
  await assert.rejects(q('CREATE INDEX CONCURRENTLY conc_v_idx ON conc (v)'), (err: any) => {
    assert.equal(err.message, 'CONCURRENTLY-enabled index command failed');
    assert.match(err.hint, /DROP INDEX CONCURRENTLY IF EXISTS/);
    return true;
  });
  const r = await q(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'conc_v_idx'::regclass`);
  assert.equal(r.rows[0].indisvalid, false);
  assert.equal(await runUtilityDirect(c, 'DROP INDEX CONCURRENTLY IF EXISTS conc_v_idx'), 'DROP INDEX');
  for (const { rows } of await onShards(c, 'conc', 'SELECT count(*)::int AS n FROM pg_index WHERE indrelid = $1::regclass')) assert.deepEqual(rows, [{ n: 0 }]);
});

test('DDL that changes the catalog inside a transaction block is refused, not half-applied', T, async () => {
  await q(`CREATE TABLE blk (id int); SELECT create_distributed_table('blk', 'id', shard_count => 2)`);
  await q('BEGIN');
  await q('CREATE INDEX blk_idx ON blk (id)');
  await assert.rejects(q('DROP TABLE blk'), pgError('0A000', /transaction block/));
  await q('ROLLBACK');
  for (const { rows } of await onShards(c, 'blk', 'SELECT count(*)::int AS n FROM pg_index WHERE indrelid = $1::regclass')) assert.deepEqual(rows, [{ n: 0 }]);
  assert.equal((await shardsOf(c, 'blk')).length, 2, 'the table is still distributed');
});

test('other utility statements on distributed tables get a clear 0A000', T, async () => {
  await q(`CREATE TABLE trg (id int); SELECT create_distributed_table('trg', 'id', shard_count => 2)`);
  await q(`CREATE FUNCTION trg_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`);
  await assert.rejects(q('CREATE TRIGGER t1 BEFORE INSERT ON trg FOR EACH ROW EXECUTE FUNCTION trg_fn()'), pgError('0A000', /^CREATE TRIGGER on distributed table "trg" is not supported$/));
  await assert.rejects(q('ALTER TABLE trg SET LOGGED'), pgError('0A000', /ALTER TABLE \.\.\. SET LOGGED on distributed table "trg"/));
  await assert.rejects(q('CLUSTER trg'), pgError('0A000', /^CLUSTER on distributed table/));
});
