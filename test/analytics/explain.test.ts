/**
 * EXPLAIN and EXPLAIN ANALYZE of statements on distributed tables show the
 * distributed plan (src/planner/explain.ts), as Citus's `Custom Scan (Citus
 * Adaptive)` does: the planner that took the statement (fast path, router,
 * multi-shard, pushdown, pull), the task count, one task's plan from its
 * worker, and for pull and pushdown plans the coordinator's plan over the
 * rows the shards sent (pushdown.test.ts checks the pushdown's lines).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { textClient } from './support.js';
import { RANDOM_SCHEMA_DDL, RANDOM_SCHEMA_DISTRIBUTE, randomSchemaData } from './query-generator.js';

let cluster: TestCluster | undefined;
let c: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url, 'explain');
  for (const w of cluster.workers) await c.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  for (const ddl of RANDOM_SCHEMA_DDL) await c.query(ddl);
  for (const ins of randomSchemaData(7)) await c.query(ins);
  for (const d of RANDOM_SCHEMA_DISTRIBUTE) await c.query(d);
  await c.query('CREATE TABLE local_notes (id int PRIMARY KEY, body text)');
}, { timeout: 300_000 });

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

async function explain(sql: string, values?: unknown[]): Promise<string[]> {
  const r = await c.query({ text: sql, values, rowMode: 'array' });
  assert.deepEqual(r.fields.map((f) => f.name), ['QUERY PLAN']);
  return (r.rows as string[][]).map((row) => row[0]!);
}

function has(lines: string[], re: RegExp): boolean {
  return lines.some((l) => re.test(l));
}

test('EXPLAIN of a fast-path query shows the one task and its worker plan', async () => {
  const lines = await explain('EXPLAIN SELECT * FROM customers WHERE cid = 5');
  assert.match(lines[0]!, /^Custom Scan \(Citus Adaptive\)  \(cost=0\.00\.\.0\.00 rows=0 width=0\)$/);
  assert.ok(has(lines, /^  Planner: fast path router$/), lines.join('\n'));
  assert.ok(has(lines, /^  Task Count: 1$/));
  assert.ok(has(lines, /^  Tasks Shown: All$/));
  const ports = cluster!.workers.map((w) => w.port).join('|');
  assert.ok(has(lines, new RegExp(`^        Node: host=127\\.0\\.0\\.1 port=(${ports}) dbname=postgres$`)), lines.join('\n'));
  assert.ok(has(lines, /^        ->  .*customers_\d+/), lines.join('\n'));
});

test('EXPLAIN of a co-located join pinned to one tenant says router', async () => {
  const lines = await explain('EXPLAIN (COSTS OFF) SELECT c.name, p.qty FROM customers c JOIN purchases p ON p.cid = c.cid WHERE c.cid = 7');
  assert.equal(lines[0], 'Custom Scan (Citus Adaptive)');
  assert.ok(has(lines, /^  Planner: router$/), lines.join('\n'));
  assert.ok(!has(lines, /cost=/), 'COSTS OFF reaches the worker');
  assert.ok(has(lines, /purchases_\d+/) && has(lines, /customers_\d+/), lines.join('\n'));
});

test('EXPLAIN of a multi-shard query shows one of the tasks', async () => {
  const lines = await explain('EXPLAIN SELECT cid, name FROM customers WHERE tier = 2');
  assert.ok(has(lines, /^  Planner: multi-shard$/), lines.join('\n'));
  assert.ok(has(lines, /^  Task Count: 8$/));
  assert.ok(has(lines, /^  Tasks Shown: One of 8$/));
  assert.ok(has(lines, /Filter: \(tier = 2\)/), lines.join('\n'));
});

test('EXPLAIN of a query the coordinator answers over pulled rows shows the pull and the coordinator plan', async () => {
  // string_agg with ORDER BY inside is not combined from partial results (src/planner/README.md): the rows are pulled.
  const lines = await explain(`EXPLAIN SELECT region, string_agg(cid::text, ',' ORDER BY cid) FROM customers WHERE tier > 1 GROUP BY region ORDER BY 2 DESC`);
  assert.match(lines[0]!, /^Custom Scan \(pgweave Pull\)/);
  assert.ok(has(lines, /^  Pulled Tables: 1$/), lines.join('\n'));
  assert.ok(has(lines, /^  ->  Pull "public"\."customers" into pg_temp\.pgweave_pull_\d+  \(8 shards on 2 nodes\)$/), lines.join('\n'));
  assert.ok(has(lines, /^        Shard Filter: tier > 1$/), lines.join('\n'));
  assert.ok(has(lines, /^  Task Count: 8$/));
  assert.ok(has(lines, /^  ->  Coordinator Plan/));
  assert.ok(has(lines, /^        ->  Sort/), lines.join('\n'));
  assert.ok(has(lines, /Aggregate/), lines.join('\n'));
});

test('EXPLAIN ANALYZE of a pull reports rows pulled, actual rows and time', async () => {
  // A FULL JOIN of tables that are not co-located: neither side may be broadcast (broadcast.test.ts), so it is pulled.
  const lines = await explain('EXPLAIN (ANALYZE, TIMING OFF) SELECT c.region, count(*) FROM customers c FULL JOIN items i ON i.region = c.region GROUP BY c.region');
  const expected = await c.query('SELECT count(*) AS n FROM (SELECT c.region FROM customers c FULL JOIN items i ON i.region = c.region GROUP BY c.region) g');
  assert.match(lines[0]!, new RegExp(`^Custom Scan \\(pgweave Pull\\)  \\(cost=[^)]*\\) \\(actual time=[\\d.]+\\.\\.[\\d.]+ rows=${expected.rows[0].n} loops=1\\)$`), lines.join('\n'));
  assert.ok(has(lines, /^        Rows Pulled: 120$/), lines.join('\n'));
  assert.ok(has(lines, /^        Rows Pulled: 40$/), lines.join('\n'));
  assert.ok(has(lines, /^  Pull Time: [\d.]+ ms$/));
  assert.ok(has(lines, /^Execution Time: [\d.]+ ms$/));
  assert.ok(has(lines, /actual rows=/), 'the coordinator plan is an ANALYZE plan');
});

test('EXPLAIN ANALYZE of a multi-shard query runs every task and counts their rows', async () => {
  const lines = await explain('EXPLAIN ANALYZE SELECT * FROM purchases WHERE qty >= 0');
  const n = (await c.query('SELECT count(*) AS n FROM purchases WHERE qty >= 0')).rows[0].n;
  assert.match(lines[0]!, new RegExp(`rows=${n} loops=1\\)$`), lines.join('\n'));
  assert.ok(has(lines, /^  Tasks Shown: One of 8 \(the slowest\)$/));
  assert.ok(has(lines, /Execution Time/));
});

test('EXPLAIN VERBOSE shows the task query', async () => {
  const lines = await explain('EXPLAIN (VERBOSE, COSTS OFF) SELECT name FROM customers WHERE cid = 11');
  assert.ok(has(lines, /^        Query: SELECT name FROM "public"\."customers_\d+" AS "customers" WHERE cid = 11$/), lines.join('\n'));
});

test('EXPLAIN of UPDATE shows the worker plan; EXPLAIN ANALYZE of writes is refused with 0A000', async () => {
  const lines = await explain('EXPLAIN UPDATE purchases SET qty = qty + 1 WHERE note = \'gift\'');
  assert.ok(has(lines, /^  Planner: multi-shard$/), lines.join('\n'));
  assert.ok(has(lines, /Update on purchases_\d+/), lines.join('\n'));
  const before = (await c.query('SELECT count(*) AS n FROM purchases WHERE cid = 3 AND qty = 1')).rows[0].n;
  await assert.rejects(c.query('EXPLAIN ANALYZE UPDATE purchases SET qty = 1 WHERE cid = 3'), (err: { code?: string }) => err.code === '0A000');
  // the refused EXPLAIN ANALYZE wrote nothing
  const after = (await c.query('SELECT count(*) AS n FROM purchases WHERE cid = 3 AND qty = 1')).rows[0].n;
  assert.equal(after, before);
});

test('EXPLAIN (FORMAT JSON) is refused with 0A000 naming the format', async () => {
  await assert.rejects(c.query('EXPLAIN (FORMAT JSON) SELECT * FROM customers'), (err: { code?: string; message?: string }) => err.code === '0A000' && /FORMAT JSON/.test(err.message ?? ''));
});

test('EXPLAIN works with parameters (extended protocol), inside a transaction block, and for local tables', async () => {
  const lines = await explain('EXPLAIN SELECT * FROM customers WHERE cid = $1', [9]);
  assert.ok(has(lines, /Planner: fast path router/), lines.join('\n'));
  await c.query('BEGIN');
  try {
    const inBlock = await explain('EXPLAIN ANALYZE SELECT count(*) FROM customers');
    assert.match(inBlock[0]!, /pgweave Pushdown/);
    assert.ok(has(inBlock, /actual .*rows=1 loops=1/), inBlock.join('\n'));
    const pulled = await explain('EXPLAIN ANALYZE SELECT array_agg(tier ORDER BY cid) FROM customers');
    assert.match(pulled[0]!, /pgweave Pull/);
  } finally {
    await c.query('COMMIT');
  }
  const local = await explain('EXPLAIN SELECT * FROM local_notes');
  assert.match(local[0]!, /^Seq Scan on local_notes/);
});
