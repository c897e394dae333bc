/**
 * FROM subqueries with GROUP BY inside a pushdown (TPC-H Q13: `SELECT
 * c_count, count(*) FROM (SELECT c_custkey, count(o_orderkey) FROM customer
 * LEFT JOIN orders ON … GROUP BY c_custkey) …`). Such a subquery runs per
 * shard group, its rows unchanged, when one of its GROUP BY keys is the
 * distribution column of a distributed table of its own FROM whose rows are
 * never NULL-extended there: all rows of a group then carry one
 * distribution value and live in one shard group (the co-location checks
 * tie the other tables to it). pushdown-query.ts lets grouped subqueries
 * over tables and joins through; this check, which needs the relations,
 * declines the others.
 */
import type { Node } from '../sql/parse.js';
import type { ResolvedRelation } from './router-planner.js';
import { directRangeVars, intConst, nullableRelations } from './pushdown-query.js';
import { someNode } from '../sql/tree-walk.js';

/** Why a grouped FROM subquery cannot run per shard group, or null when every one can. */
export function groupedSubqueryObstacle(select: Node, relations: ResolvedRelation[]): string | null {
  let why: string | null = null;
  someNode(select.fromClause, (o) => {
    const s = o.RangeSubselect?.subquery?.SelectStmt;
    if (s?.groupClause && !why && !groupedByShardKey(s, relations)) why = 'a FROM subquery not grouped by a distribution column';
    return false;
  });
  return why;
}

function groupedByShardKey(s: Node, relations: ResolvedRelation[]): boolean {
  const direct = directRangeVars(s.fromClause);
  const own = relations.filter((r) => direct.has(r.ref.node));
  const nullable = nullableRelations(s);
  const targets = (s.targetList ?? []) as Node[];
  return (s.groupClause as Node[]).some((g) => {
    const pos = intConst(g);
    const expr = pos === null ? g : targets[pos - 1]?.ResTarget?.val;
    const fields = ((expr?.ColumnRef?.fields ?? []) as Node[]).map((f) => f.String?.sval as string | undefined);
    if (fields.length === 0 || fields.some((f) => f === undefined)) return false;
    let rel: ResolvedRelation | undefined;
    const column = fields[fields.length - 1];
    if (fields.length === 2) rel = own.find((r) => r.ref.refName === fields[0]);
    else if (fields.length === 1 && own.every((r) => r.table.columns)) {
      const having = own.filter((r) => r.table.columns!.includes(column!));
      if (having.length === 1) rel = having[0];
    }
    return !!rel && rel.table.method === 'hash' && rel.table.distributionColumn === column && !nullable.has(rel.ref.node);
  });
}
