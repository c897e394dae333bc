/**
 * A node added to the cluster gets every role the coordinator has — same
 * attributes, same SCRAM verifiers, same memberships — before anything else
 * runs there, so any client can be authenticated on it as itself (DESIGN.md
 * decision 9). citus_add_node calls this; it is idempotent, so running it
 * again repairs a node that drifted.
 *
 * Only committed roles are copied (read as the internal role from
 * pg_authid). Roles PostgreSQL predefines (pg_*) and the internal role are
 * left alone; a password is set only where the coordinator has one, so a
 * node's own administrator password is never cleared.
 */
import type { NodeAddress } from '../../metadata/types.js';
import type { CommandContext } from '../context.js';
import { coordinatorPool } from '../common.js';
import { applyRoleTarget, emptyTarget, readRoles, readVerifiers, type Query } from './role-state.js';

export async function syncRolesToNode(ctx: CommandContext, node: NodeAddress): Promise<string[]> {
  const internalRole = ctx.config.internal.user;
  const coordinator = coordinatorPool(ctx);
  const coordinatorQuery: Query = (sql, params) => coordinator.query(sql, params);
  const names = (
    await coordinator.query(
      "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> $1 ORDER BY oid",
      [internalRole],
    )
  ).rows.map((r) => r[0]!);
  const desired = await readRoles(coordinatorQuery, names, false);
  desired.memberships = desired.memberships.filter((m) => m.role !== internalRole && m.member !== internalRole);
  const target = emptyTarget(desired);
  for (const n of names) {
    target.sync.add(n);
    target.membershipsOf.add(n);
  }
  const verifiers = await readVerifiers(coordinatorQuery, names);
  for (const [name, verifier] of verifiers) {
    if (verifier !== null) target.passwords.set(name, verifier);
  }
  await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
  return ctx.pools.get(node.host, node.port, ctx.database).withClient(async (client) => {
    const query: Query = (sql, params) => client.query(sql, params);
    await client.query("BEGIN; SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL lock_timeout = '30s'");
    try {
      const ran = await applyRoleTarget(query, target, internalRole);
      await client.query('COMMIT');
      return ran;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}
