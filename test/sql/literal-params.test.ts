/**
 * The constants-to-parameters scan of auto-prepared reads
 * (src/sql/literal-params.ts): which constants become `$n` with what value
 * and type, which lexical forms make it refuse the statement, and on
 * PostgreSQL's own parse trees which contexts keep a statement literal.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql } from '../../src/sql/parse.js';
import { parameterizeLiterals, paramsAreComparedColumns } from '../../src/sql/literal-params.js';

before(() => initParser());

test('plain strings and int4 integers become $n with their values and types; comments, quoted names and words stay', () => {
  assert.deepEqual(parameterizeLiterals(`SELECT abalance FROM pgbench_accounts WHERE aid = 4711;`), {
    text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
    values: ['4711'],
    types: [23],
  });
  assert.deepEqual(parameterizeLiterals(`select * from "we""ird 1" where k = 'it''s' and 2147483647 < n -- 'no' 3\n/* 4 /* 'x' */ */ and t1 = 'ü'`), {
    text: `select * from "we""ird 1" where k = $1 and $2 < n -- 'no' 3\n/* 4 /* 'x' */ */ and t1 = $3`,
    values: ["it's", '2147483647', 'ü'],
    types: [0, 23, 0],
  });
});

test('forms the scan does not model refuse the statement', () => {
  for (const sql of [
    `SELECT 1 FROM t WHERE a = E'x\\'y'`,
    `SELECT 1 FROM t WHERE a = B'101'`,
    `SELECT 1 FROM t WHERE a = X'1f'`,
    `SELECT 1 FROM t WHERE a = N'x'`,
    `SELECT 1 FROM t WHERE a = U&'d\\0061t'`,
    `SELECT 1 FROM t WHERE a = $$x$$`,
    `SELECT 1 FROM t WHERE a = $1`,
    `SELECT 1 FROM t WHERE a = 'con'\n 'tinued'`,
    `SELECT 1 FROM t WHERE a = 1.5`,
    `SELECT 1 FROM t WHERE a = .5`,
    `SELECT 1 FROM t WHERE a = 1e3`,
    `SELECT 1 FROM t WHERE a = 2147483648`,
    `SELECT 1 FROM t WHERE a = 'unterminated`,
    `SELECT a FROM t`,
  ]) {
    assert.equal(parameterizeLiterals(sql), null, sql);
  }
});

test('only comparisons with a column keep their parameters', () => {
  const verdict = (sql: string) => {
    const lit = parameterizeLiterals(sql)!;
    return paramsAreComparedColumns(parseSql(lit.text).stmts[0]!.stmt, lit.values.length);
  };
  for (const sql of [
    `SELECT * FROM t WHERE a = 5`,
    `SELECT * FROM t WHERE 5 <> a AND b >= 'x' AND t.c < 3`,
    `SELECT * FROM t JOIN u ON u.k = t.k AND u.z = 'q' WHERE t.a = 1`,
    `SELECT * FROM t WHERE a = 1 AND b IN (SELECT b FROM u WHERE u.c = 2)`,
  ]) {
    assert.equal(verdict(sql), true, sql);
  }
  for (const sql of [
    `SELECT * FROM t WHERE a = -5`,
    `SELECT * FROM t WHERE a = 5 LIMIT 3`,
    `SELECT 5 FROM t WHERE a = 1`,
    `SELECT * FROM t WHERE a = '5'::int`,
    `SELECT * FROM t WHERE a = f(5)`,
    `SELECT * FROM t WHERE a + 1 = 5`,
    `SELECT * FROM t WHERE a LIKE 'x%'`,
    `SELECT * FROM t WHERE a IN (1, 2)`,
    `SELECT * FROM t WHERE a BETWEEN 1 AND 2`,
    `SELECT * FROM t WHERE 1 = 1`,
    `SELECT * FROM t WHERE a = 1 ORDER BY 1`,
  ]) {
    assert.equal(verdict(sql), false, sql);
  }
});
