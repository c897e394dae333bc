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
 * This file owns transaction control and the statements that span nodes;
 * the block's state (joined links, joining, lost links, the reset at the
 * block's end) lives in its base class, block-state.ts; the pieces with one
 * job each live beside it: block-opening.ts (BEGIN, characteristics, SET LOCALs, savepoints),
 * block-time.ts (what BEGIN asks the coordinator, the block's time),
 * block-deadlock.ts (the deadlock detector's tag and victim),
 * block-snapshots.ts (REPEATABLE READ snapshots), block-commit.ts
 * (1PC/2PC), block-extras.ts (extra connections, shard-group affinity),
 * session-sets.ts (session-level SETs), consistent-pull.ts (pulls under
 * snapshots), insert-evaluation.ts, multi-shard-run.ts, txn-wire.ts.
 */
import { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { queryOnLink, type CollectedResult } from '../executor/link-query.js';
import type { WorkerNode } from '../metadata/types.js';
import type { PullTable, Route } from '../planner/route.js';
import { mentionsAnyWord } from '../sql/lexer.js';
import { runMultiShardTasks, type TaskRunContext } from './multi-shard-run.js';
import { runConsistentPull } from './consistent-pull.js';
import { BlockOpening, isChain } from './block-opening.js';
import { commitNode, commitNodes, commitWritten, type CommitContext } from './block-commit.js';
import { BlockState } from './block-state.js';

const IMPLICIT_KINDS = new Set<Route['kind']>(['local', 'router', 'multi-shard', 'pull', 'evaluate-insert']);
/** Words of row-locking clauses (FOR UPDATE / SHARE …): such reads may wait for locks. */
const LOCKING_WORDS = new Set(['for']);

export class SessionTransaction extends BlockState {
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
