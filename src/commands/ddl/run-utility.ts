/**
 * Entry point of DDL propagation: the session hands over every utility
 * statement that names a distributed or reference table (the planner's
 * `utility` route); this picks the handler for the statement kind. Each
 * handler resolves the names itself in the client's session (resolve.ts):
 * when nothing the statement names turns out to be distributed, it runs on
 * the coordinator unchanged, as it would without pgweave.
 *
 * Anything without a handler is refused with 0A000 naming the statement and
 * the table, before it runs anywhere: applied to the coordinator's (empty)
 * table alone it would silently diverge from the shards.
 */
import { PgError } from '../../protocol/errors.js';
import { initParser, type Node } from '../../sql/parse.js';
import { isClusterObjectStatement } from '../../sql/object-statements.js';
import type { DistributedTable } from '../../metadata/types.js';
import { alterTable, renameTable } from './alter-table.js';
import { createIndex, dropIndex } from './index-ddl.js';
import { alterIndex, commentOnIndex, renameIndex } from './index-alter.js';
import { objectStatement } from './object-ddl.js';
import { isPolicyStatement, runPolicyStatement } from './policy.js';
import type { UtilityContext } from './propagate.js';
import { comment, dropTable, grant, grantAllInSchema, setSchema, truncate, vacuum } from './table-ddl.js';
import { statementName } from './tree.js';

export type { UtilityContext } from './propagate.js';

/** Applies `statement` (parse tree `stmt`) to the coordinator and every shard; returns the command tag. */
export async function runDistributedUtility(ctx: UtilityContext, statement: string, stmt: Node, tables: DistributedTable[]): Promise<string> {
  await initParser();
  const catalog = await ctx.metadata.get(ctx.database);
  const kind = Object.keys(stmt ?? {})[0];
  if (isPolicyStatement(stmt)) return runPolicyStatement(ctx, catalog, statement, stmt);
  if (isClusterObjectStatement(stmt)) return objectStatement(ctx, catalog, statement, stmt);
  switch (kind) {
    case 'IndexStmt':
      return createIndex(ctx, catalog, statement, stmt);
    case 'AlterTableStmt':
      if (stmt.AlterTableStmt.objtype === 'OBJECT_INDEX') return alterIndex(ctx, catalog, statement, stmt);
      return alterTable(ctx, catalog, statement, stmt);
    case 'RenameStmt':
      if (stmt.RenameStmt.renameType === 'OBJECT_INDEX') return renameIndex(ctx, catalog, statement, stmt);
      return renameTable(ctx, catalog, statement, stmt);
    case 'AlterObjectSchemaStmt':
      return setSchema(ctx, catalog, statement, stmt);
    case 'TruncateStmt':
      return truncate(ctx, catalog, statement, stmt);
    case 'VacuumStmt':
      return vacuum(ctx, catalog, statement, stmt);
    case 'CommentStmt':
      if (stmt.CommentStmt.objtype === 'OBJECT_INDEX') return commentOnIndex(ctx, catalog, statement, stmt);
      return comment(ctx, catalog, statement, stmt);
    case 'GrantStmt':
      if (stmt.GrantStmt.targtype === 'ACL_TARGET_ALL_IN_SCHEMA') return grantAllInSchema(ctx, catalog, statement, stmt);
      return grant(ctx, catalog, statement, stmt);
    case 'DropStmt':
      if (stmt.DropStmt.removeType === 'OBJECT_INDEX') return dropIndex(ctx, catalog, statement, stmt);
      if (stmt.DropStmt.removeType === 'OBJECT_TABLE') return dropTable(ctx, catalog, statement, stmt);
      break;
  }
  throw unsupportedStatement(stmt, tables);
}

export function unsupportedStatement(stmt: Node, tables: DistributedTable[]): PgError {
  const table = tables[0];
  const on = table ? ` on ${table.method === 'reference' ? 'reference' : 'distributed'} table "${table.name}"` : ' on distributed tables';
  return new PgError({ code: '0A000', message: `${statementName(stmt)}${on} is not supported` });
}
