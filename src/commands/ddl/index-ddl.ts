/**
 * CREATE INDEX and DROP INDEX on distributed and reference tables. Every
 * shard gets the coordinator's index under Citus's name `<index>_<shardid>`.
 *
 * An index created without a name gets the name PostgreSQL chose on the
 * coordinator (found by comparing the table's indexes before and after, in
 * the client's transaction), so `DROP INDEX` of that name later finds the
 * shard indexes too.
 *
 * CONCURRENTLY cannot run in a transaction: like Citus, the coordinator's
 * index is built first, then each shard's, one autocommit statement per
 * shard; if a shard fails, the coordinator's index is marked invalid and the
 * client is told how to clean up. DROP INDEX CONCURRENTLY drops the shard
 * indexes first (IF EXISTS, so a retry finishes the job), then the
 * coordinator's.
 */
import { PgError } from '../../protocol/errors.js';
import type { Node } from '../../sql/parse.js';
import { shardName } from '../../metadata/shard-name.js';
import type { Catalog, DistributedTable } from '../../metadata/types.js';
import { coordinatorPool } from '../common.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, runWithoutTransaction, ShardTasks, type UtilityContext } from './propagate.js';
import { resolveIndex, resolveRangeVars, tableIndexes } from './resolve.js';
import { listOf, pointAtShard, rangeVarKey, stringList } from './tree.js';
import { checkUniqueIndex } from './validate.js';

function shardIndexTasks(table: DistributedTable, index: Node, name: string): ShardTasks {
  const tasks = new ShardTasks();
  for (const shard of table.shards) {
    const clone = structuredClone({ IndexStmt: index });
    clone.IndexStmt.idxname = shardName(name, shard.shardId);
    pointAtShard(clone.IndexStmt.relation, table, shard);
    const sql = deparseStatement(clone, 'CREATE INDEX');
    for (const p of shard.placements) tasks.add(p.node, sql);
  }
  return tasks;
}

/** The name of the index the statement created: given, or the one new index on the table. */
function createdIndexName(index: Node, before: Map<number, string>, after: Map<number, string>): string | null {
  if (index.idxname) return index.idxname;
  const added = [...after].filter(([oid]) => !before.has(oid));
  return added.length === 1 ? added[0]![1] : null;
}

export async function createIndex(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const index = stmt.IndexStmt;
  const table = (await resolveRangeVars(ctx, catalog, [index.relation])).get(rangeVarKey(index.relation));
  if (!table) return runLocally(ctx, statement);
  checkUniqueIndex(table, index);
  if (index.concurrent) return createIndexConcurrently(ctx, statement, table, index);
  return runTransactionalDdl(ctx, {
    what: 'CREATE INDEX',
    apply: async () => {
      const before = await tableIndexes(ctx, table.relationId);
      const r = await ctx.runAsClient(statement);
      const name = createdIndexName(index, before, await tableIndexes(ctx, table.relationId));
      return { tag: r.command, tasks: name === null ? new ShardTasks() : shardIndexTasks(table, index, name) };
    },
  });
}

async function createIndexConcurrently(ctx: UtilityContext, statement: string, table: DistributedTable, index: Node): Promise<string> {
  const before = await tableIndexes(ctx, table.relationId);
  const r = await ctx.runAsClient(statement);
  const after = await tableIndexes(ctx, table.relationId);
  const name = createdIndexName(index, before, after);
  if (name === null) return r.command;
  const tasks = shardIndexTasks(table, index, name);
  try {
    await runWithoutTransaction(ctx, tasks);
  } catch (err) {
    const oid = [...after].find(([, n]) => n === name)?.[0];
    if (oid !== undefined) {
      await coordinatorPool(ctx)
        .query('UPDATE pg_catalog.pg_index SET indisvalid = false WHERE indexrelid = $1', [String(oid)])
        .catch(() => {});
    }
    const cause = err instanceof PgError ? err.message : String((err as Error)?.message ?? err);
    throw new PgError({
      code: err instanceof PgError ? err.code : 'XX000',
      message: 'CONCURRENTLY-enabled index command failed',
      detail: `${cause}. CONCURRENTLY-enabled index commands can fail partially, leaving behind an INVALID index.`,
      hint: 'Use DROP INDEX CONCURRENTLY IF EXISTS to remove the invalid index, then retry the original command.',
    });
  }
  return r.command;
}

interface DroppedIndex {
  name: string;
  table: DistributedTable;
}

export async function dropIndex(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const drop = stmt.DropStmt;
  const dropped: DroppedIndex[] = [];
  for (const object of drop.objects as Node[]) {
    const found = await resolveIndex(ctx, stringList(object));
    const table = found ? catalog.tablesById.get(found.tableOid) : undefined;
    if (found && table) dropped.push({ name: found.name, table });
  }
  if (dropped.length === 0) return runLocally(ctx, statement);

  const tasks = new ShardTasks();
  for (const { name, table } of dropped) {
    for (const shard of table.shards) {
      const shardDrop = { DropStmt: { ...structuredClone(drop), objects: [listOf([table.schema, shardName(name, shard.shardId)])] } };
      if (drop.concurrent) shardDrop.DropStmt.missing_ok = true;
      const sql = deparseStatement(shardDrop, 'DROP INDEX');
      for (const p of shard.placements) tasks.add(p.node, sql);
    }
  }
  if (drop.concurrent) {
    await runWithoutTransaction(ctx, tasks);
    return runLocally(ctx, statement);
  }
  return runTransactionalDdl(ctx, {
    what: 'DROP INDEX',
    apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }),
  });
}
