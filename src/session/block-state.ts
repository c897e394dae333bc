/**
 * The state of the session's open transaction block, below its transaction
 * control (session-transaction.ts): which worker links joined the block and
 * which of them wrote, how a worker joins (the block's opening, its
 * REPEATABLE READ snapshot, the deadlock tag), a link lost in the block, the
 * deadlock victim's error, the hooks run after a commit, and the reset when
 * the block ends.
 */
import { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import type { BackendLink } from '../executor/backend-link.js';
import type { WorkerNode } from '../metadata/types.js';
import type { SessionServices } from './services.js';
import { unshardErrorNames } from './shard-error-names.js';
import { clientPositioned, type ErrorOrigin } from './error-positions.js';
import { quoteLiteral } from '../sql/quote.js';
import type { CommitGate } from '../transaction/commit-gate.js';
import { E_READY_UNREAD } from './txn-wire.js';
import { InsertEvaluations } from './insert-evaluation.js';
import { BlockExtras, type ExtraConnections } from './block-extras.js';
import { BlockOpening } from './block-opening.js';
import { BlockSnapshots, type SnapshotHost } from './block-snapshots.js';
import { BlockTime } from './block-time.js';
import { SessionSets } from './session-sets.js';
import { BlockDeadlockTag } from './block-deadlock.js';

function parseOff(value: string | undefined): boolean {
  return value !== undefined && /^\s*'?(off|false|no|0|f|n)'?\s*$/i.test(value);
}

export abstract class BlockState {
  /** BEGIN, characteristics, SET LOCALs and savepoints of the open block (block-opening.ts). */
  protected block = new BlockOpening();
  /** Session-level SETs, replayed on new worker links (session-sets.ts). */
  readonly sets = new SessionSets();
  /** The block is an implicit transaction of a multi-statement query. */
  protected implicit = false;
  /** Pull queries created temporary tables in this block (the coordinator then cannot be prepared). */
  protected pulledInBlock = false;
  /** REPEATABLE READ blocks: every node's snapshot, taken together (block-snapshots.ts). */
  protected readonly snapshots = new BlockSnapshots();
  /** The block's tag for the deadlock detector, and whether it is the victim (block-deadlock.ts). */
  protected readonly deadlock = new BlockDeadlockTag();
  /** A node of the open block was lost: the block can only roll back. */
  broken = false;
  /** Why the block broke, until a statement has reported it. */
  protected lostInBlock: PgError | null = null;
  /** The block's extra connections (slow start) and shard-group affinity (block-extras.ts). */
  protected readonly extras: BlockExtras;
  /** Whether the coordinator's xid comes only from rolled-back INSERT evaluations (insert-evaluation.ts). */
  protected readonly evaluations: InsertEvaluations;
  /** The block's characteristics and time as the coordinator gave them at BEGIN (block-time.ts). */
  protected readonly time = new BlockTime();

  constructor(
    protected readonly coordinator: BackendLink,
    protected readonly workers: Map<number, BackendLink>,
    protected readonly services: SessionServices,
    protected readonly settings: ReadonlyMap<string, string> = new Map(),
    /** Opens (or reuses) the session's link to a node without joining it to the block. */
    protected readonly openLink: ((node: WorkerNode) => Promise<BackendLink>) | null = null,
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

  protected joined(): BackendLink[] {
    const out = [...this.workers.values()].filter((w) => w.inTransaction);
    for (const link of this.extras.links) if (link.inTransaction) out.push(link);
    return out;
  }

  /** Whether session-level SETs were made (worker connections then stay with the session). */
  get hasSessionSettings(): boolean {
    return this.sets.any;
  }

  /** The commit gate, when this session wants atomic visibility. */
  protected gate(): CommitGate | null {
    const gate = this.services.commitGate ?? null;
    if (!gate || parseOff(this.settings.get('pgweave.atomic_visibility'))) return null;
    return gate;
  }

  protected get readCommitted(): boolean {
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
  protected joinLink(link: BackendLink, snapshot: string | null = null): Promise<PgError | null> {
    link.inTransaction = true;
    // An extra connection of a REPEATABLE READ block imports the node's block snapshot before any query.
    const imported = snapshot === null ? null : `SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`;
    return this.block.send(link, imported, this.deadlock.ensure());
  }

  protected snapshotHost(): SnapshotHost {
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
   * A node's error as the client must see it: the deadlock victim's
   * cancellation — the block is then aborted; its idle nodes roll back at
   * once, so their locks go (as PostgreSQL's own victim's do) before the
   * client's ROLLBACK — or any other with the client's names in place of
   * shard names (shard-error-names.ts) and its position in the client's
   * text (`origin`: error-positions.ts); null: as it is.
   */
  translate(err: PgError, origin?: ErrorOrigin): PgError | null {
    const victim = this.deadlock.victimError(err);
    if (!victim) {
      const named = unshardErrorNames(err, this.services.catalog());
      return clientPositioned(named ?? err, origin) ?? named;
    }
    this.broken = true;
    for (const w of this.joined()) {
      if (w.pending > 0 || w.lost) continue;
      w.send(encodeQuery('ROLLBACK'), [E_READY_UNREAD]);
      w.inTransaction = false;
      w.wroteInTransaction = false;
    }
    return victim;
  }

  protected translated(err: PgError | null): PgError | null {
    return err ? (this.translate(err) ?? err) : null;
  }

  /** Work to do once the open block has committed everywhere (e.g. tell every coordinator a DDL changed the catalog). */
  protected afterCommitHooks: Array<() => Promise<void>> = [];

  /** Runs `hook` after the open block commits; dropped when it rolls back. */
  afterCommit(hook: () => Promise<void>): void {
    this.afterCommitHooks.push(hook);
  }

  /** Runs (and forgets) the hooks of a block that just committed; their failures do not undo the commit. */
  protected async committed(hooks: Array<() => Promise<void>>): Promise<void> {
    for (const hook of hooks) await hook().catch(() => {});
  }

  protected reset(): void {
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

  /** The block's extra connections (slow start), for the session's status and cancel. */
  get extraLinks(): readonly BackendLink[] {
    return this.extras.links;
  }
}
