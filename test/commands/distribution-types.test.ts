/**
 * Distributing by every column type issue 3 lists, through the coordinator:
 * for each type a table is distributed, rows are inserted through the
 * coordinator (router INSERTs and a multi-row INSERT), and on the workers
 * directly every row must sit in the shard whose hash range holds
 * PostgreSQL's own hash of its value — computed there with the type's hash
 * support function called explicitly (hashint4 of a date's day number,
 * hashchar of a bool's byte, timestamp_hash of a timestamptz's UTC value),
 * independently of how pgweave hashes. Each row is then read back through
 * the coordinator by its key (router pruning by the TypeScript hash).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { shardsOf, startDdlCluster, type DdlCluster } from '../ddl/ddl-support.js';

let c: DdlCluster;
const T = { timeout: 180_000 };

before(async () => {
  c = await startDdlCluster();
});

after(async () => {
  await c?.stop();
});

interface TypeCase {
  type: string;
  /** SQL literals of the inserted values (a serial column takes its default instead). */
  values: string[];
  /** PostgreSQL's hash of column `k`, spelled with the support function itself. */
  hash: string;
}

const CASES: TypeCase[] = [
  { type: 'int2', values: ['0', '1', '-1', '32767', '-32768', '1234', '-999'], hash: 'hashint2(k)' },
  { type: 'int4', values: ['0', '1', '-1', '2147483647', '-2147483648', '42', '100000'], hash: 'hashint4(k)' },
  { type: 'int8', values: ['0', '1', '-1', '9223372036854775807', '-9223372036854775808', '4294967296', '77'], hash: 'hashint8(k)' },
  { type: 'serial', values: [], hash: 'hashint4(k)' },
  { type: 'bigserial', values: [], hash: 'hashint8(k)' },
  { type: 'text', values: ["''", "'a'", "'hello world'", "'ünïcödé'", "'tenant-17'", "'x y '"], hash: 'hashtext(k)' },
  { type: 'varchar(20)', values: ["''", "'b'", "'varchar value'", "'ñ'", "'tenant-18'"], hash: 'hashtext(k)' },
  { type: 'char(6)', values: ["'a'", "'ab   '", "'abcdef'", "'zz'", "''"], hash: 'hashbpchar(k)' },
  {
    type: 'uuid',
    values: ["'00000000-0000-0000-0000-000000000000'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'123e4567-e89b-12d3-a456-426614174000'"],
    hash: 'uuid_hash(k)',
  },
  {
    type: 'date',
    values: ["'2000-01-01'", "'2024-02-29'", "'1999-12-31'", "'0001-01-01'", "'1970-01-01'", "'2100-07-04'", "'4713-01-01 BC'"],
    hash: "hashint4(k - DATE '2000-01-01')",
  },
  {
    type: 'timestamp',
    values: ["'2000-01-01 00:00:00'", "'2024-02-29 12:34:56.789012'", "'1969-12-31 23:59:59'", "'infinity'", "'-infinity'", "'2038-01-19 03:14:08'"],
    hash: 'timestamp_hash(k)',
  },
  {
    type: 'timestamptz',
    values: ["'2000-01-01 00:00:00+00'", "'2024-02-29 12:34:56.5+05:30'", "'1969-12-31 23:59:59-08'", "'infinity'", "'2038-01-19 03:14:08Z'"],
    hash: "timestamp_hash(k AT TIME ZONE 'UTC')",
  },
  { type: 'numeric', values: ['0', '1', '-1', '1.5', '123456789.000001', '-0.0001', '1e20', "'NaN'"], hash: 'hash_numeric(k)' },
  { type: 'numeric(10,2)', values: ['0', '3.14', '-2.5', '99999999.99', '7'], hash: 'hash_numeric(k)' },
  { type: 'bool', values: ['true', 'false'], hash: 'hashchar(k::int4::"char")' },
];

function tableName(type: string): string {
  return 'dt_' + type.replace(/[^a-z0-9]+/g, '_').replace(/_$/, '');
}

test('tables distributed by every listed type hold each row in the shard its PostgreSQL hash selects', T, async () => {
  await c.client.query("SET TimeZone = 'UTC'");
  for (const tc of CASES) {
    const table = tableName(tc.type);
    await c.client.query(`CREATE TABLE ${table} (k ${tc.type} NOT NULL, n int NOT NULL)`);
    await c.client.query(`SELECT create_distributed_table('${table}', 'k', shard_count => 8)`);

    // Router INSERTs one by one, then one multi-row INSERT of the same values.
    const rows = tc.values.length > 0 ? tc.values : ['DEFAULT', 'DEFAULT', 'DEFAULT', 'DEFAULT', 'DEFAULT'];
    for (const [i, v] of rows.entries()) await c.client.query(`INSERT INTO ${table} (k, n) VALUES (${v}, ${i})`);
    await c.client.query(`INSERT INTO ${table} (k, n) VALUES ${rows.map((v, i) => `(${v}, ${100 + i})`).join(', ')}`);

    const ranges = await c.client.query(
      `SELECT shardid, shardminvalue::int AS min, shardmaxvalue::int AS max FROM pg_dist_shard WHERE logicalrelid = '${table}'::regclass`,
    );
    const rangeOf = new Map(ranges.rows.map((r) => [Number(r.shardid), r]));
    let total = 0;
    for (const shard of await shardsOf(c, table)) {
      const { min, max } = rangeOf.get(shard.shardId)!;
      const r = await shard.worker.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE ${tc.hash} NOT BETWEEN $1 AND $2)::int AS misplaced FROM public."${shard.name}"`,
        [min, max],
      );
      assert.equal(r.rows[0].misplaced, 0, `${tc.type}: rows of ${shard.name} outside [${min}, ${max}]`);
      total += r.rows[0].n;
    }
    assert.equal(total, rows.length * 2, `${tc.type}: every row reached a shard`);

    // Read back by key through the coordinator: pruning picks the shard that holds it.
    const keys = (await c.client.query(`SELECT DISTINCT k::text AS k FROM ${table}`)).rows.map((r) => r.k as string);
    assert.equal(keys.length, tc.values.length || rows.length * 2);
    for (const k of keys) {
      const r = await c.client.query(`SELECT count(*)::int AS n FROM ${table} WHERE k = $1`, [k]);
      assert.equal(r.rows[0].n, tc.values.length > 0 ? 2 : 1, `${tc.type}: key ${k} found by the router`);
    }
  }
});
