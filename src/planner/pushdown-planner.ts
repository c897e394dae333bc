/**
 * The pushdown stage of the cascade, between concatenating multi-shard
 * plans and pulling whole tables: chooses how a multi-shard SELECT that
 * needs a merge runs on the shards —
 *   - aggregates grouped by a distribution column → the whole query per
 *     shard, ORDER BY/LIMIT/DISTINCT merged (row-pushdown-planner.ts);
 *   - other aggregates → partial aggregates per shard, combined at the
 *     coordinator (aggregate-pushdown-planner.ts);
 *   - rows needing ORDER BY, LIMIT or DISTINCT → rows per shard (with
 *     ORDER BY … LIMIT pushed down), merged (row-pushdown-planner.ts).
 * Anything else, or anything a planner declines, returns null: the caller
 * pulls the tables (pull-planner.ts). The analysis depends only on the
 * statement, so `PushdownPlanner` is built once per statement plan.
 */
import type { Node } from '../sql/parse.js';
import type { ResolvedRelation } from './router-planner.js';
import { groupExpressions, hasGroupingSets, splitAggregates } from './aggregate-pushdown-planner.js';
import { groupedByDistributionColumn, isDistributionColumn, pushRows } from './row-pushdown-planner.js';
import { Decline, fromSubqueryColumns, hasAggregate, hasFromSubquery, hasOuterJoin, pushdownObstacle, pushdownRoute, workerTasks, type PushdownQuery } from './pushdown-query.js';
import { groupedSubqueryObstacle } from './grouped-subqueries.js';
import type { Route, Task } from './route.js';

export class PushdownPlanner {
  private analysed: { query: PushdownQuery; tasks: Task[] } | null | undefined;
  /** Why the last analysis declined (for tests and EXPLAIN). */
  declined: string | null = null;

  constructor(private readonly select: Node, private readonly relations: ResolvedRelation[]) {}

  /** The pushdown route, or null to pull. `fallback` is the pull route the executor may still switch to. */
  route(fallback: Extract<Route, { kind: 'pull' }>): Route | null {
    if (this.analysed === undefined) this.analysed = this.analyse();
    if (!this.analysed) return null;
    return pushdownRoute(this.analysed.query, this.analysed.tasks, fallback);
  }

  private analyse(): { query: PushdownQuery; tasks: Task[] } | null {
    const select = this.select;
    const obstacle = pushdownObstacle(select) ?? groupedSubqueryObstacle(select, this.relations);
    if (obstacle) {
      this.declined = obstacle;
      return null;
    }
    if (this.relations.some((r) => r.table.method !== 'hash' && r.table.method !== 'reference')) return null;
    // Below a subquery in FROM, columns are the subquery's outputs, and a distribution column's name says nothing.
    const subquery = hasFromSubquery(select);
    const subqueryColumns = subquery ? fromSubqueryColumns(select) : new Set<string>();
    const inputColumn = (name: string) => subqueryColumns.has(name) || this.relations.some((r) => !r.table.columns || r.table.columns.includes(name));
    const keyRelations = subquery ? [] : this.relations;
    try {
      let query: PushdownQuery;
      const aggregated = !!select.groupClause?.length || !!select.havingClause || hasAggregate(select.targetList) || hasAggregate(select.havingClause);
      if (aggregated) {
        const keys = groupExpressions(select, inputColumn);
        // Grouping sets span shards even with a distribution column (the coarser sets): always partial aggregates.
        query = !hasGroupingSets(select) && groupedByDistributionColumn(select, keys, keyRelations) ? pushRows(select, true, inputColumn) : splitAggregates(select, inputColumn, (n) => !hasOuterJoin(select) && isDistributionColumn(n, keyRelations));
      } else {
        query = pushRows(select, false, inputColumn);
      }
      const tasks = workerTasks(query.workerSql, this.relations);
      if (!tasks || tasks.length === 0) {
        this.declined = 'the tables are not joined on their distribution columns';
        return null;
      }
      return { query, tasks };
    } catch (err) {
      if (!(err instanceof Decline)) throw err;
      this.declined = err.message;
      return null;
    }
  }
}
