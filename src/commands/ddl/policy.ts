/**
 * Row-level security policies on distributed and reference tables after
 * distribution: CREATE POLICY, ALTER POLICY, ALTER POLICY … RENAME TO and
 * DROP POLICY reach every shard placement in the same distributed commit as
 * the coordinator table (propagate.ts), so PostgreSQL enforces the same
 * policy on each shard as on a single server (DESIGN.md decision 9).
 * (ENABLE / DISABLE / FORCE / NO FORCE ROW LEVEL SECURITY are ALTER TABLE
 * subcommands, alter-table.ts.)
 *
 * How one statement runs:
 *
 *   refuse subqueries in USING / WITH CHECK (Citus's rule: a subquery on a
 *        │   shard would read the coordinator's name, not a co-located shard)
 *   client: the statement on the coordinator table, as the client
 *        │   ── PostgreSQL checks ownership and resolves roles and names
 *   read the resulting policy from pg_policy in the client's transaction
 *   per shard: DROP POLICY IF EXISTS + CREATE POLICY built from that state
 *        │   (or RENAME / DROP), as the client, on every placement
 *   commitTwoPhase
 *
 * Building the shard's policy from the coordinator's state rather than from
 * the client's text means ALTER POLICY's partial changes (only TO, only
 * USING) come out complete, CURRENT_USER in TO is already a name, and a
 * shard that missed an earlier change is repaired. The expressions are
 * pg_get_expr's, whose column references are unqualified; a reference that
 * still names the table (a whole-row `t.*`) is pointed at the shard through
 * the parse tree, never by text search.
 */
import { PgError } from '../../protocol/errors.js';
import { parseSql, type Node } from '../../sql/parse.js';
import { someNode, walkTree } from '../../sql/tree-walk.js';
import { quoteIdent, quoteQualified } from '../../sql/quote.js';
import { shardName } from '../../metadata/shard-name.js';
import type { Catalog, DistributedTable, Shard } from '../../metadata/types.js';
import { createPolicyStatement } from '../shard-ddl.js';
import { parseTextArray, type PolicyDefinition } from '../table-definition.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, ShardTasks, type UtilityContext } from './propagate.js';
import { resolveRelationOid } from './resolve.js';
import { stringList } from './tree.js';

/** Whether `stmt` is a policy statement this module handles. */
export function isPolicyStatement(stmt: Node): boolean {
  if (stmt.CreatePolicyStmt || stmt.AlterPolicyStmt) return true;
  if (stmt.RenameStmt) return stmt.RenameStmt.renameType === 'OBJECT_POLICY';
  if (stmt.DropStmt) return stmt.DropStmt.removeType === 'OBJECT_POLICY';
  return false;
}

/** Applies a policy statement to the coordinator table and every shard; returns the command tag. */
export async function runPolicyStatement(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  if (stmt.CreatePolicyStmt) return definePolicy(ctx, catalog, statement, stmt.CreatePolicyStmt, 'CREATE POLICY');
  if (stmt.AlterPolicyStmt) return definePolicy(ctx, catalog, statement, stmt.AlterPolicyStmt, 'ALTER POLICY');
  if (stmt.RenameStmt) return renamePolicy(ctx, catalog, statement, stmt.RenameStmt);
  return dropPolicy(ctx, catalog, statement, stmt.DropStmt);
}

async function tableOf(ctx: UtilityContext, catalog: Catalog, names: string[]): Promise<DistributedTable | undefined> {
  const oid = await resolveRelationOid(ctx, names);
  return oid === null ? undefined : catalog.tablesById.get(oid);
}

function rangeVarNames(rv: Node): string[] {
  return [rv.catalogname, rv.schemaname, rv.relname].filter((n): n is string => typeof n === 'string' && n !== '');
}

function containsSubLink(o: Node): boolean {
  return someNode(o, (n) => !!n.SubLink);
}

/** Citus's rule: policy expressions on distributed tables may not contain subqueries. */
function checkExpressions(policy: Node, what: string): void {
  if (!containsSubLink(policy.qual) && !containsSubLink(policy.with_check)) return;
  throw new PgError({
    code: '0A000',
    message: what === 'CREATE POLICY' ? 'cannot create policy' : 'cannot alter policy',
    detail: 'Subqueries are not supported in policies on distributed tables',
  });
}

/** The policy as the client's transaction sees it now (after the statement), or null. */
async function readPolicy(ctx: UtilityContext, relid: number, name: string): Promise<PolicyDefinition | null> {
  const r = await ctx.runAsClient(
    `SELECT p.polname, p.polcmd, p.polpermissive,
            (SELECT pg_catalog.array_agg(CASE WHEN x <> 0 THEN pg_catalog.pg_get_userbyid(x) END) FROM pg_catalog.unnest(p.polroles) x)::text,
            pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
     FROM pg_catalog.pg_policy p WHERE p.polrelid = $1 AND p.polname = $2`,
    [String(relid), name],
  );
  const p = r.rows[0];
  if (!p) return null;
  return { name: p[0]!, command: p[1]!, permissive: p[2] === 't', roles: parseTextArray(p[3]), using: p[4], withCheck: p[5] };
}

/** Points column references qualified by the table's name (`t.*`, `s.t.c`) at the shard. Returns whether any did. */
function pointColumnsAtShard(expr: Node, table: DistributedTable, shard: string): boolean {
  let changed = false;
  walkTree(expr, (o) => {
    const fields: Node[] | undefined = o.ColumnRef?.fields;
    if (fields && fields.length >= 2) {
      const names = fields.map((f) => f.String?.sval as string | undefined);
      // The last field is the column (or *); the one before it names the table.
      const tableAt = fields.length - 2;
      const schemaOk = tableAt === 0 || names[tableAt - 1] === table.schema;
      if (names[tableAt] === table.name && schemaOk) {
        fields[tableAt] = { String: { sval: shard } };
        changed = true;
      }
    }
  });
  return changed;
}

/** CREATE POLICY for one shard, with references to the table's own name pointed at the shard. */
function shardPolicyStatement(table: DistributedTable, shard: Shard, policy: PolicyDefinition): string {
  const name = shardName(table.name, shard.shardId);
  const text = createPolicyStatement(quoteQualified(table.schema, name), policy);
  const tree = structuredClone(parseSql(text).stmts[0]!.stmt) as Node;
  const create = tree.CreatePolicyStmt;
  const a = pointColumnsAtShard(create.qual, table, name);
  const b = pointColumnsAtShard(create.with_check, table, name);
  return a || b ? deparseStatement(tree, 'CREATE POLICY') : text;
}

function shardTable(table: DistributedTable, shard: Shard): string {
  return quoteQualified(table.schema, shardName(table.name, shard.shardId));
}

/** Adds `build(shard)` on every placement of every shard of `table`. */
function everyShard(table: DistributedTable, build: (shard: Shard) => string): ShardTasks {
  const tasks = new ShardTasks();
  for (const shard of table.shards) {
    const sql = build(shard);
    for (const p of shard.placements) tasks.add(p.node, sql);
  }
  return tasks;
}

/** CREATE POLICY and ALTER POLICY: the shard's policy is rebuilt from the coordinator's. */
async function definePolicy(ctx: UtilityContext, catalog: Catalog, statement: string, policy: Node, what: string): Promise<string> {
  const table = await tableOf(ctx, catalog, rangeVarNames(policy.table));
  if (!table) return runLocally(ctx, statement);
  checkExpressions(policy, what);
  const name: string = policy.policy_name;
  return runTransactionalDdl(ctx, {
    what,
    apply: async () => {
      const r = await ctx.runAsClient(statement);
      const state = await readPolicy(ctx, table.relationId, name);
      if (!state) throw new PgError({ code: 'XX000', message: `policy "${name}" not found after ${what}` });
      const tasks = everyShard(table, (shard) => {
        const drop = `DROP POLICY IF EXISTS ${quoteIdent(name)} ON ${shardTable(table, shard)}`;
        return `${drop};\n${shardPolicyStatement(table, shard, state)}`;
      });
      for (const role of state.roles) if (role) tasks.roles.add(role);
      return { tag: r.command, tasks };
    },
  });
}

/** ALTER POLICY … ON t RENAME TO … */
async function renamePolicy(ctx: UtilityContext, catalog: Catalog, statement: string, rename: Node): Promise<string> {
  const table = await tableOf(ctx, catalog, rangeVarNames(rename.relation));
  if (!table) return runLocally(ctx, statement);
  const tasks = everyShard(table, (shard) => `ALTER POLICY ${quoteIdent(rename.subname)} ON ${shardTable(table, shard)} RENAME TO ${quoteIdent(rename.newname)}`);
  return runTransactionalDdl(ctx, { what: 'ALTER POLICY', apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}

/** DROP POLICY [IF EXISTS] p ON t: gone from every shard (IF EXISTS there, so a shard that lacks it does not block). */
async function dropPolicy(ctx: UtilityContext, catalog: Catalog, statement: string, drop: Node): Promise<string> {
  const object = stringList((drop.objects as Node[])[0]);
  const name = object[object.length - 1]!;
  const table = await tableOf(ctx, catalog, object.slice(0, -1));
  if (!table) return runLocally(ctx, statement);
  const tasks = everyShard(table, (shard) => `DROP POLICY IF EXISTS ${quoteIdent(name)} ON ${shardTable(table, shard)}`);
  return runTransactionalDdl(ctx, { what: 'DROP POLICY', apply: async () => ({ tag: (await ctx.runAsClient(statement)).command, tasks }) });
}
