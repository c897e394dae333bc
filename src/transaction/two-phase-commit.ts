/**
 * Atomic commit across nodes (DESIGN.md decision 6), small enough to reuse:
 * catalog commands use it today, distributed transactions build on it.
 *
 * The caller holds one open transaction per participant node (workers) and
 * one on the coordinator PostgreSQL (usually carrying catalog changes).
 * commitTwoPhase then runs:
 *
 *   PREPARE TRANSACTION gid_i on every participant ──any failure──▶ ROLLBACK PREPARED the prepared, ROLLBACK coordinator
 *        │
 *   INSERT commit records (pgweave.transaction) + COMMIT on the coordinator
 *        │   (SQL failure ▶ roll back everything; connection lost ▶ outcome unknown, recovery decides)
 *        ▼   ← the commit point
 *   COMMIT PREPARED gid_i everywhere (failures are left to recovery: the record says commit)
 *        │
 *   DELETE the commit records
 *
 * Gids are `pgweave_<coordinatorid>_<epoch>_<txn>_<n>`: a random id and the
 * start time of this process, a per-process transaction counter and the
 * participant index. A gid is "in flight" from before its PREPARE until the
 * protocol has finished with it; recovery (recovery.ts) never touches
 * in-flight gids of this process, and never touches gids of another live
 * coordinator process — each process holds a session advisory lock keyed by
 * its coordinator id on the coordinator PostgreSQL for its whole life.
 */
import { randomInt } from 'node:crypto';
import { connectBackend } from '../pool/backend-connection.js';
import { InternalClient } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import { PgError } from '../protocol/errors.js';
import type { NodeAddress } from '../metadata/types.js';
import { quoteLiteral } from '../sql/quote.js';

/** classid of the liveness advisory locks ('pgwl'); objid is the coordinator id. */
export const LIVENESS_LOCK_KEY = 0x7067776c;

export const processIdentity = {
  coordinatorId: randomInt(1, 2 ** 31 - 1),
  epoch: Math.floor(Date.now() / 1000),
};

let transactionCounter = 0;
const inFlight = new Set<string>();

/** Gids this process is committing or aborting right now (recovery leaves them alone). */
export function isInFlight(gid: string): boolean {
  return inFlight.has(gid);
}

/**
 * The gids of one new distributed transaction with `n` participants, marked
 * in flight (before any PREPARE) until `releaseGids`.
 */
export function allocateGids(n: number): string[] {
  const txn = ++transactionCounter;
  const { coordinatorId, epoch } = processIdentity;
  const gids: string[] = [];
  for (let i = 0; i < n; i++) gids.push(`pgweave_${coordinatorId}_${epoch}_${txn}_${i}`);
  for (const g of gids) inFlight.add(g);
  return gids;
}

export function releaseGids(gids: readonly string[]): void {
  for (const g of gids) inFlight.delete(g);
}

const GID_PATTERN = /^pgweave_(\d+)_(\d+)_(\d+)_(\d+)$/;

export function parseGid(gid: string): { coordinatorId: number; epoch: number } | null {
  const m = GID_PATTERN.exec(gid);
  return m ? { coordinatorId: Number(m[1]), epoch: Number(m[2]) } : null;
}

export function isOwnGid(gid: string): boolean {
  const p = parseGid(gid);
  return p !== null && p.coordinatorId === processIdentity.coordinatorId && p.epoch === processIdentity.epoch;
}

/** One node's open transaction taking part in a distributed commit. */
export interface Participant {
  client: InternalClient;
  /** pg_dist_node group of the node, stored with the commit record. */
  groupId: number;
  /** host:port, for messages. */
  label: string;
}

let liveness: Promise<InternalClient> | null = null;
let livenessClient: InternalClient | null = null;

/**
 * Takes (once per process) the session advisory lock that tells other
 * coordinators' recovery this process is alive.
 */
export function ensureLiveness(pools: NodePools, coordinator: NodeAddress, database: string): Promise<InternalClient> {
  if (livenessClient && !livenessClient.closed) return Promise.resolve(livenessClient);
  liveness ??= (async () => {
    const conn = await connectBackend({
      host: coordinator.host,
      port: coordinator.port,
      database,
      user: pools.internal.user,
      credentials: { password: pools.internal.password },
      params: [['application_name', 'pgweave liveness']],
    });
    conn.socket.setKeepAlive(true, 10000);
    conn.socket.unref();
    const client = new InternalClient(conn);
    // Shared: the commit gate's connections (one per database) hold the same key.
    await client.query(livenessLockSql());
    livenessClient = client;
    return client;
  })().finally(() => {
    liveness = null;
  });
  return liveness;
}

/** The statement that marks this process alive, for any connection to the coordinator PostgreSQL. */
export function livenessLockSql(): string {
  return `SELECT pg_catalog.pg_advisory_lock_shared(${LIVENESS_LOCK_KEY}, ${processIdentity.coordinatorId})`;
}

/** Releases the liveness lock (process shutdown, tests). */
export function releaseLiveness(): void {
  livenessClient?.close();
  livenessClient = null;
}

function commitRecordSql(gids: string[], participants: Participant[]): string {
  const values = gids.map((gid, i) => `(${quoteLiteral(gid)}, ${participants[i]!.groupId | 0})`).join(', ');
  return `INSERT INTO pgweave.transaction (gid, groupid) VALUES ${values}`;
}

function textArray(values: string[]): string {
  return '{' + values.map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
}

async function rollbackPrepared(participants: Participant[], gids: string[], prepared: boolean[]): Promise<void> {
  await Promise.allSettled(
    participants.map((p, i) => (prepared[i] ? p.client.query(`ROLLBACK PREPARED ${quoteLiteral(gids[i]!)}`) : Promise.resolve())),
  );
}

function firstError(results: PromiseSettledResult<unknown>[]): unknown {
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  return failed?.reason;
}

/** Rolls back every open transaction (an operation failed before commit). */
export async function abortAll(coordinator: InternalClient | null, participants: Participant[]): Promise<void> {
  await Promise.allSettled([
    ...participants.map((p) => (p.client.closed ? Promise.resolve() : p.client.query('ROLLBACK'))),
    coordinator && !coordinator.closed ? coordinator.query('ROLLBACK') : Promise.resolve(),
  ]);
}

/**
 * Commits the coordinator transaction and every participant's atomically.
 * Resolves once the coordinator has committed (the decision is durable);
 * participants whose COMMIT PREPARED failed are resolved later by recovery.
 * Rejects, having rolled everything back, when any node fails before the
 * commit point.
 */
export async function commitTwoPhase(coordinator: InternalClient, participants: Participant[]): Promise<void> {
  const gids = allocateGids(participants.length);
  // The liveness lock must be held without a gap from before the first PREPARE
  // to the commit point, or another coordinator's recovery could roll back
  // what this one is about to commit.
  const alive = livenessClient;
  try {
    // A transaction in an aborted state answers PREPARE with ROLLBACK, not an error: only the PREPARE TRANSACTION tag means prepared.
    const prepare = await Promise.allSettled(
      participants.map(async (p, i) => {
        const r = await p.client.query(`PREPARE TRANSACTION ${quoteLiteral(gids[i]!)}`);
        if (r.command !== 'PREPARE TRANSACTION') {
          throw new PgError({ code: '40000', message: `the transaction on ${p.label} was rolled back before it could be prepared` });
        }
      }),
    );
    const prepared = prepare.map((r) => r.status === 'fulfilled');
    if (prepared.includes(false)) {
      await rollbackPrepared(participants, gids, prepared);
      await coordinator.query('ROLLBACK').catch(() => {});
      const err = firstError(prepare);
      const i = prepared.indexOf(false);
      throw decorate(err, `could not prepare the transaction on ${participants[i]!.label}`);
    }
    if (!alive || alive.closed || alive !== livenessClient) {
      await rollbackPrepared(participants, gids, prepared);
      await coordinator.query('ROLLBACK').catch(() => {});
      throw new PgError({ code: '08006', message: 'lost the coordinator liveness connection; the distributed transaction was rolled back' });
    }
    let outcome: string;
    try {
      // The decision must be durable before any COMMIT PREPARED, whatever the server's default.
      if (gids.length > 0) await coordinator.query(`${commitRecordSql(gids, participants)}; SET LOCAL synchronous_commit = on`);
      outcome = (await coordinator.query('COMMIT')).command;
    } catch (err) {
      if (coordinator.closed) {
        // The COMMIT may or may not have happened; the commit record decides, in recovery.
        throw decorate(err, 'lost the connection to the coordinator PostgreSQL while committing; recovery will complete or roll back the prepared transactions');
      }
      await coordinator.query('ROLLBACK').catch(() => {});
      await rollbackPrepared(participants, gids, prepared);
      throw err;
    }
    if (outcome !== 'COMMIT') {
      await rollbackPrepared(participants, gids, prepared);
      throw new PgError({ code: '40000', message: 'the coordinator transaction was rolled back; the distributed transaction was rolled back' });
    }
    const done = await Promise.allSettled(participants.map((p, i) => p.client.query(`COMMIT PREPARED ${quoteLiteral(gids[i]!)}`)));
    const committed = gids.filter((_, i) => done[i]!.status === 'fulfilled');
    if (committed.length > 0) {
      await coordinator.query('DELETE FROM pgweave.transaction WHERE gid = ANY($1::text[])', [textArray(committed)]).catch(() => {});
    }
  } finally {
    releaseGids(gids);
  }
}

function decorate(err: unknown, context: string): PgError {
  if (err instanceof PgError) {
    return new PgError({ ...err.fields, severity: 'ERROR', message: err.fields.message, detail: err.fields.detail ?? context });
  }
  return new PgError({ code: 'XX000', message: `${context}: ${(err as Error)?.message ?? String(err)}` });
}
