/**
 * Statements that act on whole tables, possibly several at once: TRUNCATE,
 * DROP TABLE, VACUUM / ANALYZE, COMMENT ON TABLE / COLUMN, GRANT / REVOKE
 * (also ON ALL TABLES IN SCHEMA), ALTER TABLE … SET SCHEMA.
 *
 * Multi-table statements become one statement per worker naming every shard
 * of those tables on that worker, so PostgreSQL sees the same set of tables
 * together as on the coordinator: TRUNCATE of tables linked by foreign keys
 * (co-located shards and reference table copies live on the same node) and
 * DROP TABLE ... CASCADE behave on the shards as they did on the coordinator.
 *
 * DROP TABLE also removes the tables' catalog rows (partition, shards,
 * placements, an emptied colocation group) inside the same distributed
 * commit, and notifies every coordinator's metadata cache.
 */
import { PgError } from '../../protocol/errors.js';
import type { Node } from '../../sql/parse.js';
import { shardName } from '../../metadata/shard-name.js';
import { deleteTableMetadata } from '../../metadata/catalog-writes.js';
import type { Catalog, DistributedTable, Shard, WorkerNode } from '../../metadata/types.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, runWithoutTransaction, ShardTasks, type UtilityContext } from './propagate.js';
import { resolveRangeVars, resolveRelationOid } from './resolve.js';
import { listOf, rangeVarKey, shardRangeVar, statementName, stringList } from './tree.js';

/** A table named by the statement, with what the statement said about it (ONLY, column lists). */
interface Named<T> {
  table: DistributedTable;
  extra: T;
}

/** Every shard placement of the tables, grouped by node. */
function shardsByNode<T>(named: Named<T>[]): Array<{ node: WorkerNode; shards: Array<Named<T> & { shard: Shard }> }> {
  const byNode = new Map<number, { node: WorkerNode; shards: Array<Named<T> & { shard: Shard }> }>();
  for (const n of named) {
    for (const shard of n.table.shards) {
      for (const p of shard.placements) {
        let e = byNode.get(p.node.nodeId);
        if (!e) byNode.set(p.node.nodeId, (e = { node: p.node, shards: [] }));
        e.shards.push({ ...n, shard });
      }
    }
  }
  return [...byNode.values()];
}

/** The distributed tables among RangeVars (first mention wins), with `extra` taken from each. */
async function namedTables<T>(ctx: UtilityContext, catalog: Catalog, rvs: Node[], extra: (rv: Node) => T): Promise<Named<T>[]> {
  const resolved = await resolveRangeVars(ctx, catalog, rvs);
  const out: Named<T>[] = [];
  for (const rv of rvs) {
    const table = resolved.get(rangeVarKey(rv));
    if (table && !out.some((n) => n.table === table)) out.push({ table, extra: extra(rv) });
  }
  return out;
}

/** One statement per node, built by `build` from that node's shards. */
function perNodeTasks<T>(named: Named<T>[], what: string, build: (shards: Array<Named<T> & { shard: Shard }>) => Node): ShardTasks {
  const tasks = new ShardTasks();
  for (const { node, shards } of shardsByNode(named)) tasks.add(node, deparseStatement(build(shards), what));
  return tasks;
}

export async function truncate(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const rvs = (stmt.TruncateStmt.relations as Node[]).map((r) => r.RangeVar);
  const named = await namedTables(ctx, catalog, rvs, (rv) => rv.inh as boolean);
  if (named.length === 0) return runLocally(ctx, statement);
  const tasks = perNodeTasks(named, 'TRUNCATE', (shards) => ({
    TruncateStmt: { ...structuredClone(stmt.TruncateStmt), relations: shards.map((s) => shardRangeVar(s.table, s.shard, s.extra)) },
  }));
  return runTransactionalDdl(ctx, { what: 'TRUNCATE', apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}

export async function dropTable(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const drop = stmt.DropStmt;
  const named: Named<null>[] = [];
  for (const object of drop.objects as Node[]) {
    const oid = await resolveRelationOid(ctx, stringList(object));
    const table = oid === null ? undefined : catalog.tablesById.get(oid);
    if (table && !named.some((n) => n.table === table)) named.push({ table, extra: null });
  }
  if (named.length === 0) return runLocally(ctx, statement);
  const tasks = perNodeTasks(named, 'DROP TABLE', (shards) => ({
    DropStmt: {
      ...structuredClone(drop),
      objects: shards.map((s) => listOf([s.table.schema, shardName(s.table.name, s.shard.shardId)])),
      // A shard already gone (an earlier failure) must not make the table undroppable.
      missing_ok: true,
    },
  }));
  return runTransactionalDdl(ctx, {
    what: 'DROP TABLE',
    catalogLock: true,
    notify: true,
    apply: async () => ({
      tag: (await ctx.runAsClient(statement)).command,
      tasks,
      catalog: async (internal) => {
        for (const { table } of named) {
          await deleteTableMetadata(internal, table.relationId);
          await internal.query(
            `DELETE FROM pgweave.colocation g WHERE g.colocationid = $1
             AND NOT EXISTS (SELECT 1 FROM pgweave.partition p WHERE p.colocationid = g.colocationid)`,
            [String(table.colocationId)],
          );
        }
      },
    }),
  });
}

/** VACUUM and ANALYZE: the coordinator's table first (PostgreSQL's own errors), then the shards, outside transactions. */
export async function vacuum(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const rels = ((stmt.VacuumStmt.rels ?? []) as Node[]).map((r) => r.VacuumRelation);
  const named = await namedTables(ctx, catalog, rels.map((r) => r.relation), (rv) => rels.find((r) => r.relation === rv)?.va_cols);
  if (named.length === 0) return runLocally(ctx, statement);
  const what = statementName(stmt);
  const tasks = perNodeTasks(named, what, (shards) => ({
    VacuumStmt: {
      ...structuredClone(stmt.VacuumStmt),
      rels: shards.map((s) => {
        const relation = shardRangeVar(s.table, s.shard).RangeVar;
        return { VacuumRelation: s.extra ? { relation, va_cols: structuredClone(s.extra) } : { relation } };
      }),
    },
  }));
  const tag = await runLocally(ctx, statement);
  await runWithoutTransaction(ctx, tasks);
  return tag;
}

export async function comment(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const c = stmt.CommentStmt;
  if (c.objtype !== 'OBJECT_TABLE' && c.objtype !== 'OBJECT_COLUMN') return runLocally(ctx, statement);
  const names = stringList(c.object);
  const tableNames = c.objtype === 'OBJECT_COLUMN' ? names.slice(0, -1) : names;
  const oid = await resolveRelationOid(ctx, tableNames);
  const table = oid === null ? undefined : catalog.tablesById.get(oid);
  if (!table) return runLocally(ctx, statement);
  const tasks = new ShardTasks();
  for (const shard of table.shards) {
    const object = [table.schema, shardName(table.name, shard.shardId), ...(c.objtype === 'OBJECT_COLUMN' ? [names[names.length - 1]!] : [])];
    const sql = deparseStatement({ CommentStmt: { ...structuredClone(c), object: listOf(object) } }, 'COMMENT');
    for (const p of shard.placements) tasks.add(p.node, sql);
  }
  return runTransactionalDdl(ctx, { what: 'COMMENT', apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}

/** GRANT / REVOKE on tables: the shards carry the same privileges, so checks on the workers match the coordinator's. */
export async function grant(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const g = stmt.GrantStmt;
  const what = statementName(stmt);
  const rvs = ((g.objects ?? []) as Node[]).map((o) => o.RangeVar).filter(Boolean);
  const named = await namedTables(ctx, catalog, rvs, () => null);
  if (named.length === 0) return runLocally(ctx, statement);
  if (g.targtype !== 'ACL_TARGET_OBJECT' || g.objtype !== 'OBJECT_TABLE') {
    throw new PgError({ code: '0A000', message: `${what} on ${g.objtype.replace(/^OBJECT_/, '').toLowerCase()} "${named[0]!.table.name}" is not supported` });
  }
  const tasks = perNodeTasks(named, what, (shards) => ({
    GrantStmt: { ...structuredClone(g), objects: shards.map((s) => shardRangeVar(s.table, s.shard)) },
  }));
  for (const r of (g.grantees ?? []) as Node[]) if (r.RoleSpec?.roletype === 'ROLESPEC_CSTRING') tasks.roles.add(r.RoleSpec.rolename);
  return runTransactionalDdl(ctx, { what, apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}

/**
 * ALTER TABLE … SET SCHEMA: every shard moves to the same schema (its
 * indexes and constraints move with it), and every coordinator reloads its
 * catalog — the table's schema is part of each shard's name. The schema must
 * exist on the workers (CREATE SCHEMA through the coordinator puts it there).
 */
export async function setSchema(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const a = stmt.AlterObjectSchemaStmt;
  if (a.objectType !== 'OBJECT_TABLE' || !a.relation) return runLocally(ctx, statement);
  const named = await namedTables(ctx, catalog, [a.relation], () => null);
  if (named.length === 0) return runLocally(ctx, statement);
  const { table } = named[0]!;
  const tasks = new ShardTasks();
  for (const shard of table.shards) {
    const sql = deparseStatement({ AlterObjectSchemaStmt: { ...structuredClone(a), relation: shardRangeVar(table, shard).RangeVar } }, 'ALTER TABLE');
    for (const p of shard.placements) tasks.add(p.node, sql);
  }
  return runTransactionalDdl(ctx, {
    what: 'ALTER TABLE ... SET SCHEMA',
    notify: true,
    apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }),
  });
}

/**
 * GRANT / REVOKE … ON ALL TABLES IN SCHEMA: PostgreSQL applies it to the
 * coordinator's tables; the shards of the distributed and reference tables
 * in those schemas get the same statement per shard, so privilege checks on
 * the workers match the coordinator's.
 */
export async function grantAllInSchema(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const g = stmt.GrantStmt;
  const schemas = new Set(((g.objects ?? []) as Node[]).map((o) => o.String?.sval as string));
  const named: Named<null>[] = [...catalog.tables.values()].filter((t) => schemas.has(t.schema)).map((table) => ({ table, extra: null }));
  if (named.length === 0) return runLocally(ctx, statement);
  const what = statementName(stmt);
  const tasks = perNodeTasks(named, what, (shards) => ({
    GrantStmt: { ...structuredClone(g), targtype: 'ACL_TARGET_OBJECT', objects: shards.map((s) => shardRangeVar(s.table, s.shard)) },
  }));
  for (const r of (g.grantees ?? []) as Node[]) if (r.RoleSpec?.roletype === 'ROLESPEC_CSTRING') tasks.roles.add(r.RoleSpec.rolename);
  return runTransactionalDdl(ctx, { what, apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}
