/**
 * Citus's rules for constraints and indexes on distributed tables, with
 * Citus's messages (DESIGN.md decision 4). Uniqueness can only be enforced
 * shard by shard, so a UNIQUE / PRIMARY KEY / EXCLUDE constraint or unique
 * index must include the distribution column; a foreign key is enforced on
 * one node, so it must stay inside a shard group: between co-located tables
 * on the distribution column, or towards a reference table (which has a copy
 * on every node).
 *
 * Constraints are checked as pg_constraint has them after the statement ran
 * in the client's transaction, whatever syntax created them (table or column
 * constraint, USING INDEX); the transaction is rolled back on an error.
 */
import { PgError } from '../../protocol/errors.js';
import type { Node } from '../../sql/parse.js';
import type { Catalog, DistributedTable } from '../../metadata/types.js';
import type { UtilityContext } from './propagate.js';
import { distributionAttnum, type ConstraintRow } from './resolve.js';

function notSupported(message: string, detail?: string): PgError {
  return new PgError({ code: '0A000', message, detail });
}

const CANNOT_CREATE_FK = 'cannot create foreign key constraint';

/**
 * Checks constraints a statement added to `table`; returns the table each
 * foreign key references (by constraint oid), for pointing shard i at the
 * referenced shard.
 */
export async function checkAddedConstraints(
  ctx: UtilityContext,
  catalog: Catalog,
  table: DistributedTable,
  added: ConstraintRow[],
): Promise<Map<number, DistributedTable>> {
  const dist = await distributionAttnum(ctx, table);
  const referencedTables = new Map<number, DistributedTable>();
  for (const c of added) {
    if ((c.type === 'p' || c.type === 'u' || c.type === 'x') && dist !== null) {
      const at = c.columns.indexOf(dist);
      if (at < 0 || (c.type === 'x' && c.exclusionOperators[at] !== '=')) {
        throw notSupported(
          `cannot create constraint on "${table.name}"`,
          'Distributed relations cannot have UNIQUE, EXCLUDE, or PRIMARY KEY constraints that do not include the partition column (with an equality operator if EXCLUDE).',
        );
      }
    }
    if (c.type === 'f') referencedTables.set(c.oid, await checkForeignKey(ctx, catalog, table, dist, c));
  }
  return referencedTables;
}

async function checkForeignKey(ctx: UtilityContext, catalog: Catalog, table: DistributedTable, dist: number | null, c: ConstraintRow): Promise<DistributedTable> {
  const referenced = c.referencedRelid === table.relationId ? table : catalog.tablesById.get(c.referencedRelid);
  if (!referenced) {
    throw new PgError({ code: '42P16', message: CANNOT_CREATE_FK, detail: 'Referenced table must be a distributed table or a reference table.' });
  }
  if (table.method === 'reference') {
    if (referenced.method === 'reference') return referenced;
    throw notSupported(
      'cannot create foreign key constraint since foreign keys from reference tables and local tables to distributed tables are not supported',
      'Reference tables and local tables can only have foreign keys to reference tables and local tables',
    );
  }
  if (referenced.method === 'hash' && referenced.colocationId !== table.colocationId) {
    throw notSupported(
      'cannot create foreign key constraint since relations are not colocated or not referencing a reference table',
      'A distributed table can only have foreign keys if it is referencing another colocated hash distributed table or a reference table',
    );
  }
  const at = dist === null ? -1 : c.columns.indexOf(dist);
  if (at >= 0) {
    if (c.deleteAction === 'n' || c.deleteAction === 'd') {
      throw notSupported(CANNOT_CREATE_FK, 'SET NULL or SET DEFAULT is not supported in ON DELETE operation when distribution key is included in the foreign key constraint');
    }
    if (c.updateAction === 'n' || c.updateAction === 'd' || c.updateAction === 'c') {
      throw notSupported(CANNOT_CREATE_FK, 'SET NULL, SET DEFAULT or CASCADE is not supported in ON UPDATE operation when distribution key included in the foreign constraint.');
    }
  }
  if (referenced.method === 'hash') {
    const referencedDist = referenced === table ? dist : await distributionAttnum(ctx, referenced);
    if (at < 0 || c.referencedColumns[at] !== referencedDist) {
      throw notSupported(
        CANNOT_CREATE_FK,
        'Foreign keys are supported in two cases, either in between two colocated tables including partition column in the same ordinal in the both tables or from distributed to reference tables',
      );
    }
  }
  return referenced;
}

/** A unique index on a hash-distributed table must have the distribution column as one of its key columns. */
export function checkUniqueIndex(table: DistributedTable, index: Node): void {
  if (!index.unique || table.method !== 'hash') return;
  const keyColumns = ((index.indexParams ?? []) as Node[]).map((p) => p.IndexElem?.name).filter(Boolean);
  if (!keyColumns.includes(table.distributionColumn)) {
    throw notSupported('creating unique indexes on non-partition columns is currently unsupported');
  }
}

/** Citus refuses changing or dropping the distribution column: rows would have to move between shards. */
export function checkDistributionColumnUntouched(table: DistributedTable, cmd: Node): void {
  if (table.method !== 'hash' || cmd.name !== table.distributionColumn) return;
  if (cmd.subtype === 'AT_AlterColumnType') throw notSupported('cannot execute ALTER TABLE command involving partition column');
  if (cmd.subtype === 'AT_DropColumn') throw notSupported('cannot execute ALTER TABLE command dropping partition column');
}
