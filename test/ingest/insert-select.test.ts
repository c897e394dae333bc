/**
 * INSERT … SELECT in Citus's three modes, each checked against a plain
 * PostgreSQL running the same statements on the same data: the command tag
 * and row count, RETURNING rows, errors (SQLSTATE and message), and after
 * every statement the full contents of every table.
 *
 * pushdown (co-located, distribution column carried over, GROUP BY it, joins
 * with reference tables, ON CONFLICT, RETURNING, parameters, self-insert);
 * repartition (into a table distributed by another column, into a table of
 * another co-location group, literals, ON CONFLICT + RETURNING); coordinator
 * (no table, aggregates across shards, LIMIT, window functions, into a
 * reference table, sequences, ON CONFLICT + RETURNING) — and the mode chosen
 * is checked with the planner itself. Also inside transaction blocks, and
 * INSERT INTO a coordinator table SELECT … FROM distributed tables.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { initParser, parseSql } from '../../src/sql/parse.js';
import { planStatement } from '../../src/planner/plan-statement.js';
import { loadCatalogFor } from './catalog.js';
import { addWorkers, tableRows, textClient } from './support.js';

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;

const TABLES = ['events', 'events_copy', 'rollup', 'by_user', 'other', 'seq_target', 'ref_kinds', 'kind_totals', 'local_summary'];

const SCHEMA = `
CREATE TABLE events (tenant_id int NOT NULL, id bigint NOT NULL, user_id int NOT NULL, kind text NOT NULL, amount numeric(10,2),
                     at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE events_copy (tenant_id int NOT NULL, id bigint NOT NULL, user_id int NOT NULL, kind text NOT NULL, amount numeric(10,2),
                          at timestamptz NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE rollup (tenant_id int NOT NULL, kind text NOT NULL, n bigint NOT NULL, total numeric, PRIMARY KEY (tenant_id, kind));
CREATE TABLE by_user (user_id int NOT NULL, id bigint NOT NULL, tenant_id int, kind text, PRIMARY KEY (user_id, id));
CREATE TABLE other (k bigint PRIMARY KEY, v text, small smallint);
CREATE TABLE seq_target (id bigserial, tenant_id int NOT NULL, kind text, PRIMARY KEY (tenant_id, id));
CREATE TABLE ref_kinds (kind text PRIMARY KEY, label text NOT NULL);
CREATE TABLE kind_totals (kind text PRIMARY KEY, n bigint);
CREATE TABLE local_summary (tenant_id int, n bigint);
INSERT INTO ref_kinds VALUES ('click', 'Click'), ('view', 'View'), ('buy', 'Purchase');
`;

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url);
  reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
  await weave.query('SET citus.shard_count = 6');
  await weave.query(SCHEMA);
  await reference.query(SCHEMA);
  for (const t of ['events', 'events_copy', 'rollup', 'seq_target']) await weave.query(`SELECT create_distributed_table('${t}', 'tenant_id')`);
  await weave.query(`SELECT create_distributed_table('by_user', 'user_id')`);
  await weave.query(`SELECT create_distributed_table('other', 'k')`);
  await weave.query(`SELECT create_reference_table('ref_kinds')`);
  await weave.query(`SELECT create_reference_table('kind_totals')`);
  await initParser();
});

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

/** Errors compare by SQLSTATE and message: which of several conflicting rows is met first depends on the order shards are written. */
type Outcome = { ok: true; command: string; rowCount: number | null; fields: string[]; rows: string[] } | { ok: false; code: string; message: string };

async function outcome(c: pg.Client, sql: string, params?: unknown[]): Promise<Outcome> {
  try {
    const r = await c.query({ text: sql, values: params, rowMode: 'array' });
    return { ok: true, command: r.command, rowCount: r.rowCount, fields: r.fields.map((f) => f.name), rows: (r.rows as unknown[][]).map((x) => JSON.stringify(x)).sort() };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { ok: false, code: e.code ?? 'NONE', message: e.message };
  }
}

/** Runs `sql` on both systems: same outcome, then the same contents in every table. */
async function same(sql: string, params?: unknown[], compareTables: boolean | 'unless-failed' = true): Promise<Outcome> {
  const expected = await outcome(reference, sql, params);
  const actual = await outcome(weave, sql, params);
  assert.deepEqual(actual, expected, sql);
  if (compareTables === true || (compareTables === 'unless-failed' && actual.ok)) for (const t of TABLES) assert.deepEqual(await tableRows(weave, t), await tableRows(reference, t), `${t} after: ${sql}`);
  return actual;
}

/** The mode the planner picks for a statement, with the cluster's catalog. */
async function mode(sql: string): Promise<string> {
  const catalog = await loadCatalogFor(cluster);
  const stmt = parseSql(sql).stmts[0].stmt;
  const route = planStatement(stmt, Buffer.from(sql), { catalog, searchPath: ['postgres', 'public'], isCommand: () => false }).route(null);
  if (route.kind === 'insert-select') return route.plan.mode;
  return route.kind;
}

test('loading with INSERT … SELECT of no table (computed on the coordinator)', async () => {
  const sql = `INSERT INTO events SELECT i % 20, i, i % 37, (ARRAY['click','view','buy'])[1 + i % 3], (i % 100) * 1.5,
                 '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute' FROM generate_series(1, 3000) i`;
  assert.equal(await mode(sql), 'coordinator');
  const out = await same(sql);
  assert.equal(out.ok && out.command, 'INSERT');
  assert.equal(out.ok && out.rowCount, 3000);
});

test('pushdown: co-located, shard to shard', async () => {
  const statements = [
    'INSERT INTO events_copy SELECT * FROM events WHERE amount > 10',
    'INSERT INTO rollup SELECT tenant_id, kind, count(*), sum(amount) FROM events GROUP BY tenant_id, kind',
    `INSERT INTO rollup SELECT tenant_id, kind, count(*), sum(amount) FROM events WHERE at < '2024-01-02' GROUP BY 1, 2
       ON CONFLICT (tenant_id, kind) DO UPDATE SET n = rollup.n + EXCLUDED.n, total = rollup.total + EXCLUDED.total`,
    'INSERT INTO events_copy SELECT tenant_id, id + 100000, user_id, kind, amount, at FROM events WHERE id % 500 = 0 RETURNING tenant_id, id, kind',
    `INSERT INTO events_copy (tenant_id, id, user_id, kind, amount, at)
       SELECT e.tenant_id, e.id + 200000, e.user_id, r.label, e.amount, e.at FROM events e JOIN ref_kinds r ON r.kind = e.kind WHERE e.id % 7 = 0`,
    'INSERT INTO events SELECT tenant_id, id + 5000000, user_id, kind, amount, at FROM events WHERE id < 50',
    `INSERT INTO events_copy AS c SELECT e.tenant_id, e.id, e.user_id, e.kind, e.amount, e.at FROM events e JOIN events_copy x USING (tenant_id, id)
       WHERE e.id < 300 ON CONFLICT (tenant_id, id) DO UPDATE SET kind = c.kind || '+' RETURNING c.id, c.kind`,
  ];
  for (const sql of statements) {
    assert.equal(await mode(sql), 'pushdown', sql);
    await same(sql);
  }
  // with parameters (extended protocol)
  await same('INSERT INTO events_copy SELECT tenant_id, id + $1, user_id, kind, amount, at FROM events WHERE tenant_id = $2', [700000, 3]);
});

test('repartition: rows change shards', async () => {
  const statements = [
    'INSERT INTO by_user SELECT user_id, id, tenant_id, kind FROM events',
    `INSERT INTO by_user (user_id, id, tenant_id, kind) SELECT user_id, id + 1000000, tenant_id, 'lit' FROM events WHERE kind = 'buy'`,
    `INSERT INTO by_user SELECT user_id, id, tenant_id, 'dup' FROM events WHERE id % 10 = 0
       ON CONFLICT (user_id, id) DO UPDATE SET kind = EXCLUDED.kind || '!' RETURNING user_id, id, kind`,
    'INSERT INTO other SELECT id, kind, tenant_id FROM events',
    'INSERT INTO other (k, v) SELECT e.id + 10000, r.label FROM events e JOIN ref_kinds r USING (kind) WHERE e.amount > 100',
    'INSERT INTO events_copy SELECT user_id, id + 400000, tenant_id, kind, amount, at FROM events WHERE id % 3 = 0',
  ];
  for (const sql of statements) {
    assert.equal(await mode(sql), 'repartition', sql);
    await same(sql);
  }
});

test('through the coordinator: a merge step, sequences, reference targets', async () => {
  const statements = [
    'INSERT INTO kind_totals SELECT kind, count(*) FROM events GROUP BY kind',
    'INSERT INTO events_copy SELECT tenant_id, id + 300000, user_id, kind, amount, at FROM events ORDER BY id LIMIT 100',
    `INSERT INTO rollup SELECT tenant_id % 5, 'all', count(*), sum(amount) FROM events GROUP BY 1
       ON CONFLICT (tenant_id, kind) DO UPDATE SET n = EXCLUDED.n RETURNING *`,
    'INSERT INTO by_user SELECT user_id, id + 2000000, tenant_id, (rank() OVER (PARTITION BY tenant_id ORDER BY id))::text FROM events WHERE id < 200',
    'INSERT INTO seq_target (tenant_id, kind) SELECT tenant_id, kind FROM events WHERE id <= 100 ORDER BY id',
    'INSERT INTO other SELECT DISTINCT user_id + 100000, kind FROM events',
    'INSERT INTO events_copy SELECT tenant_id, id + 800000, user_id, kind, amount, at FROM events WHERE id IN (SELECT k FROM other WHERE k < 40)',
  ];
  for (const sql of statements) {
    assert.equal(await mode(sql), 'coordinator', sql);
    await same(sql);
  }
  // pushdown-shaped, but the target's left-out id comes from a sequence: the coordinator computes it
  const seq = 'INSERT INTO seq_target (tenant_id, kind) SELECT tenant_id, kind FROM events WHERE id > 2990';
  assert.equal(await mode(seq), 'pushdown');
  const a = await outcome(weave, seq);
  const e = await outcome(reference, seq);
  assert.deepEqual(a, e);
  const summary = 'SELECT count(*), count(DISTINCT id), min(id), max(id), sum(tenant_id) FROM seq_target';
  assert.deepEqual((await weave.query(summary)).rows, (await reference.query(summary)).rows);
  // which row got which id follows the order rows were read in: set those rows aside on both
  await same('DELETE FROM seq_target WHERE id > 100');
  assert.equal((await weave.query(`SELECT nextval('seq_target_id_seq')`)).rows[0].nextval, (await reference.query(`SELECT nextval('seq_target_id_seq')`)).rows[0].nextval);
  // INSERT INTO a coordinator table
  await same('INSERT INTO local_summary SELECT tenant_id, count(*) FROM events GROUP BY tenant_id');
});

test('errors: the same as PostgreSQL, and nothing of a failed statement remains', async () => {
  for (const sql of [
    'INSERT INTO events SELECT * FROM events_copy WHERE id < 10',
    `INSERT INTO rollup SELECT tenant_id, kind, 'x', amount FROM events`,
    'INSERT INTO rollup (tenant_id) SELECT tenant_id, kind FROM events',
    'INSERT INTO rollup (tenant_id, kind) SELECT tenant_id, kind FROM events GROUP BY 1, 2 LIMIT 3',
    'INSERT INTO other SELECT id + 7000000, kind, (id * 100)::smallint FROM events',
    'INSERT INTO by_user SELECT user_id, id % 5, tenant_id, kind FROM events',
    'INSERT INTO events_copy SELECT tenant_id, id, user_id, kind, amount / (id - 1500), at FROM events',
    'INSERT INTO nonexistent SELECT * FROM events',
    'INSERT INTO events (tenant_id, nope) SELECT tenant_id, id FROM events',
  ]) {
    const out = await same(sql);
    assert.equal(out.ok, false, sql);
  }
});

test('inside transaction blocks', async () => {
  const script = [
    'BEGIN',
    'INSERT INTO by_user SELECT user_id, id + 3000000, tenant_id, kind FROM events WHERE id < 500',
    'SELECT count(*) FROM by_user',
    'ROLLBACK',
    'BEGIN',
    `INSERT INTO rollup SELECT tenant_id + 100, kind, count(*), sum(amount) FROM events GROUP BY 1, 2`,
    'INSERT INTO kind_totals SELECT kind || \'-2\', count(*) FROM events GROUP BY kind',
    'INSERT INTO other SELECT id + 900000, kind FROM events WHERE id < 100',
    'COMMIT',
    'BEGIN',
    'INSERT INTO other SELECT id + 950000, kind FROM events WHERE id < 100',
    'INSERT INTO other SELECT id + 950000, kind FROM events WHERE id < 5',
    'SELECT 1',
    'COMMIT',
  ];
  // tables compare where the block is not failed (in a failed block nothing can be read)
  let failed = false;
  for (const sql of script) {
    const end = /^(COMMIT|ROLLBACK)/.test(sql);
    const out = await same(sql, undefined, end ? true : failed ? false : 'unless-failed');
    if (!out.ok) failed = true;
    if (/^(COMMIT|ROLLBACK)/.test(sql)) failed = false;
  }
});

test('EXPLAIN names the INSERT … SELECT method, as Citus does', async () => {
  const cases: Array<[string, string]> = [
    ['INSERT INTO events_copy SELECT * FROM events WHERE amount > 10', 'pushdown'],
    ['INSERT INTO by_user SELECT user_id, id, tenant_id, kind FROM events', 'repartition'],
    ['INSERT INTO kind_totals SELECT kind, count(*) FROM events GROUP BY kind', 'pull to coordinator'],
  ];
  for (const [sql, method] of cases) {
    const lines = (await weave.query({ text: `EXPLAIN (COSTS OFF) ${sql}`, rowMode: 'array' })).rows.map((r) => String((r as unknown[])[0]));
    assert.equal(lines[0], 'Custom Scan (Citus INSERT ... SELECT)', sql);
    assert.ok(lines.includes(`  INSERT/SELECT method: ${method}`), `${sql}: ${lines.join('\n')}`);
  }
});

test('repartition runs worker to worker: no temporary table on the coordinator, no staging table left, NULL keys refused', async () => {
  const coordinatorPg = await textClient(`postgres://postgres:${encodeURIComponent(cluster.password)}@${cluster.coordinatorPg.host}:${cluster.coordinatorPg.port}/postgres`);
  const workers = await Promise.all(cluster.workers.map((w) => textClient(`postgres://postgres:${encodeURIComponent(cluster.password)}@${w.host}:${w.port}/postgres`)));
  let mover: pg.Client | null = null;
  try {
    await weave.query(`CREATE ROLE mover LOGIN PASSWORD 'mover-secret'`);
    await weave.query('GRANT SELECT ON events TO mover; GRANT SELECT, INSERT, UPDATE ON by_user TO mover; GRANT CREATE ON SCHEMA public TO mover');
    // The coordinator gathers rows in temporary tables; a role that may not create any can only repartition on the workers.
    await coordinatorPg.query('REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC');
    mover = await textClient(cluster.url.replace(/\/\/[^@]*@/, '//mover:mover-secret@'));
    const statements = [
      'INSERT INTO by_user SELECT user_id, id + 6000000, tenant_id, kind FROM events WHERE id < 900',
      `INSERT INTO by_user SELECT user_id, id + 6000000, tenant_id, 'again' FROM events WHERE id < 300
         ON CONFLICT (user_id, id) DO UPDATE SET kind = EXCLUDED.kind RETURNING user_id, id, kind`,
    ];
    for (const sql of statements) {
      assert.equal(await mode(sql), 'repartition', sql);
      assert.deepEqual(await outcome(mover, sql), await outcome(reference, sql), sql);
      assert.deepEqual(await tableRows(weave, 'by_user'), await tableRows(reference, 'by_user'), sql);
    }
    const nulls = await outcome(weave, 'INSERT INTO other SELECT NULLIF(id, id), kind FROM events WHERE id < 20');
    assert.deepEqual(nulls, { ok: false, code: '23502', message: 'cannot perform an INSERT with NULL in the partition column' });
    assert.deepEqual(await tableRows(weave, 'other'), await tableRows(reference, 'other'));
    for (const w of workers) {
      const left = await w.query(`SELECT relname FROM pg_class WHERE relname LIKE 'pgweave_repartition%'`);
      assert.deepEqual(left.rows, []);
    }
  } finally {
    await coordinatorPg.query('GRANT TEMPORARY ON DATABASE postgres TO PUBLIC');
    await mover?.end().catch(() => {});
    await coordinatorPg.end().catch(() => {});
    for (const w of workers) await w.end().catch(() => {});
  }
});
