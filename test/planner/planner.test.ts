/**
 * Planner unit tests on a fixed catalog: which planner takes a statement, the
 * shard it picks (PostgreSQL's hash, Citus's ranges), and the text the worker
 * receives (shard names spliced in, everything else byte for byte).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql } from '../../src/sql/parse.js';
import { planStatement, type PlanContext } from '../../src/planner/plan-statement.js';
import { computeShardIntervals, findShardIndex } from '../../src/metadata/shard-interval.js';
import { hashInt4 } from '../../src/sql/hash.js';
import type { Catalog, DistributedTable, WorkerNode } from '../../src/metadata/types.js';

const nodes: WorkerNode[] = [
  { nodeId: 1, groupId: 1, host: '127.0.0.1', port: 1, isActive: true, shouldHaveShards: true },
  { nodeId: 2, groupId: 2, host: '127.0.0.1', port: 2, isActive: true, shouldHaveShards: true },
];

function hashTable(name: string, column: string, colocationId: number, firstId: number): DistributedTable {
  const shards = computeShardIntervals(4, firstId).map((s, i) => ({
    shardId: s.shardId,
    minValue: s.minValue,
    maxValue: s.maxValue,
    shardName: `${name}_${s.shardId}`,
    placements: [{ placementId: s.shardId, shardId: s.shardId, groupId: nodes[i % 2].groupId, node: nodes[i % 2] }],
  }));
  return { relationId: firstId, schema: 'public', name, method: 'hash', distributionColumn: column, distributionColumnType: 'int4', distributionColumnSqlType: 'integer', hashFunction: null, colocationId, shards, columns: [column, 'v'] };
}

const orders = hashTable('orders', 'tenant_id', 1, 102008);
const items = hashTable('items', 'tenant_id', 1, 102012);
const events = hashTable('events', 'id', 2, 102016);
const countries: DistributedTable = {
  relationId: 9, schema: 'public', name: 'countries', method: 'reference', distributionColumn: null, distributionColumnType: null, distributionColumnSqlType: null, hashFunction: null, colocationId: 3,
  shards: [{ shardId: 102020, minValue: -2147483648, maxValue: 2147483647, shardName: 'countries_102020', placements: nodes.map((n, i) => ({ placementId: 50 + i, shardId: 102020, groupId: n.groupId, node: n })) }],
};
const codes: DistributedTable = { ...hashTable('codes', 'code', 4, 102024), distributionColumnType: 'varchar', distributionColumnSqlType: 'character varying(3)', hashFunction: 'pg_catalog.hashtext' };
const tables = [orders, items, events, countries, codes];
const catalog: Catalog = {
  version: 1,
  nodes,
  tables: new Map(tables.map((t) => [`public.${t.name}`, t])),
  tablesById: new Map(tables.map((t) => [t.relationId, t])),
};
const ctx: PlanContext = { catalog, searchPath: ['public'], isCommand: (n) => n === 'create_distributed_table' };

function route(sql: string, params: Array<string | null> | null = null, rowHashes: Array<number | null> | null = null) {
  const stmt = parseSql(sql).stmts[0].stmt;
  return planStatement(stmt, Buffer.from(sql), ctx).route(params, rowHashes);
}

function shardFor(t: DistributedTable, v: number) {
  return t.shards[findShardIndex(hashInt4(v), t.shards.length)];
}

before(async () => {
  await initParser();
});

test('local statements stay on the coordinator', () => {
  assert.equal(route('select * from local_table where id = 1').kind, 'local');
  assert.equal(route('select 1').kind, 'local');
});

test('fast path: distribution key equals a constant', () => {
  const r = route('select v from orders where tenant_id = 42');
  assert.equal(r.kind, 'router');
  if (r.kind !== 'router') return;
  const shard = shardFor(orders, 42);
  assert.equal(r.planner, 'fast-path');
  assert.equal(r.task.sql, `select v from "public"."${shard.shardName}" AS "orders" where tenant_id = 42`);
  assert.equal(r.task.node.nodeId, shard.placements[0].node.nodeId);
});

test('fast path with a parameter picks the shard from its value', () => {
  const sql = 'SELECT v FROM orders o WHERE o.tenant_id = $1';
  for (const v of [1, 2, 3, 99, -7]) {
    const r = route(sql, [String(v)]);
    assert.equal(r.kind, 'router');
    if (r.kind === 'router') assert.ok(r.task.sql.includes(shardFor(orders, v).shardName), r.task.sql);
  }
});

test('router: co-located join pinned through the join condition, with a reference table', () => {
  const sql = `SELECT o.v, i.v, c.v FROM orders o JOIN items i ON o.tenant_id = i.tenant_id
    JOIN countries c ON c.id = o.v WHERE o.tenant_id = 7`;
  const r = route(sql);
  assert.equal(r.kind, 'router');
  if (r.kind !== 'router') return;
  assert.equal(r.planner, 'router');
  assert.ok(r.task.sql.includes(`"public"."${shardFor(orders, 7).shardName}" o`));
  assert.ok(r.task.sql.includes(`"public"."${shardFor(items, 7).shardName}" i`));
  assert.ok(r.task.sql.includes('"public"."countries_102020" c'));
});

test('router: USING join and unqualified key', () => {
  const r = route('select count(*) from orders join items using (tenant_id) where tenant_id = 5');
  assert.equal(r.kind, 'router');
});

test('values in different shards are not routed to one', () => {
  let a = 1;
  let b = 2;
  while (findShardIndex(hashInt4(a), 4) === findShardIndex(hashInt4(b), 4)) b++;
  const r = route(`select * from orders where tenant_id = ${a} or tenant_id = ${b}`);
  assert.equal(r.kind, 'multi-shard');
  const r2 = route(`select * from orders where tenant_id in (${a}, ${b})`);
  assert.equal(r2.kind, 'multi-shard');
});

test('multi-shard concatenation; what needs a merge step is pulled to the coordinator', () => {
  const r = route('select * from orders where v > 3');
  assert.equal(r.kind, 'multi-shard');
  if (r.kind === 'multi-shard') assert.equal(r.tasks.length, 4);
  const agg = route('select count(*) from orders where v > 3 and tenant_id <> $1');
  assert.equal(agg.kind, 'pull');
  if (agg.kind === 'pull') {
    // Pushed down with its parameter (spliced per Bind, planner/pushdown-params.ts); the plain pull stays as the fallback.
    assert.equal(agg.partial?.planner, 'aggregate-pushdown');
    assert.equal(agg.partial?.tasks[0]?.sql, 'SELECT count(*) AS pgweave_p1 FROM "public"."orders_102008" AS "orders" WHERE v > 3 AND tenant_id <> $1');
    const fallback = agg.pulls[agg.pulls.length - 1]!;
    assert.equal(fallback.filterSql, 'v > 3', 'conditions without parameters are pushed to the shards');
    assert.equal(agg.sql, 'select count(*) from "pg_temp"."pgweave_pull_102008" AS "orders" where v > 3 and tenant_id <> $1');
  }
  const join = route('select * from orders o join events e on o.v = e.id');
  assert.equal(join.kind, 'pull');
  if (join.kind === 'pull') assert.equal(join.pulls.length, 2);
  const locking = route('select * from orders o join events e on o.v = e.id for update');
  assert.equal(locking.kind, 'error');
  const update = route('update orders o set v = 1 from events e where o.v = e.id');
  assert.equal(update.kind, 'error');
  if (update.kind === 'error') assert.equal(update.error.code, '0A000');
});

test('UPDATE of the distribution column is refused as Citus does', () => {
  const r = route('update orders set tenant_id = 3 where tenant_id = 2');
  assert.equal(r.kind, 'error');
  if (r.kind === 'error') assert.match(r.error.message, /modifying the partition value/);
});

test('multi-shard DELETE with a volatile function is refused', () => {
  const r = route('delete from orders where v < random()');
  assert.equal(r.kind, 'error');
});

test('INSERT: one row routes, several rows split per shard', () => {
  const one = route('insert into orders (tenant_id, v) values (10, 1) returning *');
  assert.equal(one.kind, 'router');
  if (one.kind === 'router') assert.ok(one.task.sql.startsWith(`insert into "public"."${shardFor(orders, 10).shardName}" AS "orders" (tenant_id, v)`));
  let other = 11;
  while (findShardIndex(hashInt4(other), 4) === findShardIndex(hashInt4(10), 4)) other++;
  const many = route(`insert into orders (tenant_id, v) values (10, 1), (${other}, 2), (10, 3)`);
  assert.equal(many.kind, 'multi-shard');
  if (many.kind === 'multi-shard') {
    assert.equal(many.tasks.length, 2);
    assert.ok(many.tasks.every((t) => t.sql.includes('orders_1020')));
  }
  // Values the coordinator must compute first (defaults, DEFAULT, now()): evaluated, then rebuilt.
  const noKey = route('insert into orders (v) values (1)');
  assert.equal(noKey.kind, 'evaluate-insert');
  const withNow = route('insert into orders (tenant_id, v) values (1, extract(epoch from now()))');
  assert.equal(withNow.kind, 'evaluate-insert');
  if (withNow.kind === 'evaluate-insert') {
    // The INSERT as a data-modifying CTE whose rows leave as exact text (extra_float_digits set after it).
    assert.match(withNow.evaluationSql.replace(/\s+/g, ' '), /^WITH "?pgweave_evaluated"? AS \(INSERT INTO orders \( ?tenant_id, v ?\) VALUES \(1, EXTRACT\(EPOCH FROM now\(\)\)\) RETURNING \*\) SELECT pgweave_evaluated\.\* FROM pgweave_evaluated WHERE .*set_config\('extra_float_digits'/);
    const rebuilt = withNow.rebuild(['tenant_id', 'v'], [['1', '17']]);
    assert.equal(rebuilt.rowHashes, null);
    assert.equal(route(rebuilt.sql).kind, 'router');
    assert.throws(() => withNow.rebuild(['v'], [['17']]), /partition column/);
  }
  // A value the TypeScript hash declines: PostgreSQL evaluates the row and hashes its key.
  const tooLong = route("insert into codes (code, v) values ('abcd', 1)");
  assert.equal(tooLong.kind, 'evaluate-insert');
  if (tooLong.kind === 'evaluate-insert') {
    assert.match(tooLong.evaluationSql, /RETURNING \*, pg_catalog\.hashtext\("?code"?\)\)/);
    const rebuilt = tooLong.rebuild(['code', 'v', 'hashtext'], [['abcd', '1', String(-2147483648 + 5)]]);
    assert.deepEqual(rebuilt.rowHashes, [-2147483643]);
    const routed = route(rebuilt.sql, null, rebuilt.rowHashes);
    assert.equal(routed.kind, 'router');
    if (routed.kind === 'router') assert.equal(routed.task.shardIds[0], codes.shards[0].shardId);
  }
  assert.equal(route("insert into codes (code, v) values ($1, 1)", ['abcd']).kind, 'evaluate-insert');
  assert.equal(route("insert into codes (code, v) values ('abc', 1)").kind, 'router');
  const withoutColumns = route('insert into orders values ($1, $2)', ['10', '5']);
  assert.equal(withoutColumns.kind, 'router');
});

test('reference tables: reads go to one placement, writes to all', () => {
  const read = route('select * from countries');
  assert.equal(read.kind, 'router');
  const write = route("insert into countries values (1, 'x')");
  assert.equal(write.kind, 'multi-shard');
  if (write.kind === 'multi-shard') assert.equal(write.tasks.length, 2);
});

test('Citus functions are recognized with constant and parameter arguments', () => {
  const r = route("select create_distributed_table('t', 'id', colocate_with => 'none')");
  assert.equal(r.kind, 'command');
  if (r.kind === 'command') {
    assert.deepEqual(r.positional, [{ text: 't' }, { text: 'id' }]);
    assert.deepEqual(r.named.get('colocate_with'), { text: 'none' });
  }
});

test('a coordinator function under WHERE, ORDER BY, GROUP BY, LIMIT or a join runs over a temporary table of its rows', () => {
  for (const sql of [
    "select * from create_distributed_table('t', 'id') where true",
    "select * from create_distributed_table('t', 'id') order by 1",
    "select count(*) from create_distributed_table('t', 'id') group by 1",
    "select * from create_distributed_table('t', 'id') limit 1",
  ]) {
    const r = route(sql);
    assert.equal(r.kind, 'command', sql);
    if (r.kind === 'command') assert.deepEqual(r.query?.calls.map((c) => c.tempName), ['pgweave_fn_0_create_distributed_table'], sql);
  }
  const joined = route("select a.x from create_distributed_table($1, 'id') a join create_distributed_table('u', 'id') as b (y) on a.x = b.y order by 1");
  assert.equal(joined.kind, 'command');
  if (joined.kind === 'command') {
    assert.deepEqual(joined.query?.calls.map((c) => c.positional), [[{ param: 1 }, { text: 'id' }], [{ text: 'u' }, { text: 'id' }]]);
    assert.equal(joined.query?.sql,
      'SELECT a.x FROM pg_temp.pgweave_fn_0_create_distributed_table AS a JOIN pg_temp.pgweave_fn_1_create_distributed_table AS b(y) ON a.x = b.y ORDER BY 1');
  }
  const simple = route("select * from create_distributed_table('t', 'id')");
  assert.equal(simple.kind, 'command');
  if (simple.kind === 'command') assert.equal(simple.query, undefined);
  for (const sql of [
    "select * from create_distributed_table(current_user, 'id') where true",
    "select * from create_distributed_table('t', 'id') where $1",
    "select * from create_distributed_table('t', 'id') c join orders o on true",
  ]) {
    const r = route(sql);
    assert.equal(r.kind, 'error', sql);
    if (r.kind === 'error') assert.equal(r.error.fields.code, '0A000', sql);
  }
});

test('splicing keeps quoted, qualified and non-ASCII text intact', () => {
  const sql = `/* é */ SELECT 'é', "v" FROM public . orders WHERE tenant_id = 3 -- tail`;
  const r = route(sql);
  assert.equal(r.kind, 'router');
  if (r.kind === 'router') assert.equal(r.task.sql, `/* é */ SELECT 'é', "v" FROM "public"."${shardFor(orders, 3).shardName}" AS "orders" WHERE tenant_id = 3 -- tail`);
});

test('DROP TABLE/INDEX and COMMENT name their objects without RangeVars: still propagated', () => {
  const drop = route('drop table if exists orders, local_table');
  assert.equal(drop.kind, 'utility');
  if (drop.kind === 'utility') assert.deepEqual(drop.tables.map((t) => t.name), ['orders']);
  assert.equal(route('drop table local_table').kind, 'local');
  assert.equal(route('drop index orders_v_idx').kind, 'utility');
  assert.equal(route("comment on column public.orders.v is 'x'").kind, 'utility');
  assert.equal(route("comment on table local_table is 'x'").kind, 'local');
});

test('CREATE TABLE referencing a distributed table creates a local table', () => {
  assert.equal(route('create table kid (id int references orders (tenant_id))').kind, 'local');
});

test('restrictions are scoped: inner conditions never pin outer tables', () => {
  // The outer orders is not pinned by the subquery's condition: not routed to one shard.
  assert.notEqual(route('select count(*) from orders where v in (select v from orders where tenant_id = 1)').kind, 'router');
  assert.notEqual(route('select * from orders o where not exists (select 1 from items i where i.tenant_id = o.tenant_id and i.tenant_id = 3)').kind, 'router');
  assert.notEqual(route('select (select count(*) from items i where i.tenant_id = o.tenant_id and i.tenant_id = 3) from orders o').kind, 'router');
  // A constant in a LEFT JOIN's ON does not filter the preserved side.
  assert.notEqual(route('select * from orders o left join items i on i.tenant_id = o.tenant_id and i.tenant_id = 4').kind, 'router');
  // An alias reused inside EXISTS is its own relation.
  assert.notEqual(route('select * from orders o where exists (select 1 from items o where o.tenant_id = 2)').kind, 'router');
  // Pins flow into correlated subqueries: the whole statement is one shard group.
  assert.equal(route('select * from orders o where o.tenant_id = 6 and exists (select 1 from items i where i.tenant_id = o.tenant_id)').kind, 'router');
  assert.equal(route('select * from orders o left join items i on i.tenant_id = o.tenant_id where o.tenant_id = 6').kind, 'router');
});

test('a multi-row INSERT split across shards carries its parameter values with each shard', () => {
  let other = 11;
  while (findShardIndex(hashInt4(other), 4) === findShardIndex(hashInt4(10), 4)) other++;
  const r = route('insert into orders (tenant_id, v) values ($1, $2), ($3, $4)', ['10', "it's", String(other), null]);
  assert.equal(r.kind, 'multi-shard');
  if (r.kind !== 'multi-shard') return;
  assert.equal(r.paramsInlined, true);
  const all = r.tasks.map((t) => t.sql.replace(/\s+/g, ' ')).join(' | ');
  assert.ok(!all.includes('$'), all);
  assert.ok(all.includes("'it''s'") && all.includes('NULL'), all);
  // The plan is reused with other values: nothing of the first execution may stick.
  const stmt = parseSql('insert into orders (tenant_id, v) values ($1, $2), ($3, $4)').stmts[0].stmt;
  const plan = planStatement(stmt, Buffer.from('insert into orders (tenant_id, v) values ($1, $2), ($3, $4)'), ctx);
  const first = plan.route(['10', 'a', String(other), 'b']);
  const second = plan.route(['10', 'c', String(other), 'd']);
  if (first.kind !== 'multi-shard' || second.kind !== 'multi-shard') assert.fail('expected multi-shard routes');
  else assert.ok(second.tasks.every((t) => !t.sql.includes("'a'") && !t.sql.includes("'b'")), second.tasks.map((t) => t.sql).join(' | '));
});

test('router reads that change nothing are marked readsOnly; locks, writes and unknown functions are not', () => {
  const readsOnly = (sql: string): boolean | undefined => {
    const r = route(sql, ['7']);
    assert.equal(r.kind, 'router', sql);
    return r.kind === 'router' ? r.readsOnly : undefined;
  };
  assert.equal(readsOnly('SELECT v FROM orders WHERE tenant_id = $1'), true);
  assert.equal(readsOnly('SELECT count(*), max(v), lower(v::text), now() FROM orders WHERE tenant_id = $1'), true);
  assert.equal(readsOnly('SELECT o.v FROM orders o JOIN items i USING (tenant_id) JOIN countries c ON c.id = o.v WHERE o.tenant_id = $1'), true);
  assert.equal(readsOnly('SELECT pg_catalog.abs(v) FROM orders WHERE tenant_id = $1'), true);
  assert.equal(readsOnly('SELECT v FROM orders WHERE tenant_id = $1 FOR UPDATE'), false);
  assert.equal(readsOnly('SELECT v FROM orders WHERE tenant_id = $1 AND v IN (SELECT v FROM items WHERE tenant_id = $1 FOR SHARE)'), false);
  assert.equal(readsOnly("SELECT nextval('s'), v FROM orders WHERE tenant_id = $1"), false);
  assert.equal(readsOnly("SELECT set_config('search_path', 'x', false) FROM orders WHERE tenant_id = $1"), false);
  assert.equal(readsOnly('SELECT my_function(v) FROM orders WHERE tenant_id = $1'), false);
  assert.equal(readsOnly('SELECT app.lower(v::text) FROM orders WHERE tenant_id = $1'), false);
  assert.equal(readsOnly('SELECT v OPERATOR(app.===) 1 FROM orders WHERE tenant_id = $1'), false);
  assert.equal(readsOnly('SELECT v::app.money2 FROM orders WHERE tenant_id = $1'), false);
  assert.equal(readsOnly('SELECT pg_advisory_lock(v) FROM orders WHERE tenant_id = $1'), false);
  const update = route('UPDATE orders SET v = 1 WHERE tenant_id = $1', ['7']);
  assert.ok(update.kind === 'router' && update.readsOnly !== true, 'a routed UPDATE is not readsOnly');
});
