/**
 * DDL on distributed and reference tables inside a transaction block, through
 * the coordinator on a 2-worker cluster: the shard statements run on the
 * block's own worker connections, so ROLLBACK leaves nothing anywhere and
 * COMMIT (two-phase across nodes) makes the change visible on every shard.
 * Writes and reads in the same block see the new definition. An error in the
 * middle fails the block as in PostgreSQL. Checked on the workers directly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoPreparedTransactions, onShards, pgError, startDdlCluster, type DdlCluster } from './ddl-support.js';

let c: DdlCluster;
const T = { timeout: 120_000 };

before(async () => {
  c = await startDdlCluster();
  await q(`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL);
           INSERT INTO acct SELECT i, 100 FROM generate_series(1, 40) i`);
  await q(`SELECT create_distributed_table('acct', 'id', shard_count => 4)`);
  await q(`CREATE TABLE region (code text PRIMARY KEY); INSERT INTO region VALUES ('eu'), ('us')`);
  await q(`SELECT create_reference_table('region')`);
});

after(async () => {
  await c?.stop();
});

const q = (sql: string, params?: unknown[]) => c.client.query(sql, params);

const COLUMNS = `SELECT array_agg(attname::text ORDER BY attnum) AS cols FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`;
const INDEXES = `SELECT count(*)::int AS n FROM pg_index WHERE indrelid = $1::regclass AND NOT indisprimary`;

async function shardColumns(table: string): Promise<string[][]> {
  return (await onShards(c, table, COLUMNS)).map(({ rows }) => rows[0].cols);
}

test('BEGIN; ALTER TABLE ADD COLUMN; INSERT; ROLLBACK leaves nothing on the coordinator or any shard', T, async () => {
  await q('BEGIN');
  assert.equal((await q('ALTER TABLE acct ADD COLUMN note text DEFAULT $$n$$')).command, 'ALTER');
  await q(`INSERT INTO acct (id, balance, note) VALUES (1001, 5, 'x'), (1002, 6, 'y'), (1003, 7, 'z')`);
  assert.deepEqual((await q('SELECT note FROM acct WHERE id = 1002')).rows, [{ note: 'y' }], 'the block sees its own DDL and rows');
  assert.deepEqual((await q(`SELECT count(*)::int AS n FROM acct WHERE note = 'n'`)).rows, [{ n: 40 }], 'a multi-shard read in the block');
  await q('ROLLBACK');
  for (const cols of await shardColumns('acct')) assert.deepEqual(cols, ['id', 'balance']);
  assert.deepEqual((await c.coordinatorPg.query(COLUMNS, ['public.acct'])).rows[0].cols, ['id', 'balance']);
  assert.deepEqual((await q('SELECT count(*)::int AS n FROM acct')).rows, [{ n: 40 }]);
  await assertNoPreparedTransactions(c);
});

test('BEGIN; ALTER TABLE; CREATE INDEX; writes; COMMIT is visible on every shard', T, async () => {
  await q('BEGIN');
  await q('ALTER TABLE acct ADD COLUMN flagged bool NOT NULL DEFAULT false');
  await q('CREATE INDEX acct_flagged_idx ON acct (flagged)');
  await q('ALTER TABLE region ADD COLUMN name text');
  await q(`UPDATE acct SET flagged = true WHERE id IN (1, 2, 3, 4, 5)`);
  await q(`UPDATE region SET name = 'Europe' WHERE code = 'eu'`);
  assert.equal((await q('COMMIT')).command, 'COMMIT');
  for (const cols of await shardColumns('acct')) assert.deepEqual(cols, ['id', 'balance', 'flagged']);
  for (const { rows } of await onShards(c, 'acct', INDEXES)) assert.deepEqual(rows, [{ n: 1 }]);
  const regionShards = await shardColumns('region');
  assert.equal(regionShards.length, 2, 'a reference table placement on each worker');
  for (const cols of regionShards) assert.deepEqual(cols, ['code', 'name']);
  assert.deepEqual((await q('SELECT count(*)::int AS n FROM acct WHERE flagged')).rows, [{ n: 5 }]);
  assert.deepEqual((await q(`SELECT name FROM region WHERE code = 'eu'`)).rows, [{ name: 'Europe' }]);
  await assertNoPreparedTransactions(c);
});

test('a DDL error in the block fails the block; ROLLBACK undoes the earlier DDL everywhere', T, async () => {
  await q('BEGIN');
  await q('ALTER TABLE acct ADD COLUMN extra int');
  await q('UPDATE acct SET balance = -1 WHERE id = 7');
  await assert.rejects(q('ALTER TABLE acct ADD CONSTRAINT positive CHECK (balance >= 0)'), pgError('23514'));
  await assert.rejects(q('SELECT 1'), pgError('25P02'));
  await q('ROLLBACK');
  for (const cols of await shardColumns('acct')) assert.deepEqual(cols, ['id', 'balance', 'flagged']);
  assert.deepEqual((await q('SELECT balance FROM acct WHERE id = 7')).rows, [{ balance: 100 }]);
  await assertNoPreparedTransactions(c);
});

test('CREATE TYPE and a column of that type in one block: ROLLBACK leaves no type; COMMIT puts both everywhere', T, async () => {
  const typeOnWorkers = async () => Promise.all(c.workers.map(async (w) => (await w.query(`SELECT to_regtype('public.tier') IS NOT NULL AS t`)).rows[0].t));
  await q('BEGIN');
  await q(`CREATE TYPE tier AS ENUM ('free', 'paid')`);
  await q(`ALTER TABLE acct ADD COLUMN tier tier NOT NULL DEFAULT 'free'`);
  await q('ROLLBACK');
  assert.deepEqual(await typeOnWorkers(), [false, false]);

  await q('BEGIN');
  await q(`CREATE TYPE tier AS ENUM ('free', 'paid')`);
  await q(`ALTER TABLE acct ADD COLUMN tier tier NOT NULL DEFAULT 'free'`);
  await q(`UPDATE acct SET tier = 'paid' WHERE id = 3`);
  await q('COMMIT');
  assert.deepEqual(await typeOnWorkers(), [true, true]);
  for (const cols of await shardColumns('acct')) assert.deepEqual(cols, ['id', 'balance', 'flagged', 'tier']);
  assert.deepEqual((await q(`SELECT id FROM acct WHERE tier = 'paid'`)).rows, [{ id: 3 }]);
  await assertNoPreparedTransactions(c);
});

test('a rename in a block reaches the shards and every cached catalog after COMMIT; DROP TABLE in a block is refused', T, async () => {
  await q('BEGIN');
  await q('ALTER TABLE region RENAME COLUMN name TO label');
  await q('ALTER TABLE acct RENAME TO account');
  await q('COMMIT');
  for (const cols of await shardColumns('region')) assert.deepEqual(cols, ['code', 'label']);
  assert.equal((await onShards(c, 'account', COLUMNS)).length, 4, 'the shards are named after the new name');
  await q(`INSERT INTO region VALUES ('ap', 'Asia')`);
  assert.deepEqual((await q(`SELECT label FROM region WHERE code = 'ap'`)).rows, [{ label: 'Asia' }]);
  assert.deepEqual((await q('SELECT count(*)::int AS n FROM account')).rows, [{ n: 40 }]);

  await q('BEGIN');
  await assert.rejects(q('DROP TABLE account'), pgError('0A000', /transaction block/));
  await q('ROLLBACK');
  assert.deepEqual((await q('SELECT count(*)::int AS n FROM account')).rows, [{ n: 40 }]);
  await assertNoPreparedTransactions(c);
});
