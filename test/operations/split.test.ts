/**
 * Splitting shard groups (blocking: writes to the group wait during the
 * copy): citus_split_shard_by_split_points onto two nodes and
 * isolate_tenant_to_new_shard, each checking every row is where its hash
 * says, the cluster keeps serving, and nothing is left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { PgError } from '../../src/protocol/errors.js';
import { findShardIndexIn } from '../../src/metadata/shard-interval.js';
import { call, type TestContext } from '../commands/command-context.js';
import { checkNoLeftovers, checkRowsByHash, placements, type OperationsCluster, startOperationsCluster } from './support.js';

let ops: OperationsCluster | undefined;
let cluster: TestCluster;
let t: TestContext;
let sql: pg.Client;

before(async () => {
  ops = await startOperationsCluster(2);
  ({ cluster, t, sql } = ops);
  await sql.query('CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL)');
  await sql.query('CREATE TABLE events (id bigint NOT NULL, seq int NOT NULL, PRIMARY KEY (id, seq))');
  await sql.query("SELECT create_distributed_table('items', 'id', shard_count => 2)");
  await sql.query("SELECT create_distributed_table('events', 'id', colocate_with => 'items')");
  await sql.query('INSERT INTO items SELECT g, 0 FROM generate_series(1, 3000) g');
  await sql.query('INSERT INTO events SELECT g % 300, g FROM generate_series(1, 3000) g');
});

after(async () => {
  await ops?.stop();
});

async function nodeIds(): Promise<Map<number, string>> {
  const r = await sql.query('SELECT nodeid, nodeport FROM pg_dist_node');
  return new Map(r.rows.map((row) => [Number(row.nodeport), String(row.nodeid)]));
}

test('findShardIndexIn finds shards by arithmetic on even ranges and by search on uneven ones', () => {
  const even = [{ minValue: -2147483648, maxValue: -1 }, { minValue: 0, maxValue: 2147483647 }];
  assert.equal(findShardIndexIn(even, -7), 0);
  assert.equal(findShardIndexIn(even, 7), 1);
  const uneven = [{ minValue: -2147483648, maxValue: -1500000000 }, { minValue: -1499999999, maxValue: -1 }, { minValue: 0, maxValue: 41 }, { minValue: 42, maxValue: 42 }, { minValue: 43, maxValue: 2147483647 }];
  for (const [hash, index] of [[-2147483648, 0], [-1500000000, 0], [-1499999999, 1], [-1, 1], [0, 2], [41, 2], [42, 3], [43, 4], [2147483647, 4]] as const) {
    assert.equal(findShardIndexIn(uneven, hash), index, `hash ${hash}`);
  }
});

test('citus_split_shard_by_split_points splits a shard group onto two nodes', async () => {
  const first = (await placements(t.ctx)).find((p) => p.table === 'items' && p.min === -2147483648)!;
  const ids = await nodeIds();
  const other = cluster.workers.find((w) => w.port !== first.port)!;
  await assert.rejects(call(t.ctx, 'citus_split_shard_by_split_points', [String(first.shardId), '{-1500000000}', `{${ids.get(first.port)}}`]), (e: unknown) => {
    assert.ok(e instanceof PgError);
    assert.match(e.message, /Number of worker node ids should be one greater split points/);
    return true;
  });
  await call(t.ctx, 'citus_split_shard_by_split_points', [String(first.shardId), '{-1500000000}', `{${ids.get(first.port)},${ids.get(other.port)}}`]);
  const ps = await placements(t.ctx);
  for (const table of ['items', 'events']) {
    const mine = ps.filter((p) => p.table === table);
    assert.equal(mine.length, 3, `${table} has 3 shards`);
    assert.deepEqual(mine.map((p) => [p.min, p.max]).sort((a, b) => a[0]! - b[0]!), [[-2147483648, -1500000000], [-1499999999, -1], [0, 2147483647]]);
  }
  assert.equal(ps.find((p) => p.table === 'items' && p.min === -1499999999)!.port, other.port);
  assert.equal(await checkRowsByHash(t.ctx, 'items'), 3000);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 3000);
  await sql.query('UPDATE items SET v = v + 1');
  await sql.query('INSERT INTO items SELECT g, 1 FROM generate_series(3001, 3100) g');
  assert.deepEqual((await sql.query('SELECT count(*)::int AS n, min(v) AS lo FROM items')).rows, [{ n: 3100, lo: 1 }]);
  // Writes after the split route by the new, uneven ranges (router, multi-row INSERT, COPY).
  await sql.query('INSERT INTO events VALUES (3050, 1), (-5, 1)');
  assert.equal(await checkRowsByHash(t.ctx, 'items'), 3100);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 3002);
  await sql.query('DELETE FROM events WHERE seq = 1 AND id IN (3050, -5)');
  const joined = await sql.query('SELECT count(*)::int AS n FROM items i JOIN events e ON e.id = i.id');
  assert.equal(joined.rows[0].n, 2990, 'co-located pieces still join locally');
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});

test('isolate_tenant_to_new_shard gives a tenant its own shard group (CASCADE required with co-located tables)', async () => {
  await assert.rejects(sql.query("SELECT isolate_tenant_to_new_shard('items', 42)"), /cannot isolate tenant because "items" has colocated tables/);
  const r = await sql.query("SELECT isolate_tenant_to_new_shard('items', 42, cascade_option => 'CASCADE') AS shard");
  const shardId = Number(r.rows[0].shard);
  const hash = Number((await sql.query('SELECT hashint8(42) AS h')).rows[0].h);
  const own = (await placements(t.ctx)).find((p) => p.shardId === shardId)!;
  assert.deepEqual([own.table, own.min, own.max], ['items', hash, hash]);
  assert.equal(await checkRowsByHash(t.ctx, 'items'), 3100);
  assert.equal(await checkRowsByHash(t.ctx, 'events'), 3000);
  const tenantEvents = (await placements(t.ctx)).find((p) => p.table === 'events' && p.min === hash)!;
  assert.equal(tenantEvents.port, own.port);
  assert.deepEqual((await sql.query('SELECT v FROM items WHERE id = 42')).rows, [{ v: 1 }]);
  await call(t.ctx, 'citus_cleanup_orphaned_resources', []);
  await checkNoLeftovers(t.ctx, cluster);
});
