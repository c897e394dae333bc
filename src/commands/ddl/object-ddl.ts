/**
 * CREATE / ALTER / DROP of types, domains, collations, extensions and
 * functions (src/sql/object-statements.ts says which statements): objects a
 * shard may depend on, so every node holds them, as Citus propagates them.
 *
 * The statement runs on the coordinator in the client's session and, as the
 * client's own text, on every active worker as the client's role with the
 * client's search_path — PostgreSQL checks privileges on each node as it
 * does on the coordinator — all committed together by the same two-phase
 * commit as other DDL (propagate.ts): every node has the object, or none.
 *
 * On workers, function bodies are not validated (check_function_bodies =
 * off, as pg_dump and Citus do: a body may name coordinator-only tables),
 * and DROP gets IF EXISTS (a worker added after an object was created
 * holds only what its tables needed).
 */
import type { Catalog, WorkerNode } from '../../metadata/types.js';
import type { Node } from '../../sql/parse.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, ShardTasks, type UtilityContext } from './propagate.js';
import { statementName } from './tree.js';

/** Active workers other than the coordinator's own PostgreSQL. */
export function workerNodes(ctx: UtilityContext, catalog: Catalog): WorkerNode[] {
  const { host, port } = ctx.config.coordinator;
  return catalog.nodes.filter((n) => n.isActive && n.groupId !== 0 && !(n.host === host && n.port === port));
}

/** Whether the statement names a temporary schema (its object lives in this session only). */
function namesTempSchema(tree: unknown): boolean {
  if (Array.isArray(tree)) return tree.some(namesTempSchema);
  if (!tree || typeof tree !== 'object') return false;
  const sval = (tree as Node).String?.sval;
  if (typeof sval === 'string' && /^pg_temp(_\d+)?$/.test(sval)) return true;
  return Object.values(tree as object).some(namesTempSchema);
}

/** The statement for the workers: the client's text, or for DROP the same statement with IF EXISTS. */
function workerStatement(statement: string, stmt: Node): string {
  if (!stmt.DropStmt || stmt.DropStmt.missing_ok) return statement;
  try {
    return deparseStatement({ DropStmt: { ...stmt.DropStmt, missing_ok: true } }, statementName(stmt));
  } catch {
    return statement;
  }
}

export async function objectStatement(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const nodes = workerNodes(ctx, catalog);
  if (nodes.length === 0 || namesTempSchema(stmt)) return runLocally(ctx, statement);
  const sql = workerStatement(statement, stmt);
  return runTransactionalDdl(ctx, {
    what: statementName(stmt),
    async apply() {
      const tag = (await ctx.runAsClient(statement)).command;
      const tasks = new ShardTasks();
      // A new owner must exist on the workers too.
      const owner = stmt.AlterOwnerStmt?.newowner;
      if (owner?.roletype === 'ROLESPEC_CSTRING') tasks.roles.add(owner.rolename);
      for (const node of nodes) {
        tasks.add(node, 'SET LOCAL check_function_bodies = off');
        tasks.add(node, sql);
      }
      return { tag, tasks };
    },
  });
}
