/**
 * Which utility statements change database objects that shards may depend
 * on — types (enum, composite, domain, range), collations, extensions and
 * functions — and so must change on every worker too, as Citus propagates
 * them. The planner routes these to DDL propagation whenever the database has
 * workers; src/commands/ddl/object-ddl.ts replays them there.
 *
 * Pure parse-tree reading, no I/O.
 */
import type { Node } from './parse.js';

/** Object types (ObjectType enum names) whose objects live on every node. */
const CLUSTER_OBJECT_TYPES = new Set([
  'OBJECT_TYPE',
  'OBJECT_DOMAIN',
  'OBJECT_COLLATION',
  'OBJECT_EXTENSION',
  'OBJECT_FUNCTION',
  'OBJECT_PROCEDURE',
  'OBJECT_ROUTINE',
  'OBJECT_ATTRIBUTE',
  'OBJECT_DOMCONSTRAINT',
]);

/** Statements that always concern one of those objects. */
const ALWAYS = new Set([
  'CreateEnumStmt',
  'CompositeTypeStmt',
  'CreateDomainStmt',
  'CreateRangeStmt',
  'AlterEnumStmt',
  'AlterDomainStmt',
  'AlterTypeStmt',
  'CreateExtensionStmt',
  'AlterExtensionStmt',
  'AlterExtensionContentsStmt',
  'CreateFunctionStmt',
  'AlterFunctionStmt',
]);

/** Whether `stmt` creates, changes or drops a type, collation, extension or function. */
export function isClusterObjectStatement(stmt: Node): boolean {
  const kind = Object.keys(stmt ?? {})[0];
  if (!kind) return false;
  if (ALWAYS.has(kind)) return true;
  const s = stmt[kind];
  switch (kind) {
    case 'DefineStmt':
      return s.kind === 'OBJECT_COLLATION' || s.kind === 'OBJECT_TYPE';
    case 'DropStmt':
      return CLUSTER_OBJECT_TYPES.has(s.removeType);
    case 'RenameStmt':
      return CLUSTER_OBJECT_TYPES.has(s.renameType);
    case 'AlterOwnerStmt':
    case 'AlterObjectSchemaStmt':
      return CLUSTER_OBJECT_TYPES.has(s.objectType);
    case 'AlterTableStmt':
      return s.objtype === 'OBJECT_TYPE'; // ALTER TYPE composite ADD/DROP/ALTER ATTRIBUTE
  }
  return false;
}
