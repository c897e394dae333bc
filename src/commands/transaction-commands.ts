/**
 * Citus's transaction-maintenance functions: `recover_prepared_transactions()`
 * runs one round of two-phase-commit recovery on demand and returns how many
 * prepared transactions it resolved; `citus_lock_waits()` lists the lock
 * waits of every node (what the distributed deadlock detector looks at).
 */
import { recoverPreparedTransactions } from '../transaction/recovery.js';
import { collectLockWaits } from '../transaction/deadlock-detection.js';
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
  {
    // Citus's view of current lock waits across the cluster, as a function; gpid = nodeid·10¹⁰ + pid.
    // waiting/blocking_transaction are pgweave's distributed transaction tags (NULL: not distributed).
    name: 'citus_lock_waits',
    params: [],
    returns: [
      { name: 'waiting_gpid', typeOid: TYPE_OID.int8 },
      { name: 'blocking_gpid', typeOid: TYPE_OID.int8 },
      { name: 'blocked_statement', typeOid: TYPE_OID.text },
      { name: 'current_statement_in_blocking_process', typeOid: TYPE_OID.text },
      { name: 'waiting_nodeid', typeOid: TYPE_OID.int4 },
      { name: 'blocking_nodeid', typeOid: TYPE_OID.int4 },
      { name: 'waiting_transaction', typeOid: TYPE_OID.int8 },
      { name: 'blocking_transaction', typeOid: TYPE_OID.int8 },
    ],
    setReturning: true,
    async run(_args, ctx) {
      await requireSuperuser(ctx, 'citus_lock_waits');
      const catalog = await ctx.metadata.get(ctx.database);
      const waits = await collectLockWaits(ctx.pools, catalog.nodes.filter((n) => n.isActive), ctx.database);
      const gpid = (nodeId: number, pid: number) => String(BigInt(nodeId) * 10_000_000_000n + BigInt(pid));
      return waits.map((w) => [
        gpid(w.nodeId, w.waitingPid),
        gpid(w.nodeId, w.blockingPid),
        w.waitingStatement,
        w.blockingStatement,
        String(w.nodeId),
        String(w.nodeId),
        w.waitingTag === null ? null : String(w.waitingTag),
        w.blockingTag === null ? null : String(w.blockingTag),
      ]);
    },
  },
];
