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
 * name must resolve inside them (`selfContained`, self-contained.ts; an unknown
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
 * This file owns the stages that choose the subplans (CTEs, then FROM
 * subqueries and subquery expressions outermost first, then local tables of
 * the coordinator) and the route's last checks (would it gain anything);
 * recursive-candidates.ts says what qualifies, self-contained.ts whether a
 * subquery stands alone, intermediate-route.ts plans the rest over the
 * intermediate tables.
 *
 * The intermediate results are computed before the rest runs, even where
 * PostgreSQL would have evaluated a subquery lazily (never, for an empty
 * outer query): as in Citus, an error inside such a subquery is raised
 * where PostgreSQL might not have raised it.
 */
import type { Node } from '../sql/parse.js';
import { parseSql } from '../sql/parse.js';
import { analyzeShape } from './relations.js';
import { outputName } from './output-names.js';
import { VOLATILE_FUNCTIONS } from './multi-shard-planner.js';
import { neededColumns } from './broadcast-planner.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { clone, deparse, lastName } from './pushdown-query.js';
import { someNode } from '../sql/tree-walk.js';
import { INTERMEDIATE_PREFIX, type IntermediateResult, type PullTable, type Route } from './route.js';
import { planOver, routeOver, type OverPlan } from './intermediate-route.js';
import {
  anonymousRecord, duplicateNames, fromCandidate, readOnlyInExists, readsDistributed, readsIntermediate, type ResolveTable, replaceCteReferences,
  shadows, sublinkCandidate, targetWidth, wholeRow,
} from './recursive-candidates.js';

/** What the recursive planner needs from the cascade (plan-statement.ts). */
export interface RecursiveContext {
  /** A distributed or reference table by name, as the statement's search_path resolves it. */
  resolve: ResolveTable;
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
        const over = planOver(q, subplans.map((s) => s.tempName), this.ctx.resolve);
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
      if (n.RangeSubselect && fromCandidate(n.RangeSubselect, root, this.ctx.resolve)) {
        const { id, tempName } = next();
        const sql = deparse(n.RangeSubselect.subquery);
        subplans.push({ id, tempName, sql, columns: null, plan: this.ctx.planSubquery(sql, `${id}_`) });
        holder[key] = { RangeVar: { schemaname: 'pg_temp', relname: tempName, inh: true, relpersistence: 'p', alias: n.RangeSubselect.alias } };
        return;
      }
      if (n.SubLink && sublinkCandidate(n.SubLink, this.ctx.resolve)) {
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
    if (this.shipLocal && readsDistributed(this.select, this.ctx.resolve)) this.replaceLocalTables(root, subplans, next);
    if (subplans.length === 0) return decline('no CTE or subquery to plan on its own');
    const outer = planOver(root, subplans.map((s) => s.tempName), this.ctx.resolve);
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
}
