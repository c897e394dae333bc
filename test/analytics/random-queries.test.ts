/**
 * Differential random-query test of multi-shard SELECTs: a small schema with
 * NULLs (customers and purchases co-located by cid, items distributed by
 * item with another shard count, regions a reference table — see
 * query-generator.ts) loaded into a pgweave cluster (2 workers) and into one
 * plain PostgreSQL; a seeded generator produces SELECTs (joins on any
 * columns, outer joins, aggregates, GROUP BY/HAVING, DISTINCT, ORDER BY +
 * LIMIT/OFFSET, IN/EXISTS/scalar/correlated subqueries, CTEs, derived tables,
 * window functions, set operations, distribution-column filters) that run on
 * both. No result may differ; an error pgweave gives where PostgreSQL gave
 * none must be SQLSTATE 0A000 (counted and listed). A divergence is recorded
 * and the run goes on, so one run lists every kind of wrong result.
 *
 * PGWEAVE_RANDOM_QUERIES (default 300) and PGWEAVE_RANDOM_SEED choose the
 * run; PGWEAVE_RANDOM_LOG=FILE appends every divergence's SQL to FILE.
 *
 * Before the random run, hand-written statements pin down shapes where the
 * router and multi-shard planners once answered wrongly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { compareResults, runQuery, textClient } from './support.js';
import { QueryGenerator, RANDOM_SCHEMA_DDL, RANDOM_SCHEMA_DISTRIBUTE, randomSchemaData, Rng } from './query-generator.js';

const COUNT = Number(process.env.PGWEAVE_RANDOM_QUERIES ?? '300');
const SEED = Number(process.env.PGWEAVE_RANDOM_SEED ?? '5150');
const LOG = process.env.PGWEAVE_RANDOM_LOG ?? null;
/** Results larger than this are not compared (the generator's rare cross products). */
const MAX_ROWS = 20_000;

let cluster: TestCluster | undefined;
let plain: TestPostgres | undefined;
let weave: pg.Client;
let reference: pg.Client;

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url, 'random-queries');
  reference = await textClient(plain.url, 'random-queries');
  for (const w of cluster.workers) await weave.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  for (const c of [weave, reference]) {
    for (const ddl of RANDOM_SCHEMA_DDL) await c.query(ddl);
    for (const ins of randomSchemaData(SEED)) await c.query(ins);
  }
  for (const d of RANDOM_SCHEMA_DISTRIBUTE) await weave.query(d);
  await reference.query('ANALYZE');
  // PostgreSQL bounds the generator's rare runaway statement; pgweave is bounded by runQuery's timeout.
  await reference.query(`SET statement_timeout = '10s'`);
}, { timeout: 300_000 });

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

/** Runs one statement on both systems; returns a description of the divergence, or null. */
async function differential(sql: string, ordered: boolean): Promise<{ diff: string | null; unsupported: string | null; skipped: boolean; bothFailed: boolean }> {
  const expected = await runQuery(reference, sql, 30_000);
  if (!expected.ok && expected.code === '57014') return { diff: null, unsupported: null, skipped: true, bothFailed: false };
  if (expected.ok && expected.result.rows.length > MAX_ROWS) return { diff: null, unsupported: null, skipped: true, bothFailed: false };
  const actual = await runQuery(weave, sql, 60_000);
  if (!actual.ok && actual.timedOut) return { diff: `pgweave gave no answer within 60 s (PostgreSQL: ${expected.ok ? `${expected.result.rows.length} rows` : expected.code})`, unsupported: null, skipped: false, bothFailed: false };
  if (!expected.ok) {
    if (!actual.ok && actual.code === expected.code) return { diff: null, unsupported: null, skipped: false, bothFailed: true };
    return { diff: `PostgreSQL: error ${expected.code} ${expected.message}; pgweave: ${actual.ok ? `${actual.result.rows.length} rows` : `error ${actual.code} ${actual.message}`}`, unsupported: null, skipped: false, bothFailed: false };
  }
  if (!actual.ok) {
    if (actual.code === '0A000') return { diff: null, unsupported: actual.message, skipped: false, bothFailed: false };
    return { diff: `pgweave: error ${actual.code} ${actual.message}; PostgreSQL: ${expected.result.rows.length} rows`, unsupported: null, skipped: false, bothFailed: false };
  }
  return { diff: compareResults(expected.result, actual.result, ordered ? 'total' : 'none'), unsupported: null, skipped: false, bothFailed: false };
}

/** The planner EXPLAIN names for a statement (the first word of its `Planner:` line), or the error's SQLSTATE. */
async function plannerOf(sql: string): Promise<string> {
  const r = await runQuery(weave, `EXPLAIN (COSTS OFF) ${sql}`, 60_000);
  if (!r.ok) return `error ${r.code}`;
  const line = r.result.rows.map((x) => x[0] ?? '').find((l) => l.startsWith('  Planner: '));
  return line ? line.slice('  Planner: '.length).split(' ')[0]! : 'none';
}

/**
 * Shapes the router and multi-shard planners must not answer from a subset
 * of the shards (each once returned wrong rows): equalities that only hold
 * inside an outer join's ON or a subquery, reference tables on the preserved
 * side of an outer join or outside a semi/anti join with a distributed
 * table, an alias reused inside a subquery for another table, a CTE joined
 * with itself, one table name in two subqueries.
 */
const KNOWN_SHAPES: Array<{ name: string; sql: string }> = [
  { name: 'reference table LEFT JOIN distributed table', sql: `SELECT r.region, c.cid FROM regions r LEFT JOIN customers c ON c.region = r.region` },
  { name: 'distributed table RIGHT JOIN reference table', sql: `SELECT r.region, c.cid FROM customers c RIGHT JOIN regions r ON c.region = r.region` },
  { name: 'reference table IN (distributed subquery)', sql: `SELECT r.region FROM regions r WHERE r.region IN (SELECT c.region FROM customers c)` },
  { name: 'reference table NOT EXISTS (distributed subquery)', sql: `SELECT r.region FROM regions r WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.region = r.region)` },
  { name: 'distribution column = constant inside LEFT JOIN … ON', sql: `SELECT c.cid, p.pid FROM customers c LEFT JOIN purchases p ON c.cid = p.cid AND p.cid = 5` },
  { name: 'distribution column = constant inside NOT EXISTS', sql: `SELECT c.cid FROM customers c WHERE NOT EXISTS (SELECT 1 FROM purchases p WHERE p.cid = c.cid AND c.cid = 5)` },
  { name: 'distribution column = constant inside an OR-ed EXISTS', sql: `SELECT c.cid FROM customers c WHERE c.tier = 1 OR EXISTS (SELECT 1 FROM purchases p WHERE p.cid = c.cid AND p.cid = 7)` },
  { name: 'alias reused inside a subquery for another table', sql: `SELECT c.cid, (SELECT count(*) FROM purchases c) AS n FROM customers c WHERE c.cid = 5` },
  { name: 'a CTE on a distributed table joined with itself', sql: `WITH w AS (SELECT cid, tier FROM customers) SELECT a.cid, b.cid FROM w a RIGHT JOIN w b ON a.tier = b.tier` },
  { name: 'one table in two derived tables without aliases', sql: `SELECT x.cid, y.cid FROM (SELECT cid, tier FROM customers) x JOIN (SELECT cid, tier FROM customers) y ON x.tier = y.tier` },
  { name: 'co-location equality inside NOT EXISTS', sql: `SELECT c.cid, p.pid FROM customers c, purchases p WHERE NOT EXISTS (SELECT 1 WHERE c.cid = p.cid) AND c.cid < 4 AND p.pid < 6` },
];

for (const shape of KNOWN_SHAPES) {
  test(`known shape: ${shape.name}`, async () => {
    const r = await differential(shape.sql, false);
    assert.equal(r.diff, null, `${shape.sql}\n  ${r.diff}`);
  });
}

test(`${COUNT} random SELECTs return what PostgreSQL returns`, { timeout: Math.max(600_000, COUNT * 3_000) }, async (t) => {
  const gen = new QueryGenerator(new Rng(SEED));
  const diffs: string[] = [];
  const unsupported = new Map<string, number>();
  const features = new Map<string, number>();
  const planners = new Map<string, number>();
  let compared = 0;
  let skipped = 0;
  let bothFailed = 0;
  let unsupportedCount = 0;
  const started = performance.now();
  for (let i = 0; i < COUNT; i++) {
    const q = gen.generate();
    for (const f of q.features) features.set(f, (features.get(f) ?? 0) + 1);
    const r = await differential(q.sql, q.ordered);
    if (q.features.has('pushdown shape')) {
      const planner = await plannerOf(q.sql);
      planners.set(planner, (planners.get(planner) ?? 0) + 1);
    }
    if (r.skipped) {
      skipped++;
      continue;
    }
    compared++;
    if (r.bothFailed) bothFailed++;
    if (r.unsupported) {
      unsupportedCount++;
      unsupported.set(r.unsupported, (unsupported.get(r.unsupported) ?? 0) + 1);
    }
    if (r.diff) {
      const entry = `#${i}: ${q.sql}\n    ${r.diff}`;
      diffs.push(entry);
      if (LOG) appendFileSync(LOG, entry + '\n\n');
    }
  }
  t.diagnostic(`${COUNT} statements (seed ${SEED}) in ${((performance.now() - started) / 1000).toFixed(1)} s: ${compared} compared, ${skipped} skipped (PostgreSQL timeout or > ${MAX_ROWS} rows), ${bothFailed} failed alike on both, ${unsupportedCount} unsupported on pgweave (0A000), ${diffs.length} divergent`);
  for (const [msg, n] of unsupported) t.diagnostic(`0A000 ×${n}: ${msg}`);
  t.diagnostic(`features: ${[...features].sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f} ${n}`).join(', ')}`);
  t.diagnostic(`planners of the ${features.get('pushdown shape') ?? 0} dashboard-shaped statements: ${[...planners].sort((a, b) => b[1] - a[1]).map(([p, n]) => `${p} ${n}`).join(', ')}`);
  for (const d of diffs.slice(0, 15)) t.diagnostic(d);
  const pushedDown = (planners.get('aggregate-pushdown') ?? 0) + (planners.get('grouped-pushdown') ?? 0) + (planners.get('order-limit-pushdown') ?? 0);
  assert.ok(COUNT < 100 || pushedDown > 0, 'no dashboard-shaped statement took a pushdown planner');
  assert.equal(diffs.length, 0, `${diffs.length} of ${compared} statements differ from PostgreSQL; first:\n${diffs.slice(0, 5).join('\n')}`);
});
