/**
 * The planner of last resort for SELECTs: pull the rows of each distributed
 * (and reference) table the query reads into temporary tables on the
 * coordinator PostgreSQL, then run the query there, unchanged but for the
 * table names. Any query PostgreSQL can run is answered, with exactly
 * PostgreSQL's semantics (DESIGN.md decision 1) — aggregates, ordering,
 * window functions, outer joins on any column, correlated subqueries —
 * at the cost of moving the rows. Temporary tables spill to disk, so
 * coordinator memory stays bounded.
 *
 * Where a table is read once and the outermost WHERE has conditions on that
 * table alone (no subqueries, parameters or volatile functions), those
 * conditions are pushed into the shards' COPY queries.
 */
import { deparseSql } from '../sql/deparse.js';
import type { Node } from '../sql/parse.js';
import { someNode } from '../sql/tree-walk.js';
import type { DistributedTable } from '../metadata/types.js';
import { spliceShardText, type Replacement } from './shard-rewrite.js';
import { VOLATILE_FUNCTIONS } from './multi-shard-planner.js';
import type { ResolvedRelation } from './router-planner.js';
import type { PullTable, Route } from './route.js';

/** A pulled table's temporary table: `pgweave_pull_<relid>`, LIKE the table (session/staged-relations.ts reads the relid back). */
export const PULL_TEMP_PREFIX = 'pgweave_pull_';

export function pullTempName(table: DistributedTable): string {
  return `${PULL_TEMP_PREFIX}${table.relationId}`;
}

/** Whether an expression can be evaluated on a shard on its own. */
function pushable(n: Node, refName: string): boolean {
  return !someNode(n, (o) => {
    if (o.SubLink || o.ParamRef || o.GroupingFunc) return true;
    if (o.FuncCall) {
      const names = o.FuncCall.funcname as Node[];
      const name = names[names.length - 1]?.String?.sval;
      if (VOLATILE_FUNCTIONS.has(name) || o.FuncCall.over || o.FuncCall.agg_star) return true;
    }
    if (o.ColumnRef) {
      const fields = o.ColumnRef.fields as Node[];
      if (fields.some((f) => f.A_Star) || (fields.length === 2 && fields[0].String?.sval !== refName) || fields.length > 2) return true;
    }
    return false;
  });
}

function conjuncts(n: Node): Node[] {
  if (!n) return [];
  if (n.BoolExpr?.boolop === 'AND_EXPR') return (n.BoolExpr.args as Node[]).flatMap(conjuncts);
  return [n];
}

/** The shard-side filter of a single-table SELECT, or null. */
function pushedFilter(select: Node, rel: ResolvedRelation, relationCount: number): string | null {
  if (relationCount !== 1 || !select?.whereClause) return null;
  const from = (select.fromClause ?? []) as Node[];
  if (from.length !== 1 || !from[0].RangeVar) return null;
  const parts = conjuncts(select.whereClause).filter((c) => pushable(c, rel.ref.refName));
  if (parts.length === 0) return null;
  const expr = parts.length === 1 ? parts[0] : { BoolExpr: { boolop: 'AND_EXPR', args: parts } };
  try {
    return deparseSql(expr);
  } catch {
    return null;
  }
}

export function planPull(text: Buffer, select: Node | null, relations: ResolvedRelation[], bareRelations = false): Route {
  const byTable = new Map<number, PullTable>();
  const replacements: Replacement[] = [];
  for (const r of relations) {
    let pull = byTable.get(r.table.relationId);
    if (!pull) {
      pull = { table: r.table, tempName: pullTempName(r.table), filterSql: null, refName: r.ref.refName };
      byTable.set(r.table.relationId, pull);
    }
    replacements.push({ ref: r.ref, schema: 'pg_temp', shardName: pull.tempName, noAlias: bareRelations });
  }
  if (select && relations.length === 1) byTable.get(relations[0].table.relationId)!.filterSql = pushedFilter(select, relations[0], relations.length);
  const origin = spliceShardText(text, replacements);
  return { kind: 'pull', pulls: [...byTable.values()], sql: origin.sql, origin };
}
