/**
 * Differential test of router and fast-path queries: one multi-tenant schema
 * (companies, campaigns, ads, clicks co-located by company_id; countries and
 * ad_formats as reference tables) loaded into a pgweave cluster (2 workers,
 * 8 shards) and into one plain PostgreSQL, then hundreds of statements
 * generated from a seeded PRNG run on both and their results compared:
 * command tags, row counts, column names and types, and every value as
 * PostgreSQL's text (so numeric precision must match exactly). Rows compare
 * in order where the statement's ORDER BY defines it, as sets otherwise;
 * errors compare by SQLSTATE.
 *
 * The statements cover what multi-tenant applications send: joins with
 * co-located and reference tables, aggregates, GROUP BY/HAVING, ORDER BY/
 * LIMIT, CTEs, window functions, subqueries, RETURNING, ON CONFLICT, writes by
 * key, multi-row INSERTs within and across tenants, transaction blocks over
 * tenants on both workers (commit, rollback, savepoints, errors), prepared
 * statements through node-postgres (unnamed and named, shard chosen at Bind)
 * and the simple protocol — plus multi-shard reads and writes with no tenant
 * filter. A divergence is recorded and the run goes on, so one run lists
 * every kind of wrong result; the test fails if there is any.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { SessionBase } from '../../src/session/session-base.js';
import type { StatementPlan } from '../../src/planner/plan-statement.js';
import { addWorkers, difference, nodeOfKeys, prng, runStatement, textClient, type Statement } from './support.js';

/** PGWEAVE_ROUTER_SEED and PGWEAVE_ROUTER_SCALE (rounds multiplier) choose another run when hunting. */
const SEED = Number(process.env.PGWEAVE_ROUTER_SEED ?? '20240917');
const SCALE = Number(process.env.PGWEAVE_ROUTER_SCALE ?? '1');
const TENANTS = 40;

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;

const SCHEMA = `
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL, region text NOT NULL);
CREATE TABLE ad_formats (id int PRIMARY KEY, name text NOT NULL, cost_factor numeric(6,3) NOT NULL);
CREATE TABLE companies (
  company_id bigint PRIMARY KEY,
  name text NOT NULL,
  country text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00',
  budget numeric(12,2) NOT NULL DEFAULT 0
);
CREATE TABLE campaigns (
  company_id bigint NOT NULL,
  id bigint NOT NULL,
  name text NOT NULL,
  state text NOT NULL CHECK (state IN ('active', 'paused', 'ended')),
  budget numeric(12,2),
  PRIMARY KEY (company_id, id)
);
CREATE TABLE ads (
  company_id bigint NOT NULL,
  id bigint NOT NULL,
  campaign_id bigint NOT NULL,
  format_id int NOT NULL,
  title text NOT NULL,
  impressions bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (company_id, id)
);
CREATE TABLE clicks (
  company_id bigint NOT NULL,
  id bigint NOT NULL,
  ad_id bigint NOT NULL,
  clicked_at timestamptz NOT NULL,
  cost numeric(10,4) NOT NULL,
  country text,
  PRIMARY KEY (company_id, id)
);
CREATE INDEX clicks_ad_idx ON clicks (company_id, ad_id);
`;

const DISTRIBUTE = [
  `SELECT create_reference_table('countries')`,
  `SELECT create_reference_table('ad_formats')`,
  `SELECT create_distributed_table('companies', 'company_id', shard_count => 8)`,
  `SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies')`,
  `SELECT create_distributed_table('ads', 'company_id', colocate_with => 'companies')`,
  `SELECT create_distributed_table('clicks', 'company_id', colocate_with => 'companies')`,
];

const COUNTRIES = ['DE', 'FR', 'US', 'JP', 'BR', 'IN'];
const STATES = ['active', 'paused', 'ended'];

// ---- the data model the generator draws keys from -------------------------------

const rnd = prng(SEED);
const campaignsOf = new Map<number, number[]>();
const adsOf = new Map<number, number[]>();
const clicksOf = new Map<number, number[]>();
const tenants: number[] = [];
/** Worker port of each tenant's shard group. */
let nodeOf = new Map<number, number>();
let nextCampaign = 1000;
let nextAd = 5000;
let nextClick = 100_000;
let nextTenant = TENANTS + 1;

function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
function money(): string {
  return `${rnd.int(0, 9)}.${String(rnd.int(0, 9999)).padStart(4, '0')}`;
}
function timestamp(): string {
  const day = rnd.int(1, 28);
  const minute = rnd.int(0, 24 * 60 - 1);
  return `2024-03-${String(day).padStart(2, '0')} ${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}:00+00`;
}
function tenant(): number {
  return rnd.pick(tenants);
}
function adOf(t: number): number {
  const ads = adsOf.get(t) ?? [];
  return ads.length > 0 ? rnd.pick(ads) : 1;
}
function campaignOf(t: number): number {
  const cs = campaignsOf.get(t) ?? [];
  return cs.length > 0 ? rnd.pick(cs) : 1;
}
function clickOf(t: number): number {
  const cs = clicksOf.get(t) ?? [];
  return cs.length > 0 ? rnd.pick(cs) : 1;
}
/** A tenant whose shard group is on the other worker than t's. */
function tenantElsewhere(t: number): number {
  const others = tenants.filter((x) => nodeOf.get(x) !== undefined && nodeOf.get(x) !== nodeOf.get(t));
  return others.length > 0 ? rnd.pick(others) : tenant();
}
function push(map: Map<number, number[]>, t: number, id: number): void {
  const list = map.get(t) ?? [];
  list.push(id);
  map.set(t, list);
}
function clickRow(t: number, id: number, ad: number): string {
  const country = rnd.chance(0.15) ? 'NULL' : lit(rnd.pick(COUNTRIES));
  return `(${t}, ${id}, ${ad}, ${lit(timestamp())}, ${money()}, ${country})`;
}

/** INSERT statements holding the initial data set (run before distributing). */
function initialData(): string[] {
  const out: string[] = [
    `INSERT INTO countries VALUES ('DE','Germany','EU'),('FR','France','EU'),('US','United States','NA'),('JP','Japan','APAC'),('BR','Brazil','LATAM'),('IN','India','APAC')`,
    `INSERT INTO ad_formats VALUES (1,'banner',1.000),(2,'video',2.500),(3,'text',0.400),(4,'native',1.250)`,
  ];
  const companies: string[] = [];
  const campaigns: string[] = [];
  const ads: string[] = [];
  const clicks: string[] = [];
  for (let t = 1; t <= TENANTS; t++) {
    tenants.push(t);
    companies.push(`(${t}, ${lit(`company ${t}`)}, ${lit(rnd.pick(COUNTRIES))}, ${lit(`2023-0${rnd.int(1, 9)}-1${rnd.int(0, 9)} 12:00:00+00`)}, ${rnd.int(0, 100000)}.${rnd.int(10, 99)})`);
    for (let c = rnd.int(1, 4); c > 0; c--) {
      const cid = nextCampaign++;
      push(campaignsOf, t, cid);
      const budget = rnd.chance(0.2) ? 'NULL' : `${rnd.int(100, 5000)}.00`;
      campaigns.push(`(${t}, ${cid}, ${lit(`campaign ${cid}`)}, ${lit(rnd.pick(STATES))}, ${budget})`);
      for (let a = rnd.int(1, 3); a > 0; a--) {
        const aid = nextAd++;
        push(adsOf, t, aid);
        ads.push(`(${t}, ${aid}, ${cid}, ${rnd.int(1, 4)}, ${lit(`ad ${aid}`)}, ${rnd.int(0, 50000)})`);
        for (let k = rnd.int(0, 12); k > 0; k--) {
          const id = nextClick++;
          push(clicksOf, t, id);
          clicks.push(clickRow(t, id, aid));
        }
      }
    }
  }
  const batches = (table: string, cols: string, rows: string[]) => {
    for (let i = 0; i < rows.length; i += 400) out.push(`INSERT INTO ${table} ${cols} VALUES ${rows.slice(i, i + 400).join(', ')}`);
  };
  batches('companies', '(company_id, name, country, created_at, budget)', companies);
  batches('campaigns', '(company_id, id, name, state, budget)', campaigns);
  batches('ads', '(company_id, id, campaign_id, format_id, title, impressions)', ads);
  batches('clicks', '(company_id, id, ad_id, clicked_at, cost, country)', clicks);
  return out;
}

// ---- statement generators ---------------------------------------------------------

type Gen = () => Statement[];
const one = (kind: string, sql: string, ordered = false): Statement[] => [{ kind, sql, ordered }];

/** Router reads: everything pinned to one tenant's shard group. */
const READS: Gen[] = [
  () => one('fast-path select', `SELECT * FROM companies WHERE company_id = ${tenant()}`),
  () => one('fast-path select', `SELECT id, name, state, budget FROM campaigns WHERE company_id = ${tenant()} ORDER BY id`, true),
  () => one('fast-path select', `SELECT * FROM clicks WHERE company_id = ${tenant()} AND ad_id = ${adOf(tenant())}`),
  () => {
    const t = tenant();
    return one('fast-path select', `SELECT * FROM clicks WHERE company_id = ${t} AND id = ${clickOf(t)}`);
  },
  () => {
    const t = tenant();
    return one('fast-path select', `SELECT count(*) FROM clicks WHERE company_id IN (${t}, ${t})`);
  },
  () => one('reference join', `SELECT c.name, co.name AS country_name, co.region FROM companies c JOIN countries co ON co.code = c.country WHERE c.company_id = ${tenant()}`),
  () =>
    one(
      'reference join',
      `SELECT a.id, a.title, f.name, a.impressions * f.cost_factor AS weighted FROM ads a JOIN ad_formats f ON f.id = a.format_id WHERE a.company_id = ${tenant()} ORDER BY a.id`,
      true,
    ),
  () => {
    const t = tenant();
    return one(
      'co-located join',
      `SELECT ca.name, a.title, count(cl.id) AS clicks, sum(cl.cost) AS cost
         FROM campaigns ca
         JOIN ads a ON a.company_id = ca.company_id AND a.campaign_id = ca.id
         LEFT JOIN clicks cl ON cl.company_id = a.company_id AND cl.ad_id = a.id
        WHERE ca.company_id = ${t}
        GROUP BY ca.name, a.title`,
    );
  },
  () =>
    one(
      'co-located join',
      `SELECT c.name, ca.state, count(*) FROM companies c JOIN campaigns ca USING (company_id) WHERE c.company_id = ${tenant()} GROUP BY c.name, ca.state`,
    ),
  () => {
    const t = tenant();
    return one(
      'co-located join',
      `SELECT cl.id, a.title, co.region FROM clicks cl JOIN ads a ON a.company_id = cl.company_id AND a.id = cl.ad_id LEFT JOIN countries co ON co.code = cl.country WHERE cl.company_id = ${t} AND cl.cost > ${money()}`,
    );
  },
  () =>
    one(
      'aggregate',
      `SELECT count(*), sum(cost), avg(cost), min(clicked_at), max(cost), count(DISTINCT ad_id), string_agg(id::text, ',' ORDER BY id) FROM clicks WHERE company_id = ${tenant()}`,
    ),
  () =>
    one(
      'aggregate',
      `SELECT count(*) FILTER (WHERE country IS NULL) AS no_country, sum(CASE WHEN cost > 5 THEN 1 ELSE 0 END) AS expensive, coalesce(stddev(cost), 0) FROM clicks WHERE company_id = ${tenant()}`,
    ),
  () =>
    one(
      'group by / having',
      `SELECT ad_id, count(*) AS n, round(avg(cost), 3) AS avg_cost FROM clicks WHERE company_id = ${tenant()} GROUP BY ad_id HAVING count(*) > ${rnd.int(0, 6)} ORDER BY n DESC, ad_id`,
      true,
    ),
  () =>
    one(
      'group by / having',
      `SELECT date_trunc('week', clicked_at) AS week, country, sum(cost) FROM clicks WHERE company_id = ${tenant()} GROUP BY ROLLUP (1, 2)`,
    ),
  () =>
    one(
      'order by / limit',
      `SELECT id, ad_id, cost FROM clicks WHERE company_id = ${tenant()} ORDER BY cost DESC, id LIMIT ${rnd.int(1, 8)} OFFSET ${rnd.int(0, 3)}`,
      true,
    ),
  () => one('order by / limit', `SELECT DISTINCT country FROM clicks WHERE company_id = ${tenant()} ORDER BY country NULLS FIRST`, true),
  () => {
    const t = tenant();
    return one(
      'cte',
      `WITH spend AS (SELECT ad_id, sum(cost) AS total FROM clicks WHERE company_id = ${t} GROUP BY ad_id)
       SELECT a.id, a.title, spend.total FROM ads a JOIN spend ON spend.ad_id = a.id WHERE a.company_id = ${t} ORDER BY spend.total DESC, a.id`,
      true,
    );
  },
  () => {
    const t = tenant();
    return one(
      'cte',
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5),
            c AS MATERIALIZED (SELECT id, cost FROM clicks WHERE company_id = ${t})
       SELECT n.i, count(c.id) FROM n LEFT JOIN c ON c.cost >= n.i GROUP BY n.i ORDER BY n.i`,
      true,
    );
  },
  () =>
    one(
      'window function',
      `SELECT id, ad_id, cost, rank() OVER (PARTITION BY ad_id ORDER BY cost DESC, id) AS r, sum(cost) OVER (PARTITION BY ad_id) AS ad_total FROM clicks WHERE company_id = ${tenant()} ORDER BY ad_id, r`,
      true,
    ),
  () =>
    one(
      'window function',
      `SELECT id, clicked_at, cost, sum(cost) OVER w AS running, lag(cost) OVER w AS previous FROM clicks WHERE company_id = ${tenant()} WINDOW w AS (ORDER BY clicked_at, id) ORDER BY clicked_at, id`,
      true,
    ),
  () => {
    const t = tenant();
    return one('subquery', `SELECT id, title FROM ads WHERE company_id = ${t} AND id IN (SELECT ad_id FROM clicks WHERE company_id = ${t} AND cost > ${money()})`);
  },
  () =>
    one(
      'subquery',
      `SELECT ca.id, ca.name FROM campaigns ca WHERE ca.company_id = ${tenant()} AND NOT EXISTS (SELECT 1 FROM ads a WHERE a.company_id = ca.company_id AND a.campaign_id = ca.id AND a.impressions > ${rnd.int(0, 40000)})`,
    ),
  () =>
    one(
      'subquery',
      `SELECT a.id, (SELECT count(*) FROM clicks cl WHERE cl.company_id = a.company_id AND cl.ad_id = a.id) AS clicks FROM ads a WHERE a.company_id = ${tenant()}`,
    ),
  () => one('subquery', `SELECT sub.state, count(*), max(sub.budget) FROM (SELECT * FROM campaigns WHERE company_id = ${tenant()}) sub GROUP BY sub.state`),
  () =>
    one(
      'subquery',
      `SELECT a.id, top.cost FROM ads a CROSS JOIN LATERAL (SELECT cost FROM clicks cl WHERE cl.company_id = a.company_id AND cl.ad_id = a.id ORDER BY cost DESC, id LIMIT 1) top WHERE a.company_id = ${tenant()}`,
    ),
  () => {
    const t = tenant();
    return one('set operation', `SELECT country FROM clicks WHERE company_id = ${t} UNION SELECT country FROM companies WHERE company_id = ${t}`);
  },
  () => {
    const t = tenant();
    return one('set operation', `SELECT ad_id FROM clicks WHERE company_id = ${t} EXCEPT ALL SELECT id FROM ads WHERE company_id = ${t} AND format_id = ${rnd.int(1, 4)}`);
  },
  () => {
    const t = tenant();
    return one(
      'json',
      `SELECT json_agg(json_build_object('id', id, 'cost', cost) ORDER BY id) FROM clicks WHERE company_id = ${t} AND ad_id = ${adOf(t)}`,
    );
  },
  () => one('reference read', `SELECT * FROM ad_formats ORDER BY id`, true),
  () => one('reference read', `SELECT region, count(*), string_agg(code, ',' ORDER BY code) FROM countries GROUP BY region`),
];

/** Router writes: one tenant (or one row set of several tenants for multi-row INSERT). */
const WRITES: Gen[] = [
  () => {
    const t = tenant();
    return one('update by key', `UPDATE ads SET impressions = impressions + ${rnd.int(1, 100)} WHERE company_id = ${t} AND id = ${adOf(t)} RETURNING id, impressions`);
  },
  () => one('update by key', `UPDATE clicks SET cost = cost * 2 WHERE company_id = ${tenant()} AND cost < ${money()}`),
  () => one('update by key', `UPDATE campaigns SET state = ${lit(rnd.pick(STATES))}, budget = budget + 10 WHERE company_id = ${tenant()} RETURNING *`),
  () => {
    const t = tenant();
    return one(
      'update by key',
      `UPDATE campaigns SET budget = (SELECT coalesce(sum(cost), 0) FROM clicks WHERE company_id = ${t}) WHERE company_id = ${t} AND id = ${campaignOf(t)} RETURNING id, budget`,
    );
  },
  () => {
    const t = tenant();
    return one(
      'update by key',
      `UPDATE ads a SET impressions = a.impressions + 1 FROM campaigns ca WHERE ca.company_id = a.company_id AND ca.id = a.campaign_id AND a.company_id = ${t} AND ca.state = 'active' RETURNING a.id, a.impressions`,
    );
  },
  () => {
    const t = tenant();
    return one('delete by key', `DELETE FROM clicks WHERE company_id = ${t} AND id = ${clickOf(t)} RETURNING *`);
  },
  () => {
    const t = tenant();
    return one('delete by key', `DELETE FROM clicks cl USING ads a WHERE a.company_id = cl.company_id AND a.id = cl.ad_id AND cl.company_id = ${t} AND a.format_id = ${rnd.int(1, 4)} AND cl.cost > 9`);
  },
  () => {
    const t = tenant();
    const id = nextClick++;
    push(clicksOf, t, id);
    return one('insert', `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost, country) VALUES ${clickRow(t, id, adOf(t))} RETURNING id, cost`);
  },
  () => {
    const t = tenant();
    const rows: string[] = [];
    for (let i = rnd.int(2, 5); i > 0; i--) {
      const id = nextClick++;
      push(clicksOf, t, id);
      rows.push(clickRow(t, id, adOf(t)));
    }
    return one('multi-row insert, one tenant', `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost, country) VALUES ${rows.join(', ')} RETURNING company_id, id`);
  },
  () => {
    const rows: string[] = [];
    for (let i = rnd.int(2, 6); i > 0; i--) {
      const t = tenant();
      const id = nextClick++;
      push(clicksOf, t, id);
      rows.push(clickRow(t, id, adOf(t)));
    }
    return [{ kind: 'multi-row insert, several tenants', sql: `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost, country) VALUES ${rows.join(', ')} RETURNING company_id, id, cost`, multi: true }];
  },
  () => {
    const t = tenant();
    const id = rnd.chance(0.5) ? campaignOf(t) : nextCampaign++;
    push(campaignsOf, t, id);
    return one(
      'on conflict do update',
      `INSERT INTO campaigns AS c (company_id, id, name, state, budget) VALUES (${t}, ${id}, ${lit(`campaign ${id}`)}, ${lit(rnd.pick(STATES))}, ${rnd.int(1, 999)}.50)
         ON CONFLICT (company_id, id) DO UPDATE SET budget = coalesce(c.budget, 0) + EXCLUDED.budget, state = EXCLUDED.state RETURNING *`,
    );
  },
  () => {
    const t = rnd.chance(0.6) ? tenant() : nextTenant;
    if (t === nextTenant) {
      nextTenant++;
      tenants.push(t);
    }
    return one(
      'on conflict do nothing',
      `INSERT INTO companies (company_id, name, country, created_at, budget) VALUES (${t}, ${lit(`company ${t}`)}, ${lit(rnd.pick(COUNTRIES))}, '2024-02-02 02:02:02+00', 77.70) ON CONFLICT DO NOTHING RETURNING company_id, name`,
    );
  },
  () => {
    const t = tenant();
    const id = nextAd++;
    push(adsOf, t, id);
    return one(
      'insert with defaults',
      `INSERT INTO ads (company_id, id, campaign_id, format_id, title) VALUES (${t}, ${id}, ${campaignOf(t)}, ${rnd.int(1, 4)}, ${lit(`ad ${id}`)}) RETURNING *`,
    );
  },
  () => {
    const t = tenant();
    return one('insert (duplicate key)', `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost) VALUES (${t}, ${clickOf(t)}, ${adOf(t)}, '2024-03-03 00:00:00+00', 1)`);
  },
  () => {
    const t = tenant();
    return one(
      'data-modifying cte',
      `WITH moved AS (UPDATE ads SET impressions = 0 WHERE company_id = ${t} AND impressions > ${rnd.int(20000, 50000)} RETURNING id) SELECT count(*) FROM moved`,
    );
  },
];

/** Multi-shard reads and writes: no tenant filter. */
const MULTI_SHARD: Gen[] = ([
  () => one('multi-shard aggregate', `SELECT count(*), sum(cost), avg(cost) FROM clicks`),
  () => one('multi-shard aggregate', `SELECT c.country, count(*), sum(cl.cost) FROM companies c JOIN clicks cl ON cl.company_id = c.company_id GROUP BY c.country`),
  () => one('multi-shard aggregate', `SELECT company_id, count(*) FROM ads GROUP BY company_id ORDER BY count(*) DESC, company_id LIMIT 5`, true),
  () => one('multi-shard aggregate', `SELECT co.region, count(*) FROM clicks cl JOIN countries co ON co.code = cl.country GROUP BY co.region`),
  () => one('multi-shard select', `SELECT company_id, id, name FROM campaigns WHERE state = ${lit(rnd.pick(STATES))}`),
  () => one('multi-shard select', `SELECT a.company_id, a.id FROM ads a JOIN campaigns ca ON ca.company_id = a.company_id AND ca.id = a.campaign_id WHERE ca.state = 'active'`),
  () => {
    const t = tenant();
    return one('multi-shard select', `SELECT count(*) FROM clicks WHERE company_id IN (${t}, ${tenantElsewhere(t)})`);
  },
  () => one('multi-shard select', `SELECT company_id, sum(impressions) FROM ads WHERE impressions > ${rnd.int(0, 40000)} GROUP BY company_id HAVING sum(impressions) > 1000`),
  () => one('multi-shard write', `UPDATE ads SET impressions = impressions + 1 WHERE format_id = ${rnd.int(1, 4)}`),
  () => one('multi-shard write', `DELETE FROM clicks WHERE cost > 9.99`),
  () => one('reference write', `UPDATE ad_formats SET cost_factor = cost_factor + 0.125 WHERE id = ${rnd.int(1, 4)} RETURNING *`),
] as Gen[]).map((g) => () => g().map((s) => ({ ...s, multi: true })));

/** Transaction blocks, several tenants, both workers. */
const TRANSACTIONS: Gen[] = [
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    const a1 = adOf(t1);
    const a2 = adOf(t2);
    return [
      { kind: 'transaction', sql: 'BEGIN' },
      { kind: 'transaction', sql: `UPDATE ads SET impressions = impressions - 10 WHERE company_id = ${t1} AND id = ${a1} RETURNING impressions` },
      { kind: 'transaction', sql: `UPDATE ads SET impressions = impressions + 10 WHERE company_id = ${t2} AND id = ${a2} RETURNING impressions` },
      { kind: 'transaction', sql: `SELECT impressions FROM ads WHERE company_id = ${t1} AND id = ${a1}` },
      { kind: 'transaction', sql: rnd.chance(0.7) ? 'COMMIT' : 'ROLLBACK' },
      { kind: 'transaction', sql: `SELECT id, impressions FROM ads WHERE company_id = ${t2} ORDER BY id`, ordered: true },
    ];
  },
  () => {
    const t = tenant();
    const id = nextClick++;
    push(clicksOf, t, id);
    return [
      { kind: 'transaction', sql: 'BEGIN' },
      { kind: 'transaction', sql: `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost) VALUES (${t}, ${id}, ${adOf(t)}, '2024-03-05 05:00:00+00', 3.3)` },
      { kind: 'transaction', sql: `SELECT count(*), sum(cost) FROM clicks WHERE company_id = ${t}` },
      { kind: 'transaction', sql: 'ROLLBACK' },
      { kind: 'transaction', sql: `SELECT count(*), sum(cost) FROM clicks WHERE company_id = ${t}` },
    ];
  },
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    return [
      { kind: 'transaction', sql: 'BEGIN' },
      { kind: 'transaction', sql: `UPDATE companies SET budget = budget + 1 WHERE company_id = ${t1}` },
      { kind: 'transaction', sql: 'SAVEPOINT s1' },
      { kind: 'transaction', sql: `UPDATE companies SET budget = budget + 100 WHERE company_id = ${t2}` },
      { kind: 'transaction', sql: `DELETE FROM clicks WHERE company_id = ${t1} AND cost < 1` },
      { kind: 'transaction', sql: 'ROLLBACK TO SAVEPOINT s1' },
      { kind: 'transaction', sql: `UPDATE companies SET budget = budget + 1000 WHERE company_id = ${t2} RETURNING budget` },
      { kind: 'transaction', sql: 'COMMIT' },
      { kind: 'transaction', sql: `SELECT company_id, budget FROM companies WHERE company_id = ${t1}` },
      { kind: 'transaction', sql: `SELECT company_id, budget FROM companies WHERE company_id = ${t2}` },
      { kind: 'transaction', sql: `SELECT count(*) FROM clicks WHERE company_id = ${t1}` },
    ];
  },
  () => {
    const t = tenant();
    return [
      { kind: 'transaction', sql: 'BEGIN' },
      { kind: 'transaction', sql: `UPDATE ads SET impressions = impressions + 5 WHERE company_id = ${t}` },
      { kind: 'transaction', sql: `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost) VALUES (${t}, ${clickOf(t)}, 1, '2024-03-03 00:00:00+00', 1)` },
      { kind: 'transaction', sql: `SELECT count(*) FROM ads WHERE company_id = ${t}` },
      { kind: 'transaction', sql: 'COMMIT' },
      { kind: 'transaction', sql: `SELECT sum(impressions) FROM ads WHERE company_id = ${t}` },
    ];
  },
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    return [
      {
        kind: 'transaction (one query string)',
        sql: `BEGIN; UPDATE campaigns SET budget = 1 WHERE company_id = ${t1}; UPDATE campaigns SET budget = 2 WHERE company_id = ${t2}; COMMIT`,
      },
      { kind: 'transaction', sql: `SELECT company_id, id, budget FROM campaigns WHERE company_id IN (${t1}, ${t2})`, multi: true },
    ];
  },
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    return [
      { kind: 'transaction', sql: 'BEGIN ISOLATION LEVEL REPEATABLE READ' },
      { kind: 'transaction', sql: `SELECT count(*) FROM clicks WHERE company_id = ${t1}` },
      { kind: 'transaction', sql: `SELECT count(*) FROM clicks WHERE company_id = ${t2}` },
      { kind: 'transaction', sql: `SELECT id, state FROM campaigns WHERE company_id = ${t2} FOR UPDATE` },
      { kind: 'transaction', sql: 'COMMIT' },
    ];
  },
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    const id = nextClick++;
    push(clicksOf, t2, id);
    return [
      { kind: 'transaction', sql: 'BEGIN' },
      { kind: 'transaction', sql: `UPDATE ad_formats SET cost_factor = cost_factor * 2 WHERE id = ${rnd.int(1, 4)}`, multi: true },
      { kind: 'transaction', sql: `DELETE FROM campaigns WHERE company_id = ${t1} AND id = ${campaignOf(t1)} RETURNING id` },
      { kind: 'transaction', sql: `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost) VALUES (${t2}, ${id}, ${adOf(t2)}, '2024-03-09 09:00:00+00', 0.5) RETURNING id` },
      { kind: 'transaction', sql: 'SELECT * FROM ad_formats ORDER BY id', ordered: true },
      { kind: 'transaction', sql: rnd.chance(0.5) ? 'COMMIT' : 'ROLLBACK' },
      { kind: 'transaction', sql: 'SELECT * FROM ad_formats ORDER BY id', ordered: true },
      { kind: 'transaction', sql: `SELECT count(*) FROM campaigns WHERE company_id = ${t1}` },
    ];
  },
];

/** Prepared statements with parameters (extended protocol), unnamed and named. */
const PREPARED: Gen[] = [
  () => {
    const t = tenant();
    return [{ kind: 'unnamed prepared', sql: 'SELECT * FROM clicks WHERE company_id = $1 AND ad_id = $2', params: [t, adOf(t)] }];
  },
  () => [{ kind: 'unnamed prepared', sql: 'SELECT c.name, co.region FROM companies c JOIN countries co ON co.code = c.country WHERE c.company_id = $1', params: [tenant()] }],
  () => [
    {
      kind: 'unnamed prepared',
      sql: 'SELECT ad_id, count(*), sum(cost) FROM clicks WHERE company_id = $1::bigint AND cost > $2 GROUP BY ad_id ORDER BY ad_id',
      params: [String(tenant()), money()],
      ordered: true,
    },
  ],
  () => [{ kind: 'named prepared', name: 'click_count', sql: 'SELECT count(*), max(cost) FROM clicks WHERE company_id = $1', params: [tenant()] }],
  () => {
    const t = tenant();
    return [
      {
        kind: 'named prepared',
        name: 'ad_report',
        sql: `WITH s AS (SELECT ad_id, sum(cost) AS total, rank() OVER (ORDER BY sum(cost) DESC, ad_id) AS r FROM clicks WHERE company_id = $1 GROUP BY ad_id)
              SELECT a.id, a.title, s.total, s.r FROM ads a JOIN s ON s.ad_id = a.id WHERE a.company_id = $1 AND s.r <= $2 ORDER BY s.r`,
        params: [t, rnd.int(1, 4)],
        ordered: true,
      },
    ];
  },
  () => {
    const t = tenant();
    const id = nextClick++;
    push(clicksOf, t, id);
    return [
      {
        kind: 'named prepared',
        name: 'insert_click',
        sql: 'INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost, country) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, cost',
        params: [t, id, adOf(t), timestamp(), money(), rnd.chance(0.2) ? null : rnd.pick(COUNTRIES)],
      },
    ];
  },
  () => {
    const t = tenant();
    return [
      {
        kind: 'named prepared',
        name: 'bump_ad',
        sql: 'UPDATE ads SET impressions = impressions + $3 WHERE company_id = $1 AND id = $2 RETURNING impressions',
        params: [t, adOf(t), rnd.int(1, 9)],
      },
    ];
  },
  () => {
    const t = tenant();
    return [{ kind: 'named prepared', name: 'delete_click', sql: 'DELETE FROM clicks WHERE company_id = $1 AND id = $2 RETURNING ad_id, cost', params: [t, clickOf(t)] }];
  },
  () => {
    const t = tenant();
    const id = rnd.chance(0.5) ? campaignOf(t) : nextCampaign++;
    push(campaignsOf, t, id);
    return [
      {
        kind: 'named prepared',
        name: 'upsert_campaign',
        sql: `INSERT INTO campaigns AS c (company_id, id, name, state, budget) VALUES ($1, $2, $3, $4, $5)
              ON CONFLICT (company_id, id) DO UPDATE SET budget = EXCLUDED.budget, name = c.name || '+' RETURNING company_id, id, name, budget`,
        params: [t, id, `campaign ${id}`, rnd.pick(STATES), `${rnd.int(0, 999)}.25`],
      },
    ];
  },
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    const i1 = nextClick++;
    const i2 = nextClick++;
    push(clicksOf, t1, i1);
    push(clicksOf, t2, i2);
    return [
      {
        kind: 'named prepared',
        name: 'insert_two_clicks',
        sql: `INSERT INTO clicks (company_id, id, ad_id, clicked_at, cost) VALUES ($1, $2, $3, '2024-03-10 10:00:00+00', $4), ($5, $6, $7, '2024-03-11 11:00:00+00', $8) RETURNING company_id, id`,
        params: [t1, i1, adOf(t1), money(), t2, i2, adOf(t2), money()],
        multi: true,
      },
    ];
  },
  () => [{ kind: 'named prepared', name: 'expensive_clicks', sql: 'SELECT count(*) FROM clicks WHERE cost > $1', params: [money()], multi: true }],
  () => {
    const t1 = tenant();
    const t2 = tenantElsewhere(t1);
    const a1 = adOf(t1);
    return [
      { kind: 'prepared in transaction', sql: 'BEGIN' },
      { kind: 'prepared in transaction', name: 'bump_ad', sql: 'UPDATE ads SET impressions = impressions + $3 WHERE company_id = $1 AND id = $2 RETURNING impressions', params: [t1, a1, 1] },
      { kind: 'prepared in transaction', name: 'click_count', sql: 'SELECT count(*), max(cost) FROM clicks WHERE company_id = $1', params: [t2] },
      { kind: 'prepared in transaction', sql: 'UPDATE companies SET budget = budget - $2 WHERE company_id = $1 RETURNING budget', params: [t2, 5] },
      { kind: 'prepared in transaction', sql: rnd.chance(0.6) ? 'COMMIT' : 'ROLLBACK' },
      { kind: 'prepared in transaction', sql: 'SELECT impressions FROM ads WHERE company_id = $1 AND id = $2', params: [t1, a1] },
    ];
  },
];

// ---- running and comparing -----------------------------------------------------------

/**
 * The routes the coordinator (running in this process) chose for the
 * statements of the current comparison: each plan the session makes is
 * wrapped so its route() calls are recorded. This only observes; when the
 * session's shape changes and plan() is gone, routing is not checked.
 */
const routeLog: string[] = [];
const sessionProto = SessionBase.prototype as unknown as { plan?: (...args: unknown[]) => StatementPlan };
const originalPlan = sessionProto.plan;
const routesObserved = typeof originalPlan === 'function';
if (originalPlan) {
  sessionProto.plan = function (this: unknown, ...args: unknown[]): StatementPlan {
    const plan = originalPlan.apply(this, args);
    return new Proxy(plan, {
      get(target, prop) {
        if (prop !== 'route') return Reflect.get(target, prop, target);
        return (params: Parameters<StatementPlan['route']>[0]) => {
          const r = target.route(params);
          routeLog.push(r.kind === 'router' ? r.planner : r.kind);
          return r;
        };
      },
    });
  };
}
/** Route kinds that run a statement whole on one node (or are transaction control). */
const ROUTED = new Set(['fast-path', 'router', 'transaction', 'evaluate-insert']);

interface Tally {
  statements: number;
  byKind: Map<string, number>;
  mismatches: string[];
  /** Route kinds chosen, over all statements. */
  routes: Map<string, number>;
  /** Statements meant for one shard group that were not routed there. */
  notRouted: string[];
}

const newTally = (): Tally => ({ statements: 0, byKind: new Map(), mismatches: [], routes: new Map(), notRouted: [] });
const totals = newTally();

/** PGWEAVE_TRACE=FILE appends every statement to FILE before it runs (to replay a failure). */
const TRACE = process.env.PGWEAVE_TRACE;

async function compare(tally: Tally, s: Statement): Promise<void> {
  if (TRACE) appendFileSync(TRACE, `${JSON.stringify({ sql: s.sql, params: s.params, name: s.name })}\n`);
  routeLog.length = 0;
  const [expected, actual] = await Promise.all([runStatement(reference, s), runStatement(weave, s)]);
  tally.statements++;
  for (const k of routeLog) tally.routes.set(k, (tally.routes.get(k) ?? 0) + 1);
  if (!s.multi && routeLog.some((k) => !ROUTED.has(k))) tally.notRouted.push(`[${s.kind}] ${s.sql.replace(/\s+/g, ' ')} → ${routeLog.join(', ')}`);
  tally.byKind.set(s.kind, (tally.byKind.get(s.kind) ?? 0) + 1);
  const diff = difference(expected, actual);
  if (diff) {
    const params = s.params ? ` params ${JSON.stringify(s.params)}` : '';
    tally.mismatches.push(`[${s.kind}] ${s.sql.replace(/\s+/g, ' ')}${params}${s.name ? ` (prepared as ${s.name})` : ''}\n    ${diff}`);
  }
  if (!actual.ok && actual.connectionLost) throw new Error(`pgweave connection lost at: ${s.sql}\n${actual.message}`);
}

async function runPhase(t: TestContext, name: string, gens: Gen[], rounds: number): Promise<void> {
  const tally = newTally();
  for (let i = 0; i < Math.round(rounds * SCALE); i++) {
    for (const s of rnd.pick(gens)()) await compare(tally, s);
  }
  totals.statements += tally.statements;
  for (const [k, n] of tally.byKind) totals.byKind.set(k, (totals.byKind.get(k) ?? 0) + n);
  totals.mismatches.push(...tally.mismatches);
  t.diagnostic(`${name}: ${tally.statements} statements compared, ${tally.mismatches.length} differ`);
  for (const [k, n] of [...tally.byKind].sort()) t.diagnostic(`  ${k}: ${n}`);
  if (routesObserved) {
    t.diagnostic(`  routes chosen: ${[...tally.routes].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
    t.diagnostic(`  meant for one shard group but not routed: ${tally.notRouted.length}`);
    for (const x of [...new Set(tally.notRouted)].slice(0, 8)) t.diagnostic(`    ${x.slice(0, 240)}`);
  }
  assert.equal(tally.mismatches.length, 0, `${tally.mismatches.length} of ${tally.statements} statements differ:\n  ${tally.mismatches.slice(0, 12).join('\n  ')}`);
  assert.equal(tally.notRouted.length, 0, `${tally.notRouted.length} statements pinned to one tenant were not routed to one shard group:\n  ${[...new Set(tally.notRouted)].slice(0, 12).join('\n  ')}`);
}

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = await textClient(cluster.url);
  reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
  const load = [SCHEMA, ...initialData()];
  for (const sql of load) {
    await reference.query(sql);
    await weave.query(sql);
  }
  for (const sql of DISTRIBUTE) await weave.query(sql);
  if (TRACE) for (const sql of [...load, ...DISTRIBUTE]) appendFileSync(TRACE, `${JSON.stringify({ sql, setup: true })}\n`);
  nodeOf = await nodeOfKeys(weave, 'companies', Array.from({ length: 200 }, (_, i) => i + 1));
});

after(async () => {
  await weave?.end().catch(() => {});
  await reference?.end().catch(() => {});
  await Promise.all([cluster?.stop(), plain?.stop()]);
});

test('the schema is distributed: 8 shards per table on both workers, tenants on both', async (t) => {
  const r = await weave.query(`SELECT table_name::text, citus_table_type, shard_count FROM citus_tables ORDER BY 1`);
  assert.deepEqual(
    r.rows.map((x) => [x.table_name, x.citus_table_type, x.shard_count]),
    [
      ['ad_formats', 'reference', '1'],
      ['ads', 'distributed', '8'],
      ['campaigns', 'distributed', '8'],
      ['clicks', 'distributed', '8'],
      ['companies', 'distributed', '8'],
      ['countries', 'reference', '1'],
    ],
  );
  const ports = new Set(tenants.map((x) => nodeOf.get(x)));
  assert.equal(ports.size, 2, 'the tenants are spread over both workers');
  const rows = await reference.query('SELECT (SELECT count(*) FROM clicks) AS clicks, (SELECT count(*) FROM ads) AS ads');
  t.diagnostic(`data set: ${TENANTS} tenants, ${rows.rows[0].ads} ads, ${rows.rows[0].clicks} clicks`);
});

test('router reads give the same results as PostgreSQL', { timeout: 600_000 }, async (t) => {
  await runPhase(t, 'router reads', READS, 250);
});

test('router writes give the same results as PostgreSQL', { timeout: 600_000 }, async (t) => {
  await runPhase(t, 'router writes', WRITES, 150);
});

test('transaction blocks over tenants on both workers give the same results', { timeout: 600_000 }, async (t) => {
  await runPhase(t, 'transactions', TRANSACTIONS, 40);
});

test('prepared statements with parameters give the same results', { timeout: 600_000 }, async (t) => {
  await runPhase(t, 'prepared statements', PREPARED, 150);
});

test('multi-shard reads and writes give the same results', { timeout: 600_000 }, async (t) => {
  await runPhase(t, 'multi-shard', MULTI_SHARD, 40);
});

test('a mixed workload of all of the above gives the same results', { timeout: 600_000 }, async (t) => {
  await runPhase(t, 'mixed', [...READS, ...WRITES, ...TRANSACTIONS, ...PREPARED, ...MULTI_SHARD], 200);
});

test('afterwards every table holds the same rows on both', { timeout: 300_000 }, async (t) => {
  const tally = newTally();
  for (const table of ['companies', 'campaigns', 'ads', 'clicks', 'countries', 'ad_formats']) {
    await compare(tally, { kind: 'final state', sql: `SELECT * FROM ${table}`, multi: true });
  }
  for (const x of tenants) await compare(tally, { kind: 'final state', sql: `SELECT count(*), sum(cost) FROM clicks WHERE company_id = ${x}` });
  totals.statements += tally.statements;
  totals.mismatches.push(...tally.mismatches);
  t.diagnostic(`final state: ${tally.statements} comparisons, ${tally.mismatches.length} differ`);
  t.diagnostic(`in all: ${totals.statements} statements compared, ${totals.mismatches.length} differ`);
  assert.equal(tally.mismatches.length, 0, tally.mismatches.slice(0, 12).join('\n  '));
});
