/**
 * The commands layer's side of shard operations: the DDL that recreates a
 * distributed table's shard on another node (operations/context.ts
 * ShardTableDdl), built from the coordinator table's definition with
 * shard-ddl.ts — the same statements create_distributed_table uses.
 */
import type { NodeAddress } from '../metadata/types.js';
import type { ShardDefinitions, ShardTableDdl } from '../operations/context.js';
import { coordinatorPool } from './common.js';
import type { CommandContext } from './context.js';
import { createShardStatements, foreignKeyStatements, prepareShardDdl, renameIndexDefinition, rolesNeeded, schemaStatements, type ShardRef } from './shard-ddl.js';
import { copiedColumns, describeTable } from './table-definition.js';
import { forEachBatch, insertFromArraysSql, RowBuffer } from './data-movement.js';
import { quoteIdent } from '../sql/quote.js';
import { ensureRoles } from './worker-objects.js';

interface ShardRow {
  shardId: number;
  minValue: string | null;
}

export function shardDefinitions(ctx: CommandContext): ShardDefinitions {
  return async (relationId: number): Promise<ShardTableDdl> => {
    await prepareShardDdl();
    const coordinator = coordinatorPool(ctx);
    const def = await coordinator.withClient(async (c) => {
      await c.query('BEGIN; SET LOCAL search_path = pg_catalog');
      try {
        return await describeTable(c, relationId);
      } finally {
        await c.query('COMMIT');
      }
    });
    // Shards of this table and of every table its foreign keys reference, to pair hash ranges.
    const relids = [relationId, ...def.constraints.filter((c) => c.type === 'f').map((c) => c.referencedRelid)];
    const r = await coordinator.query(
      `SELECT s.logicalrelid, s.shardid, s.shardminvalue, n.nspname, c.relname FROM pgweave.shard s
       JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE s.logicalrelid = ANY($1::oid[])`,
      ['{' + relids.join(',') + '}'],
    );
    const shards = new Map<number, { schema: string; name: string; rows: ShardRow[] }>();
    for (const row of r.rows) {
      const relid = Number(row[0]);
      let entry = shards.get(relid);
      if (!entry) shards.set(relid, (entry = { schema: row[3]!, name: row[4]!, rows: [] }));
      entry.rows.push({ shardId: Number(row[1]), minValue: row[2] });
    }
    const minOf = (shardId: number) => shards.get(relationId)?.rows.find((s) => s.shardId === shardId)?.minValue ?? null;
    return {
      async prepareNode(node: NodeAddress) {
        const pool = ctx.pools.get(node.host, node.port, ctx.database);
        await ensureRoles(coordinator, pool, rolesNeeded(def));
        await pool.query(schemaStatements(def).join(';\n'));
      },
      hasForeignKeys: def.constraints.some((c) => c.type === 'f'),
      async copyRows(source, from, target, to, where) {
        const columns = copiedColumns(def);
        const buffer = new RowBuffer(columns.length, insertFromArraysSql(to, columns));
        const names = columns.map((c) => quoteIdent(c.name)).join(', ');
        const total = await forEachBatch(source, `SELECT ${names} FROM ${from} WHERE ${where}`, async (rows) => {
          for (const row of rows) {
            buffer.add(row, 0);
            if (buffer.full) await buffer.flush([target]);
          }
        });
        await buffer.flush([target]);
        return total;
      },
      table: (shardId) => createShardStatements({ ...def, indexes: [] }, shardId),
      indexes: (shardId) => def.indexes.map((i) => renameIndexDefinition(i.definition, shardId)),
      foreignKeys: (shardId) =>
        foreignKeyStatements(def, shardId, (relid): ShardRef => {
          const target = shards.get(relid)!;
          // A reference table has one shard (NULL range); a co-located table the one with the same range.
          const match = target.rows.find((s) => s.minValue === null) ?? target.rows.find((s) => s.minValue === minOf(shardId))!;
          return { schema: target.schema, name: target.name, shardId: match.shardId };
        }),
    };
  };
}
