/**
 * Floats moved between nodes stay exact whatever the session's
 * extra_float_digits (src/commands/copy/binary-transfer.ts): with 0 or
 * less, PostgreSQL prints float8 with 15 significant digits (float4 with
 * 6), so rows that traveled as text were rounded. Every statement runs in a
 * session with extra_float_digits = 0 and = -1 on both pgweave and a plain
 * PostgreSQL holding the same rows, and the results must be identical —
 * exactly, not within a tolerance: `float8send` shows a value's bits, and
 * the data are chosen so the result does not depend on the order rows are
 * combined in (sums of dyadic values; variances of groups that each live on
 * one shard). Text a query computes itself (`f::text`, format, to_char)
 * keeps the session's rounding, inside shard queries too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { type DifferentialPair, explainLines, runQuery, startDifferentialPair } from './support.js';

let pair: DifferentialPair | undefined;
let weave: pg.Client;
let reference: pg.Client;

const SETUP = [
  // f needs 17 digits; d = a + b·2^-36 sums exactly in any order; grp = k, so each group lives on one shard.
  `CREATE TABLE m (id int, k int, grp int, f float8, d float8, r real)`,
  `INSERT INTO m SELECT g, g % 40, g % 40, g / 7.0::float8 + 0.1, (g % 50)::float8 + (g % 7 + 1) * pg_catalog.power(2::float8, -36), (g / 3.0)::real
     FROM generate_series(1, 2000) g`,
  `CREATE TABLE o (id int, k int, w float8)`,
  `INSERT INTO o SELECT g, g % 40, g / 7.0::float8 + 0.1 FROM generate_series(1, 3000) g`,
  `CREATE TABLE m2 (id int, k int, f float8, r real)`,
  `CREATE TABLE m3 (id int PRIMARY KEY, k int, f float8, r real)`,
  // Types binary COPY carries between nodes (enum, domain over float8) and types it cannot (arrays of enums, composites: node-local OIDs).
  `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
  `CREATE TYPE pair AS (a int, b text)`,
  `CREATE DOMAIN exact8 AS float8 CHECK (VALUE > 0)`,
  `CREATE TABLE u (id int, m mood, x exact8, moods mood[], p pair)`,
  `INSERT INTO u SELECT g, (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, g / 7.0::float8 + 0.1,
     ARRAY[(ARRAY['sad','ok','happy'])[1 + g % 3], 'ok']::mood[], ROW(g, 'p' || g)::pair FROM generate_series(1, 300) g`,
];

before(async () => {
  pair = await startDifferentialPair('float-exact', SETUP, [
    `SELECT create_distributed_table('m', 'k', shard_count => 4)`,
    `SELECT create_distributed_table('o', 'id', shard_count => 3, colocate_with => 'none')`,
    `SELECT create_distributed_table('m2', 'id', shard_count => 3, colocate_with => 'none')`,
    `SELECT create_distributed_table('m3', 'id', shard_count => 5, colocate_with => 'none')`,
    `SELECT create_distributed_table('u', 'id', shard_count => 3, colocate_with => 'none')`,
  ]);
  ({ weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

const DIGITS = ['0', '-1'];

async function setBoth(sql: string): Promise<void> {
  await weave.query(sql);
  await reference.query(sql);
}

/** Both sides give exactly the same result (column names, built-in types, rows in order). */
async function same(sql: string): Promise<void> {
  const expected = await runQuery(reference, sql);
  const actual = await runQuery(weave, sql);
  assert.ok(expected.ok, `PostgreSQL failed: ${sql}: ${!expected.ok && expected.message}`);
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && actual.message}`);
  assert.ok(expected.result.rows.length > 0, `no rows: ${sql}`);
  // User-defined types have OIDs of their own on each server.
  const shape = (r: typeof expected.result) => ({ ...r, types: r.types.map((t) => (t >= 16384 ? 'user type' : t)) });
  assert.deepEqual(shape(actual.result), shape(expected.result), sql);
}

/** Runs `body` once per extra_float_digits ≤ 0, set on both sides, then puts the default back. */
async function withEachDigits(body: (digits: string) => Promise<void>): Promise<void> {
  try {
    for (const digits of DIGITS) {
      await setBoth(`SET extra_float_digits = ${digits}`);
      await body(digits);
    }
  } finally {
    await setBoth('RESET extra_float_digits');
  }
}

test('pulled and split aggregates combine the shards\' exact values', async () => {
  await withEachDigits(async () => {
    await same(`SELECT count(*), sum(d), float8send(sum(d)), float8send(avg(d)), float8send(sum(r::float8)) FROM m`);
    await same(`SELECT grp, float8send(sum(f)), float8send(avg(f)), sum(f) FROM m GROUP BY grp ORDER BY grp`);
    await same(`SELECT grp, float8send(var_pop(f)), float8send(stddev_samp(f)), float8send(variance(r)), float8send(covar_pop(f, d)), float8send(corr(f, d))
                  FROM m GROUP BY grp ORDER BY grp`);
    await same(`SELECT float8send(sum(f * 0)), float8send(max(f)), float8send(min(f)), max(r), float8send(max(r)::float8) FROM m WHERE f > 100`);
  });
});

test('joins that pull, broadcast or repartition a side carry its floats exactly', async () => {
  const broadcast = `SELECT o.id, float8send(m.f * o.w), float8send(m.r::float8), m.f = o.w FROM m JOIN o ON m.grp = o.k
                      WHERE m.id < 200 AND o.id < 200 ORDER BY 1, 2, 3, 4`;
  const whole = `SELECT o.k, float8send(max(m.f * o.w)), float8send(min(m.f + o.w)), count(*) FILTER (WHERE m.f = o.w), max(m.r)
                   FROM m JOIN o ON m.grp = o.k GROUP BY o.k ORDER BY 1`;
  const matches = `SELECT count(*), float8send(sum(m.d)) FROM m JOIN o ON m.f = o.w`;
  await withEachDigits(async () => {
    await same(broadcast);
    await same(whole);
    await same(matches);
  });
  try {
    await weave.query('SET pgweave.repartition_join_threshold = 0');
    const lines = await explainLines(weave, whole);
    assert.ok(lines.some((l) => l.includes('Join Strategy: repartition')), lines.join('\n'));
    await withEachDigits(async () => {
      await same(whole);
      await same(matches);
    });
  } finally {
    await weave.query('RESET pgweave.repartition_join_threshold');
  }
});

test('intermediate results keep their floats, on the coordinator and shipped to the workers', async () => {
  await withEachDigits(async () => {
    await same(`WITH low AS (SELECT id, f, r FROM m ORDER BY f LIMIT 30) SELECT count(*) FROM o WHERE o.w IN (SELECT f FROM low)`);
    await same(`WITH low AS (SELECT id, f, r FROM m ORDER BY f LIMIT 30) SELECT id, float8send(f * 3), float8send(r::float8) FROM low ORDER BY id`);
  });
});

test('text a query computes from floats keeps the session\'s rounding, in shard queries too', async () => {
  await withEachDigits(async () => {
    await same(`SELECT f::text AS t, count(*) FROM m GROUP BY 1 ORDER BY 1 LIMIT 20`);
    await same(`SELECT format('%s|%s', f, r), to_char(f, '9999.999999999999999'), count(*) FROM m GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 20`);
    await same(`SELECT length(string_agg(f::text, ',' ORDER BY id)), count(DISTINCT r::text) FROM m`);
    await same(`WITH low AS (SELECT id, f::text AS t, f FROM m ORDER BY f LIMIT 30) SELECT t, f FROM low ORDER BY f`);
    try {
      await weave.query('SET pgweave.repartition_join_threshold = 0');
      await same(`SELECT o.k, max(m.f::text), min(o.w::text), max(m.r::text), count(DISTINCT (m.f * o.w)::text) FROM m JOIN o ON m.grp = o.k GROUP BY 1 ORDER BY 1`);
    } finally {
      await weave.query('RESET pgweave.repartition_join_threshold');
    }
  });
});

test('INSERT … SELECT between differently distributed tables stores the exact values', async () => {
  const contents = `SELECT id, k, float8send(f), float8send(r::float8) FROM m2 ORDER BY id`;
  const upserted = `SELECT id, k, float8send(f), float8send(r::float8) FROM m3 ORDER BY id`;
  await withEachDigits(async () => {
    await setBoth('TRUNCATE m2, m3');
    // Repartitioned on the workers (the target's distribution column comes from another column).
    await setBoth(`INSERT INTO m2 (id, k, f, r) SELECT id, k, f, r FROM m`);
    await same(contents);
    // Through the coordinator: ON CONFLICT, and a LIMIT.
    await setBoth(`INSERT INTO m3 SELECT id, k, f, r FROM m WHERE id % 3 = 0 ON CONFLICT (id) DO UPDATE SET f = excluded.f`);
    await setBoth(`INSERT INTO m3 SELECT id, k, f * 2, r FROM m WHERE id % 2 = 0 ON CONFLICT (id) DO UPDATE SET f = excluded.f`);
    await setBoth(`INSERT INTO m2 (id, k, f, r) SELECT id + 5000, k, f / 3, r FROM m ORDER BY id LIMIT 100`);
    await same(upserted);
    await same(contents);
  });
});

test('enums and domains travel in binary; arrays of user types and composites still move, as text', async () => {
  await withEachDigits(async () => {
    await same(`SELECT u.m, float8send(u.x), count(*) FROM u JOIN o ON u.id = o.k GROUP BY 1, 2 ORDER BY 1, 2`);
    await same(`SELECT u.id, u.m, u.moods, u.p, (u.p).b FROM u JOIN o ON u.id = o.k WHERE o.id < 100 ORDER BY 1`);
    await same(`WITH top AS (SELECT id, moods, p, m FROM u ORDER BY id DESC LIMIT 20) SELECT count(*), max(p::text), max(moods::text) FROM top JOIN o ON top.id = o.k`);
  });
});

test('binary float parameters of a pushed-down prepared statement reach the shards exactly', async () => {
  const float8 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return b;
  };
  const float4 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeFloatBE(v);
    return b;
  };
  const sql = 'SELECT grp, count(*), float8send(sum(d)) FROM m WHERE f >= $1 AND r >= $2 GROUP BY grp ORDER BY grp';
  await withEachDigits(async (digits) => {
    // 10/7 + 0.1 and 20/3 as float4: values whose text at 15 (or 6) digits reads back as another value.
    const values = [float8(10 / 7.0 + 0.1), float4(20 / 3.0)];
    const expected = await runQuery(reference, sql, 60_000, values, `p${digits}`);
    const actual = await runQuery(weave, sql, 60_000, values, `p${digits}`);
    assert.ok(expected.ok && actual.ok, `${sql}: ${!expected.ok ? expected.message : ''} ${!actual.ok ? actual.message : ''}`);
    assert.ok(expected.result.rows.length > 0);
    assert.deepEqual(actual.result.rows, expected.result.rows, sql);
    const lines = await explainLines(weave, sql, 'COSTS OFF', [String(10 / 7.0 + 0.1), String(20 / 3.0)]);
    assert.ok(lines.some((l) => l.includes('aggregate-pushdown') || l.includes('pushdown')), lines.join('\n'));
  });
});
