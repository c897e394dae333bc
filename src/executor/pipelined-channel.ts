/**
 * Pipelined worker connections: autocommit router statements of many client
 * sessions share a few connections per (node, database, role), so
 * PostgreSQL serves many statements per wake-up and the coordinator writes
 * many sessions' requests in one syscall (issue 4, docs/benchmarks.md).
 *
 * A `PipelinedChannel` owns one connection. Each session that uses it gets
 * a `ChannelTenant` — a BackendLink without socket listeners of its own —
 * and sends only whole requests: the messages of one statement up to and
 * including their own Sync (or one simple Query). A request is written in
 * one piece, so requests never interleave on the wire; requests written in
 * one event-loop turn leave corked in one write. Each request therefore
 * ends with exactly one ReadyForQuery: the channel frames the replies and
 * hands every message up to that ReadyForQuery to the request's tenant
 * (views of the chunk, no copies), which forwards them to its own client
 * exactly as a dedicated link does. An ErrorResponse only skips to its own
 * request's Sync, so one session's error never touches another's statement.
 *
 * Head-of-line blocking: a slow statement holds every request behind it.
 * A channel that has made no progress for `stallMs` while requests wait is
 * `stalled` and takes no new requests (the group uses another channel, or
 * the session falls back to a connection of its own).
 *
 * Cancel: a cancel request hits whatever the backend runs when it lands, so
 * it is sent only while the tenant's requests are the only ones left on the
 * channel (none of another session's is queued behind them); the channel is
 * retired at once (no new requests join it) and closed once idle. If other
 * sessions' requests are queued behind, the cancel waits until they are the
 * only ones left (they cannot finish first) — in effect it is dropped when
 * the statement completes first.
 *
 * Loss: the socket closing (or a FATAL) fails every queued request with
 * 08006 through each tenant's usual loss path; the group opens a new
 * channel for later statements.
 */
import type { Duplex } from 'node:stream';
import { Backend } from '../protocol/constants.js';
import { MessageFramer } from '../protocol/framer.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import type { PgError } from '../protocol/errors.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import { sendCancelRequest } from '../pool/backend-connection.js';
import { encodeTerminate } from '../pool/frontend-encoders.js';
import { BackendLink, Completes, isFatal, takeWholeMessages, type Expectation } from './backend-link.js';

/** Channels per (node, database, role) unless configured (docs/benchmarks.md, router: 1 vs 2). */
export const DEFAULT_PIPELINE_CHANNELS = 2;

/** Worker-side prepared statements per channel before new statement texts go unnamed. */
const MAX_PREPARED = 1000;

export class PipelinedChannel {
  private readonly framer = new MessageFramer();
  /** One entry per request in flight (the tenant that sent it), in wire order. */
  private readonly fifo: ChannelTenant[] = [];
  private head = 0;
  /** Worker-side prepared statements: statement text and parameter types → name, and whether its Parse has succeeded. */
  private readonly statements = new Map<string, { name: string; parsed: boolean }>();
  dead = false;
  /** Takes no new requests (a cancel was sent, or is waiting to be); closed once idle. */
  retired = false;
  private lastProgress = 0;
  private cancelling: Promise<void> | null = null;
  private corked = false;
  private unsolicitedError: PgError | null = null;

  constructor(
    readonly conn: BackendConnection,
    readonly nodeId: number,
    private readonly stallMs = 20,
  ) {
    conn.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    conn.socket.on('error', noop);
    conn.socket.on('close', () => this.lose());
    if (conn.socket.destroyed) this.dead = true;
  }

  /** Requests written and not answered yet. */
  get inFlight(): number {
    return this.fifo.length - this.head;
  }

  /** Requests wait and nothing has arrived for a while: a slow statement holds the channel. */
  get stalled(): boolean {
    return this.inFlight > 0 && Date.now() - this.lastProgress > this.stallMs;
  }

  get usable(): boolean {
    return !this.dead && !this.retired;
  }

  /** A tenant for one client session (its replies go to `client`). */
  tenant(client: Duplex): ChannelTenant {
    return new ChannelTenant(this, client);
  }

  /**
   * The worker-side prepared statement for a text: its name and whether the
   * caller must send the Parse (first use). Past MAX_PREPARED texts the
   * unnamed statement is used, parsed in every request. So is it while the
   * first Parse is unanswered: that Parse may fail (the worker lacks a
   * function the coordinator has), and a request binding the name behind
   * it — of any session — would fail for a statement that does not exist.
   */
  statement(sql: string, paramTypes: readonly number[]): { name: string; parse: boolean; key: string } {
    const key = paramTypes.length === 0 ? sql : `${sql}\u0000${paramTypes.join(',')}`;
    const known = this.statements.get(key);
    if (known !== undefined) return known.parsed ? { name: known.name, parse: false, key } : { name: '', parse: true, key: '' };
    if (this.statements.size >= MAX_PREPARED) return { name: '', parse: true, key: '' };
    const name = `pgwc${++channelStatementCounter}`;
    this.statements.set(key, { name, parsed: false });
    return { name, parse: true, key };
  }

  /** The answer to a statement's Parse: later requests bind it, or (it failed: it does not exist on the worker) parse it again. */
  statementParsed(key: string, ok: boolean): void {
    if (key === '') return;
    if (!ok) this.statements.delete(key);
    else {
      const known = this.statements.get(key);
      if (known) known.parsed = true;
    }
  }

  /** Writes one whole request of `tenant` (its last message a Sync or Query). */
  write(tenant: ChannelTenant, parts: readonly Buffer[]): void {
    if (this.inFlight === 0) this.lastProgress = Date.now();
    this.fifo.push(tenant);
    const s = this.conn.socket;
    if (!this.corked) {
      this.corked = true;
      s.cork();
      setImmediate(this.uncork);
    }
    for (const p of parts) s.write(p);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.conn.socket.uncork();
  };

  private onData(chunk: Buffer): void {
    const whole = takeWholeMessages(this.framer, this.conn.socket, chunk);
    if (whole === null) return;
    this.lastProgress = Date.now();
    const n = whole.length;
    let pos = 0;
    let runStart = 0;
    while (pos < n) {
      const type = whole[pos];
      const end = pos + 1 + whole.readInt32BE(pos + 1);
      const tenant = this.head < this.fifo.length ? this.fifo[this.head] : null;
      if (tenant === null) {
        // Between requests only asynchronous messages come (a notice, a ParameterStatus): nobody's.
        runStart = end;
      } else if (type === Backend.ErrorResponse && isFatal(whole, pos, end)) {
        // The server closes the connection next: what came before is delivered, then every request fails.
        if (pos > runStart) tenant.deliver(whole, runStart, pos);
        this.unsolicitedError = readErrorResponse(whole, pos, end);
        this.lose();
        return;
      } else if (type === Backend.ReadyForQuery) {
        tenant.deliver(whole, runStart, end);
        this.head++;
        // A cancel concerns the statements in flight when it was asked for, never a later one.
        if (tenant.pending === 0) tenant.cancelWanted = false;
        runStart = end;
      }
      pos = end;
    }
    if (runStart < n && this.head < this.fifo.length) this.fifo[this.head].deliver(whole, runStart, n);
    this.compact();
    this.afterProgress();
  }

  private compact(): void {
    if (this.head === this.fifo.length) {
      this.fifo.length = 0;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.fifo.length) {
      this.fifo.splice(0, this.head);
      this.head = 0;
    }
  }

  /** A tenant asks to cancel its statement (see the module comment). */
  cancel(tenant: ChannelTenant): void {
    if (tenant.pending === 0 || this.dead) return;
    this.retired = true;
    tenant.cancelWanted = true;
    this.afterProgress();
  }

  private afterProgress(): void {
    if (this.cancelling === null && this.head < this.fifo.length) {
      const t = this.fifo[this.head];
      if (t.cancelWanted && this.onlyRequestsOf(t)) {
        t.cancelWanted = false;
        const sent = sendCancelRequest(this.conn.host, this.conn.port, this.conn.key).catch(() => {});
        this.cancelling = sent.finally(() => {
          this.cancelling = null;
          this.afterProgress();
        });
      }
    }
    if (this.retired && this.inFlight === 0 && this.cancelling === null) this.close();
  }

  private onlyRequestsOf(t: ChannelTenant): boolean {
    for (let i = this.head; i < this.fifo.length; i++) if (this.fifo[i] !== t) return false;
    return true;
  }

  /** Ends the connection (requests still in flight are answered first by the server). */
  close(): void {
    this.retired = true;
    const s = this.conn.socket;
    if (!s.destroyed && !s.writableEnded) s.end(encodeTerminate());
  }

  /** The connection is gone: every request in flight fails (each tenant answers its client). */
  private lose(): void {
    if (this.dead) return;
    this.dead = true;
    if (!this.conn.socket.destroyed) this.conn.socket.destroy();
    const tenants = new Set(this.fifo.slice(this.head));
    this.fifo.length = 0;
    this.head = 0;
    for (const t of tenants) t.transportLost(this.unsolicitedError);
  }
}

let channelStatementCounter = 0;

/**
 * One session's view of a shared channel: a BackendLink whose requests go
 * through the channel. Never detached into the idle pool (it owns no connection).
 */
export class ChannelTenant extends BackendLink {
  /** The session asked to cancel; sent when safe (PipelinedChannel.cancel). */
  cancelWanted = false;

  constructor(
    readonly channel: PipelinedChannel,
    client: Duplex,
  ) {
    super(channel.conn, client, channel.nodeId, new Set(), false);
  }

  override get reusable(): boolean {
    return false;
  }

  override detach(): BackendConnection {
    throw new Error('a pipelined channel tenant owns no connection to give away');
  }

  /** Sends one whole request (its last message a Sync or Query) in parts. */
  sendRequest(parts: readonly Buffer[], expect: readonly Expectation[]): void {
    for (const e of expect) this.queuePush(e, false);
    if (this.lost || this.channel.dead) {
      this.lose();
      return;
    }
    this.channel.write(this, parts);
  }

  override send(bytes: Buffer, expect: Expectation[]): void {
    if (expect.length === 0 || expect[expect.length - 1].completes !== Completes.Ready) {
      throw new Error('a pipelined channel takes whole requests only (ending with Sync or Query)');
    }
    if (bytes[0] === 0x51 /* Query */) this.runCount++;
    this.sendRequest([bytes], expect);
  }

  override cancel(): void {
    this.channel.cancel(this);
  }

  /** The session ends: replies still on their way are dropped; the channel goes on serving others. */
  override close(): void {
    this.closed = true;
  }

  protected override toClient(bytes: Buffer): void {
    if (!this.closed) super.toClient(bytes);
  }

  /** The channel's connection is gone. */
  transportLost(cause: PgError | null): void {
    this.unsolicitedError = cause;
    this.lose();
  }
}

/**
 * The channels of one (node, database, role): `pick` returns the least
 * busy usable channel that is not stalled, synchronously (null while none is
 * connected yet, or all are stalled: the caller uses a connection of its
 * own), and opens channels up to `size` in the background.
 */
export class ChannelGroup {
  private channels: PipelinedChannel[] = [];
  private opening = 0;
  private failedAt = 0;

  constructor(
    private readonly open: () => Promise<BackendConnection>,
    readonly nodeId: number,
    readonly size: number,
    private readonly stallMs = 20,
  ) {}

  pick(): PipelinedChannel | null {
    let best: PipelinedChannel | null = null;
    let live = 0;
    for (const c of this.channels) {
      if (!c.usable) continue;
      live++;
      if (c.stalled) continue;
      if (best === null || c.inFlight < best.inFlight) best = c;
    }
    if (live !== this.channels.length) this.channels = this.channels.filter((c) => c.usable);
    if (live + this.opening < this.size && (best === null || best.inFlight > 0)) this.grow();
    return best;
  }

  private grow(): void {
    // After a failed connect, wait a second before the next try (the node may be down).
    if (this.closed || Date.now() - this.failedAt < 1000) return;
    this.opening++;
    this.open().then(
      (conn) => {
        this.opening--;
        if (this.closed) conn.socket.end(encodeTerminate());
        else this.channels.push(new PipelinedChannel(conn, this.nodeId, this.stallMs));
      },
      () => {
        this.opening--;
        this.failedAt = Date.now();
      },
    );
  }

  private closed = false;

  close(): void {
    this.closed = true;
    for (const c of this.channels) c.close();
    this.channels = [];
  }
}

/** Channel groups by key (node, database, role), shared by every session of the coordinator. */
export class ChannelRegistry {
  private readonly groups = new Map<string, ChannelGroup>();

  constructor(
    /** Channels per (node, database, role); 0 turns pipelining off. */
    readonly channelsPerNode: number,
    readonly stallMs = 20,
  ) {}

  group(key: string, nodeId: number, open: () => Promise<BackendConnection>): ChannelGroup | null {
    if (this.channelsPerNode <= 0) return null;
    let g = this.groups.get(key);
    if (!g) {
      g = new ChannelGroup(open, nodeId, this.channelsPerNode, this.stallMs);
      this.groups.set(key, g);
    }
    return g;
  }

  close(): void {
    for (const g of this.groups.values()) g.close();
    this.groups.clear();
  }
}

function noop(): void {}
