/**
 * The two-phase-commit recovery loop: every few seconds, for each database
 * this coordinator has served, resolve what a crash left behind (a prepared
 * transaction with a commit record is committed, one without is rolled
 * back; transactions in flight are never touched — see
 * transaction/recovery.ts). Runs quietly; a failing round is retried at the
 * next tick.
 */
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { recoverPreparedTransactions } from '../transaction/recovery.js';
import { DatabaseLoop } from './database-loop.js';

export class RecoveryLoop extends DatabaseLoop {
  constructor(pools: NodePools, config: { coordinator: NodeAddress }, intervalMs = 5000) {
    super(intervalMs, (database) => recoverPreparedTransactions(pools, config, database));
  }
}
