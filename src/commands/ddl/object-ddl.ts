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
 * and DROP gets IF EXISTS (a worker may lack an object dropped directly on
 * the coordinator's PostgreSQL). GRANT / REVOKE … ON TYPE | DOMAIN go the
 * same way, so privilege checks on the workers match the coordinator's.
 *
 * Distributed objects (pg_dist_object, ../distributed-objects.ts): what a
 * CREATE made is recorded with the statement's commit (inside a block, once
 * the block committed); an existing type an ALTER or GRANT changes is
 * created on workers that lack it first; DROP forgets the dropped ones.
 */
import type { InternalClient } from '../../pool/internal-client.js';
import type { Catalog, WorkerNode } from '../../metadata/types.js';
import { coordinatorPool } from '../common.js';
import { ensureObjectsOnWorkers, forgetDroppedRecords, recordObjects } from '../distributed-objects.js';
import type { ObjectRef } from '../object-dependencies.js';
import { changedObjects, createdObjects } from './object-targets.js';
import type { Node } from '../../sql/parse.js';
import { someNode } from '../../sql/tree-walk.js';
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
  return someNode(tree, (n) => {
    const sval = n.String?.sval;
    return typeof sval === 'string' && /^pg_temp(_\d+)?$/.test(sval);
  });
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

/** Runs `hook` now, or once the client's open block commits. */
async function whenCommitted(ctx: UtilityContext, hook: () => Promise<void>): Promise<void> {
  if (ctx.inTransactionBlock && ctx.afterCommit) ctx.afterCommit(hook);
  else await hook();
}

const FUNCTION_OBJECTS = new Set(['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE']);

function changesFunctions(stmt: Node): boolean {
  if (stmt.CreateFunctionStmt || stmt.AlterFunctionStmt) return true;
  const s = stmt.DropStmt ?? stmt.RenameStmt ?? stmt.AlterObjectSchemaStmt;
  return !!s && FUNCTION_OBJECTS.has(s.removeType ?? s.renameType ?? s.objectType);
}

export async function objectStatement(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const nodes = workerNodes(ctx, catalog);
  if (nodes.length === 0 || namesTempSchema(stmt)) return runLocally(ctx, statement);
  // An object the statement changes that only the coordinator has (created before any worker) reaches the workers first.
  await ensureObjectsOnWorkers(ctx, await changedObjects(ctx, stmt));
  const sql = workerStatement(statement, stmt);
  let created: ObjectRef[] = [];
  const tag = await runTransactionalDdl(ctx, {
    what: statementName(stmt),
    // A new or changed function may change roles when called: every coordinator reloads (src/commands/roles/watch.ts).
    notify: changesFunctions(stmt),
    async apply() {
      const tag = (await ctx.runAsClient(statement)).command;
      created = await createdObjects(ctx, stmt);
      const tasks = new ShardTasks();
      // A new owner and grantees must exist on the workers too.
      const owner = stmt.AlterOwnerStmt?.newowner;
      if (owner?.roletype === 'ROLESPEC_CSTRING') tasks.roles.add(owner.rolename);
      for (const r of (stmt.GrantStmt?.grantees ?? []) as Node[]) if (r.RoleSpec?.roletype === 'ROLESPEC_CSTRING') tasks.roles.add(r.RoleSpec.rolename);
      for (const node of nodes) {
        tasks.add(node, 'SET LOCAL check_function_bodies = off');
        tasks.add(node, sql);
      }
      // Outside a block the record commits with the objects; inside one, once the block has (below).
      const record = created.length > 0 && !ctx.inTransactionBlock ? (internal: InternalClient) => recordObjects(internal, created) : undefined;
      return { tag, tasks, catalog: record };
    },
  });
  if (ctx.inTransactionBlock && created.length > 0) await whenCommitted(ctx, () => recordObjects(coordinatorPool(ctx), created));
  if (stmt.DropStmt) await whenCommitted(ctx, () => forgetDroppedRecords(ctx));
  return tag;
}
