/**
 * Fast-path and router planning: a statement whose distributed tables are all
 * pinned to one shard group runs whole on the one node holding that group.
 *
 * `RouterPlan` is built once per statement text (and once per prepared
 * statement, at Parse): it resolves the relations, collects the
 * distribution-key restrictions and decides whether routing can work at all.
 * `route(params)` is the cheap part that runs per execution (per Bind, for
 * prepared statements — deferred pruning, DESIGN.md decision 8): hash the
 * pinned values, find the shard index, splice shard names into the text
 * (cached per shard index). A plan that cannot route returns a reason, and
 * the next planner of the cascade takes over.
 */
import { PgError } from '../protocol/errors.js';
import { hashDistributionValue } from '../sql/hash.js';
import { findShardIndexIn } from '../metadata/shard-interval.js';
import type { DistributedTable, WorkerNode } from '../metadata/types.js';
import type { Node } from '../sql/parse.js';
import { walkTree } from '../sql/tree-walk.js';
import type { RelationRef } from './relations.js';
import { constantText, Restrictions, type PinnedValue } from './restrictions.js';
import { spliceShardText, type Replacement } from './shard-rewrite.js';
import type { SplicedText } from '../sql/text-splice.js';
import type { Route, Task } from './route.js';

export type ParamValues = ReadonlyArray<string | null> | null;

export interface ResolvedRelation {
  ref: RelationRef;
  table: DistributedTable;
}

export class NotRoutable {
  constructor(readonly reason: string) {}
}

export class RouterPlan {
  private readonly distributed: ResolvedRelation[];
  private readonly reference: ResolvedRelation[];
  private readonly pins: PinnedValue[][];
  private readonly textByShardIndex = new Map<number, SplicedText>();
  /** The route of each shard group, built on its first use: routes are never modified, and a plan lives for one catalog version. */
  private readonly routeByShardIndex: Route[] = [];
  /** Rotates reads of reference-only statements across nodes. */
  private static referenceReadCounter = 0;

  constructor(
    private readonly text: Buffer,
    stmt: Node,
    relations: ResolvedRelation[],
    private readonly isWrite: boolean,
    /** A SELECT that changes nothing on the node (reads-only.ts). */
    private readonly readsOnly = false,
  ) {
    this.distributed = relations.filter((r) => r.table.method === 'hash');
    this.reference = relations.filter((r) => r.table.method === 'reference');
    const colocation = new Set(this.distributed.map((r) => r.table.colocationId));
    if (colocation.size > 1) throw new NotRoutable('the statement joins distributed tables that are not co-located');
    const tableOf = (ref: RelationRef) => relations.find((r) => r.ref === ref)?.table;
    const restrictions = new Restrictions(stmt, relations.map((r) => r.ref), (ref) => tableOf(ref)?.distributionColumn ?? null, (ref) => tableOf(ref)?.columns);
    const inserts = insertsByTarget(stmt);
    this.pins = this.distributed.map((r) => {
      const insert = inserts.get(r.ref.node);
      const values = insert ? insertedKeyValues(insert, r.table) : restrictions.pinnedValuesOf(r.ref, r.table.distributionColumn!);
      if (!values) throw new NotRoutable(`no equality condition on the distribution column of "${r.table.name}"`);
      return values;
    });
  }

  /** True when routing needs parameter values (deferred pruning at Bind). */
  get needsParams(): boolean {
    return this.pins.some((vs) => vs.some((v) => 'param' in v));
  }

  /** Picks the shard group and produces the task, or a reason it cannot. */
  route(params: ParamValues): Route | NotRoutable {
    if (this.distributed.length === 0) return this.routeReferenceOnly();
    let shardIndex = -1;
    for (let i = 0; i < this.distributed.length; i++) {
      const table = this.distributed[i].table;
      for (const v of this.pins[i]) {
        const text = 'param' in v ? (params ? params[v.param - 1] : undefined) : v.text;
        if (text === undefined) return new NotRoutable('parameter values are not known yet');
        if (text === null) return new NotRoutable('the distribution column is compared with NULL');
        let hash: number;
        try {
          hash = hashDistributionValue(table.distributionColumnSqlType ?? table.distributionColumnType!, text);
        } catch {
          return new NotRoutable(`cannot hash the value ${JSON.stringify(text)} as ${table.distributionColumnType}`);
        }
        const index = findShardIndexIn(table.shards, hash);
        if (shardIndex === -1) shardIndex = index;
        else if (index !== shardIndex) return new NotRoutable('the pinned values fall into different shards');
      }
    }
    return (this.routeByShardIndex[shardIndex] ??= this.routeTo(shardIndex));
  }

  private routeTo(shardIndex: number): Route {
    const anchor = this.distributed[0].table.shards[shardIndex];
    const node = anchor.placements[0].node;
    return {
      kind: 'router',
      isWrite: this.isWrite,
      planner: this.distributed.length === 1 && this.reference.length === 0 ? 'fast-path' : 'router',
      task: this.taskFor(shardIndex, node),
      readsOnly: this.readsOnly,
    };
  }

  private routeReferenceOnly(): Route | NotRoutable {
    const shard = this.reference[0].table.shards[0];
    if (!this.isWrite) {
      const placements = shard.placements;
      const node = placements[RouterPlan.referenceReadCounter++ % placements.length].node;
      return { kind: 'router', isWrite: false, planner: 'router', task: this.taskFor(0, node), readsOnly: this.readsOnly };
    }
    // Writes go to every placement, atomically (a multi-node transaction).
    const tasks = shard.placements.map((p) => this.taskFor(0, p.node));
    return { kind: 'multi-shard', tasks, isWrite: true, commandTag: '' };
  }

  private taskFor(shardIndex: number, node: WorkerNode): Task {
    let origin = this.textByShardIndex.get(shardIndex);
    const shardIds: number[] = [];
    const replacements: Replacement[] = [];
    for (const r of this.distributed) {
      const shard = r.table.shards[shardIndex];
      shardIds.push(shard.shardId);
      replacements.push({ ref: r.ref, schema: r.table.schema, shardName: shard.shardName });
    }
    for (const r of this.reference) {
      const shard = r.table.shards[0];
      shardIds.push(shard.shardId);
      replacements.push({ ref: r.ref, schema: r.table.schema, shardName: shard.shardName });
    }
    if (origin === undefined) {
      origin = spliceShardText(this.text, replacements);
      this.textByShardIndex.set(shardIndex, origin);
    }
    return { node, sql: origin.sql, shardIds, origin };
  }
}

/** The INSERTs of a statement's WITH clauses (any depth), by their target RangeVar. */
function insertsByTarget(stmt: Node): Map<Node, Node> {
  const out = new Map<Node, Node>();
  walkTree(stmt.withClause ?? null, (o) => {
    if (o.InsertStmt?.relation) out.set(o.InsertStmt.relation, o.InsertStmt);
  });
  return out;
}

/** A constant or parameter (possibly cast) as a pinned value; null for anything else. */
function pinnedValueOf(item: Node): PinnedValue | null {
  if (item?.ParamRef) return { param: item.ParamRef.number };
  if (item?.TypeCast?.arg?.ParamRef) return { param: item.TypeCast.arg.ParamRef.number };
  const text = constantText(item);
  return text === null ? null : { text };
}

/**
 * The distribution values an INSERT inside WITH writes: its VALUES rows'
 * (constants or parameters), or a plain SELECT's constant in that position,
 * so the INSERT routes with the rest of the statement. A column whose
 * default the coordinator computes (a sequence, identity) may not be left
 * out: the shard has no sequence, and nothing evaluates the INSERT here.
 */
function insertedKeyValues(insert: Node, table: DistributedTable): PinnedValue[] | null {
  const cols = ((insert.cols ?? []) as Node[]).map((c) => c.ResTarget.name as string);
  const names = cols.length > 0 ? cols : table.columns ?? null;
  if (!names) return null;
  const omitted = (table.columns ?? []).filter((c) => !names.includes(c) && (table.evaluatedDefaults ?? []).includes(c));
  if (omitted.length > 0) {
    throw new PgError({
      code: '0A000',
      message: `an INSERT in WITH into distributed table "${table.name}" that leaves out column "${omitted[0]}", whose default the coordinator computes, is not supported`,
      hint: 'Give the column a value in the INSERT, or run the INSERT as a statement of its own.',
    });
  }
  const keyIndex = names.indexOf(table.distributionColumn!);
  const select = insert.selectStmt?.SelectStmt;
  if (keyIndex < 0 || !select) return null;
  if (select.valuesLists) {
    const out: PinnedValue[] = [];
    for (const row of select.valuesLists as Node[]) {
      const v = pinnedValueOf((row.List.items as Node[])[keyIndex]);
      if (!v) return null;
      out.push(v);
    }
    return out;
  }
  const targets = (select.targetList ?? []) as Node[];
  if (select.op !== 'SETOP_NONE' || targets.some((t) => t.ResTarget?.val?.ColumnRef?.fields?.some((f: Node) => f.A_Star))) return null;
  const v = pinnedValueOf(targets[keyIndex]?.ResTarget?.val);
  return v ? [v] : null;
}

/** Citus's error for UPDATE ... SET <distribution column>. */
export function checkDistributionColumnNotUpdated(stmt: Node, table: DistributedTable): PgError | null {
  const targets = (stmt.targetList ?? []) as Node[];
  for (const t of targets) {
    if (t.ResTarget?.name === table.distributionColumn) {
      return new PgError({ code: '0A000', message: 'modifying the partition value of rows is not allowed' });
    }
  }
  return null;
}
