/**
 * A hand-written sweep of SQL features the random differential queries
 * (random-queries.test.ts) do not generate, one feature at a time and then a
 * few combinations, each statement run on pgweave and on a plain PostgreSQL
 * loaded alike (support.ts startDifferentialPair): results compare as text
 * (order as far as the statement defines it, floats within a tolerance),
 * then command tags and row counts; where either side fails, the SQLSTATEs
 * compare. Some entries are several steps on one connection (blocks,
 * savepoints, SET, cursors, DDL then reads), some one named prepared
 * statement run with several lists of values (past PostgreSQL's switch to a
 * generic plan).
 *
 * Schema: accounts and ledger co-located by aid (4 shards), items distributed
 * by iid with 3 shards (not co-located), regions a reference table, notes a
 * local (coordinator) table; NULLs, duplicates, negative numbers, non-ASCII
 * text, numerics, timestamps, jsonb and arrays.
 *
 * Statements where pgweave still answers differently are listed in
 * KNOWN_DIVERGENCES with the way they differ: the test checks they still
 * differ that way, so fixing one fails the test until the entry is removed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type pg from 'pg';
import { compareResults, type DifferentialPair, type OrderSpec, type QueryOutcome, runQuery, startDifferentialPair } from './support.js';

const SETUP = [
  `CREATE TABLE accounts (aid int PRIMARY KEY, region_id int, name text, balance numeric(12,2), score float8,
     created timestamptz, tags text[], doc jsonb, active bool, bits int)`,
  `INSERT INTO accounts SELECT g,
     CASE WHEN g % 11 = 0 THEN NULL ELSE abs(g) % 5 END,
     CASE WHEN g % 13 = 0 THEN NULL WHEN g % 7 = 0 THEN 'Zoë ' || abs(g % 4) WHEN g % 3 = 0 THEN 'émile' ELSE 'acct' || abs(g % 17) END,
     CASE WHEN g % 9 = 0 THEN NULL ELSE round(((g * 37) % 1000 - 500) / 3.0, 2) END,
     CASE WHEN g % 10 = 0 THEN NULL ELSE ((g * 7919) % 1000) / 8.0 - 50 END,
     timestamptz '2024-01-01 00:00:00+00' + g * interval '7 hours 13 minutes',
     CASE WHEN g % 6 = 0 THEN NULL ELSE ARRAY['t' || abs(g % 3), 't' || abs(g % 4)] END,
     CASE WHEN g % 8 = 0 THEN NULL ELSE jsonb_build_object('k', abs(g % 4), 'v', g, 'arr', jsonb_build_array(g % 3, g % 5), 'name', 'n' || abs(g % 6)) END,
     CASE WHEN g % 4 = 0 THEN NULL ELSE g % 3 = 0 END,
     abs(g * 2654435) % 256
   FROM generate_series(-40, 200) g`,
  `CREATE TABLE ledger (lid int, aid int, amount numeric(14,3), qty int, note text, at timestamp)`,
  `INSERT INTO ledger SELECT g,
     (g * 7) % 260 - 50,
     CASE WHEN g % 12 = 0 THEN NULL ELSE ((g * 131) % 2000 - 900) / 7.0 END,
     CASE WHEN g % 15 = 0 THEN NULL ELSE (g * 3) % 23 - 5 END,
     CASE WHEN g % 5 = 0 THEN NULL ELSE (ARRAY['coffee', 'Café', 'tea', 'Ärger', 'zebra', 'apple'])[1 + g % 6] END,
     timestamp '2024-03-01 08:00' + g * interval '5 hours 41 minutes'
   FROM generate_series(1, 600) g`,
  `CREATE TABLE items (iid int, aid int, price numeric(10,2), label text, kind text)`,
  `INSERT INTO items SELECT g,
     CASE WHEN g % 10 = 0 THEN NULL ELSE (g * 13) % 250 - 40 END,
     CASE WHEN g % 14 = 0 THEN NULL ELSE ((g * 53) % 900) / 4.0 END,
     'item ' || (g % 40),
     CASE WHEN g % 9 = 0 THEN NULL ELSE (ARRAY['a', 'b', 'B', 'ä'])[1 + g % 4] END
   FROM generate_series(1, 300) g`,
  `CREATE TABLE regions (region_id int, rname text, zone text)`,
  `INSERT INTO regions VALUES (0, 'north', 'x'), (1, 'south', 'x'), (2, 'east', NULL), (3, 'west', 'y'), (4, 'north', 'y'), (7, 'nowhere', 'z')`,
  `CREATE TABLE notes (nid int, aid int, body text)`,
  `INSERT INTO notes SELECT g, CASE WHEN g % 6 = 0 THEN NULL ELSE (g * 11) % 230 - 30 END, 'note ' || g FROM generate_series(1, 60) g`,
];

const DISTRIBUTE = [
  `SELECT create_distributed_table('accounts', 'aid', shard_count => 4)`,
  `SELECT create_distributed_table('ledger', 'aid', colocate_with => 'accounts')`,
  `SELECT create_distributed_table('items', 'iid', shard_count => 3)`,
  `SELECT create_reference_table('regions')`,
];

interface Sweep {
  /** A single statement, or several run in order on one connection (each outcome compared; a pair runs with its values). */
  sql: string | Array<string | [string, unknown[]]>;
  order?: OrderSpec;
  values?: unknown[];
  /** Runs as one named prepared statement, once for each list of values. */
  runs?: unknown[][];
}

/** Keys (the statement, or its steps joined by ' ; ') → the way pgweave still differs (see divergenceKind). */
const KNOWN_DIVERGENCES = new Map<string, string>([
  // Views over distributed and reference tables: CREATE VIEW is refused with a clear 0A000; reading the view then fails with 42P01.
  ["CREATE VIEW rich AS SELECT aid, name, balance, region_id FROM accounts WHERE balance > 0", "pgweave fails with 0A000"],
  ["CREATE VIEW ledger_totals AS SELECT aid, sum(amount) AS total, count(*) AS n FROM ledger GROUP BY aid", "pgweave fails with 0A000"],
  ["CREATE VIEW northern AS SELECT region_id, rname FROM regions WHERE rname = 'north'", "pgweave fails with 0A000"],
  ["SELECT a.aid, n.rname FROM accounts a JOIN northern n USING (region_id)", "pgweave fails with 42P01"],
  ["SELECT * FROM rich WHERE region_id = 2", "pgweave fails with 42P01"],
  ["SELECT r.region_id, count(*), sum(r.balance) FROM rich r GROUP BY 1", "pgweave fails with 42P01"],
  ["SELECT t.aid, t.total, a.name FROM ledger_totals t JOIN accounts a USING (aid)", "pgweave fails with 42P01"],
  ["SELECT * FROM ledger_totals WHERE n > 3", "pgweave fails with 42P01"],
  // Writes past Citus's limits, each with a clear error: a subquery or FROM on a table not co-located with the written
  // one, or on a coordinator table (0A000); changing the distribution column (0A000, where PostgreSQL reports the
  // duplicate key); NULL in the distribution column (23502, PostgreSQL stores it).
  ["BEGIN ; UPDATE accounts a SET balance = i.price FROM items i WHERE i.iid = a.aid AND a.aid < 20 RETURNING a.aid, a.balance ; ROLLBACK", "pgweave fails with 0A000"],
  ["BEGIN ; DELETE FROM accounts WHERE region_id IN (SELECT region_id FROM regions WHERE zone = 'z') OR aid IN (SELECT aid FROM notes WHERE nid < 5) RETURNING aid ; ROLLBACK", "pgweave fails with 0A000"],
  ["BEGIN ; UPDATE accounts SET aid = aid + 1 WHERE aid = 5 ; ROLLBACK", "sqlstate 23505 vs 0A000"],
  ["BEGIN ; INSERT INTO ledger (lid, aid) VALUES (1, NULL) ; ROLLBACK", "pgweave fails with 23502"],
  ["BEGIN ; UPDATE items SET price = price * 2 WHERE aid IN (SELECT aid FROM accounts WHERE region_id = 3) RETURNING iid, price ; ROLLBACK", "pgweave fails with 0A000"],
  // tableoid names the shard: multi-shard, the coordinator cannot resolve the shard's name (42P01); routed, the shard's name.
  ["SELECT tableoid::regclass, count(*) FROM accounts GROUP BY 1", "pgweave fails with 42P01"],
  ["SELECT tableoid::regclass FROM accounts WHERE aid = 1", "wrong result: rows differ (as multisets)"],
  // Wrong rows, silently: SQL and PL/pgSQL functions and DO blocks run on the coordinator's PostgreSQL, where a
  // distributed table is an empty shell. Minimal: CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS
  // 'SELECT count(*) FROM t'; SELECT f() → 0.
  ["CREATE FUNCTION sweep_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM accounts' ; SELECT sweep_count()", "wrong result: rows differ (as multisets)"],
  ["CREATE FUNCTION sweep_plpgsql(r int) RETURNS bigint LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN (SELECT count(*) FROM ledger WHERE aid = r); END $$ ; SELECT sweep_plpgsql(12) ; SELECT sum(sweep_plpgsql(aid)) FROM accounts WHERE aid < 20", "wrong result: rows differ (as multisets)"],
  ["DO $$ BEGIN IF (SELECT count(*) FROM accounts) <> 241 THEN RAISE EXCEPTION 'saw % accounts', (SELECT count(*) FROM accounts) USING ERRCODE = 'P0009'; END IF; END $$", "pgweave fails with P0009"],
  // SQL-level PREPARE, CREATE TABLE AS and SELECT INTO over distributed tables: a clear 0A000.
  ["PREPARE sweep_p(int) AS SELECT aid, name FROM accounts WHERE region_id = $1 ORDER BY aid ; EXECUTE sweep_p(1) ; EXECUTE sweep_p(3) ; DEALLOCATE sweep_p", "pgweave fails with 0A000"],
  ["PREPARE sweep_q(int) AS SELECT aid FROM accounts WHERE aid = $1 ; EXECUTE sweep_q(7) ; EXECUTE sweep_q(8) ; DEALLOCATE sweep_q", "pgweave fails with 0A000"],
  ["CREATE TEMP TABLE sweep_copy AS SELECT aid, name FROM accounts WHERE region_id = 1 ; SELECT count(*), min(aid), max(aid) FROM sweep_copy ; DROP TABLE sweep_copy", "pgweave fails with 0A000"],
  ["SELECT aid, balance INTO TEMP sweep_into FROM accounts WHERE balance > 100 ; SELECT count(*) FROM sweep_into ; DROP TABLE sweep_into", "pgweave fails with 0A000"],
  // Cursors over multi-shard queries: DECLARE is refused with a clear 0A000.
  ["BEGIN ; DECLARE c CURSOR FOR SELECT aid, name FROM accounts ORDER BY aid ; FETCH 5 FROM c ; MOVE 100 IN c ; FETCH 3 FROM c ; FETCH ALL FROM c ; CLOSE c ; COMMIT", "pgweave fails with 0A000"],
  ["BEGIN ; DECLARE c SCROLL CURSOR FOR SELECT lid FROM ledger ORDER BY lid ; FETCH LAST FROM c ; FETCH PRIOR FROM c ; FETCH ABSOLUTE 10 FROM c ; MOVE BACKWARD 3 IN c ; FETCH NEXT FROM c ; COMMIT", "pgweave fails with 0A000"],
  ["BEGIN ; DECLARE c CURSOR FOR SELECT region_id, count(*) FROM accounts GROUP BY region_id ORDER BY 1 ; FETCH 2 FROM c ; FETCH 10 FROM c ; COMMIT", "pgweave fails with 0A000"],
]);

const S: Sweep[] = [];
function q(sql: Sweep['sql'], order: OrderSpec = 'none', values?: unknown[]): void {
  S.push({ sql, order, ...(values ? { values } : {}) });
}
function p(sql: string, runs: unknown[][]): void {
  S.push({ sql, order: /ORDER BY/.test(sql) ? 'total' : 'none', runs });
}

// --- DISTINCT ON
q(`SELECT DISTINCT ON (region_id) region_id, aid, balance FROM accounts ORDER BY region_id, balance DESC NULLS LAST, aid`, 'total');
q(`SELECT DISTINCT ON (aid) aid, lid, amount FROM ledger ORDER BY aid, amount, lid`, 'total');
q(`SELECT DISTINCT ON (kind) kind, iid, price FROM items ORDER BY kind, price DESC, iid`, 'total');
q(`SELECT DISTINCT ON (a.region_id) a.region_id, l.lid FROM accounts a JOIN ledger l USING (aid) ORDER BY a.region_id, l.lid DESC`, 'total');
q(`SELECT DISTINCT ON (abs(aid) % 3) abs(aid) % 3, aid FROM accounts ORDER BY abs(aid) % 3, aid`, 'total');

// --- GROUPING SETS / ROLLUP / CUBE
q(`SELECT region_id, active, count(*), sum(balance) FROM accounts GROUP BY ROLLUP (region_id, active)`);
q(`SELECT region_id, active, count(*), GROUPING(region_id, active) FROM accounts GROUP BY CUBE (region_id, active)`);
q(`SELECT region_id, name, count(*) FROM accounts GROUP BY GROUPING SETS ((region_id), (name), ())`);
q(`SELECT aid, qty, sum(amount) FROM ledger GROUP BY GROUPING SETS ((aid), (qty)) HAVING count(*) > 3`);
q(`SELECT kind, count(*), avg(price) FROM items GROUP BY ROLLUP (kind) ORDER BY kind NULLS FIRST`, 'total');
q(`SELECT r.zone, a.active, count(*) FROM accounts a JOIN regions r USING (region_id) GROUP BY CUBE (r.zone, a.active)`);

// --- window functions
q(`SELECT aid, lid, row_number() OVER (PARTITION BY aid ORDER BY lid) FROM ledger`);
q(`SELECT aid, lid, sum(amount) OVER (PARTITION BY aid ORDER BY lid ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM ledger`);
q(`SELECT region_id, aid, rank() OVER (PARTITION BY region_id ORDER BY balance) FROM accounts`);
q(`SELECT aid, balance, rank() OVER (ORDER BY balance), dense_rank() OVER (ORDER BY balance) FROM accounts`);
q(`SELECT aid, ntile(4) OVER (ORDER BY aid) FROM accounts`);
q(`SELECT lid, lag(amount) OVER (ORDER BY lid), lead(amount, 2, 0) OVER (ORDER BY lid) FROM ledger`);
q(`SELECT aid, first_value(aid) OVER (PARTITION BY region_id ORDER BY aid), last_value(aid) OVER (PARTITION BY region_id ORDER BY aid ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM accounts`);
q(`SELECT lid, qty, sum(qty) OVER (ORDER BY qty RANGE BETWEEN 2 PRECEDING AND CURRENT ROW) FROM ledger WHERE qty IS NOT NULL`);
q(`SELECT lid, qty, count(*) OVER (ORDER BY qty GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM ledger`);
q(`SELECT lid, sum(qty) OVER (ORDER BY lid ROWS BETWEEN 2 PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW) FROM ledger`);
q(`SELECT aid, sum(amount), rank() OVER (ORDER BY sum(amount) DESC NULLS LAST) FROM ledger GROUP BY aid`);
q(`SELECT region_id, count(*), sum(count(*)) OVER () FROM accounts GROUP BY region_id`);
q(`SELECT aid, sum(amount) AS s, avg(sum(amount)) OVER (PARTITION BY aid % 3) FROM ledger GROUP BY aid`);
q(`SELECT iid, percent_rank() OVER (ORDER BY price), cume_dist() OVER (ORDER BY price) FROM items`);
q(`SELECT aid, lid, nth_value(lid, 2) OVER w FROM ledger WINDOW w AS (PARTITION BY aid ORDER BY lid ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)`);
q(`SELECT aid, count(*) FILTER (WHERE qty > 0) OVER (PARTITION BY aid) FROM ledger`);
q(`SELECT a.aid, l.lid, row_number() OVER (PARTITION BY a.region_id ORDER BY l.lid) FROM accounts a JOIN ledger l USING (aid)`);
q(`SELECT * FROM (SELECT aid, lid, row_number() OVER (PARTITION BY aid ORDER BY amount DESC NULLS LAST, lid) AS rn FROM ledger) t WHERE rn = 1`);
q(`SELECT aid, lid FROM ledger ORDER BY row_number() OVER (ORDER BY lid DESC) LIMIT 5`, 'total');

// --- LATERAL
q(`SELECT a.aid, x.v FROM accounts a, LATERAL unnest(a.tags) AS x(v)`);
q(`SELECT a.aid, g FROM accounts a, LATERAL generate_series(1, a.bits % 3) g`);
q(`SELECT a.aid, t.lid FROM accounts a, LATERAL (SELECT lid FROM ledger l WHERE l.aid = a.aid ORDER BY lid LIMIT 2) t`);
q(`SELECT a.aid, t.n FROM accounts a LEFT JOIN LATERAL (SELECT count(*) AS n FROM ledger l WHERE l.aid = a.aid) t ON true`);
q(`SELECT a.aid, t.iid FROM accounts a, LATERAL (SELECT iid FROM items i WHERE i.aid = a.aid ORDER BY iid LIMIT 1) t`);
q(`SELECT r.rname, t.aid FROM regions r, LATERAL (SELECT aid FROM accounts a WHERE a.region_id = r.region_id ORDER BY aid LIMIT 2) t`);
q(`SELECT a.aid, j.key, j.value FROM accounts a, LATERAL jsonb_each(a.doc) j WHERE a.aid < 10`);

// --- WITH RECURSIVE, CTE materialization
q(`WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT a.aid, r.n FROM r JOIN accounts a ON a.aid = r.n`);
q(`WITH RECURSIVE chain(aid, depth) AS (SELECT aid, 0 FROM accounts WHERE aid = 3 UNION SELECT (l.lid % 200), c.depth + 1 FROM chain c JOIN ledger l ON l.aid = c.aid WHERE c.depth < 3) SELECT aid, min(depth) FROM chain GROUP BY aid`);
q(`WITH RECURSIVE t(aid, s) AS (SELECT aid, balance FROM accounts WHERE aid BETWEEN 1 AND 5 UNION ALL SELECT t.aid + 10, t.s + 1 FROM t WHERE t.aid < 60) SELECT * FROM t`);
q(`WITH m AS MATERIALIZED (SELECT aid, sum(amount) s FROM ledger GROUP BY aid) SELECT a.name, m.s FROM accounts a JOIN m USING (aid)`);
q(`WITH m AS NOT MATERIALIZED (SELECT aid, amount FROM ledger WHERE qty > 3) SELECT aid, count(*) FROM m GROUP BY aid`);
q(`WITH m AS MATERIALIZED (SELECT * FROM items WHERE price > 100) SELECT a.aid, m.iid FROM accounts a JOIN m ON m.aid = a.aid`);
q(`WITH x AS (SELECT aid FROM accounts WHERE active), y AS (SELECT aid FROM x WHERE aid > 50) SELECT count(*) FROM y`);

// --- set operations across table kinds
q(`SELECT aid FROM accounts UNION SELECT aid FROM ledger`);
q(`SELECT aid FROM accounts UNION ALL SELECT aid FROM items`);
q(`SELECT aid FROM ledger INTERSECT SELECT aid FROM items`);
q(`SELECT aid FROM ledger INTERSECT ALL SELECT aid FROM items`);
q(`SELECT aid FROM accounts EXCEPT SELECT aid FROM ledger`);
q(`SELECT aid FROM ledger EXCEPT ALL SELECT aid FROM notes`);
q(`SELECT region_id FROM accounts INTERSECT SELECT region_id FROM regions`);
q(`SELECT aid FROM notes UNION SELECT aid FROM items ORDER BY 1 NULLS FIRST LIMIT 10`, 'total');
q(`(SELECT aid FROM accounts ORDER BY aid LIMIT 3) UNION ALL (SELECT aid FROM items ORDER BY aid DESC NULLS LAST LIMIT 3)`);
q(`SELECT name FROM accounts EXCEPT SELECT rname FROM regions`);

// --- ordered-set and hypothetical aggregates
q(`SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY balance) FROM accounts`);
q(`SELECT region_id, percentile_disc(0.25) WITHIN GROUP (ORDER BY balance) FROM accounts GROUP BY region_id`);
q(`SELECT mode() WITHIN GROUP (ORDER BY note) FROM ledger`);
q(`SELECT aid, mode() WITHIN GROUP (ORDER BY qty) FROM ledger GROUP BY aid`);
q(`SELECT rank(10) WITHIN GROUP (ORDER BY qty), dense_rank(10) WITHIN GROUP (ORDER BY qty), percent_rank(10) WITHIN GROUP (ORDER BY qty) FROM ledger`);
q(`SELECT percentile_cont(ARRAY[0.1, 0.9]) WITHIN GROUP (ORDER BY score) FROM accounts`);
q(`SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY price DESC) FROM items GROUP BY kind`);

// --- FILTER and collection aggregates with ORDER BY / DISTINCT
q(`SELECT count(*) FILTER (WHERE active), sum(balance) FILTER (WHERE region_id = 1) FROM accounts`);
q(`SELECT aid, count(*) FILTER (WHERE qty < 0), max(amount) FILTER (WHERE note IS NOT NULL) FROM ledger GROUP BY aid`);
q(`SELECT region_id, string_agg(name, ',' ORDER BY name, aid) FROM accounts GROUP BY region_id`);
q(`SELECT string_agg(DISTINCT note, '|' ORDER BY note) FROM ledger`);
q(`SELECT aid, array_agg(lid ORDER BY lid DESC) FROM ledger GROUP BY aid`);
q(`SELECT array_agg(DISTINCT kind ORDER BY kind) FROM items`);
q(`SELECT region_id, json_agg(aid ORDER BY aid) FROM accounts GROUP BY region_id`);
q(`SELECT jsonb_object_agg(aid, balance ORDER BY aid) FROM accounts WHERE aid BETWEEN 1 AND 20`);
q(`SELECT region_id, jsonb_agg(DISTINCT name) FROM accounts GROUP BY region_id`);
q(`SELECT array_agg(tags ORDER BY aid) FROM accounts WHERE aid BETWEEN 1 AND 5`);
q(`SELECT string_agg(note, ',' ORDER BY note COLLATE "C", lid) FROM ledger WHERE lid < 40`);

// --- count(DISTINCT) and numeric/float aggregates
q(`SELECT count(DISTINCT region_id), count(DISTINCT name), count(DISTINCT (region_id, active)) FROM accounts`);
q(`SELECT aid, count(DISTINCT note) FROM ledger GROUP BY aid`);
q(`SELECT count(DISTINCT aid) FROM items`);
q(`SELECT avg(qty), sum(qty), stddev(qty), variance(qty), stddev_pop(qty), var_pop(qty) FROM ledger`);
q(`SELECT avg(amount), sum(amount), stddev(amount), variance(amount), min(amount), max(amount) FROM ledger`);
q(`SELECT round(sum(score)::numeric, 6), round(avg(score)::numeric, 6), round(stddev(score)::numeric, 6) FROM accounts`);
q(`SELECT region_id, avg(balance), stddev_samp(balance), var_samp(balance) FROM accounts GROUP BY region_id`);
q(`SELECT sum(aid::int8 * 1000000000000), avg(aid::int8) FROM accounts`);
q(`SELECT corr(balance, score), regr_slope(balance, score), covar_pop(qty, amount) FROM accounts a JOIN ledger l USING (aid)`);
q(`SELECT kind, sum(price), avg(price) FROM items GROUP BY kind`);

// --- bool / bit aggregates
q(`SELECT bool_and(active), bool_or(active), every(active) FROM accounts`);
q(`SELECT region_id, bit_or(bits), bit_and(bits), bit_xor(bits) FROM accounts GROUP BY region_id`);

// --- subqueries
q(`SELECT aid FROM accounts a WHERE EXISTS (SELECT 1 FROM ledger l WHERE l.aid = a.aid AND l.qty > 10)`);
q(`SELECT aid FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM ledger l WHERE l.aid = a.aid)`);
q(`SELECT aid FROM accounts WHERE aid IN (SELECT aid FROM items)`);
q(`SELECT aid FROM accounts WHERE aid NOT IN (SELECT aid FROM items)`);
q(`SELECT aid FROM accounts WHERE aid NOT IN (SELECT aid FROM items WHERE aid IS NOT NULL)`);
q(`SELECT aid FROM accounts WHERE region_id NOT IN (SELECT region_id FROM regions WHERE zone = 'x')`);
q(`SELECT aid FROM accounts WHERE aid NOT IN (SELECT aid FROM notes)`);
q(`SELECT iid FROM items WHERE aid = ANY (SELECT aid FROM accounts WHERE active)`);
q(`SELECT aid FROM accounts WHERE balance > ALL (SELECT amount FROM ledger WHERE qty = 3 AND amount IS NOT NULL)`);
q(`SELECT aid, (SELECT count(*) FROM ledger l WHERE l.aid = a.aid) FROM accounts a`);
q(`SELECT aid, (SELECT max(price) FROM items i WHERE i.aid = a.aid) FROM accounts a`);
q(`SELECT aid FROM accounts WHERE balance > (SELECT avg(balance) FROM accounts)`);
q(`SELECT lid FROM ledger l WHERE amount > (SELECT avg(amount) FROM ledger l2 WHERE l2.aid = l.aid)`);
q(`SELECT aid FROM accounts WHERE aid = ANY (ARRAY[1, 2, 3, NULL, -7])`);
q(`SELECT aid, aid IN (SELECT aid FROM notes) FROM accounts`);
q(`SELECT aid FROM accounts WHERE (region_id, active) IN (SELECT region_id, true FROM regions)`);

// --- outer joins between every pair of table kinds
for (const [x, y] of [
  ['accounts', 'ledger'], ['accounts', 'items'], ['ledger', 'items'], ['accounts', 'notes'], ['items', 'notes'], ['notes', 'regions'],
]) {
  q(`SELECT x.aid, y.aid FROM ${x} x LEFT JOIN ${y} y ON y.aid = x.aid`);
  q(`SELECT x.aid, y.aid FROM ${x} x RIGHT JOIN ${y} y ON y.aid = x.aid`);
  q(`SELECT x.aid, y.aid FROM ${x} x FULL JOIN ${y} y ON y.aid = x.aid`);
}
q(`SELECT a.aid, r.rname FROM accounts a LEFT JOIN regions r USING (region_id)`);
q(`SELECT a.aid, r.rname FROM accounts a RIGHT JOIN regions r USING (region_id)`);
q(`SELECT a.aid, r.rname FROM accounts a FULL JOIN regions r USING (region_id)`);
q(`SELECT i.iid, r.rname FROM items i FULL JOIN regions r ON r.region_id = i.aid % 5`);

// --- joins on non-distribution columns
q(`SELECT a.aid, b.aid FROM accounts a JOIN accounts b ON a.name = b.name AND a.aid < b.aid`);
q(`SELECT l.lid, i.iid FROM ledger l JOIN items i ON i.label = 'item ' || l.qty`);
q(`SELECT a.region_id, count(*) FROM accounts a JOIN ledger l ON l.qty = a.region_id GROUP BY 1`);
q(`SELECT a.aid, l.lid FROM accounts a LEFT JOIN ledger l ON l.qty = a.bits % 10 AND l.lid < 30`);

// --- generate_series / unnest / VALUES in FROM
q(`SELECT g, a.name FROM generate_series(-3, 12) g LEFT JOIN accounts a ON a.aid = g`);
q(`SELECT u, count(a.aid) FROM unnest(ARRAY['t0', 't1', 't9']) u LEFT JOIN accounts a ON u = ANY (a.tags) GROUP BY u`);
q(`SELECT v.k, v.label, a.balance FROM (VALUES (1, 'one'), (2, 'two'), (NULL, 'none')) v(k, label) JOIN accounts a ON a.aid = v.k`);
q(`SELECT * FROM accounts a JOIN (VALUES (1), (3), (5)) v(x) ON a.region_id = v.x WHERE a.aid < 30`);
q(`SELECT a.aid, x FROM accounts a CROSS JOIN unnest(ARRAY[1, 2]) x WHERE a.aid < 5`);
q(`SELECT v.x, a.name FROM (VALUES (1), (2), (300)) v(x) LEFT JOIN accounts a ON a.aid = v.x`);
q(`SELECT g, l.lid FROM ledger l RIGHT JOIN generate_series(1, 4) g ON l.aid = g`);
q(`SELECT g, a.aid FROM generate_series(198, 203) g FULL JOIN accounts a ON a.aid = g WHERE a.aid IS NULL OR a.aid > 195`);
q(`SELECT g FROM generate_series(195, 205) g WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.aid = g)`);
q(`SELECT g FROM generate_series(195, 205) g WHERE g NOT IN (SELECT aid FROM accounts)`);
q(`SELECT u FROM unnest(ARRAY[1, 2, 999]) u WHERE u IN (SELECT aid FROM accounts)`);
q(`SELECT g, count(a.aid) FROM generate_series(1, 3) g LEFT JOIN accounts a ON a.aid = g GROUP BY g`);

// --- ORDER BY variants, LIMIT / OFFSET / WITH TIES
q(`SELECT aid, name FROM accounts ORDER BY name NULLS FIRST, aid`, 'total');
q(`SELECT aid, name FROM accounts ORDER BY name DESC NULLS LAST, aid`, 'total');
q(`SELECT aid, name FROM accounts ORDER BY name COLLATE "C", aid`, 'total');
q(`SELECT note, lid FROM ledger ORDER BY note COLLATE "C" DESC, lid LIMIT 20`, 'total');
q(`SELECT aid, balance FROM accounts ORDER BY balance * -1 NULLS FIRST, aid`, 'total');
q(`SELECT aid, balance FROM accounts ORDER BY 2, 1`, 'total');
q(`SELECT aid, balance FROM accounts ORDER BY balance NULLS LAST, aid LIMIT 10 OFFSET 5`, 'total');
q(`SELECT aid, region_id FROM accounts ORDER BY region_id FETCH FIRST 3 ROWS WITH TIES`, [1]);
q(`SELECT lid, qty FROM ledger ORDER BY qty DESC NULLS LAST FETCH FIRST 5 ROWS WITH TIES`, [1]);
q(`SELECT aid FROM accounts ORDER BY aid OFFSET 230`, 'total');
q(`SELECT aid, score FROM accounts ORDER BY score, aid LIMIT 7`, 'total');
q(`SELECT aid, created FROM accounts ORDER BY created DESC LIMIT 3`, 'total');
q(`SELECT iid, kind FROM items ORDER BY kind, iid LIMIT 12`, 'total');

// --- GROUP BY expressions / positions, HAVING
q(`SELECT abs(aid) % 7, count(*) FROM accounts GROUP BY 1 HAVING count(*) > 30`);
q(`SELECT date_trunc('week', created), count(*) FROM accounts GROUP BY date_trunc('week', created)`);
q(`SELECT lower(name), sum(balance) FROM accounts GROUP BY lower(name) HAVING sum(balance) IS NOT NULL`);
q(`SELECT qty > 0, note, count(*) FROM ledger GROUP BY 1, 2`);
q(`SELECT aid, count(*) FROM ledger GROUP BY aid HAVING sum(amount) > 100 OR count(*) > 4`);
q(`SELECT kind, count(*) FROM items GROUP BY kind HAVING max(price) > 200`);
q(`SELECT doc->>'name', count(*) FROM accounts GROUP BY doc->>'name'`);

// --- views (made through pgweave), TABLE t
q(`CREATE VIEW rich AS SELECT aid, name, balance, region_id FROM accounts WHERE balance > 0`);
q(`CREATE VIEW ledger_totals AS SELECT aid, sum(amount) AS total, count(*) AS n FROM ledger GROUP BY aid`);
q(`CREATE VIEW northern AS SELECT region_id, rname FROM regions WHERE rname = 'north'`);
q(`CREATE VIEW note_aids AS SELECT DISTINCT aid FROM notes`);
q(`SELECT a.aid, n.rname FROM accounts a JOIN northern n USING (region_id)`);
q(`SELECT a.aid FROM accounts a WHERE a.aid IN (SELECT aid FROM note_aids)`);
q(`SELECT * FROM rich WHERE region_id = 2`);
q(`SELECT r.region_id, count(*), sum(r.balance) FROM rich r GROUP BY 1`);
q(`SELECT t.aid, t.total, a.name FROM ledger_totals t JOIN accounts a USING (aid)`);
q(`SELECT * FROM ledger_totals WHERE n > 3`);
q(`TABLE regions`);
q(`TABLE accounts`);
q(`TABLE notes`);

// --- row locks
q(`SELECT aid, balance FROM accounts WHERE aid = 5 FOR UPDATE`);
q(`SELECT aid FROM accounts WHERE aid > 190 FOR UPDATE`);
q(`SELECT aid FROM accounts WHERE aid > 190 FOR SHARE`);
q(['BEGIN', `SELECT lid FROM ledger WHERE aid = 7 FOR UPDATE`, `SELECT count(*) FROM ledger WHERE lid < 100 FOR SHARE`, 'COMMIT']);
q(`SELECT a.aid FROM accounts a JOIN ledger l USING (aid) WHERE a.aid = 9 FOR UPDATE OF a`);
q(`SELECT aid FROM accounts WHERE aid > 190 FOR UPDATE OF accounts`);
q(`SELECT a.aid FROM accounts a WHERE a.aid > 190 FOR SHARE OF a`);
q(`SELECT region_id FROM regions FOR UPDATE`);
q(`SELECT aid FROM accounts WHERE aid < -35 FOR NO KEY UPDATE SKIP LOCKED`);

// --- cursors
q(['BEGIN', `DECLARE c CURSOR FOR SELECT aid, name FROM accounts ORDER BY aid`, 'FETCH 5 FROM c', 'MOVE 100 IN c', 'FETCH 3 FROM c', 'FETCH ALL FROM c', 'CLOSE c', 'COMMIT']);
q(['BEGIN', `DECLARE c SCROLL CURSOR FOR SELECT lid FROM ledger ORDER BY lid`, 'FETCH LAST FROM c', 'FETCH PRIOR FROM c', 'FETCH ABSOLUTE 10 FROM c', 'MOVE BACKWARD 3 IN c', 'FETCH NEXT FROM c', 'COMMIT']);
q(['BEGIN', `DECLARE c CURSOR FOR SELECT region_id, count(*) FROM accounts GROUP BY region_id ORDER BY 1`, 'FETCH 2 FROM c', 'FETCH 10 FROM c', 'COMMIT']);

// --- parameters (extended protocol)
q(`SELECT aid, name FROM accounts WHERE balance > $1 AND region_id = $2`, 'none', ['10.5', 3]);
q(`SELECT count(*) FROM ledger WHERE note = ANY ($1::text[])`, 'none', [['tea', 'Café']]);
q(`SELECT aid FROM accounts WHERE aid IN (SELECT aid FROM items WHERE price > $1) ORDER BY aid LIMIT $2`, 'total', ['100', 5]);
q(`SELECT region_id, sum(balance) FROM accounts WHERE created < $1 GROUP BY 1`, 'none', ['2024-02-01 00:00:00+00']);
q(`SELECT doc->$1 FROM accounts WHERE aid = $2`, 'none', ['arr', 17]);
q(`SELECT aid FROM accounts ORDER BY aid OFFSET $1 LIMIT $2`, 'total', [3, 4]);

// --- jsonb
q(`SELECT aid, doc->'arr'->>1, doc #> '{arr,0}', doc ? 'k' FROM accounts WHERE doc @> '{"k": 2}'`);
q(`SELECT aid, jsonb_path_query(doc, '$.arr[*] ? (@ > 1)') FROM accounts WHERE aid < 20`);
q(`SELECT count(*) FROM accounts WHERE doc @? '$.v ? (@ > 100)'`);
q(`SELECT doc->>'k', count(*), sum((doc->>'v')::int) FROM accounts GROUP BY 1`);
q(`SELECT aid, doc - 'arr' || '{"x": 1}' FROM accounts WHERE aid BETWEEN -5 AND 5`);
q(`SELECT jsonb_agg(doc ORDER BY aid) FILTER (WHERE doc ? 'v') FROM accounts WHERE aid < 0`);

// --- date/time under TimeZone
q(['SET TimeZone = \'America/New_York\'', `SELECT aid, created, created::date, date_trunc('day', created) FROM accounts WHERE aid < 10`, 'RESET TimeZone']);
q(['SET TimeZone = \'Asia/Kolkata\'', `SELECT extract(hour FROM created), count(*) FROM accounts GROUP BY 1`, 'RESET TimeZone']);
q(['SET TimeZone = \'Pacific/Chatham\'', `SELECT created::date, count(*) FROM accounts GROUP BY 1`, `SELECT count(*) FROM accounts WHERE created < '2024-01-10 12:00'`, 'RESET TimeZone']);
q(`SELECT lid, at + interval '1 month' - interval '3 days', age(at, timestamp '2024-01-01') FROM ledger WHERE lid < 20`);
q(`SELECT date_trunc('month', at), count(*) FROM ledger GROUP BY 1`);
q(`SELECT aid, to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM accounts WHERE aid % 20 = 0`);

// --- errors: overflow, division by zero, casts
q(`SELECT aid * 100000000 FROM accounts`);
q(`SELECT sum(qty * 1000000000) FROM ledger`);
q(`SELECT 1 / (aid - 5) FROM accounts`);
q(`SELECT aid, 10 / qty FROM ledger`);
q(`SELECT sum(amount) / sum(qty - qty) FROM ledger`);
q(`SELECT region_id, sum(balance) / count(*) FILTER (WHERE active AND NOT active) FROM accounts GROUP BY region_id`);
q(`SELECT name::int FROM accounts`);
q(`SELECT (doc->>'name')::numeric FROM accounts`);
q(`SELECT (2147483647 + aid) FROM accounts WHERE aid > 0`);
q(`SELECT nosuchcolumn FROM accounts`);
q(`SELECT * FROM accounts a JOIN nosuchtable n ON true`);
q(`SELECT aid FROM accounts GROUP BY region_id`);

// --- combinations
q(`WITH t AS (SELECT aid, sum(amount) s FROM ledger GROUP BY aid) SELECT a.region_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY t.s), count(*) FILTER (WHERE t.s > 0) FROM accounts a JOIN t USING (aid) GROUP BY ROLLUP (a.region_id)`);
q(`SELECT region_id, string_agg(DISTINCT name, ', ' ORDER BY name), rank() OVER (ORDER BY count(*) DESC, region_id NULLS FIRST) FROM accounts GROUP BY region_id`);
q(`SELECT DISTINCT ON (a.region_id) a.region_id, t.lid FROM accounts a, LATERAL (SELECT lid FROM ledger l WHERE l.aid = a.aid ORDER BY amount DESC NULLS LAST, lid LIMIT 1) t ORDER BY a.region_id, t.lid`, 'total');
q(`SELECT aid FROM accounts WHERE aid IN (SELECT aid FROM ledger GROUP BY aid HAVING count(*) > 2) EXCEPT SELECT aid FROM items`);
q(`SELECT n.nid, a.name, r.rname, i.iid FROM notes n LEFT JOIN accounts a ON a.aid = n.aid LEFT JOIN regions r USING (region_id) LEFT JOIN items i ON i.aid = n.aid AND i.iid < 50`);
q(`SELECT a.aid, sum(l.amount) OVER (PARTITION BY a.aid), i.cnt FROM accounts a JOIN ledger l USING (aid) LEFT JOIN (SELECT aid, count(*) cnt FROM items GROUP BY aid) i USING (aid) WHERE a.aid < 40`);
q(`SELECT region_id, active, array_agg(aid ORDER BY aid) FILTER (WHERE balance > 0), GROUPING(active) FROM accounts GROUP BY GROUPING SETS ((region_id, active), (region_id))`);
q(`SELECT x.aid, x.c FROM (SELECT aid, count(*) c FROM ledger GROUP BY aid ORDER BY c DESC, aid FETCH FIRST 3 ROWS WITH TIES) x`);
q(`WITH RECURSIVE up(aid, n) AS (SELECT aid, 1 FROM accounts WHERE aid IN (1, 2) UNION ALL SELECT u.aid, u.n + 1 FROM up u WHERE u.n < 3) SELECT up.aid, up.n, count(l.lid) FROM up LEFT JOIN ledger l USING (aid) GROUP BY 1, 2`);
q(`SELECT aid, jsonb_object_agg(note, qty) FILTER (WHERE note IS NOT NULL AND qty IS NOT NULL) FROM (SELECT DISTINCT ON (aid, note) aid, note, qty FROM ledger ORDER BY aid, note, lid) d GROUP BY aid`);

// --- more shapes across non-co-located tables
q(`SELECT a.region_id, i.kind, count(*) FROM accounts a JOIN items i ON i.aid = a.aid GROUP BY ROLLUP (a.region_id, i.kind)`);
q(`SELECT DISTINCT ON (i.kind) i.kind, a.aid, i.price FROM items i JOIN accounts a ON a.aid = i.aid ORDER BY i.kind, i.price DESC NULLS LAST, a.aid`, 'total');
q(`SELECT i.iid, rank() OVER (PARTITION BY a.region_id ORDER BY i.price DESC, i.iid) FROM items i JOIN accounts a ON a.aid = i.aid`);
q(`SELECT kind, string_agg(DISTINCT a.name, ';' ORDER BY a.name) FROM items i JOIN accounts a ON a.aid = i.aid GROUP BY kind`);
q(`SELECT i.kind, percentile_disc(0.5) WITHIN GROUP (ORDER BY a.balance) FROM items i JOIN accounts a ON a.aid = i.aid GROUP BY 1`);
q(`SELECT i.iid, t.n FROM items i, LATERAL (SELECT count(*) n FROM ledger l WHERE l.aid = i.aid) t WHERE i.iid < 40`);
q(`WITH RECURSIVE r(iid, d) AS (SELECT iid, 0 FROM items WHERE iid = 1 UNION SELECT i.iid, r.d + 1 FROM r JOIN items i ON i.iid = r.iid * 2 WHERE r.d < 8) SELECT * FROM r`);
q(`SELECT aid FROM items WHERE kind = 'a' UNION SELECT aid FROM (VALUES (-1), (NULL::int)) v(aid) ORDER BY 1 NULLS LAST`, 'total');
q(`SELECT region_id FROM regions INTERSECT SELECT abs(aid) % 10 FROM notes`);
q(`SELECT aid, (SELECT rname FROM regions r WHERE r.region_id = a.region_id) FROM accounts a`);
q(`SELECT region_id, count(*) FROM accounts a GROUP BY region_id HAVING count(*) > (SELECT count(*) / 10 FROM items)`);
q(`SELECT aid, EXISTS (SELECT 1 FROM items i WHERE i.aid = a.aid) FROM accounts a`);
q(`SELECT aid FROM accounts WHERE aid NOT IN (1, NULL)`);
q(`SELECT aid FROM accounts WHERE aid IN (SELECT aid FROM notes) AND aid NOT IN (SELECT aid FROM ledger)`);
q(`SELECT count(*) FROM accounts WHERE region_id = ANY (SELECT region_id FROM regions WHERE zone IS NULL)`);

// --- empty inputs, LIMIT edge values
q(`SELECT count(*), sum(balance), max(aid), array_agg(aid), string_agg(name, ',') FROM accounts WHERE aid > 1000`);
q(`SELECT region_id, count(*) FROM accounts WHERE aid > 1000 GROUP BY region_id`);
q(`SELECT count(*) FROM accounts WHERE false`);
q(`SELECT aid FROM accounts ORDER BY aid LIMIT 0`, 'total');
q(`SELECT aid FROM accounts ORDER BY aid LIMIT ALL OFFSET 235`, 'total');
q(`SELECT aid FROM accounts ORDER BY aid LIMIT NULL OFFSET NULL`, 'total');
q(`SELECT aid FROM accounts ORDER BY aid FETCH FIRST 0 ROWS ONLY`, 'total');
q(`SELECT aid FROM accounts ORDER BY aid LIMIT -1`);
q(`SELECT aid FROM accounts ORDER BY aid OFFSET -1`);

// --- whole rows, records, arrays
q(`SELECT a::text FROM accounts a WHERE aid < 5`);
q(`SELECT row(aid, name, balance) FROM accounts WHERE aid BETWEEN 5 AND 15`);
q(`SELECT to_jsonb(a) FROM accounts a WHERE aid < 3`);
q(`SELECT to_json(r) FROM (SELECT aid, name FROM accounts WHERE aid < 4) r`);
q(`SELECT array_agg(tags) FROM accounts`);
q(`SELECT array_agg(tags ORDER BY aid) FROM accounts WHERE tags IS NOT NULL AND aid < 10`);
q(`SELECT aid, tags FROM accounts WHERE tags && ARRAY['t2'] ORDER BY tags, aid`, 'total');
q(`SELECT t, o FROM accounts, unnest(tags) WITH ORDINALITY AS u(t, o) WHERE aid < 8`);
q(`SELECT DISTINCT tags FROM accounts`);
q(`SELECT doc FROM accounts ORDER BY doc NULLS FIRST, aid LIMIT 10`, 'total');
q(`SELECT active, count(*) FROM accounts GROUP BY active ORDER BY active NULLS FIRST`, 'total');

// --- session settings that change output format or semantics
q(['SET DateStyle = \'German, DMY\'', `SELECT aid, created, created::date FROM accounts WHERE aid BETWEEN 1 AND 4`, 'RESET DateStyle']);
q(['SET DateStyle = \'SQL, MDY\'', `SELECT lid, at FROM ledger WHERE lid < 5`, 'RESET DateStyle']);
q(['SET IntervalStyle = \'sql_standard\'', `SELECT lid, at - timestamp '2024-01-01' FROM ledger WHERE lid < 5`, 'RESET IntervalStyle']);
q(['SET extra_float_digits = 0', `SELECT aid, score, score / 3 FROM accounts WHERE aid < 12`, 'RESET extra_float_digits']);
q(['SET extra_float_digits = 0', `SELECT region_id, sum(score) FROM accounts GROUP BY region_id`, 'RESET extra_float_digits']);
q(['SET bytea_output = \'escape\'', `SELECT aid, convert_to(name, 'UTF8') FROM accounts WHERE aid < 6`, 'RESET bytea_output']);
q(['SET TimeZone = \'America/New_York\'', `SELECT timestamptz '2024-03-10 02:30' + a.aid * interval '1 hour' FROM accounts a WHERE aid < 4`, 'RESET TimeZone']);
q(['SET TimeZone = \'Europe/Berlin\'', `SELECT date_trunc('day', created), count(*) FROM accounts GROUP BY 1`, 'RESET TimeZone']);
q(['SET TimeZone = \'UTC\'', `SELECT aid FROM accounts WHERE created::date = '2024-01-05'`, 'RESET TimeZone']);
q(['SET TimeZone = \'Asia/Tokyo\'', `SELECT aid FROM accounts WHERE created::date = '2024-01-05'`, 'RESET TimeZone']);
q(['SET TimeZone = \'Asia/Tokyo\'', `SELECT aid, created FROM accounts WHERE aid = 7`, 'RESET TimeZone']);
q(['SET TimeZone = \'Asia/Tokyo\'', `SELECT lid, at::timestamptz FROM ledger WHERE lid BETWEEN 10 AND 14`, 'RESET TimeZone']);
q(['SET lc_monetary = \'C\'', `SELECT aid, balance::money FROM accounts WHERE aid < 6`, 'RESET lc_monetary']);
q(['SET search_path = pg_catalog, public', `SELECT count(*) FROM accounts`, 'RESET search_path']);
q(['SET enable_hashagg = off', `SELECT region_id, count(DISTINCT name) FROM accounts GROUP BY region_id`, 'RESET enable_hashagg']);

// --- parameters in more places
q(`SELECT aid, sum(amount) OVER (PARTITION BY aid ORDER BY lid ROWS BETWEEN $1 PRECEDING AND CURRENT ROW) FROM ledger`, 'none', [2]);
q(`SELECT aid, region_id FROM accounts ORDER BY region_id FETCH FIRST $1 ROWS WITH TIES`, [1], [2]);
q(`SELECT aid % $1, count(*) FROM accounts GROUP BY aid % $1`, 'none', [4]);
q(`SELECT count(*) FROM accounts WHERE name = $1`, 'none', ['Zoë 1']);
q(`SELECT $1::int + aid FROM accounts WHERE aid < $2`, 'none', [2147483600, 5]);
q(`SELECT aid FROM accounts WHERE doc @> $1`, 'none', ['{"k": 1}']);
q(`SELECT aid FROM accounts WHERE created > $1`, 'none', ['2024-02-20']);
q(`SELECT percentile_cont($1) WITHIN GROUP (ORDER BY balance) FROM accounts`, 'none', [0.3]);
q(`SELECT string_agg(name, $1 ORDER BY aid) FROM accounts WHERE aid < 10`, 'none', [' / ']);
q(`SELECT aid FROM accounts WHERE aid = ANY ($1)`, 'none', [[1, 2, 150, -3]]);

// --- more errors
q(`SELECT sum(aid)::int2 * 1000 FROM accounts`);
q(`SELECT aid, 1 / (aid - 100) FROM accounts ORDER BY aid LIMIT 3`, 'total');
q(`SELECT region_id, count(*) FROM accounts GROUP BY region_id HAVING sum(balance) / 0 > 1`);
q(`SELECT aid FROM accounts ORDER BY 1 / (aid - aid)`);
q(`SELECT aid, sum(bits) OVER (ORDER BY aid) / (aid - 3) FROM accounts`);
q(`SELECT 1 / 0 FROM accounts WHERE false`);
q(`SELECT (doc->>'name')::int FROM accounts WHERE aid = 5`);
q(`SELECT jsonb_path_query(doc, '$.v ? (@ > $x)') FROM accounts WHERE aid < 3`);
q(`SELECT aid::int2 * aid::int2 * aid::int2 FROM accounts`);
q(`SELECT 9223372036854775807::int8 + aid FROM accounts WHERE aid > 0`);
q(`SELECT -(-2147483648)::int4 FROM accounts LIMIT 1`);
q(`SELECT power(aid::float8, 400) FROM accounts WHERE aid > 5`);
q(`SELECT aid FROM accounts ORDER BY 3`);
q(`SELECT percentile_cont(1.5) WITHIN GROUP (ORDER BY balance) FROM accounts`);
q(`SELECT ntile(0) OVER (ORDER BY aid) FROM accounts`);
q(`SELECT aid FROM accounts LIMIT 'x'`);

// --- writes inside a rolled-back block
q(['BEGIN', `UPDATE accounts SET balance = balance + 1 WHERE region_id = 2 RETURNING aid, balance`, `SELECT sum(balance) FROM accounts`, 'ROLLBACK']);
q(['BEGIN', `DELETE FROM ledger l USING accounts a WHERE a.aid = l.aid AND a.active RETURNING l.lid`, `SELECT count(*) FROM ledger`, 'ROLLBACK']);
q(['BEGIN', `UPDATE items SET price = price * 2 WHERE aid IN (SELECT aid FROM accounts WHERE region_id = 3) RETURNING iid, price`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO ledger (lid, aid, amount) SELECT lid + 1000, aid, amount FROM ledger WHERE qty = 4 RETURNING lid, aid`, `SELECT count(*) FROM ledger`, 'ROLLBACK']);
q(['BEGIN', `UPDATE accounts SET bits = bits / (aid - 7) WHERE aid BETWEEN 5 AND 9`, 'ROLLBACK']);

// --- repartition joins on cross-type and non-distribution keys (forced with a zero threshold)
for (const on of [`i.price = l.amount`, `i.iid = l.amount`, `i.iid::int8 = l.lid::int8`, `i.iid = l.lid::int8`, `i.label = l.note || ''`, `i.price::float8 = l.amount::float8`]) {
  q([`SET pgweave.repartition_join_threshold = 0`, `SELECT count(*), sum(i.iid), sum(l.lid) FROM items i JOIN ledger l ON ${on}`, `RESET pgweave.repartition_join_threshold`]);
}
q([`SET pgweave.repartition_join_threshold = 0`, `SELECT a.aid, i.iid FROM accounts a JOIN items i ON i.price = a.balance`, `RESET pgweave.repartition_join_threshold`]);
q([`SET pgweave.repartition_join_threshold = 0`, `SELECT a.aid, i.iid FROM accounts a LEFT JOIN items i ON i.aid = a.bits`, `RESET pgweave.repartition_join_threshold`]);

// --- LIMIT over windows, DISTINCT and aggregates
q(`SELECT aid, count(*) OVER () FROM accounts ORDER BY aid LIMIT 3`, 'total');
q(`SELECT aid, row_number() OVER (ORDER BY aid DESC) FROM accounts ORDER BY aid LIMIT 5`, 'total');
q(`SELECT aid, sum(balance) OVER (ORDER BY aid) FROM accounts ORDER BY aid DESC LIMIT 4`, 'total');
q(`SELECT DISTINCT region_id FROM accounts ORDER BY region_id LIMIT 2`, 'total');
q(`SELECT DISTINCT name FROM accounts ORDER BY name DESC LIMIT 3 OFFSET 1`, 'total');
q(`SELECT region_id, count(*) FROM accounts GROUP BY region_id ORDER BY count(*) DESC, region_id LIMIT 2`, 'total');
q(`SELECT sum(x), count(*) FROM (SELECT aid AS x FROM accounts ORDER BY aid LIMIT 10) s`);
q(`SELECT a.aid, a.name FROM (SELECT aid FROM ledger ORDER BY amount DESC NULLS LAST, lid LIMIT 5) t JOIN accounts a USING (aid)`);
q(`SELECT t.aid, i.iid FROM (SELECT aid FROM accounts ORDER BY balance NULLS LAST, aid LIMIT 6) t JOIN items i USING (aid)`);
q(`SELECT region_id, n FROM (SELECT region_id, count(*) n, row_number() OVER (ORDER BY count(*) DESC, region_id) rn FROM accounts GROUP BY region_id) s WHERE rn <= 2`);

// --- implicitly ordered or order-dependent aggregates
q(`SELECT array_agg(DISTINCT region_id) FROM accounts`);
q(`SELECT string_agg(DISTINCT name, ',') FROM accounts`);
q(`SELECT aid, jsonb_object_agg(note, lid) FROM ledger WHERE note IS NOT NULL AND aid < 20 GROUP BY aid HAVING count(DISTINCT note) = count(*)`);
q(`SELECT min(name), max(name), min(name COLLATE "C"), max(tags), min(created), max(doc->>'name') FROM accounts`);
q(`SELECT sum(at - timestamp '2024-01-01'), avg(at - timestamp '2024-01-01') FROM ledger`);
q(`SELECT region_id, count(*) FROM accounts GROUP BY ROLLUP (region_id) HAVING GROUPING(region_id) = 1 OR count(*) > 45`);

// --- server-side objects used in multi-shard queries
q(`SELECT tableoid::regclass, count(*) FROM accounts GROUP BY 1`);
q(`SELECT tableoid::regclass FROM accounts WHERE aid = 1`);
q(`CREATE SEQUENCE sweep_seq`);
q(`SELECT count(DISTINCT nextval('sweep_seq')) FROM accounts`);
q(`CREATE FUNCTION sweep_double(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'`);
q(`SELECT sum(sweep_double(aid)) FROM accounts`);
q(`SELECT aid FROM accounts WHERE sweep_double(aid) = 20`);
q(`CREATE TYPE sweep_mood AS ENUM ('sad', 'ok', 'happy')`);
q(`SELECT (ARRAY['sad', 'ok', 'happy']::sweep_mood[])[1 + abs(aid) % 3]::text, count(*) FROM accounts GROUP BY 1`);
q(`SELECT count(*) FROM accounts TABLESAMPLE BERNOULLI (100)`);

// --- text semantics: case mapping, patterns, comparison
q(`SELECT aid, upper(name), lower(name), initcap(name) FROM accounts WHERE name LIKE '%ë%' OR name LIKE 'é%'`);
q(`SELECT count(*) FROM accounts WHERE name ILIKE 'ÉMILE'`);
q(`SELECT aid FROM accounts WHERE name ~ '^Zo' AND name < 'Zoë 2'`);
q(`SELECT note, count(*) FROM ledger WHERE note COLLATE "C" < 'b' GROUP BY note`);
q(`SELECT aid, length(name), octet_length(name), left(name, 2) FROM accounts WHERE aid % 7 = 0`);

// --- a named prepared statement run again with other values (PostgreSQL switches to a generic plan after five)
p(`SELECT aid, name FROM accounts WHERE aid = $1`, [[5], [6], [7], [8], [9], [10], [null], ['11'], [-40]]);
p(`SELECT count(*), sum(amount) FROM ledger WHERE qty > $1`, [[0], [5], [10], [-3], [20], [1], [null]]);
p(`SELECT aid FROM accounts WHERE aid IN ($1, $2) ORDER BY aid`, [[1, 150], [2, 3], [-7, 200], [1, 1], [4, 5], [6, 7], [null, 8]]);
p(`SELECT region_id, count(*) FROM accounts WHERE region_id = $1 OR $1 IS NULL GROUP BY 1`, [[1], [2], [3], [4], [0], [null], [9]]);
p(`SELECT aid FROM accounts ORDER BY aid LIMIT $1 OFFSET $2`, [[3, 0], [2, 10], [1, 230], [5, 5], [0, 0], [null, 238], [4, null]]);

// --- blocks, savepoints and errors inside them
q(['BEGIN', `SAVEPOINT s`, `SELECT 1 / (aid - 5) FROM accounts`, `ROLLBACK TO SAVEPOINT s`, `SELECT count(*) FROM accounts`, 'COMMIT']);
q(['BEGIN', `SELECT count(*) FROM ledger`, `SELECT 1 / 0 FROM accounts`, `SELECT count(*) FROM ledger`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO accounts (aid, name) VALUES (1000, 'new one')`, `SELECT count(*), max(aid) FROM accounts`, `SELECT a.name, count(l.lid) FROM accounts a LEFT JOIN ledger l USING (aid) WHERE a.aid >= 199 GROUP BY 1`, 'ROLLBACK']);
q(['BEGIN', `SAVEPOINT s`, `SELECT count(*) FROM accounts FOR SHARE`, `SELECT 1`, `ROLLBACK TO SAVEPOINT s`, `SELECT count(*) FROM accounts`, 'COMMIT']);
q(['BEGIN', `INSERT INTO accounts (aid, name) VALUES (1001, 'kept?')`, `SELECT region_id, count(*) FROM accounts GROUP BY 1 FOR UPDATE`, `SELECT 1`, 'COMMIT', `SELECT count(*) FROM accounts WHERE aid = 1001`]);
q(['BEGIN', [`SELECT count(*) FROM accounts WHERE region_id = $1 FOR SHARE`, [2]], [`SELECT $1::int`, [1]], 'SELECT 2', 'COMMIT']);
q(['BEGIN ISOLATION LEVEL REPEATABLE READ', `SELECT count(*) FROM ledger`, `SELECT sum(amount) FROM ledger`, 'COMMIT']);
q(`SELECT a.aid FROM accounts a JOIN ledger l USING (aid) WHERE l.qty = 3 FOR UPDATE`);
q(`SELECT region_id, count(*) FROM accounts GROUP BY region_id FOR UPDATE`);
q(`SELECT a.aid FROM accounts a JOIN regions r USING (region_id) WHERE r.zone = 'y' FOR SHARE`);

// --- set-returning functions in the select list
q(`SELECT aid, generate_series(1, 2) FROM accounts WHERE aid < 5`);
q(`SELECT aid, unnest(tags) FROM accounts`);
q(`SELECT unnest(tags), count(*) FROM accounts GROUP BY 1`);
q(`SELECT aid, jsonb_array_elements(doc->'arr') FROM accounts WHERE aid < 10`);
q(`SELECT aid, unnest(tags) AS t FROM accounts ORDER BY aid, t LIMIT 7`, 'total');
q(`SELECT a.aid, f.* FROM accounts a, ROWS FROM (generate_series(1, 2), unnest(a.tags)) f(n, t) WHERE a.aid < 4`);

// --- expressions and join forms
q(`SELECT aid FROM accounts WHERE (aid, region_id) > (5, 2) ORDER BY aid LIMIT 3`, 'total');
q(`SELECT aid FROM accounts WHERE aid BETWEEN SYMMETRIC 10 AND 5`);
q(`SELECT aid, region_id IS DISTINCT FROM 2, nullif(region_id, 1), coalesce(name, '?') FROM accounts WHERE aid < 15`);
q(`SELECT CASE WHEN balance > 0 THEN 'plus' WHEN balance < 0 THEN 'minus' END AS sign, count(*) FROM accounts GROUP BY 1`);
q(`SELECT region_id, active, name, count(*) FROM accounts GROUP BY DISTINCT ROLLUP (region_id, active), ROLLUP (region_id, name)`);
q(`SELECT count(*) FROM accounts NATURAL JOIN ledger`);
q(`SELECT j.aid, count(*) FROM accounts a JOIN ledger l USING (aid) AS j WHERE j.aid < 10 GROUP BY 1`);
q(`WITH RECURSIVE t(n) AS (SELECT aid FROM accounts WHERE aid IN (1, 2) UNION ALL SELECT n * 3 FROM t WHERE n < 50) SEARCH DEPTH FIRST BY n SET ord SELECT n, ord FROM t ORDER BY ord`, 'total');
q(`WITH RECURSIVE t(n) AS (SELECT aid % 5 FROM accounts WHERE aid < 3 UNION ALL SELECT (n + 1) % 5 FROM t) CYCLE n SET is_cycle USING path SELECT n, is_cycle, path FROM t`);
q(['BEGIN', `WITH moved AS (DELETE FROM ledger WHERE aid = 12 RETURNING lid, aid) SELECT count(*) FROM moved`, `SELECT count(*) FROM ledger WHERE aid = 12`, 'ROLLBACK']);
q(`VALUES (1, 'a'), (2, NULL)`);

// --- numeric precision and scale through the combine step
q(`SELECT sum(amount / 3), avg(amount / 7), avg(balance), sum(balance) / 7 FROM accounts a JOIN ledger l USING (aid)`);
q(`SELECT round(avg(bits), 20), avg(bits::numeric(20, 10)), avg(qty::int8), sum(qty::int2) FROM accounts a JOIN ledger l USING (aid)`);
q(`SELECT aid, avg(amount)::numeric(10, 4), stddev(amount) FROM ledger GROUP BY aid`);
q(`SELECT avg(score), sum(score), stddev(score), var_pop(score) FROM accounts`);
q(`SELECT avg(score::float4), sum(score::float4), max(score::float4) FROM accounts`);
q(`SELECT sum(x), avg(x) FROM (SELECT aid * 1e-30 AS x FROM accounts) s`);
q(`SELECT sum('NaN'::numeric * (aid % 2)), max(score * 'Infinity'::float8) FROM accounts WHERE aid > 0`);

// --- shapes whose subqueries are deparsed (recursively planned next to a table that is not co-located)
q(`SELECT s.aid, s.lv, i.iid FROM (SELECT aid, last_value(aid) OVER (PARTITION BY region_id ORDER BY aid ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) lv FROM accounts) s JOIN items i ON i.iid = s.lv`);
q(`SELECT s.lid, s.c, i.iid FROM (SELECT lid, count(*) OVER (ORDER BY qty GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING) c FROM ledger) s JOIN items i ON i.iid = s.c`);
q(`WITH "Big" AS (SELECT aid, balance FROM accounts WHERE balance > 100 ORDER BY balance LIMIT 20) SELECT count(*), sum(i.price) FROM "Big" b JOIN items i ON i.aid = b.aid`);
q(`SELECT s.k, count(*) FROM (SELECT (ARRAY['x', 'y', 'z'])[1 + abs(aid) % 3] AS k, aid FROM accounts ORDER BY aid LIMIT 50) s JOIN items i ON i.aid = s.aid GROUP BY 1`);
q(`SELECT s.aid, s.c FROM (SELECT aid, count(*) OVER ("W") c FROM ledger WINDOW "W" AS (PARTITION BY qty) ORDER BY lid LIMIT 30) s JOIN items i ON i.iid = s.aid`);
q(`SELECT region_id, active, name, count(*) FROM (SELECT * FROM accounts ORDER BY aid LIMIT 100) a GROUP BY DISTINCT ROLLUP (region_id, active), ROLLUP (region_id, name)`);
q(`WITH RECURSIVE t(n) AS (SELECT aid FROM accounts WHERE aid IN (1, 2) UNION ALL SELECT n * 3 FROM t WHERE n < 50) SEARCH DEPTH FIRST BY n SET ord SELECT t.n, t.ord, i.iid FROM t JOIN items i ON i.iid = t.n ORDER BY ord`, 'total');

// --- distribution-column constants the router hashes (PostgreSQL's input rules decide)
for (const v of [`1.0`, `1.5`, `'1.0'`, `' 5 '`, `'+5'`, `'0x10'`, `'1_000'`, `'99999999999'`, `99999999999`, `'1a'`, `NULL`, `2::int8`, `2::numeric`, `'-0'`, `1/0`, `'  -7'`]) {
  q(`SELECT aid, name FROM accounts WHERE aid = ${v}`);
}
q(`SELECT aid FROM accounts WHERE aid IN (1, 2.0, 3.5, '4')`);
q(`SELECT aid FROM accounts WHERE aid = ANY ('{1, 6, 11}')`);
q(`SELECT count(*) FROM ledger WHERE aid = 12 AND aid = 13`);
q(`SELECT count(*) FROM ledger WHERE aid = 12 OR aid = -13`);
q(`SELECT aid, 'x' FROM accounts WHERE aid = $1`, 'none', ['1.0']);
q(`SELECT aid FROM accounts WHERE aid = $1::numeric`, 'none', ['2.0']);
q(`SELECT aid FROM accounts WHERE aid = $1`, 'none', [' 8 ']);

// --- more writes inside rolled-back blocks
q(['BEGIN', `UPDATE accounts a SET balance = i.price FROM items i WHERE i.iid = a.aid AND a.aid < 20 RETURNING a.aid, a.balance`, 'ROLLBACK']);
q(['BEGIN', `DELETE FROM accounts WHERE region_id IN (SELECT region_id FROM regions WHERE zone = 'z') OR aid IN (SELECT aid FROM notes WHERE nid < 5) RETURNING aid`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO ledger (lid, aid, amount) SELECT 2000 + row_number() OVER (ORDER BY aid), aid, balance FROM accounts WHERE balance > 150 RETURNING lid, aid, amount`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO accounts (aid, name) SELECT aid + 1000, name FROM accounts ORDER BY aid LIMIT 5 RETURNING aid, name`, `SELECT count(*) FROM accounts`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO accounts (aid, name) VALUES (5, 'dup') ON CONFLICT (aid) DO UPDATE SET name = excluded.name || accounts.name RETURNING aid, name`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO accounts (aid, name) VALUES (5, 'dup')`, 'ROLLBACK']);
q(['BEGIN', `UPDATE accounts SET aid = aid + 1 WHERE aid = 5`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO items (iid, aid) SELECT g, NULL FROM generate_series(1000, 1004) g RETURNING iid`, `SELECT count(*) FROM items WHERE iid >= 1000`, 'ROLLBACK']);
q(['BEGIN', `UPDATE ledger SET qty = qty * 1000000000 WHERE aid = 30`, 'ROLLBACK']);
q(['BEGIN', `INSERT INTO ledger (lid, aid) VALUES (1, NULL)`, 'ROLLBACK']);

// --- features inside a subquery that becomes an intermediate result (LIMIT, joined to a table not co-located)
for (const [cols, from] of [
  [`DISTINCT ON (region_id) region_id, aid`, `accounts ORDER BY region_id, aid DESC LIMIT 60`],
  [`aid, region_id`, `accounts ORDER BY region_id NULLS FIRST FETCH FIRST 7 ROWS WITH TIES`],
  [`aid, doc #> '{arr,0}' AS x, doc ?| ARRAY['k', 'zz'] AS y, doc @? '$.arr[*] ? (@ > 2)' AS z`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, u.t`, `accounts, LATERAL unnest(tags) WITH ORDINALITY u(t, o) ORDER BY aid, o LIMIT 60`],
  [`aid, name`, `accounts ORDER BY name COLLATE "C" DESC NULLS LAST, aid LIMIT 60`],
  [`region_id AS aid, count(*) FILTER (WHERE active) AS x, percentile_disc(0.5) WITHIN GROUP (ORDER BY balance) AS y`, `accounts GROUP BY region_id ORDER BY 1 LIMIT 60`],
  [`region_id AS aid, active, GROUPING(region_id, active) AS g, count(*) AS n`, `accounts GROUP BY CUBE (region_id, active) ORDER BY 1, 2, 3 LIMIT 60`],
  [`aid, E'tab\\there' || name AS x, 'Zoë ' || aid AS y, U&'\\00e9' AS z`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, region_id IS DISTINCT FROM 2 AS x, aid BETWEEN SYMMETRIC 50 AND 10 AS y, name ILIKE 'É%' AS z, name SIMILAR TO '(acct|Zo)%' AS w`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, (aid, region_id) > (10, 1) AS x, row(aid, name)::text AS y`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, sum(bits) OVER w AS x, rank() OVER (w ORDER BY bits DESC) AS y`, `accounts WINDOW w AS (PARTITION BY region_id) ORDER BY aid LIMIT 60`],
  [`aid, created AT TIME ZONE 'America/New_York' AS x, created + interval '1' day AS y, date_trunc('hour', created) AS z`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, balance::text AS x, score::numeric(10, 3) AS y, bits::bit(8) AS z, tags[1] AS w`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, CASE WHEN balance IS NULL THEN 'none' WHEN balance < 0 THEN 'neg' ELSE 'pos' END AS x, coalesce(nullif(name, 'émile'), '?') AS y`, `accounts ORDER BY aid LIMIT 60`],
  [`aid, (SELECT max(r.rname) FROM regions r WHERE r.region_id = a.region_id) AS x, EXISTS (SELECT 1 FROM ledger l WHERE l.aid = a.aid AND l.qty > 15) AS y`, `accounts a ORDER BY aid LIMIT 60`],
  [`aid, string_agg(note, ',' ORDER BY note DESC) AS x, array_agg(DISTINCT qty) AS y`, `ledger GROUP BY aid ORDER BY aid LIMIT 60`],
] as const) {
  q(`SELECT s.*, i.iid FROM (SELECT ${cols} FROM ${from}) s JOIN items i ON i.aid = s.aid`);
}
q([`SET TimeZone = 'Asia/Kolkata'`, `SELECT s.*, i.iid FROM (SELECT aid, created::date AS d, to_char(created, 'HH24:MI TZ') AS t FROM accounts ORDER BY aid LIMIT 60) s JOIN items i ON i.aid = s.aid`, 'RESET TimeZone']);
q(`SELECT s.*, i.iid FROM (SELECT aid, balance FROM accounts WHERE balance > $1 ORDER BY aid LIMIT $2) s JOIN items i ON i.aid = s.aid`, 'none', ['-20', 40]);

// --- SQL-level PREPARE, CREATE TABLE AS, functions and DO blocks that read distributed tables
q([`PREPARE sweep_p(int) AS SELECT aid, name FROM accounts WHERE region_id = $1 ORDER BY aid`, `EXECUTE sweep_p(1)`, `EXECUTE sweep_p(3)`, `DEALLOCATE sweep_p`]);
q([`PREPARE sweep_q(int) AS SELECT aid FROM accounts WHERE aid = $1`, `EXECUTE sweep_q(7)`, `EXECUTE sweep_q(8)`, `DEALLOCATE sweep_q`]);
q([`CREATE TEMP TABLE sweep_copy AS SELECT aid, name FROM accounts WHERE region_id = 1`, `SELECT count(*), min(aid), max(aid) FROM sweep_copy`, `DROP TABLE sweep_copy`]);
q([`SELECT aid, balance INTO TEMP sweep_into FROM accounts WHERE balance > 100`, `SELECT count(*) FROM sweep_into`, `DROP TABLE sweep_into`]);
q([`CREATE FUNCTION sweep_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM accounts'`, `SELECT sweep_count()`]);
q([`CREATE FUNCTION sweep_plpgsql(r int) RETURNS bigint LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN (SELECT count(*) FROM ledger WHERE aid = r); END $$`, `SELECT sweep_plpgsql(12)`, `SELECT sum(sweep_plpgsql(aid)) FROM accounts WHERE aid < 20`]);
q(`DO $$ BEGIN IF (SELECT count(*) FROM accounts) <> 241 THEN RAISE EXCEPTION 'saw % accounts', (SELECT count(*) FROM accounts) USING ERRCODE = 'P0009'; END IF; END $$`);

// --- name resolution errors, domains, cross products
q(`SELECT DISTINCT name FROM accounts ORDER BY aid`);
q(`SELECT region_id FROM accounts a JOIN regions r ON true`);
q(`SELECT aid FROM accounts a JOIN ledger l USING (aid) JOIN items i USING (aid) WHERE false`);
q(`CREATE DOMAIN sweep_posint AS int CHECK (VALUE > 0)`);
q(`SELECT count(*) FROM accounts WHERE aid > 0 AND aid::sweep_posint > 5`);
q(`SELECT aid::sweep_posint FROM accounts`);
q(`SELECT count(*) FROM accounts CROSS JOIN items`);
q(`SELECT count(*), sum(a.aid * l.lid) FROM accounts a, ledger l WHERE a.aid < 10 AND l.lid < 10`);
q(`SELECT aid, name FROM accounts WHERE aid = (SELECT max(aid) FROM items)`);
q(`SELECT aid FROM accounts WHERE aid = ANY (SELECT aid FROM notes WHERE aid IS NOT NULL)`);
q(`SELECT name FROM accounts WHERE name = 'émile' COLLATE "C" LIMIT 1`);

// --- schema changes through pgweave, then reads (last: they change the tables for what follows)
q(`ALTER TABLE ledger ADD COLUMN extra int DEFAULT 7`);
q(`ALTER TABLE ledger DROP COLUMN note`);
q(`SELECT * FROM ledger WHERE aid = 12`);
q(`SELECT * FROM ledger ORDER BY lid LIMIT 5`, 'total');
q(`SELECT l.*, a.name FROM ledger l JOIN accounts a USING (aid) WHERE l.lid < 30`);
q(`SELECT l.*, i.kind FROM ledger l JOIN items i ON i.iid = l.lid WHERE l.lid < 30`);
q(['BEGIN', `INSERT INTO ledger (lid, aid, amount) VALUES (9000, 3, 1.5) RETURNING *`, `SELECT * FROM ledger WHERE lid = 9000`, 'ROLLBACK']);
q(`ALTER TABLE accounts ALTER COLUMN bits TYPE int8`);
q(`SELECT sum(bits), pg_typeof(sum(bits))::text FROM accounts`);
q(`ALTER TABLE accounts RENAME COLUMN name TO label`);
q(`SELECT label, count(*) FROM accounts GROUP BY label`);

// --- ORDER BY … LIMIT merged on the coordinator, over sort keys of many types
for (const key of [`tags DESC NULLS LAST`, `doc->'v'`, `created AT TIME ZONE 'Asia/Tokyo'`, `balance::text`, `at - timestamp '2024-01-01'`, `bits::bit(8)`, `(aid % 7, name)`, `name COLLATE "C" NULLS FIRST`, `upper(name) DESC`, `score * 0 + 'NaN'::float8`, `-aid::numeric / 7`, `to_char(created, 'Day')`]) {
  const [table, extra] = key.startsWith('at ') ? ['ledger', 'lid'] : ['accounts', 'aid'];
  q(`SELECT ${extra}, ${key} AS k FROM ${table} ORDER BY ${key}, ${extra} LIMIT 9`, 'total');
}

/** How an outcome pair differs, or null when it does not. */
function divergenceKind(expected: QueryOutcome, actual: QueryOutcome, order: OrderSpec): { kind: string; detail: string } | null {
  if (!expected.ok && !actual.ok) {
    return expected.code === actual.code ? null : { kind: `sqlstate ${expected.code} vs ${actual.code}`, detail: `PostgreSQL: ${expected.message}; pgweave: ${actual.message}` };
  }
  if (!expected.ok) return { kind: `pgweave succeeds where PostgreSQL fails with ${expected.code}`, detail: expected.message };
  if (!actual.ok) return { kind: `pgweave fails with ${actual.code}`, detail: actual.message };
  const diff = compareResults(expected.result, actual.result, order);
  if (diff !== null) return { kind: `wrong result: ${diff.split(':')[0]}`, detail: diff };
  const [e, a] = [expected.result, actual.result];
  if (e.command !== a.command || e.rowCount !== a.rowCount) return { kind: 'wrong command tag', detail: `PostgreSQL ${e.command} ${e.rowCount}, pgweave ${a.command} ${a.rowCount}` };
  return null;
}

/** PGWEAVE_SWEEP_RECORD=FILE writes every divergence found, [statement, kind] as JSON, to FILE (for updating KNOWN_DIVERGENCES). */
const RECORD = process.env.PGWEAVE_SWEEP_RECORD ?? null;

let pair: DifferentialPair | undefined;
let weave: pg.Client;
let reference: pg.Client;

before(async () => {
  pair = await startDifferentialPair('feature_sweep', SETUP, DISTRIBUTE);
  ({ weave, reference } = pair);
}, { timeout: 300_000 });

after(() => pair?.stop());

test(`the feature sweep (${S.length} statements) answers as PostgreSQL does, except the known divergences`, { timeout: 600_000 }, async () => {
  const unexpected: string[] = [];
  const seen = new Set<string>();
  const found: Array<[string, string]> = [];
  for (const s of S) {
    const steps = (typeof s.sql === 'string' ? [s.sql] : s.sql).map((x) => (typeof x === 'string' ? { step: x, values: s.values } : { step: x[0], values: x[1] }));
    const key = steps.map((x) => x.step).join(' ; ');
    let diverged: { kind: string; detail: string } | null = null;
    const runs = s.runs ? s.runs.map((values) => ({ step: steps[0]!.step, values, name: `sweep_${S.indexOf(s)}` as string | undefined })) : steps.map((x) => ({ ...x, name: undefined }));
    for (const { step, values, name } of runs) {
      const [expected, actual] = [await runQuery(reference, step, 30_000, values, name), await runQuery(weave, step, 30_000, values, name)];
      diverged ??= divergenceKind(expected, actual, s.order ?? 'none');
    }
    // A block left open by a failed step must not leak into the next statement.
    if (steps[0]!.step.startsWith('BEGIN')) for (const c of [weave, reference]) await c.query('ROLLBACK').catch(() => {});
    const known = KNOWN_DIVERGENCES.get(key);
    if (known !== undefined) seen.add(key);
    if (diverged !== null) found.push([key, diverged.kind]);
    if (diverged === null && known !== undefined) unexpected.push(`now answers like PostgreSQL (remove it from KNOWN_DIVERGENCES): ${key}`);
    else if (diverged !== null && known !== diverged.kind) unexpected.push(`${key}\n    ${diverged.kind}${known ? ` (recorded: ${known})` : ''}\n    ${diverged.detail}`);
  }
  if (RECORD) writeFileSync(RECORD, JSON.stringify(found, null, 1));
  for (const key of KNOWN_DIVERGENCES.keys()) if (!seen.has(key)) unexpected.push(`KNOWN_DIVERGENCES entry matches no statement: ${key}`);
  assert.equal(unexpected.length, 0, `${unexpected.length} statement(s) differ from the record:\n${unexpected.join('\n')}`);
});

/**
 * A whole-row column's type is the table's row type in pgweave's own catalog
 * (what a client looks up), whichever planner ran the query. Known: the pull
 * planner sends the row type of its temporary pull table instead, which no
 * longer exists after the statement.
 */
test("a whole-row column is typed as the table's row type", async () => {
  const rowType = await runQuery(weave, `SELECT 'accounts'::regtype::oid`);
  assert.ok(rowType.ok);
  const oid = Number(rowType.result.rows[0]![0]);
  const typeOf = async (sql: string) => {
    const r = await runQuery(weave, sql);
    assert.ok(r.ok, `${sql}: ${!r.ok && r.message}`);
    return r.result.types[0];
  };
  assert.equal(await typeOf(`SELECT x FROM accounts x WHERE aid = 3`), oid);
  assert.equal(await typeOf(`SELECT x FROM accounts x WHERE aid < 3`), oid);
  assert.equal(await typeOf(`SELECT x FROM accounts x ORDER BY aid LIMIT 2`), oid);
  // Still differs (the pull's temporary table's row type, gone after the statement): flip to equal once fixed.
  assert.notEqual(await typeOf(`SELECT x FROM accounts x FULL JOIN items i ON i.aid = x.aid`), oid);
});
