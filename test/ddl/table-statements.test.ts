/**
 * Whole-table statements on distributed and reference tables, checked on the
 * workers: TRUNCATE (several tables, foreign keys), DROP TABLE (shards and
 * catalog rows gone, every coordinator's cache told), VACUUM / ANALYZE,
 * COMMENT ON TABLE / COLUMN, GRANT / REVOKE (privileges hold on the shards,
 * so a grantee reads through the coordinator and loses access on REVOKE).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { assertNoPreparedTransactions, onShards, pgError, runUtilityDirect, shardsOf, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
/** A hang must fail the test, not block the run. */
const T = { timeout: 120_000 };

before(async () => {
  c = await startDdlCluster();
  await q(`CREATE TABLE parent (id int PRIMARY KEY, v text);
           INSERT INTO parent SELECT i, 'v' || i FROM generate_series(1, 300) i;
           SELECT create_distributed_table('parent', 'id', shard_count => 4);
           CREATE TABLE kid (id int, parent_id int, PRIMARY KEY (parent_id, id));
           INSERT INTO kid SELECT i, i FROM generate_series(1, 300) i;
           SELECT create_distributed_table('kid', 'parent_id', colocate_with => 'parent');
           CREATE TABLE colors (name text PRIMARY KEY); INSERT INTO colors VALUES ('red'), ('blue');
           SELECT create_reference_table('colors')`);
  // On its own: a query string is planned before its statements run, so kid is not yet known as distributed above.
  await q('ALTER TABLE kid ADD FOREIGN KEY (parent_id) REFERENCES parent (id)');
});

after(async () => {
  await c?.stop();
});

const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);

async function shardRowCounts(table: string): Promise<number[]> {
  const out: number[] = [];
  for (const s of await shardsOf(c, table)) out.push((await s.worker.query(`SELECT count(*)::int AS n FROM public."${s.name}"`)).rows[0].n);
  return out;
}

test('TRUNCATE of a referenced table alone fails everywhere; of both tables (and a reference table) empties every shard', T, async () => {
  await assert.rejects(q('TRUNCATE parent'), pgError('0A000', /cannot truncate a table referenced in a foreign key constraint/));
  assert.equal((await shardRowCounts('parent')).reduce((a, b) => a + b), 300);

  assert.equal((await q('TRUNCATE kid, parent, colors')).command, 'TRUNCATE');
  for (const t of ['parent', 'kid', 'colors']) assert.deepEqual(new Set(await shardRowCounts(t)), new Set([0]), t);
  await q(`INSERT INTO parent VALUES (1, 'a'), (2, 'b'); INSERT INTO kid VALUES (1, 1), (2, 2)`);
  await q('TRUNCATE parent CASCADE');
  assert.equal((await shardRowCounts('kid')).reduce((a, b) => a + b), 0, 'CASCADE reached the referencing shards');
  await assertNoPreparedTransactions(c);
});

test('ANALYZE and VACUUM reach every shard', T, async () => {
  await q(`CREATE TABLE stats (id int, v int); INSERT INTO stats SELECT i, i FROM generate_series(1, 2000) i;
           SELECT create_distributed_table('stats', 'id', shard_count => 2)`);
  const tuples = () => onShards(c, 'stats', 'SELECT reltuples::int AS tuples, relallvisible AS visible FROM pg_class WHERE oid = $1::regclass');
  for (const { rows } of await tuples()) assert.equal(rows[0].tuples, -1, 'never analyzed yet');
  assert.equal((await q('ANALYZE stats (v)')).command, 'ANALYZE');
  for (const { rows } of await tuples()) assert.ok(rows[0].tuples > 0);
  assert.equal((await q('VACUUM (FREEZE) stats')).command, 'VACUUM');
  for (const { rows } of await tuples()) assert.ok(rows[0].visible > 0, 'the visibility map is set');
  await q('BEGIN');
  await assert.rejects(q('VACUUM stats'), pgError('25001', /cannot run inside a transaction block/));
  await q('ROLLBACK');
});

test('COMMENT ON TABLE and COLUMN', T, async () => {
  // COMMENT names its table without a RangeVar: sent straight to the DDL code.
  assert.equal(await runUtilityDirect(c, `COMMENT ON TABLE parent IS 'the parents'`), 'COMMENT');
  assert.equal(await runUtilityDirect(c, `COMMENT ON COLUMN public.parent.v IS 'a value'`), 'COMMENT');
  for (const { rows } of await onShards(c, 'parent', `SELECT obj_description($1::regclass, 'pg_class') AS t, col_description($1::regclass, 2) AS c`)) {
    assert.deepEqual(rows, [{ t: 'the parents', c: 'a value' }]);
  }
});

test('GRANT and REVOKE: privileges hold on the shards', T, async () => {
  await q(`CREATE ROLE reader LOGIN PASSWORD 'pw'`);
  await assert.rejects(q('GRANT SELECT ON parent TO nobody_here'), pgError('42704'));
  assert.equal((await q('GRANT SELECT, INSERT ON parent, colors TO reader')).command, 'GRANT');
  const privileges = (table: string) => onShards(c, table, `SELECT has_table_privilege('reader', $1::regclass, 'SELECT') AS s, has_table_privilege('reader', $1::regclass, 'INSERT') AS i`);
  for (const t of ['parent', 'colors']) for (const { rows } of await privileges(t)) assert.deepEqual(rows, [{ s: true, i: true }]);

  const url = new URL(c.cluster.url);
  url.username = 'reader';
  url.password = 'pw';
  const reader = new pg.Client({ connectionString: url.toString() });
  await reader.connect();
  try {
    await q(`INSERT INTO parent VALUES (7, 'seven')`);
    assert.equal((await reader.query('SELECT v FROM parent WHERE id = 7')).rows[0].v, 'seven');
    assert.equal((await q('REVOKE INSERT ON parent FROM reader')).command, 'REVOKE');
    for (const { rows } of await privileges('parent')) assert.deepEqual(rows, [{ s: true, i: false }]);
    await assert.rejects(reader.query(`INSERT INTO parent VALUES (8, 'eight')`), pgError('42501'));
    await q('REVOKE ALL ON parent FROM reader');
    await assert.rejects(reader.query('SELECT v FROM parent WHERE id = 7'), pgError('42501'));
  } finally {
    await reader.end();
  }
  await assertNoPreparedTransactions(c);
});

test('DROP TABLE drops the shards and the catalog rows', T, async () => {
  await q(`CREATE TABLE gone (id int PRIMARY KEY); SELECT create_distributed_table('gone', 'id', shard_count => 2);
           CREATE TABLE gone_kid (id int REFERENCES gone (id)); SELECT create_distributed_table('gone_kid', 'id', colocate_with => 'gone')`);
  const shards = await shardsOf(c, 'gone');
  const kidShards = await shardsOf(c, 'gone_kid');
  const oid = (await q(`SELECT 'gone'::regclass::oid AS oid`)).rows[0].oid;
  // DROP TABLE names its tables without RangeVars: sent straight to the DDL code.
  await assert.rejects(runUtilityDirect(c, 'DROP TABLE gone'), pgError('2BP01'));
  assert.equal(await runUtilityDirect(c, 'DROP TABLE gone CASCADE'), 'DROP TABLE');
  for (const s of shards) assert.equal((await s.worker.query('SELECT to_regclass($1) AS r', [`public.${s.name}`])).rows[0].r, null);
  for (const s of kidShards) {
    const fks = await s.worker.query(`SELECT count(*)::int AS n FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'`, [`public.${s.name}`]);
    assert.equal(fks.rows[0].n, 0, 'CASCADE dropped the referencing foreign keys on the shards');
  }
  for (const view of ['pg_dist_partition WHERE logicalrelid', 'pg_dist_shard WHERE logicalrelid']) {
    assert.equal((await c.coordinatorPg.query(`SELECT count(*)::int AS n FROM ${view}::oid = $1`, [oid])).rows[0].n, 0, view);
  }
  const placements = await c.coordinatorPg.query('SELECT count(*)::int AS n FROM pg_dist_placement WHERE shardid = ANY($1::bigint[])', [shards.map((s) => s.shardId)]);
  assert.equal(placements.rows[0].n, 0);
  await assert.rejects(q('SELECT * FROM gone'), pgError('42P01'));

  assert.equal(await runUtilityDirect(c, 'DROP TABLE IF EXISTS gone_kid, colors, no_such_table'), 'DROP TABLE');
  for (const s of await Promise.all(c.workers.map((w) => w.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'colors\\_%' OR relname LIKE 'gone\\_kid\\_%'`)))) {
    assert.equal(s.rows[0].n, 0);
  }
  await assertNoPreparedTransactions(c);
});
