/**
 * Helpers every command shares: the coordinator's internal pool for the
 * client's database, resolving a regclass argument the way the client would
 * (its search_path, its visibility), privilege checks, and the catalog
 * transaction that serializes catalog changes in one database.
 */
import type { InternalClient } from '../pool/internal-client.js';
import type { InternalPool } from '../pool/internal-pool.js';
import { PgError } from '../protocol/errors.js';
import { CATALOG_LOCK_KEY, ensureCatalog } from '../metadata/catalog-schema.js';
import type { CommandContext } from './context.js';

export function coordinatorPool(ctx: CommandContext): InternalPool {
  return ctx.pools.get(ctx.config.coordinator.host, ctx.config.coordinator.port, ctx.database);
}

export async function ensureDatabaseCatalog(ctx: CommandContext): Promise<void> {
  await ensureCatalog(ctx.pools, ctx.config.coordinator, ctx.database, ctx.config.internalDatabase ?? 'postgres');
}

export interface RelationInfo {
  oid: number;
  schema: string;
  name: string;
  relkind: string;
  persistence: string;
  owner: string;
}

/**
 * Resolves a regclass argument in the client's session (so its search_path and
 * quoting rules apply and a missing table gives PostgreSQL's own 42P01), then
 * reads the relation as the internal role. A table the client created in its
 * still-open transaction is invisible to the internal role: that is an error.
 */
export async function resolveRelation(ctx: CommandContext, text: string): Promise<RelationInfo> {
  const r = await ctx.runAsClient('SELECT $1::pg_catalog.regclass::pg_catalog.oid', [text]);
  const oid = Number(r.rows[0]?.[0]);
  const info = await coordinatorPool(ctx).query(
    `SELECT n.nspname, c.relname, c.relkind, c.relpersistence, pg_catalog.pg_get_userbyid(c.relowner)
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`,
    [String(oid)],
  );
  const row = info.rows[0];
  if (!row) {
    throw new PgError({
      code: '0A000',
      message: `relation "${text}" was created in the current transaction and is not visible to the coordinator yet`,
      hint: 'Commit the transaction that creates the table, then distribute it.',
    });
  }
  return { oid, schema: row[0]!, name: row[1]!, relkind: row[2]!, persistence: row[3]!, owner: row[4]! };
}

/** Node management is for superusers only, as Citus revokes these functions from PUBLIC. */
export async function requireSuperuser(ctx: CommandContext, functionName: string): Promise<void> {
  const r = await coordinatorPool(ctx).query('SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1', [await currentRole(ctx)]);
  if (r.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: `permission denied for function ${functionName}` });
}

/** The role the client acts as now (after SET ROLE): Citus checks GetUserId(), not the login role. */
async function currentRole(ctx: CommandContext): Promise<string> {
  return (await ctx.runAsClient('SELECT current_user')).rows[0]?.[0] ?? ctx.user;
}

/** Citus's EnsureTableOwner: the caller must own the table (have its owner's privileges, or be a superuser). */
export async function requireTableOwner(client: InternalClient | InternalPool, ctx: CommandContext, rel: RelationInfo): Promise<void> {
  const r = await client.query(
    'SELECT pg_catalog.pg_has_role($1, c.relowner, $2) FROM pg_catalog.pg_class c WHERE c.oid = $3',
    [await currentRole(ctx), 'USAGE', String(rel.oid)],
  );
  if (r.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: `must be owner of table ${rel.name}` });
}

/**
 * Opens the transaction on the coordinator PostgreSQL in which a command
 * changes the catalog: search_path pinned to pg_catalog (so format_type and
 * pg_get_*def print qualified names), a lock_timeout (a client transaction
 * holding a lock on the table must not hang the command forever), and the
 * advisory lock that serializes catalog changes in this database.
 */
export async function beginCatalogTransaction(client: InternalClient): Promise<void> {
  await client.query('BEGIN');
  await client.query("SET LOCAL search_path = pg_catalog; SET LOCAL lock_timeout = '30s'");
  await client.query(`SELECT pg_catalog.pg_advisory_xact_lock(${CATALOG_LOCK_KEY}, 1)`);
}

export function parseBool(text: string | null, name: string): boolean {
  const t = (text ?? '').trim().toLowerCase();
  if (['t', 'true', 'yes', 'y', 'on', '1'].includes(t)) return true;
  if (['f', 'false', 'no', 'n', 'off', '0'].includes(t)) return false;
  throw new PgError({ code: '22P02', message: `invalid input syntax for type boolean: "${text}"`, where: `argument ${name}` });
}

export function parseInt32(text: string, name: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^[+-]?\d+$/.test(t) || !Number.isSafeInteger(n)) {
    throw new PgError({ code: '22P02', message: `invalid input syntax for type integer: "${text}"`, where: `argument ${name}` });
  }
  if (n < -2147483648 || n > 2147483647) throw new PgError({ code: '22003', message: `value "${text}" is out of range for type integer` });
  return n;
}
