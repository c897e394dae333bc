/**
 * The state of a session and the plumbing every part uses: its backend links
 * (coordinator PostgreSQL and workers, opened as the client's role), output
 * ordering across them (`switchTo`, `reply`), the transaction status the
 * client sees, the catalog and the planner call. Beside it: set-observer.ts
 * (the settings and search_path as SETs and rollbacks change them),
 * extra-links.ts (slow start's extra connections), route-barrier.ts (the
 * write barrier of shard moves per route). See session.ts for the statement
 * loop.
 */
import type { Duplex } from 'node:stream';
import { type TransactionStatus } from '../protocol/constants.js';
import { MessageFramer } from '../protocol/framer.js';
import { PgError } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { writeErrorResponse } from '../protocol/backend/error-response.js';
import { unshardErrorNames } from './shard-error-names.js';
import { clientPositioned, inQueryString, type ErrorOrigin } from './error-positions.js';
import type { PositionOrigin } from '../sql/text-splice.js';
import { EscapedTexts } from './escaped-texts.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import { encodeQuery, encodeExtendedQuery } from '../pool/frontend-encoders.js';
import { BackendLink, type Expectation } from '../executor/backend-link.js';
import { writeGateFor, type WriteGate } from '../executor/write-gate.js';
import type { ChannelTenant } from '../executor/pipelined-channel.js';
import { collectOnLink, decodeDataRow, decodeFieldNames } from '../executor/link-query.js';
import { type Node } from '../sql/parse.js';
import type { Catalog, WorkerNode } from '../metadata/types.js';
import { planStatement, type StatementPlan } from '../planner/plan-statement.js';
import type { Route } from '../planner/route.js';
import type { CopyInSink, SessionServices } from './services.js';
import { ParkedLinks } from './parked-links.js';
import { SessionTransaction } from './session-transaction.js';
import { encodeFlush } from './extended-encoders.js';
import { SessionOptions, PlannedStatement, Portal, LOCAL_STATEMENT } from './session-parts.js';
import { enterWriteBarrier, waitForWriteBarrier } from './route-barrier.js';
import { ExtraLinks } from './extra-links.js';
import { SetObserver } from './set-observer.js';

export abstract class SessionBase {
  protected readonly framer: MessageFramer;
  protected state: 'created' | 'running' | 'closed' = 'created';
  protected readonly coordinator: BackendLink;
  protected readonly workers = new Map<number, BackendLink>();
  /** The node of each worker link, to give it back to the pool. */
  protected readonly workerNodes = new Map<number, WorkerNode>();
  /** Links of `workers` offered to other sessions while this one is between transactions (parked-links.ts). */
  protected readonly parked: ParkedLinks;
  protected readonly connecting = new Map<number, Promise<BackendLink>>();
  /** The session's tenant on a pipelined channel per worker (autocommit router statements). */
  protected readonly tenants = new Map<number, ChannelTenant>();
  /** Set by a handler that consumed client messages past its own (a pipelined Bind … Sync): where the pump goes on. */
  protected consumedTo = 0;
  protected readonly inbox: Buffer[] = [];
  protected pumping = false;
  /** The link whose forwarded replies are in flight; null when the session itself writes. */
  protected active: BackendLink | null = null;
  /** Links that received messages since the last Sync. */
  protected readonly cycleLinks = new Set<BackendLink>();
  protected cycleFailed = false;
  /**
   * Where the statement running starts in the client's Query string, in
   * characters: a multi-statement Query's statements run one by one, each
   * on its own text, and their errors' positions count from the string's
   * start (error-positions.ts). 0 otherwise.
   */
  protected statementOffset = 0;
  /** The escape of statement names in the Query being handled (client-statement-names.ts), when it changed the text. */
  protected queryEscape: PositionOrigin | null = null;
  /** The client's texts that the escape of statement names changed, for error positions. */
  protected readonly escapedTexts = new EscapedTexts();

  /** `origin` of the statement being run, told in the client's whole query string (error-positions.ts). */
  protected inQueryString(origin: ErrorOrigin): ErrorOrigin {
    return inQueryString(origin, this.statementOffset, this.queryEscape);
  }
  /** An extended-protocol message came since the last Sync: the cycle's links wait for it (else a link of simple Queries is free once answered). */
  protected cycleExtended = false;
  /** Target of CopyData during COPY: the link that received the COPY statement. */
  protected copyLink: BackendLink;
  protected readonly statements = new Map<string, PlannedStatement | typeof LOCAL_STATEMENT>();
  protected readonly portals = new Map<string, Portal>();
  protected nextStatementId = 1;
  protected readonly planCache = new Map<string, PlannedStatement>();
  protected relevantWords: Set<string> = new Set();
  protected relevantVersion = -1;
  protected relevantFunctions: ReadonlySet<string> | undefined = undefined;
  protected readonly txn: SessionTransaction;
  readonly settings = new Map<string, string>();
  /** The settings map and search_path as SETs and rollbacks change them (set-observer.ts). */
  private readonly setObserver: SetObserver;
  protected readonly out = new MessageWriter(1024);
  /**
   * A COPY … FROM STDIN into a distributed table in progress; `extended`:
   * started by Execute (no ReadyForQuery of its own, an error skips to Sync).
   */
  protected copyIn: { sink: CopyInSink; failed: PgError | null; extended: boolean; release?: () => void } | null = null;
  onClose: (() => void) | null = null;

  constructor(
    protected readonly client: Duplex,
    backend: BackendConnection,
    options: SessionOptions,
    protected readonly services: SessionServices,
  ) {
    this.framer = new MessageFramer(options.maxMessageSize);
    this.coordinator = this.makeLink(backend, -1);
    this.copyLink = this.coordinator;
    this.parked = new ParkedLinks({
      workers: this.workers,
      workerNodes: this.workerNodes,
      services,
      mayLetGo: (link) => this.state === 'running' && link.reusable && !link.inTransaction && !this.cycleLinks.has(link),
      forget: (nodeId, link) => this.forgetLink(nodeId, link),
    });
    const extraLinks = new ExtraLinks(services, {
      makeLink: (conn, nodeId, prepared, node) => this.makeLink(conn, nodeId, prepared, node),
      state: () => this.state,
      replaySets: (link) => this.txn.sets.replay(link),
    });
    this.txn = new SessionTransaction(this.coordinator, this.workers, services, this.settings, (node) => this.openLink(node), extraLinks);
    this.setObserver = new SetObserver(this.settings, services, this.txn, {
      unparkAll: () => this.parked.unparkAll(),
      workerLinks: () => [...this.workers.values(), ...this.txn.extraLinks],
      // Cached plans are dropped and prepared statements planned again at their next Bind (a catalog version no catalog has).
      searchPathChanged: () => {
        this.planCache.clear();
        for (const st of this.statements.values()) if (st) st.plan = Object.create(st.plan, { catalogVersion: { value: -1 } }) as StatementPlan;
      },
    });
  }

  get transactionStatus(): TransactionStatus {
    return String.fromCharCode(this.statusByte()) as TransactionStatus;
  }

  protected statusByte(): number {
    const c = this.coordinator.status;
    if (c === 0x45 || (this.txn.broken && c !== 0x49)) return 0x45;
    for (const w of this.workers.values()) if (w.inTransaction && w.status === 0x45) return 0x45;
    for (const w of this.txn.extraLinks) if (w.inTransaction && w.status === 0x45) return 0x45;
    if (c === 0x54) return 0x54;
    return 0x49;
  }

  protected makeLink(conn: BackendConnection, nodeId: number, prepared?: Set<string>, node?: WorkerNode): BackendLink {
    const link = new BackendLink(conn, this.client, nodeId, prepared);
    if (node) link.typeOids = this.services.typeOids?.(node) ?? null;
    if (nodeId >= 0) link.onIdle = () => {
      if (!this.pumping) this.releaseIdleWorkers();
    };
    link.statusForClient = () => this.statusByte();
    // Skip to Sync only when the failed request's Sync is still to come from the client.
    link.onForwardedError = () => {
      if (!link.syncPending) this.cycleFailed = true;
    };
    link.onLost = (l) => this.onLinkLost(l);
    // Every forwarded error as the client must see it, in a block or not (block-state.ts `translate`).
    // A worker runs no text of the client's as it is: a position of a request without origin means nothing to the client.
    link.rewriteError = nodeId >= 0 ? (err, origin) => this.txn.translate(err, origin ?? null) : (err, origin) => this.txn.translate(err, origin);
    return link;
  }

  /**
   * A tenant on a shared pipelined channel to `node` for an autocommit
   * statement, or null when the statement needs the session's own link: in
   * a transaction block (or one on its way), with session-level SETs (they
   * live on the session's connections), during COPY, inside an extended
   * cycle with replies still to come (they may wait for the client's Sync,
   * which a pipelined Bind takes along), or when no channel is ready or all
   * are stalled. A simple Query (`query`) needs no Sync.
   */
  protected pipelineTenant(node: WorkerNode, query: boolean): ChannelTenant | null {
    if (this.statusByte() !== 0x49 || this.txn.hasSessionSettings || this.txn.involvesWorkers) return null;
    if (this.copyIn || this.cycleFailed || (!query && !this.cycleIdle())) return null;
    // A session stays on its channel while that one serves well (no lookup, no new tenant).
    let t = this.tenants.get(node.nodeId);
    if (t && !t.lost && t.channel.usable && !t.channel.stalled) return t;
    const channel = this.services.pipelineFor?.(node)?.pick();
    if (!channel) return null;
    if (t && t.channel === channel && !t.lost) return t;
    t = channel.tenant(this.client);
    t.statusForClient = () => this.statusByte();
    t.typeOids = this.services.typeOids?.(node) ?? null;
    t.onLost = (l) => this.onLinkLost(l);
    t.rewriteError = (err, origin) => this.txn.translate(err, origin ?? null);
    this.tenants.set(node.nodeId, t);
    return t;
  }

  /** No link of the current extended cycle waits for replies (links a simple Query left there are done). */
  private cycleIdle(): boolean {
    for (const l of this.cycleLinks) if (l.pending > 0) return false;
    return true;
  }

  /** After waiting for earlier replies: whether the session is still outside any block (a pipelined statement may go). */
  protected stillAutocommit(): boolean {
    return this.statusByte() === 0x49 && !this.txn.hasSessionSettings && !this.txn.involvesWorkers && !this.cycleFailed;
  }

  protected catalogNow(): Catalog | null {
    return this.services.catalog();
  }

  /**
   * The load of the names of functions that may change roles (src/commands/roles/watch.ts)
   * for this catalog version; null when they are loaded already or not needed (no workers),
   * so a Query or Parse waits only on a real load.
   */
  protected roleFunctionsLoad(catalog: Catalog): Promise<unknown> | null {
    const s = this.services;
    if (!s.loadRoleFunctions || s.roleFunctionsNow?.(catalog)) return null;
    if (!catalog.nodes.some((n) => n.isActive && n.groupId !== 0)) return null;
    return s.loadRoleFunctions(catalog).catch(() => null);
  }

  protected async catalog(): Promise<Catalog> {
    return this.catalogNow() ?? (await this.services.loadCatalog());
  }

  /** Before talking to `link` (or writing own replies, null): the previous link must have answered. */
  protected needsSwitch(link: BackendLink | null): boolean {
    return this.active !== null && this.active !== link && this.active.pending > 0;
  }

  protected async switchTo(link: BackendLink | null): Promise<void> {
    const prev = this.active;
    if (prev && prev !== link && prev.pending > 0) {
      // replies held back until a Sync: ask for them now
      if (this.cycleLinks.has(prev)) prev.send(encodeFlush(), []);
      await prev.idle();
    }
    this.active = link;
  }

  /** Writes a reply of the session's own, in order. */
  protected async reply(write: (w: MessageWriter) => void): Promise<void> {
    if (this.needsSwitch(null)) await this.switchTo(null);
    else this.active = null;
    write(this.out);
    this.toClient(this.out.flush());
  }

  protected async replyBytes(bytes: Buffer): Promise<void> {
    if (this.needsSwitch(null)) await this.switchTo(null);
    else this.active = null;
    this.toClient(bytes);
  }

  /**
   * The session's own bytes go through the client socket's gate, like the
   * bytes its links forward: one socket write per event-loop turn
   * (executor/write-gate.ts), e.g. BEGIN's ParseComplete … ReadyForQuery.
   */
  protected toClient(bytes: Buffer): void {
    writeGateFor(this.client).write(bytes);
  }

  /** The client gate held until the pump finishes the current chunk (`holdClientWrites`). */
  private heldGate: WriteGate | null = null;

  /**
   * Keeps the session's replies corked until the pump is through the
   * client chunk it works on, across backend round trips (a deferred
   * portal's BindComplete … ReadyForQuery in one write). Only for work whose
   * output the session writes itself: nothing in a chunk waits for the
   * client, and a refused write ends the cork (executor/write-gate.ts).
   */
  protected holdClientWrites(): void {
    if (this.heldGate || !this.pumping) return;
    this.heldGate = writeGateFor(this.client);
    this.heldGate.hold();
  }

  /** The pump is through a chunk: held replies leave at the end of this turn. */
  protected releaseClientWrites(): void {
    const gate = this.heldGate;
    this.heldGate = null;
    gate?.release();
  }

  /**
   * Replies an error of the session's making or collected from a node.
   * `origin`: where the text whose position it carries came from
   * (error-positions.ts); by default text pgweave made, so a position goes.
   */
  protected async replyError(err: PgError, origin: ErrorOrigin = null): Promise<void> {
    // Errors collected from shards (COPY, INSERT … SELECT, pulls) name the client's objects too.
    const named = unshardErrorNames(err, this.catalogNow()) ?? err;
    const positioned = clientPositioned(named, this.inQueryString(origin)) ?? named;
    await this.reply((w) => writeErrorResponse(w, positioned.fields));
  }

  protected endCycle(): void {
    this.cycleLinks.clear();
    this.cycleFailed = false;
    this.cycleExtended = false;
  }

  protected plan(stmt: Node, text: string, catalog: Catalog): StatementPlan {
    return planStatement(stmt, Buffer.from(text, 'utf8'), {
      catalog,
      searchPath: this.setObserver.searchPath,
      isCommand: (n) => this.services.isCommand(n),
      roleFunctions: this.services.roleFunctionsNow?.(catalog) ?? undefined,
    });
  }

  /** Counts a write as in flight past the write barrier of shard moves; null while one of its shards is being cut over (route-barrier.ts). */
  protected enterWriteBarrier(route: Route): (() => void) | null {
    return enterWriteBarrier(this.services.database, route);
  }

  protected waitForWriteBarrier(route: Route): Promise<void> {
    return waitForWriteBarrier(this.services.database, route);
  }

  /** Keeps the session's view of SET search_path and custom settings current (set-observer.ts). */
  protected observeLocal(stmt: Node, text: string, route: Route): void {
    this.setObserver.observe(stmt, text, route);
  }

  /** Sends one forwarded message to a link, keeping output in order. */
  protected async sendTo(link: BackendLink, bytes: Buffer, e: Expectation): Promise<void> {
    if (this.needsSwitch(link)) await this.switchTo(link);
    this.active = link;
    this.cycleLinks.add(link);
    this.copyLink = link;
    link.send(bytes, [e]);
  }

  protected sessionAccess() {
    return {
      runAsClient: (sql: string, params?: ReadonlyArray<string | null>) => this.runAsClient(sql, params),
      settings: this.settings,
      inTransactionBlock: this.statusByte() !== 0x49,
      afterCommit: (hook: () => Promise<void>) => this.txn.afterCommit(hook),
    };
  }

  protected async runAsClient(sql: string, params?: ReadonlyArray<string | null>) {
    await this.coordinator.idle();
    const r = await collectOnLink(this.coordinator, params ? encodeExtendedQuery(sql, params) : encodeQuery(sql));
    if (r.error) throw r.error;
    return { fields: decodeFieldNames(r.rowDescription), rows: r.rows.map(decodeDataRow), command: r.tag };
  }

  /**
   * The session's link to a worker, opened as the client's role and joined
   * to the transaction. In a block, a statement on shards (`shardIds`) goes
   * to the connection that already used their shard group (affinity: it
   * holds their locks and writes), and binds the groups it uses to its own.
   */
  protected async linkForTask(node: WorkerNode, isWrite: boolean, shardIds?: readonly number[]): Promise<BackendLink> {
    const inBlock = this.statusByte() !== 0x49;
    if (inBlock && shardIds) {
      const bound = this.txn.affinityLink(node, shardIds);
      if (bound) {
        if (isWrite) bound.wroteInTransaction = true;
        return bound;
      }
    }
    const link = await this.openLink(node);
    await this.txn.join(link, inBlock, isWrite);
    if (inBlock && shardIds) this.txn.noteAccess(link, node, shardIds);
    return link;
  }

  /**
   * `linkForTask` without a promise when nothing needs waiting for: in a
   * block whose link to the node joined already (every statement of a
   * block after its first there, pgbench -N); null otherwise.
   */
  protected joinedLinkNow(node: WorkerNode, isWrite: boolean, shardIds: readonly number[]): BackendLink | null {
    const link = this.workers.get(node.nodeId);
    if (!link?.inTransaction || this.txn.affinityLink(node, shardIds) !== null || this.statusByte() === 0x49) return null;
    if (isWrite) link.wroteInTransaction = true;
    this.txn.noteAccess(link, node, shardIds);
    return link;
  }

  /** The session's link to a worker, opened as the client's role (not joined to the transaction). */
  protected async openLink(node: WorkerNode): Promise<BackendLink> {
    let link = this.workers.get(node.nodeId);
    if (link) this.parked.unpark(node.nodeId);
    else {
      let pending = this.connecting.get(node.nodeId);
      if (!pending) {
        pending = this.services.connectNode(node).then(({ conn, prepared }) => {
          const l = this.makeLink(conn, node.nodeId, prepared, node);
          if (this.state === 'closed') {
            // The session ended while connecting: nobody would ever close (or end the transaction of) this link.
            l.close();
            throw new PgError({ code: '08006', message: 'the session ended' });
          }
          this.workerNodes.set(node.nodeId, node);
          this.workers.set(node.nodeId, l);
          this.txn.sets.replay(l);
          return l;
        });
        this.connecting.set(node.nodeId, pending);
        pending.finally(() => this.connecting.delete(node.nodeId)).catch(() => {});
      }
      link = await pending;
    }
    return link;
  }

  protected onLinkLost(link: BackendLink): void {
    if (this.state !== 'running') return;
    if (link === this.coordinator) {
      this.fatal(link.unsolicitedError ?? new PgError({ severity: 'FATAL', code: '08006', message: `the coordinator lost its connection to PostgreSQL at ${link.conn.host}:${link.conn.port}` }));
      return;
    }
    // A worker went away: the session goes on; statements for it will reconnect.
    const answerClient = link.pendingForwarded > 0;
    const waitingForReady = link.pendingForwardedReady > 0;
    if (this.workers.get(link.nodeId) === link) {
      this.parked.unpark(link.nodeId);
      this.workers.delete(link.nodeId);
    }
    if (this.tenants.get(link.nodeId) === link) this.tenants.delete(link.nodeId);
    this.txn.linkLost(link);
    // A request still pending reports the loss itself; otherwise the block's next statement does.
    if (link.pending > 0) this.txn.takeLossError();
    if (answerClient) {
      // The forwarded request gets its error here (and its ReadyForQuery when the client awaits one);
      // the link's own error hook tells the waiting step (skip to Sync, or a failed statement).
      writeErrorResponse(this.out, link.lostError().fields);
      if (waitingForReady) writeReadyForQuery(this.out, this.transactionStatus);
      this.toClient(this.out.flush());
      link.onForwardedError?.();
      if (this.active === link) this.active = null;
    }
  }

  /**
   * Offers idle worker connections to other sessions when the session is
   * between transactions and has nothing in flight, keeping them meanwhile
   * (pool/idle-connection-pool.ts `park`): the next block finds its link
   * ready — listeners, prepared statements — while a session that needs a
   * connection and finds none idle claims it (parked-links.ts). Without parking,
   * they go back to the pool. Sessions with session-level SETs keep theirs
   * (the settings live on those connections).
   */
  protected releaseIdleWorkers(): void {
    // A closed session's links are being closed (a Terminate may follow a cancel): never pooled.
    if (this.state !== 'running' || this.pumping || this.copyIn || this.statusByte() !== 0x49 || this.txn.hasSessionSettings) return;
    for (const [nodeId, link] of this.workers) {
      if (this.parked.has(nodeId) || !link.reusable || link.inTransaction) continue;
      // A link of simple Queries only is done once answered; one of an extended cycle waits for its Sync.
      const inCycle = this.cycleLinks.has(link);
      if (inCycle && (this.cycleExtended || link.pending > 0)) continue;
      if (inCycle) this.cycleLinks.delete(link);
      const node = this.workerNodes.get(nodeId);
      if (!node || this.parked.park(nodeId, node, link)) continue;
      this.forgetLink(nodeId, link);
      this.services.releaseNode(node, link.detach(), link.prepared);
    }
  }

  private forgetLink(nodeId: number, link: BackendLink): void {
    this.workers.delete(nodeId);
    if (this.active === link) this.active = null;
    if (this.copyLink === link) this.copyLink = this.coordinator;
  }

  /** Reports a FATAL error to the client and ends the session. */
  protected abstract fatal(err: PgError): void;
}

