/**
 * DROP OWNED BY and REASSIGN OWNED BY on every node. The statement runs on the coordinator as the client (PostgreSQL
 * checks that the client has the privileges of the roles), then on every
 * worker's same-named database as the internal role, with CURRENT_USER /
 * SESSION_USER written out as names:
 *
 *   DROP OWNED BY r      shards owned by r are dropped with their tables;
 *                        the catalog rows of distributed tables that no
 *                        longer exist on the coordinator are deleted in the
 *                        same distributed commit (and every coordinator told)
 *   REASSIGN OWNED BY r  tables and their shards change owner together
 *
 * so the coordinator's tables, the shards and pgweave's catalog agree
 * afterwards, or nothing changed anywhere.
 */
import { deleteTableMetadata } from '../../metadata/catalog-writes.js';
import { PgError } from '../../protocol/errors.js';
import type { Node } from '../../sql/parse.js';
import type { CommandContext } from '../context.js';
import { roleTarget, type Plan } from './global-plan.js';
import { roleName, substituteRoleSpecs, type SessionRoles } from './statement-text.js';

/** DropOwnedStmt / ReassignOwnedStmt. */
export async function ownedObjectsPlan(ctx: CommandContext, statement: string, stmt: Node, who: () => Promise<SessionRoles>, inTransactionBlock: boolean): Promise<Plan> {
  if (stmt.DropOwnedStmt && inTransactionBlock && (await ctx.metadata.get(ctx.database)).tablesById.size > 0) {
    // Workers commit at once inside a block (global-utility.ts): a later ROLLBACK would bring back
    // coordinator tables whose shards and catalog rows are gone.
    throw new PgError({
      code: '0A000',
      message: 'DROP OWNED BY cannot run inside a transaction block when the database has distributed tables',
      hint: 'Run DROP OWNED BY on its own, outside BEGIN ... COMMIT: pgweave applies it to every node atomically.',
    });
  }
  const roles = await who();
  const s = stmt.DropOwnedStmt ?? stmt.ReassignOwnedStmt;
  const specs = [...((s.roles ?? []) as Node[]).map((r) => r.RoleSpec), ...(s.newrole ? [s.newrole] : [])];
  const names = [...new Set(specs.map((r) => roleName(r, roles)).filter((n): n is string => n !== null))];
  const sql = substituteRoleSpecs(statement, stmt, roles);
  const drops = !!stmt.DropOwnedStmt;
  return {
    text: statement,
    names,
    notify: drops,
    catalogLock: drops,
    workers: async () => ({ roles: await roleTarget(ctx, names, { memberships: false }), replay: { sql } }),
    catalog: drops ? (internal) => dropVanishedTables(ctx, internal) : undefined,
  };
}

/** Deletes the catalog rows of distributed tables the client's transaction no longer has. */
async function dropVanishedTables(ctx: CommandContext, internal: Parameters<NonNullable<Plan['catalog']>>[0]): Promise<void> {
  const catalog = await ctx.metadata.get(ctx.database);
  const ids = [...catalog.tablesById.keys()].map(String);
  if (ids.length === 0) return;
  const r = await ctx.runAsClient(
    `SELECT x FROM pg_catalog.unnest($1::pg_catalog.oid[]) x
     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) x)`,
    ['{' + ids.join(',') + '}'],
  );
  for (const [relid] of r.rows) {
    const table = catalog.tablesById.get(Number(relid));
    if (!table) continue;
    await deleteTableMetadata(internal, table.relationId);
    await internal.query(
      `DELETE FROM pgweave.colocation g WHERE g.colocationid = $1
       AND NOT EXISTS (SELECT 1 FROM pgweave.partition p WHERE p.colocationid = g.colocationid)`,
      [String(table.colocationId)],
    );
  }
}
