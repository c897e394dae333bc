/**
 * The SQL that makes a shard on a worker look like its coordinator table:
 * `<table>_<shardid>` in the same schema, same columns, types, collations,
 * NOT NULL, non-sequence defaults, generated columns, CHECK / PRIMARY KEY /
 * UNIQUE / EXCLUDE constraints and indexes renamed `<name>_<shardid>`, foreign
 * keys pointing at the co-located (or reference) shard, the owner, grants and
 * row-level security policies — so PostgreSQL's own checks hold on the
 * shard exactly as on the coordinator (DESIGN.md decision 9).
 *
 * Sequences and their defaults stay on the coordinator: the shards get no
 * nextval() defaults, the coordinator fills those values in.
 *
 * Definitions PostgreSQL printed (pg_get_indexdef, foreign keys) are renamed
 * through the real parser and deparser (decision 2), never by text search.
 */
import { deparseSync } from 'pgsql-deparser';
import { PgError } from '../protocol/errors.js';
import { initParser, parseSql, type Node } from '../sql/parse.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { shardName } from '../metadata/shard-name.js';
import type { Grant, PolicyDefinition, TableDefinition } from './table-definition.js';

export interface ShardRef {
  schema: string;
  name: string;
  shardId: number;
}

const PRIVILEGES = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'USAGE', 'CREATE']);
const POLICY_COMMANDS: Record<string, string> = { '*': 'ALL', r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE' };

/** Loads the parser; call before the statement builders. */
export function prepareShardDdl(): Promise<void> {
  return initParser();
}

export function qualifiedShardName(schema: string, table: string, shardId: number): string {
  return quoteQualified(schema, shardName(table, shardId));
}

function grantStatements(objectClause: string, grants: Grant[]): string[] {
  return grants.map((g) => {
    if (!PRIVILEGES.has(g.privilege)) throw new PgError({ code: 'XX000', message: `unexpected privilege ${g.privilege}` });
    const grantee = g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee);
    return `GRANT ${g.privilege} ON ${objectClause} TO ${grantee}${g.grantable ? ' WITH GRANT OPTION' : ''}`;
  });
}

/** The schema of a table on a worker: created when missing, with the coordinator's owner and grants. */
export function schemaStatements(def: TableDefinition): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(def.schema)} AUTHORIZATION ${quoteIdent(def.schemaOwner)}`,
    ...grantStatements(`SCHEMA ${quoteIdent(def.schema)}`, def.schemaGrants),
  ];
}

/** Every role a shard's definition names (owner, grantees, policy roles), for ensureRoles. */
export function rolesNeeded(def: TableDefinition): string[] {
  const roles = new Set<string>([def.owner, def.schemaOwner]);
  for (const g of [...def.grants, ...def.schemaGrants]) if (g.grantee) roles.add(g.grantee);
  for (const p of def.policies) for (const r of p.roles) if (r) roles.add(r);
  return [...roles];
}

/** CREATE TABLE for the shard, without constraints or indexes. */
export function createShardTableStatement(def: TableDefinition, shardId: number): string {
  const columns = def.columns.map((c) => {
    let text = `${quoteIdent(c.name)} ${c.sqlType}`;
    if (c.collateClause) text += ' ' + c.collateClause;
    if (c.generatedExpr !== null) text += ` GENERATED ALWAYS AS (${c.generatedExpr}) STORED`;
    else if (c.defaultExpr !== null) text += ` DEFAULT ${c.defaultExpr}`;
    if (c.notNull) text += ' NOT NULL';
    return text;
  });
  const unlogged = def.unlogged ? 'UNLOGGED ' : '';
  return `CREATE ${unlogged}TABLE ${qualifiedShardName(def.schema, def.name, shardId)} (${columns.join(', ')})`;
}

/**
 * Everything of the shard but its rows and foreign keys: table, owner,
 * constraints, indexes, grants, row-level security. Foreign keys come after
 * the rows (foreignKeyStatements): validating them once is cheaper than
 * checking row by row.
 */
export function createShardStatements(def: TableDefinition, shardId: number): string[] {
  const shard = qualifiedShardName(def.schema, def.name, shardId);
  const out = [createShardTableStatement(def, shardId), `ALTER TABLE ${shard} OWNER TO ${quoteIdent(def.owner)}`];
  for (const c of def.constraints) {
    if (c.type === 'f') continue;
    out.push(`ALTER TABLE ${shard} ADD CONSTRAINT ${quoteIdent(shardName(c.name, shardId))} ${c.definition}`);
  }
  for (const i of def.indexes) out.push(renameIndexDefinition(i.definition, shardId));
  out.push(...grantStatements(`TABLE ${shard}`, def.grants));
  if (def.rowSecurity) out.push(`ALTER TABLE ${shard} ENABLE ROW LEVEL SECURITY`);
  if (def.forceRowSecurity) out.push(`ALTER TABLE ${shard} FORCE ROW LEVEL SECURITY`);
  for (const p of def.policies) out.push(createPolicyStatement(shard, p));
  return out;
}

/** CREATE POLICY for the (quoted, qualified) shard `shard`, from the policy as pg_policy describes it. */
export function createPolicyStatement(shard: string, p: PolicyDefinition): string {
  const roles = p.roles.map((r) => (r === null ? 'PUBLIC' : quoteIdent(r))).join(', ') || 'PUBLIC';
  let text = `CREATE POLICY ${quoteIdent(p.name)} ON ${shard} AS ${p.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'}`;
  text += ` FOR ${POLICY_COMMANDS[p.command] ?? 'ALL'} TO ${roles}`;
  if (p.using !== null) text += ` USING (${p.using})`;
  if (p.withCheck !== null) text += ` WITH CHECK (${p.withCheck})`;
  return text;
}

/** CREATE INDEX text of the coordinator index, rewritten for shard `shardId`. */
export function renameIndexDefinition(indexDef: string, shardId: number): string {
  const tree = structuredClone(parseSql(indexDef)) as { stmts: Array<{ stmt: Node }> };
  const index = tree.stmts[0]?.stmt?.IndexStmt;
  if (!index) throw new PgError({ code: 'XX000', message: `unexpected index definition: ${indexDef}` });
  index.idxname = shardName(index.idxname, shardId);
  index.relation.relname = shardName(index.relation.relname, shardId);
  return deparseSync(tree as never);
}

/**
 * The foreign keys of shard `shardId`, each pointing at the shard of the
 * referenced table that holds the same hash range (or the reference table's
 * single shard), as `referencedShard` names it.
 */
export function foreignKeyStatements(def: TableDefinition, shardId: number, referencedShard: (relid: number) => ShardRef): string[] {
  const shard = qualifiedShardName(def.schema, def.name, shardId);
  const out: string[] = [];
  for (const c of def.constraints) {
    if (c.type !== 'f') continue;
    const sql = `ALTER TABLE ${shard} ADD CONSTRAINT ${quoteIdent(shardName(c.name, shardId))} ${c.definition}`;
    const tree = structuredClone(parseSql(sql)) as { stmts: Array<{ stmt: Node }> };
    const constraint = tree.stmts[0]?.stmt?.AlterTableStmt?.cmds?.[0]?.AlterTableCmd?.def?.Constraint;
    if (!constraint?.pktable) throw new PgError({ code: 'XX000', message: `unexpected foreign key definition: ${c.definition}` });
    const target = referencedShard(c.referencedRelid);
    constraint.pktable.schemaname = target.schema;
    constraint.pktable.relname = shardName(target.name, target.shardId);
    out.push(deparseSync(tree as never));
  }
  return out;
}

export function dropShardStatement(schema: string, table: string, shardId: number): string {
  return `DROP TABLE IF EXISTS ${qualifiedShardName(schema, table, shardId)} CASCADE`;
}
