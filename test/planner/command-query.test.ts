/**
 * Coordinator functions under WHERE, ORDER BY, LIMIT, GROUP BY, expressions
 * and joins, through a real client: the coordinator answers each call, loads
 * its rows into a temporary table, and PostgreSQL runs the rest.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let client: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  client = new pg.Client({ connectionString: cluster.url });
  await client.connect();
  for (const w of cluster.workers) await client.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
});

after(async () => {
  await client?.end().catch(() => {});
  await cluster?.stop();
});

const ports = () => cluster.workers.map((w) => w.port).sort((a, b) => a - b);

test('WHERE, ORDER BY and LIMIT over citus_get_active_worker_nodes()', async () => {
  const [low, high] = ports();
  const desc = await client.query('SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY node_port DESC');
  assert.deepEqual(desc.rows.map((r) => r.node_port), [String(high), String(low)]);
  // Typed by the function's declared return type (bigint), so it sorts as a number.
  assert.equal(desc.fields[1]!.dataTypeID, 20);
  const one = await client.query(`SELECT node_port + 1 AS next FROM citus_get_active_worker_nodes() AS n WHERE n.node_port = ${high} LIMIT 1`);
  assert.deepEqual(one.rows, [{ next: String(high! + 1) }]);
  const aliased = await client.query('SELECT p FROM citus_get_active_worker_nodes() AS w(h, p) ORDER BY p LIMIT 1');
  assert.deepEqual(aliased.rows, [{ p: String(low) }]);
  // The temporary tables are gone afterwards.
  const left = await client.query("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'pgweave_fn_%' AND relpersistence = 't'");
  assert.deepEqual(left.rows, [{ n: 0 }]);
});

test('count(*), GROUP BY and a join of run_command_on_workers with citus_get_active_worker_nodes()', async () => {
  const counted = await client.query("SELECT count(*)::int AS n FROM run_command_on_workers('select 1') WHERE success");
  assert.deepEqual(counted.rows, [{ n: 2 }]);
  const grouped = await client.query("SELECT success, result, count(*)::int AS n FROM run_command_on_workers($1) GROUP BY success, result", ['select 7']);
  assert.deepEqual(grouped.rows, [{ success: true, result: '7', n: 2 }]);
  const joined = await client.query(`
    SELECT w.node_port, r.result FROM run_command_on_workers('show port') r
    JOIN citus_get_active_worker_nodes() w ON w.node_name = r.nodename AND w.node_port = r.nodeport
    ORDER BY w.node_port`);
  assert.deepEqual(joined.rows, ports().map((p) => ({ node_port: String(p), result: String(p) })));
  const distinct = await client.query("SELECT DISTINCT success FROM run_command_on_workers('select 1')");
  assert.deepEqual(distinct.rows, [{ success: true }]);
});

test('inside a transaction block, and what still cannot run', async () => {
  await client.query('BEGIN');
  const r = await client.query('SELECT count(*)::int AS n FROM citus_get_active_worker_nodes() HAVING count(*) > 1');
  assert.deepEqual(r.rows, [{ n: 2 }]);
  await client.query('COMMIT');
  await assert.rejects(client.query('SELECT * FROM run_command_on_workers(current_user) WHERE success'), (e: { code?: string }) => e.code === '0A000');
  await assert.rejects(client.query('SELECT * FROM citus_get_active_worker_nodes() WHERE node_port = $1', [1]), (e: { code?: string }) => e.code === '0A000');
  // The simple form still answers directly.
  assert.equal((await client.query('SELECT * FROM citus_get_active_worker_nodes()')).rows.length, 2);
});
