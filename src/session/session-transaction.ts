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
 * Snapshots (atomic visibility, transaction/commit-gate.ts): a multi-node
 * read outside a block runs under one snapshot per node taken under the
 * commit gate (multi-shard-run.ts, consistent-pull.ts); a REPEATABLE READ
 * block takes every node's snapshot together (block-snapshots.ts); a READ
 * COMMITTED block holds the gate while a multi-node read's statements start.
 * `SET pgweave.atomic_visibility = off` skips all of it.
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
 * This file owns the block's state (joined links, lost links) and
 * transaction control; the pieces with one job each live beside it:
 * block-opening.ts (BEGIN, characteristics, SET LOCALs, savepoints),
 * block-time.ts (what BEGIN asks the coordinator, the block's time),
 * block-deadlock.ts (the deadlock detector's tag and victim),
 * block-snapshots.ts (REPEATABLE READ snapshots), block-commit.ts
 * (1PC/2PC), block-extras.ts (extra connections, shard-group affinity),
 * session-sets.ts (session-level SETs), consistent-pull.ts (pulls under
 * snapshots), insert-evaluation.ts, multi-shard-run.ts, txn-wire.ts.
 */
import { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import type { BackendLink } from '../executor/backend-link.js';
import { queryOnLink, type CollectedResult } from '../executor/link-query.js';
import type { WorkerNode } from '../metadata/types.js';
import type { PullTable, Route } from '../planner/route.js';
import type { SessionServices } from './services.js';
import { quoteLiteral } from '../sql/quote.js';
import { mentionsAnyWord } from '../sql/lexer.js';
import type { CommitGate } from '../transaction/commit-gate.js';
import { runMultiShardTasks, type TaskRunContext } from './multi-shard-run.js';
import { E_READY_UNREAD } from './txn-wire.js';
import { InsertEvaluations } from './insert-evaluation.js';
import { BlockExtras, type ExtraConnections } from './block-extras.js';
import { runConsistentPull } from './consistent-pull.js';
import { BlockOpening, isChain } from './block-opening.js';
import { BlockSnapshots, type SnapshotHost } from './block-snapshots.js';
import { commitNode, commitNodes, commitWritten, type CommitContext } from './block-commit.js';
import { BlockTime } from './block-time.js';
import { SessionSets } from './session-sets.js';
import { BlockDeadlockTag } from './block-deadlock.js';

const IMPLICIT_KINDS = new Set<Route['kind']>(['local', 'router', 'multi-shard', 'pull', 'evaluate-insert']);
/** Words of row-locking clauses (FOR UPDATE / SHARE …): such reads may wait for locks. */
const LOCKING_WORDS = new Set(['for']);

function parseOff(value: string | undefined): boolean {
  return value !== undefined && /^\s*'?(off|false|no|0|f|n)'?\s*$/i.test(value);
}

export class SessionTransaction {
  /** BEGIN, characteristics, SET LOCALs and savepoints of the open block (block-opening.ts). */
  private block = new BlockOpening();
  /** Session-level SETs, replayed on new worker links (session-sets.ts). */
  readonly sets = new SessionSets();
  /** The block is an implicit transaction of a multi-statement query. */
  private implicit = false;
  /** Pull queries created temporary tables in this block (the coordinator then cannot be prepared). */
  private pulledInBlock = false;
  /** REPEATABLE READ blocks: every node's snapshot, taken together (block-snapshots.ts). */
  private readonly snapshots = new BlockSnapshots();
  /** The block's tag for the deadlock detector, and whether it is the victim (block-deadlock.ts). */
  private readonly deadlock = new BlockDeadlockTag();
  /** A node of the open block was lost: the block can only roll back. */
  broken = false;
  /** Why the block broke, until a statement has reported it. */
  private lostInBlock: PgError | null = null;
  /** The block's extra connections (slow start) and shard-group affinity (block-extras.ts). */
  private readonly extras: BlockExtras;
  /** Whether the coordinator's xid comes only from rolled-back INSERT evaluations (insert-evaluation.ts). */
  private readonly evaluations: InsertEvaluations;
  /** The block's characteristics and time as the coordinator gave them at BEGIN (block-time.ts). */
  private readonly time = new BlockTime();

  constructor(
    private readonly coordinator: BackendLink,
    private readonly workers: Map<number, BackendLink>,
    private readonly services: SessionServices,
    private readonly settings: ReadonlyMap<string, string> = new Map(),
    /** Opens (or reuses) the session's link to a node without joining it to the block. */
    private readonly openLink: ((node: WorkerNode) => Promise<BackendLink>) | null = null,
    extraConnections: ExtraConnections | null = null,
  ) {
    this.extras = new BlockExtras(services, extraConnections);
    this.evaluations = new InsertEvaluations(coordinator);
  }

  /** True while worker links take part in the open transaction block. */
  get involvesWorkers(): boolean {
    for (const w of this.workers.values()) if (w.inTransaction) return true;
    return false;
  }

  private joined(): BackendLink[] {
    const out = [...this.workers.values()].filter((w) => w.inTransaction);
    for (const link of this.extras.links) if (link.inTransaction) out.push(link);
    return out;
  }

  /** Whether session-level SETs were made (worker connections then stay with the session). */
  get hasSessionSettings(): boolean {
    return this.sets.any;
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
    this.sets.remember(text, [...this.workers.values(), ...this.extraLinks]);
  }

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

  /** Sends the block's opening to a link; resolves when the link has answered it (its snapshot exists in REPEATABLE READ). */
  private joinLink(link: BackendLink, snapshot: string | null = null): Promise<PgError | null> {
    link.inTransaction = true;
    link.rewriteError = (err) => this.translate(err);
    // An extra connection of a REPEATABLE READ block imports the node's block snapshot before any query.
    const imported = snapshot === null ? null : `SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`;
    return this.block.send(link, imported, this.deadlock.ensure());
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
    const victim = this.deadlock.victimError(err);
    if (!victim) return null;
    this.broken = true;
    for (const w of this.joined()) {
      if (w.pending > 0 || w.lost) continue;
      w.send(encodeQuery('ROLLBACK'), [E_READY_UNREAD]);
      w.inTransaction = false;
      w.wroteInTransaction = false;
    }
    return victim;
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
    this.deadlock.end();
    this.broken = false;
    this.lostInBlock = null;
    this.block = new BlockOpening();
    this.implicit = false;
    this.pulledInBlock = false;
    this.evaluations.reset();
    this.time.reset();
    this.snapshots.reset();
    for (const w of this.workers.values()) {
      w.inTransaction = false;
      w.wroteInTransaction = false;
    }
    this.extras.endBlock(!this.hasSessionSettings);
  }

  // ---- transaction control -------------------------------------------------------

  /** Told of every transaction control statement and its outcome (the settings' scopes, setting-scopes.ts). */
  onControl: ((verb: string, text: string, out: string | PgError) => void) | null = null;

  /** Runs transaction control across the nodes; returns the command tag or the error. */
  async run(verb: string, text: string): Promise<string | PgError> {
    const out = await this.runControl(verb, text);
    this.onControl?.(verb, text, out);
    return out;
  }

  private async runControl(verb: string, text: string): Promise<string | PgError> {
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
    const opensBlock = this.coordinator.status === 0x49;
    const start = await this.time.begin(this.coordinator, text, opensBlock);
    if (start instanceof PgError) return start;
    if (start) {
      this.reset();
      this.time.time = start.time;
      this.block = BlockOpening.begun(text, start.isolation, start.readOnly, start.deferrable);
      this.evaluations.begun();
    }
    return /^\s*start/i.test(text) ? 'START TRANSACTION' : 'BEGIN';
  }

  /**
   * Before the statements of a multi-statement simple query: when they reach
   * a worker and no block is open, opens an implicit block, so the query
   * commits atomically as PostgreSQL would run it (`single`: one statement
   * writing the coordinator and workers, route-runner.ts `runInsertSelect`).
   */
  async beginImplicit(routes: readonly Route[], single = false): Promise<boolean> {
    if (routes.length < (single ? 1 : 2) || this.coordinator.status !== 0x49) return false;
    if (!single && (!routes.every((r) => IMPLICIT_KINDS.has(r.kind)) || routes.every((r) => r.kind === 'local'))) return false;
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
   * The coordinator's transaction timestamp (now(), ISO 8601 with its UTC
   * offset) that transaction-time functions of INSERTs stand for: once per
   * block, per statement outside one (block-time.ts).
   */
  async transactionTime(ask: (sql: string) => Promise<string>): Promise<string> {
    return this.time.get(this.coordinator, ask, this.evaluations);
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
    const extra = this.extras.connections;
    return {
      inBlock,
      settings: this.settings,
      gate: () => this.gate(),
      holdGateInBlock: (route) => this.readCommitted && !route.tasks.some((t) => mentionsAnyWord(t.sql, LOCKING_WORDS)),
      ensureTag: () => this.deadlock.ensure(),
      translate: (err) => this.translate(err),
      commitNode: (l) => commitNode(this.commitContext(), l),
      commitMultiNode: (links) => commitWritten(this.commitContext(), links),
      endOwnTransaction: () => this.deadlock.end(),
      openExtra: (node) => extra!.open(node),
      releaseExtra: (node, link) => extra!.release(node, link, !this.hasSessionSettings),
      // DEFERRABLE blocks cannot import a snapshot; without a way to open connections there is nothing to add.
      blockAllowsExtras: () => extra !== null && !this.block.deferrable && !this.broken,
      joinExtra: async (node, link, snapshot) => {
        const err = !this.readCommitted && snapshot === null ? true : await this.joinLink(link, snapshot);
        if (err) {
          if (err !== true && !link.lost && link.status !== 0x49) await queryOnLink(link, 'ROLLBACK');
          link.inTransaction = false;
          extra!.release(node, link, !this.hasSessionSettings);
          return false;
        }
        this.extras.add(node, link);
        return true;
      },
      blockSnapshot: async (node, first) => (this.readCommitted ? null : this.snapshots.exportFor(node, first)),
      affinity: (node, shardIds) => this.affinityLink(node, shardIds, true),
      noteAccess: (link, node, shardIds) => this.noteAccess(link, node, shardIds),
    };
  }

  // ---- connection–shard affinity in a block ---------------------------------------

  /** The connection of the open block a shard group is bound to (it holds its locks and writes), or null. */
  affinityLink(node: WorkerNode, shardIds: readonly number[], evenWithoutExtras = false): BackendLink | null {
    return this.extras.linkFor(node, shardIds, evenWithoutExtras);
  }

  /** Binds the shard groups a statement of the block used to the connection it used. */
  noteAccess(link: BackendLink, node: WorkerNode, shardIds: readonly number[]): void {
    if (this.coordinator.status === 0x49) return;
    this.extras.note(link, node, shardIds);
  }

  /** The block's extra connections (slow start), for the session's status and cancel. */
  get extraLinks(): readonly BackendLink[] {
    return this.extras.links;
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
