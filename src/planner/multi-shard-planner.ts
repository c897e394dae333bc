/**
 * Multi-shard statements that need no merge step: UPDATE/DELETE without a
 * distribution-key filter, and SELECTs whose per-shard results simply
 * concatenate (no aggregates, grouping, DISTINCT, ordering, limits, window
 * functions or set operations; every distributed table joined on its
 * distribution column). One task per shard group, run in parallel; the
 * command tags add up. Anything needing a merge is declined with the
 * construct named; the pushdown planners (pushdown-planner.ts) and the pull
 * planner take those SELECTs, the pushdown ones reusing this planner's
 * co-location checks for their worker queries (`mergedByCaller`).
 */
import { PgError } from '../protocol/errors.js';
import type { Node } from '../sql/parse.js';
import { someNode } from '../sql/tree-walk.js';
import type { WorkerNode } from '../metadata/types.js';
import { Restrictions } from './restrictions.js';
import type { RelationRef } from './relations.js';
import { spliceShardText, type Replacement } from './shard-rewrite.js';
import type { ResolvedRelation } from './router-planner.js';
import type { Route, Task } from './route.js';

export const AGGREGATES = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every', 'bit_and',
  'bit_or', 'bit_xor', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'stddev', 'stddev_pop',
  'stddev_samp', 'variance', 'var_pop', 'var_samp', 'percentile_cont', 'percentile_disc', 'mode', 'corr',
  'covar_pop', 'covar_samp', 'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope',
  'regr_sxx', 'regr_sxy', 'regr_syy', 'xmlagg', 'range_agg', 'range_intersect_agg', 'rank', 'dense_rank',
  'percent_rank', 'cume_dist',
]);

/** Functions whose value differs per call: unsafe in a statement run once per shard. */
export const VOLATILE_FUNCTIONS = new Set([
  'random', 'nextval', 'setval', 'clock_timestamp', 'timeofday', 'gen_random_uuid', 'uuid_generate_v4',
  'uuid_generate_v1', 'txid_current', 'pg_current_xact_id', 'statement_timestamp',
]);

function unsupported(construct: string): PgError {
  return new PgError({
    code: '0A000',
    message: `multi-shard queries with ${construct} are not supported yet`,
    hint: 'Filter on the distribution column so the query runs on one shard.',
  });
}

/** The first construct in a SELECT tree that prevents plain concatenation, or null. */
function mergeConstruct(o: Node, top: boolean): string | null {
  if (o === null || typeof o !== 'object') return null;
  if (Array.isArray(o)) {
    for (const x of o) {
      const c = mergeConstruct(x, false);
      if (c) return c;
    }
    return null;
  }
  if (o.FuncCall) {
    const names = o.FuncCall.funcname as Node[];
    const name = names[names.length - 1]?.String?.sval;
    if (o.FuncCall.over) return 'window functions';
    if (AGGREGATES.has(name) || o.FuncCall.agg_star || o.FuncCall.agg_distinct) return `aggregates (${name})`;
  }
  if (o.groupClause) return 'GROUP BY';
  if (o.havingClause) return 'HAVING';
  if (o.distinctClause) return 'DISTINCT';
  if (o.limitCount || o.limitOffset) return 'LIMIT/OFFSET';
  if (o.op && o.op !== 'SETOP_NONE') return 'set operations (UNION/INTERSECT/EXCEPT)';
  if (top && o.sortClause) return 'ORDER BY';
  if (o.GroupingSet) return 'GROUPING SETS';
  for (const k in o) {
    const v = o[k];
    if (v !== null && typeof v === 'object') {
      const c = mergeConstruct(v, top && k === 'SelectStmt');
      if (c) return c;
    }
  }
  return null;
}

/**
 * Whether a subquery expression reads shards while the statement's own FROM
 * (through joins and FROM subqueries) has none: each shard would test the
 * replicated rows against its own part of the subquery's table, and return
 * them once per shard. Where the outer FROM has shards, the co-location
 * check has already tied the subquery's shards to them (an equality on the
 * distribution columns in the subquery's scope), so each outer row finds
 * every row it may match on its own shard.
 */
function subqueryReadsShardsAlone(stmt: Node, partitioned: (rangeVar: Node) => boolean): boolean {
  if (!someNode(stmt, (n) => !!n.SubLink && someNode(n.SubLink, partitioned))) return false;
  const outer = (n: Node): boolean => {
    if (!n) return false;
    if (n.RangeVar) return partitioned(n.RangeVar);
    if (n.JoinExpr) return outer(n.JoinExpr.larg) || outer(n.JoinExpr.rarg);
    if (n.RangeSubselect) return ((n.RangeSubselect.subquery?.SelectStmt?.fromClause ?? []) as Node[]).some(outer);
    return false;
  };
  return !((stmt.fromClause ?? []) as Node[]).some(outer);
}

/**
 * Whether an outer join preserves rows that every shard's task reads in
 * full — replicated tables (reference tables, broadcast tables), functions
 * in FROM, VALUES, subqueries without shards — against a side holding
 * shards: every shard would
 * return the preserved rows that match nothing there, once per shard. A
 * preserved side holding shards is safe (each of its rows lives on one
 * shard), as is a join of replicated tables only.
 */
export function replicatedPreservedSide(stmt: Node, partitioned: (rangeVar: Node) => boolean): boolean {
  return someNode(stmt, (n) => {
    const j = n.JoinExpr;
    if (!j || j.jointype === 'JOIN_INNER') return false;
    const left = someNode(j.larg, partitioned);
    const right = someNode(j.rarg, partitioned);
    if (j.jointype === 'JOIN_LEFT') return !left && right;
    if (j.jointype === 'JOIN_RIGHT') return left && !right;
    return left !== right || j.jointype !== 'JOIN_FULL';
  });
}

function hasCte(o: Node): boolean {
  return someNode(o, (n) => !!n.CommonTableExpr);
}

export function planMultiShard(
  text: Buffer,
  stmt: Node,
  kind: 'select' | 'update' | 'delete',
  relations: ResolvedRelation[],
  functions: Set<string>,
  /** The top-level SELECT's merge constructs are handled by the caller (pushdown planners). */
  mergedByCaller = false,
): Route {
  const distributed = relations.filter((r) => r.table.method === 'hash');
  const reference = relations.filter((r) => r.table.method === 'reference');
  if (new Set(distributed.map((r) => r.table.colocationId)).size > 1) {
    return { kind: 'error', error: unsupported('joins of tables that are not co-located') };
  }
  const tableOf = (ref: RelationRef) => relations.find((r) => r.ref === ref)?.table;
  const restrictions = new Restrictions(stmt, relations.map((r) => r.ref), (ref) => tableOf(ref)?.distributionColumn ?? null, (ref) => tableOf(ref)?.columns);
  // Reference tables alone (a statement's Describe: `describeTask`): one task on the first placement.
  const first = distributed[0] ?? reference[0];
  for (const r of distributed.slice(1)) {
    if (!restrictions.sameClassOf(first.ref, first.table.distributionColumn!, r.ref, r.table.distributionColumn!)) {
      return { kind: 'error', error: unsupported('joins that are not on the distribution column') };
    }
  }
  if (kind === 'select') {
    const construct = mergedByCaller ? null : mergeConstruct({ SelectStmt: stmt }, true);
    if (construct) return { kind: 'error', error: unsupported(construct) };
    const partitioned = (n: Node) => distributed.some((r) => r.ref.node === n);
    if (subqueryReadsShardsAlone(stmt, partitioned) || replicatedPreservedSide(stmt, partitioned)) {
      // Every shard would return the rows that match nothing (or the semi/anti join's rows) once: rows of
      // reference tables, and as much those of a function, VALUES or a subquery without shards, which every
      // shard's task computes in full.
      return { kind: 'error', error: unsupported('outer joins or subqueries that keep rows read on every shard') };
    }
    if (hasCte(stmt)) {
      // A CTE read twice joins its rows across shards; per-shard results would miss those pairs.
      return { kind: 'error', error: unsupported('CTEs') };
    }
    if (new Set(distributed.map((r) => r.ref.refName)).size < distributed.length) {
      // One name for tables in different subqueries: the co-location check cannot tell them apart.
      return { kind: 'error', error: unsupported('the same table name in several subqueries') };
    }
  } else {
    for (const f of functions) {
      if (VOLATILE_FUNCTIONS.has(f)) {
        return {
          kind: 'error',
          error: new PgError({ code: '0A000', message: `functions used in UPDATE and DELETE queries on distributed tables must not be VOLATILE (${f})` }),
        };
      }
    }
  }
  const tasks: Task[] = [];
  const shardCount = first.table.shards.length;
  for (let i = 0; i < shardCount; i++) {
    const node: WorkerNode = first.table.shards[i].placements[0].node;
    const replacements: Replacement[] = [];
    const shardIds: number[] = [];
    for (const r of distributed) {
      const shard = r.table.shards[i];
      shardIds.push(shard.shardId);
      replacements.push({ ref: r.ref, schema: r.table.schema, shardName: shard.shardName });
    }
    for (const r of reference) {
      replacements.push({ ref: r.ref, schema: r.table.schema, shardName: r.table.shards[0].shardName });
    }
    const origin = spliceShardText(text, replacements);
    tasks.push({ node, sql: origin.sql, shardIds, origin });
  }
  const tag = kind === 'select' ? 'SELECT' : kind === 'update' ? 'UPDATE' : 'DELETE';
  return { kind: 'multi-shard', tasks, isWrite: kind !== 'select', commandTag: tag };
}
