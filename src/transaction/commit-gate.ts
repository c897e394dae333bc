/**
 * The commit gate: multi-node commits are atomically *visible*
 * (DESIGN.md decision 6, `pgweave.atomic_visibility`, default on).
 *
 * The problem. Two-phase commit makes a transaction T that wrote on nodes A
 * and B commit everywhere or nowhere, but COMMIT PREPARED reaches A and B at
 * different instants. A reader that takes its snapshot on A after A committed
 * and on B before B committed sees half of T: a transfer's debit without its
 * credit, a wrong total. PostgreSQL cannot help: each node's snapshot only
 * knows that node's transactions.
 *
 * The gate. A two-mode lock per database:
 *   - write mode, held by a multi-node commit from just before its commit
 *     point (the commit record's INSERT) until every COMMIT PREPARED has been
 *     acknowledged and its commit records deleted;
 *   - read mode, held by a multi-node read while it takes its snapshots (a
 *     REPEATABLE READ transaction opened on every node it reads, with a
 *     first statement, so the snapshot exists when the reply arrives; or, in
 *     a READ COMMITTED block, until each node's statement has started).
 * Holders of one mode share it with each other; the two modes exclude each
 * other. In a process the gate is an in-memory lock whose holders come in
 * batches: every commit (or read) waiting when the mode changes enters
 * together, and later ones join a running batch unless the other mode is
 * waiting (so neither side starves). Across coordinator processes each batch
 * holds a PostgreSQL advisory lock on the coordinator PostgreSQL — exclusive
 * for a write batch, shared for a read batch — taken on the gate connection,
 * the one connection per (process, database) that also writes this process's
 * commit records and holds its liveness lock.
 *
 * Commit records double as a marker of commits whose phase did not finish
 * (a coordinator crashed, a worker went away between COMMIT PREPAREDs): a
 * read batch reads `pgweave.transaction` right after its shared advisory
 * lock is granted, and a reader whose nodes (groups) have a record waits —
 * leaving the gate, nudging recovery — until recovery has resolved it.
 *
 * Proof sketch. Let T be a multi-node commit and R a multi-node read, both
 * with the setting on. T's effects become visible on a node only inside
 * T's commit phase P_T = [commit point, last acknowledgement] (before the
 * commit point nothing is committed: the coordinator participant is
 * prepared too, never committed one-phase, and the worker participants are
 * prepared, i.e. in progress for every snapshot). R's snapshots are all
 * taken inside R's hold H_R. If T's gate connection lives through P_T, then
 * P_T lies in a write hold and H_R in a read hold, on the same advisory
 * lock (or the same in-memory lock), so P_T and H_R do not overlap: either
 * P_T ends before H_R starts — every participant of T has acknowledged
 * COMMIT PREPARED, so every snapshot of R sees T — or P_T starts after H_R
 * ends — nothing of T was visible when R's snapshots were taken, so R sees
 * none of T. If the gate connection dies during P_T (the advisory lock is
 * released early) or T's coordinator crashes, T's commit records — written
 * on that very connection, committed at the commit point, deleted only
 * after the acknowledgements — are still there when R reads the records at
 * the start of H_R, so R waits for recovery to finish T instead of taking
 * snapshots: again all or nothing. Records are only inserted by write
 * holders, so the records R reads stay valid for all of H_R (they can only
 * disappear, after their transaction committed everywhere).
 * Two more points keep the sketch honest: (1) correctness needs a record
 * only from the commit point until its transaction has committed
 * everywhere; a record of a finished commit just makes readers wait for
 * nothing, so a write batch deletes its records in a statement of its own
 * that commits before the unlock runs (an unlock in the same implicit
 * transaction would take effect before the DELETE commits); (2) a commit
 * whose liveness/gate connection changed between its PREPAREs and its
 * commit point rolls back, so no other coordinator's recovery can have
 * rolled it back meanwhile.
 *
 * Not covered: sessions with `pgweave.atomic_visibility = off` (their
 * commits and reads skip the gate), single-node reads (nothing to
 * coordinate) and coordinator-local tables read in a READ COMMITTED block.
 */
import { connectBackend } from '../pool/backend-connection.js';
import { InternalClient } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import type { NodeAddress } from '../metadata/types.js';
import { PgError } from '../protocol/errors.js';
import { quoteLiteral } from '../sql/quote.js';
import { livenessLockSql } from './two-phase-commit.js';
import { recoverPreparedTransactions } from './recovery.js';

/** classid of the gate's advisory lock ('pgwg'); objid 0. */
export const GATE_LOCK_KEY = 0x70677767;

/** How long a reader waits for recovery to resolve an unfinished commit before giving up. */
const RECOVERY_WAIT_MS = 30_000;

type Mode = 'read' | 'write';

/** One acquisition of the gate shared by several holders of the same mode. */
export interface GateBatch {
  readonly mode: Mode;
  /** Resolves once the batch holds the gate (in process and on the coordinator PostgreSQL). */
  readonly ready: Promise<void>;
  /** The gate connection the advisory lock was taken on. */
  client: InternalClient | null;
  holders: number;
  /** Read batches: commit records present when the shared lock was granted (gid → node group). */
  records: Map<string, number>;
  /** Write batches: records to delete before the unlock. */
  deletions: string[];
  failed: PgError | null;
}

interface Waiter {
  mode: Mode;
  resolve(batch: GateBatch): void;
}

export interface GateStats {
  writeBatches: number;
  writeHolds: number;
  readBatches: number;
  readHolds: number;
  recoveryWaits: number;
}

export class CommitGate {
  private client: InternalClient | null = null;
  private connecting: Promise<InternalClient> | null = null;
  private current: GateBatch | null = null;
  private readonly waiting: Waiter[] = [];
  private pendingRecords: Array<{ rows: string; resolve(): void; reject(e: unknown): void; client: InternalClient }> = [];
  private inserting = false;
  private pendingDeletes: string[] = [];
  private deleting = false;
  private cleanup: InternalClient | null = null;
  private cleanupConnecting: Promise<InternalClient> | null = null;
  private closed = false;
  readonly stats: GateStats = { writeBatches: 0, writeHolds: 0, readBatches: 0, readHolds: 0, recoveryWaits: 0 };

  constructor(
    private readonly connect: () => Promise<InternalClient>,
    private readonly recover: () => Promise<unknown>,
  ) {}

  /**
   * The gate connection: to the coordinator PostgreSQL, in this database, as
   * the internal role, holding this process's liveness lock. A new one is
   * opened when the last one was lost; commits compare identities to notice.
   */
  connection(): Promise<InternalClient> {
    if (this.closed) return Promise.reject(new PgError({ code: '57P01', message: 'the coordinator is shutting down' }));
    if (this.client && !this.client.closed) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const c = await this.connect();
      try {
        // The commit records must be durable before any COMMIT PREPARED, whatever the server's default.
        await c.query(`SET synchronous_commit = on; ${livenessLockSql()}`);
      } catch (err) {
        c.close();
        throw err;
      }
      this.client = c;
      return c;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** The current gate connection, if it is open. */
  get liveConnection(): InternalClient | null {
    return this.client && !this.client.closed ? this.client : null;
  }

  // ---- the two-mode lock ------------------------------------------------------

  private enter(mode: Mode): Promise<GateBatch> {
    const cur = this.current;
    if (cur && cur.mode === mode && !cur.failed && !this.waiting.some((w) => w.mode !== mode)) {
      cur.holders++;
      this.count(mode, false);
      return cur.ready.then(() => cur);
    }
    if (!cur && this.waiting.length === 0) {
      const batch = this.start(mode, 1);
      return batch.ready.then(() => batch);
    }
    return new Promise<GateBatch>((resolve) => this.waiting.push({ mode, resolve }));
  }

  private count(mode: Mode, batch: boolean): void {
    if (mode === 'write') {
      this.stats.writeHolds++;
      if (batch) this.stats.writeBatches++;
    } else {
      this.stats.readHolds++;
      if (batch) this.stats.readBatches++;
    }
  }

  private start(mode: Mode, holders: number): GateBatch {
    const batch: GateBatch = { mode, ready: Promise.resolve(), client: null, holders, records: new Map(), deletions: [], failed: null };
    this.current = batch;
    this.count(mode, true);
    for (let i = 1; i < holders; i++) this.count(mode, false);
    (batch as { ready: Promise<void> }).ready = this.lockOnCoordinator(batch).catch((err) => {
      batch.failed = err instanceof PgError ? err : new PgError({ code: '08006', message: String((err as Error)?.message ?? err) });
    });
    return batch;
  }

  private async lockOnCoordinator(batch: GateBatch): Promise<void> {
    const c = await this.connection();
    batch.client = c;
    if (batch.mode === 'write') {
      await c.query(`SELECT pg_catalog.pg_advisory_lock(${GATE_LOCK_KEY}, 0)`);
      return;
    }
    // Two statements (two implicit transactions): the records are read with a snapshot taken after the lock is granted.
    const [, records] = await Promise.all([
      c.query(`SELECT pg_catalog.pg_advisory_lock_shared(${GATE_LOCK_KEY}, 0)`),
      c.query('SELECT gid, groupid FROM pgweave.transaction').catch((err: PgError) => {
        if (err?.code === '42P01') return { rows: [] as Array<Array<string | null>> }; // no catalog in this database yet
        throw err;
      }),
    ]);
    for (const r of records.rows) batch.records.set(r[0]!, Number(r[1]));
  }

  private leave(batch: GateBatch): void {
    batch.holders--;
    if (batch.holders > 0 || this.current !== batch) return;
    this.current = null;
    const c = batch.client;
    // Unlock even after a failure: the lock statement may have succeeded before a later one failed.
    if (c && !c.closed) {
      if (batch.mode === 'write' && !batch.failed) {
        // Separate statements: the DELETE commits before the unlock runs (an unlock in the same implicit
        // transaction would take effect before the DELETE commits).
        const gids = batch.deletions.concat(this.pendingDeletes.splice(0));
        if (gids.length > 0) c.query('DELETE FROM pgweave.transaction WHERE gid = ANY($1::text[])', [textArray(gids)]).catch(() => {});
        c.query(`SELECT pg_catalog.pg_advisory_unlock(${GATE_LOCK_KEY}, 0)`).catch(() => {});
      } else if (batch.mode === 'write') {
        c.query(`SELECT pg_catalog.pg_advisory_unlock(${GATE_LOCK_KEY}, 0)`).catch(() => {});
      } else {
        c.query(`SELECT pg_catalog.pg_advisory_unlock_shared(${GATE_LOCK_KEY}, 0)`).catch(() => {});
      }
    }
    this.grantNext();
  }

  private grantNext(): void {
    if (this.current || this.waiting.length === 0) return;
    const mode = this.waiting[0]!.mode;
    const granted = this.waiting.filter((w) => w.mode === mode);
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.mode === mode) this.waiting.splice(i, 1);
    const batch = this.start(mode, granted.length);
    void batch.ready.then(() => {
      for (const w of granted) w.resolve(batch);
    });
  }

  // ---- commits ---------------------------------------------------------------

  /** Enters the gate for a commit phase; the caller must `leaveWrite` whatever happens. */
  async enterWrite(): Promise<GateBatch> {
    const batch = await this.enter('write');
    if (batch.failed) {
      this.leave(batch);
      throw batch.failed;
    }
    return batch;
  }

  /** Ends a commit phase: `committed` gids' records are deleted before the gate opens. */
  leaveWrite(batch: GateBatch, committed: readonly string[]): void {
    for (const g of committed) batch.deletions.push(g);
    // A batch that writers keep joining (no reader waiting) would pile records up: delete them as they come.
    // (Records of finished commits may go at any time; deleting them before the unlock only spares readers a wait.)
    if (batch.deletions.length >= 256 && batch.holders > 1) {
      const gids = batch.deletions.splice(0);
      void this.cleanupConnection()
        .then((c) => c.query('DELETE FROM pgweave.transaction WHERE gid = ANY($1::text[])', [textArray(gids)]))
        .catch(() => {});
    }
    this.leave(batch);
  }

  /**
   * The commit point: inserts commit records on the gate connection `client`
   * (autocommit). Records of commits arriving together go in one INSERT.
   * Rejects with the connection's error when `client` is no longer the gate
   * connection, or was lost (then the outcome is unknown: recovery decides).
   */
  writeRecords(client: InternalClient, records: ReadonlyArray<{ gid: string; groupId: number }>): Promise<void> {
    if (client !== this.client || client.closed) {
      return Promise.reject(new PgError({ code: '08006', message: 'lost the connection to the coordinator PostgreSQL before the commit point; the distributed transaction was rolled back' }));
    }
    const rows = records.map((r) => `(${quoteLiteral(r.gid)}, ${r.groupId | 0})`).join(', ');
    return new Promise<void>((resolve, reject) => {
      this.pendingRecords.push({ rows, resolve, reject, client });
      if (!this.inserting) void this.flushRecords();
    });
  }

  private async flushRecords(): Promise<void> {
    this.inserting = true;
    try {
      while (this.pendingRecords.length > 0) {
        const client = this.pendingRecords[0]!.client;
        const group = this.pendingRecords.filter((p) => p.client === client);
        this.pendingRecords = this.pendingRecords.filter((p) => p.client !== client);
        try {
          await client.query(`INSERT INTO pgweave.transaction (gid, groupid) VALUES ${group.map((p) => p.rows).join(', ')}`);
          for (const p of group) p.resolve();
        } catch (err) {
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.inserting = false;
    }
  }

  /**
   * Deletes records of finished commits that did not hold the gate (atomic
   * visibility off): those arriving while a DELETE runs go in the next one
   * (or in the DELETE that ends a write batch).
   */
  deleteRecords(gids: readonly string[]): void {
    if (gids.length === 0) return;
    for (const g of gids) this.pendingDeletes.push(g);
    if (!this.deleting && this.current?.mode !== 'write') void this.flushDeletes();
  }

  private async flushDeletes(): Promise<void> {
    this.deleting = true;
    try {
      while (this.pendingDeletes.length > 0 && this.current?.mode !== 'write') {
        const gids = this.pendingDeletes.splice(0);
        try {
          await (await this.cleanupConnection()).query('DELETE FROM pgweave.transaction WHERE gid = ANY($1::text[])', [textArray(gids)]);
        } catch {
          // recovery deletes them
        }
      }
    } finally {
      this.deleting = false;
    }
  }

  /** A second connection for deleting records of finished commits, so they do not queue behind commit points. */
  private cleanupConnection(): Promise<InternalClient> {
    if (this.cleanup && !this.cleanup.closed) return Promise.resolve(this.cleanup);
    this.cleanupConnecting ??= this.connect()
      .then((c) => (this.cleanup = c))
      .finally(() => {
        this.cleanupConnecting = null;
      });
    return this.cleanupConnecting;
  }

  // ---- reads -----------------------------------------------------------------

  /**
   * Enters the gate to take snapshots on the nodes of `groups` (node group
   * ids; the coordinator is group 0). Waits, outside the gate, while a
   * commit record of a relevant group is unresolved. The caller takes its
   * snapshots, then calls `leaveRead`.
   */
  async enterRead(groups: ReadonlySet<number>): Promise<GateBatch> {
    const deadline = Date.now() + RECOVERY_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      const batch = await this.enter('read');
      if (batch.failed) {
        this.leave(batch);
        throw batch.failed;
      }
      const blocking = [...batch.records].find(([, g]) => g === 0 || groups.has(g));
      if (!blocking) return batch;
      // Records only disappear while the gate is held: re-read them before giving up the batch.
      if (attempt > 0 && batch.client && !batch.client.closed) {
        try {
          const now = await batch.client.query('SELECT gid, groupid FROM pgweave.transaction');
          const present = new Set(now.rows.map((r) => r[0]!));
          for (const gid of [...batch.records.keys()]) if (!present.has(gid)) batch.records.delete(gid);
          if (![...batch.records].some(([, g]) => g === 0 || groups.has(g))) return batch;
        } catch {
          // fall through: wait and retry
        }
      }
      this.leave(batch);
      this.stats.recoveryWaits++;
      if (Date.now() > deadline) {
        throw new PgError({
          code: '40001',
          message: 'could not take a consistent snapshot across nodes: a distributed transaction is still being recovered',
          detail: `The commit of ${blocking[0]} (node group ${blocking[1]}) did not finish; recovery completes it once the node is reachable.`,
          hint: 'Retry the statement.',
        });
      }
      await this.recover().catch(() => {});
      await sleep(Math.min(25 * 2 ** attempt, 500));
    }
  }

  leaveRead(batch: GateBatch): void {
    this.leave(batch);
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = null;
    this.cleanup?.close();
    this.cleanup = null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function textArray(values: readonly string[]): string {
  return '{' + values.map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
}

/** Gates per coordinator (its NodePools), then per coordinator PostgreSQL and database. */
const gatesByPools = new WeakMap<NodePools, Map<string, CommitGate>>();

/** The commit gate of `database` for the coordinator that owns `pools` (created on first use). */
export function commitGateFor(pools: NodePools, coordinator: NodeAddress, database: string): CommitGate {
  const key = `${coordinator.host}:${coordinator.port}/${database}`;
  let gates = gatesByPools.get(pools);
  if (!gates) gatesByPools.set(pools, (gates = new Map()));
  let gate = gates.get(key);
  if (!gate) {
    gate = new CommitGate(
      async () => {
        const conn = await connectBackend({
          host: coordinator.host,
          port: coordinator.port,
          database,
          user: pools.internal.user,
          credentials: { password: pools.internal.password },
          params: [['application_name', 'pgweave commit gate']],
        });
        conn.socket.setKeepAlive(true, 10_000);
        conn.socket.unref();
        return new InternalClient(conn);
      },
      () => recoverPreparedTransactions(pools, { coordinator }, database),
    );
    gates.set(key, gate);
  }
  return gate;
}

/** Closes the gate connections of the coordinator that owns `pools` (its shutdown). */
export function closeCommitGates(pools: NodePools): void {
  const gates = gatesByPools.get(pools);
  if (!gates) return;
  for (const g of gates.values()) g.close();
  gatesByPools.delete(pools);
}
