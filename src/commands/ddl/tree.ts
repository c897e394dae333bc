/**
 * Small helpers over PostgreSQL parse trees (libpg-query's JSON) that the DDL
 * handlers share: finding the RangeVars a statement names, pointing a
 * RangeVar at a shard, qualified names from `List` nodes, and a readable
 * name for a statement kind, used in error messages ("CREATE TRIGGER",
 * "ALTER TABLE ... SET LOGGED").
 *
 * Rewrites always work on a structuredClone of the client's tree: the parse
 * cache (sql/parse.ts) hands the same tree to every statement with that text.
 */
import type { Node } from '../../sql/parse.js';
import { someNode, walkTree } from '../../sql/tree-walk.js';
import { shardName } from '../../metadata/shard-name.js';
import type { DistributedTable, Shard } from '../../metadata/types.js';

/** A RangeVar appears both wrapped (`{ RangeVar: {...} }`) and bare (RenameStmt.relation). */
export function isRangeVar(o: Node): boolean {
  return o !== null && typeof o === 'object' && typeof o.relname === 'string' && typeof o.relpersistence === 'string';
}

/** Every RangeVar object in the tree (the objects themselves, so a clone can be edited in place). */
export function rangeVars(tree: Node): Node[] {
  const found: Node[] = [];
  walkTree(tree, (o) => {
    if (isRangeVar(o)) found.push(o);
  });
  return found;
}

/** The key a RangeVar is resolved under: the name as written (schema or null, relation). */
export function nameKey(schema: string | null | undefined, name: string): string {
  return JSON.stringify([schema ?? null, name]);
}

export function rangeVarKey(rv: Node): string {
  return nameKey(rv.schemaname, rv.relname);
}

/** Points a RangeVar at a shard table (same schema as the distributed table). */
export function pointAtShard(rv: Node, table: DistributedTable, shard: Shard): void {
  delete rv.catalogname;
  rv.schemaname = table.schema;
  rv.relname = shardName(table.name, shard.shardId);
}

/** A fresh RangeVar naming a shard table. */
export function shardRangeVar(table: DistributedTable, shard: Shard, inh = true): Node {
  return { RangeVar: { schemaname: table.schema, relname: shardName(table.name, shard.shardId), inh, relpersistence: 'p' } };
}

/** `{ List: { items: [String…] } }` or a bare array of String nodes → the strings. */
export function stringList(node: Node): string[] {
  const items: Node[] = Array.isArray(node) ? node : (node?.List?.items ?? []);
  return items.map((i) => i?.String?.sval as string);
}

export function listOf(names: string[]): Node {
  return { List: { items: names.map((sval) => ({ String: { sval } })) } };
}

/** The shard of `table` that holds the same hash range as shard `index` of a co-located table. */
export function shardAt(table: DistributedTable, index: number): Shard {
  const shard = table.method === 'reference' ? table.shards[0] : table.shards[index];
  if (!shard) throw new Error(`table ${table.name} has no shard ${index}`);
  return shard;
}

/** Whether an expression calls nextval(): such defaults stay on the coordinator. */
export function callsNextval(expr: Node): boolean {
  return someNode(expr, (o) => {
    const names: Node[] | undefined = o.FuncCall?.funcname;
    return !!names && names[names.length - 1]?.String?.sval === 'nextval';
  });
}

const STATEMENT_NAMES: Record<string, string> = {
  IndexStmt: 'CREATE INDEX',
  AlterTableStmt: 'ALTER TABLE',
  RenameStmt: 'ALTER TABLE ... RENAME',
  TruncateStmt: 'TRUNCATE',
  VacuumStmt: 'VACUUM',
  CommentStmt: 'COMMENT',
  GrantStmt: 'GRANT',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreatePolicyStmt: 'CREATE POLICY',
  AlterPolicyStmt: 'ALTER POLICY',
  ViewStmt: 'CREATE VIEW',
  CreateStmt: 'CREATE TABLE',
  CreateTableAsStmt: 'CREATE TABLE AS',
  AlterObjectSchemaStmt: 'ALTER ... SET SCHEMA',
  AlterOwnerStmt: 'ALTER ... OWNER TO',
  CreateStatsStmt: 'CREATE STATISTICS',
  RuleStmt: 'CREATE RULE',
  LockStmt: 'LOCK',
  ClusterStmt: 'CLUSTER',
  ReindexStmt: 'REINDEX',
  CopyStmt: 'COPY',
  ExplainStmt: 'EXPLAIN',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  SecLabelStmt: 'SECURITY LABEL',
};

/** "CreateTrigStmt" → "CREATE TRIGGER"; unknown kinds by splitting the node name. */
export function statementName(stmt: Node): string {
  const kind = Object.keys(stmt ?? {})[0] ?? 'statement';
  if (kind === 'DropStmt') return 'DROP ' + objectTypeName(stmt.DropStmt.removeType);
  if (kind === 'VacuumStmt' && stmt.VacuumStmt.is_vacuumcmd === false) return 'ANALYZE';
  if (kind === 'GrantStmt' && stmt.GrantStmt.is_grant === false) return 'REVOKE';
  return STATEMENT_NAMES[kind] ?? splitWords(kind.replace(/Stmt$/, ''));
}

/** "OBJECT_MATVIEW" → "MATVIEW"; "OBJECT_FOREIGN_TABLE" → "FOREIGN TABLE". */
export function objectTypeName(objectType: string | undefined): string {
  return (objectType ?? 'OBJECT').replace(/^OBJECT_/, '').replace(/_/g, ' ');
}

/** "AT_SetLogged" → "SET LOGGED". */
export function alterSubcommandName(subtype: string): string {
  return splitWords(subtype.replace(/^AT_/, ''));
}

function splitWords(camel: string): string {
  return camel.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
}
