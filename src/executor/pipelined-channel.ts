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
 * Shared Syncs. PostgreSQL flushes its output and commits at every Sync:
 * one send() and one commit per statement, however many statements arrive
 * together. Requests are therefore written at the end of the event-loop
 * turn (the window), and consecutive requests of the window that only read
 * — one Bind … Execute of a statement the planner found changes nothing
 * (planner/reads-only.ts), of tenants with nothing else on the channel —
 * form a run: written without their own Syncs, followed by one Sync. The
 * run's statements then share one implicit transaction, which nobody can
 * tell from separate ones: each statement takes its own snapshot (the
 * channel checks at open that its connection reads committed, and shares
 * nothing otherwise), and all of them were sent by their clients before
 * the run was written — so a member's now() (the run's start) still falls
 * between its client's sending and its answer, as for a statement alone. Replies are framed per member: a member ends at its
 * CommandComplete (or EmptyQueryResponse, PortalSuspended, ErrorResponse),
 * and its tenant gets a ReadyForQuery 'I' of the channel's making. An
 * ErrorResponse makes PostgreSQL skip the rest of the run to the shared
 * Sync: those members never ran, and go again, each with its own Sync. So
 * that a re-sent member cannot overtake its session's later request, a
 * tenant's requests wait (parked) while one of its members is unanswered.
 * The shared Sync's own ReadyForQuery is the channel's.
 *
 * States of a request: in the window (this turn) → written alone (fifo:
 * the tenant) | written in a run (fifo: a RunMember; the run's RUN_SYNC
 * after it) | parked (its tenant's member is unanswered; back to the
 * window when it is answered) → answered. A member skipped by an earlier
 * member's error goes back to the window's front, alone.
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
import { encodeClose, encodeQuery, encodeTerminate } from '../pool/frontend-encoders.js';
import { isFatal, takeWholeMessages } from './backend-replies.js';
import { ChannelTenant } from './channel-tenant.js';
import { decodeDataRow } from './link-query.js';

export { ChannelTenant };

/** Worker-side prepared statements per channel before new statement texts go unnamed. */
const MAX_PREPARED = 1000;

/** Counts since the process started, for tests and benchmarks: runs written, requests in them, requests re-sent after an error in their run; socket writes (windows) and the requests they carried. */
export const channelStats = { runs: 0, coalesced: 0, resent: 0, writes: 0, requests: 0 };

/** Requests of one run at most: an error re-sends the run's rest, so a run stays short. */
const MAX_RUN = 32;

const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
const PROBE = encodeQuery('SHOW default_transaction_isolation');

/** A request waiting for the window's write. */
interface Pending {
  tenant: ChannelTenant;
  parts: readonly Buffer[];
  /** It may share a Sync with its neighbours (a statement that only reads). */
  coalesce: boolean;
}

/** A request written without its Sync, one of a run whose shared Sync follows it. */
class RunMember {
  constructor(
    readonly tenant: ChannelTenant,
    readonly parts: readonly Buffer[],
  ) {}
}

/** The channel's own entries in the wire order: a run's shared Sync, the isolation probe, and the Close of stale statements. */
const RUN_SYNC = { kind: 'run-sync' } as const;
const PROBE_ENTRY = { kind: 'probe' } as const;
const CLOSE_ENTRY = { kind: 'close' } as const;
type Entry = ChannelTenant | RunMember | typeof RUN_SYNC | typeof PROBE_ENTRY | typeof CLOSE_ENTRY;

/** What identifies a worker-side prepared statement: its text and its parameter types (the channel's and the sessions' own, session/worker-statements.ts). */
export function statementKey(sql: string, paramTypes: readonly number[]): string {
  return paramTypes.length === 0 ? sql : `${sql}\u0000${paramTypes.join(',')}`;
}

export class PipelinedChannel {
  private readonly framer = new MessageFramer();
  /** One entry per request written and not answered yet, in wire order. */
  private readonly fifo: Entry[] = [];
  private head = 0;
  /** Requests of this event-loop turn, written together at its end; requests parked behind a run member of their tenant. */
  private window: Pending[] = [];
  private parked: Pending[] = [];
  private flushDue = false;
  /** Requests sent and not answered yet (written or waiting in the window). */
  private requests = 0;
  /** Runs may share Syncs: the connection reads committed (answer to the probe). */
  private coalescing = false;
  /** Worker-side prepared statements: statement text and parameter types → name, the catalog version it was planned at, and whether its Parse has succeeded. */
  private readonly statements = new Map<string, { name: string; parsed: boolean; version: number }>();
  /** Names of statements planned at an older catalog version, closed once no request is on the channel. */
  private stale: string[] = [];
  dead = false;
  /** Takes no new requests (a cancel was sent, or is waiting to be); closed once idle. */
  retired = false;
  private lastProgress = 0;
  private cancelling: Promise<void> | null = null;
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
    else {
      this.fifo.push(PROBE_ENTRY);
      conn.socket.write(PROBE);
    }
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.requests;
  }

  /** Requests wait and nothing has arrived for a while: a slow statement holds the channel. */
  get stalled(): boolean {
    return this.requests > 0 && Date.now() - this.lastProgress > this.stallMs;
  }

  /** Whether runs of reads may share a Sync here (the connection reads committed). */
  get sharesSyncs(): boolean {
    return this.coalescing;
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
   *
   * `version`: the catalog version the text was planned at. A DDL since
   * (ALTER TABLE … ADD COLUMN) may have changed the result type of the
   * same text, and PostgreSQL refuses to run a statement prepared before
   * that (0A000 "cached plan must not change result type"): a newer
   * version gets a new name, parsed afresh, and the old one is closed once
   * no request is on the channel (a request still queued may bind it). A
   * plan older than the channel's statement (a session not planned again
   * yet) parses the unnamed statement. The hot path compares one number.
   */
  statement(sql: string, paramTypes: readonly number[], version: number): { name: string; parse: boolean; key: string } {
    const key = statementKey(sql, paramTypes);
    const known = this.statements.get(key);
    if (known !== undefined) {
      if (known.version === version) return known.parsed ? { name: known.name, parse: false, key } : { name: '', parse: true, key: '' };
      if (version < known.version) return { name: '', parse: true, key: '' };
      this.statements.delete(key);
      this.stale.push(known.name);
    }
    if (this.statements.size >= MAX_PREPARED) return { name: '', parse: true, key: '' };
    const name = `pgwc${++channelStatementCounter}`;
    this.statements.set(key, { name, parsed: false, version });
    return { name, parse: true, key };
  }

  /** The answer to the Parse of `name`: later requests bind it, or (it failed: it does not exist on the worker) parse it again. */
  statementParsed(key: string, name: string, ok: boolean): void {
    if (key === '') return;
    const known = this.statements.get(key);
    // The key may name a newer statement by now (a DDL since): this answer is not about that one.
    if (known === undefined || known.name !== name) return;
    if (!ok) this.statements.delete(key);
    else known.parsed = true;
  }

  /** Closes the stale statements (see `statement`) while nothing is queued: no request can bind them any more. */
  private closeStale(): void {
    const s = this.conn.socket;
    s.cork();
    for (const name of this.stale) s.write(encodeClose('S', name));
    s.write(SYNC);
    s.uncork();
    this.stale = [];
    this.fifo.push(CLOSE_ENTRY);
  }

  /**
   * Sends one whole request of `tenant` (its last message a Sync or Query);
   * it leaves with the rest of this turn's requests. `coalesce`: it may
   * share its Sync with other tenants' requests (module comment).
   */
  write(tenant: ChannelTenant, parts: readonly Buffer[], coalesce: boolean): void {
    if (this.requests++ === 0) this.lastProgress = Date.now();
    tenant.onChannel++;
    this.window.push({ tenant, parts, coalesce });
    this.flushSoon();
  }

  private flushSoon(): void {
    if (this.flushDue) return;
    this.flushDue = true;
    setImmediate(this.flush);
  }

  /** Writes the window in one socket write: runs of reads with one shared Sync, every other request as it is. */
  private readonly flush = (): void => {
    this.flushDue = false;
    const w = this.window;
    this.window = [];
    if (this.dead) return;
    const s = this.conn.socket;
    channelStats.writes++;
    channelStats.requests += w.length;
    s.cork();
    let i = 0;
    while (i < w.length) {
      let j = i;
      while (j < w.length && j - i < MAX_RUN && this.joinsRun(w[j])) j++;
      if (j - i >= 2) {
        channelStats.runs++;
        channelStats.coalesced += j - i;
        for (let k = i; k < j; k++) this.writeMember(w[k]);
        s.write(SYNC);
        this.fifo.push(RUN_SYNC);
        i = j;
        continue;
      }
      const p = w[i++];
      if (p.tenant.memberUnanswered) this.parked.push(p);
      else {
        for (const b of p.parts) s.write(b);
        this.fifo.push(p.tenant);
      }
    }
    s.uncork();
  };

  /** A read that may share a Sync: its tenant has nothing else on this channel, so a re-send keeps the tenant's order. */
  private joinsRun(p: Pending): boolean {
    return p.coalesce && this.coalescing && p.tenant.onChannel === 1 && endsWithSync(p.parts[p.parts.length - 1]);
  }

  private writeMember(p: Pending): void {
    const s = this.conn.socket;
    const last = p.parts.length - 1;
    for (let k = 0; k < last; k++) s.write(p.parts[k]);
    const tail = p.parts[last];
    s.write(tail.subarray(0, tail.length - SYNC.length));
    p.tenant.memberUnanswered = true;
    this.fifo.push(new RunMember(p.tenant, p.parts));
  }

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
      const entry = this.head < this.fifo.length ? this.fifo[this.head] : null;
      if (entry === null) {
        // Between requests only asynchronous messages come (a notice, a ParameterStatus): nobody's.
        runStart = end;
      } else if (type === Backend.ErrorResponse && isFatal(whole, pos, end)) {
        // The server closes the connection next: what came before is delivered, then every request fails.
        const t = tenantOf(entry);
        if (t !== null && pos > runStart) t.deliver(whole, runStart, pos);
        this.unsolicitedError = readErrorResponse(whole, pos, end);
        this.lose();
        return;
      } else if (entry instanceof RunMember) {
        if (type === Backend.CommandComplete || type === Backend.ErrorResponse || type === Backend.EmptyQueryResponse || type === Backend.PortalSuspended) {
          // The member's statement is done: its messages, then the ReadyForQuery its own Sync would have
          // brought — one buffer, so the client gets one plain write, not a writev of two pieces.
          const reply = withReadyIdle(whole, runStart, end);
          entry.tenant.deliver(reply, 0, reply.length);
          this.head++;
          this.answered(entry.tenant);
          // PostgreSQL skips the run's other requests to the shared Sync: they never ran, and go again.
          if (type === Backend.ErrorResponse) this.resendRest();
          runStart = end;
        }
      } else if (type === Backend.ReadyForQuery) {
        this.head++;
        if (entry instanceof ChannelTenant) {
          entry.deliver(whole, runStart, end);
          this.answered(entry);
        }
        runStart = end;
      } else if (entry === PROBE_ENTRY && type === Backend.DataRow) {
        this.coalescing = decodeDataRow(whole.subarray(pos, end))[0] === 'read committed';
      }
      pos = end;
    }
    if (runStart < n) {
      const t = this.head < this.fifo.length ? tenantOf(this.fifo[this.head]) : null;
      if (t !== null) t.deliver(whole, runStart, n);
    }
    this.compact();
    this.afterProgress();
  }

  private answered(t: ChannelTenant): void {
    this.requests--;
    t.onChannel--;
    // A cancel concerns the statements in flight when it was asked for, never a later one.
    if (t.pending === 0) t.cancelWanted = false;
    if (t.memberUnanswered) {
      t.memberUnanswered = false;
      this.unpark();
    }
  }

  /** After a member's error: the members behind it up to the shared Sync go again, each with its own Sync, ahead of the parked requests. */
  private resendRest(): void {
    const again: Pending[] = [];
    while (this.head < this.fifo.length) {
      const e = this.fifo[this.head];
      if (!(e instanceof RunMember)) break;
      this.head++;
      e.tenant.memberUnanswered = false;
      channelStats.resent++;
      again.push({ tenant: e.tenant, parts: e.parts, coalesce: false });
    }
    this.window = again.concat(this.parked, this.window);
    this.parked = [];
    if (this.window.length > 0) this.flushSoon();
  }

  private unpark(): void {
    if (this.parked.length === 0) return;
    this.window = this.parked.concat(this.window);
    this.parked = [];
    this.flushSoon();
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
      const t = tenantOf(this.fifo[this.head]);
      if (t !== null && t.cancelWanted && this.onlyRequestsOf(t)) {
        t.cancelWanted = false;
        const sent = sendCancelRequest(this.conn.host, this.conn.port, this.conn.key).catch(() => {});
        this.cancelling = sent.finally(() => {
          this.cancelling = null;
          this.afterProgress();
        });
      }
    }
    if (this.stale.length > 0 && this.requests === 0 && !this.dead && !this.retired) this.closeStale();
    if (this.retired && this.requests === 0 && this.cancelling === null) this.close();
  }

  /** Every request on the channel — written, waiting or parked — is `t`'s. */
  private onlyRequestsOf(t: ChannelTenant): boolean {
    for (let i = this.head; i < this.fifo.length; i++) {
      const other = tenantOf(this.fifo[i]);
      if (other !== null && other !== t) return false;
    }
    for (const p of this.window) if (p.tenant !== t) return false;
    for (const p of this.parked) if (p.tenant !== t) return false;
    return true;
  }

  /** Ends the connection (requests still in flight are answered first by the server). */
  close(): void {
    this.retired = true;
    const s = this.conn.socket;
    if (!s.destroyed && !s.writableEnded) s.end(encodeTerminate());
  }

  /** The connection is gone: every request sent fails (each tenant answers its client). */
  private lose(): void {
    if (this.dead) return;
    this.dead = true;
    if (!this.conn.socket.destroyed) this.conn.socket.destroy();
    const tenants = new Set<ChannelTenant>();
    for (let i = this.head; i < this.fifo.length; i++) {
      const t = tenantOf(this.fifo[i]);
      if (t !== null) tenants.add(t);
    }
    for (const p of this.window) tenants.add(p.tenant);
    for (const p of this.parked) tenants.add(p.tenant);
    this.fifo.length = 0;
    this.head = 0;
    this.window = [];
    this.parked = [];
    this.requests = 0;
    for (const t of tenants) t.transportLost(this.unsolicitedError);
  }
}

function endsWithSync(b: Buffer | undefined): boolean {
  return b !== undefined && b.length >= SYNC.length && b[b.length - 5] === 0x53 && b.readInt32BE(b.length - 4) === 4;
}

function tenantOf(e: Entry): ChannelTenant | null {
  return e instanceof RunMember ? e.tenant : e instanceof ChannelTenant ? e : null;
}

/** whole[from, to) followed by a ReadyForQuery 'I', in a buffer of its own (the tenant rewrites the status byte in place). */
function withReadyIdle(whole: Buffer, from: number, to: number): Buffer {
  const n = to - from;
  const b = Buffer.allocUnsafe(n + 6);
  whole.copy(b, 0, from, to);
  b[n] = Backend.ReadyForQuery;
  b.writeInt32BE(5, n + 1);
  b[n + 5] = 0x49;
  return b;
}

let channelStatementCounter = 0;

function noop(): void {}

