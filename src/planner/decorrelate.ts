/**
 * Decorrelation of scalar-aggregate subqueries (TPC-H Q2, Q17, Q20): a
 * correlated `(SELECT <expression over aggregates> FROM … WHERE inner = outer
 * AND …)` is evaluated by PostgreSQL once per outer row — over distributed
 * tables that means pulling them to the coordinator and scanning them once
 * per row. Rewritten as a LEFT JOIN to a derived table grouped by the inner
 * side of the correlation equalities,
 *
 *   FROM … item LEFT JOIN (SELECT inner1 AS pgweave_k1, …, <expression> AS pgweave_v
 *                          FROM … WHERE <the other conjuncts> GROUP BY 1, …) AS pgweave_dc1
 *             ON pgweave_dc1.pgweave_k1 = outer1 AND …
 *
 * with the subquery replaced by `pgweave_dc1.pgweave_v`, the statement has
 * a FROM subquery the rest of the cascade plans on its own (recursive
 * planning: an aggregate pushdown as intermediate result, or a pushdown
 * grouped by a distribution column).
 *
 * `[NOT] EXISTS (SELECT … WHERE inner = outer AND …)` joins the same way a
 * derived table of the keys alone (GROUP BY: one row per key) and becomes
 * `pgweave_dc1.pgweave_k1 IS [NOT] NULL` (TPC-H Q22); unlike NOT IN, NULL
 * keys behave as in the correlated form (they match nothing).
 *
 * Exactness (PostgreSQL decides semantics, DESIGN.md decision 1):
 *   - the derived table has one row per key (GROUP BY), so the LEFT JOIN
 *     keeps each outer row exactly once; an outer row without a group gets
 *     NULLs — the value of aggregates that are NULL over zero rows (sum,
 *     avg, min, max…, and + - * or casts of them). Expressions over
 *     count(…)/regr_count only become `CASE WHEN pgweave_dc1.pgweave_k1 IS
 *     NULL THEN <the expression with each count 0> ELSE pgweave_dc1.pgweave_v
 *     END` (a joined key is never NULL: `=` matched it); any other
 *     expression is not rewritten;
 *   - the ON clause is the original equality with the inner side replaced
 *     by the key column, so cross-type operators (int = bigint) and NULL
 *     keys behave as before (NULL matches nothing); an explicit COLLATE on
 *     the inner side stays in the key and is repeated in the ON clause, one
 *     on the outer side is applied to the key too, so groups are formed with
 *     the comparison's own collation (a nondeterministic one groups what it
 *     compares equal);
 *   - the derived table computes every group, also those no outer row
 *     reaches, where PostgreSQL computes only the reached ones: subqueries
 *     with constructs that can raise errors on some rows (division, modulo,
 *     power, casts of non-constants, functions other than aggregates and a
 *     few total ones) are not rewritten. Overflow of + - * on values no outer
 *     row reaches could still raise an error PostgreSQL would not: accepted.
 *
 * Shapes rewritten: the subquery is a plain SELECT of one expression over
 * aggregates (no GROUP BY, HAVING, ORDER BY, LIMIT, DISTINCT, windows, set
 * operations, WITH, subqueries of its own, volatile functions) whose FROM
 * names tables with known columns; every outer column it names sits in a
 * WHERE conjunct `inner = outer` (one side only inner columns, the other
 * only columns of one FROM item of the enclosing SELECT). The subquery sits
 * in the enclosing SELECT's WHERE (under AND and operators, not under OR,
 * CASE or function calls) or in its select list (a SELECT without GROUP BY
 * or aggregates); the enclosing SELECT has no `*` in its select list (the
 * derived table would add columns to it). Inner levels are rewritten first,
 * so a rewritten subquery may itself sit inside a rewritten one. Not
 * rewritten: a subquery that already runs per shard (correlated on the
 * distribution columns of co-located tables; the pushdown evaluates it
 * in place, with the other tables broadcast when needed).
 */
import type { Node } from '../sql/parse.js';
import { parseSql } from '../sql/parse.js';
import { VOLATILE_FUNCTIONS } from './multi-shard-planner.js';
import { outputName } from './output-names.js';
import { clone, hasWindow, isAggregateCall, lastName } from './pushdown-query.js';
import { SKIP, STOP, someNode, walkTree } from '../sql/tree-walk.js';

export interface DecorrelateContext {
  /** Column names of a table the statement names (distributed or reference), or null when unknown. */
  columnsOf(schema: string | null, name: string): string[] | null;
  /** A hash-distributed table's distribution column and co-location group, null for other tables. */
  distribution(schema: string | null, name: string): { column: string; colocation: number } | null;
}

/** Aggregates whose value over zero rows is NULL. */
const NULL_ON_EMPTY = new Set([
  'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or',
  'bit_xor', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'stddev', 'stddev_pop', 'stddev_samp',
  'variance', 'var_pop', 'var_samp', 'percentile_cont', 'percentile_disc', 'mode', 'corr', 'covar_pop', 'covar_samp',
  'regr_avgx', 'regr_avgy', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx', 'regr_sxy', 'regr_syy', 'xmlagg',
]);

/** Aggregates whose value over zero rows is 0 (bigint). */
const COUNTS = new Set(['count', 'regr_count']);

/** Functions that raise no error for any input of the types they accept (besides aggregates). */
const TOTAL_FUNCTIONS = new Set(['lower', 'upper', 'length', 'char_length', 'abs', 'btrim', 'ltrim', 'rtrim', 'coalesce', 'greatest', 'least']);

/** Operators that raise errors on ordinary values (division by zero, overflow of powers). */
const ERROR_OPERATORS = new Set(['/', '%', '^']);

/** A name visible in a FROM clause: its columns (null: unknown) and the top-level FROM item holding it. */
interface Range {
  name: string;
  columns: Set<string> | null;
  item: number;
  /** For a distributed table: its distribution column and co-location group. */
  dist?: { column: string; colocation: number } | null;
}

type RefClass = { kind: 'inner' } | { kind: 'outer'; item: number } | { kind: 'unknown' };

interface Key {
  /** The equality as written, its inner side to be replaced by the key column. */
  eq: Node;
  innerLeft: boolean;
}

/**
 * The statement with its decorrelatable subqueries rewritten (a copy), and
 * how many were; null when none qualifies.
 */
export function decorrelate(select: Node, ctx: DecorrelateContext): { select: Node; count: number; scalar: number } | null {
  const root = clone(select);
  const cteNames = new Set<string>();
  someNode(root, (o) => {
    for (const c of (o.withClause?.ctes ?? []) as Node[]) cteNames.add(c.CommonTableExpr?.ctename);
    return false;
  });
  const state = { count: 0, scalar: 0, ctx, cteNames };
  visit({ SelectStmt: root }, state);
  return state.count > 0 ? { select: root, count: state.count, scalar: state.scalar } : null;
}

interface State {
  count: number;
  /** How many of them were scalar subqueries (the others [NOT] EXISTS). */
  scalar: number;
  ctx: DecorrelateContext;
  cteNames: Set<string>;
}

/** Rewrites inner SELECTs first, then this one. */
function visit(n: Node, state: State): void {
  if (n === null || typeof n !== 'object') return;
  if (Array.isArray(n)) {
    n.forEach((x) => visit(x, state));
    return;
  }
  for (const k of Object.keys(n)) visit(n[k], state);
  if (n.SelectStmt) rewriteLevel(n.SelectStmt, state);
}

function rewriteLevel(outer: Node, state: State): void {
  if ((outer.op && outer.op !== 'SETOP_NONE') || outer.valuesLists || !(outer.fromClause ?? []).length) return;
  if (((outer.targetList ?? []) as Node[]).some((t) => {
    const f = t.ResTarget?.val?.ColumnRef?.fields as Node[] | undefined;
    return f?.length === 1 && !!f[0].A_Star;
  })) return;
  // Through AND and operators only (not OR, CASE, functions: PostgreSQL might not evaluate the subquery there).
  let replaced = 0;
  const walk = (holder: Node, key: string | number): void => {
    const n = holder[key];
    if (!n || typeof n !== 'object') return;
    if (n.SubLink) {
      const replacement = rewriteSubLink(n.SubLink, outer, state);
      if (replacement) {
        holder[key] = replacement;
        replaced += 1;
      }
      return;
    }
    const not = n.BoolExpr?.boolop === 'NOT_EXPR' ? n.BoolExpr.args?.[0]?.SubLink : undefined;
    if (not?.subLinkType === 'EXISTS_SUBLINK') {
      const replacement = rewriteSubLink(not, outer, state, true);
      if (replacement) {
        holder[key] = replacement;
        replaced += 1;
      }
      return;
    }
    if (n.BoolExpr?.boolop === 'AND_EXPR') (n.BoolExpr.args as Node[]).forEach((_, i) => walk(n.BoolExpr.args, i));
    else if (n.A_Expr?.kind === 'AEXPR_OP') {
      walk(n.A_Expr, 'lexpr');
      walk(n.A_Expr, 'rexpr');
    } else if (n.TypeCast) walk(n.TypeCast, 'arg');
    else if (n.NullTest) walk(n.NullTest, 'arg');
  };
  walk(outer, 'whereClause');
  // The select list of a SELECT that does not aggregate: each column keeps the name PostgreSQL gave it.
  const aggregates = !!outer.groupClause || !!outer.havingClause || ownAggregate(outer.targetList) || ownAggregate(outer.sortClause);
  if (aggregates) return;
  for (const t of (outer.targetList ?? []) as Node[]) {
    const rt = t.ResTarget;
    if (!rt?.val || !someNode(rt.val, (o) => !!o.SubLink)) continue;
    const name = outputName(t);
    if (name === null) continue;
    replaced = 0;
    walk(rt, 'val');
    if (replaced > 0) rt.name = name;
  }
}

/**
 * The replacement expression for a decorrelated subquery (outer's FROM
 * already joined to it), or null. A scalar subquery becomes the derived
 * table's value; `[NOT] EXISTS` (`negated`) a test of its key: the derived
 * table lists the keys that have rows, so the LEFT JOIN finds one or none.
 */
function rewriteSubLink(link: Node, outer: Node, state: State, negated = false): Node | null {
  const s = link.subselect?.SelectStmt;
  const exists = link.subLinkType === 'EXISTS_SUBLINK';
  if ((link.subLinkType !== 'EXPR_SUBLINK' && !exists) || !s) return null;
  if ((s.op && s.op !== 'SETOP_NONE') || s.withClause || s.groupClause || s.havingClause || s.sortClause || s.limitCount || s.limitOffset ||
    s.distinctClause || s.windowClause || s.lockingClause || s.valuesLists || s.intoClause) return null;
  const targets = (s.targetList ?? []) as Node[];
  if (!(s.fromClause ?? []).length || hasWindow(s)) return null;
  // EXISTS never evaluates its select list; aggregates there would make one row even for no rows.
  const expr = exists ? null : targets[0]?.ResTarget?.val;
  if (exists ? ownAggregate(targets) : targets.length !== 1 || !expr || !someNode(expr, isAggregateCall)) return null;
  if (mayRaise(exists ? { fromClause: s.fromClause, whereClause: s.whereClause } : s)) return null;
  const zeroRows = exists ? null : emptyValue(expr);
  if (zeroRows === undefined) return null;
  const innerRanges = rangesOf(s.fromClause, state);
  const outerRanges = rangesOf(outer.fromClause, state);
  const classify = (ref: Node): RefClass => classifyRef(ref.ColumnRef.fields as Node[], innerRanges, outerRanges);
  // Every column outside the WHERE (select list, join conditions, FILTER…) is the subquery's own.
  const { whereClause, fromClause, ...rest } = s;
  if (exists) rest.targetList = [];
  if (refsOf(rest).some((r) => classify(r).kind !== 'inner')) return null;
  if (refsOf(joinQuals(fromClause)).some((r) => classify(r).kind !== 'inner')) return null;
  const conjuncts = whereClause ? flattenAnd(whereClause) : [];
  const keys: Key[] = [];
  const kept: Node[] = [];
  let item: number | null = null;
  for (const c of conjuncts) {
    const classes = refsOf(c).map(classify);
    if (classes.some((x) => x.kind === 'unknown')) return null;
    if (!classes.some((x) => x.kind === 'outer')) {
      kept.push(c);
      continue;
    }
    const a = c.A_Expr;
    if (a?.kind !== 'AEXPR_OP' || lastName(a.name as Node[]) !== '=' || !a.lexpr || !a.rexpr) return null;
    const side = (e: Node): 'inner' | 'outer' | null => {
      const cs = refsOf(e).map(classify);
      if (cs.length === 0) return null;
      if (cs.every((x) => x.kind === 'inner')) return 'inner';
      if (!cs.every((x) => x.kind === 'outer')) return null;
      const items = new Set(cs.map((x) => (x as { item: number }).item));
      if (items.size !== 1) return null;
      const i = [...items][0]!;
      if (item !== null && item !== i) return null;
      item = i;
      return 'outer';
    };
    const l = side(a.lexpr);
    const r = side(a.rexpr);
    if (!((l === 'inner' && r === 'outer') || (l === 'outer' && r === 'inner'))) return null;
    keys.push({ eq: c, innerLeft: l === 'inner' });
  }
  if (keys.length === 0 || item === null) return null;
  if (perShard(keys, innerRanges, outerRanges)) return null;
  state.count += 1;
  if (!exists) state.scalar += 1;
  const alias = `pgweave_dc${state.count}`;
  const keyTargets = keys.map((k, i) => {
    const a = k.eq.A_Expr;
    let inner = clone(k.innerLeft ? a.lexpr : a.rexpr);
    const outerSide = k.innerLeft ? a.rexpr : a.lexpr;
    // The comparison's collation is the outer side's explicit one: the groups are formed with it.
    if (outerSide.CollateClause && !inner.CollateClause) inner = { CollateClause: { arg: inner, collname: clone(outerSide.CollateClause.collname) } };
    return { ResTarget: { name: `pgweave_k${i + 1}`, val: inner } };
  });
  const derived: Node = {
    SelectStmt: {
      targetList: exists ? keyTargets : [...keyTargets, { ResTarget: { name: 'pgweave_v', val: clone(expr) } }],
      fromClause: clone(fromClause),
      ...(kept.length ? { whereClause: kept.length === 1 ? clone(kept[0]) : { BoolExpr: { boolop: 'AND_EXPR', args: clone(kept) } } } : {}),
      groupClause: keys.map((_, i) => ({ A_Const: { ival: { ival: i + 1 } } })),
      limitOption: 'LIMIT_OPTION_DEFAULT',
      op: 'SETOP_NONE',
    },
  };
  const on = keys.map((k, i) => {
    const a = clone(k.eq.A_Expr);
    const innerSide = k.innerLeft ? a.lexpr : a.rexpr;
    let key: Node = column(alias, `pgweave_k${i + 1}`);
    if (innerSide.CollateClause) key = { CollateClause: { arg: key, collname: innerSide.CollateClause.collname } };
    if (k.innerLeft) a.lexpr = key;
    else a.rexpr = key;
    return { A_Expr: a };
  });
  const from = outer.fromClause as Node[];
  from[item] = {
    JoinExpr: {
      jointype: 'JOIN_LEFT',
      larg: from[item],
      rarg: { RangeSubselect: { subquery: derived, alias: { aliasname: alias } } },
      quals: on.length === 1 ? on[0] : { BoolExpr: { boolop: 'AND_EXPR', args: on } },
    },
  };
  if (exists) return { NullTest: { arg: column(alias, 'pgweave_k1'), nulltesttype: negated ? 'IS_NULL' : 'IS_NOT_NULL' } };
  const value = column(alias, 'pgweave_v');
  if (zeroRows === null) return value;
  return {
    CaseExpr: {
      args: [{ CaseWhen: { expr: { NullTest: { arg: column(alias, 'pgweave_k1'), nulltesttype: 'IS_NULL' } }, result: zeroRows } }],
      defresult: value,
    },
  };
}

/**
 * Whether the subquery already runs per shard: a key equates the outer
 * table's distribution column with the distribution column of an inner
 * table, and that table is the subquery's only distributed one (others,
 * in the same co-location group, need not be joined by their
 * distribution columns).
 * The pushdown (or a broadcast of the other tables) evaluates it on the
 * shards as it is; a derived table would be computed apart and shipped.
 */
function perShard(keys: Key[], inner: Range[], outer: Range[]): boolean {
  const distOf = (e: Node, ranges: Range[]): number | null => {
    const fields = e?.ColumnRef?.fields as Node[] | undefined;
    if (!fields || fields.some((f) => !f.String)) return null;
    const name = fields[fields.length - 1].String.sval as string;
    const range = fields.length >= 2 ? ranges.find((r) => r.name === fields[fields.length - 2].String.sval) : ranges.find((r) => r.columns?.has(name));
    return range?.dist?.column === name ? range.dist.colocation : null;
  };
  return keys.some((k) => {
    const a = k.eq.A_Expr;
    const i = distOf(k.innerLeft ? a.lexpr : a.rexpr, inner);
    const o = distOf(k.innerLeft ? a.rexpr : a.lexpr, outer);
    return i !== null && i === o && inner.filter((r) => r.dist).length === 1;
  });
}

/** Whether the expression aggregates at its own level (aggregates inside subqueries belong to them). */
function ownAggregate(n: Node): boolean {
  return walkTree(n, ownAggregateAt);
}

function ownAggregateAt(n: Node): typeof SKIP | typeof STOP | void {
  if (n.SubLink) return ownAggregate(n.SubLink.testexpr) ? STOP : SKIP;
  if (isAggregateCall(n)) return STOP;
}

function column(alias: string, name: string): Node {
  return { ColumnRef: { fields: [{ String: { sval: alias } }, { String: { sval: name } }] } };
}

/**
 * The expression's value over zero rows: null when it is NULL (aggregates
 * that are NULL on no rows, under strict operators and casts), the
 * expression with each count replaced by 0 when it aggregates only counts,
 * undefined otherwise (not rewritten).
 */
function emptyValue(expr: Node): Node | null | undefined {
  if (nullOnEmpty(expr)) return null;
  const aggs: Node[] = [];
  someNode(expr, (o) => {
    if (isAggregateCall(o)) aggs.push(o);
    return false;
  });
  if (!aggs.every((a) => COUNTS.has(lastName(a.FuncCall.funcname as Node[])))) return undefined;
  const zero = parseSql('SELECT 0::pg_catalog.int8').stmts[0].stmt.SelectStmt.targetList[0].ResTarget.val;
  const replace = (n: Node): Node => {
    if (n === null || typeof n !== 'object') return n;
    if (Array.isArray(n)) return n.map(replace);
    if (isAggregateCall(n)) return clone(zero);
    const out: Node = {};
    for (const k of Object.keys(n)) out[k] = replace(n[k]);
    return out;
  };
  return replace(expr);
}

function nullOnEmpty(e: Node): boolean {
  if (isAggregateCall(e)) return NULL_ON_EMPTY.has(lastName(e.FuncCall.funcname as Node[])) && !e.FuncCall.agg_star;
  if (e.TypeCast) return nullOnEmpty(e.TypeCast.arg);
  const a = e.A_Expr;
  if (a?.kind === 'AEXPR_OP' && ['+', '-', '*'].includes(lastName(a.name as Node[])) && (a.name as Node[]).length === 1) {
    return (!!a.lexpr && nullOnEmpty(a.lexpr)) || (!!a.rexpr && nullOnEmpty(a.rexpr));
  }
  return false;
}

/** Whether evaluating the subquery on rows PostgreSQL would not have reached could raise an error. */
function mayRaise(s: Node): boolean {
  return someNode(s, (o) => {
    if (o.SubLink || o.RangeFunction) return true;
    if (o.A_Expr?.kind === 'AEXPR_OP' && ERROR_OPERATORS.has(lastName(o.A_Expr.name as Node[]))) return true;
    if (o.TypeCast && !constant(o.TypeCast.arg)) return true;
    if (o.FuncCall) {
      const name = lastName(o.FuncCall.funcname as Node[]);
      if (VOLATILE_FUNCTIONS.has(name)) return true;
      return !isAggregateCall(o) && !TOTAL_FUNCTIONS.has(name);
    }
    return false;
  });
}

function constant(n: Node): boolean {
  return !!n?.A_Const || (!!n?.TypeCast && constant(n.TypeCast.arg));
}

function flattenAnd(n: Node): Node[] {
  if (n.BoolExpr?.boolop === 'AND_EXPR') return (n.BoolExpr.args as Node[]).flatMap(flattenAnd);
  return [n];
}

/** ColumnRefs of an expression (subqueries in FROM are their own scope; none else occur in a candidate). */
function refsOf(n: Node): Node[] {
  const out: Node[] = [];
  walkTree(n, (x) => {
    if (x.RangeSubselect || x.RangeVar) return SKIP;
    if (x.ColumnRef) {
      out.push(x);
      return SKIP;
    }
  });
  return out;
}

/** The ON conditions of the joins in a FROM clause. */
function joinQuals(from: Node[] | undefined): Node[] {
  const out: Node[] = [];
  const walk = (n: Node): void => {
    if (!n?.JoinExpr) return;
    if (n.JoinExpr.quals) out.push(n.JoinExpr.quals);
    walk(n.JoinExpr.larg);
    walk(n.JoinExpr.rarg);
  };
  (from ?? []).forEach(walk);
  return out;
}

/** The names a FROM clause makes visible. */
function rangesOf(from: Node[] | undefined, state: State): Range[] {
  const out: Range[] = [];
  const add = (n: Node, item: number, into: Range[]): void => {
    if (n.RangeVar) {
      const rv = n.RangeVar;
      const cte = !rv.schemaname && state.cteNames.has(rv.relname);
      const cols = cte || rv.alias?.colnames ? null : state.ctx.columnsOf(rv.schemaname ?? null, rv.relname);
      const dist = cte ? null : state.ctx.distribution(rv.schemaname ?? null, rv.relname);
      into.push({ name: rv.alias?.aliasname ?? rv.relname, columns: cols ? new Set(cols) : null, item, dist });
    } else if (n.RangeSubselect) {
      const r = n.RangeSubselect;
      const s = r.subquery?.SelectStmt;
      let names: Array<string | null> | null = null;
      if (s && (!s.op || s.op === 'SETOP_NONE') && !r.alias?.colnames && !someNode(s.targetList, (o) => !!o.A_Star)) {
        names = ((s.targetList ?? []) as Node[]).map(outputName);
      }
      const known = names && names.every((x) => x !== null) ? new Set(names as string[]) : null;
      into.push({ name: r.alias?.aliasname ?? '', columns: known, item });
    } else if (n.JoinExpr) {
      const j = n.JoinExpr;
      if (j.alias) {
        // `(a JOIN b) AS j` hides a and b: only j is visible, with their columns.
        const inside: Range[] = [];
        add(j.larg, item, inside);
        add(j.rarg, item, inside);
        const cols = inside.every((r) => r.columns) && !j.alias.colnames ? new Set(inside.flatMap((r) => [...r.columns!])) : null;
        into.push({ name: j.alias.aliasname, columns: cols, item });
      } else {
        add(j.larg, item, into);
        add(j.rarg, item, into);
      }
    } else {
      const alias = n.RangeFunction?.alias?.aliasname ?? '';
      into.push({ name: alias, columns: null, item });
    }
  };
  (from ?? []).forEach((n, i) => add(n, i, out));
  return out;
}

/** Which level a column reference resolves at: the subquery's own, the enclosing SELECT's (and its FROM item), or unknown. */
function classifyRef(fields: Node[], inner: Range[], outer: Range[]): RefClass {
  if (fields.some((f) => !f.String)) return { kind: 'unknown' };
  if (fields.length >= 2) {
    const q = fields[fields.length - 2].String.sval as string;
    if (fields.length > 2 || inner.some((r) => r.name === q)) return inner.some((r) => r.name === q) ? { kind: 'inner' } : { kind: 'unknown' };
    const hits = outer.filter((r) => r.name === q);
    return hits.length === 1 ? { kind: 'outer', item: hits[0]!.item } : { kind: 'unknown' };
  }
  const name = fields[0].String.sval as string;
  if (inner.some((r) => r.columns === null || r.name === name)) {
    return inner.some((r) => r.columns?.has(name)) && !inner.some((r) => r.columns === null) ? { kind: 'inner' } : { kind: 'unknown' };
  }
  if (inner.some((r) => r.columns!.has(name))) return { kind: 'inner' };
  if (outer.some((r) => r.columns === null || r.name === name)) return { kind: 'unknown' };
  const hits = outer.filter((r) => r.columns!.has(name));
  return hits.length === 1 ? { kind: 'outer', item: hits[0]!.item } : { kind: 'unknown' };
}
