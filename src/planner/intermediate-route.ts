/**
 * The last stage of recursive planning: a statement whose CTEs and
 * subqueries were replaced by intermediate results (`pg_temp.pgweave_
 * intermediate_<id>`) is planned with those tables as pseudo reference
 * tables — pushdown, else broadcast join, else the plain pull that reads
 * them on the coordinator — and becomes the `pull` route with
 * `intermediate` (route.ts `IntermediatePlan`) the session runs.
 */
import type { Node } from '../sql/parse.js';
import { parseSql } from '../sql/parse.js';
import type { DistributedTable } from '../metadata/types.js';
import { analyzeShape } from './relations.js';
import type { ResolvedRelation } from './router-planner.js';
import { planPull } from './pull-planner.js';
import { PushdownPlanner } from './pushdown-planner.js';
import { BroadcastPlanner } from './broadcast-planner.js';
import { clone, deparse } from './pushdown-query.js';
import type { IntermediatePlan, IntermediateResult, PullTable, Route } from './route.js';

type PullRoute = Extract<Route, { kind: 'pull' }>;

/** A statement (the rest, or a CTE reading earlier CTEs) planned over intermediate results as pseudo reference tables. */
export interface OverPlan {
  text: string;
  stmt: Node;
  /** Its distributed and reference tables (what a pull moves). */
  relations: ResolvedRelation[];
  /** Intermediate results it reads. */
  reads: string[];
  pushdown: PushdownPlanner;
  broadcast: BroadcastPlanner;
}

/**
 * Plans a statement whose CTEs and subqueries were replaced by
 * intermediate results; `tempNames`: the intermediate tables known so far,
 * in subplan order; `resolve`: the statement's distributed and reference tables.
 */
export function planOver(select: Node, tempNames: string[], resolve: (schema: string | null, name: string) => DistributedTable | undefined): OverPlan | null {
  const text = deparse({ SelectStmt: select });
  const stmt = clone(parseSql(text).stmts[0]?.stmt?.SelectStmt);
  if (!stmt) return null;
  const relations: ResolvedRelation[] = [];
  const pseudo: ResolvedRelation[] = [];
  for (const ref of analyzeShape(stmt).relations) {
    const index = ref.schema === 'pg_temp' ? tempNames.indexOf(ref.name) : -1;
    if (index >= 0) {
      pseudo.push({ ref, table: intermediateTable(ref.name, index) });
      continue;
    }
    const table = resolve(ref.schema, ref.name);
    if (table) relations.push({ ref, table });
  }
  const all = [...relations, ...pseudo];
  const reads = [...new Set(pseudo.map((p) => p.table.name))];
  return { text, stmt, relations, reads, pushdown: new PushdownPlanner(stmt, all), broadcast: new BroadcastPlanner(stmt, all) };
}

/**
 * The route of a statement over intermediate results: pushed down (or a
 * broadcast join) over them when it can, else the plain pull that reads
 * them on the coordinator. `results` are computed first; the other tables
 * it reads (`over.reads`) were computed by an enclosing plan.
 */
export function routeOver(over: OverPlan, results: IntermediateResult[], snapshot: PullTable[]): PullRoute {
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
function intermediateTable(tempName: string, index: number): DistributedTable {
  return {
    relationId: -(index + 1),
    schema: 'pg_temp',
    name: tempName,
    method: 'reference',
    distributionColumn: null,
    distributionColumnType: null,
    distributionColumnSqlType: null,
    hashFunction: null,
    colocationId: 0,
    columns: null,
    shards: [{ shardId: -(index + 1), minValue: 0, maxValue: 0, shardName: tempName, placements: [] }],
  } as unknown as DistributedTable;
}
