/**
 * INSERT … SELECT into a distributed or reference table, in Citus's three
 * modes, chosen here:
 *
 * - pushdown: the target is hash-distributed, every distributed table the
 *   SELECT reads is co-located with it and joined on the distribution
 *   column, the SELECT puts a source's distribution column into the target's
 *   and needs no merge step (aggregates only when grouped by that column).
 *   Shard i of the source feeds shard i of the target: one `INSERT INTO
 *   target_i … SELECT … FROM source_i …` per shard, the original text with
 *   shard names spliced in. ON CONFLICT and RETURNING work as they are.
 * - repartition: the SELECT needs no merge step and reads co-located tables
 *   (or reference tables), but its rows belong to other shards of the target.
 *   The SELECT runs on every source shard group; its rows are routed by hash
 *   into the target's shards.
 * - coordinator: anything else (aggregates across shards, LIMIT, DISTINCT,
 *   window functions, subqueries, CTEs, set operations, local tables,
 *   parameters, sequences): the tables are pulled to the coordinator, the
 *   coordinator PostgreSQL runs the SELECT, the rows are routed by hash.
 *
 * The executor (src/commands/copy/insert-select.ts) runs repartition and
 * coordinator plans, and runs a pushdown plan's tasks only after checking
 * that the columns the INSERT leaves out need no coordinator-side value
 * (sequences): else it takes the coordinator plan kept in `fallback`.
 */
import { deparseSql } from '../sql/deparse.js';
import { isRecordExpression } from './record-columns.js';
import { PgError } from '../protocol/errors.js';
import type { Node } from '../sql/parse.js';
import { parseSql } from '../sql/parse.js';
import { walkTree } from '../sql/tree-walk.js';
import type { DistributedTable } from '../metadata/types.js';
import { Restrictions } from './restrictions.js';
import { hasModifyingCte } from './relations.js';
import { qualifiedNameLength, spliceShardNames, type Replacement } from './shard-rewrite.js';
import { planPull } from './pull-planner.js';
import { ORDINAL_RETURNING_SQL } from './insert-planner.js';
import type { ResolvedRelation } from './router-planner.js';
import type { PullTable, Route, Task } from './route.js';

/**
 * A minimal scanner over SQL bytes — whitespace, comments (nested), strings
 * ('' doubling, E'' escapes, dollar quoting), quoted identifiers, words and
 * parentheses — enough to find where the SELECT of an INSERT starts and
 * ends in the original text, so it is cut out byte for byte (DESIGN.md
 * decision 2) rather than deparsed.
 */
export class Tokens {
  pos: number;
  constructor(private readonly t: Buffer, from: number) {
    this.pos = from;
  }

  private isWordByte(b: number): boolean {
    return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f || b === 0x24 || b >= 0x80;
  }

  /** Skips whitespace and comments. */
  skipSpace(): void {
    const t = this.t;
    for (;;) {
      const b = t[this.pos];
      if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0c) this.pos++;
      else if (b === 0x2d && t[this.pos + 1] === 0x2d) {
        while (this.pos < t.length && t[this.pos] !== 0x0a) this.pos++;
      } else if (b === 0x2f && t[this.pos + 1] === 0x2a) {
        let depth = 0;
        while (this.pos < t.length) {
          if (t[this.pos] === 0x2f && t[this.pos + 1] === 0x2a) {
            depth++;
            this.pos += 2;
          } else if (t[this.pos] === 0x2a && t[this.pos + 1] === 0x2f) {
            depth--;
            this.pos += 2;
            if (depth === 0) break;
          } else this.pos++;
        }
      } else return;
    }
  }

  /** The next token: its kind and bytes (a lower-cased word's text for words). */
  next(): { kind: 'word' | 'quoted' | 'string' | 'open' | 'close' | 'other' | 'end'; start: number; word?: string } {
    this.skipSpace();
    const t = this.t;
    const start = this.pos;
    if (start >= t.length) return { kind: 'end', start };
    const b = t[start];
    if (b === 0x28) {
      this.pos++;
      return { kind: 'open', start };
    }
    if (b === 0x29) {
      this.pos++;
      return { kind: 'close', start };
    }
    if (b === 0x22) {
      this.pos++;
      while (this.pos < t.length) {
        if (t[this.pos] === 0x22) {
          if (t[this.pos + 1] === 0x22) this.pos += 2;
          else {
            this.pos++;
            break;
          }
        } else this.pos++;
      }
      return { kind: 'quoted', start };
    }
    if (b === 0x27 || ((b === 0x45 || b === 0x65) && t[start + 1] === 0x27)) {
      const escapes = b !== 0x27;
      this.pos += escapes ? 2 : 1;
      while (this.pos < t.length) {
        const c = t[this.pos];
        if (escapes && c === 0x5c) this.pos += 2;
        else if (c === 0x27) {
          if (t[this.pos + 1] === 0x27) this.pos += 2;
          else {
            this.pos++;
            break;
          }
        } else this.pos++;
      }
      return { kind: 'string', start };
    }
    if (b === 0x24) {
      // $tag$ … $tag$ (a parameter $1 is just "other")
      let e = start + 1;
      while (e < t.length && this.isWordByte(t[e]) && t[e] !== 0x24) e++;
      if (t[e] === 0x24 && !(t[start + 1] >= 0x30 && t[start + 1] <= 0x39)) {
        const tag = t.subarray(start, e + 1);
        const close = t.indexOf(tag, e + 1);
        this.pos = close < 0 ? t.length : close + tag.length;
        return { kind: 'string', start };
      }
    }
    if (this.isWordByte(b) && !(b >= 0x30 && b <= 0x39)) {
      while (this.pos < t.length && this.isWordByte(t[this.pos])) this.pos++;
      return { kind: 'word', start, word: t.toString('utf8', start, this.pos).toLowerCase() };
    }
    this.pos++;
    return { kind: 'other', start };
  }
}

/**
 * Byte offsets of an INSERT's SELECT in `text`: it starts after
 * `INSERT INTO rel [AS alias] [(cols)] [OVERRIDING … VALUE]` and ends where
 * ON CONFLICT or RETURNING begins (or at the end).
 */
export function selectSpan(text: Buffer, insert: Node): { start: number; end: number } {
  const rel = insert.relation;
  const tok = new Tokens(text, rel.location + qualifiedNameLength(text, rel.location));
  const peekWord = (): string | undefined => {
    const save = tok.pos;
    const t = tok.next();
    tok.pos = save;
    return t.kind === 'word' ? t.word : t.kind === 'quoted' ? '"' : undefined;
  };
  if (rel.alias) {
    if (peekWord() === 'as') tok.next();
    tok.next(); // the alias
  }
  if (((insert.cols ?? []) as Node[]).length > 0) {
    tok.next(); // (
    let depth = 1;
    while (depth > 0) {
      const t = tok.next();
      if (t.kind === 'end') break;
      if (t.kind === 'open') depth++;
      else if (t.kind === 'close') depth--;
    }
  }
  if (insert.override && insert.override !== 'OVERRIDING_NOT_SET') {
    tok.next(); // OVERRIDING
    tok.next(); // SYSTEM | USER
    tok.next(); // VALUE
  }
  tok.skipSpace();
  const start = tok.pos;
  let end = text.length;
  if (insert.onConflictClause) end = insert.onConflictClause.location;
  else if (((insert.returningList ?? []) as Node[]).length > 0) {
    let depth = 0;
    for (;;) {
      const t = tok.next();
      if (t.kind === 'end') break;
      if (t.kind === 'open') depth++;
      else if (t.kind === 'close') depth--;
      else if (depth === 0 && t.kind === 'word' && t.word === 'returning') {
        end = t.start;
        break;
      }
    }
  }
  // no trailing semicolon or blanks
  while (end > start && (text[end - 1] === 0x3b || text[end - 1] === 0x20 || text[end - 1] === 0x0a || text[end - 1] === 0x09 || text[end - 1] === 0x0d)) end--;
  return { start, end };
}

/** The offset just past the last token of `text` from `from` on (trailing blanks, comments and semicolons left out). */
function lastTokenEnd(text: Buffer, from: number): number {
  const tok = new Tokens(text, from);
  let end = from;
  for (;;) {
    const t = tok.next();
    if (t.kind === 'end') return end;
    if (t.kind !== 'other' || text[t.start] !== 0x3b) end = tok.pos;
  }
}

export type InsertSelectMode = 'pushdown' | 'repartition' | 'coordinator';

export interface InsertSelectPlan {
  mode: InsertSelectMode;
  target: DistributedTable;
  /** The INSERT's own text. */
  statement: string;
  /** The InsertStmt parse tree (ON CONFLICT, RETURNING, target alias). */
  insert: Node;
  /** The distributed and reference tables the SELECT reads. */
  sources: DistributedTable[];
  /** The INSERT's column list; null: every column of the table. */
  columns: string[] | null;
  /** ON CONFLICT or RETURNING present: rows go to the shards as INSERTs, not COPY. */
  insertsRows: boolean;
  /** pushdown: one INSERT … SELECT per shard; repartition: one SELECT per source shard group. */
  tasks: Task[];
  /** repartition: the SELECT with the original table names (the coordinator derives its column types). */
  selectSql: string;
  /** repartition: untyped literals of the SELECT list by position, put back on the coordinator (their type comes from the target column). */
  literals: Array<string | null>;
  /** coordinator: the tables to pull … */
  pulls: PullTable[];
  /**
   * … and the INSERT that fills the staging table: the client's text with the
   * pulled tables for the distributed ones, the staging table for the target,
   * ON CONFLICT and RETURNING cut off.
   */
  stagingSql: string;
  /** `ON CONFLICT … RETURNING …` of the client's text ('' when absent), for the per-shard INSERTs. */
  tailSql: string;
  /**
   * With RETURNING: `tailSql` with one more RETURNING column, the row's
   * position among the staging table's rows (insert-planner.ts
   * `ordinalValueSql`), so the rows come back in the SELECT's order; else null.
   */
  ordinalTailSql: string | null;
  /** The coordinator's temporary table gathering the rows: `pgweave_insert_<relid>`. */
  staging: string;
  /** What a pushdown plan becomes when the target needs coordinator-side values. */
  fallback: InsertSelectPlan | null;
  /** Why this mode (EXPLAIN, tests). */
  reason: string;
  /**
   * A data-modifying WITH (on coordinator tables: plan-statement.ts refuses one
   * on distributed tables) writes the coordinator along with the shards: the
   * session runs the statement in a block of its own, so both commit together.
   */
  writesCoordinator: boolean;
}

const SEQUENCE_FUNCTIONS = new Set(['nextval', 'setval', 'currval', 'lastval']);
const WINDOW_OR_AGGREGATE = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every', 'bit_and',
  'bit_or', 'bit_xor', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'stddev', 'stddev_pop',
  'stddev_samp', 'variance', 'var_pop', 'var_samp', 'percentile_cont', 'percentile_disc', 'mode', 'corr',
  'covar_pop', 'covar_samp', 'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope',
  'regr_sxx', 'regr_sxy', 'regr_syy', 'xmlagg', 'range_agg', 'range_intersect_agg',
]);

/** Constructs anywhere in a tree: sublinks, subqueries in FROM, CTEs, parameters, aggregates, window functions. */
function scan(tree: Node, found: Set<string>): void {
  walkTree(tree, (o) => {
    if (o.SubLink) found.add('subquery');
    if (o.RangeSubselect || o.RangeFunction) found.add('subquery in FROM');
    if (o.withClause) found.add('WITH');
    if (o.ParamRef) found.add('parameter');
    if (o.GroupingSet) found.add('GROUPING SETS');
    if (o.FuncCall) {
      const names = o.FuncCall.funcname as Node[];
      const name = names[names.length - 1]?.String?.sval;
      if (o.FuncCall.over) found.add('window function');
      else if (WINDOW_OR_AGGREGATE.has(name) || o.FuncCall.agg_star || o.FuncCall.agg_distinct || o.FuncCall.agg_order || o.FuncCall.agg_filter) found.add('aggregate');
      if (SEQUENCE_FUNCTIONS.has(name)) found.add('sequence');
    }
  });
}

/** `ref.col` (or `?.col`) of a plain column reference, else null. */
function columnOf(n: Node): { ref: string | null; col: string } | null {
  const c = n?.ColumnRef;
  if (!c) return null;
  const fields = (c.fields as Node[]).map((f) => f.String?.sval);
  if (fields.some((f) => typeof f !== 'string')) return null;
  if (fields.length === 1) return { ref: null, col: fields[0] };
  if (fields.length === 2) return { ref: fields[0], col: fields[1] };
  return null;
}

/** The hash source whose distribution column `n` is, or null. */
function sourceDistColumn(n: Node, sources: ResolvedRelation[]): ResolvedRelation | null {
  const c = columnOf(n);
  if (!c) return null;
  const hits = sources.filter((s) => s.table.method === 'hash' && s.table.distributionColumn === c.col && (c.ref === null || c.ref === s.ref.refName));
  return hits.length >= 1 ? hits[0] : null;
}

/** The SELECT list entry that feeds target column `k`, or undefined when it cannot be told (a star over several tables). */
function selectEntryFor(select: Node, k: number, sources: ResolvedRelation[]): Node | undefined {
  const targets = (select.targetList ?? []) as Node[];
  const expanded: Node[] = [];
  for (const t of targets) {
    const v = t.ResTarget?.val;
    const fields = (v?.ColumnRef?.fields ?? []) as Node[];
    if (fields.length > 0 && fields[fields.length - 1].A_Star) {
      const from = fields.length === 2 ? sources.filter((s) => s.ref.refName === fields[0].String?.sval) : sources;
      if (from.length !== 1 || !from[0].table.columns) return undefined;
      for (const col of from[0].table.columns) expanded.push({ ColumnRef: { fields: [{ String: { sval: from[0].ref.refName } }, { String: { sval: col } }] } });
    } else expanded.push(v);
  }
  return expanded[k];
}

/** Whether GROUP BY includes the distribution column of a source (so groups never span shards). */
function groupedByDistribution(select: Node, sources: ResolvedRelation[]): boolean {
  const targets = (select.targetList ?? []) as Node[];
  for (const g of (select.groupClause ?? []) as Node[]) {
    let expr = g;
    const pos = g?.A_Const?.ival;
    if (pos !== undefined) expr = targets[(pos.ival ?? 0) - 1]?.ResTarget?.val;
    if (sourceDistColumn(expr, sources)) return true;
  }
  return false;
}

function insertColumns(insert: Node): string[] | null {
  const cols = (insert.cols ?? []) as Node[];
  return cols.length > 0 ? cols.map((c) => c.ResTarget.name as string) : null;
}

/** An untyped literal (its type comes from the column it is inserted into), as SQL; else null. */
function untypedLiteral(n: Node): string | null {
  if (!n?.A_Const) return null;
  if (!n.A_Const.isnull && n.A_Const.sval === undefined) return null;
  try {
    return deparseSql(n);
  } catch {
    return null;
  }
}

type PlanBase = Omit<InsertSelectPlan, 'mode' | 'tasks' | 'selectSql' | 'literals' | 'pulls' | 'stagingSql' | 'fallback' | 'reason'>;

function coordinatorPlan(base: PlanBase, text: Buffer, select: Node, sources: ResolvedRelation[], reason: string): InsertSelectPlan {
  const pull = planPull(text, select, sources) as Extract<Route, { kind: 'pull' }>;
  const pulled = Buffer.from(pull.sql, 'utf8');
  const insert = parseSql(pull.sql).stmts[0].stmt.InsertStmt;
  const span = selectSpan(pulled, insert);
  const ref = { schema: insert.relation.schemaname ?? null, name: insert.relation.relname, refName: insert.relation.alias?.aliasname ?? insert.relation.relname, hasAlias: !!insert.relation.alias, location: insert.relation.location, node: insert.relation };
  const stagingSql = spliceShardNames(pulled.subarray(0, span.end), [{ ref, schema: 'pg_temp', shardName: base.staging }]);
  return { ...base, mode: 'coordinator', tasks: [], selectSql: '', literals: [], pulls: pull.pulls, stagingSql, fallback: null, reason };
}

/** Plans INSERT … SELECT into `target` (a hash-distributed or reference table). */
export function planInsertSelect(text: Buffer, insert: Node, target: ResolvedRelation, relations: ResolvedRelation[]): Route {
  const select = insert.selectStmt?.SelectStmt;
  if (!select) return { kind: 'error', error: new PgError({ code: '0A000', message: 'INSERT without a SELECT or VALUES into a distributed table is not supported yet' }) };
  const table = target.table;
  const sources = relations.filter((r) => r !== target);
  const base = {
    target: table,
    statement: text.toString('utf8'),
    insert,
    sources: [...new Set(sources.map((s) => s.table))],
    columns: insertColumns(insert),
    insertsRows: !!insert.onConflictClause || ((insert.returningList ?? []) as Node[]).length > 0,
    tailSql: '',
    ordinalTailSql: null as string | null,
    staging: `pgweave_insert_${table.relationId}`,
    writesCoordinator: hasModifyingCte(insert),
  };
  const span = selectSpan(text, insert);
  base.tailSql = text.toString('utf8', span.end);
  if (((insert.returningList ?? []) as Node[]).length > 0) base.ordinalTailSql = `${text.toString('utf8', span.end, lastTokenEnd(text, span.end))}, ${ORDINAL_RETURNING_SQL}`;
  if (insert.onConflictClause?.targetList && table.method === 'hash') {
    for (const t of insert.onConflictClause.targetList as Node[]) {
      if (t.ResTarget?.name === table.distributionColumn) {
        return { kind: 'error', error: new PgError({ code: '0A000', message: 'modifying the partition value of rows is not allowed' }) };
      }
    }
  }
  if (insert.withClause) return { kind: 'insert-select', plan: coordinatorPlan(base, text, select, sources, 'the INSERT has a WITH clause') };

  const found = new Set<string>();
  scan(select, found);
  const hashSources = sources.filter((s) => s.table.method === 'hash');
  const colocations = new Set(hashSources.map((s) => s.table.colocationId));
  const shape = (): string | null => {
    if (select.op && select.op !== 'SETOP_NONE') return 'set operations';
    if (select.valuesLists) return 'VALUES';
    if (select.limitCount || select.limitOffset) return 'LIMIT/OFFSET';
    if (select.distinctClause) return 'DISTINCT';
    if (select.sortClause) return 'ORDER BY';
    if (select.lockingClause) return 'FOR UPDATE';
    for (const f of ['subquery', 'subquery in FROM', 'WITH', 'window function', 'GROUPING SETS', 'sequence']) if (found.has(f)) return f;
    if (colocations.size > 1) return 'tables that are not co-located';
    if (sources.length === 0) return 'no table to read';
    const restrictions = new Restrictions(select, sources.map((r) => r.ref), (ref) => sources.find((r) => r.ref === ref)?.table.distributionColumn ?? null);
    const first = hashSources[0];
    for (const r of hashSources.slice(1)) {
      if (!restrictions.sameClass(first.ref.refName, first.table.distributionColumn!, r.ref.refName, r.table.distributionColumn!)) return 'a join that is not on the distribution column';
    }
    return null;
  };
  const blocker = shape();
  if (blocker) return { kind: 'insert-select', plan: coordinatorPlan(base, text, select, sources, `the SELECT has ${blocker}`) };
  const aggregated = found.has('aggregate') || !!select.groupClause || !!select.havingClause;

  // Pushdown: co-located, the distribution column carried over, groups within shards.
  const columns = base.columns ?? table.columns ?? null;
  const keyIndex = table.method === 'hash' && columns ? columns.indexOf(table.distributionColumn!) : -1;
  const entry = keyIndex >= 0 ? selectEntryFor(select, keyIndex, sources) : undefined;
  const carried = entry ? sourceDistColumn(entry, hashSources) : null;
  const pushdown =
    table.method === 'hash' &&
    hashSources.length > 0 &&
    hashSources.every((s) => s.table.colocationId === table.colocationId && s.table.shards.length === table.shards.length) &&
    carried !== null &&
    (!aggregated || groupedByDistribution(select, hashSources));
  const fallbackReason = 'the target has columns whose values come from sequences on the coordinator';
  if (pushdown) {
    const tasks: Task[] = [];
    for (let i = 0; i < table.shards.length; i++) {
      const shard = table.shards[i];
      const replacements: Replacement[] = [{ ref: target.ref, schema: table.schema, shardName: shard.shardName }];
      const shardIds = [shard.shardId];
      for (const s of sources) {
        const sh = s.table.method === 'hash' ? s.table.shards[i] : s.table.shards[0];
        replacements.push({ ref: s.ref, schema: s.table.schema, shardName: sh.shardName });
        shardIds.push(sh.shardId);
      }
      tasks.push({ node: shard.placements[0].node, sql: spliceShardNames(text, replacements), shardIds });
    }
    const fallback = coordinatorPlan(base, text, select, sources, fallbackReason);
    return { kind: 'insert-select', plan: { ...base, mode: 'pushdown', tasks, selectSql: '', literals: [], pulls: [], stagingSql: '', fallback, reason: 'co-located: shard to shard' } };
  }
  if (aggregated) return { kind: 'insert-select', plan: coordinatorPlan(base, text, select, sources, 'the SELECT aggregates across shards') };
  // COPY (SELECT …) TO STDOUT on the shards cannot take parameters.
  if (found.has('parameter')) return { kind: 'insert-select', plan: coordinatorPlan(base, text, select, sources, 'the SELECT has parameters') };

  // A table typed like the SELECT's output cannot hold an anonymous record: the coordinator runs the INSERT as written,
  // so a record becomes text or is refused (42846) as PostgreSQL decides for the target column.
  if (((select.targetList ?? []) as Node[]).some((t) => isRecordExpression(t.ResTarget?.val, select, () => false))) {
    return { kind: 'insert-select', plan: coordinatorPlan(base, text, select, sources, 'the SELECT list has an anonymous record') };
  }
  // Repartition: the SELECT runs per source shard group; its rows are routed to the target's shards.
  const anchor = hashSources[0] ?? sources[0];
  const groups = anchor.table.method === 'hash' ? anchor.table.shards.length : 1;
  const tasks: Task[] = [];
  for (let i = 0; i < groups; i++) {
    const replacements: Replacement[] = [];
    const shardIds: number[] = [];
    for (const s of sources) {
      const sh = s.table.method === 'hash' ? s.table.shards[i] : s.table.shards[0];
      replacements.push({ ref: s.ref, schema: s.table.schema, shardName: sh.shardName });
      shardIds.push(sh.shardId);
    }
    const splicedText = spliceShardNames(text, replacements);
    const spliced = Buffer.from(splicedText, 'utf8');
    const sp = selectSpan(spliced, parseSql(splicedText).stmts[0].stmt.InsertStmt);
    const node = anchor.table.method === 'hash' ? anchor.table.shards[i].placements[0].node : anchor.table.shards[0].placements[0].node;
    tasks.push({ node, sql: spliced.toString('utf8', sp.start, sp.end), shardIds });
  }
  const literals = ((select.targetList ?? []) as Node[]).map((t) => untypedLiteral(t.ResTarget?.val));
  const selectSql = text.toString('utf8', span.start, span.end);
  return {
    kind: 'insert-select',
    plan: { ...base, mode: 'repartition', tasks, selectSql, literals, pulls: [], stagingSql: '', fallback: null, reason: carried ? 'the target is not co-located with the source' : 'the rows change shards' },
  };
}

/** INSERT … SELECT from distributed tables into a table of the coordinator: pull, then run it there. */
export function planInsertSelectIntoLocal(text: Buffer, insert: Node, relations: ResolvedRelation[]): Route {
  return planPull(text, insert.selectStmt?.SelectStmt ?? null, relations);
}
