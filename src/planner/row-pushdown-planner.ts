/**
 * SELECTs whose every output row is computed on one shard, merged at the
 * coordinator: rows without aggregates that need ORDER BY, LIMIT/OFFSET or
 * DISTINCT across shards, and aggregate queries grouped by a distribution
 * column (each group lives on one shard, so the worker runs the whole query
 * with HAVING and every aggregate, ordered-set ones included).
 *
 * Worker query: the targets as `pgweave_o<i>` plus hidden sort keys
 * (`pgweave_s<i>`) for ORDER BY expressions that are not outputs; with
 * DISTINCT, DISTINCT; with a constant LIMIT, `ORDER BY … LIMIT count+offset`
 * (the first rows overall are among every shard's first rows).
 *
 * Final query over the temporary table: `SELECT [DISTINCT] pgweave_o<i> AS
 * <the original's name> … ORDER BY <the key columns, directions, NULLS,
 * USING as written> LIMIT … OFFSET …` — PostgreSQL orders, with the
 * columns' own types and collations.
 */
import type { Node } from '../sql/parse.js';
import type { ResolvedRelation } from './router-planner.js';
import { outputName } from './output-names.js';
import { isRecordExpression, splitRecord } from './record-columns.js';
import {
  TEMP_PLACEHOLDER, clone, colRef, decline, deparse, hasAggregate, hasOuterJoin, hasWindow, intConst, sameExpr,
  target, type PushdownQuery,
} from './pushdown-query.js';

/** Whether an expression is a plain reference to a distribution column: equal values live on one shard. */
export function isDistributionColumn(n: Node, relations: ResolvedRelation[]): boolean {
  const distributed = relations.filter((r) => r.table.method === 'hash');
  const fields = ((n?.ColumnRef?.fields ?? []) as Node[]).map((f) => f.String?.sval);
  if (fields.length === 2) return distributed.some((r) => r.ref.refName === fields[0] && r.table.distributionColumn === fields[1]);
  if (fields.length === 1) return relations.length === 1 && distributed[0]?.table.distributionColumn === fields[0];
  return false;
}

/** Whether GROUP BY has a distribution column of a table whose rows are never NULL-extended. */
export function groupedByDistributionColumn(select: Node, keys: Node[], relations: ResolvedRelation[]): boolean {
  if (hasOuterJoin(select)) return false;
  return keys.some((k) => isDistributionColumn(k, relations));
}

/**
 * The targets; `*` declines: expanding it needs the table's columns, and the
 * catalog's list can be stale inside a transaction block that altered the
 * table (the pull path reads the columns from the coordinator's table).
 */
function plainTargets(select: Node): Node[] {
  const targets = (select.targetList ?? []) as Node[];
  if (targets.some((t) => ((t.ResTarget?.val?.ColumnRef?.fields ?? []) as Node[]).some((f) => f.A_Star))) decline('*');
  return targets;
}

/** The row-pushdown plan of a SELECT (already checked by pushdownObstacle), or throws Decline. */
export function pushRows(select: Node, grouped: boolean, inputColumn: (name: string) => boolean): PushdownQuery {
  if (hasWindow(select.targetList) || hasWindow(select.sortClause) || select.windowClause) decline('window functions');
  if (!grouped && (select.groupClause || select.havingClause || hasAggregate(select.targetList) || hasAggregate(select.sortClause))) decline('aggregates');
  const distinct = !!select.distinctClause;
  const targets = plainTargets(select);
  const names = targets.map(outputName);
  if (names.some((n) => n === null)) decline('an output column name this planner cannot derive');
  const workerTargets: Node[] = [];
  /**
   * Adds an expression to the worker query: one column, or one per field of
   * an anonymous record (record-columns.ts: a table cannot hold a record).
   * Returns its worker positions (1-based) and its expression in the final query.
   */
  const addColumn = (expr: Node, name: string): { positions: number[]; final: Node } => {
    const split = splitRecord(expr, select, inputColumn);
    if (!split && isRecordExpression(expr, select, inputColumn)) decline('a whole-row reference to a subquery whose columns are not known');
    if (!split) {
      workerTargets.push(target(clone(expr), name));
      return { positions: [workerTargets.length], final: colRef(name) };
    }
    const refs = split.leaves.map((leaf, j) => {
      workerTargets.push(target(clone(leaf), `${name}_${j + 1}`));
      return colRef(`${name}_${j + 1}`);
    });
    return { positions: refs.map((_, j) => workerTargets.length - refs.length + j + 1), final: split.build(refs) };
  };
  const columns = targets.map((t, i) => ({ expr: t.ResTarget.val as Node, ...addColumn(t.ResTarget.val, `pgweave_o${i + 1}`) }));
  const workerSort: Node[] = [];
  const finalSort: Node[] = [];
  for (const item of (select.sortClause ?? []) as Node[]) {
    const node = item.SortBy.node;
    const pos = intConst(node);
    const fields = (node?.ColumnRef?.fields ?? []) as Node[];
    let column: { positions: number[]; final: Node };
    if (pos !== null) {
      if (pos < 1 || pos > targets.length) decline('ORDER BY position');
      column = columns[pos - 1];
    } else if (fields.length === 1 && fields[0].String && names.includes(fields[0].String.sval)) {
      const at = names.indexOf(fields[0].String.sval);
      if (names.lastIndexOf(fields[0].String.sval) !== at) decline('ambiguous ORDER BY name');
      column = columns[at];
    } else {
      const found = columns.find((c) => sameExpr(c.expr, node));
      if (!found && distinct) decline('DISTINCT with ORDER BY on an expression not selected');
      column = found ?? addColumn(node, `pgweave_s${workerTargets.length + 1}`);
    }
    // A record orders field by field, NULL fields last (first descending): the fields' own default order.
    if (column.positions.length > 1 || column.final.RowExpr) {
      if (item.SortBy.useOp || item.SortBy.sortby_nulls !== 'SORTBY_NULLS_DEFAULT') decline('ORDER BY a record with USING or NULLS FIRST/LAST');
    }
    // By position: an expression that is an integer constant would itself read as a position.
    for (const p of column.positions) workerSort.push({ SortBy: { ...clone(item.SortBy), node: { A_Const: { ival: { ival: p } } } } });
    finalSort.push({ SortBy: { ...clone(item.SortBy), node: clone(column.final) } });
  }

  const worker: Node = { targetList: workerTargets, fromClause: clone(select.fromClause), limitOption: 'LIMIT_OPTION_DEFAULT', op: 'SETOP_NONE' };
  if (distinct) worker.distinctClause = [{}];
  for (const k of ['whereClause', 'groupClause', 'havingClause']) if (select[k]) worker[k] = clone(select[k]);
  const count = select.limitCount ? intConst(select.limitCount) : null;
  const offset = select.limitOffset ? intConst(select.limitOffset) : 0;
  if (count !== null && offset !== null && count >= 0 && offset >= 0) {
    // No ORDER BY: any count+offset rows of each shard hold a valid answer; an empty list would deparse as `ORDER BY LIMIT`.
    if (workerSort.length) worker.sortClause = workerSort;
    worker.limitCount = { A_Const: { ival: { ival: count + offset } } };
    worker.limitOption = select.limitOption;
  }

  const final: Node = {
    targetList: columns.map((c, i) => target(clone(c.final), names[i]!)),
    fromClause: [{ RangeVar: { relname: TEMP_PLACEHOLDER, inh: true, relpersistence: 'p' } }],
    limitOption: select.limitOption,
    op: 'SETOP_NONE',
  };
  if (distinct) final.distinctClause = [{}];
  if (finalSort.length) final.sortClause = finalSort;
  if (select.limitCount) final.limitCount = clone(select.limitCount);
  if (select.limitOffset) final.limitOffset = clone(select.limitOffset);
  return {
    planner: grouped ? 'grouped-pushdown' : 'order-limit-pushdown',
    workerSql: deparse({ SelectStmt: worker }),
    finalTemplate: deparse({ SelectStmt: final }),
    combines: [],
  };
}
