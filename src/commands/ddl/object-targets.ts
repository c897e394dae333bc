/**
 * The types, collations, extensions and functions an object statement
 * names, resolved in the client's own session (its search_path, the objects
 * its open transaction created), for the distributed-objects record
 * (../distributed-objects.ts):
 *
 *   createdObjects   what a CREATE made — recorded once it commits
 *   changedObjects   the existing objects an ALTER or GRANT changes — made
 *                    to exist on every worker before the statement runs there
 *
 * A name that resolves to nothing is left out: PostgreSQL reports it when
 * the statement runs on the coordinator.
 */
import type { Node } from '../../sql/parse.js';
import { quoteIdent } from '../../sql/quote.js';
import type { ObjectRef } from '../object-dependencies.js';
import type { UtilityContext } from './propagate.js';
import { stringList } from './tree.js';

const qualified = (names: string[]) => names.map(quoteIdent).join('.');

async function oids(ctx: UtilityContext, kind: ObjectRef['kind'], sql: string, params: Array<string | null>): Promise<ObjectRef[]> {
  const r = await ctx.runAsClient(sql, params);
  return r.rows.filter((row) => row[0] != null).map((row) => ({ kind, oid: Number(row[0]) }));
}

function typeNamed(ctx: UtilityContext, names: string[]): Promise<ObjectRef[]> {
  return oids(ctx, 'type', 'SELECT pg_catalog.to_regtype($1)::pg_catalog.oid', [qualified(names)]);
}

/** Every overload of the function: recording one the statement did not create only makes new nodes hold it too. */
function functionsNamed(ctx: UtilityContext, names: string[]): Promise<ObjectRef[]> {
  const name = names[names.length - 1]!;
  const schema = names.length > 1 ? names[names.length - 2]! : null;
  return oids(
    ctx,
    'function',
    `SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
     WHERE p.proname OPERATOR(pg_catalog.=) $1 AND n.nspname OPERATOR(pg_catalog.=) COALESCE($2, pg_catalog.current_schema())`,
    [name, schema],
  );
}

/** The objects a CREATE statement made (nothing for other statements). */
export async function createdObjects(ctx: UtilityContext, stmt: Node): Promise<ObjectRef[]> {
  if (stmt.CreateEnumStmt) return typeNamed(ctx, stringList(stmt.CreateEnumStmt.typeName));
  if (stmt.CreateRangeStmt) return typeNamed(ctx, stringList(stmt.CreateRangeStmt.typeName));
  if (stmt.CreateDomainStmt) return typeNamed(ctx, stringList(stmt.CreateDomainStmt.domainname));
  if (stmt.CompositeTypeStmt) {
    const rv = stmt.CompositeTypeStmt.typevar;
    return typeNamed(ctx, [rv.schemaname, rv.relname].filter((n): n is string => typeof n === 'string' && n !== ''));
  }
  if (stmt.DefineStmt?.kind === 'OBJECT_TYPE') return typeNamed(ctx, stringList(stmt.DefineStmt.defnames));
  if (stmt.DefineStmt?.kind === 'OBJECT_COLLATION') {
    return oids(ctx, 'collation', 'SELECT pg_catalog.to_regcollation($1)::pg_catalog.oid', [qualified(stringList(stmt.DefineStmt.defnames))]);
  }
  if (stmt.CreateExtensionStmt) {
    return oids(ctx, 'extension', 'SELECT oid FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) $1', [stmt.CreateExtensionStmt.extname]);
  }
  if (stmt.CreateFunctionStmt) return functionsNamed(ctx, stringList(stmt.CreateFunctionStmt.funcname));
  return [];
}

/** The existing types an ALTER TYPE / ALTER DOMAIN (incl. RENAME, OWNER TO, SET SCHEMA) / GRANT … ON TYPE | DOMAIN changes. */
export async function changedObjects(ctx: UtilityContext, stmt: Node): Promise<ObjectRef[]> {
  if (stmt.AlterEnumStmt) return typeNamed(ctx, stringList(stmt.AlterEnumStmt.typeName));
  if (stmt.AlterDomainStmt) return typeNamed(ctx, stringList(stmt.AlterDomainStmt.typeName));
  if (stmt.AlterTableStmt?.objtype === 'OBJECT_TYPE') {
    const rv = stmt.AlterTableStmt.relation;
    return typeNamed(ctx, [rv.schemaname, rv.relname].filter((n): n is string => typeof n === 'string' && n !== ''));
  }
  if (stmt.RenameStmt?.renameType === 'OBJECT_ATTRIBUTE') {
    const rv = stmt.RenameStmt.relation;
    return typeNamed(ctx, [rv.schemaname, rv.relname].filter((n): n is string => typeof n === 'string' && n !== ''));
  }
  // ALTER TYPE | DOMAIN … RENAME TO / OWNER TO / SET SCHEMA
  const named = stmt.RenameStmt ?? stmt.AlterOwnerStmt ?? stmt.AlterObjectSchemaStmt;
  const kind = named?.renameType ?? named?.objectType;
  if (named?.object && (kind === 'OBJECT_TYPE' || kind === 'OBJECT_DOMAIN')) return typeNamed(ctx, stringList(named.object));
  if (stmt.GrantStmt && (stmt.GrantStmt.objtype === 'OBJECT_TYPE' || stmt.GrantStmt.objtype === 'OBJECT_DOMAIN')) {
    const out: ObjectRef[] = [];
    for (const o of (stmt.GrantStmt.objects ?? []) as Node[]) out.push(...(await typeNamed(ctx, stringList(o))));
    return out;
  }
  return [];
}
