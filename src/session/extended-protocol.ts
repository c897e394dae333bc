/**
 * The extended query protocol for statements the coordinator plans: planned
 * at Parse (and cached by text, since drivers re-Parse unnamed statements),
 * routed at Bind from the parameter values (deferred pruning), with
 * worker-side prepared statements per shard query (`pgws<n>`, named after
 * their text: worker-statements.ts) prepared lazily, and portals that live
 * on a backend or are run by the session.
 * Bind — routing and where the bound portal lives — is bind-routing.ts.
 */
import { lazyParseAnswered, prepareLazily } from './lazy-prepare.js';
import { PgError, toPgError } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import { readParse } from '../protocol/frontend/parse.js';
import { readDescribe, readClose, readExecute } from '../protocol/frontend/describe-execute-close.js';
import { parseSql, type Node } from '../sql/parse.js';
import { CLOSE_COMPLETE, NO_DATA, PARSE_COMPLETE, writeCommandOutput, writeParameterDescription } from './replies.js';
import { encodeDescribe, encodeSync, encodeTaskWithParams } from './extended-encoders.js';
import { collectOnLink, type CollectedResult } from '../executor/link-query.js';
import { E_READY, E_READY_KEEP, E_PARSE, E_DESCRIBE, E_DESCRIBE_SWALLOW, E_EXECUTE, PlannedStatement, Portal, LOCAL_STATEMENT, rowDescriptionOnly, paramText } from './session-parts.js';
import { BindRouting } from './bind-routing.js';
import { Frontend } from '../protocol/constants.js';
import { nextStatementId, usedName } from './prepared-statements.js';
import { FIRST_NORMAL_OID } from '../executor/type-oids.js';
import type { Catalog } from '../metadata/types.js';
import type { Route } from '../planner/route.js';

/** Routes of statements over distributed tables that no shard task describes: the coordinator describes them (handleDescribe). */
const DESCRIBED_BY_COORDINATOR = new Set<Route['kind']>(['pull', 'multi-shard', 'router', 'insert-select', 'evaluate-insert']);

export abstract class ExtendedProtocol extends BindRouting {

  // ---- extended protocol -----------------------------------------------------

  protected async handleParse(buf: Buffer, start: number, end: number): Promise<void> {
    const msg = readParse(buf, start, end);
    const catalog = await this.catalog();
    // As for a simple Query: calls of functions that may change roles are watched (src/commands/roles/watch.ts).
    const loading = this.roleFunctionsLoad(catalog);
    if (loading) await loading;
    if (msg.paramTypes.some((t) => t >= FIRST_NORMAL_OID)) await this.workerParamTypesKnown(catalog, msg.paramTypes);
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
      // The parser's position is in the client's text.
      await this.replyError(toPgError(err), undefined);
      this.cycleFailed = true;
      return;
    }
    const plan = stmt ? this.plan(stmt, msg.query, catalog) : null;
    const fixed = plan && !plan.needsParams ? plan.route(null) : null;
    if (!plan || (fixed && fixed.kind === 'local' && !this.watched(fixed) && !this.txn.involvesWorkers)) {
      if (stmt) this.observeLocal(stmt, msg.query, { kind: 'local' });
      this.dropStatement(msg.name);
      this.statements.set(msg.name, LOCAL_STATEMENT);
      // A text whose statement names were escaped: its errors' positions map back (escaped-texts.ts).
      const escaped = this.escapedTexts.forwarded(Frontend.Parse, buf, start, end);
      await this.sendTo(this.coordinator, buf.subarray(start, end), escaped ? { ...E_PARSE, origin: escaped } : E_PARSE);
      return;
    }
    this.dropStatement(msg.name);
    const planned: PlannedStatement = { id: nextStatementId(), query: msg.query, plan, paramTypes: msg.paramTypes };
    this.statements.set(msg.name, planned);
    this.rememberStatement(planned);
    await this.replyBytes(PARSE_COMPLETE);
  }

  /**
   * Declared parameter types of user types go to the workers as theirs
   * (executor/type-oids.ts `workerTypes`): their maps are filled here, where
   * waiting is free, not when a Bind prepares the worker's statement.
   */
  private async workerParamTypesKnown(catalog: Catalog, types: readonly number[]): Promise<void> {
    const typeOids = this.services.typeOids;
    if (!typeOids) return;
    await Promise.all(catalog.nodes.filter((n) => n.isActive && n.groupId !== 0).map((n) => typeOids(n).fillFor(types)));
  }

  protected async handleDescribe(buf: Buffer, start: number, end: number): Promise<void> {
    const d = readDescribe(buf, start, end);
    if (d.target === 'S') {
      const stmt = this.statements.get(d.name)!;
      // Described as it will run: planned again if a DDL changed the catalog since (its result type may differ).
      if (stmt.plan.catalogVersion !== this.catalogNow()?.version) await this.planCurrent(stmt);
      const task = stmt.plan.describeTask();
      // A watched local statement is described by the coordinator, which will run it; so is a statement over
      // distributed tables without a shard task to describe (pulled: joins that are not co-located, subqueries
      // planned on their own…): the coordinator holds every table's definition, so its answer is PostgreSQL's.
      const coordinatorRoute = task ? null : stmt.plan.route(null);
      const watched = coordinatorRoute !== null && (this.watched(coordinatorRoute) || DESCRIBED_BY_COORDINATOR.has(coordinatorRoute.kind));
      if (task || watched) {
        const link = task ? await this.linkForTask(task.node, false) : this.coordinator;
        const wname = usedName(stmt, task ? task.sql : stmt.query, stmt.paramTypes);
        const parsing = lazyParseAnswered(link, wname);
        if (parsing) await parsing;
        if (this.cycleFailed) return; // (the Parse failed within this request)
        if (this.needsSwitch(link)) await this.switchTo(link);
        this.active = link;
        this.cycleLinks.add(link);
        prepareLazily(link, wname, task ? task.sql : stmt.query, stmt.paramTypes, stmt.plan.catalogVersion, task ? (task.origin ?? null) : undefined);
        link.send(encodeDescribe('S', wname), [E_DESCRIBE]);
        return;
      }
      const route = coordinatorRoute ?? stmt.plan.route(null);
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
      portal.binaryUndescribed = false;
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
      await this.abortBlockOnCoordinator();
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
      const origin = 'errorOrigin' in portal.result ? portal.result.errorOrigin : null;
      portal.result = { rowDescription: null, rows: [], tag: '', error: null };
      await this.replyError(err, origin ?? null);
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
      if (portal.binaryUndescribed) await this.sendTo(portal.link, encodeDescribe('P', e.portal), E_DESCRIBE_SWALLOW);
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

