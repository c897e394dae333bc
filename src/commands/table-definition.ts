/**
 * Reads everything a shard needs to look like its table — columns, constraints,
 * indexes, privileges, row-level security — from the coordinator PostgreSQL's
 * catalogs, and checks the table against Citus's rules for distribution.
 *
 * All text comes from PostgreSQL itself (format_type, pg_get_expr,
 * pg_get_constraintdef, pg_get_indexdef) with search_path = pg_catalog, so
 * every name outside pg_catalog is schema-qualified and the definitions mean
 * the same on a worker whatever its search_path.
 */
import type { InternalClient } from '../pool/internal-client.js';
import { PgError } from '../protocol/errors.js';

export interface ColumnDefinition {
  attnum: number;
  name: string;
  /** format_type(atttypid, atttypmod): castable type text. */
  sqlType: string;
  typeOid: number;
  /** `COLLATE "schema"."name"` when it differs from the type's default, else ''. */
  collateClause: string;
  notNull: boolean;
  /** Default expression, unless it draws from a sequence (those stay on the coordinator). */
  defaultExpr: string | null;
  /** Expression of a stored generated column. */
  generatedExpr: string | null;
  identity: boolean;
}

export interface ConstraintDefinition {
  name: string;
  /** p, u, c, f, x (pg_constraint.contype). */
  type: string;
  /** pg_get_constraintdef text. */
  definition: string;
  columns: number[];
  referencedRelid: number;
  referencedColumns: number[];
  /** For exclusion constraints, the operator names per column. */
  exclusionOperators: string[];
}

export interface IndexDefinition {
  name: string;
  definition: string;
  unique: boolean;
  /** indkey (0 for expression columns). */
  columns: number[];
}

export interface Grant {
  /** null = PUBLIC. */
  grantee: string | null;
  privilege: string;
  grantable: boolean;
}

export interface PolicyDefinition {
  name: string;
  command: string;
  permissive: boolean;
  roles: Array<string | null>;
  using: string | null;
  withCheck: string | null;
}

export interface TableDefinition {
  oid: number;
  schema: string;
  name: string;
  owner: string;
  schemaOwner: string;
  unlogged: boolean;
  columns: ColumnDefinition[];
  constraints: ConstraintDefinition[];
  /** Indexes that do not back a constraint. */
  indexes: IndexDefinition[];
  grants: Grant[];
  schemaGrants: Grant[];
  rowSecurity: boolean;
  forceRowSecurity: boolean;
  policies: PolicyDefinition[];
}

const intArray = (text: string | null): number[] =>
  !text || text === '{}' ? [] : text.replace(/[{}]/g, '').split(/[ ,]/).filter(Boolean).map(Number);
/** Parses a one-dimensional text[] in PostgreSQL's output form; NULL elements become null. */
export function parseTextArray(text: string | null): Array<string | null> {
  if (!text || text === '{}') return [];
  const out: Array<string | null> = [];
  let i = 1;
  while (i < text.length - 1) {
    if (text[i] === '"') {
      let value = '';
      i++;
      while (text[i] !== '"') {
        if (text[i] === '\\') i++;
        value += text[i];
        i++;
      }
      out.push(value);
      i += 2; // closing quote and the comma
    } else {
      const end = text.indexOf(',', i) === -1 ? text.length - 1 : text.indexOf(',', i);
      const raw = text.slice(i, end);
      out.push(raw === 'NULL' ? null : raw);
      i = end + 1;
    }
  }
  return out;
}

export async function describeTable(client: InternalClient, oid: number): Promise<TableDefinition> {
  const id = String(oid);
  const rel = await client.query(
    `SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner), pg_get_userbyid(n.nspowner), c.relpersistence = 'u',
            c.relrowsecurity, c.relforcerowsecurity
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`,
    [id],
  );
  const r = rel.rows[0]!;
  const columns = await client.query(
    `SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid,
            CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
                 THEN 'COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) ELSE '' END,
            a.attnotnull,
            CASE WHEN a.attgenerated = '' AND NOT EXISTS (
                   SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
                   WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass)
                 THEN pg_get_expr(ad.adbin, ad.adrelid) END,
            CASE WHEN a.attgenerated = 's' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
            a.attidentity <> ''
     FROM pg_attribute a
     JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     LEFT JOIN pg_collation co ON co.oid = a.attcollation
     LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [id],
  );
  const constraints = await client.query(
    `SELECT c.conname, c.contype, pg_get_constraintdef(c.oid), c.conkey::text, c.confrelid, c.confkey::text,
            (SELECT array_agg(o.oprname ORDER BY x.ord) FROM unnest(c.conexclop) WITH ORDINALITY x(op, ord)
             JOIN pg_operator o ON o.oid = x.op)::text
     FROM pg_constraint c WHERE c.conrelid = $1 AND c.contype IN ('p', 'u', 'c', 'f', 'x')
     ORDER BY c.contype = 'f', c.conname`,
    [id],
  );
  const indexes = await client.query(
    `SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indkey::text
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
     ORDER BY ic.relname`,
    [id],
  );
  const grants = await client.query(
    `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable
     FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1 AND a.grantee <> c.relowner`,
    [id],
  );
  const schemaGrants = await client.query(
    `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(n.nspacl) a
     WHERE c.oid = $1 AND a.grantee <> n.nspowner`,
    [id],
  );
  const policies = await client.query(
    `SELECT p.polname, p.polcmd, p.polpermissive,
            (SELECT array_agg(CASE WHEN x <> 0 THEN pg_get_userbyid(x) END) FROM unnest(p.polroles) x)::text,
            pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
     FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.polname`,
    [id],
  );
  const toGrant = (g: (string | null)[]): Grant => ({ grantee: g[0] ?? null, privilege: g[1]!, grantable: g[2] === 't' });
  return {
    oid,
    schema: r[0]!,
    name: r[1]!,
    owner: r[2]!,
    schemaOwner: r[3]!,
    unlogged: r[4] === 't',
    rowSecurity: r[5] === 't',
    forceRowSecurity: r[6] === 't',
    columns: columns.rows.map((c) => ({
      attnum: Number(c[0]),
      name: c[1]!,
      sqlType: c[2]!,
      typeOid: Number(c[3]),
      collateClause: c[4] ?? '',
      notNull: c[5] === 't',
      defaultExpr: c[6],
      generatedExpr: c[7],
      identity: c[8] === 't',
    })),
    constraints: constraints.rows.map((c) => ({
      name: c[0]!,
      type: c[1]!,
      definition: c[2]!,
      columns: intArray(c[3]),
      referencedRelid: Number(c[4] ?? 0),
      referencedColumns: intArray(c[5]),
      exclusionOperators: parseTextArray(c[6]).map((x) => x ?? ''),
    })),
    indexes: indexes.rows.map((i) => ({ name: i[0]!, definition: i[1]!, unique: i[2] === 't', columns: intArray(i[3]) })),
    grants: grants.rows.map(toGrant),
    schemaGrants: schemaGrants.rows.map(toGrant),
    policies: policies.rows.map((p) => ({
      name: p[0]!,
      command: p[1]!,
      permissive: p[2] === 't',
      roles: parseTextArray(p[3]),
      using: p[4],
      withCheck: p[5],
    })),
  };
}

/** The columns whose values are copied (generated columns are recomputed by the target). */
export function copiedColumns(def: TableDefinition): ColumnDefinition[] {
  return def.columns.filter((c) => c.generatedExpr === null);
}

/**
 * Citus's rule: on a hash-distributed table, every PRIMARY KEY, UNIQUE and
 * EXCLUDE constraint (and unique index) must include the distribution column
 * (with the equality operator, for EXCLUDE), or uniqueness could not be
 * enforced shard by shard.
 */
export function checkUniquenessIncludesDistributionColumn(def: TableDefinition, distAttnum: number): void {
  for (const c of def.constraints) {
    if (c.type !== 'p' && c.type !== 'u' && c.type !== 'x') continue;
    const at = c.columns.indexOf(distAttnum);
    const ok = at >= 0 && (c.type !== 'x' || c.exclusionOperators[at] === '=');
    if (!ok) {
      throw new PgError({
        code: '0A000',
        message: `cannot create constraint on "${def.name}"`,
        detail:
          'Distributed relations cannot have UNIQUE, EXCLUDE, or PRIMARY KEY constraints that do not include the partition column (with an equality operator if EXCLUDE).',
      });
    }
  }
  for (const i of def.indexes) {
    if (i.unique && !i.columns.includes(distAttnum)) {
      throw new PgError({
        code: '0A000',
        message: 'creating unique indexes on non-partition columns is currently unsupported',
        detail: `Index "${i.name}" on "${def.name}" does not include the distribution column.`,
      });
    }
  }
}
