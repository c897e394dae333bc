/**
 * ALTER TABLE (and ALTER TABLE ... RENAME) on distributed and reference
 * tables: the statement runs on the coordinator table in the client's
 * transaction, then a copy of its parse tree, rewritten per shard, runs on
 * every placement, all in one distributed commit (propagate.ts).
 *
 * Per shard the rewrite points the table at `<table>_<shardid>`, a foreign
 * key's referenced table at the shard holding the same hash range (or the
 * reference table's shard), and names every constraint `<name>_<shardid>`.
 * Constraints the client left unnamed get the name PostgreSQL chose on the
 * coordinator (matched by kind and columns among the constraints the
 * statement added), so later DROP/RENAME CONSTRAINT finds them on the shards.
 *
 * Sequences stay on the coordinator (as in shard-ddl.ts): serial becomes the
 * plain integer type on the shards, nextval() defaults are left out (SET
 * DEFAULT nextval becomes DROP DEFAULT). Adding such a column to a table with
 * rows is refused, as Citus does — existing rows would have no value.
 *
 * Citus's rules (validate.ts) are checked before anything reaches a worker.
 * A new column's type, a new default's or CHECK's function that only the
 * coordinator has are created on every worker first (distributed-objects.ts).
 */
import { PgError } from '../../protocol/errors.js';
import type { Node } from '../../sql/parse.js';
import { quoteQualified } from '../../sql/quote.js';
import { shardName } from '../../metadata/shard-name.js';
import type { Catalog, DistributedTable } from '../../metadata/types.js';
import { ensureObjectsOnWorkers } from '../distributed-objects.js';
import { directTableReferences } from '../object-dependencies.js';
import { deparseStatement } from './deparse.js';
import { runLocally, runTransactionalDdl, ShardTasks, type UtilityContext } from './propagate.js';
import { resolveRangeVars, tableConstraints, type ConstraintRow } from './resolve.js';
import { alterSubcommandName, callsNextval, objectTypeName, pointAtShard, rangeVarKey, rangeVars, shardAt, stringList } from './tree.js';
import { checkAddedConstraints, checkDistributionColumnUntouched } from './validate.js';

/** Subcommands that mean the same on a shard as on the coordinator table (after renaming). */
const SUPPORTED = new Set([
  'AT_AddColumn', 'AT_DropColumn', 'AT_ColumnDefault', 'AT_SetNotNull', 'AT_DropNotNull', 'AT_AddConstraint',
  'AT_DropConstraint', 'AT_ValidateConstraint', 'AT_AlterColumnType', 'AT_SetStatistics', 'AT_SetStorage',
  'AT_SetCompression', 'AT_SetOptions', 'AT_ResetOptions', 'AT_SetRelOptions', 'AT_ResetRelOptions', 'AT_ChangeOwner',
  'AT_EnableRowSecurity', 'AT_DisableRowSecurity', 'AT_ForceRowSecurity', 'AT_NoForceRowSecurity',
]);

const CONSTRAINT_TYPES: Record<string, string> = {
  CONSTR_PRIMARY: 'p', CONSTR_UNIQUE: 'u', CONSTR_CHECK: 'c', CONSTR_FOREIGN: 'f', CONSTR_EXCLUSION: 'x',
};

const SERIAL_TYPES: Record<string, string> = {
  smallserial: 'int2', serial2: 'int2', serial: 'int4', serial4: 'int4', bigserial: 'int8', serial8: 'int8',
};

function unsupported(what: string, table: DistributedTable): PgError {
  const kind = table.method === 'reference' ? 'reference table' : 'distributed table';
  return new PgError({ code: '0A000', message: `${what} on ${kind} "${table.name}" is not supported` });
}

/** A named-object constraint of the statement, with the columns it names when the syntax says. */
interface ConstraintSite {
  node: Node;
  type: string;
  columns: string[] | null;
}

/** Constraints in the statement, in tree order (the same order in every clone). */
function constraintSites(alter: Node): ConstraintSite[] {
  const sites: ConstraintSite[] = [];
  const add = (node: Node, column: string | null) => {
    const type = CONSTRAINT_TYPES[node.contype];
    if (!type) return;
    const listed = node.keys ?? node.fk_attrs;
    const columns = listed ? stringList(listed) : column !== null && type !== 'c' ? [column] : null;
    sites.push({ node, type, columns });
  };
  for (const c of alter.cmds as Node[]) {
    const cmd = c.AlterTableCmd;
    if (cmd.subtype === 'AT_AddConstraint' && cmd.def?.Constraint) add(cmd.def.Constraint, null);
    if (cmd.subtype === 'AT_AddColumn') for (const k of cmd.def.ColumnDef.constraints ?? []) if (k.Constraint) add(k.Constraint, cmd.def.ColumnDef.colname);
  }
  return sites;
}

/** The coordinator's name of each constraint site (null: the coordinator created none, e.g. IF NOT EXISTS). */
function coordinatorNames(sites: ConstraintSite[], added: ConstraintRow[]): Array<string | null> {
  const pool = added.filter((a) => !sites.some((s) => s.node.conname === a.name));
  return sites.map((s) => {
    if (s.node.conname) return s.node.conname as string;
    const candidates = pool.filter((a) => a.type === s.type);
    const same = s.columns && candidates.find((a) => a.columnNames.join('\u0000') === s.columns!.join('\u0000'));
    const chosen = same || candidates[0];
    if (!chosen) return null;
    pool.splice(pool.indexOf(chosen), 1);
    return chosen.name;
  });
}

/** Leaves sequences on the coordinator: serial → integer type, no nextval() default. True if the column used one. */
function withoutSequence(column: Node): boolean {
  let uses = false;
  const names: Node[] = column.typeName?.names ?? [];
  const last = names[names.length - 1]?.String?.sval;
  if (names.length === 1 && last && SERIAL_TYPES[last]) {
    column.typeName.names = [{ String: { sval: 'pg_catalog' } }, { String: { sval: SERIAL_TYPES[last] } }];
    // serial implies NOT NULL, as it does on the coordinator.
    const constraints: Node[] = column.constraints ?? [];
    if (!constraints.some((k) => k.Constraint?.contype === 'CONSTR_NOTNULL')) column.constraints = [...constraints, { Constraint: { contype: 'CONSTR_NOTNULL' } }];
    uses = true;
  }
  if (column.constraints) {
    const kept = (column.constraints as Node[]).filter((k) => !(k.Constraint?.contype === 'CONSTR_DEFAULT' && callsNextval(k.Constraint.raw_expr)));
    if (kept.length !== column.constraints.length) uses = true;
    if (kept.length > 0) column.constraints = kept;
    else delete column.constraints;
  }
  return uses;
}

/** Subcommands that can make the table depend on objects it did not use before (types, collations, functions). */
const NEW_OBJECT_SUBCOMMANDS = new Set(['AT_AddColumn', 'AT_AlterColumnType', 'AT_AddConstraint', 'AT_ColumnDefault']);

function usesNewObjects(alter: Node): boolean {
  return (alter.cmds as Node[]).some((c) => NEW_OBJECT_SUBCOMMANDS.has(c.AlterTableCmd.subtype));
}

/** Checks the subcommands before anything runs; returns the roles the shards need (new owner). */
function checkSubcommands(alter: Node, table: DistributedTable): string[] {
  const roles: string[] = [];
  for (const c of alter.cmds as Node[]) {
    const cmd = c.AlterTableCmd;
    if (!SUPPORTED.has(cmd.subtype)) throw unsupported(`ALTER TABLE ... ${alterSubcommandName(cmd.subtype)}`, table);
    checkDistributionColumnUntouched(table, cmd);
    if (cmd.subtype === 'AT_AddColumn') {
      for (const k of cmd.def.ColumnDef.constraints ?? []) {
        if (k.Constraint?.contype === 'CONSTR_IDENTITY') throw unsupported('ALTER TABLE ... ADD COLUMN ... GENERATED AS IDENTITY', table);
      }
    }
    if (cmd.subtype === 'AT_ChangeOwner' && cmd.newowner?.RoleSpec?.roletype === 'ROLESPEC_CSTRING') roles.push(cmd.newowner.RoleSpec.rolename);
  }
  return roles;
}

/** One shard's copy of the statement. Returns whether it adds a column that draws from a sequence. */
function rewriteForShard(
  alter: Node,
  index: number,
  resolved: Map<string, DistributedTable>,
  names: Array<string | null>,
): boolean {
  const table = resolved.get(rangeVarKey(alter.relation))!;
  for (const rv of rangeVars(alter)) {
    const t = resolved.get(rangeVarKey(rv));
    if (t) pointAtShard(rv, t, shardAt(t, index));
  }
  const shardId = shardAt(table, index).shardId;
  constraintSites(alter).forEach((site, i) => {
    const name = names[i];
    if (name) site.node.conname = shardName(name, shardId);
    if (site.node.indexname) site.node.indexname = shardName(site.node.indexname, shardId);
  });
  let usesSequence = false;
  for (const c of alter.cmds as Node[]) {
    const cmd = c.AlterTableCmd;
    if ((cmd.subtype === 'AT_DropConstraint' || cmd.subtype === 'AT_ValidateConstraint') && cmd.name) cmd.name = shardName(cmd.name, shardId);
    if (cmd.subtype === 'AT_ColumnDefault' && cmd.def && callsNextval(cmd.def)) delete cmd.def;
    if (cmd.subtype === 'AT_AddColumn' && withoutSequence(cmd.def.ColumnDef)) usesSequence = true;
  }
  return usesSequence;
}

function notEmptyError(): PgError {
  return new PgError({
    code: '0A000',
    message: "cannot add a column involving DEFAULT nextval('..') because the table is not empty",
    hint: "You can first call ALTER TABLE .. ADD COLUMN .. smallint/int/bigint\nThen set the default by ALTER TABLE .. ALTER COLUMN .. SET DEFAULT nextval('..')",
  });
}

export async function alterTable(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const alter = stmt.AlterTableStmt;
  const resolved = await resolveRangeVars(ctx, catalog, rangeVars(alter));
  const table = resolved.get(rangeVarKey(alter.relation));
  if (!table) {
    const referenced = [...resolved.values()][0];
    if (!referenced) return runLocally(ctx, statement);
    if (referenced.method === 'hash') {
      throw new PgError({
        code: '0A000',
        message: 'cannot create foreign key constraint since foreign keys from reference tables and local tables to distributed tables are not supported',
        detail: 'Reference tables and local tables can only have foreign keys to reference tables and local tables',
      });
    }
    throw unsupported('a foreign key from a local table', referenced);
  }
  if (alter.objtype !== 'OBJECT_TABLE') throw unsupported(`ALTER ${objectTypeName(alter.objtype)}`, table);
  const roles = checkSubcommands(alter, table);
  return runTransactionalDdl(ctx, {
    what: 'ALTER TABLE',
    notify: true,
    apply: async () => {
      const before = new Set((await tableConstraints(ctx, table.relationId)).map((c) => c.oid));
      const r = await ctx.runAsClient(statement);
      if (usesNewObjects(alter)) {
        // A type, collation or function only the coordinator has (created before any worker) reaches the workers first.
        await ensureObjectsOnWorkers(ctx, await directTableReferences({ query: (sql, params) => ctx.runAsClient(sql, params) }, [table.relationId]));
      }
      const added = await tableConstraints(ctx, table.relationId, before);
      await checkAddedConstraints(ctx, catalog, table, added);
      const names = coordinatorNames(constraintSites(alter), added);
      const tasks = new ShardTasks();
      for (const role of roles) tasks.roles.add(role);
      table.shards.forEach((shard, i) => {
        const clone = structuredClone({ AlterTableStmt: alter });
        const usesSequence = rewriteForShard(clone.AlterTableStmt, i, resolved, names);
        const sql = deparseStatement(clone, 'ALTER TABLE');
        for (const p of shard.placements) {
          if (usesSequence) tasks.guard(p.node, `SELECT 1 FROM ONLY ${quoteQualified(table.schema, shardName(table.name, shard.shardId))} LIMIT 1`, notEmptyError());
          tasks.add(p.node, sql);
        }
      });
      return { tag: r.command, tasks };
    },
  });
}

/** ALTER TABLE ... RENAME [COLUMN | CONSTRAINT] ... TO ... */
export async function renameTable(ctx: UtilityContext, catalog: Catalog, statement: string, stmt: Node): Promise<string> {
  const rename = stmt.RenameStmt;
  const resolved = await resolveRangeVars(ctx, catalog, [rename.relation]);
  const table = resolved.get(rangeVarKey(rename.relation));
  if (!table) return runLocally(ctx, statement);
  const kind = rename.renameType as string;
  const supported = kind === 'OBJECT_TABLE' || kind === 'OBJECT_TABCONSTRAINT' || (kind === 'OBJECT_COLUMN' && rename.relationType === 'OBJECT_TABLE');
  if (!supported) throw unsupported(`ALTER ${objectTypeName(kind)} ... RENAME`, table);
  return runTransactionalDdl(ctx, {
    what: 'ALTER TABLE ... RENAME',
    notify: true,
    apply: async () => {
      const r = await ctx.runAsClient(statement);
      const tasks = new ShardTasks();
      for (const shard of table.shards) {
        const clone = structuredClone({ RenameStmt: rename });
        const s = clone.RenameStmt;
        pointAtShard(s.relation, table, shard);
        if (kind === 'OBJECT_TABLE') s.newname = shardName(s.newname, shard.shardId);
        if (kind === 'OBJECT_TABCONSTRAINT') {
          s.subname = shardName(s.subname, shard.shardId);
          s.newname = shardName(s.newname, shard.shardId);
        }
        const sql = deparseStatement(clone, 'ALTER TABLE ... RENAME');
        for (const p of shard.placements) tasks.add(p.node, sql);
      }
      return { tag: r.command, tasks };
    },
  });
}
