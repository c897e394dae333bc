/**
 * The extended query protocol for statements the coordinator plans: planned
 * at Parse (and cached by text, since drivers re-Parse unnamed statements),
 * routed at Bind from the parameter values (deferred pruning), with
 * worker-side prepared statements per shard query (`pgws<n>`, named after
 * their text: worker-statements.ts) prepared lazily, and portals that live
 * on a backend or are run by the session.
 */
import type { Route } from '../planner/route.js';
import { Frontend } from '../protocol/constants.js';
import { Completes, type Expectation } from '../executor/backend-link.js';
import { lazyParseAnswered, prepareLazily } from './lazy-prepare.js';
import { PgError, toPgError } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import { readParse } from '../protocol/frontend/parse.js';
import { readBind, paramFormat, type BindMessage } from '../protocol/frontend/bind.js';
import { bindPushdownParams, pushdownHasParams } from '../planner/pushdown-params.js';
import { inferParamTypes, paramLiterals } from './pushdown-param-values.js';
import { readDescribe, readClose, readExecute } from '../protocol/frontend/describe-execute-close.js';
import { parseSql, type Node } from '../sql/parse.js';
import { BIND_COMPLETE, CLOSE_COMPLETE, NO_DATA, PARSE_COMPLETE, writeCommandOutput, writeParameterDescription } from './replies.js';
import { encodeBindAppending, encodeBindFor, encodeDescribe, encodeParse, encodeSync, encodeTaskWithParams } from './extended-encoders.js';
import { collectOnLink, type CollectedResult } from '../executor/link-query.js';
import type { ChannelTenant } from '../executor/pipelined-channel.js';
import { E_READY, E_READY_KEEP, E_PARSE, E_BIND, E_DESCRIBE, E_EXECUTE, PlannedStatement, Portal, LOCAL_STATEMENT, paramAsText, abortedError, rowDescriptionOnly, paramText } from './session-parts.js';
import { PreparedStatements, nextStatementId, usedName } from './prepared-statements.js';

export abstract class ExtendedProtocol extends PreparedStatements {

  // ---- extended protocol -----------------------------------------------------

  protected async handleParse(buf: Buffer, start: number, end: number): Promise<void> {
    const msg = readParse(buf, start, end);
    const catalog = await this.catalog();
    // As for a simple Query: calls of functions that may change roles are watched (src/commands/roles/watch.ts).
    const loading = this.roleFunctionsLoad(catalog);
    if (loading) await loading;
    const cached = this.cachedStatement(msg.query, msg.paramTypes, catalog);
    if (cached) {
      this.dropStatement(msg.name);
      this.statements.set(msg.name, cached);
      await this.replyBytes(PARSE_COMPLETE);
      return;
    }
    let stmt: Node | null = null;
    try {
      const parsed = parseSql(msg.query);
      if (parsed.stmts.length === 1) stmt = parsed.stmts[0].stmt;
    } catch (err) {
      await this.replyError(toPgError(err));
      this.cycleFailed = true;
      return;
    }
    const plan = stmt ? this.plan(stmt, msg.query, catalog) : null;
    const fixed = plan && !plan.needsParams ? plan.route(null) : null;
    if (!plan || (fixed && fixed.kind === 'local' && !this.watched(fixed) && !this.txn.involvesWorkers)) {
      if (stmt) this.observeLocal(stmt, msg.query, { kind: 'local' });
      this.dropStatement(msg.name);
      this.statements.set(msg.name, LOCAL_STATEMENT);
      await this.sendTo(this.coordinator, buf.subarray(start, end), E_PARSE);
      return;
    }
    this.dropStatement(msg.name);
    const planned: PlannedStatement = { id: nextStatementId(), query: msg.query, plan, paramTypes: msg.paramTypes };
    this.statements.set(msg.name, planned);
    this.rememberStatement(planned);
    await this.replyBytes(PARSE_COMPLETE);
  }

  protected async handleBind(buf: Buffer, start: number, end: number): Promise<void> {
    const bind = readBind(buf, start, end);
    const stmt = this.statements.get(bind.statement);
    const bytes = buf.subarray(start, end);
    if (!stmt) {
      this.portals.delete(bind.portal);
      // A block a worker aborted (a worker-side error): the coordinator's own transaction would still run
      // the statement, where PostgreSQL refuses everything but the block's end.
      if (this.statusByte() === 0x45 && this.coordinator.status !== 0x45) {
        await this.replyError(this.txn.takeLossError() ?? abortedError());
        this.cycleFailed = true;
        return;
      }
      await this.sendTo(this.coordinator, bytes, E_BIND);
      return;
    }
    let plan = stmt.plan;
    // (No async call when the catalog is loaded: every routed statement passes here.)
    const catalog = this.catalogNow() ?? (await this.catalog());
    if (plan.catalogVersion !== catalog.version) {
      const parsed = parseSql(stmt.query).stmts[0].stmt;
      plan = stmt.plan = this.plan(parsed, stmt.query, catalog);
    }
    const params = plan.needsParams ? bind.params.map((p, i) => paramAsText(p, paramFormat(bind, i), stmt.paramTypes[i] ?? 0)) : null;
    const first = plan.route(params as ReadonlyArray<string | null> | null);
    if (first.kind !== 'transaction' && this.statusByte() === 0x45) {
      await this.replyError(this.txn.takeLossError() ?? abortedError());
      this.cycleFailed = true;
      return;
    }
    let hold = this.enterWriteBarrier(first);
    if (!hold) return this.bindAfterCutover(first, buf, start, end);
    let route = first;
    if (route.kind === 'evaluate-insert') {
      const textParams = bind.params.map((p, i) => paramAsText(p, paramFormat(bind, i), stmt.paramTypes[i] ?? 0));
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
    if (route.kind === 'router') {
      const piped = this.pipelineBind(route, stmt, bind.portal, buf, start, end, hold);
      if (piped === true || (piped !== false && (await piped))) return;
    }
    if (route.kind === 'evaluate-insert') {
      const textParams = bind.params.map((p, i) => paramAsText(p, paramFormat(bind, i), stmt.paramTypes[i] ?? 0));
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
      this.portals.set(bind.portal, { kind: 'deferred', route: next, bind, bindBytes: Buffer.from(bytes), result: null, described: false, noParams: true, release: holdFor(evaluatedHold) });
      await this.replyBytes(BIND_COMPLETE);
      return;
    }
    let paramTypes: readonly number[] = stmt.paramTypes;
    if (route.kind === 'pull') {
      const bound = await this.bindPushdownParams(route, stmt, bind);
      const err = bound instanceof PgError ? bound : await this.pull(route);
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
      prepareLazily(link, wname, sql, paramTypes);
      const appended = route.kind === 'router' ? route.appendParams : undefined;
      link.send(appended ? encodeBindAppending(bind.portal, wname, buf, start, end, appended) : encodeBindFor(bind.portal, wname, buf, start, end), [E_BIND]);
      // In flight until the link has answered everything sent so far (Execute and Sync follow in the same batch).
      void link.idle().then(hold, hold);
      this.portals.set(bind.portal, { kind: 'link', link });
      return;
    }
    this.portals.set(bind.portal, { kind: 'deferred', route, bind, bindBytes: Buffer.from(bytes), result: null, described: false, release: holdFor(hold), statement: stmt });
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
  private pipelineBind(route: Extract<Route, { kind: 'router' }>, stmt: PlannedStatement, portal: string, buf: Buffer, start: number, end: number, hold: () => void): boolean | Promise<boolean> {
    const syncEnd = pipelinedRequestEnd(buf, end, portal);
    if (syncEnd < 0) return false;
    const t = this.pipelineTenant(route.task.node, false);
    if (!t) return false;
    if (!this.needsSwitch(t)) return this.sendPipelined(t, route, stmt, portal, buf, start, end, syncEnd, hold);
    return this.switchTo(t).then(() => this.stillAutocommit() && t.channel.usable && this.sendPipelined(t, route, stmt, portal, buf, start, end, syncEnd, hold));
  }

  private sendPipelined(t: ChannelTenant, route: Extract<Route, { kind: 'router' }>, stmt: PlannedStatement, portal: string, buf: Buffer, start: number, end: number, syncEnd: number, hold: () => void): true {
    this.active = t;
    const channel = t.channel;
    const { name, parse, key } = channel.statement(route.task.sql, stmt.paramTypes);
    const parts: Buffer[] = [];
    const expect: Expectation[] = [];
    if (parse) {
      parts.push(encodeParse(name, route.task.sql, stmt.paramTypes));
      expect.push({ completes: Completes.ParseComplete, forward: false, forwardError: true, done: (err) => channel.statementParsed(key, err === null) });
    }
    parts.push(encodeBindFor(portal, name, buf, start, end, syncEnd));
    expect.push(E_BIND);
    for (let pos = end; pos < syncEnd; pos += 1 + buf.readInt32BE(pos + 1)) {
      const type = buf[pos];
      expect.push(type === Frontend.Describe ? E_DESCRIBE : type === Frontend.Execute ? E_EXECUTE : { completes: Completes.Ready, forward: true, done: hold });
    }
    this.portals.delete(portal);
    this.consumedTo = syncEnd;
    t.sendRequest(parts, expect);
    return true;
  }

  /** A local statement that may change roles inside a function: run by the session, watched (src/commands/roles/watch.ts). */
  private watched(route: Route): boolean {
    return route.kind === 'local' && route.watchRoles === true && this.services.watchRoles !== undefined;
  }

  /** A write's shard group is being moved: wait for the cutover, then bind again (planned anew for the new placement). */
  private async bindAfterCutover(route: Route, buf: Buffer, start: number, end: number): Promise<void> {
    const copy = Buffer.from(buf.subarray(start, end));
    await this.waitForWriteBarrier(route);
    return this.handleBind(copy, 0, copy.length);
  }

  protected async handleDescribe(buf: Buffer, start: number, end: number): Promise<void> {
    const d = readDescribe(buf, start, end);
    if (d.target === 'S') {
      const stmt = this.statements.get(d.name)!;
      const task = stmt.plan.describeTask();
      // A watched local statement is described by the coordinator, which will run it.
      const watched = !task && this.watched(stmt.plan.route(null));
      if (task || watched) {
        const link = task ? await this.linkForTask(task.node, false) : this.coordinator;
        const wname = usedName(stmt, task ? task.sql : stmt.query, stmt.paramTypes);
        const parsing = lazyParseAnswered(link, wname);
        if (parsing) await parsing;
        if (this.cycleFailed) return; // (the Parse failed within this request)
        if (this.needsSwitch(link)) await this.switchTo(link);
        this.active = link;
        this.cycleLinks.add(link);
        prepareLazily(link, wname, task ? task.sql : stmt.query, stmt.paramTypes);
        link.send(encodeDescribe('S', wname), [E_DESCRIBE]);
        return;
      }
      const route = stmt.plan.route(null);
      const out = route.kind === 'command' ? this.services.isCommand(route.name) : false;
      await this.reply((w) => {
        writeParameterDescription(w, stmt.paramTypes.map((t) => t || 25));
        if (!out) w.bytes(NO_DATA);
        else w.bytes(NO_DATA);
      });
      return;
    }
    const portal = this.portals.get(d.name)!;
    if (portal.kind === 'link') {
      await this.sendTo(portal.link, buf.subarray(start, end), E_DESCRIBE);
      return;
    }
    if (portal.route.kind === 'copy-in' || portal.route.kind === 'copy-out') {
      await this.replyBytes(NO_DATA); // COPY returns no rows; it starts at Execute
      return;
    }
    await this.runDeferred(portal);
    portal.described = true;
    const r = portal.result!;
    await this.reply((w) => {
      if ('fields' in r) {
        if (r.fields.length > 0) {
          const tmp = new MessageWriter(256);
          writeCommandOutput(tmp, { fields: r.fields, rows: [], tag: '' }, true);
          // only the RowDescription part: fields are written first
          w.bytes(rowDescriptionOnly(tmp.flush()));
        } else w.bytes(NO_DATA);
      } else if (r.rowDescription) w.bytes(r.rowDescription);
      else w.bytes(NO_DATA);
    });
  }

  protected async runDeferred(portal: Extract<Portal, { kind: 'deferred' }>): Promise<void> {
    if (portal.result) return;
    try {
      await this.runDeferredNow(portal);
    } finally {
      portal.release?.();
    }
  }

  private async runDeferredNow(portal: Extract<Portal, { kind: 'deferred' }>): Promise<void> {
    let route = portal.route;
    if (route.kind === 'router') route = { kind: 'multi-shard', tasks: [route.task], isWrite: route.isWrite, commandTag: '' };
    if (route.kind === 'multi-shard') {
      portal.result = await this.runMultiShard(route, portal.noParams ? null : { bind: portal.bind, bytes: portal.bindBytes });
    } else if (route.kind === 'command') {
      const out = await this.runCommand(route, portal.bind);
      portal.result = out instanceof PgError ? { rowDescription: null, rows: [], tag: '', error: out } : out;
    } else if (route.kind === 'error') {
      portal.result = { rowDescription: null, rows: [], tag: '', error: route.error };
    } else if (route.kind === 'utility' || route.kind === 'global-utility') {
      const out = await this.runUtility(route);
      portal.result = out instanceof PgError ? { rowDescription: null, rows: [], tag: '', error: out } : { fields: [], rows: [], tag: out };
    } else if (route.kind === 'transaction') {
      const out = await this.txn.run(route.verb, route.statement);
      portal.result = out instanceof PgError ? { rowDescription: null, rows: [], tag: '', error: out } : { fields: [], rows: [], tag: out };
    } else if (route.kind === 'insert-select') {
      const params = portal.bind.params.map((_, i) => paramText(portal.bind, i));
      portal.result = await this.runInsertSelect(route, portal.noParams ? null : { bind: portal.bind, bytes: portal.bindBytes }, params);
    } else if (route.kind === 'local' && portal.statement) {
      portal.result = await this.runWatchedPortal(portal.statement, portal.bindBytes);
      if (portal.result === null) {
        // The error is replied already (by the statement or the watch).
        portal.result = { rowDescription: null, rows: [], tag: '', error: null };
        this.cycleFailed = true;
      }
    } else if (route.kind === 'explain') {
      const out = await this.runExplain(route);
      portal.result = out instanceof PgError ? { rowDescription: null, rows: [], tag: '', error: out } : out;
    } else {
      portal.result = { rowDescription: null, rows: [], tag: '', error: new PgError({ code: 'XX000', message: `cannot execute a ${route.kind} route here` }) };
    }
    if ('error' in portal.result && portal.result.error) {
      const err = portal.result.error;
      portal.result = { rowDescription: null, rows: [], tag: '', error: null };
      await this.replyError(err);
      this.cycleFailed = true;
    }
  }

  /**
   * A watched local statement with the client's Bind: run on the coordinator
   * inside the role watch, as runWatchingRoles does for a simple Query; its
   * rows are collected for the portal. Null when it failed (error replied).
   */
  private async runWatchedPortal(statement: { query: string; paramTypes: readonly number[] }, bindBytes: Buffer): Promise<CollectedResult | null> {
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    let result: CollectedResult | null = null;
    const ok = await this.runWatchingRoles(statement.query, async () => {
      const r = await collectOnLink(this.coordinator, encodeTaskWithParams(statement.query, bindBytes, statement.paramTypes));
      if (r.error) {
        await this.replyError(r.error);
        return false;
      }
      result = r;
      return true;
    });
    return ok ? result : null;
  }

  protected async handleExecute(buf: Buffer, start: number, end: number): Promise<void> {
    const e = readExecute(buf, start, end);
    const portal = this.portals.get(e.portal)!;
    if (portal.kind === 'link') {
      await this.sendTo(portal.link, buf.subarray(start, end), E_EXECUTE);
      return;
    }
    if (portal.route.kind === 'copy-in') {
      // CopyInResponse now; CommandComplete after CopyDone; ReadyForQuery at the client's Sync.
      this.portals.delete(e.portal);
      await this.beginCopyIn(portal.route, true, portal.release);
      return;
    }
    if (portal.route.kind === 'copy-out') {
      // Streamed as from a simple Query: CopyOutResponse … CopyDone, CommandComplete; ReadyForQuery at the client's Sync.
      this.portals.delete(e.portal);
      const err = await this.copyOut(portal.route, null);
      if (err) {
        await this.replyError(err);
        this.cycleFailed = true;
      }
      return;
    }
    await this.runDeferred(portal);
    if (this.cycleFailed) return;
    const r = portal.result!;
    await this.reply((w) => {
      if ('fields' in r) writeCommandOutput(w, r, false);
      else {
        for (const row of r.rows) w.bytes(row);
        writeCommandOutput(w, { fields: [], rows: [], tag: r.tag }, false);
      }
    });
  }

  protected async handleClose(buf: Buffer, start: number, end: number): Promise<void> {
    const c = readClose(buf, start, end);
    if (c.target === 'S') this.dropStatement(c.name);
    else this.portals.delete(c.name);
    await this.replyBytes(CLOSE_COMPLETE);
  }

  protected async handleSync(): Promise<void> {
    // A lost link answers nothing (its requests were answered when it was lost).
    const links = [...this.cycleLinks].filter((l) => !l.lost);
    if (links.length <= 1) this.endCycle();
    if (links.length === 0) {
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    if (links.length === 1) {
      await this.sendTo(links[0], encodeSync(), E_READY);
      this.cycleLinks.clear();
      return;
    }
    // The cycle ends only after the loop: switchTo flushes the link it leaves
    // only while that link is still in the cycle, else it waits for replies
    // PostgreSQL holds back until a Sync (a hang).
    for (const l of links) {
      await this.switchTo(l);
      l.send(encodeSync(), [E_READY_KEEP]);
    }
    this.endCycle();
    await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
  }
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
