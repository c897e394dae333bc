/**
 * The parse-tree walker (src/sql/tree-walk.ts) on trees of PostgreSQL's own
 * parser: which objects it visits and in what order, what SKIP and STOP do,
 * and that a visitor can replace a node at `parent[key]`.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql, type Node } from '../../src/sql/parse.js';
import { SKIP, STOP, someNode, walkTree } from '../../src/sql/tree-walk.js';

before(() => initParser());

const stmt = (sql: string): Node => parseSql(sql).stmts[0]!.stmt;

/** The names of the ColumnRefs a walk visits, in order. */
function columns(tree: Node, skipSubLinks: boolean): string[] {
  const out: string[] = [];
  walkTree(tree, (n) => {
    if (skipSubLinks && n.SubLink) return SKIP;
    const fields = n.ColumnRef?.fields as Node[] | undefined;
    if (fields) out.push(fields.map((f) => f.String?.sval ?? '*').join('.'));
  });
  return out;
}

test('walkTree visits every object in pre-order, through arrays, and SKIP leaves a node’s children out', () => {
  const tree = stmt('SELECT a, t.b FROM t WHERE c = 1 AND d IN (SELECT e FROM u) ORDER BY f');
  assert.deepEqual(columns(tree, false), ['a', 't.b', 'c', 'd', 'e', 'f']);
  assert.deepEqual(columns(tree, true), ['a', 't.b', 'c', 'f']);
  // The root may be an array (a parse result's statements) or a leaf.
  assert.deepEqual(columns([tree, stmt('SELECT g')], false), ['a', 't.b', 'c', 'd', 'e', 'f', 'g']);
  assert.equal(walkTree(null, () => STOP), false);
  assert.equal(walkTree('text', () => STOP), false);
});

test('STOP ends the walk and walkTree reports it; someNode stops at the first match', () => {
  const tree = stmt('SELECT a FROM t WHERE b = $1 AND c = $2');
  const seen: number[] = [];
  const stopped = walkTree(tree, (n) => {
    if (!n.ParamRef) return;
    seen.push(n.ParamRef.number);
    return STOP;
  });
  assert.equal(stopped, true);
  assert.deepEqual(seen, [1]);
  assert.equal(walkTree(tree, () => undefined), false);
  let calls = 0;
  assert.equal(someNode(tree, (n) => (calls++, !!n.ParamRef)), true);
  const upToFirst = calls;
  calls = 0;
  assert.equal(someNode(tree, (n) => (calls++, !!n.SubLink)), false);
  assert.ok(upToFirst < calls, 'someNode looked past its first match');
});

test('a visitor replaces a node at parent[key], in objects and arrays, and the walk does not enter the replacement', () => {
  const tree = stmt('SELECT $1, f($2) FROM t WHERE a = $3');
  const keys: Array<string | number | null> = [];
  walkTree(tree, (n, key, parent) => {
    if (parent === null) keys.push(key);
    if (!n.ParamRef) return;
    parent[key!] = { A_Const: { sval: { sval: `p${n.ParamRef.number}` } } };
    return SKIP;
  });
  assert.deepEqual(keys, [null]);
  assert.equal(someNode(tree, (n) => !!n.ParamRef), false);
  const consts: string[] = [];
  walkTree(tree, (n) => {
    if (n.A_Const?.sval) consts.push(n.A_Const.sval.sval);
  });
  assert.deepEqual(consts, ['p1', 'p2', 'p3']);
});
