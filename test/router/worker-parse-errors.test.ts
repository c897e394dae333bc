/**
 * A worker-side Parse that fails where the coordinator's succeeded (issue
 * #4): the coordinator plans a prepared statement at the client's Parse
 * and prepares the worker's own statement (`pgws<n>`) lazily at
 * Bind. When that Parse fails on the worker — here a function that exists
 * on the coordinator's PostgreSQL only — the client must get the worker's
 * ErrorResponse (its SQLSTATE) once, and the session must stay usable: the
 * failed worker statement is prepared again by a later Bind, and in a
 * transaction block the block is aborted as PostgreSQL would (25P02 until
 * ROLLBACK). Requests sent together (a raw protocol client) that bind the
 * statement while its worker Parse is still unanswered each get that same
 * error, never "prepared statement does not exist".
 *
 * Two coordinators serve the same cluster: one with pipelined channels off
 * (every statement on the session's own connections) and one with them on
 * (autocommit statements may go through a channel, blocks never do).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { errorFieldsOf, frontend, rawLogin } from '../server/raw-protocol.js';
import { addWorkers, nodeUrl, textClient, withTextClient, startPipeliningPair, type PipeliningPair } from './support.js';

let cluster: TestCluster;
let pair: PipeliningPair | undefined;
let admin: pg.Client;
const urls: Record<string, string> = {};
const addresses: Record<string, { host: string; port: number }> = {};

before(async () => {
  pair = await startPipeliningPair();
  ({ cluster, admin } = pair);
  Object.assign(urls, pair.urls);
  Object.assign(addresses, pair.addresses);
  await admin.query('CREATE TABLE t (tenant_id bigint PRIMARY KEY, v int NOT NULL)');
  await admin.query(`SELECT create_distributed_table('t', 'tenant_id', shard_count => 4)`);
  await admin.query('INSERT INTO t SELECT g, g * 10 FROM generate_series(1, 8) g');
});

after(async () => {
  await pair?.stop();
});

/** Creates `plus_one_<suffix>(int)` straight on the given PostgreSQL servers (no propagation). */
async function createFunction(ports: number[], name: string): Promise<void> {
  for (const port of ports) {
    await withTextClient(nodeUrl(cluster, port), (n) => n.query(`CREATE FUNCTION ${name}(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1'`));
  }
}

const workerPorts = (): number[] => cluster.workers.map((w) => w.port);

/** Runs a named extended-protocol query; the error's SQLSTATE, or the rows. */
async function run(c: pg.Client, name: string, text: string, values: unknown[]): Promise<{ code: string } | { rows: unknown[] }> {
  try {
    const r = await c.query({ name, text, values });
    return { rows: r.rows };
  } catch (err) {
    return { code: (err as { code?: string }).code ?? String(err) };
  }
}

for (const mode of ['off', 'on'] as const) {
  test(`pipelining ${mode}: a worker Parse error reaches the client, and a later Bind prepares again`, async () => {
    const fn = `plus_one_auto_${mode}`;
    await createFunction([cluster.coordinatorPg.port], fn);
    const c = await textClient(urls[mode]!);
    try {
      const text = `SELECT ${fn}(v) AS x FROM t WHERE tenant_id = $1`;
      // The coordinator parses it; the worker cannot: the worker's 42883, not a silent empty answer.
      assert.deepEqual(await run(c, 'q', text, [3]), { code: '42883' });
      // Again (the client binds its statement only): the worker statement is prepared anew, not bound missing (26000).
      assert.deepEqual(await run(c, 'q', text, [3]), { code: '42883' });
      // The session goes on: other statements, on the same worker and shard.
      assert.deepEqual(await run(c, 'plain', 'SELECT v FROM t WHERE tenant_id = $1', [3]), { rows: [{ v: '30' }] });
      assert.deepEqual((await c.query('SELECT v FROM t WHERE tenant_id = 3')).rows, [{ v: '30' }]);
      // Once the function exists on the workers, the same prepared statement works.
      await createFunction(workerPorts(), fn);
      assert.deepEqual(await run(c, 'q', text, [3]), { rows: [{ x: '31' }] });
      assert.deepEqual(await run(c, 'q', text, [4]), { rows: [{ x: '41' }] });
    } finally {
      await c.end().catch(() => {});
    }
  });

  test(`pipelining ${mode}: a worker Parse error in a transaction block aborts the block until ROLLBACK`, async () => {
    const fn = `plus_one_block_${mode}`;
    await createFunction([cluster.coordinatorPg.port], fn);
    const c = await textClient(urls[mode]!);
    try {
      const text = `SELECT ${fn}(v) AS x FROM t WHERE tenant_id = $1`;
      // The worker already in the block, then the failing statement.
      await c.query('BEGIN');
      assert.deepEqual(await run(c, 'plain', 'SELECT v FROM t WHERE tenant_id = $1', [5]), { rows: [{ v: '50' }] });
      assert.deepEqual(await run(c, 'q', text, [5]), { code: '42883' });
      assert.deepEqual(await run(c, 'plain', 'SELECT v FROM t WHERE tenant_id = $1', [5]), { code: '25P02' });
      assert.deepEqual(await run(c, 'local', 'SELECT 1 AS one', []), { code: '25P02' });
      await c.query('ROLLBACK');
      // The failing statement the first to reach the worker (its BEGIN goes with the Parse).
      await c.query('BEGIN');
      assert.deepEqual(await run(c, 'q', text, [6]), { code: '42883' });
      assert.deepEqual(await run(c, 'plain', 'SELECT v FROM t WHERE tenant_id = $1', [6]), { code: '25P02' });
      await c.query('ROLLBACK');
      // After the block: the session works, and the statement once the workers have the function.
      assert.deepEqual(await run(c, 'plain', 'SELECT v FROM t WHERE tenant_id = $1', [6]), { rows: [{ v: '60' }] });
      await createFunction(workerPorts(), fn);
      await c.query('BEGIN');
      assert.deepEqual(await run(c, 'q', text, [6]), { rows: [{ x: '61' }] });
      await c.query('COMMIT');
    } finally {
      await c.end().catch(() => {});
    }
  });

  test(`pipelining ${mode}: requests sent together each get the worker's Parse error, none a missing statement`, async () => {
    const fn = `plus_one_burst_${mode}`;
    await createFunction([cluster.coordinatorPg.port], fn);
    const conn = await rawLogin(addresses[mode]!, 'postgres', cluster.password);
    try {
      // Three requests in one write: the worker's Parse (sent lazily with the first Bind) is still
      // unanswered when the next requests bind the same statement.
      const request = Buffer.concat([
        frontend.bind({ portal: '', statement: 's', values: ['7'] }),
        frontend.execute({ portal: '', rows: 0 }),
        frontend.sync(),
      ]);
      conn.write(Buffer.concat([frontend.parse({ name: 's', text: `SELECT ${fn}(v) AS x FROM t WHERE tenant_id = $1`, types: [] }), request, request, request]));
      const replies = await conn.readUntil('Z');
      for (let i = 0; i < 2; i++) replies.push(...(await conn.readUntil('Z')));
      const shape = replies.map((m) => (m.type === 'E' ? `E ${errorFieldsOf(m).code}` : m.type));
      assert.deepEqual(shape, ['1', 'E 42883', 'Z', 'E 42883', 'Z', 'E 42883', 'Z']);
      // Describe of the statement (prepared lazily on a worker too): the worker's error, twice.
      const describe = Buffer.concat([frontend.describe({ type: 'S', name: 's' }), frontend.sync()]);
      conn.write(Buffer.concat([describe, describe]));
      const described = [...(await conn.readUntil('Z')), ...(await conn.readUntil('Z'))].map((m) => (m.type === 'E' ? `E ${errorFieldsOf(m).code}` : m.type));
      assert.deepEqual(described, ['E 42883', 'Z', 'E 42883', 'Z']);
      // The session goes on.
      conn.write(Buffer.concat([frontend.bind({ portal: '', statement: 's', values: ['7'] }), frontend.execute({ portal: '', rows: 0 }), frontend.sync()]));
      await createFunction(workerPorts(), fn);
      conn.write(request);
      const after = [...(await conn.readUntil('Z')), ...(await conn.readUntil('Z'))].map((m) => (m.type === 'E' ? `E ${errorFieldsOf(m).code}` : m.type));
      assert.deepEqual(after.slice(0, 3), ['E 42883', 'Z', '2'], 'the function still missing, then bound again');
      assert.deepEqual(after.slice(-3), ['D', 'C', 'Z']);
      conn.write(describe);
      assert.deepEqual((await conn.readUntil('Z')).map((m) => m.type), ['t', 'T', 'Z']);
    } finally {
      conn.destroy();
    }
  });
}
