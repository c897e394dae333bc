/**
 * Copies every reference table onto a node that lacks it (a node being
 * added), inside the caller's distributed change: the new placements appear
 * in the catalog in the same commit that makes the shards exist.
 *
 * Per reference table: the shard is created on the new node, its rows are
 * read from an existing placement (in that worker's transaction, under a
 * SHARE lock so no write slips between the copy and the commit), foreign keys
 * (reference tables reference only reference tables) are added once every
 * shard exists, and the placement row is inserted.
 *
 * Writes a coordinator routed with the old catalog (before this commit) reach
 * only the old placements; the router must not cache the catalog across the
 * commit of this change (the NOTIFY it sends drops every cache).
 */
import type { InternalClient } from '../pool/internal-client.js';
import { PgError } from '../protocol/errors.js';
import { quoteIdent } from '../sql/quote.js';
import { readWorkerNodes, type NodeRow } from '../metadata/catalog-writes.js';
import { coordinatorPool } from './common.js';
import type { CommandContext } from './context.js';
import { RowBuffer, forEachBatch, insertFromArraysSql } from './data-movement.js';
import type { WorkerTransactions } from './distribute-table.js';
import { createShardStatements, foreignKeyStatements, prepareShardDdl, qualifiedShardName, rolesNeeded, schemaStatements } from './shard-ddl.js';
import { copiedColumns, describeTable, type TableDefinition } from './table-definition.js';
import { ensureObjectsOn, objectRoles, tableDependencyDefinitions } from './object-definitions.js';
import { ensureRoles } from './worker-objects.js';

/**
 * Creates on a node being added every object the distributed and reference
 * tables depend on (types, collations, extensions, functions), before any
 * shard reaches it — here for reference tables, later by shard moves.
 */
export async function ensureTableDependenciesOn(ctx: CommandContext, coordinator: InternalClient, workers: WorkerTransactions, node: NodeRow): Promise<void> {
  const tables = await coordinator.query('SELECT p.logicalrelid FROM pgweave.partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid');
  const defs = await tableDependencyDefinitions(coordinator, tables.rows.map((r) => Number(r[0])));
  if (defs.length === 0) return;
  await ensureRoles(coordinatorPool(ctx), ctx.pools.get(node.host, node.port, ctx.database), objectRoles(defs));
  const target = await workers.open(ctx, node);
  await ensureObjectsOn(target.client, defs);
}

export async function replicateReferenceTables(ctx: CommandContext, coordinator: InternalClient, workers: WorkerTransactions, node: NodeRow): Promise<void> {
  const missing = await coordinator.query(
    `SELECT p.logicalrelid, s.shardid,
            (SELECT o.groupid FROM pgweave.placement o WHERE o.shardid = s.shardid AND o.shardstate = 1 AND o.groupid <> $1
             ORDER BY o.placementid LIMIT 1)
     FROM pgweave.partition p JOIN pgweave.shard s ON s.logicalrelid = p.logicalrelid
     JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid
     WHERE p.partmethod = 'n' AND NOT EXISTS (SELECT 1 FROM pgweave.placement pl WHERE pl.shardid = s.shardid AND pl.groupid = $1)
     ORDER BY p.logicalrelid`,
    [String(node.groupId)],
  );
  if (missing.rows.length === 0) return;
  await prepareShardDdl();
  const nodes = new Map((await readWorkerNodes(coordinator)).map((n) => [n.groupId, n]));
  const tables: Array<{ def: TableDefinition; shardId: number; source: NodeRow }> = [];
  for (const r of missing.rows) {
    const source = nodes.get(Number(r[2]));
    if (!source) throw new PgError({ code: 'XX000', message: `reference shard ${r[1]} has no active placement to copy from` });
    tables.push({ def: await describeTable(coordinator, Number(r[0])), shardId: Number(r[1]), source });
  }
  const target = await workers.open(ctx, node);
  await ensureRoles(coordinatorPool(ctx), ctx.pools.get(node.host, node.port, ctx.database), [...new Set(tables.flatMap((t) => rolesNeeded(t.def)))]);
  for (const { def, shardId } of tables) {
    await target.client.query([...schemaStatements(def), ...createShardStatements(def, shardId)].join(';\n'));
  }
  for (const { def, shardId, source } of tables) {
    const from = await workers.open(ctx, source);
    const shard = qualifiedShardName(def.schema, def.name, shardId);
    await from.client.query(`LOCK TABLE ${shard} IN SHARE MODE`);
    const columns = copiedColumns(def);
    const buffer = new RowBuffer(columns.length, insertFromArraysSql(shard, columns));
    const names = columns.map((c) => quoteIdent(c.name)).join(', ') || 'NULL';
    await forEachBatch(from.client, `SELECT ${names} FROM ${shard}`, async (rows) => {
      for (const row of rows) {
        buffer.add(row, 0);
        if (buffer.full) await buffer.flush([target.client]);
      }
    });
    await buffer.flush([target.client]);
  }
  const shardOf = new Map(tables.map((t) => [t.def.oid, t]));
  for (const { def, shardId } of tables) {
    const fks = foreignKeyStatements(def, shardId, (relid) => {
      const t = shardOf.get(relid);
      if (!t) throw new PgError({ code: 'XX000', message: `reference table ${def.name} references a table that is not a reference table` });
      return { schema: t.def.schema, name: t.def.name, shardId: t.shardId };
    });
    if (fks.length > 0) await target.client.query(fks.join(';\n'));
  }
  await coordinator.query(
    'INSERT INTO pgweave.placement (shardid, groupid) SELECT u.s, $2 FROM pg_catalog.unnest($1::bigint[]) AS u(s)',
    ['{' + tables.map((t) => t.shardId).join(',') + '}', String(node.groupId)],
  );
}
