/**
 * The commit of a client's distributed transaction (DESIGN.md decision 6),
 * with atomic visibility (commit-gate.ts):
 *
 *   read-only nodes: COMMIT (in parallel with the PREPAREs)
 *   PREPARE TRANSACTION gid_i on every written node ──any failure──▶ ROLLBACK PREPARED, error to the client
 *        │
 *   enter the gate (write mode) — unless pgweave.atomic_visibility is off
 *   [last agent: COMMIT one-phase — a participant that cannot be prepared]
 *   INSERT the commit records on the gate connection (autocommit)   ← the commit point
 *   COMMIT PREPARED gid_i everywhere (failures: recovery finishes them; the record says commit)
 *   leave the gate; the records of acknowledged gids are deleted before it opens
 *
 * Gids are `pgweave_<coordinatorid>_<epoch>_<txn>_<n>` and stay "in flight"
 * (recovery leaves them alone) from before the first PREPARE until the
 * COMMIT PREPAREDs have answered. The gate connection also holds this
 * process's liveness lock; a commit whose gate connection changed between
 * its PREPAREs and its commit point rolls back, because during the gap
 * another coordinator's recovery may have seen this process dead and rolled
 * its prepared transactions back.
 *
 * Losing the gate connection while the records are being written leaves the
 * outcome unknown: the client gets 40003 and recovery decides from the
 * record. The caller answers COMMIT once this resolves: by then every
 * COMMIT PREPARED has been acknowledged (or left to recovery).
 */
import { PgError } from '../protocol/errors.js';
import { quoteLiteral } from '../sql/quote.js';
import type { CommitGate, GateBatch } from './commit-gate.js';
import { faultPoint, faultsArmed } from './fault-injection.js';
import { allocateGids, releaseGids } from './two-phase-commit.js';

/** One node's open transaction, as the commit code drives it. */
export interface CommitNode {
  /** host:port, for messages. */
  label: string;
  /** Node group (the coordinator is 0), stored with the commit record. */
  groupId: number;
  /** Runs one statement in the node's session; resolves with the command tag, rejects with the error. */
  run(sql: string): Promise<string>;
  readonly lost: boolean;
  /**
   * Replaces PREPARE for a node that may turn out to have written nothing
   * (the coordinator, asked in parallel): 'committed' when it committed
   * one-phase as a read-only node instead of preparing.
   */
  prepare?(gid: string): Promise<'prepared' | 'committed'>;
}

export interface DistributedCommit {
  /** Nodes that wrote: prepared, then committed. */
  written: CommitNode[];
  /** Nodes that only read: committed one-phase, first. */
  readOnly: CommitNode[];
  /** A written node that cannot be prepared (temporary objects): committed one-phase before the commit point. */
  lastAgent: CommitNode | null;
  atomicVisibility: boolean;
}

export interface CommitStats {
  multiNode: number;
  unknownOutcome: number;
}

export const commitStats: CommitStats = { multiNode: 0, unknownOutcome: 0 };

async function settleEach<T>(items: readonly T[], fn: (item: T, i: number) => Promise<unknown>, between?: () => Promise<void>): Promise<PromiseSettledResult<unknown>[]> {
  if (!faultsArmed()) return Promise.allSettled(items.map(fn));
  // Fault tests: one after another, so "between two PREPAREs" is a real moment.
  const out: PromiseSettledResult<unknown>[] = [];
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && between) await between();
    try {
      out.push({ status: 'fulfilled', value: await fn(items[i]!, i) });
    } catch (reason) {
      out.push({ status: 'rejected', reason });
    }
  }
  return out;
}

function firstError(results: PromiseSettledResult<unknown>[]): unknown {
  return (results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined)?.reason;
}

function asPgError(err: unknown, context: string): PgError {
  if (err instanceof PgError) return new PgError({ ...err.fields, severity: 'ERROR', detail: err.fields.detail ?? context });
  return new PgError({ code: 'XX000', message: `${context}: ${(err as Error)?.message ?? String(err)}` });
}

async function rollbackPrepared(nodes: readonly CommitNode[], gids: readonly string[], prepared: readonly boolean[]): Promise<void> {
  await Promise.allSettled(nodes.map((n, i) => (prepared[i] && !n.lost ? n.run(`ROLLBACK PREPARED ${quoteLiteral(gids[i]!)}`) : Promise.resolve())));
}

/** Commits `c` atomically (and, with the setting on, atomically visibly). See the module comment. */
export async function commitDistributed(gate: CommitGate, c: DistributedCommit): Promise<void> {
  commitStats.multiNode++;
  // The gate connection before anything is prepared: its liveness lock covers the whole protocol.
  const alive = await gate.connection();
  const gids = allocateGids(c.written.length);
  try {
    await faultPoint('before-prepare');
    const readOnlyDone = Promise.allSettled(c.readOnly.map((n) => n.run('COMMIT')));
    // A transaction in an aborted state answers PREPARE with ROLLBACK, not an error: only the PREPARE TRANSACTION tag means prepared.
    const readOnlyAfterAll = new Array<boolean>(c.written.length).fill(false);
    const prepare = await settleEach(
      c.written,
      async (n, i) => {
        if (n.prepare) {
          if ((await n.prepare(gids[i]!)) === 'committed') readOnlyAfterAll[i] = true;
          return;
        }
        const tag = await n.run(`PREPARE TRANSACTION ${quoteLiteral(gids[i]!)}`);
        if (tag !== 'PREPARE TRANSACTION') {
          throw new PgError({ code: '40000', message: `the transaction on ${n.label} was rolled back before it could be prepared` });
        }
      },
      () => faultPoint('between-prepares'),
    );
    const prepared = prepare.map((r, i) => r.status === 'fulfilled' && !readOnlyAfterAll[i]);
    const failedPrepare = prepare.some((r) => r.status === 'rejected');
    const readOnlyFailure = firstError(await readOnlyDone);
    if (failedPrepare || readOnlyFailure) {
      await rollbackPrepared(c.written, gids, prepared);
      const i = prepare.findIndex((r) => r.status === 'rejected');
      throw asPgError(firstError(prepare) ?? readOnlyFailure, i >= 0 ? `could not prepare the transaction on ${c.written[i]!.label}` : 'could not commit a read-only node');
    }
    let batch: GateBatch | null = null;
    if (c.atomicVisibility) {
      try {
        batch = await gate.enterWrite();
      } catch (err) {
        await rollbackPrepared(c.written, gids, prepared);
        throw asPgError(err, 'could not enter the commit gate');
      }
    }
    const committed: string[] = [];
    try {
      if (gate.liveConnection !== alive) {
        await rollbackPrepared(c.written, gids, prepared);
        throw new PgError({ code: '08006', message: 'lost the connection to the coordinator PostgreSQL before the commit point; the distributed transaction was rolled back' });
      }
      if (c.lastAgent) {
        // Inside the gate: its changes become visible now, in the commit phase.
        try {
          const tag = await c.lastAgent.run('COMMIT');
          if (tag !== 'COMMIT') throw new PgError({ code: '40000', message: `the transaction on ${c.lastAgent.label} was rolled back` });
        } catch (err) {
          await rollbackPrepared(c.written, gids, prepared);
          throw asPgError(err, `could not commit on ${c.lastAgent.label}`);
        }
      }
      try {
        await gate.writeRecords(alive, gids.flatMap((gid, i) => (prepared[i] ? [{ gid, groupId: c.written[i]!.groupId }] : [])));
      } catch (err) {
        if (alive.closed) {
          commitStats.unknownOutcome++;
          throw new PgError({
            code: '40003',
            message: 'lost the connection to the coordinator PostgreSQL while committing a distributed transaction; its outcome is unknown',
            detail: 'Recovery commits the prepared transactions if the commit record was written, and rolls them back otherwise.',
          });
        }
        await rollbackPrepared(c.written, gids, prepared);
        throw asPgError(err, 'could not write the commit record; the distributed transaction was rolled back');
      }
      // ← the commit point
      await faultPoint('after-record');
      const toCommit = c.written.map((n, i) => ({ n, gid: gids[i]! })).filter((_, i) => prepared[i]);
      const done = await settleEach(
        toCommit,
        ({ n, gid }) => n.run(`COMMIT PREPARED ${quoteLiteral(gid)}`),
        () => faultPoint('between-commit-prepared'),
      );
      done.forEach((r, i) => {
        if (r.status === 'fulfilled') committed.push(toCommit[i]!.gid);
      });
    } finally {
      if (batch) gate.leaveWrite(batch, committed);
      else gate.deleteRecords(committed);
    }
  } finally {
    releaseGids(gids);
  }
}
