/**
 * Aggregates split into a partial step on every shard and a final step on
 * the coordinator PostgreSQL, for a SELECT with aggregates or GROUP BY whose
 * groups span shards (GROUP BY without a distribution column; GROUP BY with
 * one is row-pushdown-planner.ts's).
 *
 * Worker query: the GROUP BY keys (`pgweave_k<i>`), at most one DISTINCT
 * aggregate argument (`pgweave_d`, grouped by as well, so the coordinator
 * sees each distinct value of each group once per shard), and the partial
 * aggregates (`pgweave_p<i>`), under the statement's FROM and WHERE.
 *
 * Final query: the statement itself over the temporary table of partial
 * rows — targets, HAVING, ORDER BY and window definitions rewritten so a
 * GROUP BY expression becomes its key column and an aggregate becomes its
 * combine: count → coalesce(sum, 0)::bigint, sum → sum cast back to the
 * partial's type, min/max/bool_and/bool_or/every/bit_* → the same aggregate,
 * avg → sum of sums / sum of counts (numeric division, as PostgreSQL's own
 * avg finishes), variance/stddev of integers and numeric → from count, sum
 * and sum of squares, variance/stddev of floats and covar_pop/covar_samp/
 * corr/regr_* → the shards' float8_accum / float8_regr_accum states merged
 * and finished as PostgreSQL's parallel plans do, regr_count → sum of
 * counts, string_agg with a constant delimiter → string_agg of the partial
 * strings, array_agg/json_agg/jsonb_agg/jsonb_object_agg/json_object_agg →
 * the partial results concatenated (json_agg with the separator its
 * elements' JSON category asks for; aggregate-combines.ts), DISTINCT
 * aggregates → the same aggregate over the distinct values. DISTINCT,
 * LIMIT/OFFSET stay as written; every output column is named as PostgreSQL
 * would name the original. GROUPING SETS/ROLLUP/CUBE: the worker groups by
 * every expression of every set (the finest grouping), the final query
 * keeps the sets' structure over the key columns.
 *
 * Declines (Decline) for what it cannot combine exactly: ordered-set and
 * other aggregates, ORDER BY inside an aggregate, column references outside
 * aggregates that are not GROUP BY expressions, avg(real) (PostgreSQL
 * accumulates it in double precision; decided when the types are known).
 * Float sums, averages and variances are combined: their low
 * bits depend on the summation order, as they do in PostgreSQL itself
 * (physical row order), so no plan reproduces them bit for bit.
 */
import type { Node } from '../sql/parse.js';
import { outputName } from './output-names.js';
import { isRecordExpression } from './record-columns.js';
import { someNode } from '../sql/tree-walk.js';
import {
  REGRESSIONS, SUPPORT, arrayConcatSql, floatVarianceSql, jsonAggConcatSql, jsonConcatSql, regressionSql, stddevSql, varianceSql,
} from './aggregate-combines.js';
import {
  TEMP_PLACEHOLDER, clone, colRef, decline, deparse, funcCall, hasAggregate, hasWindow, intConst, isAggregateCall,
  lastName, sameExpr, target, type PushdownQuery,
} from './pushdown-query.js';

const SAME_AGGREGATE = new Set(['min', 'max', 'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'bit_xor']);
const VARIANCES = new Set(['variance', 'var_samp', 'var_pop', 'stddev', 'stddev_samp', 'stddev_pop']);

function isConstant(n: Node): boolean {
  return !!(n?.A_Const || n?.TypeCast?.arg?.A_Const);
}

function numeric(n: Node): Node {
  return { TypeCast: { arg: n, typeName: { names: [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'numeric' } }], typemod: -1 } } };
}

/** A call of a pg_catalog.pgweave_* support function (aggregate-combines.ts SUPPORT). */
function supportCall(qualified: string, args: Node[], filter?: Node): Node {
  const call = funcCall(qualified, args, filter);
  call.FuncCall.funcname = qualified.split('.').map((sval) => ({ String: { sval } }));
  return call;
}

/** `CASE WHEN false THEN x END`: a NULL of x's type, folded to a constant by the planner (x never evaluated). */
function typedNull(n: Node): Node {
  return { CaseExpr: { args: [{ CaseWhen: { expr: { A_Const: { boolval: { boolval: false } } }, result: n } }] } };
}

/** x::numeric * x::numeric: exact, as PostgreSQL's accumulator squares. */
function square(n: Node): Node {
  return { A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '*' } }], lexpr: numeric(clone(n)), rexpr: numeric(clone(n)) } };
}

/** One GROUP BY item as an expression: an ordinal or output name resolved to the target it names. */
function groupItem(g: Node, targets: Node[], inputColumns: (name: string) => boolean): Node {
  const pos = intConst(g);
  if (pos !== null) {
    const t = targets[pos - 1]?.ResTarget;
    if (!t || t.val?.ColumnRef?.fields?.some((f: Node) => f.A_Star)) decline('GROUP BY position');
    return t.val;
  }
  const fields = (g.ColumnRef?.fields ?? []) as Node[];
  if (fields.length === 1 && fields[0].String) {
    const name = fields[0].String.sval;
    const named = targets.find((t) => t.ResTarget?.name === name);
    // An input column wins over an output name in GROUP BY; unknown input columns leave it ambiguous here.
    if (named && !sameExpr(named.ResTarget.val, g)) {
      if (inputColumns(name)) return g;
      return named.ResTarget.val;
    }
  }
  return g;
}

/** A parenthesized list inside ROLLUP/CUBE/GROUPING SETS (a RowExpr the grammar made, not ROW(…)). */
function isSublist(n: Node): boolean {
  return !!n?.RowExpr && n.RowExpr.row_format === 'COERCE_IMPLICIT_CAST';
}

export function hasGroupingSets(select: Node): boolean {
  return ((select.groupClause ?? []) as Node[]).some((g) => !!g.GroupingSet);
}

/**
 * The GROUP BY expressions, each once, grouping sets flattened (the finest
 * grouping: the worker groups by all of them, the coordinator forms the
 * sets); ordinals and output names resolved to the target they name.
 */
export function groupExpressions(select: Node, inputColumns: (name: string) => boolean): Node[] {
  const targets = (select.targetList ?? []) as Node[];
  const out: Node[] = [];
  const add = (g: Node, inSet: boolean): void => {
    if (g.GroupingSet) {
      ((g.GroupingSet.content ?? []) as Node[]).forEach((c) => add(c, true));
      return;
    }
    if (inSet && isSublist(g)) {
      (g.RowExpr.args as Node[]).forEach((c) => add(c, true));
      return;
    }
    if (inSet && intConst(g) !== null) decline('a position inside a grouping set');
    const e = groupItem(g, targets, inputColumns);
    if (!out.some((o) => sameExpr(o, e))) out.push(e);
  };
  ((select.groupClause ?? []) as Node[]).forEach((g) => add(g, false));
  return out;
}

/** The final query's GROUP BY: the original's structure (grouping sets kept) over the key columns. */
function finalGroupClause(select: Node, keys: Node[], inputColumns: (name: string) => boolean): Node[] {
  const targets = (select.targetList ?? []) as Node[];
  const map = (g: Node, inSet: boolean): Node => {
    if (g.GroupingSet) return { GroupingSet: { ...g.GroupingSet, content: ((g.GroupingSet.content ?? []) as Node[]).map((c) => map(c, true)) } };
    if (inSet && isSublist(g)) return { RowExpr: { ...g.RowExpr, args: (g.RowExpr.args as Node[]).map((c) => map(c, true)) } };
    const e = groupItem(g, targets, inputColumns);
    return colRef(`pgweave_k${keys.findIndex((k) => sameExpr(k, e)) + 1}`);
  };
  return ((select.groupClause ?? []) as Node[]).map((g) => map(g, false));
}

class Splitter {
  readonly partials: Node[] = [];
  readonly combines: Array<(types: string[]) => string | null> = [];
  distinctArg: Node | null = null;
  shardLocalDistinct = false;

  constructor(
    private readonly keys: Node[],
    private readonly partialOffset: () => number,
    /** Whether equal values of an expression always live on one shard (a distribution column, no outer join). */
    private readonly shardLocal: (n: Node) => boolean,
  ) {}

  /** Column of a partial aggregate (identical partials share one). */
  private partial(expr: Node): { name: string; index: number } {
    let i = this.partials.findIndex((p) => sameExpr(p, expr));
    if (i < 0) {
      this.partials.push(expr);
      i = this.partials.length - 1;
    }
    return { name: `pgweave_p${i + 1}`, index: i };
  }

  private placeholder(build: (types: string[]) => string | null): Node {
    this.combines.push(build);
    return colRef(`pgweave_combine_${this.combines.length - 1}`);
  }

  /** The final query's expression for an expression of the original's targets, HAVING or ORDER BY. */
  rewrite(n: Node): Node {
    if (n === null || typeof n !== 'object') return n;
    if (Array.isArray(n)) return n.map((x) => this.rewrite(x));
    const k = this.keys.findIndex((g) => sameExpr(g, n));
    if (k >= 0) return colRef(`pgweave_k${k + 1}`);
    if (isAggregateCall(n)) return this.combine(n.FuncCall);
    // Outside WHERE only subqueries over intermediate results get here (pushdownObstacle): constants, kept as they are.
    if (n.SubLink) return clone(n);
    if (n.ColumnRef) decline('a column outside aggregates and GROUP BY');
    const out: Node = {};
    for (const key in n) out[key] = key === 'location' ? n[key] : this.rewrite(n[key]);
    return out;
  }

  private combine(f: Node): Node {
    const name = lastName(f.funcname as Node[]);
    const args = (f.args ?? []) as Node[];
    if (f.agg_order?.length) decline(`ORDER BY inside ${name}()`);
    if (args.some(hasAggregate) || (f.agg_filter && hasAggregate(f.agg_filter))) decline('nested aggregates');
    if (f.agg_distinct && (name === 'count' || name === 'sum') && args.length === 1 && this.shardLocal(args[0])) {
      // Each distinct value lives on one shard: per-shard distinct counts and sums add up
      // (unless the worker also groups by another DISTINCT argument: checked once all are seen).
      this.shardLocalDistinct = true;
      const p = this.partial({ FuncCall: { ...clone(f), funcname: [{ String: { sval: name } }] } });
      const pname = `"${p.name}"`;
      if (name === 'count') return this.placeholder(() => `COALESCE(sum(${pname}), 0)::bigint`);
      return this.placeholder((types) => `sum(${pname})::${types[this.partialOffset() + p.index]}`);
    }
    if (f.agg_distinct) {
      if (f.agg_filter || args.length !== 1) decline(`${name}(DISTINCT …) with FILTER or several arguments`);
      if (this.distinctArg && !sameExpr(this.distinctArg, args[0])) decline('DISTINCT aggregates of different expressions');
      this.distinctArg = args[0];
      return { FuncCall: { ...clone(f), args: [colRef('pgweave_d')] } };
    }
    const col = (expr: Node) => {
      const p = this.partial(expr);
      return { name: `"${p.name}"`, type: (types: string[]) => types[this.partialOffset() + p.index]! };
    };
    if (f.agg_star) {
      if (name !== 'count') decline(`${name}(*)`);
      const star = funcCall('count', [], f.agg_filter);
      star.FuncCall.agg_star = true;
      delete star.FuncCall.args;
      const p = col(star);
      return this.placeholder(() => `COALESCE(sum(${p.name}), 0)::bigint`);
    }
    if (name === 'string_agg' && args.length === 2 && isConstant(args[1])) {
      // Per-shard strings joined by the same delimiter: the string of all rows, in some row order.
      const p = this.partial(funcCall('string_agg', args.map(clone), f.agg_filter));
      return funcCall('string_agg', [colRef(p.name), clone(args[1])]);
    }
    if (REGRESSIONS.has(name) && args.length === 2) {
      // Both arguments are float8 (the only signatures): float8_regr_accum's state per shard, merged and finished as PostgreSQL's parallel plans do.
      const p = col(supportCall(SUPPORT.regrAccumState, args.map(clone), f.agg_filter));
      return this.placeholder(() => regressionSql(name, p.name));
    }
    if (name === 'regr_count' && args.length === 2) {
      const p = col(funcCall(name, args.map(clone), f.agg_filter));
      return this.placeholder(() => `COALESCE(sum(${p.name}), 0)::bigint`);
    }
    if ((name === 'jsonb_object_agg' || name === 'json_object_agg') && args.length === 2) {
      const p = col(funcCall(name, args.map(clone), f.agg_filter));
      return this.placeholder(() => jsonConcatSql(name, p.name));
    }
    if (args.length !== 1) decline(`${name}() with ${args.length} arguments`);
    const arg = clone(args[0]);
    if (name === 'array_agg') {
      const p = col(funcCall(name, [arg], f.agg_filter));
      return this.placeholder((types) => arrayConcatSql(p.name, p.type(types)));
    }
    if (name === 'json_agg') {
      // The elements' JSON category decides the separator between the shards' arrays (aggregate-combines.ts).
      const p = col(funcCall(name, [arg], f.agg_filter));
      const structured = col(funcCall('bool_or', [supportCall(SUPPORT.jsonStructured, [typedNull(clone(arg))])]));
      return this.placeholder(() => jsonAggConcatSql(p.name, structured.name));
    }
    if (name === 'jsonb_agg') {
      const p = col(funcCall(name, [arg], f.agg_filter));
      return this.placeholder(() => jsonConcatSql(name, p.name));
    }
    if (VARIANCES.has(name)) {
      // count, sum (also telling the input type: bigint or numeric for integers and numeric) and sum of squares.
      const c = col(funcCall('count', [arg], f.agg_filter));
      const s = col(funcCall('sum', [clone(arg)], f.agg_filter));
      const q = col(funcCall('sum', [square(arg)], f.agg_filter));
      // float8_accum's state of float inputs; integers and numeric accumulate nothing in it.
      const state = col(supportCall(SUPPORT.accumState, [supportCall(SUPPORT.accumInput, [clone(arg)])], f.agg_filter));
      const sample = !name.endsWith('_pop');
      return this.placeholder((types) => {
        const t = s.type(types);
        if (t === 'double precision' || t === 'real') return floatVarianceSql(name, state.name);
        if (t !== 'bigint' && t !== 'numeric') return null;
        const v = varianceSql(sample, c.name, s.name, q.name);
        return name.startsWith('stddev') ? stddevSql(v) : v;
      });
    }
    if (name === 'count') {
      const p = col(funcCall('count', [arg], f.agg_filter));
      return this.placeholder(() => `COALESCE(sum(${p.name}), 0)::bigint`);
    }
    if (name === 'sum') {
      const p = col(funcCall('sum', [arg], f.agg_filter));
      return this.placeholder((types) => `sum(${p.name})::${p.type(types)}`);
    }
    if (name === 'avg') {
      const s = col(funcCall('sum', [arg], f.agg_filter));
      const c = col(funcCall('count', [clone(arg)], f.agg_filter));
      return this.placeholder((types) => {
        const t = s.type(types);
        if (t === 'bigint' || t === 'numeric') return `sum(${s.name})::numeric / sum(${c.name})::numeric`;
        if (t === 'interval' || t === 'double precision') return `sum(${s.name}) / sum(${c.name})::double precision`;
        return null;
      });
    }
    if (SAME_AGGREGATE.has(name)) {
      const p = this.partial(funcCall(name, [arg], f.agg_filter));
      return funcCall(name, [colRef(p.name)]);
    }
    decline(`${name}() cannot be combined from partial results`);
  }
}

/**
 * The split plan of an aggregate SELECT (already checked by
 * pushdownObstacle), or throws Decline.
 */
export function splitAggregates(select: Node, inputColumns: (name: string) => boolean, shardLocal: (n: Node) => boolean): PushdownQuery {
  const keys = groupExpressions(select, inputColumns);
  if (keys.some((k) => hasAggregate(k) || hasWindow(k))) decline('aggregates in GROUP BY');
  // A constant written as a GROUP BY expression would read as a position (or be refused) in the worker query.
  if (keys.some((k) => k.A_Const || k.TypeCast?.arg?.A_Const || k.ParamRef || k.TypeCast?.arg?.ParamRef)) decline('a constant in GROUP BY');
  // A table cannot hold an anonymous record (record-columns.ts): such keys and array_agg of records (record[]) are pulled.
  const record = (n: Node) => isRecordExpression(n, select, inputColumns);
  if (keys.some(record)) decline('an anonymous record in GROUP BY');
  const recordArray = (o: Node) => isAggregateCall(o) && lastName(o.FuncCall.funcname as Node[]) === 'array_agg' && ((o.FuncCall.args ?? []) as Node[]).some(record);
  if (someNode([select.targetList, select.havingClause, select.sortClause], recordArray)) decline('array_agg of anonymous records');
  let hasDistinct = false;
  const s = new Splitter(keys, () => keys.length + (hasDistinct ? 1 : 0), shardLocal);
  const targets = (select.targetList ?? []) as Node[];
  const names = targets.map(outputName);
  if (names.some((n) => n === null)) decline('an output column name this planner cannot derive');
  const final: Node = {
    targetList: targets.map((t, i) => target(s.rewrite(t.ResTarget.val), names[i]!)),
    fromClause: [{ RangeVar: { relname: TEMP_PLACEHOLDER, inh: true, relpersistence: 'p' } }],
    limitOption: select.limitOption,
    op: 'SETOP_NONE',
  };
  if (select.distinctClause) final.distinctClause = clone(select.distinctClause);
  if (select.groupClause?.length) final.groupClause = finalGroupClause(select, keys, inputColumns);
  // GROUP BY DISTINCT drops repeated grouping sets: the final query's sets are the client's.
  if (select.groupDistinct) final.groupDistinct = true;
  if (select.havingClause) final.havingClause = s.rewrite(select.havingClause);
  if (select.windowClause) final.windowClause = s.rewrite(select.windowClause);
  if (select.sortClause) {
    final.sortClause = (select.sortClause as Node[]).map((item) => {
      const node = item.SortBy.node;
      const fields = (node?.ColumnRef?.fields ?? []) as Node[];
      // Positions and output names refer to the final query's own targets, which keep the original's names.
      const refersToOutput = intConst(node) !== null || (fields.length === 1 && names.includes(fields[0].String?.sval));
      return { SortBy: { ...clone(item.SortBy), node: refersToOutput ? clone(node) : s.rewrite(node) } };
    });
  }
  if (select.limitCount) final.limitCount = clone(select.limitCount);
  if (select.limitOffset) final.limitOffset = clone(select.limitOffset);
  hasDistinct = s.distinctArg !== null;
  if (hasDistinct && s.shardLocalDistinct) decline('DISTINCT aggregates of a distribution column and of another expression');
  // A coarser set would add up one distinct value's count from several of the finest groups.
  if (s.shardLocalDistinct && hasGroupingSets(select)) decline('count(DISTINCT distribution column) with grouping sets');

  const workerTargets = keys.map((k, i) => target(clone(k), `pgweave_k${i + 1}`));
  if (s.distinctArg) workerTargets.push(target(clone(s.distinctArg), 'pgweave_d'));
  s.partials.forEach((p, i) => workerTargets.push(target(p, `pgweave_p${i + 1}`)));
  if (workerTargets.length === 0) workerTargets.push(target({ A_Const: { ival: { ival: 1 } } }, 'pgweave_one'));
  const groupBy = keys.map(clone);
  if (s.distinctArg) groupBy.push(clone(s.distinctArg));
  const worker: Node = {
    targetList: workerTargets,
    fromClause: clone(select.fromClause),
    limitOption: 'LIMIT_OPTION_DEFAULT',
    op: 'SETOP_NONE',
  };
  if (select.whereClause) worker.whereClause = clone(select.whereClause);
  if (groupBy.length > 0) worker.groupClause = groupBy;
  // A worker without aggregates or keys (count(DISTINCT x) alone) still returns one row per distinct value.
  if (s.partials.length === 0 && groupBy.length === 0) decline('nothing to aggregate');
  return {
    planner: 'aggregate-pushdown',
    workerSql: deparse({ SelectStmt: worker }),
    finalTemplate: deparse({ SelectStmt: final }),
    combines: s.combines,
  };
}
