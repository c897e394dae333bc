/**
 * The session's distributed transaction: which worker links joined the
 * transaction block, which of them wrote, and how BEGIN, COMMIT, ROLLBACK,
 * savepoints and SETs reach every node — so that a client sees exactly what
 * one PostgreSQL would show it.
 *
 * Joining. A worker joins lazily: the first statement the block sends it is
 * preceded by the block's own BEGIN (same text, so the same isolation level
 * and access mode), its SET LOCAL / SET TRANSACTION statements, the tag that
 * lets the deadlock detector map the backend to this transaction, and the
 * savepoints still open, so ROLLBACK TO works on every node. The block's
 * characteristics come from the coordinator at BEGIN (SHOW needs no
 * snapshot), so session defaults count too.
 *
 * Snapshots (atomic visibility, transaction/commit-gate.ts). A statement
 * that reads several nodes outside a block runs in a REPEATABLE READ
 * transaction per node whose snapshot is taken, under the commit gate, by a
 * first `SELECT 1`; the statement's tasks follow in the same transaction (so
 * several shards on one node are read from one snapshot too). A REPEATABLE
 * READ or SERIALIZABLE block takes every node's snapshot together, under the
 * gate, when it first touches a worker. A READ COMMITTED block holds the gate
 * while a multi-node read's statements start (each takes its snapshot at its
 * start). `SET pgweave.atomic_visibility = off` skips all of it.
 *
 * Commit. No worker joined: the coordinator PostgreSQL commits. One node
 * wrote (the coordinator counts when its transaction has an xid): one-phase
 * commit, read-only nodes first. Several: transaction/distributed-commit.ts
 * (two-phase commit through the gate). COMMIT AND CHAIN / ROLLBACK AND CHAIN
 * open the next block with the same characteristics. Multi-shard writes
 * outside a block, and multi-statement queries that reach a worker, get a
 * block of their own (an implicit transaction, as PostgreSQL runs a
 * multi-statement query), so they are all-or-nothing too.
 *
 * Deadlocks. The detector (jobs/deadlock-detector.ts) marks a victim; its
 * cancellation error (57014) reaches the client as 40P01 naming the
 * distributed deadlock.
 *
 * This file owns the block's state (joined links, characteristics, SETs,
 * savepoints, lost links, deadlock victim) and transaction control; the
 * pieces with one job each live beside it: block-opening.ts (BEGIN,
 * characteristics, SET LOCALs, savepoints), block-snapshots.ts (REPEATABLE
 * READ snapshots), block-commit.ts (1PC/2PC), consistent-pull.ts (pulls
 * under snapshots), shard-affinity.ts, insert-evaluation.ts,
 * multi-shard-run.ts, txn-wire.ts.
 */
import { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import type { BackendLink } from '../executor/backend-link.js';
import { queryOnLink, decodeDataRow, type CollectedResult } from '../executor/link-query.js';
import type { WorkerNode } from '../metadata/types.js';
import type { PullTable, Route } from '../planner/route.js';
import type { SessionServices } from './services.js';
import { quoteLiteral } from '../sql/quote.js';
import { mentionsAnyWord } from '../sql/lexer.js';
import type { CommitGate } from '../transaction/commit-gate.js';
import { DEADLOCK_MESSAGE, newTransactionTag, registerTransaction, tagSql, unregisterTransaction } from '../transaction/deadlock-detection.js';
import { runMultiShardTasks, type TaskRunContext } from './multi-shard-run.js';
import { E_READY_UNREAD, sendSwallowed } from './txn-wire.js';
import { InsertEvaluations } from './insert-evaluation.js';
import { ShardAffinity } from './shard-affinity.js';
import { runConsistentPull } from './consistent-pull.js';
import { BlockOpening, isChain } from './block-opening.js';
import { BlockSnapshots, type SnapshotHost } from './block-snapshots.js';
import { commitNode, commitNodes, commitWritten, type CommitContext } from './block-commit.js';

/** Connections beyond the session's one per node (slow start): opened as the client, given back after use. */
export interface ExtraConnections {
  open(node: WorkerNode): Promise<BackendLink>;
  /** Gives back an idle link outside any transaction (to the pool when `poolable`, else closes it). */
  release(node: WorkerNode, link: BackendLink, poolable: boolean): void;
}

const IMPLICIT_KINDS = new Set<Route['kind']>(['local', 'router', 'multi-shard', 'pull', 'evaluate-insert']);
/** Words of row-locking clauses (FOR UPDATE / SHARE …): such reads may wait for locks. */
const LOCKING_WORDS = new Set(['for']);

/** now() in UTC, exactly (microseconds), readable whatever the session's DateStyle. */
const TRANSACTION_TIME_EXPR = `pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYY-MM-DD HH24:MI:SS.US') OPERATOR(pg_catalog.||) '+00'`;
const TRANSACTION_TIME_SQL = `SELECT ${TRANSACTION_TIME_EXPR}`;
/**
 * The block's characteristics and its time in one statement after BEGIN
 * (current_setting shows what SHOW shows): the coordinator runs two
 * statements per block instead of five. It takes a snapshot, as the time
 * alone would (READ COMMITTED blocks only, see `begin`).
 */
const CHARACTERISTICS_AND_TIME_SQL = `SELECT pg_catalog.current_setting('transaction_isolation'), pg_catalog.current_setting('transaction_read_only'), pg_catalog.current_setting('transaction_deferrable'), ${TRANSACTION_TIME_EXPR}`;

function parseOff(value: string | undefined): boolean {
  return value !== undefined && /^\s*'?(off|false|no|0|f|n)'?\s*$/i.test(value);
}


export class SessionTransaction {
  /** BEGIN, characteristics, SET LOCALs and savepoints of the open block (block-opening.ts). */
  private block = new BlockOpening();
  private sets: string[] = [];
  /** The block is an implicit transaction of a multi-statement query. */
  private implicit = false;
  /** Pull queries created temporary tables in this block (the coordinator then cannot be prepared). */
  private pulledInBlock = false;
  /** REPEATABLE READ blocks: every node's snapshot, taken together (block-snapshots.ts). */
  private readonly snapshots = new BlockSnapshots();
  /** The distributed transaction's tag (0: none yet), see transaction/deadlock-detection.ts. */
  private tag = 0;
  /** Set when the deadlock detector chose this transaction as its victim. */
  private victim: string | null = null;
  /** A node of the open block was lost: the block can only roll back. */
  broken = false;
  /** Why the block broke, until a statement has reported it. */
  private lostInBlock: PgError | null = null;
  /** The block's extra connections (slow start); they commit and roll back with it. */
  private blockExtras: Array<{ node: WorkerNode; link: BackendLink }> = [];
  /** Shard group → the block's connection that used it (shard-affinity.ts). */
  private readonly affinity: ShardAffinity;
  /** Whether the coordinator's xid comes only from rolled-back INSERT evaluations (insert-evaluation.ts). */
  private readonly evaluations: InsertEvaluations;
  /** The coordinator's transaction timestamp in the open block, once asked (transactionTime). */
  private blockTime: string | null = null;
  /** The open block asked for the transaction time (the next BEGIN then fetches it along). */
  private timeWanted = false;
  /** The BEGIN text whose last block was READ COMMITTED (may fetch the time along, see begin). */
  private readCommittedBegin: string | null = null;

  constructor(
    private readonly coordinator: BackendLink,
    private readonly workers: Map<number, BackendLink>,
    private readonly services: SessionServices,
    private readonly settings: ReadonlyMap<string, string> = new Map(),
    /** Opens (or reuses) the session's link to a node without joining it to the block. */
    private readonly openLink: ((node: WorkerNode) => Promise<BackendLink>) | null = null,
    private readonly extraConnections: ExtraConnections | null = null,
  ) {
    this.affinity = new ShardAffinity(services);
    this.evaluations = new InsertEvaluations(coordinator);
  }

  /** True while worker links take part in the open transaction block. */
  get involvesWorkers(): boolean {
    for (const w of this.workers.values()) if (w.inTransaction) return true;
    return false;
  }

  private joined(): BackendLink[] {
    const out = [...this.workers.values()].filter((w) => w.inTransaction);
    for (const e of this.blockExtras) if (e.link.inTransaction) out.push(e.link);
    return out;
  }

  /** Whether session-level SETs were made (worker connections then stay with the session). */
  get hasSessionSettings(): boolean {
    return this.sets.length > 0;
  }

  /** The commit gate, when this session wants atomic visibility. */
  private gate(): CommitGate | null {
    const gate = this.services.commitGate ?? null;
    if (!gate || parseOff(this.settings.get('pgweave.atomic_visibility'))) return null;
    return gate;
  }

  private get readCommitted(): boolean {
    return this.block.readCommitted;
  }

  /**
   * A SET the session saw (before it runs on the coordinator). Session-level
   * ones are sent to every worker link now and replayed on new links;
   * SET LOCAL and SET TRANSACTION belong to the open block.
   */
  rememberSet(text: string, isLocal = false): void {
    if (isLocal || /^\s*set\s+transaction\b/i.test(text)) {
      this.block.noteLocalSet(text);
      for (const w of this.joined()) w.send(encodeQuery(text), [E_READY_UNREAD]);
      return;
    }
    this.sets.push(text);
    if (this.sets.length > 100) this.sets.shift();
    for (const w of [...this.workers.values(), ...this.extraLinks]) if (!w.lost) w.send(encodeQuery(text), [E_READY_UNREAD]);
  }

  /** Session-level SETs replayed on a new worker link (search_path, timezone, statement_timeout…). */
  replaySets(link: BackendLink): void {
    if (this.sets.length === 0) return;
    link.send(encodeQuery(this.sets.join('\n;')), [E_READY_UNREAD]);
  }

  /** Kept for callers; whether the coordinator wrote is asked of the coordinator at COMMIT. */
  noteLocalStatement(_text: string): void {}

  // ---- joining ---------------------------------------------------------------

  /** Joins a worker link to the open block (if any) before it runs a statement. */
  async join(link: BackendLink, inBlock: boolean, isWrite: boolean): Promise<void> {
    if (!inBlock) return;
    if (!link.inTransaction) {
      const gate = this.readCommitted || !this.openLink ? null : this.gate();
      if (gate && !this.snapshots.started) await this.snapshots.takeAll(this.snapshotHost(), gate);
      else if (this.snapshots.started) await this.snapshots.started;
      if (!link.inTransaction) void this.joinLink(link);
    }
    if (isWrite) link.wroteInTransaction = true;
  }

  private ensureTag(): number {
    if (this.tag === 0) {
      this.tag = newTransactionTag();
      registerTransaction(this.tag, { markVictim: (detail) => (this.victim = detail) });
    }
    return this.tag;
  }

  /** Sends the block's opening to a link; resolves when the link has answered it (its snapshot exists in REPEATABLE READ). */
  private joinLink(link: BackendLink, snapshot: string | null = null): Promise<PgError | null> {
    link.inTransaction = true;
    link.rewriteError = (err) => this.translate(err);
    // An extra connection of a REPEATABLE READ block imports the node's block snapshot before any query.
    const imported = snapshot === null ? [] : [`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`];
    return sendSwallowed(link, this.block.sql([...imported, tagSql(this.ensureTag())]));
  }

  private snapshotHost(): SnapshotHost {
    return {
      coordinator: this.coordinator,
      services: this.services,
      openLink: this.openLink!,
      joinLink: (link) => this.joinLink(link),
      markBroken: () => (this.broken = true),
    };
  }

  linkLost(link: BackendLink): void {
    if (link.inTransaction) {
      this.broken = true;
      this.lostInBlock ??= link.lostError();
    }
    link.inTransaction = false;
  }

  /**
   * The loss that aborted the block, once: the next statement's error names
   * it (08006) instead of a bare 25P02 when the connection went away while
   * the block was idle.
   */
  takeLossError(): PgError | null {
    const err = this.lostInBlock;
    this.lostInBlock = null;
    return err;
  }

  /**
   * The deadlock victim's cancellation, as the client must see it. The
   * block is then aborted; its idle nodes roll back at once, so their locks
   * go (as PostgreSQL's own victim's do) before the client's ROLLBACK.
   */
  translate(err: PgError): PgError | null {
    if (this.victim === null || err.fields.code !== '57014') return null;
    this.broken = true;
    for (const w of this.joined()) {
      if (w.pending > 0 || w.lost) continue;
      w.send(encodeQuery('ROLLBACK'), [E_READY_UNREAD]);
      w.inTransaction = false;
      w.wroteInTransaction = false;
    }
    return new PgError({ severity: 'ERROR', code: '40P01', message: DEADLOCK_MESSAGE, detail: this.victim });
  }

  private translated(err: PgError | null): PgError | null {
    return err ? (this.translate(err) ?? err) : null;
  }

  /** Work to do once the open block has committed everywhere (e.g. tell every coordinator a DDL changed the catalog). */
  private afterCommitHooks: Array<() => Promise<void>> = [];

  /** Runs `hook` after the open block commits; dropped when it rolls back. */
  afterCommit(hook: () => Promise<void>): void {
    this.afterCommitHooks.push(hook);
  }

  /** Runs (and forgets) the hooks of a block that just committed; their failures do not undo the commit. */
  private async committed(hooks: Array<() => Promise<void>>): Promise<void> {
    for (const hook of hooks) await hook().catch(() => {});
  }

  private reset(): void {
    this.afterCommitHooks = [];
    if (this.tag !== 0) unregisterTransaction(this.tag);
    this.tag = 0;
    this.victim = null;
    this.broken = false;
    this.lostInBlock = null;
    this.block = new BlockOpening();
    this.implicit = false;
    this.pulledInBlock = false;
    this.evaluations.reset();
    this.blockTime = null;
    this.snapshots.reset();
    for (const w of this.workers.values()) {
      w.inTransaction = false;
      w.wroteInTransaction = false;
    }
    // The block ended on its extra connections too: they go back once their last reply is in
    // (COMMIT PREPARED may still be on its way); one lost or left in a transaction is closed.
    for (const { node, link } of this.blockExtras) {
      link.inTransaction = false;
      link.wroteInTransaction = false;
      this.extraConnections?.release(node, link, !this.hasSessionSettings);
    }
    this.blockExtras = [];
    this.affinity.clear();
  }

  // ---- transaction control -------------------------------------------------------

  /** Runs transaction control across the nodes; returns the command tag or the error. */
  async run(verb: string, text: string): Promise<string | PgError> {
    await this.coordinator.idle();
    for (const w of this.joined()) await w.idle();
    switch (verb) {
      case 'begin':
        return this.begin(text);
      case 'commit':
        return this.commit(text);
      case 'rollback':
        return this.rollback(text);
      case 'savepoint':
      case 'release':
      case 'rollback_to': {
        // The coordinator first: it decides whether the savepoint exists; then the same on every joined node.
        const r = await queryOnLink(this.coordinator, text);
        if (r.error) return r.error;
        for (const w of this.joined()) {
          const x = await queryOnLink(w, text);
          if (x.error) return this.translated(x.error)!;
        }
        this.block.noteSavepoint(verb, text);
        return r.tag;
      }
      default: {
        if (verb === 'prepare' && this.involvesWorkers) {
          return new PgError({ code: '0A000', message: 'PREPARE TRANSACTION is not supported for transactions that involve worker nodes' });
        }
        const r = await queryOnLink(this.coordinator, text);
        return r.error ?? r.tag;
      }
    }
  }

  private async begin(text: string): Promise<string | PgError> {
    const wasInBlock = this.coordinator.status !== 0x49;
    // SHOW takes no snapshot: the block's characteristics, whatever set them (BEGIN options, session defaults).
    const opening = `${text}\n;SHOW transaction_isolation\n;SHOW transaction_read_only\n;SHOW transaction_deferrable`;
    // The transaction time comes with the BEGIN when the session's last block asked for it and
    // its last block of this BEGIN was READ COMMITTED (pgbench -N: no round trip for it later).
    // Its SELECT takes a snapshot, which only READ COMMITTED may take this early: a block
    // that turns out otherwise begins again without it.
    const withTime = !wasInBlock && this.timeWanted && this.readCommittedBegin === text;
    let r = await queryOnLink(this.coordinator, withTime ? `${text}\n;${CHARACTERISTICS_AND_TIME_SQL}` : opening);
    if (r.error) return r.error;
    if (!wasInBlock) {
      let [iso, ro, def, time] = withTime
        ? (r.rows[0] ? decodeDataRow(r.rows[0]) : []).map((v) => v ?? '')
        : r.rows.map((row) => decodeDataRow(row)[0] ?? '');
      if (withTime && iso !== 'read committed') {
        r = await queryOnLink(this.coordinator, `ROLLBACK\n;${opening}`);
        if (r.error) return r.error;
        [iso, ro, def] = r.rows.map((row) => decodeDataRow(row)[0] ?? '');
        time = '';
      }
      this.reset();
      this.block = BlockOpening.begun(text, iso ?? '', ro ?? '', def ?? '');
      this.evaluations.begun();
      this.readCommittedBegin = iso === 'read committed' ? text : null;
      this.timeWanted = false;
      if (withTime && time) this.blockTime = time;
    }
    return /^\s*start/i.test(text) ? 'START TRANSACTION' : 'BEGIN';
  }

  /**
   * Before the statements of a multi-statement simple query: when they reach
   * a worker and no block is open, opens an implicit block, so the query
   * commits atomically as PostgreSQL would run it.
   */
  async beginImplicit(routes: readonly Route[]): Promise<boolean> {
    if (routes.length < 2 || this.coordinator.status !== 0x49) return false;
    if (!routes.every((r) => IMPLICIT_KINDS.has(r.kind)) || routes.every((r) => r.kind === 'local')) return false;
    const out = await this.run('begin', 'BEGIN');
    if (out instanceof PgError) return false;
    this.implicit = true;
    return true;
  }

  /** After them: commits the implicit block (or rolls it back after an error); returns a commit error. */
  async endImplicit(ok: boolean): Promise<PgError | null> {
    if (!this.implicit) return null;
    if (!ok) {
      await this.run('rollback', 'ROLLBACK');
      return null;
    }
    const out = await this.run('commit', 'COMMIT');
    if (out instanceof PgError) return out;
    // The implicit block rolled back instead (a node was lost between its statements): the
    // query failed — its client must not take the statements for committed.
    if (out !== 'COMMIT') return this.takeLossError() ?? new PgError({ code: '40000', message: 'the transaction of the multi-statement query was rolled back' });
    return null;
  }

  private async rollbackNodes(): Promise<void> {
    await Promise.all(this.joined().map((w) => queryOnLink(w, 'ROLLBACK')));
  }

  private async rollback(text: string): Promise<string | PgError> {
    const chain = isChain(text);
    const next = this.block.chained();
    await this.rollbackNodes();
    const r = await queryOnLink(this.coordinator, text);
    this.reset();
    // ROLLBACK AND CHAIN on the coordinator: the new block has the old one's characteristics.
    if (chain && !r.error) this.block = next;
    return r.error ?? r.tag;
  }

  private async commit(text: string): Promise<string | PgError> {
    const chain = isChain(text);
    const next = this.block.chained();
    const workers = this.joined();
    const hooks = this.afterCommitHooks;
    if (workers.length === 0 && !this.broken) {
      const r = await queryOnLink(this.coordinator, text);
      this.reset();
      if (!r.error && r.tag === 'COMMIT') await this.committed(hooks);
      if (chain && !r.error) this.block = next;
      return r.error ?? r.tag;
    }
    const failed = this.broken || this.coordinator.status === 0x45 || workers.some((w) => w.status === 0x45);
    let out: string | PgError;
    if (failed) {
      // A loss no statement has reported yet (the link went while the block was idle): COMMIT
      // reports it, as the client has seen no error that would tell it the block is lost.
      const unreported = this.implicit ? null : this.takeLossError();
      await this.rollbackNodes();
      await queryOnLink(this.coordinator, 'ROLLBACK');
      out = unreported ?? 'ROLLBACK';
    } else {
      out = await commitNodes(this.commitContext(), workers);
    }
    this.reset();
    if (out === 'COMMIT') await this.committed(hooks);
    if (chain && !(out instanceof PgError)) {
      // The block ended on every node; the coordinator opens the next one (workers join it lazily).
      const r = await queryOnLink(this.coordinator, next.begin);
      if (!r.error) this.block = next;
    }
    return out;
  }

  private commitContext(): CommitContext {
    return {
      coordinator: this.coordinator,
      services: this.services,
      pulledInBlock: this.pulledInBlock,
      atomicVisibility: this.gate() !== null,
      coordinatorWrote: () => this.evaluations.coordinatorWrote(),
      translated: (err) => this.translated(err),
    };
  }

  /**
   * The coordinator's transaction timestamp (now(), as ISO 8601 text with its
   * UTC offset): what the transaction-time functions of an INSERT into
   * distributed tables stand for (planner/transaction-time.ts). Inside a
   * block it cannot change, so it is asked once per block; outside one, per
   * statement. `ask` runs the query on the coordinator (the session keeps
   * output in order).
   */
  async transactionTime(ask: (sql: string) => Promise<string>): Promise<string> {
    const inBlock = this.coordinator.status !== 0x49;
    if (inBlock) this.timeWanted = true;
    if (inBlock && this.blockTime !== null) return this.blockTime;
    const before = this.coordinator.runCount;
    const time = await ask(TRANSACTION_TIME_SQL);
    // A SELECT of now() neither writes nor takes an xid.
    this.evaluations.ranReadOnly(before);
    if (inBlock) this.blockTime = time;
    return time;
  }

  /** An INSERT evaluation starts in the block; `hadXid`: the coordinator's transaction had an xid before it (insert-evaluation.ts). */
  noteEvaluationStart(hadXid: boolean, requestsBefore: number): void {
    this.evaluations.start(hadXid, requestsBefore);
  }

  /** The evaluation was rolled back to its savepoint. */
  noteEvaluationEnd(): void {
    this.evaluations.end();
  }

  // ---- statements across nodes -------------------------------------------------

  /**
   * Runs the tasks of a multi-shard statement (session/multi-shard-run.ts):
   * slow start across connections per node, inside the session's block, or
   * a block of their own when they write, or REPEATABLE READ transactions
   * (snapshots taken under the commit gate) when they read several shards.
   */
  runTasks(
    route: Extract<Route, { kind: 'multi-shard' }>,
    bindBytes: Buffer | null,
    linkFor: (node: WorkerNode, isWrite: boolean) => Promise<BackendLink>,
  ): Promise<CollectedResult> {
    return runMultiShardTasks(this.taskContext(), route, bindBytes, linkFor);
  }

  private taskContext(): TaskRunContext {
    const inBlock = this.coordinator.status !== 0x49;
    return {
      inBlock,
      settings: this.settings,
      gate: () => this.gate(),
      holdGateInBlock: (route) => this.readCommitted && !route.tasks.some((t) => mentionsAnyWord(t.sql, LOCKING_WORDS)),
      ensureTag: () => this.ensureTag(),
      translate: (err) => this.translate(err),
      commitNode: (l) => commitNode(this.commitContext(), l),
      commitMultiNode: (links) => commitWritten(this.commitContext(), links),
      endOwnTransaction: () => {
        unregisterTransaction(this.tag);
        this.tag = 0;
        this.victim = null;
      },
      openExtra: (node) => this.extraConnections!.open(node),
      releaseExtra: (node, link) => this.extraConnections!.release(node, link, !this.hasSessionSettings),
      // DEFERRABLE blocks cannot import a snapshot; without a way to open connections there is nothing to add.
      blockAllowsExtras: () => this.extraConnections !== null && !this.block.deferrable && !this.broken,
      joinExtra: async (node, link, snapshot) => {
        if (!this.readCommitted && snapshot === null) {
          this.extraConnections!.release(node, link, !this.hasSessionSettings);
          return false;
        }
        const err = await this.joinLink(link, snapshot);
        if (err) {
          if (!link.lost && link.status !== 0x49) await queryOnLink(link, 'ROLLBACK');
          link.inTransaction = false;
          this.extraConnections!.release(node, link, !this.hasSessionSettings);
          return false;
        }
        this.blockExtras.push({ node, link });
        return true;
      },
      blockSnapshot: async (node, first) => {
        if (this.readCommitted) return null;
        return this.snapshots.exportFor(node, first);
      },
      affinity: (node, shardIds) => this.affinityLink(node, shardIds, true),
      noteAccess: (link, node, shardIds) => this.noteAccess(link, node, shardIds),
    };
  }

  // ---- connection–shard affinity in a block ---------------------------------------

  /** The connection of the open block a shard group is bound to (it holds its locks and writes), or null. */
  affinityLink(node: WorkerNode, shardIds: readonly number[], evenWithoutExtras = false): BackendLink | null {
    // Without extra connections every shard group is on the node's one connection (the router path stops here).
    if (this.blockExtras.length === 0 && !evenWithoutExtras) return null;
    return this.affinity.linkFor(node, shardIds);
  }

  /** Binds the shard groups a statement of the block used to the connection it used. */
  noteAccess(link: BackendLink, node: WorkerNode, shardIds: readonly number[]): void {
    if (this.coordinator.status === 0x49) return;
    this.affinity.note(link, node, shardIds);
  }

  /** The block's extra connections (slow start), for the session's status and cancel. */
  get extraLinks(): readonly BackendLink[] {
    return this.blockExtras.map((e) => e.link);
  }

  /**
   * Runs a pull (rows of distributed tables copied into temporary tables on
   * the coordinator) with consistent snapshots: outside a block, one
   * REPEATABLE READ transaction per node, snapshots taken under the gate;
   * in a READ COMMITTED block, the gate is held while the pull runs.
   */
  pull(
    pulls: readonly PullTable[],
    linkFor: (node: WorkerNode) => Promise<BackendLink>,
    run: (linkFor: (node: WorkerNode) => Promise<BackendLink>) => Promise<PgError | null>,
  ): Promise<PgError | null> {
    const ctx = {
      inBlock: this.coordinator.status !== 0x49,
      readCommitted: this.readCommitted,
      gate: () => this.gate(),
      notePulledInBlock: () => (this.pulledInBlock = true),
      translated: (err: PgError | null) => this.translated(err),
    };
    return runConsistentPull(ctx, pulls, linkFor, run);
  }
}
