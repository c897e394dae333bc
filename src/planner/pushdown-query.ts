/**
 * Shared pieces of the pushdown planners (aggregate-pushdown-planner.ts,
 * row-pushdown-planner.ts): which SELECTs may run per shard at all, parse
 * tree helpers, the per-shard tasks of a generated worker query, and the
 * `pull` route that carries partial results.
 *
 * A pushdown plan has two queries. The worker query runs on every shard
 * group (COPY … TO STDOUT) and its rows stream into one temporary table on
 * the coordinator PostgreSQL; the final query runs there over that table
 * (DESIGN.md decision 1: PostgreSQL combines). The temporary table is
 * created from the worker query over the coordinator's own, empty tables
 * (`CREATE TEMP TABLE … AS … WITH NO DATA`), so its column types, typmods
 * and collations are exactly those of the worker's rows. Some combine
 * expressions depend on those types (sum of int4 partials is cast back to
 * bigint; float sums are not combined, see README): the final SQL is a
 * template whose placeholders `combine(types)` fills once the table exists,
 * or declines, and the route falls back to pulling the tables.
 */
import { deparseSql } from '../sql/deparse.js';
import { parseSql, type Node } from '../sql/parse.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { someNode } from '../sql/tree-walk.js';
import type { DistributedTable } from '../metadata/types.js';
import { analyzeShape } from './relations.js';
import { outputName } from './output-names.js';
import { AGGREGATES, VOLATILE_FUNCTIONS, planMultiShard } from './multi-shard-planner.js';
import type { ResolvedRelation } from './router-planner.js';
import { INTERMEDIATE_PREFIX, type PartialResults, type PullTable, type Route, type Task } from './route.js';

/** Thrown inside a planner's rewrite when the statement takes another path; never reaches a client. */
export class Decline extends Error {}

export function decline(why: string): never {
  throw new Decline(why);
}

/** Structural equality of parse trees, locations ignored. */
export function sameExpr(a: Node, b: Node): boolean {
  return JSON.stringify(a, dropLocation) === JSON.stringify(b, dropLocation);
}

function dropLocation(key: string, value: unknown): unknown {
  return key === 'location' ? undefined : value;
}

export function clone<T>(n: T): T {
  return structuredClone(n);
}

export function colRef(name: string): Node {
  return { ColumnRef: { fields: [{ String: { sval: name } }] } };
}

export function funcCall(name: string, args: Node[], filter?: Node): Node {
  const f: Node = { funcname: [{ String: { sval: name } }], args, funcformat: 'COERCE_EXPLICIT_CALL' };
  if (filter) f.agg_filter = clone(filter);
  return { FuncCall: f };
}

export function target(val: Node, name: string): Node {
  return { ResTarget: { name, val } };
}

export function lastName(names: Node[]): string {
  return names[names.length - 1]?.String?.sval ?? '';
}

/** An aggregate call (not a window function): the names multi-shard-planner.ts knows, or `f(*)`. */
export function isAggregateCall(n: Node): boolean {
  const f = n?.FuncCall;
  if (!f || f.over) return false;
  const names = f.funcname as Node[];
  if (names.length > 1 && names[0].String?.sval !== 'pg_catalog') return false;
  return AGGREGATES.has(lastName(names)) || !!f.agg_star;
}

export const hasAggregate = (n: Node): boolean => someNode(n, isAggregateCall);
export const hasWindow = (n: Node): boolean => someNode(n, (o) => !!o.FuncCall?.over);

/**
 * A FROM clause of plain tables, joins of them, and subqueries that only
 * join and filter (each of their rows comes from one row of each table, so
 * they run per shard like the join they are); no functions or VALUES.
 * Subqueries grouped over plain tables and joins pass too: they run per
 * shard when a GROUP BY key is a distribution column, which only the
 * relations can tell (grouped-subqueries.ts checks it).
 */
function plainFrom(n: Node): boolean {
  if (n.RangeVar) return true;
  if (n.JoinExpr) return plainFrom(n.JoinExpr.larg) && plainFrom(n.JoinExpr.rarg);
  if (n.RangeSubselect) return rowSubquery(n.RangeSubselect);
  return false;
}

function rowSubquery(r: Node): boolean {
  const s = r.subquery?.SelectStmt;
  if (r.lateral || !s || s.op !== 'SETOP_NONE' || s.valuesLists || s.withClause || s.intoClause || s.lockingClause) return false;
  if (s.distinctClause || s.sortClause || s.limitCount || s.limitOffset || s.windowClause) return false;
  if (hasWindow(s.targetList) || hasAggregate(s.whereClause)) return false;
  if (s.groupClause) {
    if (s.groupClause.some((g: Node) => !g.ColumnRef && intConst(g) === null)) return false;
    if (!(s.fromClause ?? []).every(function tables(f: Node): boolean {
      return !!f.RangeVar || (!!f.JoinExpr && tables(f.JoinExpr.larg) && tables(f.JoinExpr.rarg));
    })) return false;
  } else if (s.havingClause || hasAggregate(s.targetList)) return false;
  // The outer query names its columns: every one must have a name this planner can derive.
  if (((s.targetList ?? []) as Node[]).some((t) => outputName(t) === null)) return false;
  return (s.fromClause ?? []).length > 0 && (s.fromClause as Node[]).every(plainFrom);
}

/** Whether the FROM clause reads a subquery: its output names are not the tables' columns. */
export function hasFromSubquery(select: Node): boolean {
  return someNode(select.fromClause, (o) => !!o.RangeSubselect);
}

/** Output column names of the FROM clause's subqueries (their outermost level). */
export function fromSubqueryColumns(select: Node): Set<string> {
  const names = new Set<string>();
  someNode(select.fromClause, (o) => {
    if (!o.RangeSubselect) return false;
    const r = o.RangeSubselect;
    const aliases = ((r.alias?.colnames ?? []) as Node[]).map((c) => c.String?.sval as string);
    ((r.subquery.SelectStmt.targetList ?? []) as Node[]).forEach((t, i) => names.add(aliases[i] ?? outputName(t)!));
    return true;
  });
  return names;
}

export function hasOuterJoin(select: Node): boolean {
  return someNode(select.fromClause, (o) => !!o.JoinExpr && o.JoinExpr.jointype !== 'JOIN_INNER');
}

/**
 * Why a top-level SELECT cannot run as one query per shard group with a
 * merge at the coordinator, or null: everything below the top level must be
 * shard-local (plain tables, no subquery expressions), and the statement the
 * same on every shard (no volatile functions, CTEs, set operations,
 * locking; grouping sets only at the top level). Parameters are allowed: each execution splices
 * its values into the worker query (pushdown-params.ts).
 */
export function pushdownObstacle(select: Node): string | null {
  if (!select || select.op !== 'SETOP_NONE' || select.valuesLists) return 'set operation or VALUES';
  if (select.withClause) return 'WITH';
  if (select.intoClause || select.lockingClause) return 'INTO or locking';
  if (!(select.fromClause ?? []).length || !(select.fromClause as Node[]).every(plainFrom)) return 'FROM';
  // Subqueries in WHERE run per shard with the row they test: multi-shard-planner.ts checks that
  // the tables they read are replicated or co-located with the outer query's shards.
  // A subquery elsewhere that reads intermediate results only (recursive-planner.ts) is a constant both the
  // shards and the coordinator can evaluate: those tables exist on both.
  if (someNode({ ...select, whereClause: null }, (o) => !!o.SubLink && !readsIntermediateOnly(o.SubLink.subselect))) return 'subquery outside WHERE';
  // Grouping sets and GROUPING() only at the top level: the coordinator forms the sets (aggregate-pushdown-planner.ts).
  if (someNode({ ...select, groupClause: null, targetList: null, havingClause: null, sortClause: null }, (o) => !!(o.GroupingSet || o.GroupingFunc))) return 'grouping set below the top level';
  const bad = someNode(select, (o) => {
    if (o.FuncCall) {
      const name = lastName(o.FuncCall.funcname as Node[]);
      if (VOLATILE_FUNCTIONS.has(name)) return true;
      if (isAggregateCall(o) && (o.FuncCall.agg_within_group)) return true;
    }
    return false;
  });
  if (bad) return 'volatile function or ordered-set aggregate';
  if ((select.distinctClause ?? []).some((d: Node) => d && Object.keys(d).length > 0)) return 'DISTINCT ON';
  return null;
}

/** Whether a subquery reads intermediate results (`pg_temp.pgweave_intermediate_*`) and no other relation. */
function readsIntermediateOnly(subselect: Node): boolean {
  let tables = 0;
  const other = someNode(subselect, (o) => {
    if (o.RangeFunction || o.SubLink) return true;
    if (!o.RangeVar) return false;
    tables++;
    return !(o.RangeVar.schemaname === 'pg_temp' && String(o.RangeVar.relname).startsWith(INTERMEDIATE_PREFIX));
  });
  return !other && tables > 0;
}

/** An integer constant's value, or null. */
export function intConst(n: Node): number | null {
  if (!n?.A_Const) return null;
  if (n.A_Const.isnull) return null;
  if (n.A_Const.ival) return n.A_Const.ival.ival ?? 0;
  return null;
}

export function deparse(n: Node): string {
  return deparseSql(n, { pretty: false });
}

/**
 * Tasks of a worker query (deparsed text, generated by a pushdown planner):
 * parsed again so shard names splice in at its own locations (DESIGN.md
 * decision 2), with the co-location and reference-table checks of the
 * multi-shard planner. Null when those checks decline.
 */
export function workerTasks(workerSql: string, relations: ResolvedRelation[]): Task[] | null {
  const stmt = parseSql(workerSql).stmts[0]?.stmt;
  if (!stmt?.SelectStmt) return null;
  const resolved: ResolvedRelation[] = [];
  for (const ref of analyzeShape(stmt).relations) {
    const same = (r: ResolvedRelation) => r.ref.name === ref.name && r.ref.schema === ref.schema;
    // By alias first: a table read twice may be sharded once and broadcast once (broadcast-planner.ts).
    const orig = relations.find((r) => same(r) && r.ref.refName === ref.refName) ?? relations.find(same);
    if (!orig) return null;
    resolved.push({ ref, table: orig.table });
  }
  const r = planMultiShard(Buffer.from(workerSql, 'utf8'), stmt.SelectStmt, 'select', resolved, new Set(), true);
  return r.kind === 'multi-shard' ? r.tasks : null;
}

/** Everything a pushdown planner decided, before tasks and routes. */
export interface PushdownQuery {
  planner: PartialResults['planner'];
  workerSql: string;
  /** Final SQL over the temporary table `__PGWEAVE_PARTIAL__`, with `pgweave_combine_N` placeholders. */
  finalTemplate: string;
  /** Fills placeholder N given the temporary table's column types (format_type), or null to pull instead. */
  combines: Array<(types: string[]) => string | null>;
}

export const TEMP_PLACEHOLDER = 'pgweave_partial_placeholder';

/**
 * The route of a pushdown: a `pull` route whose first table is the partial
 * results' temporary table; the other pulls and `pullSql` are the plain pull
 * the executor falls back to when `combine` declines.
 */
export function pushdownRoute(q: PushdownQuery, tasks: Task[], fallback: Extract<Route, { kind: 'pull' }>): Route {
  const first = tasks[0];
  const owner = ownerTable(fallback.pulls, first.shardIds[0]);
  if (!owner) return fallback;
  const tempName = `pgweave_partial_${owner.relationId}`;
  const shardSql = new Map<string, string>();
  for (const t of tasks) {
    const shard = owner.shards.find((s) => s.shardId === t.shardIds[0]);
    if (!shard) return fallback;
    shardSql.set(shard.shardName, t.sql);
  }
  const temp = `pg_temp.${tempName}`;
  const partial: PartialResults = {
    planner: q.planner,
    tempName,
    shapeSql: q.workerSql,
    tasks,
    finalSql: null,
    combine(types) {
      const parts: string[] = [];
      for (const c of q.combines) {
        const s = c(types);
        if (s === null) return null;
        parts.push(s);
      }
      return q.finalTemplate
        .replaceAll(TEMP_PLACEHOLDER, temp)
        .replace(/\bpgweave_combine_(\d+)\b/g, (_, i: string) => `(${parts[Number(i)]})`);
    },
  };
  const entry: PullTable = { table: owner, tempName, filterSql: null, refName: owner.name, prepared: shardSql };
  return {
    kind: 'pull',
    pulls: [entry, ...fallback.pulls],
    partial,
    get sql() {
      return partial.finalSql ?? fallback.sql;
    },
  };
}

/**
 * SQL that (re)creates a pushdown's temporary table, empty, from the worker
 * query over the coordinator's own tables, and returns its column types.
 */
export function partialTableSql(partial: PartialResults): string {
  const temp = quoteIdent(partial.tempName);
  return `DROP TABLE IF EXISTS pg_temp.${temp}; CREATE TEMP TABLE ${temp} AS ${partial.shapeSql} WITH NO DATA; ` +
    `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = ${quoteLiteral(`pg_temp.${temp}`)}::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;
}

function ownerTable(pulls: PullTable[], shardId: number): DistributedTable | null {
  for (const p of pulls) if (p.table.shards.some((s) => s.shardId === shardId)) return p.table;
  return null;
}

/** RangeVar nodes of a FROM clause, through joins but not into subqueries. */
export function directRangeVars(from: Node[] | undefined): Set<Node> {
  const out = new Set<Node>();
  const visit = (n: Node): void => {
    if (n?.RangeVar) out.add(n.RangeVar);
    else if (n?.JoinExpr) {
      visit(n.JoinExpr.larg);
      visit(n.JoinExpr.rarg);
    }
  };
  (from ?? []).forEach(visit);
  return out;
}

/** RangeVar nodes on the NULL-extended side of an outer join: filtering them first would change which rows extend. */
export function nullableRelations(select: Node): Set<Node> {
  const out = new Set<Node>();
  const addAll = (n: Node) => someNode(n, (o) => {
    if (o.RangeVar) out.add(o.RangeVar);
    return false;
  });
  someNode(select.fromClause, (o) => {
    const j = o.JoinExpr;
    if (!j || j.jointype === 'JOIN_INNER') return false;
    if (j.jointype !== 'JOIN_LEFT') addAll(j.larg);
    if (j.jointype !== 'JOIN_RIGHT') addAll(j.rarg);
    return false;
  });
  return out;
}
