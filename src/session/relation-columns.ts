/**
 * The columns of a relation on the coordinator PostgreSQL, as the tables
 * that copy it elsewhere need them: broadcast and repartition tables
 * (broadcast-tables.ts `columnDefinition`) and shipped intermediate results
 * (intermediate-results.ts `ship`) create a table of the same columns on
 * other nodes and copy the rows over, in binary when every type allows it.
 *
 * One query for all of them: the name, the type as `format_type` prints it
 * (quoted by PostgreSQL where needed), the collation when it is not the
 * type's own, and whether the type may travel in binary
 * (commands/copy/binary-transfer.ts). The definition text quotes names and
 * collations here, always, so any identifier (quotes, upper case, spaces)
 * comes out right.
 */
import type { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { portableTypeSql } from '../commands/copy/binary-transfer.js';

export interface RelationColumn {
  name: string;
  /** The type with its modifier, e.g. `numeric(10,2)`. */
  type: string;
  /** Schema and name of a collation other than the type's default; null otherwise. */
  collation: { schema: string; name: string } | null;
  /** Whether the type has a portable binary form. */
  portable: boolean;
}

/** The columns of `relation` (an SQL expression of type oid or regclass), in order. */
export async function relationColumns(coordinator: BackendLink, relation: string): Promise<RelationColumn[] | PgError> {
  const r = await queryOnLink(coordinator,
    `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN cn.nspname END,
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN co.collname END,
            ${portableTypeSql('a.atttypid')}
       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
       LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
      WHERE a.attrelid = ${relation} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`);
  if (r.error) return r.error;
  return r.rows.map((row) => {
    const [name, type, collSchema, collName, portable] = decodeDataRow(row);
    return { name: name!, type: type!, collation: collSchema !== null && collName !== null ? { schema: collSchema, name: collName } : null, portable: portable === 't' };
  });
}

/** The column list of a CREATE TABLE for `columns`: `"a" integer COLLATE "pg_catalog"."C", …`. */
export function columnsDefinition(columns: readonly RelationColumn[]): string {
  return columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.collation ? ` COLLATE ${quoteQualified(c.collation.schema, c.collation.name)}` : ''}`).join(', ');
}
