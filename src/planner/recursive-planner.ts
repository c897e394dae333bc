/**
 * Recursive planning (Citus's name): a SELECT that cannot run as one
 * pushdown has its CTEs and its uncorrelated subqueries planned on their
 * own — through the whole cascade, so each may itself be a pushdown with a
 * merge, a broadcast join, or recursive again — and their results computed
 * first, as intermediate results: temporary tables on the coordinator
 * PostgreSQL (`pg_temp.pgweave_intermediate_<id>`). The rest of the
 * statement, with each of those replaced by its table, is then planned as
 * if the tables were reference tables: when it pushes down, the executor
 * ships the intermediate results to the task nodes (session/
 * intermediate-results.ts) as temporary tables on the task connections;
 * when it does not, the coordinator runs it over them.
 *
 * What becomes an intermediate result:
 *   - every CTE of the top-level WITH (not RECURSIVE): computed once, as
 *     PostgreSQL computes a CTE once; each reference reads the table;
 *   - a subquery in FROM (not LATERAL) that cannot run per shard (GROUP BY,
 *     aggregates, DISTINCT, LIMIT, ORDER BY, windows, set operations, WITH,
 *     subqueries of its own) and reads a distributed table;
 *   - a scalar, IN/ANY or ALL subquery expression reading a distributed
 *     table.
 * Only self-contained (uncorrelated) subqueries qualify: every column they
 * name must resolve inside them (`selfContained` below; an unknown
 * column list counts as correlated). Correlated ones stay where they are
 * and the rest is planned as before (often a pull). A CTE read only inside
 * EXISTS subqueries declines the whole plan: PostgreSQL reads such a CTE
 * only up to the first row each EXISTS needs, a subplan would compute all of
 * it (a cross join of millions of rows, say). A CTE reading earlier
 * CTEs is planned here over their tables, like the rest (`planOver`); a
 * subquery in FROM or an expression that reads an intermediate result is
 * left in place (the cascade planning it could not see that table). Whole-row references to a replaced CTE or subquery keep the
 * statement as it was (a table's row type is not the subquery's record).
 *
 * The intermediate results are computed before the rest runs, even where
 * PostgreSQL would have evaluated a subquery lazily (never, for an empty
 * outer query): as in Citus, an error inside such a subquery is raised
 * where PostgreSQL might not have raised it.
 */
import type { Node } from '../sql/parse.js';
import { parseSql } from '../sql/parse.js';
import type { DistributedTable } from '../metadata/types.js';
import { analyzeShape } from './relations.js';
import { leftmostSelect, outputName, outputNames } from './output-names.js';
import { isRecordExpression } from './record-columns.js';
import type { ResolvedRelation } from './router-planner.js';
import { planMultiShard, VOLATILE_FUNCTIONS } from './multi-shard-planner.js';
import { planPull } from './pull-planner.js';
import { PushdownPlanner } from './pushdown-planner.js';
import { BroadcastPlanner, neededColumns } from './broadcast-planner.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { clone, deparse, hasAggregate, hasWindow, lastName } from './pushdown-query.js';
import { SKIP, STOP, someNode, walkTree } from '../sql/tree-walk.js';
import { INTERMEDIATE_PREFIX, type IntermediatePlan, type IntermediateResult, type PullTable, type Route } from './route.js';

type PullRoute = Extract<Route, { kind: 'pull' }>;

/** What the recursive planner needs from the cascade (plan-statement.ts). */
export interface RecursiveContext {
  /** A distributed or reference table by name, as the statement's search_path resolves it. */
  resolve(schema: string | null, name: string): DistributedTable | undefined;
  /** Plans a subquery (its own statement text) through the cascade; `prefix` names its own intermediate results. */
  planSubquery(text: string, prefix: string): { route(): Route };
  /** Id prefix of this statement's intermediate results: "" at the top, "1_" inside subplan 1… */
  prefix: string;
}

interface Subplan {
  id: string;
  tempName: string;
  sql: string;
  /** Column names for the temporary table (a CTE's column list, c1… for expressions), or null: the query's own. */
  columns: string[] | null;
  plan: { route(): Route };
  /** Set for a local table of the coordinator read in FROM (shipped like a reference table). */
  localTable?: IntermediateResult['localTable'];
}

/** A statement (the rest, or a CTE reading earlier CTEs) planned over intermediate results as pseudo reference tables. */
interface OverPlan {
  text: string;
  stmt: Node;
  /** Its distributed and reference tables (what a pull moves). */
  relations: ResolvedRelation[];
  /** Intermediate results it reads. */
  reads: string[];
  pushdown: PushdownPlanner;
  broadcast: BroadcastPlanner;
}

interface Analysis {
  subplans: Subplan[];
  outer: OverPlan;
  /** Every distributed table of the original statement: the subplans and the rest read them in one snapshot. */
  snapshot: PullTable[];
}

export class RecursivePlanner {
  private analysis: Analysis | null | undefined;
  /** Whether local tables in the top-level FROM become intermediate results (off after a try that did not push down). */
  private shipLocal = true;
  /** Why the statement was not planned recursively (tests, EXPLAIN). */
  declined: string | null = null;

  constructor(private readonly select: Node, private readonly ctx: RecursiveContext) {}

  /** The route with intermediate results, or null when nothing qualifies or it would gain nothing. */
  route(): Route | null {
    this.analysis ??= this.analyse();
    const a = this.analysis;
    if (!a) return null;
    const results: IntermediateResult[] = [];
    for (const s of a.subplans) {
      const route = s.plan.route();
      // A subquery the cascade cannot run on its own (an error, a write, a coordinator function): the statement as before.
      const runnable = route.kind === 'pull' || route.kind === 'local' || ((route.kind === 'router' || route.kind === 'multi-shard') && !route.isWrite);
      if (!runnable) {
        this.declined = `subquery ${s.id} is planned as "${route.kind}"`;
        return null;
      }
      results.push({ id: s.id, tempName: s.tempName, sql: s.sql, columns: s.columns, route, ...(s.localTable ? { localTable: s.localTable } : {}) });
    }
    const route = routeOver(a.outer, results, a.snapshot);
    // Local tables are shipped only for a pushdown: otherwise the statement is planned again reading them in place.
    if (!route.partial && !route.broadcast && a.subplans.some((s) => s.localTable)) {
      this.shipLocal = false;
      this.analysis = this.analyse();
      return this.route();
    }
    const pullsOnly = (r: Route) => r.kind === 'pull' && !r.partial && !r.broadcast && !r.intermediate;
    // Both sides pulled: the subplans would move their tables once more for nothing.
    if (!route.partial && !route.broadcast && a.outer.relations.some((r) => r.table.method === 'hash') && results.some((r) => pullsOnly(r.route))) {
      this.declined = 'the subqueries and the rest of the statement would all be pulled';
      return null;
    }
    // Every subquery pulled (its own broadcast or repartition candidates included: the join planners see the
    // same joins in the whole statement) and the rest run on the coordinator: the plain pull moves the same
    // rows, and leaves the statement to the join planners, which may push it down as a whole.
    if (!route.partial && !route.broadcast && results.every((r) => r.route.kind === 'pull' && !r.route.partial && !r.route.intermediate)) {
      this.declined = 'every subquery would be pulled and the rest run on the coordinator';
      return null;
    }
    return route;
  }

  /** Plans a statement whose CTEs and subqueries were replaced by intermediate results (`subplans`: those known so far). */
  private planOver(select: Node, subplans: Subplan[]): OverPlan | null {
    const text = deparse({ SelectStmt: select });
    const stmt = clone(parseSql(text).stmts[0]?.stmt?.SelectStmt);
    if (!stmt) return null;
    const relations: ResolvedRelation[] = [];
    const pseudo: ResolvedRelation[] = [];
    for (const ref of analyzeShape(stmt).relations) {
      const sub = ref.schema === 'pg_temp' ? subplans.find((s) => s.tempName === ref.name) : undefined;
      if (sub) {
        pseudo.push({ ref, table: intermediateTable(sub, subplans.indexOf(sub)) });
        continue;
      }
      const table = this.ctx.resolve(ref.schema, ref.name);
      if (table) relations.push({ ref, table });
    }
    const all = [...relations, ...pseudo];
    const reads = [...new Set(pseudo.map((p) => p.table.name))];
    return { text, stmt, relations, reads, pushdown: new PushdownPlanner(stmt, all), broadcast: new BroadcastPlanner(stmt, all) };
  }

  private analyse(): Analysis | null {
    const decline = (why: string) => {
      this.declined = why;
      return null;
    };
    const root = clone(this.select);
    if (root.withClause?.recursive) return decline('WITH RECURSIVE');
    if (someNode(root, (o) => !!o.ParamRef)) return decline('parameters');
    const snapshotTables = new Map<number, PullTable>();
    for (const ref of analyzeShape(this.select).relations) {
      const t = this.ctx.resolve(ref.schema, ref.name);
      if (t && !snapshotTables.has(t.relationId)) snapshotTables.set(t.relationId, { table: t, tempName: '', filterSql: null, refName: t.name });
    }
    const snapshot = [...snapshotTables.values()];
    const subplans: Subplan[] = [];
    const next = () => {
      const id = `${this.ctx.prefix}${subplans.length + 1}`;
      return { id, tempName: `${INTERMEDIATE_PREFIX}${id}` };
    };
    // CTEs, in order: each later one (and the body) reads the earlier ones' tables.
    const ctes = ((root.withClause?.ctes ?? []) as Node[]).map((c) => c.CommonTableExpr);
    root.withClause = undefined;
    for (const [i, cte] of ctes.entries()) {
      const q = cte.ctequery?.SelectStmt;
      if (!q) return decline('a data-modifying WITH');
      const volatile = someNode(q, (o) => !!o.FuncCall && VOLATILE_FUNCTIONS.has(lastName(o.FuncCall.funcname as Node[])));
      if (volatile && cte.ctematerialized === 'CTEMaterializeNever') return decline('a NOT MATERIALIZED CTE with volatile functions');
      if (anonymousRecord(q) || duplicateNames(q, cte.aliascolnames)) return decline('a CTE whose columns a table cannot hold (anonymous records, one name twice)');
      const laterParts = [...ctes.slice(i + 1).map((c) => c.ctequery), root];
      if (laterParts.some((p) => shadows(p, cte.ctename) || wholeRow(p, cte.ctename))) return decline('a CTE name reused inside the statement, or a CTE read as a whole row');
      // PostgreSQL never computes a CTE nothing reads.
      if (!laterParts.some((p) => someNode(p, (o) => o.RangeVar && !o.RangeVar.schemaname && o.RangeVar.relname === cte.ctename))) continue;
      // PostgreSQL stops reading a CTE at the first row each EXISTS asks for; a subplan would compute all of it.
      if (readOnlyInExists(laterParts, cte.ctename)) return decline('a CTE read only inside EXISTS');
      const { id, tempName } = next();
      const columns = ((cte.aliascolnames ?? []) as Node[]).map((c) => c.String?.sval as string);
      const sql = deparse({ SelectStmt: q });
      let plan: Subplan['plan'];
      if (readsIntermediate(q)) {
        // It reads earlier CTEs' tables: planned here over them (shipped along when it pushes down), not by the cascade.
        const over = this.planOver(q, subplans);
        if (!over) return decline('a CTE reading another CTE');
        plan = { route: () => routeOver(over, [], snapshot) };
      } else {
        plan = this.ctx.planSubquery(sql, `${id}_`);
      }
      subplans.push({ id, tempName, sql, columns: columns.length ? columns : null, plan });
      for (const p of laterParts) replaceCteReferences(p, cte.ctename, tempName);
    }
    // Subqueries, outermost first: a replaced one is planned (recursively) as a whole.
    const visit = (holder: Node, key: string | number): void => {
      const n = holder[key];
      if (n === null || typeof n !== 'object') return;
      if (Array.isArray(n)) {
        n.forEach((_, i) => visit(n, i));
        return;
      }
      // A subquery replaced below would name the column after the intermediate table's c1: keep PostgreSQL's name.
      if (n.ResTarget && !n.ResTarget.name && n.ResTarget.val && someNode(n.ResTarget.val, (o) => !!o.SubLink)) {
        const name = outputName(n);
        if (name !== null) n.ResTarget.name = name;
      }
      if (n.RangeSubselect && this.fromCandidate(n.RangeSubselect, root)) {
        const { id, tempName } = next();
        const sql = deparse(n.RangeSubselect.subquery);
        subplans.push({ id, tempName, sql, columns: null, plan: this.ctx.planSubquery(sql, `${id}_`) });
        holder[key] = { RangeVar: { schemaname: 'pg_temp', relname: tempName, inh: true, relpersistence: 'p', alias: n.RangeSubselect.alias } };
        return;
      }
      if (n.SubLink && this.sublinkCandidate(n.SubLink)) {
        const width = targetWidth(n.SubLink.subselect.SelectStmt)!;
        const { id, tempName } = next();
        const columns = Array.from({ length: width }, (_, i) => `c${i + 1}`);
        const sql = deparse(n.SubLink.subselect);
        subplans.push({ id, tempName, sql, columns, plan: this.ctx.planSubquery(sql, `${id}_`) });
        const replacement = `SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM pg_temp."${tempName}"`;
        n.SubLink.subselect = clone(parseSql(replacement).stmts[0].stmt);
        visit(n.SubLink, 'testexpr');
        return;
      }
      for (const k of Object.keys(n)) visit(n, k);
    };
    visit({ root }, 'root');
    if (this.shipLocal && this.readsDistributed(this.select)) this.replaceLocalTables(root, subplans, next);
    if (subplans.length === 0) return decline('no CTE or subquery to plan on its own');
    const outer = this.planOver(root, subplans);
    if (!outer) return decline('the rewritten statement');
    return { subplans, outer, snapshot };
  }

  /**
   * Local tables of the coordinator (neither distributed nor reference:
   * plain, temporary, views) read in the top-level FROM and its joins
   * become intermediate results `SELECT * FROM <table>`, so the rest may
   * push down over them as over reference tables. The pushdown's own
   * checks keep a preserved outer-join side against shards from pushing
   * down; route() then plans the statement again without shipping.
   */
  private replaceLocalTables(root: Node, subplans: Subplan[], next: () => { id: string; tempName: string }): void {
    // The column names the statement mentions (null: it reads whole rows), found once for all its local tables.
    let needed: string[] | null | undefined;
    const visit = (holder: Node, key: string | number): void => {
      const n = holder[key];
      if (n?.JoinExpr) {
        visit(n.JoinExpr, 'larg');
        visit(n.JoinExpr, 'rarg');
        return;
      }
      const rv = n?.RangeVar;
      if (!rv || rv.schemaname === 'pg_temp' && String(rv.relname).startsWith(INTERMEDIATE_PREFIX)) return;
      if (this.ctx.resolve(rv.schemaname ?? null, rv.relname) || rv.inh === false) return;
      const alias = rv.alias ?? { aliasname: rv.relname };
      if (wholeRow(root, alias.aliasname)) return;
      const { id, tempName } = next();
      const source = { ...rv, alias: undefined, location: undefined };
      const sql = deparse({ SelectStmt: { targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }], fromClause: [{ RangeVar: source }], limitOption: 'LIMIT_OPTION_DEFAULT', op: 'SETOP_NONE' } });
      const name = rv.schemaname ? quoteQualified(rv.schemaname, rv.relname) : quoteIdent(rv.relname);
      if (needed === undefined) {
        const names = neededColumns(root);
        needed = names ? [...names] : null;
      }
      const localTable = { name, neededColumns: needed };
      subplans.push({ id, tempName, sql, columns: null, plan: this.ctx.planSubquery(sql, `${id}_`), localTable });
      holder[key] = { RangeVar: { schemaname: 'pg_temp', relname: tempName, inh: true, relpersistence: 'p', alias } };
    };
    ((root.fromClause ?? []) as Node[]).forEach((_, i) => visit(root.fromClause, i));
  }

  private readsDistributed(n: Node): boolean {
    return analyzeShape(n).relations.some((r) => this.ctx.resolve(r.schema, r.name)?.method === 'hash');
  }

  /** A FROM subquery that cannot run per shard, reads a distributed table and stands alone. */
  private fromCandidate(r: Node, root: Node): boolean {
    const s = r.subquery?.SelectStmt;
    if (r.lateral || !s || !r.alias?.aliasname) return false;
    const perShard = s.op === 'SETOP_NONE' && !s.withClause && !s.groupClause && !s.havingClause && !s.distinctClause && !s.sortClause &&
      !s.limitCount && !s.limitOffset && !s.windowClause && !hasAggregate(s.targetList) && !hasWindow(s.targetList) && !someNode(s, (o) => !!o.SubLink);
    if (perShard || anonymousRecord(s) || duplicateNames(s, undefined) || !this.readsDistributed(s) || readsIntermediate(s) || wholeRow(root, r.alias.aliasname)) return false;
    return selfContained(s, (rv) => this.columnsOf(rv));
  }

  /** A scalar, IN or ALL subquery expression that reads a distributed table and stands alone. */
  private sublinkCandidate(l: Node): boolean {
    const s = l.subselect?.SelectStmt;
    if (!s || !['EXPR_SUBLINK', 'ANY_SUBLINK', 'ALL_SUBLINK'].includes(l.subLinkType)) return false;
    if (targetWidth(s) === null || anonymousRecord(s) || !this.readsDistributed(s) || readsIntermediate(s)) return false;
    return selfContained(s, (rv) => this.columnsOf(rv));
  }

  private columnsOf(rv: Node): string[] | null {
    return this.ctx.resolve(rv.schemaname ?? null, rv.relname)?.columns ?? null;
  }
}

/**
 * The route of a statement over intermediate results: pushed down (or a
 * broadcast join) over them when it can, else the plain pull that reads
 * them on the coordinator. `results` are computed first; the other tables
 * it reads (`over.reads`) were computed by an enclosing plan.
 */
function routeOver(over: OverPlan, results: IntermediateResult[], snapshot: PullTable[]): PullRoute {
  const plainPull = planPull(Buffer.from(over.text, 'utf8'), over.stmt, over.relations) as PullRoute;
  let outer: PullRoute = plainPull;
  if (over.relations.some((r) => r.table.method === 'hash')) {
    const pushed = over.pushdown.route(plainPull) ?? over.broadcast.route(plainPull);
    if (pushed?.kind === 'pull') outer = pushed;
  }
  const own = new Set(results.map((r) => r.tempName));
  const intermediate: IntermediatePlan = {
    results,
    reads: over.reads.filter((n) => !own.has(n)),
    snapshot,
    fallback: { pulls: plainPull.pulls, sql: plainPull.sql },
    shippedNodes: 0,
    keptBecause: null,
  };
  return {
    kind: 'pull',
    pulls: outer.pulls,
    partial: outer.partial,
    broadcast: outer.broadcast,
    intermediate,
    get sql() {
      return this.partial?.finalSql ?? plainPull.sql;
    },
  };
}

/** An intermediate result as the rest of the statement's planners see it: a reference table whose one placement is the temporary table. */
function intermediateTable(s: Subplan, index: number): DistributedTable {
  return {
    relationId: -(index + 1),
    schema: 'pg_temp',
    name: s.tempName,
    method: 'reference',
    distributionColumn: null,
    distributionColumnType: null,
    distributionColumnSqlType: null,
    hashFunction: null,
    colocationId: 0,
    columns: null,
    shards: [{ shardId: -(index + 1), minValue: 0, maxValue: 0, shardName: s.tempName, placements: [] }],
  } as unknown as DistributedTable;
}

function readsIntermediate(n: Node): boolean {
  return someNode(n, (o) => o.RangeVar?.schemaname === 'pg_temp' && String(o.RangeVar.relname).startsWith(INTERMEDIATE_PREFIX));
}

/**
 * Whether an output column is a ROW(…) constructor or a whole-row reference
 * to a FROM subquery (record-columns.ts; a name that might be a column
 * counts): a table cannot hold an anonymous record column.
 */
function anonymousRecord(select: Node): boolean {
  const s = leftmostSelect(select);
  return ((s?.targetList ?? []) as Node[]).some((t) => isRecordExpression(t.ResTarget?.val, s, () => false));
}

/** Whether every reference to the CTE `name` in `parts` lies inside an EXISTS subquery. */
function readOnlyInExists(parts: Node[], name: string): boolean {
  let total = 0;
  let inExists = 0;
  const walk = (n: Node, inside: boolean): void => {
    if (n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      for (const x of n) walk(x, inside);
      return;
    }
    if (n.RangeVar && !n.RangeVar.schemaname && n.RangeVar.relname === name) {
      total++;
      if (inside) inExists++;
    }
    const entering = inside || n.SubLink?.subLinkType === 'EXISTS_SUBLINK';
    for (const k of Object.keys(n)) walk(n[k], entering);
  };
  for (const p of parts) walk(p, false);
  return total > 0 && inExists === total;
}

/** Whether two output columns (after a CTE's column aliases) share a name: CREATE TABLE AS refuses that. */
function duplicateNames(select: Node, aliases: Node[] | undefined): boolean {
  const s = leftmostSelect(select);
  const renamed = ((aliases ?? []) as Node[]).map((c) => c.String?.sval as string);
  const names = ((s?.targetList ?? []) as Node[]).map((t, i) => renamed[i] ?? outputName(t));
  const known = names.filter((n): n is string => n !== null && n !== '*');
  return new Set(known).size < known.length;
}

/** Output columns of a (set operation's leftmost) SELECT, or null after `*`. */
function targetWidth(select: Node): number | null {
  const targets = (leftmostSelect(select)?.targetList ?? []) as Node[];
  if (targets.length === 0 || someNode(targets, (o) => !!o.A_Star)) return null;
  return targets.length;
}

/** Whether a WITH inside this tree defines the same name (references below it would mean that one). */
function shadows(n: Node, name: string): boolean {
  return someNode(n, (o) => ((o.withClause?.ctes ?? []) as Node[]).some((c) => c.CommonTableExpr?.ctename === name));
}

/** Whether the tree reads `name` as a whole row (`name`, `name.*` or `f(name)`). */
function wholeRow(n: Node, name: string): boolean {
  return someNode(n, (o) => {
    const fields = o.ColumnRef?.fields as Node[] | undefined;
    if (!fields) return false;
    return (fields.length === 1 && fields[0].String?.sval === name) || (fields.length === 2 && fields[0].String?.sval === name && !!fields[1].A_Star);
  });
}

function replaceCteReferences(n: Node, name: string, tempName: string): void {
  someNode(n, (o) => {
    const rv = o.RangeVar;
    if (rv && !rv.schemaname && rv.relname === name) {
      rv.alias ??= { aliasname: name };
      rv.schemaname = 'pg_temp';
      rv.relname = tempName;
    }
    return false;
  });
}

interface Range {
  name: string;
  /** Column names, or null when unknown. */
  columns: Set<string> | null;
}

/**
 * Whether every column the SELECT names resolves inside it (PostgreSQL
 * resolves innermost first, so such a subquery means the same on its own).
 * Unknown column lists (local tables, functions, `*` in a subquery) count
 * as not self-contained.
 */
export function selfContained(select: Node, columnsOf: (rangeVar: Node) => string[] | null): boolean {
  const rangesOf = (from: Node[] | undefined, outer: Range[][], out: Range[]): boolean => {
    for (const item of from ?? []) {
      if (item.RangeVar) {
        const rv = item.RangeVar;
        const cols = columnsOf(rv);
        out.push({ name: rv.alias?.aliasname ?? rv.relname, columns: cols ? new Set(cols) : null });
        if (rv.alias?.colnames) return false;
      } else if (item.RangeSubselect) {
        const r = item.RangeSubselect;
        if (r.lateral || !check(r.subquery?.SelectStmt, outer)) return false;
        const names = outputNames(r.subquery.SelectStmt, r.alias?.colnames);
        out.push({ name: r.alias?.aliasname ?? '', columns: names === null || names.some((x) => x === null) ? null : new Set(names as string[]) });
      } else if (item.JoinExpr) {
        const j = item.JoinExpr;
        if (!rangesOf([j.larg, j.rarg], outer, out)) return false;
        if (j.alias) out.push({ name: j.alias.aliasname, columns: new Set() });
      } else {
        return false;
      }
    }
    return true;
  };
  const resolves = (fields: Node[], scopes: Range[][], targets: Set<string>): boolean => {
    if (fields.some((f) => !f.String && !f.A_Star)) return false;
    if (fields.length === 1 && fields[0].A_Star) return true;
    if (fields.length >= 2) {
      const qualifier = fields[fields.length - 2].String?.sval;
      return scopes.some((level) => level.some((r) => r.name === qualifier));
    }
    const name = fields[0].String.sval as string;
    for (let i = scopes.length - 1; i >= 0; i--) {
      const level = scopes[i];
      if (level.some((r) => r.columns?.has(name) || r.name === name)) return true;
      if (level.some((r) => r.columns === null)) return false;
    }
    return targets.has(name);
  };
  const check = (s: Node, outer: Range[][]): boolean => {
    if (!s) return false;
    if (s.op && s.op !== 'SETOP_NONE') return check(s.larg, outer) && check(s.rarg, outer);
    if (s.withClause) return false;
    const ranges: Range[] = [];
    if (!rangesOf(s.fromClause, outer, ranges)) return false;
    const scopes = [...outer, ranges];
    const targets = new Set(((s.targetList ?? []) as Node[]).map((t) => outputName(t)).filter((x): x is string => !!x));
    // STOP at the first reference that does not resolve.
    const unresolved = (n: Node): typeof SKIP | typeof STOP | void => {
      if (n.SubLink) return walkTree(n.SubLink.testexpr, unresolved) || !check(n.SubLink.subselect?.SelectStmt, scopes) ? STOP : SKIP;
      if (n.RangeSubselect || n.RangeVar || n.RangeFunction) return SKIP;
      if (n.ColumnRef && !resolves(n.ColumnRef.fields as Node[], scopes, targets)) return STOP;
    };
    const { fromClause, withClause, larg, rarg, ...rest } = s;
    let ok = !walkTree(rest, unresolved);
    // Join conditions see the ranges of their level (subqueries in FROM were checked on their own).
    const joins = (n: Node): void => {
      if (!ok || !n?.JoinExpr) return;
      ok = !walkTree(n.JoinExpr.quals, unresolved);
      joins(n.JoinExpr.larg);
      joins(n.JoinExpr.rarg);
    };
    ((fromClause ?? []) as Node[]).forEach(joins);
    return ok;
  };
  return check(select, []);
}
