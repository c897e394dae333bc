/**
 * Citus's transaction-maintenance functions: `recover_prepared_transactions()`
 * runs one round of two-phase-commit recovery on demand and returns how many
 * prepared transactions it resolved.
 */
import { recoverPreparedTransactions } from '../transaction/recovery.js';
import { TYPE_OID, type CommandDefinition } from './command-types.js';
import { requireSuperuser } from './common.js';

export const TRANSACTION_COMMANDS: CommandDefinition[] = [
  {
    name: 'recover_prepared_transactions',
    params: [],
    returns: [{ name: 'recover_prepared_transactions', typeOid: TYPE_OID.int4 }],
    setReturning: false,
    async run(_args, ctx) {
      await requireSuperuser(ctx, 'recover_prepared_transactions');
      const r = await recoverPreparedTransactions(ctx.pools, ctx.config, ctx.database);
      return [[String(r.committed + r.rolledBack)]];
    },
  },
];
