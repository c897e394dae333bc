/**
 * Finds the relations a statement references: every RangeVar in the parse
 * tree (FROM items, INSERT/UPDATE/DELETE targets, subqueries, CTE bodies),
 * minus references to CTEs, with the byte span of the name in the source
 * text so the shard name can be spliced in place.
 */
import { quoteIdent } from '../sql/quote.js';
import type { Node } from '../sql/parse.js';
import { SKIP, walkTree } from '../sql/tree-walk.js';

export interface RelationRef {
  schema: string | null;
  name: string;
  /** Name that qualifies its columns in the statement: the alias, else the table name. */
  refName: string;
  hasAlias: boolean;
  /** Byte offset of the name (schema included) in the statement text. */
  location: number;
  /** Object the RangeVar came from, for planners that need the surrounding node. */
  node: Node;
  /**
   * Column references qualified by schema and this relation's name
   * (`app.t.c`, `app.t.*`), when it has no alias: the splice gives the shard
   * the relation's name as alias, so their qualifier becomes that alias.
   */
  qualifiedColumns?: QualifiedColumnRef[];
}

/** A column reference `[catalog.]schema.table.column` in the statement text. */
export interface QualifiedColumnRef {
  schema: string;
  /** Byte offset of the reference in the statement text. */
  location: number;
  /** Name parts before the column (2 or 3). */
  qualifiers: number;
}

export interface StatementShape {
  relations: RelationRef[];
  cteNames: Set<string>;
  /** Function names called anywhere (lower-case, last name part). */
  functions: Set<string>;
  hasVolatileCandidates: boolean;
}

function isRangeVar(o: Node): boolean {
  return typeof o.relname === 'string' && typeof o.relpersistence === 'string';
}

export function analyzeShape(stmt: Node): StatementShape {
  const relations: RelationRef[] = [];
  const cteNames = new Set<string>();
  const functions = new Set<string>();
  const visit = (o: Node): typeof SKIP | void => {
    // FOR UPDATE OF x names FROM items (a table's name or its alias), not tables of its own.
    if (o.LockingClause) return SKIP;
    if (isRangeVar(o)) {
      relations.push({
        schema: o.schemaname ?? null,
        name: o.relname,
        refName: o.alias?.aliasname ?? o.relname,
        hasAlias: !!o.alias,
        location: o.location ?? -1,
        node: o,
      });
    }
    if (o.ColumnRef) noteQualifiedColumn(o.ColumnRef);
    if (typeof o.ctename === 'string') cteNames.add(o.ctename);
    if (o.FuncCall) {
      const names = o.FuncCall.funcname as Node[];
      const last = names?.[names.length - 1]?.String?.sval;
      if (last) functions.add(last);
    }
  };
  const columns: Array<QualifiedColumnRef & { table: string }> = [];
  const noteQualifiedColumn = (ref: Node): void => {
    const fields = ref.fields as Node[] | undefined;
    if (!fields || fields.length < 3 || typeof ref.location !== 'number') return;
    const names = fields.slice(0, -1).map((f) => f.String?.sval as string | undefined);
    if (names.some((n) => n === undefined)) return;
    columns.push({ schema: names[names.length - 2]!, table: names[names.length - 1]!, location: ref.location, qualifiers: names.length });
  };
  walkTree(stmt, visit);
  for (const c of columns) {
    for (const r of relations) {
      if (r.hasAlias || r.name !== c.table || (r.schema !== null && r.schema !== c.schema)) continue;
      (r.qualifiedColumns ??= []).push({ schema: c.schema, location: c.location, qualifiers: c.qualifiers });
    }
  }
  const tables = relations.filter((r) => r.schema !== null || !cteNames.has(r.name));
  return { relations: tables, cteNames, functions, hasVolatileCandidates: false };
}

/**
 * The first relation of the statement that is neither distributed nor a
 * reference table (`isDistributed` false) — a coordinator table, temporary
 * table or view, which no worker has — quoted as written, or null. The
 * system catalogs and the coordinator's own intermediate and broadcast
 * tables (pg_temp.pgweave_…) do not count.
 */
export function coordinatorTable(refs: RelationRef[], isDistributed: (r: RelationRef) => boolean): string | null {
  for (const r of refs) {
    if (isDistributed(r)) continue;
    if (r.schema === 'pg_catalog' || r.schema === 'information_schema' || r.name.startsWith('pg_')) continue;
    if (r.schema === 'pg_temp' && r.name.startsWith('pgweave_')) continue;
    return r.schema === null ? quoteIdent(r.name) : `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`;
  }
  return null;
}

/** The relation an INSERT/UPDATE/DELETE/MERGE (in a WITH) writes, as its RangeVar node; null for anything else. */
export function modifiedRelation(q: Node): Node {
  return q?.InsertStmt?.relation ?? q?.UpdateStmt?.relation ?? q?.DeleteStmt?.relation ?? q?.MergeStmt?.relation ?? null;
}

/** A statement whose WITH holds INSERT/UPDATE/DELETE/MERGE (PostgreSQL allows them only at the top level). */
export function hasModifyingCte(stmt: Node): boolean {
  return ((stmt?.withClause?.ctes ?? []) as Node[]).some((c) => modifiedRelation(c.CommonTableExpr?.ctequery) !== null);
}
