/**
 * undistribute_table: the reverse of create_distributed_table and
 * create_reference_table. In one distributed change (see
 * distribute-table.ts withDistributedChange): each shard's rows are read from
 * one active placement, inside that worker's transaction, and inserted into
 * the coordinator table; every placement is dropped; the catalog rows go.
 * Either the rows are back on the coordinator and the shards are gone, or
 * nothing changed.
 *
 * Like Citus without cascade_via_foreign_keys, a table in a foreign key
 * relationship with another distributed table is refused.
 */
import { PgError } from '../protocol/errors.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { deleteTableMetadata, readPartition, readTableShards, readWorkerNodes } from '../metadata/catalog-writes.js';
import { ensureDatabaseCatalog, requireTableOwner, resolveRelation } from './common.js';
import type { CommandContext } from './context.js';
import { RowBuffer, forEachBatch, insertFromArraysSql } from './data-movement.js';
import { withDistributedChange } from './distribute-table.js';
import { dropShardStatement, qualifiedShardName } from './shard-ddl.js';
import { copiedColumns, describeTable } from './table-definition.js';

export async function undistributeTable(ctx: CommandContext, tableText: string, cascadeViaForeignKeys: boolean): Promise<void> {
  await ensureDatabaseCatalog(ctx);
  const rel = await resolveRelation(ctx, tableText);
  if (cascadeViaForeignKeys) {
    throw new PgError({ code: '0A000', message: 'undistribute_table with cascade_via_foreign_keys is not supported yet' });
  }
  await withDistributedChange(ctx, async (coordinator, workers) => {
    const table = quoteQualified(rel.schema, rel.name);
    await coordinator.query(`LOCK TABLE ${table} IN EXCLUSIVE MODE`);
    await requireTableOwner(coordinator, ctx, rel);
    const partition = await readPartition(coordinator, rel.oid);
    if (!partition) {
      throw new PgError({ code: '22023', message: 'cannot undistribute table because the table is not distributed' });
    }
    const fk = await coordinator.query(
      `SELECT c.conrelid = $1, c.conname FROM pg_catalog.pg_constraint c JOIN pgweave.partition p
         ON p.logicalrelid = CASE WHEN c.conrelid = $1 THEN c.confrelid ELSE c.conrelid END
       WHERE c.contype = 'f' AND (c.conrelid = $1 OR c.confrelid = $1) AND c.conrelid <> c.confrelid LIMIT 1`,
      [String(rel.oid)],
    );
    if (fk.rows[0]) {
      const referencing = fk.rows[0][0] === 't';
      throw new PgError({
        code: '0A000',
        message: `cannot complete operation because table ${rel.name} ${referencing ? 'has a foreign key' : 'is referenced by a foreign key'}`,
        hint: `Use cascade option to undistribute all the relations involved in a foreign key relationship with ${table} by executing SELECT undistribute_table($$${table}$$, cascade_via_foreign_keys=>true)`,
      });
    }
    const def = await describeTable(coordinator, rel.oid);
    const columns = copiedColumns(def);
    const shards = await readTableShards(coordinator, rel.oid);
    const nodes = new Map((await readWorkerNodes(coordinator)).map((n) => [n.groupId, n]));
    const nodeOf = (groupId: number) => {
      const node = nodes.get(groupId);
      if (!node) throw new PgError({ code: 'XX000', message: `no node for group ${groupId}` });
      return node;
    };

    const overriding = def.columns.some((c) => c.identity);
    const insert = insertFromArraysSql(table, columns, overriding);
    const buffer = new RowBuffer(columns.length, insert);
    const names = columns.map((c) => quoteIdent(c.name)).join(', ') || 'NULL';
    const sourceShards = partition.method === 'n' ? shards.slice(0, 1) : shards;
    for (const shard of sourceShards) {
      if (shard.groupIds.length === 0) throw new PgError({ code: 'XX000', message: `shard ${shard.shardId} has no active placement` });
      const { client } = await workers.open(ctx, nodeOf(shard.groupIds[0]!));
      await forEachBatch(client, `SELECT ${names} FROM ${qualifiedShardName(def.schema, def.name, shard.shardId)}`, async (rows) => {
        for (const row of rows) {
          buffer.add(row, 0);
          if (buffer.full) await buffer.flush([coordinator]);
        }
      });
    }
    await buffer.flush([coordinator]);

    for (const shard of shards) {
      for (const groupId of shard.groupIds) {
        const { client } = await workers.open(ctx, nodeOf(groupId));
        await client.query(dropShardStatement(def.schema, def.name, shard.shardId));
      }
    }
    await deleteTableMetadata(coordinator, rel.oid);
    await coordinator.query(
      `DELETE FROM pgweave.colocation g WHERE g.colocationid = $1
       AND NOT EXISTS (SELECT 1 FROM pgweave.partition p WHERE p.colocationid = g.colocationid)`,
      [String(partition.colocationId)],
    );
  });
}
