/**
 * The catalog against a real 2-worker cluster: ensureCatalog is idempotent,
 * the Citus views have Citus's column names and types and are readable (only
 * they) by any role, shard_name() in SQL agrees with shardName() in
 * TypeScript, and the metadata cache: its contents, invalidation of another
 * cache (another coordinator process) by NOTIFY, peek, and a lost listener.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { CATALOG_VERSION, ensureCatalog, forgetCatalog } from '../../src/metadata/catalog-schema.js';
import { MetadataCache } from '../../src/metadata/metadata-cache.js';
import { shardName } from '../../src/metadata/shard-name.js';
import { NodePools } from '../../src/pool/node-pools.js';
import { PgError } from '../../src/protocol/errors.js';
import { call, makeContext, type TestContext } from '../commands/command-context.js';

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

async function columnsOf(view: string): Promise<string[][]> {
  const r = await t.client.query(
    `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 ORDER BY attnum`,
    [`pg_catalog.${view}`],
  );
  return r.rows as string[][];
}

test('ensureCatalog rebuilds an older catalog in place, keeping its rows', async () => {
  const internal = t.ctx.pools.get(cluster.coordinatorPg.host, cluster.coordinatorPg.port, 'postgres');
  await internal.query('DELETE FROM pgweave.catalog_version');
  forgetCatalog(cluster.coordinatorPg, 'postgres');
  const pools = [new NodePools(cluster.config.internal), new NodePools(cluster.config.internal)];
  try {
    await Promise.all(pools.map((p) => ensureCatalog(p, cluster.coordinatorPg, 'postgres')));
    assert.deepEqual((await t.client.query('SELECT version FROM pgweave.catalog_version')).rows, [[String(CATALOG_VERSION)]]);
    assert.deepEqual((await t.client.query('SELECT count(*) FROM pg_dist_node')).rows, [['2']]);
  } finally {
    for (const p of pools) p.close();
  }
});

test('the views have Citus\'s columns and types', async () => {
  assert.deepEqual(await columnsOf('pg_dist_node'), [
    ['nodeid', 'integer'], ['groupid', 'integer'], ['nodename', 'text'], ['nodeport', 'integer'], ['noderack', 'text'],
    ['hasmetadata', 'boolean'], ['isactive', 'boolean'], ['noderole', 'noderole'], ['nodecluster', 'name'],
    ['metadatasynced', 'boolean'], ['shouldhaveshards', 'boolean'],
  ]);
  assert.deepEqual(await columnsOf('pg_dist_partition'), [
    ['logicalrelid', 'regclass'], ['partmethod', '"char"'], ['partkey', 'text'], ['colocationid', 'integer'], ['repmodel', '"char"'], ['autoconverted', 'boolean'],
  ]);
  assert.deepEqual(await columnsOf('pg_dist_shard'), [
    ['logicalrelid', 'regclass'], ['shardid', 'bigint'], ['shardstorage', '"char"'], ['shardminvalue', 'text'], ['shardmaxvalue', 'text'],
  ]);
  assert.deepEqual(await columnsOf('pg_dist_placement'), [
    ['placementid', 'bigint'], ['shardid', 'bigint'], ['shardstate', 'integer'], ['shardlength', 'bigint'], ['groupid', 'integer'],
  ]);
  assert.deepEqual(await columnsOf('pg_dist_colocation'), [
    ['colocationid', 'integer'], ['shardcount', 'integer'], ['replicationfactor', 'integer'], ['distributioncolumntype', 'oid'], ['distributioncolumncollation', 'oid'],
  ]);
  assert.deepEqual(await columnsOf('citus_tables'), [
    ['table_name', 'regclass'], ['citus_table_type', 'text'], ['distribution_column', 'text'], ['colocation_id', 'integer'],
    ['table_size', 'text'], ['shard_count', 'bigint'], ['table_owner', 'name'], ['access_method', 'name'],
  ]);
  assert.deepEqual(await columnsOf('citus_shards'), [
    ['table_name', 'regclass'], ['shardid', 'bigint'], ['shard_name', 'text'], ['citus_table_type', 'text'], ['colocation_id', 'integer'],
    ['nodename', 'text'], ['nodeport', 'integer'], ['shard_size', 'bigint'],
  ]);
  assert.deepEqual(await columnsOf('pg_dist_object'), [
    ['classid', 'oid'], ['objid', 'oid'], ['objsubid', 'integer'], ['type', 'text'], ['object_names', 'text[]'], ['object_args', 'text[]'],
    ['distribution_argument_index', 'integer'], ['colocationid', 'integer'], ['force_delegation', 'boolean'],
  ]);
});

test('any role can read the views; only the internal role reaches schema pgweave', async () => {
  await t.client.query("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'");
  const reader = await makeContext(cluster, { user: 'reader', password: 'reader-pw' });
  try {
    const r = await reader.client.query('SELECT count(*) FROM pg_dist_node');
    assert.deepEqual(r.rows, [['2']]);
    await assert.rejects(reader.client.query('SELECT * FROM pgweave.node'), (err: unknown) => err instanceof PgError && err.code === '42501');
    await assert.rejects(reader.client.query('DELETE FROM pg_dist_node'), (err: unknown) => err instanceof PgError && err.code === '42501');
    // The one catalog write clients may call (DROP TABLE in a block) refuses a table that still exists.
    await assert.rejects(
      reader.client.query(`SELECT pg_catalog.pgweave_forget_dropped_table('pg_catalog.pg_class'::regclass)`),
      (err: unknown) => err instanceof PgError && err.code === '55000',
    );
  } finally {
    reader.close();
  }
});

test('shard_name() in SQL and shardName() agree, long and multibyte names included', async () => {
  const names = ['t', 'a'.repeat(50), 'b'.repeat(55), 'c'.repeat(63), 'é'.repeat(28) + 'x', 'Mixed Case', 'x'.repeat(56)];
  for (const [i, name] of names.entries()) {
    const schema = i % 2 === 0 ? 'public' : 'Other Schema';
    await t.client.query(`CREATE SCHEMA IF NOT EXISTS "Other Schema"; CREATE TABLE "${schema}"."${name}" (id int)`);
    for (const shardId of [102008, 9999999999]) {
      const r = await t.client.query(`SELECT shard_name($1::regclass, $2)`, [`"${schema}"."${name}"`, String(shardId)]);
      const expected = shardName(name, shardId);
      assert.ok(Buffer.byteLength(expected) <= 63, `${expected} fits in NAMEDATALEN`);
      const q = (s: string) => (/^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s}"`);
      assert.equal(r.rows[0]![0], schema === 'public' ? q(expected) : `"${schema}".${q(expected)}`, name);
    }
  }
});

test('the cache holds tables, shards and placements as the planner reads them', async () => {
  await t.client.query("CREATE TABLE accounts (id bigint PRIMARY KEY, amount numeric(12,2)); CREATE TABLE rates (cur char(3) PRIMARY KEY)");
  await call(t.ctx, 'create_distributed_table', ['accounts', 'id'], { shard_count: '4' });
  await call(t.ctx, 'create_reference_table', ['rates']);
  const catalog = await t.ctx.metadata.get('postgres');
  assert.equal(catalog.nodes.length, 2);
  const accounts = t.ctx.metadata.lookup(catalog, 'public', 'accounts')!;
  assert.equal(accounts.method, 'hash');
  assert.equal(accounts.distributionColumn, 'id');
  assert.equal(accounts.distributionColumnType, 'int8');
  assert.equal(accounts.distributionColumnSqlType, 'bigint');
  assert.equal(accounts.hashFunction, 'pg_catalog.hashint8');
  assert.deepEqual(accounts.shards.map((s) => [s.minValue, s.maxValue]), [
    [-2147483648, -1073741825], [-1073741824, -1], [0, 1073741823], [1073741824, 2147483647],
  ]);
  assert.deepEqual(accounts.shards.map((s) => s.shardName), accounts.shards.map((s) => `accounts_${s.shardId}`));
  assert.deepEqual(accounts.shards.map((s) => s.placements[0]!.node.port), [0, 1, 2, 3].map((i) => cluster.workers[i % 2]!.port));
  assert.equal(catalog.tablesById.get(accounts.relationId), accounts);
  const rates = t.ctx.metadata.lookup(catalog, 'public', 'rates')!;
  assert.equal(rates.method, 'reference');
  assert.equal(rates.distributionColumn, null);
  assert.equal(rates.shards.length, 1);
  assert.equal(rates.shards[0]!.placements.length, 2);
  assert.equal(t.ctx.metadata.peek('postgres'), catalog, 'peek returns the loaded catalog');
  assert.equal(await t.ctx.metadata.get('postgres'), catalog, 'cached until something changes');
});

test('a change made through one coordinator invalidates another coordinator\'s cache', async () => {
  const other = await makeContext(cluster);
  try {
    const before = await other.ctx.metadata.get('postgres');
    assert.equal(other.ctx.metadata.lookup(before, 'public', 'ledger'), undefined);
    await t.client.query('CREATE TABLE ledger (account bigint, amount int)');
    await call(t.ctx, 'create_distributed_table', ['ledger', 'account'], { colocate_with: 'accounts' });
    // The command returned after every listener acknowledged the change.
    assert.equal(other.ctx.metadata.peek('postgres'), null);
    const after = await other.ctx.metadata.get('postgres');
    assert.ok(after.version > before.version);
    assert.equal(other.ctx.metadata.lookup(after, 'public', 'ledger')?.colocationId, other.ctx.metadata.lookup(after, 'public', 'accounts')?.colocationId);
  } finally {
    other.close();
  }
});

test('a catalog change returns only after every other coordinator\'s listener has dropped its cache, however late it reads', async () => {
  const other = await makeContext(cluster);
  try {
    await other.ctx.metadata.get('postgres');
    assert.ok(other.ctx.metadata.peek('postgres'));
    // The other coordinator's listener reads nothing for a while (a loaded process): the change must wait for it.
    const entries = (other.ctx.metadata as unknown as { entries: Map<string, { listener: { conn: { socket: import('node:net').Socket } } }> }).entries;
    const socket = entries.get('postgres')!.listener.conn.socket;
    socket.pause();
    let resumed = false;
    const timer = setTimeout(() => {
      resumed = true;
      socket.resume();
    }, 500);
    try {
      await t.client.query('CREATE TABLE late_reader (id int)');
      await call(t.ctx, 'create_distributed_table', ['late_reader', 'id'], { shard_count: '2' });
    } finally {
      clearTimeout(timer);
      socket.resume();
    }
    assert.ok(resumed, 'the command waited for the paused listener');
    assert.equal(other.ctx.metadata.peek('postgres'), null, 'the other cache was dropped before the command returned');
    assert.ok(other.ctx.metadata.lookup(await other.ctx.metadata.get('postgres'), 'public', 'late_reader'));
  } finally {
    other.close();
  }
});

test('a lost listener drops the cache, and the next get() listens again', async () => {
  const catalog = await t.ctx.metadata.get('postgres');
  assert.ok(t.ctx.metadata.peek('postgres'));
  await t.client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgweave catalog listener' AND pid <> pg_backend_pid()");
  for (let i = 0; i < 100 && t.ctx.metadata.peek('postgres'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(t.ctx.metadata.peek('postgres'), null);
  const again = await t.ctx.metadata.get('postgres');
  assert.ok(again.version > catalog.version);
  assert.equal(again.tables.size, catalog.tables.size);
  assert.equal(t.ctx.metadata.peek('postgres'), again);
});

test('a new database\'s catalog starts with the template database\'s nodes and no tables', async () => {
  await t.client.query('CREATE DATABASE empty_db');
  const cache = new MetadataCache(t.ctx.pools, cluster.coordinatorPg);
  try {
    const catalog = await cache.get('empty_db');
    assert.equal(catalog.tables.size, 0);
    assert.deepEqual(catalog.nodes.map((n) => [n.nodeId, n.groupId, n.port]), cluster.workers.map((w, i) => [i + 1, i + 1, w.port]));
  } finally {
    cache.close();
  }
});

test('a caller that shares another caller\'s catalog load gets a fresh catalog when a change lands during that load', async () => {
  const pools = new NodePools(cluster.config.internal);
  const cache = new MetadataCache(pools, cluster.coordinatorPg);
  try {
    await cache.get('postgres');
    cache.invalidate('postgres');
    // The first load reads the catalog, then waits at a gate: the change commits meanwhile.
    const c = cache as unknown as { load(database: string): Promise<Awaited<ReturnType<MetadataCache['get']>>> };
    const realLoad = c.load.bind(cache);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let read!: () => void;
    const readDone = new Promise<void>((resolve) => (read = resolve));
    let calls = 0;
    c.load = async (database) => {
      const catalog = await realLoad(database);
      if (calls++ === 0) {
        read();
        await gate;
      }
      return catalog;
    };
    const first = cache.get('postgres');
    await readDone;
    const second = cache.get('postgres'); // joins the load in flight
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    await t.client.query('CREATE TABLE cache_race (id int)');
    await call(t.ctx, 'create_distributed_table', ['cache_race', 'id'], { shard_count: '2' });
    cache.invalidate('postgres');
    open();
    const [a, b] = await Promise.all([first, second]);
    assert.ok([...a.tables.values()].some((x) => x.name === 'cache_race'), 'the caller that loaded');
    assert.ok([...b.tables.values()].some((x) => x.name === 'cache_race'), 'the caller that joined the stale load');
  } finally {
    cache.close();
    pools.close();
  }
});
