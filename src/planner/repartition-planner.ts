/**
 * Repartition joins (Citus's "dual repartition"): a SELECT joining
 * distributed tables that are not co-located (or not on their distribution
 * columns), where every distributed relation has a column in one
 * equivalence class of the statement (`a.x = b.y`, in WHERE or in any
 * JOIN … ON, outer joins included). Each relation's rows — the columns the
 * statement names, its own WHERE conditions applied on its shards — are
 * re-hashed by that column on the workers with PostgreSQL's own hash of one
 * common type (DESIGN.md decision 3) into B buckets with Citus's shard
 * ranges, and moved worker to worker so that bucket b of every relation
 * lands on the same node (session/repartition-tables.ts). The buckets then
 * are co-located shards of pseudo tables distributed by the join key, so the
 * statement is the co-located pushdown of pushdown-planner.ts over them,
 * merged by the existing machinery (partial aggregates, ORDER BY/LIMIT…).
 *
 * Exactness: a join row pairs rows with equal keys, and equal keys hash to
 * one bucket, so the per-bucket joins together are the whole join. Rows
 * whose key is NULL match nothing; they all go to bucket 0, so each one —
 * the preserved side of an outer join included — appears exactly once.
 * (GROUP BY the NULL-extended side's key is never fully pushed down: the
 * pushdown planners already refuse that with outer joins.)
 *
 * Whether it runs is the executor's decision (sizes, settings, transaction
 * block); the route keeps the broadcast candidates and the plain pull.
 */
import type { Node } from '../sql/parse.js';
import type { DistributedTable, WorkerNode } from '../metadata/types.js';
import { computeShardIntervals } from '../metadata/shard-interval.js';
import { ELEMENT_HASH_FUNCTION } from '../sql/hash.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { Restrictions } from './restrictions.js';
import type { ResolvedRelation } from './router-planner.js';
import { PushdownPlanner } from './pushdown-planner.js';
import { nullableRelations, pushdownObstacle } from './pushdown-query.js';
import { BroadcastPlanner, neededColumns, wholeRowReference } from './broadcast-planner.js';
import type { RepartitionCandidate, RepartitionChoice, RepartitionSide, Route } from './route.js';

type PullRoute = Extract<Route, { kind: 'pull' }>;

/** Co-location id of the pseudo tables: no catalog table has it. */
const PSEUDO_COLOCATION = -1;

export class RepartitionPlanner {
  private sides: RepartitionSide[] | null | undefined;
  private readonly pushdowns = new Map<number, PushdownPlanner>();

  constructor(private readonly select: Node, private readonly relations: ResolvedRelation[]) {}

  /**
   * `route` (the broadcast route, or the plain pull `fallback`) with a
   * repartition choice attached, when every distributed relation can be
   * re-hashed by one join key; `route` itself otherwise.
   */
  attach(route: Route, fallback: PullRoute): Route {
    if (route.kind !== 'pull') return route;
    this.sides ??= this.analyse();
    const sides = this.sides;
    if (!sides) return route;
    const choice: RepartitionChoice = {
      sides,
      plan: (perNode) => this.candidate(sides, perNode, fallback),
      chosen: null,
      notChosenBecause: null,
    };
    return {
      kind: 'pull',
      pulls: route.pulls,
      partial: route.partial,
      broadcast: route.broadcast,
      repartition: choice,
      get sql() {
        return this.partial?.finalSql ?? fallback.sql;
      },
    };
  }

  private analyse(): RepartitionSide[] | null {
    const select = this.select;
    if (pushdownObstacle(select)) return null;
    const hash = this.relations.filter((r) => r.table.method === 'hash');
    if (hash.length < 2 || this.relations.some((r) => r.table.method !== 'hash' && r.table.method !== 'reference')) return null;
    // Worker queries are matched back to relations by name and alias (as for broadcast joins).
    if (new Set(this.relations.map((r) => `${r.ref.schema}.${r.ref.name} ${r.ref.refName}`)).size < this.relations.length) return null;
    if (hash.some((r) => !r.table.columns || wholeRowReference(select, r.ref.refName))) return null;
    const tableOf = (ref: ResolvedRelation['ref']) => this.relations.find((r) => r.ref === ref)?.table;
    const restrictions = new Restrictions(select, this.relations.map((r) => r.ref), (ref) => tableOf(ref)?.distributionColumn ?? null, (ref) => tableOf(ref)?.columns);
    const [first, ...rest] = hash;
    let keys: string[] | null = null;
    for (const c0 of first.table.columns!) {
      const found = [c0];
      for (const r of rest) {
        const c = r.table.columns!.find((col) => restrictions.sameClassOf(first.ref, c0, r.ref, col));
        if (c === undefined) break;
        found.push(c);
      }
      if (found.length === hash.length) {
        keys = found;
        break;
      }
    }
    if (!keys) return null;
    const needed = neededColumns(select);
    const nullable = nullableRelations(select);
    const filters = new BroadcastPlanner(select, this.relations);
    return hash.map((r, j) => ({
      table: r.table,
      refName: r.ref.refName,
      key: keys![j],
      stagingName: `pgweave_repartition_${j}`,
      neededColumns: needed,
      filterSql: nullable.has(r.ref.node) ? null : filters.filterFor(r),
    }));
  }

  /** The pushdown over B = perNode × nodes buckets, or null when it declines. */
  private candidate(sides: RepartitionSide[], perNode: number, fallback: PullRoute): RepartitionCandidate | null {
    const byId = new Map<number, WorkerNode>();
    for (const s of sides) for (const shard of s.table.shards) {
      const node = shard.placements[0]?.node;
      if (node) byId.set(node.nodeId, node);
    }
    const nodes = [...byId.values()].sort((a, b) => a.nodeId - b.nodeId);
    if (nodes.length === 0) return null;
    const buckets = Math.max(1, Math.floor(perNode)) * nodes.length;
    const intervals = computeShardIntervals(buckets, 1);
    const pseudo: DistributedTable[] = sides.map((s, j) => ({
      ...s.table,
      schema: 'pg_temp',
      distributionColumn: s.key,
      distributionColumnType: null,
      distributionColumnSqlType: null,
      hashFunction: ELEMENT_HASH_FUNCTION,
      colocationId: PSEUDO_COLOCATION,
      shards: intervals.map((iv, b) => {
        const shardId = -(j * buckets + b + 1);
        const node = nodes[b % nodes.length];
        return { shardId, minValue: iv.minValue, maxValue: iv.maxValue, shardName: `${s.stagingName}_${b}`, placements: [{ placementId: 0, shardId, groupId: node.groupId, node }] };
      }),
    }));
    let pushdown = this.pushdowns.get(buckets);
    if (!pushdown) {
      const hash = this.relations.filter((r) => r.table.method === 'hash');
      pushdown = new PushdownPlanner(this.select, this.relations.map((r) => (hash.includes(r) ? { ref: r.ref, table: pseudo[hash.indexOf(r)] } : r)));
      this.pushdowns.set(buckets, pushdown);
    }
    // The pushdown finds its partial-results owner among these pulls; the real tables stay the fallback.
    const overBuckets: PullRoute = { kind: 'pull', pulls: pseudo.map((t) => ({ table: t, tempName: '', filterSql: null, refName: t.name })), sql: fallback.sql };
    const r = pushdown.route(overBuckets);
    if (r?.kind !== 'pull' || !r.partial) return null;
    r.pulls = [r.pulls[0], ...fallback.pulls];
    return { sides: sides.map((s) => ({ ...s })), nodes, buckets, pseudo, route: r as RepartitionCandidate['route'] };
  }
}

/** Buckets of a candidate on one node. */
export function bucketsOn(c: RepartitionCandidate, node: WorkerNode): number[] {
  const out: number[] = [];
  for (let b = 0; b < c.buckets; b++) if (c.nodes[b % c.nodes.length].nodeId === node.nodeId) out.push(b);
  return out;
}

/** EXPLAIN lines of a repartition join that ran. */
export function repartitionLines(c: RepartitionCandidate): string[] {
  const keys = c.sides.map((s) => `${s.refName}.${s.key}`).join(' = ');
  const out = [`  Join Strategy: repartition (by ${keys}${c.keyType ? ` as ${c.keyType}` : ''}; ${c.buckets} buckets on ${c.nodes.length} node${c.nodes.length === 1 ? '' : 's'})`];
  for (const s of c.sides) {
    out.push(`  ->  Repartition ${quoteQualified(s.table.schema, s.table.name)} ${s.refName} by ${quoteIdent(s.key)} into pg_temp.${s.stagingName}_<bucket>`);
    if (s.filterSql) out.push(`        Shard Filter: ${s.filterSql}`);
  }
  return out;
}

/** SQL creating a task node's staging tables empty (plain tables of the same columns), for EXPLAIN to plan a task. */
export function emptyStagingSql(c: RepartitionCandidate, node: WorkerNode): { create: string; drop: string } {
  const names: string[] = [];
  let create = '';
  for (const s of c.sides) {
    for (const b of bucketsOn(c, node)) {
      const name = `${s.stagingName}_${b}`;
      names.push(`pg_temp.${quoteIdent(name)}`);
      create += `DROP TABLE IF EXISTS pg_temp.${quoteIdent(name)}; CREATE TEMP TABLE ${quoteIdent(name)} (${s.definition ?? ''}); `;
    }
  }
  return { create, drop: names.length ? `DROP TABLE IF EXISTS ${names.join(', ')}` : '' };
}
