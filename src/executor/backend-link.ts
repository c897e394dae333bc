/**
 * A session's connection to one PostgreSQL node (the coordinator PostgreSQL
 * or a worker), with the bookkeeping that lets one client stream be served
 * by several backends.
 *
 * Every message the session sends pushes an Expectation: which reply
 * completes it and whether its replies go to the client (`forward`) or are
 * swallowed (messages the session injected itself: a lazily sent Parse, a
 * BEGIN opening the distributed transaction on this node, a replayed SET).
 * Replies are matched to expectations in order, exactly as PostgreSQL
 * answers them; after an ErrorResponse PostgreSQL skips everything up to the
 * next Sync, and so does the queue. When every reply of a chunk is
 * forwarded, the chunk is written to the client as is (no copy); only chunks
 * mixing forwarded and swallowed replies are cut.
 *
 * In `collect` mode the replies are handed to a collector instead (the
 * multi-shard executor decodes them), never to the client.
 *
 * Loss. A FATAL ErrorResponse (pg_terminate_backend, a shutdown, an idle
 * timeout) means the server closes the connection next: the link counts as
 * lost at once, the FATAL is not forwarded (a client must not see its own
 * session end for a worker's sake), and every pending expectation — and
 * every later `send` — completes with a class-08 error (08006, "connection
 * to node … was lost"), so no caller waits for replies that cannot come.
 * The session answers forwarded requests with that error (`onLost`).
 *
 * Backpressure. Forwarded bytes go through the client socket's WriteGate:
 * one 'drain' listener per client, however many links write to it.
 */
import type { Duplex } from 'node:stream';
import { Backend } from '../protocol/constants.js';
import { MessageFramer } from '../protocol/framer.js';
import { PgError } from '../protocol/errors.js';
import { readErrorResponse, writeErrorResponse } from '../protocol/backend/error-response.js';
import type { PositionOrigin } from '../sql/text-splice.js';
import { encodeMessage } from '../protocol/writer.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import { sendCancelRequest } from '../pool/backend-connection.js';
import { encodeTerminate } from '../pool/frontend-encoders.js';
import { writeGateFor, type WriteGate } from './write-gate.js';
import type { TypeOidMap } from './type-oids.js';
import { mapRelationsInPlace, type StagedTables } from './relation-oids.js';
import { isFatal, takeWholeMessages } from './backend-replies.js';

export const enum Completes {
  /** Query or Sync: completed by ReadyForQuery. */
  Ready,
  ParseComplete,
  BindComplete,
  CloseComplete,
  /** Describe: RowDescription or NoData (after ParameterDescription for statements). */
  Describe,
  /** Execute: CommandComplete, EmptyQueryResponse or PortalSuspended. */
  Execute,
  /** Flush: nothing comes back for it. */
  Nothing,
  /** CopyDone/CopyFail: nothing comes back; marks where the client's COPY data ends (see `route`). */
  CopyEnd,
}

export interface Expectation {
  completes: Completes;
  forward: boolean;
  /** With forward: pass the replies on but keep this ReadyForQuery (the session writes its own). */
  keepReady?: boolean;
  /** false: the replies are not handed to the link's collector (statements injected ahead of a collected one). */
  collect?: boolean;
  /** With !forward: an ErrorResponse still goes to the client (a Parse the coordinator injected failed: the client must learn why). */
  forwardError?: boolean;
  /** Called once the expectation completes (with the error, if the reply was one). */
  done?: (error: PgError | null, status: number) => void;
  /**
   * Where the text of the request came from, for an error's position
   * (session/error-positions.ts): its splice of the client's text, null for
   * text the coordinator made; absent: whatever the link's `rewriteError` assumes.
   */
  origin?: PositionOrigin | null;
}

/** Receives replies of `collect`-mode expectations (decoded by the caller). */
export type Collector = (type: number, buf: Buffer, start: number, end: number) => void;

export class BackendLink {
  private readonly framer = new MessageFramer();
  private readonly queue: Expectation[] = [];
  private head = 0;
  /** Node transaction status from the last ReadyForQuery: 'I', 'T' or 'E' as a char code. */
  status = 0x49;
  /** Set while this node is part of the session's transaction block. */
  inTransaction = false;
  /** Whether this node has been written in the current transaction. */
  wroteInTransaction = false;
  collector: Collector | null = null;
  /** Rewrites the status byte of forwarded ReadyForQuery messages (the session's own status). */
  statusForClient: (() => number) | null = null;
  private waiters: Array<() => void> = [];
  lost = false;
  /** Called when an error reply goes to the client (the session then skips to Sync). */
  onForwardedError: (() => void) | null = null;
  /** Replaces a forwarded ErrorResponse (a distributed-deadlock victim's cancel becomes 40P01, shard names the client's); null keeps it. */
  rewriteError: ((err: PgError, origin: PositionOrigin | null | undefined) => PgError | null) | null = null;
  /** An ErrorResponse the server sent unasked (a FATAL such as an idle-in-transaction timeout before it closes). */
  unsolicitedError: PgError | null = null;
  private replacement: Buffer | null = null;
  onLost: ((link: BackendLink) => void) | null = null;
  /** A worker's link: its RowDescriptions and ParameterDescriptions get the coordinator's type OIDs (type-oids.ts). */
  typeOids: TypeOidMap | null = null;
  /**
   * The coordinator link's staging tables (pulled tables, partial and
   * intermediate results) as the client may see them in RowDescriptions:
   * what PostgreSQL says of the client's statement, else the source table
   * or 0/0 — never the staging table's OID. Set by the
   * session before a statement over them (session/staged-relations.ts),
   * until that statement's ReadyForQuery.
   */
  stagedRelations: StagedTables | null = null;
  /** Replies held back (in order) while `typeOids` loads the OIDs of the first of them. */
  private heldBack: Buffer | null = null;
  /** The current result's binary columns whose values embed type OIDs (TypeOidMap.binaryColumns), until its end. */
  private binaryColumns: number[] | null = null;

  private readonly onSocketData = (chunk: Buffer): void => this.onData(chunk);
  private readonly onSocketClose = (): void => this.lose();
  private readonly gate: WriteGate;
  /** Called when the last pending reply has arrived (the session may pool the link). */
  onIdle: ((link: BackendLink) => void) | null = null;

  constructor(
    readonly conn: BackendConnection,
    private readonly client: Duplex,
    readonly nodeId: number,
    /** Prepared statements already on the connection (a pooled connection brings its own). */
    readonly prepared: Set<string> = new Set(),
    /** false: the connection is shared (executor/pipelined-channel.ts), whose owner frames replies and calls `deliver`. */
    attach = true,
  ) {
    if (attach) {
      conn.socket.on('data', this.onSocketData);
      conn.socket.on('error', noop);
      conn.socket.on('close', this.onSocketClose);
    }
    this.gate = writeGateFor(client);
    // A socket that closed before this link listened (or is closing) must still count as lost.
    if (conn.socket.destroyed) this.lost = true;
  }

  /**
   * Set by `close`: the connection is ending and belongs to nobody else —
   * it must never be detached into the pool (its Terminate is on its way).
   */
  closed = false;
  /** A cancel request sent for this connection whose delivery is not confirmed yet. */
  private cancelling: Promise<void> | null = null;

  /**
   * Whether another session may take the connection now: idle, outside a
   * transaction, not closing, and no cancel request of ours still on its
   * way (one landing later would cancel the next owner's statement).
   */
  get reusable(): boolean {
    return !this.closed && !this.lost && this.pending === 0 && this.status === 0x49 && this.cancelling === null && !this.conn.socket.destroyed;
  }

  /** Lets go of the connection (idle, outside any transaction) so another session can use it. */
  detach(): BackendConnection {
    if (!this.reusable) throw new Error('a busy or closing worker connection cannot be handed to another session');
    this.conn.socket.removeListener('data', this.onSocketData);
    this.conn.socket.removeListener('error', noop);
    this.conn.socket.removeListener('close', this.onSocketClose);
    this.gate.forget(this.conn.socket);
    this.conn.socket.resume();
    return this.conn;
  }

  /** Replies still expected from this backend. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Pending replies that go to the client (the session orders output by them). */
  get pendingForwarded(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) if (this.queue[i].forward) n++;
    return n;
  }

  /** Pending forwarded Query/Sync expectations (the client waits for their ReadyForQuery). */
  get pendingForwardedReady(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i];
      if (e.forward && !e.keepReady && e.completes === Completes.Ready) n++;
    }
    return n;
  }

  /** Whether a Query/Sync (any) is still to be answered: an error now belongs to a cycle already ended by Sync. */
  get syncPending(): boolean {
    for (let i = this.head; i < this.queue.length; i++) if (this.queue[i].completes === Completes.Ready) return true;
    return false;
  }

  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.conn.socket.uncork();
  };

  /**
   * Sends bytes whose replies are described by `expect` (in order). Writes
   * of one event-loop turn (Bind, Execute, Sync of a request…) leave in one
   * packet: the socket is corked until the turn's check phase.
   */
  send(bytes: Buffer, expect: Expectation[]): void {
    for (const e of expect) this.queuePush(e);
    // A Query, or an extended-protocol batch starting with its Parse (collectOnLink with parameters).
    if (bytes[0] === 0x51 /* Query */ || bytes[0] === 0x50 /* Parse */) this.runCount++;
    // A lost connection answers nothing: fail the expectations now, or their waiters wait forever.
    // (Destroyed with its 'close' still to come counts too.)
    if (this.lost || this.conn.socket.destroyed) {
      this.lose();
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.conn.socket.cork();
      setImmediate(this.uncork);
    }
    this.conn.socket.write(bytes);
  }

  /**
   * Statements that may have run so far (simple Queries and Executes; a
   * Parse, Describe or Sync runs nothing): lets the session tell whether
   * anything ran on this backend since a given moment.
   */
  runCount = 0;

  /** Records an expectation for bytes the caller writes itself (batched forwarding); `query`: a simple Query. */
  queuePush(e: Expectation, query = false): void {
    if (query || e.completes === Completes.Execute) this.runCount++;
    if (this.inCopyIn) {
      // PostgreSQL ignores Sync (and Flush) during copy-in: no ReadyForQuery comes for it.
      if (e.completes === Completes.Ready) return;
      if (e.completes === Completes.CopyEnd) {
        this.inCopyIn = false;
        return;
      }
    }
    this.queue.push(e);
    this.skipMarkers();
  }

  /** Set from CopyInResponse until the client's CopyDone/CopyFail is sent. */
  private inCopyIn = false;

  /** CopyEnd markers at the head of the queue complete at once: nothing answers them. */
  private skipMarkers(): void {
    while (this.head < this.queue.length && this.queue[this.head].completes === Completes.CopyEnd) this.head++;
  }

  /**
   * CopyInResponse to a COPY the client sent (forwarded): the Syncs the
   * client sent after it and before its CopyDone/CopyFail will get no
   * ReadyForQuery (PostgreSQL ignores them in copy-in), so their
   * expectations go; if the end of the data has not been sent yet, Syncs
   * sent until then are not expected either. COPYs the coordinator runs
   * itself (swallowed replies: pipelines, pulls) send no Sync meanwhile and
   * are left alone.
   */
  private enterCopyIn(): void {
    let i = this.head + 1;
    while (i < this.queue.length && this.queue[i].forward && this.queue[i].completes !== Completes.CopyEnd) {
      if (this.queue[i].completes === Completes.Ready) this.queue.splice(i, 1);
      else i++;
    }
    if (i < this.queue.length && this.queue[i].completes === Completes.CopyEnd) this.queue.splice(i, 1);
    else if (i === this.queue.length) this.inCopyIn = true;
  }

  /** Resolves when no reply is pending. */
  idle(): Promise<void> {
    if (this.pending === 0 || this.lost) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Resolves when no reply is pending and no cancel request of ours is still being delivered. */
  async settled(): Promise<void> {
    for (;;) {
      await this.idle();
      if (this.cancelling) await this.cancelling;
      else if (this.pending === 0 || this.lost) return;
    }
  }

  /**
   * Asks the server to cancel what runs. Asynchronous: until the postmaster
   * has taken the request, the connection is not `reusable` (once taken, a
   * signal that finds the backend idle is ignored by PostgreSQL).
   */
  cancel(): void {
    if (this.pending === 0) return;
    const sent = sendCancelRequest(this.conn.host, this.conn.port, this.conn.key).finally(() => {
      if (this.cancelling === sent) this.cancelling = null;
      if (this.pending === 0 && !this.lost) this.onIdle?.(this);
    });
    this.cancelling = sent;
  }

  close(): void {
    this.closed = true;
    const s = this.conn.socket;
    if (s.destroyed) return;
    if (this.pending > 0) void sendCancelRequest(this.conn.host, this.conn.port, this.conn.key).finally(() => s.end(encodeTerminate()));
    else s.end(encodeTerminate());
  }

  /** The error every request of a lost link completes with. */
  lostError(): PgError {
    const cause = this.unsolicitedError;
    return new PgError({
      severity: 'ERROR',
      code: '08006',
      message: `connection to node ${this.conn.host}:${this.conn.port} was lost`,
      ...(cause ? { detail: `${cause.fields.code ?? ''} ${cause.fields.message ?? ''}`.trim() } : {}),
    });
  }

  /** The connection is gone (closed, destroyed, or announced by a FATAL): once, tell the owner, fail what waits. */
  protected lose(): void {
    const first = !this.lossReported;
    if (first) {
      this.lost = true;
      this.lossReported = true;
      this.gate.forget(this.conn.socket);
      if (!this.conn.socket.destroyed) this.conn.socket.destroy();
    }
    // The owner answers forwarded requests (also ones sent after the loss: their client waits too).
    if (first || this.pendingForwarded > 0) this.onLost?.(this);
    this.failPending();
  }

  private lossReported = false;
  /** A FATAL arrived in the chunk being handled. */
  private dying = false;

  private failPending(): void {
    if (this.head === this.queue.length) return this.wake();
    const err = this.lostError();
    while (this.head < this.queue.length) this.queue[this.head++].done?.(err, 0x45);
    this.compact();
    this.wake();
  }

  private wake(): void {
    if (this.pending !== 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  private compact(): void {
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    } else if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
  }

  private onData(chunk: Buffer): void {
    const whole = takeWholeMessages(this.framer, this.conn.socket, chunk);
    if (whole !== null) this.deliver(whole, 0, whole.length);
  }

  /**
   * Handles the whole reply messages in `whole[from, to)`: matched to the
   * expectations, forwarded runs written to the client as views of `whole`.
   */
  deliver(whole: Buffer, from: number, to: number): void {
    if (this.heldBack !== null) {
      this.heldBack = Buffer.concat([this.heldBack, whole.subarray(from, to)]);
      return;
    }
    let pos = from;
    let runStart = from; // start of the current run of forwarded bytes
    let runForward = true;
    const n = to;
    while (pos < n) {
      const type = whole[pos];
      const end = pos + 1 + whole.readInt32BE(pos + 1);
      if (this.binaryColumns !== null) {
        if (type === Backend.DataRow) this.typeOids!.mapDataRowInPlace(whole, pos, end, this.binaryColumns);
        else if (type === Backend.ReadyForQuery || type === Backend.NoData) this.binaryColumns = null;
      }
      if ((type === Backend.RowDescription || type === Backend.ParameterDescription) && this.typeOids !== null && !this.dying) {
        if (!this.typeOids.mapInPlace(whole, pos, end)) {
          // An OID the map does not know yet: what precedes goes out, the rest waits for the load.
          if (runForward && pos > runStart) this.toClient(whole.subarray(runStart, pos));
          this.holdBack(this.typeOids, Buffer.from(whole.subarray(pos, to)));
          return;
        }
        if (type === Backend.RowDescription) this.binaryColumns = this.typeOids.binaryColumns;
      }
      if (this.stagedRelations !== null) {
        if (type === Backend.RowDescription) mapRelationsInPlace(whole, pos, end, this.stagedRelations);
        else if (type === Backend.ReadyForQuery) this.stagedRelations = null;
      }
      const forward = this.route(type, whole, pos, end);
      if (this.replacement !== null) {
        // This message goes out rewritten: flush what precedes it, write the replacement, skip it.
        if (runForward && pos > runStart) this.toClient(whole.subarray(runStart, pos));
        this.toClient(this.replacement);
        this.replacement = null;
        runStart = end;
        runForward = true;
        pos = end;
        continue;
      }
      if (forward !== runForward) {
        if (runForward && pos > runStart) this.toClient(whole.subarray(runStart, pos));
        runStart = pos;
        runForward = forward;
      }
      pos = end;
    }
    if (runForward && n > runStart) this.toClient(runStart === 0 && n === whole.length ? whole : whole.subarray(runStart, n));
    if (this.dying) {
      this.dying = false;
      this.lose();
      return;
    }
    this.compact();
    this.wake();
    if (this.pending === 0) this.onIdle?.(this);
  }

  /** Keeps `rest` (a copy: the channel's buffers are views) until the map knows its first message's OIDs, then delivers it. */
  private holdBack(map: TypeOidMap, rest: Buffer): void {
    this.heldBack = rest;
    void map.fill(map.unknownIn(rest, 0, rest.length)).then(() => {
      const held = this.heldBack!;
      this.heldBack = null;
      // A link lost meanwhile has failed what waited: nothing is left to match the replies to.
      if (!this.lost) this.deliver(held, 0, held.length);
    });
  }

  protected toClient(bytes: Buffer): void {
    this.gate.write(bytes, this.conn.socket);
  }

  /** Matches one reply to the expectation queue; returns whether it goes to the client. */
  private route(type: number, buf: Buffer, start: number, end: number): boolean {
    // Asynchronous messages belong to no request; a notice raised by a statement the coordinator
    // injected and swallows (BEGIN, a replayed SET, dropping pulled tables) is not the client's either.
    if (type === Backend.NoticeResponse || type === Backend.NotificationResponse || type === Backend.ParameterStatus) {
      if (type === Backend.NoticeResponse && this.queue[this.head]?.forward === false) return false;
      return this.collector === null;
    }
    const e = this.queue[this.head];
    if (type === Backend.ErrorResponse && isFatal(buf, start, end)) {
      // The server closes the connection next: the link is lost now (see the module comment).
      // Lost once the bytes before it are flushed, so the client sees them in order.
      this.unsolicitedError = readErrorResponse(buf, start, end);
      this.dying = true;
      return false;
    }
    if (e === undefined) return false;
    const forward = e.forward || (type === Backend.ErrorResponse && e.forwardError === true);
    if (!forward && this.collector && e.collect !== false) this.collector(type, buf, start, end);
    if (type === Backend.ErrorResponse) {
      const err = readErrorResponse(buf, start, end);
      if (forward) this.onForwardedError?.();
      const rewritten = forward && this.rewriteError ? this.rewriteError(err, e.origin) : null;
      if (rewritten) this.replacement = encodeMessage((w) => writeErrorResponse(w, rewritten.fields));
      // PostgreSQL now skips to the next Sync: so do the expectations.
      while (this.head < this.queue.length && this.queue[this.head].completes !== Completes.Ready) {
        const x = this.queue[this.head++];
        x.done?.(err, 0x45);
      }
      // An error ends copy-in: PostgreSQL answers Syncs again.
      this.inCopyIn = false;
      return forward;
    }
    if (type === Backend.ReadyForQuery) {
      // A Query/Sync expectation completes; anything before it was already skipped.
      while (this.head < this.queue.length && this.queue[this.head].completes !== Completes.Ready) this.head++;
      const x = this.queue[this.head++];
      this.status = buf[start + 5];
      if (x?.forward && !x.keepReady && this.statusForClient) buf[start + 5] = this.statusForClient();
      x?.done?.(null, this.status);
      this.skipMarkers();
      return (x?.forward ?? false) && !x?.keepReady;
    }
    if (type === Backend.CopyInResponse && forward) this.enterCopyIn();
    if (completes(e.completes, type)) {
      this.head++;
      e.done?.(null, 0);
    }
    this.skipMarkers();
    return forward;
  }
}

function completes(kind: Completes, type: number): boolean {
  switch (kind) {
    case Completes.ParseComplete:
      return type === Backend.ParseComplete;
    case Completes.BindComplete:
      return type === Backend.BindComplete;
    case Completes.CloseComplete:
      return type === Backend.CloseComplete;
    case Completes.Describe:
      return type === Backend.RowDescription || type === Backend.NoData;
    case Completes.Execute:
      return type === Backend.CommandComplete || type === Backend.EmptyQueryResponse || type === Backend.PortalSuspended;
    default:
      return false;
  }
}

function noop(): void {}
