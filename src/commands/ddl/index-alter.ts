/**
 * ALTER INDEX … RENAME TO, ALTER INDEX … SET (…) / RESET (…) and COMMENT ON
 * INDEX for indexes of distributed and reference tables: every shard index
 * `<index>_<shardid>` gets the same change (renamed to `<new>_<shardid>`, so
 * later statements find it by Citus's naming), in one distributed commit
 * with the coordinator's index (propagate.ts).
 *
 * The planner routes every ALTER INDEX / COMMENT ON INDEX here once the
 * catalog has tables (an index name does not say its table); an index of a
 * local table runs unchanged. Other ALTER INDEX forms on a distributed
 * table's index (SET TABLESPACE, ALTER COLUMN … SET STATISTICS, ATTACH
 * PARTITION) are refused with 0A000.
 */
import { PgError } from '../../protocol/errors.js';
import type { Node } from '../../sql/parse.js';
import { shardName } from '../../metadata/shard-name.js';
import type { Catalog, DistributedTable } from '../../metadata/types.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, ShardTasks, type UtilityContext } from './propagate.js';
import { resolveIndex } from './resolve.js';
import { alterSubcommandName, listOf, stringList } from './tree.js';

const INDEX_SUBCOMMANDS = new Set(['AT_SetRelOptions', 'AT_ResetRelOptions']);

function rangeVarNames(rv: Node): string[] {
  return [rv.schemaname, rv.relname].filter((n): n is string => typeof n === 'string');
}

/** The distributed table an index (named by `names`) belongs to, with the index's own name. */
async function indexOfDistributedTable(ctx: UtilityContext, catalog: Catalog, names: string[]): Promise<{ name: string; table: DistributedTable } | null> {
  const found = await resolveIndex(ctx, names);
  const table = found ? catalog.tablesById.get(found.tableOid) : undefined;
  return found && table ? { name: found.name, table } : null;
}

/** One statement per shard, built from the shard id. */
function perShardIndex(table: DistributedTable, what: string, build: (shardId: number) => Node): ShardTasks {
  const tasks = new ShardTasks();
  for (const shard of table.shards) {
    const sql = deparseStatement(build(shard.shardId), what);
    for (const p of shard.placements) tasks.add(p.node, sql);
  }
  return tasks;
}

function run(ctx: UtilityContext, statement: string, what: string, tasks: ShardTasks): Promise<string> {
  return runTransactionalDdl(ctx, { what, apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}

/** ALTER INDEX … RENAME TO (a RenameStmt on OBJECT_INDEX). */
export async function renameIndex(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const rename = stmt.RenameStmt;
  const index = await indexOfDistributedTable(ctx, catalog, rangeVarNames(rename.relation));
  if (!index) return runLocally(ctx, statement);
  const { table, name } = index;
  const tasks = perShardIndex(table, 'ALTER INDEX', (shardId) => {
    const clone = structuredClone(rename);
    clone.relation = { ...clone.relation, schemaname: table.schema, relname: shardName(name, shardId) };
    delete clone.relation.catalogname;
    clone.newname = shardName(rename.newname, shardId);
    return { RenameStmt: clone };
  });
  return run(ctx, statement, 'ALTER INDEX', tasks);
}

/** ALTER INDEX … SET (…) / RESET (…) (an AlterTableStmt on OBJECT_INDEX). */
export async function alterIndex(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const alter = stmt.AlterTableStmt;
  const index = await indexOfDistributedTable(ctx, catalog, rangeVarNames(alter.relation));
  if (!index) return runLocally(ctx, statement);
  const { table, name } = index;
  for (const c of alter.cmds as Node[]) {
    const subtype: string = c.AlterTableCmd?.subtype;
    if (!INDEX_SUBCOMMANDS.has(subtype)) {
      const kind = table.method === 'reference' ? 'reference table' : 'distributed table';
      throw new PgError({ code: '0A000', message: `ALTER INDEX ... ${alterSubcommandName(subtype)} on an index of ${kind} "${table.name}" is not supported` });
    }
  }
  const tasks = perShardIndex(table, 'ALTER INDEX', (shardId) => {
    const clone = structuredClone(alter);
    clone.relation = { ...clone.relation, schemaname: table.schema, relname: shardName(name, shardId) };
    delete clone.relation.catalogname;
    return { AlterTableStmt: clone };
  });
  return run(ctx, statement, 'ALTER INDEX', tasks);
}

/** COMMENT ON INDEX. */
export async function commentOnIndex(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const c = stmt.CommentStmt;
  const index = await indexOfDistributedTable(ctx, catalog, stringList(c.object));
  if (!index) return runLocally(ctx, statement);
  const { table, name } = index;
  const tasks = perShardIndex(table, 'COMMENT', (shardId) => ({
    CommentStmt: { ...structuredClone(c), object: listOf([table.schema, shardName(name, shardId)]) },
  }));
  return run(ctx, statement, 'COMMENT', tasks);
}
