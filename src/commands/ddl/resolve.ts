/**
 * Name resolution for DDL, done in the client's own session on the
 * coordinator PostgreSQL: the client's search_path, its view of objects it
 * created earlier in the session, and PostgreSQL's own rules decide what
 * `t` means — the session's guess from the planner is only a hint. Resolved
 * oids are then looked up in the distributed catalog.
 *
 * Also the few catalog reads DDL needs from inside the client's transaction
 * (only that transaction sees what its statement just created): constraints
 * and indexes of a table, attribute numbers.
 */
import { PgError } from '../../protocol/errors.js';
import { quoteIdent } from '../../sql/quote.js';
import type { Node } from '../../sql/parse.js';
import type { Catalog, DistributedTable } from '../../metadata/types.js';
import type { UtilityContext } from './propagate.js';
import { nameKey, rangeVarKey } from './tree.js';

/** The oid `names` (optionally schema-qualified, unquoted parts) resolves to for the client, or null. */
export async function resolveRelationOid(ctx: UtilityContext, names: string[]): Promise<number | null> {
  const text = names.map(quoteIdent).join('.');
  const r = await ctx.runAsClient('SELECT pg_catalog.to_regclass($1)::pg_catalog.oid', [text]);
  const oid = r.rows[0]?.[0];
  return oid == null ? null : Number(oid);
}

/** Distributed and reference tables among the RangeVars, by RangeVar key (tree.ts rangeVarKey). */
export async function resolveRangeVars(ctx: UtilityContext, catalog: Catalog, rvs: Node[]): Promise<Map<string, DistributedTable>> {
  const out = new Map<string, DistributedTable>();
  const seen = new Set<string>();
  for (const rv of rvs) {
    const key = rangeVarKey(rv);
    if (seen.has(key)) continue;
    seen.add(key);
    const names = [rv.catalogname, rv.schemaname, rv.relname].filter((n): n is string => typeof n === 'string' && n !== '');
    const oid = await resolveRelationOid(ctx, names);
    const table = oid === null ? undefined : catalog.tablesById.get(oid);
    if (table) out.set(key, table);
  }
  return out;
}

export function tableFor(resolved: Map<string, DistributedTable>, schema: string | null | undefined, name: string): DistributedTable | undefined {
  return resolved.get(nameKey(schema, name));
}

/** Attribute number of a column (of a table the client can see), or null. */
export async function attnum(ctx: UtilityContext, relid: number, column: string): Promise<number | null> {
  const r = await ctx.runAsClient(
    'SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped',
    [String(relid), column],
  );
  return r.rows[0] ? Number(r.rows[0][0]) : null;
}

/** The distribution column's attribute number (null for reference tables). */
export async function distributionAttnum(ctx: UtilityContext, table: DistributedTable): Promise<number | null> {
  if (table.method === 'reference' || table.distributionColumn === null) return null;
  const n = await attnum(ctx, table.relationId, table.distributionColumn);
  if (n === null) throw new PgError({ code: 'XX000', message: `distribution column "${table.distributionColumn}" of "${table.name}" not found` });
  return n;
}

/** A constraint as pg_constraint has it, seen from the client's transaction. */
export interface ConstraintRow {
  oid: number;
  name: string;
  /** p, u, c, f, x */
  type: string;
  columns: number[];
  columnNames: string[];
  referencedRelid: number;
  referencedColumns: number[];
  /** confupdtype / confdeltype: a, r, c, n, d */
  updateAction: string;
  deleteAction: string;
  /** Exclusion operators' names per column (EXCLUDE only). */
  exclusionOperators: string[];
}

function jsonArray<T>(text: string | null): T[] {
  return text === null ? [] : (JSON.parse(text) as T[] | null) ?? [];
}

/** Constraints of `relid` (ordered by oid: creation order), optionally only those not in `before`. */
export async function tableConstraints(ctx: UtilityContext, relid: number, before?: Set<number>): Promise<ConstraintRow[]> {
  const r = await ctx.runAsClient(
    `SELECT c.oid, c.conname, c.contype, pg_catalog.to_json(c.conkey), c.confrelid, pg_catalog.to_json(c.confkey), c.confupdtype, c.confdeltype,
            (SELECT pg_catalog.json_agg(o.oprname ORDER BY k.i) FROM pg_catalog.unnest(c.conexclop) WITH ORDINALITY k(op, i)
               JOIN pg_catalog.pg_operator o ON o.oid = k.op),
            (SELECT pg_catalog.json_agg(a.attname ORDER BY k.i) FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n)
     FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1 ORDER BY c.oid`,
    [String(relid)],
  );
  return r.rows
    .map((row) => ({
      oid: Number(row[0]),
      name: row[1]!,
      type: row[2]!,
      columns: jsonArray<number>(row[3]),
      referencedRelid: Number(row[4]),
      referencedColumns: jsonArray<number>(row[5]),
      updateAction: row[6]!,
      deleteAction: row[7]!,
      exclusionOperators: jsonArray<string>(row[8]),
      columnNames: jsonArray<string>(row[9]),
    }))
    .filter((c) => !before || !before.has(c.oid));
}

/** Index oids and names of a table, seen from the client's transaction. */
export async function tableIndexes(ctx: UtilityContext, relid: number): Promise<Map<number, string>> {
  const r = await ctx.runAsClient(
    'SELECT i.indexrelid, c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1',
    [String(relid)],
  );
  return new Map(r.rows.map((row) => [Number(row[0]), row[1]!]));
}

/** The index `names` resolves to and the table it belongs to, or null. */
export async function resolveIndex(ctx: UtilityContext, names: string[]): Promise<{ indexOid: number; name: string; tableOid: number } | null> {
  const oid = await resolveRelationOid(ctx, names);
  if (oid === null) return null;
  const r = await ctx.runAsClient(
    'SELECT i.indrelid, c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indexrelid = $1',
    [String(oid)],
  );
  return r.rows[0] ? { indexOid: oid, name: r.rows[0][1]!, tableOid: Number(r.rows[0][0]) } : null;
}
