/**
 * Rows that every shard's task computes in full — a function in FROM,
 * VALUES, a subquery without shards, a reference table — kept by an outer
 * join or an anti/semi join against a distributed table (found by the
 * feature sweep): pushed down as one task per shard, each shard returned
 * the rows that match nothing there, so a LEFT JOIN of generate_series(1, 3)
 * gave 3 rows per shard. Such statements are not pushed down whole; each is
 * compared, as a multiset of rows (no ORDER BY: with one, the merge step
 * already kept them off the per-shard path), with a plain PostgreSQL
 * holding the same rows.
 */
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { assertSameResult, type DifferentialPair, startDifferentialPair } from './support.js';

let pair: DifferentialPair | undefined;
let weave: pg.Client;
let reference: pg.Client;

before(async () => {
  pair = await startDifferentialPair(
    'recurring-outer',
    [
      `CREATE TABLE t (k int PRIMARY KEY, v text)`,
      `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 40) g`,
      `CREATE TABLE l (id int, k int, amount int)`,
      `INSERT INTO l SELECT g, g % 45, g FROM generate_series(1, 80) g`,
      `CREATE TABLE r (code int PRIMARY KEY, name text)`,
      `INSERT INTO r SELECT g, 'r' || g FROM generate_series(0, 50, 5) g`,
    ],
    [
      `SELECT create_distributed_table('t', 'k', shard_count => 4)`,
      `SELECT create_distributed_table('l', 'k', colocate_with => 't')`,
      `SELECT create_reference_table('r')`,
    ],
  );
  ({ weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

test('a function, VALUES or a subquery without shards on the preserved side of an outer join with shards', async () => {
  for (const sql of [
    `SELECT g, t.v FROM generate_series(-3, 45) g LEFT JOIN t ON t.k = g`,
    `SELECT v.x, t.v FROM (VALUES (1), (2), (300)) v(x) LEFT JOIN t ON t.k = v.x`,
    `SELECT g, l.id FROM l RIGHT JOIN generate_series(1, 50) g ON l.k = g`,
    `SELECT g, t.k FROM generate_series(35, 45) g FULL JOIN t ON t.k = g WHERE t.k IS NULL OR t.k > 36`,
    `SELECT s.x, t.v FROM (SELECT 7 AS x UNION ALL SELECT 70) s LEFT JOIN t ON t.k = s.x`,
    `SELECT g, count(l.id) FROM generate_series(1, 50) g LEFT JOIN l ON l.k = g GROUP BY g`,
    `SELECT r.code, t.v FROM r LEFT JOIN t ON t.k = r.code`,
  ]) {
    await assertSameResult(weave, reference, sql, false);
  }
});

test('a function or VALUES filtered by NOT EXISTS, NOT IN, EXISTS or IN over shards', async () => {
  for (const sql of [
    `SELECT g FROM generate_series(35, 45) g WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.k = g)`,
    `SELECT g FROM generate_series(35, 45) g WHERE g NOT IN (SELECT k FROM t)`,
    `SELECT g FROM generate_series(35, 45) g WHERE EXISTS (SELECT 1 FROM t WHERE t.k = g)`,
    `SELECT x FROM (VALUES (3), (300), (4)) v(x) WHERE x IN (SELECT k FROM l)`,
  ]) {
    await assertSameResult(weave, reference, sql, false);
  }
});

test('shards on the preserved side, or an inner join, still answer alike', async () => {
  for (const sql of [
    `SELECT t.k, g FROM t LEFT JOIN generate_series(1, 10) g ON g = t.k`,
    `SELECT g, t.v FROM generate_series(1, 50) g JOIN t ON t.k = g`,
    `SELECT t.k, l.id FROM t LEFT JOIN l ON l.k = t.k`,
  ]) {
    await assertSameResult(weave, reference, sql, false);
  }
});
