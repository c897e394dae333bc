/**
 * GRANT / REVOKE … ON ALL TABLES IN SCHEMA s: the statement names schemas,
 * not tables, so nothing in it points at a shard. PostgreSQL applies it on
 * the coordinator to every table of s (as the client: tables the client may
 * not grant on are skipped with a warning); every shard of a distributed or
 * reference table in s gets the same GRANT / REVOKE, written out as one
 * statement per worker naming those shards, in the same distributed commit
 * (propagate.ts), run as the client so PostgreSQL skips the same tables
 * there.
 */
import type { Node } from '../../sql/parse.js';
import type { Catalog, WorkerNode } from '../../metadata/types.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, ShardTasks, type UtilityContext } from './propagate.js';
import { shardRangeVar, statementName } from './tree.js';

/** Whether `stmt` is GRANT / REVOKE … ON ALL TABLES IN SCHEMA. */
export function isGrantOnAllTables(stmt: Node): boolean {
  const g = stmt.GrantStmt;
  return !!g && g.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' && g.objtype === 'OBJECT_TABLE';
}

export async function grantOnAllTables(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const g = stmt.GrantStmt;
  const schemas = new Set(((g.objects ?? []) as Node[]).map((o) => o.String?.sval as string));
  const tables = [...catalog.tablesById.values()].filter((t) => schemas.has(t.schema));
  if (tables.length === 0) return runLocally(ctx, statement);
  const what = statementName(stmt);
  const byNode = new Map<number, { node: WorkerNode; objects: Node[] }>();
  for (const table of tables) {
    for (const shard of table.shards) {
      for (const p of shard.placements) {
        let e = byNode.get(p.node.nodeId);
        if (!e) byNode.set(p.node.nodeId, (e = { node: p.node, objects: [] }));
        e.objects.push(shardRangeVar(table, shard));
      }
    }
  }
  const tasks = new ShardTasks();
  for (const { node, objects } of byNode.values()) {
    tasks.add(node, deparseStatement({ GrantStmt: { ...structuredClone(g), targtype: 'ACL_TARGET_OBJECT', objects } }, what));
  }
  for (const r of (g.grantees ?? []) as Node[]) if (r.RoleSpec?.roletype === 'ROLESPEC_CSTRING') tasks.roles.add(r.RoleSpec.rolename);
  return runTransactionalDdl(ctx, { what, apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}
