/**
 * Broadcast joins: a SELECT joining distributed tables that are not
 * co-located (or not on their distribution columns) runs on the shards of
 * one co-located group — the anchor — with every other distributed table
 * shipped whole to each worker that runs a task, as a temporary table on the
 * task's own connection (in the statement's snapshot). On the workers the
 * broadcast tables then behave exactly like reference tables, so the
 * statement is a co-located pushdown (pushdown-planner.ts) over pseudo
 * reference tables whose "shard" is the temporary table, merged by the
 * existing machinery (partial aggregates, ORDER BY/LIMIT, DISTINCT…).
 *
 * Each co-located group of the statement is a candidate anchor; which one
 * runs (or whether the plain pull runs instead) depends on the tables'
 * sizes, which the executor measures (session/broadcast-tables.ts). A
 * broadcast table carries only the columns the statement names and, when it
 * is read once and never NULL-extended, the top-level WHERE conditions on it
 * alone.
 *
 * Exactness: per anchor shard, the statement sees all rows of every
 * broadcast table, so inner joins partition by the anchor's rows. Outer
 * joins are safe only while no broadcast (replicated) side is preserved
 * against a side holding shards: multi-shard-planner.ts checks that for
 * reference and broadcast tables alike, and the candidate is dropped.
 */
import { randomBytes } from 'node:crypto';
import type { Node } from '../sql/parse.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import type { DistributedTable } from '../metadata/types.js';
import { Restrictions } from './restrictions.js';
import type { ResolvedRelation } from './router-planner.js';
import { PushdownPlanner } from './pushdown-planner.js';
import { deparse, directRangeVars, fromSubqueryColumns, nullableRelations, pushdownObstacle } from './pushdown-query.js';
import { someNode } from '../sql/tree-walk.js';
import { VOLATILE_FUNCTIONS } from './multi-shard-planner.js';
import type { BroadcastCandidate, BroadcastTable, PartialResults, Route } from './route.js';

type PullRoute = Extract<Route, { kind: 'pull' }>;

export function broadcastTempName(table: DistributedTable): string {
  return `pgweave_broadcast_${table.relationId}`;
}

/**
 * Where a transaction block's broadcast tables live on the workers: a
 * schema every role may create tables in (session/broadcast-tables.ts).
 * A table there is created and dropped inside the block's transaction, so
 * no other transaction ever sees it, a rollback leaves nothing, and the
 * worker transaction can still PREPARE (temporary tables forbid that).
 */
export const STAGING_SCHEMA = 'pgweave_staging';

/** The worker table of a broadcast table, as SQL. */
export function workerTableSql(t: Pick<BroadcastTable, 'workerTable'>): string {
  return quoteQualified(t.workerTable.schema, t.workerTable.name);
}

/** CREATE of a broadcast table's worker table with these columns: temporary, or unlogged in the staging schema. */
export function createWorkerTableSql(t: Pick<BroadcastTable, 'workerTable'>, columns: string): string {
  const name = workerTableSql(t);
  return t.workerTable.schema === 'pg_temp'
    ? `DROP TABLE IF EXISTS ${name}; CREATE TEMP TABLE ${quoteIdent(t.workerTable.name)} (${columns})`
    : `CREATE UNLOGGED TABLE ${name} (${columns})`;
}

interface CandidatePlan {
  anchor: DistributedTable[];
  tables: BroadcastTable[];
  pushdown: PushdownPlanner;
  /** The candidate for a transaction block (staging tables), planned on first use. */
  staged: () => { tables: BroadcastTable[]; pushdown: PushdownPlanner };
}

export class BroadcastPlanner {
  private candidates: CandidatePlan[] | undefined;
  /**
   * Distinguishes this plan's staging tables from every other session's:
   * two blocks creating one name would wait on each other until the first
   * ends. A session runs one statement at a time, so one token per plan is enough.
   */
  private readonly token = randomBytes(6).toString('hex');

  constructor(private readonly select: Node, private readonly relations: ResolvedRelation[]) {}

  /** A pull route carrying the broadcast candidates, or null when there are none. */
  route(fallback: PullRoute): Route | null {
    this.candidates ??= this.analyse();
    const build = (plans: Array<{ anchor: DistributedTable[]; tables: BroadcastTable[]; pushdown: PushdownPlanner }>): BroadcastCandidate[] => {
      const out: BroadcastCandidate[] = [];
      for (const c of plans) {
        const r = c.pushdown.route(fallback);
        if (r?.kind === 'pull' && r.partial) out.push({ anchor: c.anchor, tables: c.tables.map((t) => ({ ...t })), route: r as BroadcastCandidate['route'] });
      }
      return out;
    };
    const candidates = build(this.candidates);
    if (candidates.length === 0) return null;
    const plans = this.candidates;
    const route: PullRoute = {
      kind: 'pull',
      pulls: fallback.pulls,
      partial: undefined as PartialResults | undefined,
      broadcast: { candidates, blockCandidates: () => build(plans.map((c) => ({ anchor: c.anchor, ...c.staged() }))), chosen: null, pulledBecause: null },
      get sql() {
        return this.partial?.finalSql ?? fallback.sql;
      },
    };
    return route;
  }

  private analyse(): CandidatePlan[] {
    const select = this.select;
    if (pushdownObstacle(select)) return [];
    const hash = this.relations.filter((r) => r.table.method === 'hash');
    if (hash.length < 2 || this.relations.some((r) => r.table.method !== 'hash' && r.table.method !== 'reference')) return [];
    // Worker queries are matched back to relations by name and alias: one name in two subqueries cannot be told apart.
    if (new Set(this.relations.map((r) => `${r.ref.schema}.${r.ref.name} ${r.ref.refName}`)).size < this.relations.length) return [];
    const restrictions = new Restrictions(select, this.relations.map((r) => r.ref), (ref) => this.tableOf(ref)?.distributionColumn ?? null, (ref) => this.tableOf(ref)?.columns);
    // Co-located groups: same co-location, distribution columns equated.
    const groups: ResolvedRelation[][] = [];
    for (const r of hash) {
      const g = groups.find((g) => g[0].table.colocationId === r.table.colocationId &&
        restrictions.sameClassOf(g[0].ref, g[0].table.distributionColumn!, r.ref, r.table.distributionColumn!));
      if (g) g.push(r);
      else groups.push([r]);
    }
    if (groups.length < 2) return [];
    const nullable = nullableRelations(select);
    const out: CandidatePlan[] = [];
    for (const anchor of groups) {
      const broadcast = hash.filter((r) => !anchor.includes(r));
      if (broadcast.some((r) => wholeRowReference(select, r.ref.refName))) continue;
      const tables = new Map<number, BroadcastTable>();
      const refsOf = new Map<number, ResolvedRelation[]>();
      for (const r of broadcast) {
        refsOf.set(r.table.relationId, [...(refsOf.get(r.table.relationId) ?? []), r]);
        if (!tables.has(r.table.relationId)) {
          const tempName = broadcastTempName(r.table);
          tables.set(r.table.relationId, { table: r.table, tempName, refName: r.ref.refName, neededColumns: neededColumns(select), filterSql: null, workerTable: { schema: 'pg_temp', name: tempName } });
        }
      }
      for (const [id, refs] of refsOf) {
        if (refs.length === 1 && !nullable.has(refs[0].ref.node)) tables.get(id)!.filterSql = this.filterFor(refs[0]);
      }
      const pseudo = (place: (t: DistributedTable) => { schema: string; name: string }) =>
        this.relations.map((r) => (broadcast.includes(r) ? { ref: r.ref, table: asBroadcast(r.table, place(r.table)) } : r));
      const temp = (t: DistributedTable) => ({ schema: 'pg_temp', name: broadcastTempName(t) });
      const stagedAt = (t: DistributedTable) => ({ schema: STAGING_SCHEMA, name: `${broadcastTempName(t)}_${this.token}` });
      let staged: { tables: BroadcastTable[]; pushdown: PushdownPlanner } | undefined;
      const shipped = [...tables.values()];
      out.push({
        anchor: [...new Set(anchor.map((r) => r.table))],
        tables: shipped,
        pushdown: new PushdownPlanner(select, pseudo(temp)),
        staged: () => (staged ??= {
          tables: shipped.map((t) => ({ ...t, workerTable: stagedAt(t.table) })),
          pushdown: new PushdownPlanner(select, pseudo(stagedAt)),
        }),
      });
    }
    return out;
  }

  private tableOf(ref: ResolvedRelation['ref']): DistributedTable | undefined {
    return this.relations.find((r) => r.ref === ref)?.table;
  }

  /**
   * The top-level WHERE conjuncts that read this relation alone (columns
   * qualified by its name, or unqualified names no other relation of the
   * statement has), deparsed with its reference name; null when none.
   */
  filterFor(rel: ResolvedRelation): string | null {
    const own = rel.table.columns;
    const level = levelOf(this.select, rel.ref.node);
    if (!own || !level) return null;
    // Unqualified names resolve among the relations and subqueries of the relation's own FROM clause.
    const direct = directRangeVars(level.fromClause);
    const others = this.relations.filter((r) => r !== rel && direct.has(r.ref.node));
    const subqueryColumns = fromSubqueryColumns(level);
    const ownColumn = (fields: Node[]): boolean => {
      if (fields.some((f) => !f.String)) return false;
      const names = fields.map((f) => f.String.sval as string);
      if (names.length === 2) return names[0] === rel.ref.refName && own.includes(names[1]);
      if (names.length !== 1 || !own.includes(names[0]) || subqueryColumns.has(names[0])) return false;
      return others.every((o) => o.table.columns && !o.table.columns.includes(names[0]));
    };
    const parts = conjuncts(level.whereClause).filter((c) => {
      let refs = 0;
      const bad = someNode(c, (o) => {
        if (o.SubLink || o.ParamRef || o.GroupingFunc) return true;
        if (o.FuncCall) {
          const names = o.FuncCall.funcname as Node[];
          if (VOLATILE_FUNCTIONS.has(names[names.length - 1]?.String?.sval) || o.FuncCall.over || o.FuncCall.agg_star) return true;
        }
        if (o.ColumnRef) {
          refs++;
          return !ownColumn(o.ColumnRef.fields as Node[]);
        }
        return false;
      });
      return !bad && refs > 0;
    });
    if (parts.length === 0) return null;
    try {
      return deparse(parts.length === 1 ? parts[0] : { BoolExpr: { boolop: 'AND_EXPR', args: parts } });
    } catch {
      return null;
    }
  }
}

/** The SELECT (this one or a subquery in its FROM) whose own FROM clause holds a RangeVar. */
function levelOf(select: Node, rangeVar: Node): Node | null {
  if (directRangeVars(select.fromClause).has(rangeVar)) return select;
  let found: Node | null = null;
  const visit = (n: Node): void => {
    if (found || !n) return;
    if (n.RangeSubselect?.subquery?.SelectStmt) found = levelOf(n.RangeSubselect.subquery.SelectStmt, rangeVar);
    else if (n.JoinExpr) {
      visit(n.JoinExpr.larg);
      visit(n.JoinExpr.rarg);
    }
  };
  ((select.fromClause ?? []) as Node[]).forEach(visit);
  return found;
}

/** A broadcast table as the worker query sees it: a reference table whose one placement is the worker table. */
function asBroadcast(table: DistributedTable, at: { schema: string; name: string }): DistributedTable {
  const first = table.shards[0];
  return {
    ...table,
    method: 'reference',
    schema: at.schema,
    distributionColumn: null,
    shards: [{ ...first, shardName: at.name }],
  };
}

function conjuncts(n: Node): Node[] {
  if (!n) return [];
  if (n.BoolExpr?.boolop === 'AND_EXPR') return (n.BoolExpr.args as Node[]).flatMap(conjuncts);
  return [n];
}

/** Names of every column reference (a superset of what any one table must provide); null after `*`. */
export function neededColumns(select: Node): Set<string> | null {
  const names = new Set<string>();
  let star = false;
  someNode(select, (o) => {
    if (o.JoinExpr?.isNatural) star = true;
    for (const u of (o.JoinExpr?.usingClause ?? []) as Node[]) if (u.String) names.add(u.String.sval);
    if (!o.ColumnRef) return false;
    const fields = o.ColumnRef.fields as Node[];
    const last = fields[fields.length - 1];
    if (last?.A_Star) star = true;
    else if (last?.String) names.add(last.String.sval);
    return false;
  });
  return star ? null : names;
}

/** Whether the statement reads a relation's whole row (`t`, `t.*` or `f(t)`): its row type must stay the table's. */
export function wholeRowReference(select: Node, refName: string): boolean {
  return someNode(select, (o) => {
    const fields = o.ColumnRef?.fields as Node[] | undefined;
    if (!fields) return false;
    return (fields.length === 1 && fields[0].String?.sval === refName) || (fields.length === 2 && fields[0].String?.sval === refName && !!fields[1].A_Star);
  });
}
