/**
 * Bind of a statement the coordinator planned: routed from the parameter
 * values (deferred pruning), then sent on the route's way — a shared
 * pipelined channel for an autocommit router statement, the session's own
 * link to a worker or to the coordinator PostgreSQL with the statement
 * prepared there lazily, or a portal the session runs itself (pulls,
 * multi-shard statements, evaluated INSERTs).
 *
 * The common case — a planned statement, the catalog loaded and current, a
 * router route that passes the write barrier and goes to a pipelined
 * channel — runs synchronously (`handleBind` returns undefined): no promise
 * and no microtask on the hot path. Everything else continues in an async
 * step from where the synchronous part stopped, never doing a step twice.
 */
import type { Route } from '../planner/route.js';
import { Frontend } from '../protocol/constants.js';
import { Completes, type Expectation } from '../executor/backend-link.js';
import type { ChannelTenant } from '../executor/pipelined-channel.js';
import { channelStatement, lazyParseAnswered, prepareLazily } from './lazy-prepare.js';
import { PgError, toPgError } from '../protocol/errors.js';
import { readBind, paramFormat, type BindMessage } from '../protocol/frontend/bind.js';
import { bindPushdownParams, pushdownHasParams } from '../planner/pushdown-params.js';
import { inferParamTypes, paramLiterals } from './pushdown-param-values.js';
import { parseSql } from '../sql/parse.js';
import { BIND_COMPLETE } from './replies.js';
import { encodeBindAppending, encodeBindFor, encodeDescribe } from './extended-encoders.js';
import { pulledOrigin } from './error-positions.js';
import { E_BIND, E_DESCRIBE, E_DESCRIBE_SWALLOW, E_EXECUTE, type PlannedStatement, paramAsText, abortedError } from './session-parts.js';
import { PreparedStatements, usedName } from './prepared-statements.js';

export abstract class BindRouting extends PreparedStatements {
  protected handleBind(buf: Buffer, start: number, end: number): Promise<void> | undefined {
    const bind = readBind(buf, start, end);
    const stmt = this.statements.get(bind.statement);
    if (!stmt) return this.bindUnplanned(bind, buf, start, end);
    const catalog = this.catalogNow();
    if (catalog === null || stmt.plan.catalogVersion !== catalog.version) return this.bindAfterCatalog(bind, stmt, buf, start, end);
    return this.routeBind(bind, stmt, buf, start, end);
  }

  /** A statement the coordinator PostgreSQL prepared (or none): its Bind goes there. */
  private async bindUnplanned(bind: BindMessage, buf: Buffer, start: number, end: number): Promise<void> {
    this.portals.delete(bind.portal);
    // A block a worker aborted (a worker-side error): the coordinator's own transaction would still run
    // the statement, where PostgreSQL refuses everything but the block's end.
    if (this.statusByte() === 0x45 && this.coordinator.status !== 0x45) return this.bindInAbortedBlock();
    await this.sendTo(this.coordinator, buf.subarray(start, end), E_BIND);
  }

  /** The catalog is loading or changed since the statement was planned: plan it again first. */
  private async bindAfterCatalog(bind: BindMessage, stmt: PlannedStatement, buf: Buffer, start: number, end: number): Promise<void> {
    await this.planCurrent(stmt);
    return this.routeBind(bind, stmt, buf, start, end);
  }

  /**
   * Plans `stmt` again when the catalog changed since it was planned. A
   * client's named statement is planned again too, where PostgreSQL would
   * answer 0A000 to a result type changed since its Parse: the coordinator
   * does not know the result type the client saw, so it takes the new one
   * (src/session/README.md); the worker's statement gets the new plan's
   * name, prepared afresh (worker-statements.ts).
   */
  protected async planCurrent(stmt: PlannedStatement): Promise<void> {
    const catalog = this.catalogNow() ?? (await this.catalog());
    if (stmt.plan.catalogVersion !== catalog.version) {
      const parsed = parseSql(stmt.query).stmts[0].stmt;
      stmt.plan = this.plan(parsed, stmt.query, catalog);
    }
  }

  /** Routes the Bind with the statement's current plan; synchronous when it goes to a pipelined channel. */
  private routeBind(bind: BindMessage, stmt: PlannedStatement, buf: Buffer, start: number, end: number): Promise<void> | undefined {
    const plan = stmt.plan;
    const params = plan.needsParams ? paramTexts(bind, stmt) : null;
    const first = plan.route(params as ReadonlyArray<string | null> | null);
    if (first.kind !== 'transaction' && this.statusByte() === 0x45) return this.bindInAbortedBlock();
    const hold = this.enterWriteBarrier(first);
    if (!hold) return this.bindAfterCutover(first, buf, start, end);
    if (first.kind === 'router') {
      const piped = this.pipelineBind(first, stmt, bind, buf, start, end, hold);
      if (piped === true) return undefined;
      return this.runBind(bind, stmt, first, hold, buf, start, end, piped);
    }
    return this.runBind(bind, stmt, first, hold, buf, start, end, false);
  }

  /** The session's block is aborted: the Bind gets the block's error, as PostgreSQL answers until ROLLBACK. */
  private async bindInAbortedBlock(): Promise<void> {
    await this.replyError(this.txn.takeLossError() ?? abortedError());
    this.cycleFailed = true;
  }

  /**
   * The rest of a routed Bind, after the write barrier: `piped` is what
   * pipelining `first` gave (false: not pipelined; a promise: it waits for
   * another link's replies first).
   */
  private async runBind(bind: BindMessage, stmt: PlannedStatement, first: Route, firstHold: () => void, buf: Buffer, start: number, end: number, piped: boolean | Promise<boolean>): Promise<void> {
    if (piped !== false && (await piped)) return;
    let hold = firstHold;
    let route = first;
    if (route.kind === 'evaluate-insert') {
      const textParams = paramTexts(bind, stmt);
      // Transaction-time functions only: the timestamp goes to the worker as one more parameter.
      const timed = bind.params.length >= stmt.paramTypes.length && textParams.every((p) => p !== undefined)
        ? await this.insertAtTransactionTime(route, textParams as Array<string | null>, bind.params.length + 1)
        : null;
      if (timed instanceof PgError) {
        hold();
        await this.replyError(timed);
        this.cycleFailed = true;
        return;
      }
      if (timed) {
        hold();
        const timedHold = this.enterWriteBarrier(timed);
        if (!timedHold) return this.bindAfterCutover(timed, buf, start, end);
        hold = timedHold;
        route = timed;
      }
    }
    if (route.kind === 'router' && route !== first) {
      const piped = this.pipelineBind(route, stmt, bind, buf, start, end, hold);
      if (piped === true || (piped !== false && (await piped))) return;
    }
    if (route.kind === 'evaluate-insert') {
      const textParams = paramTexts(bind, stmt);
      if (textParams.some((p) => p === undefined)) {
        await this.replyError(new PgError({ code: '0A000', message: 'binary parameters are not supported for INSERTs evaluated on the coordinator' }));
        this.cycleFailed = true;
        return;
      }
      const next = await this.evaluateInsert(route, textParams as Array<string | null>);
      if (next instanceof PgError) {
        await this.replyError(next);
        this.cycleFailed = true;
        return;
      }
      const evaluatedHold = this.enterWriteBarrier(next);
      if (!evaluatedHold) return this.bindAfterCutover(next, buf, start, end);
      this.portals.set(bind.portal, { kind: 'deferred', route: next, bind, bindBytes: Buffer.from(buf.subarray(start, end)), result: null, described: false, noParams: true, release: holdFor(evaluatedHold) });
      await this.replyBytes(BIND_COMPLETE);
      return;
    }
    let paramTypes: readonly number[] = stmt.paramTypes;
    if (route.kind === 'pull') {
      const bound = await this.bindPushdownParams(route, stmt, bind);
      const err = bound instanceof PgError ? bound : await this.pull(route, null, { sql: stmt.query, paramTypes: stmt.paramTypes });
      if (err) {
        await this.replyError(err);
        this.cycleFailed = true;
        return;
      }
      // Every parameter typed: the final query may leave some unreferenced (they went to the workers).
      if (bound && !(bound instanceof PgError)) paramTypes = bound;
    }
    if (route.kind === 'router' || route.kind === 'pull' || (route.kind === 'local' && !this.watched(route))) {
      const link = route.kind !== 'router' ? this.coordinator : (this.joinedLinkNow(route.task.node, route.isWrite, route.task.shardIds) ?? (await this.linkForTask(route.task.node, route.isWrite, route.task.shardIds)));
      const sql = route.kind === 'router' ? route.task.sql : route.kind === 'pull' ? route.sql : stmt.query;
      // Named after the text (and types): a pull's final query differs between a pushdown, a broadcast and
      // the plain pull, so each gets its own; a shard's text is the same for every session (worker-statements.ts).
      const wname = usedName(stmt, sql, paramTypes);
      const parsing = lazyParseAnswered(link, wname);
      if (parsing) await parsing;
      if (this.cycleFailed) {
        // The Parse failed within this request: its error is the request's answer.
        hold();
        return;
      }
      if (this.needsSwitch(link)) await this.switchTo(link);
      this.active = link;
      this.cycleLinks.add(link);
      this.copyLink = link;
      // A Parse error's position is in the shard query, the pull's final query, or the client's own text.
      const origin = route.kind === 'router' ? (route.task.origin ?? null) : route.kind === 'pull' ? pulledOrigin(route) : undefined;
      prepareLazily(link, wname, sql, paramTypes, stmt.plan.catalogVersion, origin);
      const appended = route.kind === 'router' ? route.appendParams : undefined;
      link.send(appended ? encodeBindAppending(bind.portal, wname, buf, start, end, appended) : encodeBindFor(bind.portal, wname, buf, start, end), [E_BIND]);
      // In flight until the link has answered everything sent so far (Execute and Sync follow in the same batch).
      void link.idle().then(hold, hold);
      this.portals.set(bind.portal, link.typeOids !== null && asksBinaryRows(bind) ? { kind: 'link', link, binaryUndescribed: true } : { kind: 'link', link });
      return;
    }
    this.portals.set(bind.portal, { kind: 'deferred', route, bind, bindBytes: Buffer.from(buf.subarray(start, end)), result: null, described: false, release: holdFor(hold), statement: stmt });
    // The session answers this portal itself: its BindComplete waits for the rest of the chunk's replies (one client write).
    if (route.kind !== 'copy-in' && route.kind !== 'copy-out') this.holdClientWrites();
    await this.replyBytes(BIND_COMPLETE);
  }

  /**
   * A pushdown whose worker queries hold `$n`: this Bind's values spliced in
   * as typed literals (pushdown-param-values.ts). Returns the parameter
   * types PostgreSQL inferred (the final query is parsed with them), null
   * when the route has no such worker query.
   */
  private async bindPushdownParams(route: Extract<Route, { kind: 'pull' }>, stmt: PlannedStatement, bind: BindMessage): Promise<number[] | PgError | null> {
    if (bind.params.length === 0 || !(route.partial || route.broadcast || route.repartition) || !pushdownHasParams(route)) return null;
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    if (stmt.inferredTypes?.plan !== stmt.plan) {
      const types = await inferParamTypes(this.coordinator, stmt.query, stmt.paramTypes);
      if (types instanceof PgError) return types;
      stmt.inferredTypes = { plan: stmt.plan, types };
    }
    const types = stmt.inferredTypes.types;
    const literals = await paramLiterals(this.coordinator, bind, types);
    if (literals instanceof PgError) return literals;
    try {
      bindPushdownParams(route, literals);
    } catch (err) {
      return toPgError(err);
    }
    return types.oids;
  }

  /**
   * An autocommit router Bind whose request is whole in this chunk — Bind,
   * then only Describe/Execute of its portal, then Sync — goes to a shared
   * pipelined channel as one request (executor/pipelined-channel.ts), the
   * channel's own prepared statement in place of the client's; the pump
   * goes on after the Sync (`consumedTo`). False: the session's own link
   * runs it, message by message. Synchronous unless the session must first
   * wait for another link's replies (no promise on the common path).
   */
  private pipelineBind(route: Extract<Route, { kind: 'router' }>, stmt: PlannedStatement, bind: BindMessage, buf: Buffer, start: number, end: number, hold: () => void): boolean | Promise<boolean> {
    const portal = bind.portal;
    const syncEnd = pipelinedRequestEnd(buf, end, portal);
    if (syncEnd < 0) return false;
    const t = this.pipelineTenant(route.task.node, false);
    if (!t) return false;
    if (!this.needsSwitch(t)) return this.sendPipelined(t, route, stmt, bind, buf, start, end, syncEnd, hold);
    return this.switchTo(t).then(() => this.stillAutocommit() && t.channel.usable && this.sendPipelined(t, route, stmt, bind, buf, start, end, syncEnd, hold));
  }

  private sendPipelined(t: ChannelTenant, route: Extract<Route, { kind: 'router' }>, stmt: PlannedStatement, bind: BindMessage, buf: Buffer, start: number, end: number, syncEnd: number, hold: () => void): true {
    const portal = bind.portal;
    this.active = t;
    const { name, parse } = channelStatement(t, route.task.sql, stmt, { forwardError: true, origin: route.task.origin });
    const parts: Buffer[] = [];
    const expect: Expectation[] = [];
    if (parse) {
      parts.push(parse.bytes);
      expect.push(parse.expect);
    }
    // Binary rows without a Describe in the request: one of ours goes before the first Execute
    // (`Portal.binaryUndescribed`), the client's messages copied one by one around it.
    const binaryRows = t.typeOids !== null && asksBinaryRows(bind);
    let undescribed = binaryRows;
    parts.push(encodeBindFor(portal, name, buf, start, end, binaryRows ? end : syncEnd));
    expect.push(E_BIND);
    let executes = 0;
    let allRows = true;
    for (let pos = end, next = end; pos < syncEnd; pos = next) {
      const type = buf[pos];
      next = pos + 1 + buf.readInt32BE(pos + 1);
      if (type === Frontend.Describe) undescribed = false;
      if (type === Frontend.Execute) {
        executes++;
        if (buf.readInt32BE(next - 4) !== 0) allRows = false;
        if (undescribed) {
          parts.push(encodeDescribe('P', portal));
          expect.push(E_DESCRIBE_SWALLOW);
          undescribed = false;
        }
      }
      if (binaryRows) parts.push(buf.subarray(pos, next));
      expect.push(type === Frontend.Describe ? E_DESCRIBE : type === Frontend.Execute ? E_EXECUTE : { completes: Completes.Ready, forward: true, done: hold });
    }
    this.portals.delete(portal);
    this.consumedTo = syncEnd;
    // A read of all rows by one Execute may share its Sync with other sessions' reads (pipelined-channel.ts).
    t.sendRequest(parts, expect, route.readsOnly === true && !parse && !binaryRows && executes === 1 && allRows);
    return true;
  }

  /** A local statement that may change roles inside a function: run by the session, watched (src/commands/roles/watch.ts). */
  protected watched(route: Route): boolean {
    return route.kind === 'local' && route.watchRoles === true && this.services.watchRoles !== undefined;
  }

  /** A write's shard group is being moved: wait for the cutover, then bind again (planned anew for the new placement). */
  private async bindAfterCutover(route: Route, buf: Buffer, start: number, end: number): Promise<void> {
    const copy = Buffer.from(buf.subarray(start, end));
    await this.waitForWriteBarrier(route);
    return this.handleBind(copy, 0, copy.length);
  }
}

/** The Bind's parameter values as text (undefined for a binary value of a type the coordinator cannot print). */
function paramTexts(bind: BindMessage, stmt: PlannedStatement): Array<string | null | undefined> {
  return bind.params.map((p, i) => paramAsText(p, paramFormat(bind, i), stmt.paramTypes[i] ?? 0));
}

/**
 * Where a pipelinable request ends: after `from` (the end of a Bind of
 * `portal`), only Describe and Execute of that portal, then a Sync, all
 * within `buf`. Returns the Sync's end, or -1.
 */
function pipelinedRequestEnd(buf: Buffer, from: number, portal: string): number {
  let pos = from;
  while (pos + 5 <= buf.length) {
    const type = buf[pos];
    const end = pos + 1 + buf.readInt32BE(pos + 1);
    if (end > buf.length) return -1;
    if (type === Frontend.Sync) return end;
    if (type === Frontend.Describe) {
      if (buf[pos + 5] !== 0x50 /* P */ || !namesPortal(buf, pos + 6, end - 1, portal)) return -1;
    } else if (type === Frontend.Execute) {
      const nameEnd = buf.indexOf(0, pos + 5);
      if (nameEnd < 0 || nameEnd >= end || !namesPortal(buf, pos + 5, nameEnd, portal)) return -1;
    } else return -1;
    pos = end;
  }
  return -1;
}

function namesPortal(buf: Buffer, start: number, end: number, portal: string): boolean {
  if (portal === '') return end === start;
  return end - start === Buffer.byteLength(portal) && buf.toString('utf8', start, end) === portal;
}

/**
 * A deferred portal's barrier hold: released when the portal runs, or after
 * a while if it never does (a hold must not block a shard move for ever).
 */
function holdFor(release: () => void): () => void {
  const timer = setTimeout(release, 30_000);
  timer.unref();
  return () => {
    clearTimeout(timer);
    release();
  };
}

/** Whether a Bind asks for any column in binary (one format code for all, or one per column). */
function asksBinaryRows(bind: BindMessage): boolean {
  return bind.resultFormats.includes(1);
}
