/**
 * A cluster-wide statement inside the client's transaction block whose
 * worker part can run as the client (DROP OWNED BY, REASSIGN OWNED BY):
 * the statement runs on the coordinator in the block, then the same
 * statement (role names written out) on the block's own connection to every
 * worker — joined to the block as a writer, so the session's commit (one
 * node: one phase; several: two-phase with a commit record) commits or rolls
 * back every node together, and ROLLBACK leaves every node unchanged.
 *
 * PostgreSQL checks the client on each worker exactly as on the coordinator
 * (the roles and memberships are the same everywhere). The roles the
 * statement names are made to exist on the workers first, by the internal
 * role and at once, as role statements in a block are (docs/security.md).
 */
import type { BackendLink } from '../../executor/backend-link.js';
import { collectOnLink, decodeDataRow, queryOnLink } from '../../executor/link-query.js';
import { encodeExtendedQuery } from '../../pool/frontend-encoders.js';
import type { WorkerNode } from '../../metadata/types.js';
import type { CommandContext } from '../context.js';
import type { Plan } from './global-plan.js';
import { applyRoleTarget, type Query } from './role-state.js';

export interface BlockLinks {
  /** The session's connection to a worker, joined to the client's transaction block. */
  linkFor(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
}

/** Runs SQL (with parameters, as text) on a session link, as the client, inside its transaction block. */
export const onLink =
  (link: BackendLink): Query =>
  async (sql, params) => {
    const r = params ? await collectOnLink(link, encodeExtendedQuery(sql, params)) : await queryOnLink(link, sql);
    if (r.error) throw r.error;
    return { rows: r.rows.map(decodeDataRow) };
  };

/** Runs `plan` in the client's open block on the coordinator and on every node's block connection; returns the command tag. */
export async function runGlobalInBlock(ctx: CommandContext & BlockLinks, plan: Plan, nodes: WorkerNode[]): Promise<string> {
  const tag = (await ctx.runAsClient(plan.text)).command;
  await plan.inBlock?.refuseInBlock?.();
  const work = await plan.workers();
  for (const node of nodes) {
    await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
    if (work.roles) {
      const roles = work.roles;
      await ctx.pools.get(node.host, node.port, ctx.database).withClient(async (internal) => {
        await internal.query("BEGIN; SET LOCAL search_path = pg_catalog, pg_temp; SET LOCAL lock_timeout = '30s'");
        try {
          await applyRoleTarget((sql, params) => internal.query(sql, params), roles, ctx.config.internal.user);
          await internal.query('COMMIT');
        } catch (err) {
          await internal.query('ROLLBACK').catch(() => {});
          throw err;
        }
      });
    }
    if (!work.replay) continue;
    const link = await ctx.linkFor(node, true);
    const query = onLink(link);
    if (!work.replay.applies || (await work.replay.applies(query))) await query(work.replay.sql);
  }
  return tag;
}
