/**
 * Citus's table functions: create_distributed_table, create_reference_table,
 * undistribute_table (signatures and defaults as in Citus 12). The work is in
 * distribute-table.ts and undistribute-table.ts.
 */
import { PgError } from '../protocol/errors.js';
import { TYPE_OID, voidResult, type CommandDefinition } from './command-types.js';
import { parseBool, parseInt32 } from './common.js';
import { distributeTable } from './distribute-table.js';
import { undistributeTable } from './undistribute-table.js';

const DISTRIBUTION_TYPES = new Set(['hash', 'append', 'range']);

const createDistributedTable: CommandDefinition = {
  name: 'create_distributed_table',
  params: [
    { name: 'table_name', type: 'regclass' },
    { name: 'distribution_column', type: 'text' },
    { name: 'distribution_type', type: 'citus.distribution_type', default: 'hash' },
    { name: 'colocate_with', type: 'text', default: 'default' },
    { name: 'shard_count', type: 'integer', default: null },
  ],
  returns: [{ name: 'create_distributed_table', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    const type = args.get('distribution_type')!;
    if (!DISTRIBUTION_TYPES.has(type)) {
      throw new PgError({ code: '22P02', message: `invalid input value for enum citus.distribution_type: "${type}"` });
    }
    if (type !== 'hash') {
      throw new PgError({ code: '0A000', message: `${type} distribution is not supported`, hint: "Use distribution_type => 'hash'." });
    }
    const shardCount = args.get('shard_count');
    await distributeTable(ctx, {
      table: args.get('table_name')!,
      method: 'hash',
      distributionColumn: args.get('distribution_column')!,
      colocateWith: args.get('colocate_with')!,
      shardCount: shardCount === null || shardCount === undefined ? null : parseInt32(shardCount, 'shard_count'),
    });
    return voidResult();
  },
};

const createReferenceTable: CommandDefinition = {
  name: 'create_reference_table',
  params: [{ name: 'table_name', type: 'regclass' }],
  returns: [{ name: 'create_reference_table', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    await distributeTable(ctx, { table: args.get('table_name')!, method: 'reference' });
    return voidResult();
  },
};

const undistribute: CommandDefinition = {
  name: 'undistribute_table',
  params: [
    { name: 'table_name', type: 'regclass' },
    { name: 'cascade_via_foreign_keys', type: 'boolean', default: 'false' },
  ],
  returns: [{ name: 'undistribute_table', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    await undistributeTable(ctx, args.get('table_name')!, parseBool(args.get('cascade_via_foreign_keys')!, 'cascade_via_foreign_keys'));
    return voidResult();
  },
};

export const TABLE_COMMANDS: CommandDefinition[] = [createDistributedTable, createReferenceTable, undistribute];
