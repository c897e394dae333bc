/**
 * DDL on distributed tables inside the client's transaction block
 * (BEGIN; ALTER TABLE dist …; … COMMIT / ROLLBACK): the shard statements run
 * on the session's own worker connections, joined to the block, so they
 * commit or roll back with it — by the session's commit (one node: one
 * phase; several: the same two-phase commit and commit records as any
 * multi-node write, src/session/session-transaction.ts), not here.
 *
 *   the statement in the client's block on the coordinator (as the client)
 *   per node holding shards: the session's link, joined as a writer;
 *        the client's settings for the rest of the block (SET LOCAL, client-settings.ts);
 *        guards; the shard statements
 *   any error: the client's block is put in the failed state, as PostgreSQL
 *        does after an error, so nothing of it can commit anywhere
 *
 * Statements that change cached names or columns tell every coordinator
 * once the block has committed (the session's afterCommit hook). Catalog
 * rows cannot be written here by the internal role (its transaction cannot
 * join the client's): DROP TABLE writes them in the client's own
 * transaction instead (table-ddl.ts dropTableInBlock), and a statement
 * asking for the internal catalog transaction is refused.
 */
import type { BackendLink } from '../../executor/backend-link.js';
import { queryOnLink } from '../../executor/link-query.js';
import { PgError } from '../../protocol/errors.js';
import { applySettingsSql } from '../client-settings.js';
import type { WorkerNode } from '../../metadata/types.js';
import { coordinatorPool } from '../common.js';
import type { CommandContext } from '../context.js';
import { ensureRoles } from '../worker-objects.js';
import type { AppliedDdl, TransactionalDdl } from './propagate.js';

export interface BlockAccess extends CommandContext {
  /** The session's connection to a worker, joined to the client's transaction block. */
  linkFor(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
  /** Runs `hook` once the client's open block commits. */
  afterCommit(hook: () => Promise<void>): void;
}

async function query(link: BackendLink, sql: string) {
  const r = await queryOnLink(link, sql);
  if (r.error) throw r.error;
  return r;
}

/** Puts the client's block into the failed state, as an error does in PostgreSQL. */
async function failClientBlock(ctx: CommandContext): Promise<void> {
  await ctx.runAsClient('SELECT pg_catalog.int4div(1, 0)').catch(() => {});
}

/**
 * After the block committed: every coordinator reloads the cached names and
 * columns. (A NOTIFY inside the block would make its two-phase PREPARE fail.)
 */
async function announceCatalogChange(ctx: CommandContext): Promise<void> {
  const change = await ctx.metadata.beginChange(ctx.database);
  await coordinatorPool(ctx).query(change.notifySql);
  ctx.metadata.invalidate(ctx.database);
  await change.wait();
}

/** Runs a transactional DDL statement inside the client's open block; returns the command tag. */
export async function runDdlInBlock(ctx: BlockAccess, ddl: TransactionalDdl, settings: ReadonlyArray<[string, string]>): Promise<string> {
  try {
    if (ddl.catalogLock) {
      throw new PgError({
        code: '0A000',
        message: `${ddl.what} on a distributed table cannot run inside a transaction block`,
        detail: 'It changes the distributed catalog, which commits on its own.',
        hint: 'Run the statement on its own, outside BEGIN ... COMMIT: pgweave applies it to every shard atomically.',
      });
    }
    const applied: AppliedDdl = await ddl.apply();
    if (applied.catalog) throw new PgError({ code: 'XX000', message: `${ddl.what} changes the catalog inside a transaction block` });
    if (ddl.notify) ctx.afterCommit(() => announceCatalogChange(ctx));
    for (const { node, statements, guards } of applied.tasks.nodes()) {
      await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
      if (applied.tasks.roles.size > 0) await ensureRoles(coordinatorPool(ctx), ctx.pools.get(node.host, node.port, ctx.database), [...applied.tasks.roles]);
      const link = await ctx.linkFor(node, true);
      await query(link, applySettingsSql(settings, true));
      for (const g of guards) if ((await query(link, g.sql)).rows.length > 0) throw g.error;
      if (statements.length > 0) await query(link, statements.join(';\n'));
    }
    return applied.tag;
  } catch (err) {
    await failClientBlock(ctx);
    throw err;
  }
}
