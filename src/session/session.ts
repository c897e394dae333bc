/**
 * One client session: the statement loop between a client socket and the
 * PostgreSQL connections that serve it — the coordinator PostgreSQL (local
 * tables, catalogs, anything not distributed) and, as needed, one connection
 * per worker, each opened as the client's own role.
 *
 * States: running → closed. Client bytes are framed into whole messages and
 * processed strictly in order by `pump()`. Messages that concern nothing
 * distributed (decided by the lexer in microseconds, then by the planner) are
 * forwarded to the coordinator PostgreSQL in the very chunks they arrived
 * in. Others are planned (src/planner) and either forwarded to one worker
 * with shard names spliced in (router), run across shards (executor), run by
 * the coordinator itself (Citus functions), or answered directly.
 *
 * Output order: replies reach the client in request order because the
 * session only switches the backend it talks to (or writes a reply of its
 * own) once the previous backend has answered everything forwarded so far
 * (`switchTo`). Extended-protocol errors make the session skip to Sync, as
 * PostgreSQL does. The transaction status in ReadyForQuery is the session's:
 * 'E' when any node of the transaction failed.
 */
import { Frontend } from '../protocol/constants.js';
import { PgError, ProtocolViolation, toPgError, type ErrorFields } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { writeErrorResponse } from '../protocol/backend/error-response.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import { readQuery } from '../protocol/frontend/query.js';
import { readParse } from '../protocol/frontend/parse.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { mentionsAnyWord } from '../sql/lexer.js';
import { parseSql, statementText, type Node } from '../sql/parse.js';
import type { DistributedTable, Route } from '../planner/route.js';
import type { Catalog } from '../metadata/types.js';
import { encodeFlush } from './extended-encoders.js';
import { KNOWN_FRONTEND, EXTENDED_MESSAGE, E_READY, E_READY_SWALLOW, expectationFor, LOCAL_STATEMENT, CATALOG_VIEW_WORDS, abortedError, mentionsCommand } from './session-parts.js';
import { AutoPrepare } from './auto-prepare.js';
import { escapeClientStatementNames } from './client-statement-names.js';
import { forgetAllPrepared } from './lazy-prepare.js';
import { pulledOrigin, readyFor } from './error-positions.js';
import { charCountOf } from '../sql/text-splice.js';
import { dropPulledTables } from './pull-tables.js';
import { writeGateFor } from '../executor/write-gate.js';
import { Completes } from '../executor/backend-link.js';
import type { CopyProgressEntry } from '../commands/copy/copy-progress.js';

export type { SessionOptions } from './session-parts.js';

export class Session extends AutoPrepare {

  start(leftover: Buffer | null): void {
    this.state = 'running';
    const { client } = this;
    client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => this.close());
    client.on('close', () => this.close());
    client.on('error', () => this.close());
    if (leftover) this.onClientData(leftover);
  }

  /** Cancels whatever the backends are running for this session (CancelRequest). */
  cancel(): void {
    if (this.state !== 'running') return;
    this.coordinator.cancel();
    for (const w of this.workers.values()) w.cancel();
    for (const w of this.txn.extraLinks) w.cancel();
    // A shared channel forwards the cancel only while it cannot hit another session's statement.
    for (const t of this.tenants.values()) t.cancel();
  }

  /** A client's DEALLOCATE ALL or DISCARD ALL goes to the coordinator: the session's statements there may be gone. */
  private readonly forgetCoordinatorStatements = (): void => forgetAllPrepared(this.coordinator);

  /** The client socket is paused because COPY data arrives faster than the shards take it. */
  private copyPaused = false;

  protected onClientData(chunk: Buffer): void {
    if (this.state !== 'running') return;
    let whole: Buffer | null;
    try {
      whole = this.framer.take(chunk);
    } catch (err) {
      this.fatal(err as PgError);
      return;
    }
    if (whole === null) return;
    this.inbox.push(whole);
    // COPY data waits while the shards catch up: stop reading the client meanwhile (bounded memory).
    if (this.copyIn && this.inbox.length > 4 && !this.copyPaused) {
      this.copyPaused = true;
      this.client.pause();
    }
    if (!this.pumping) void this.pump();
  }

  /** Processes queued client messages in order, awaiting only where a step needs it. */
  protected async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && this.state === 'running') {
        // Client statement names apart from the session's own on the coordinator link (client-statement-names.ts).
        const buf = escapeClientStatementNames(this.inbox.shift()!, this.forgetCoordinatorStatements, this.escapedTexts.newChunk());
        if (this.copyPaused && this.inbox.length <= 1) {
          this.copyPaused = false;
          this.client.resume();
        }
        let pos = 0;
        let runStart = -1; // start of a run of messages forwarded to the coordinator as they are
        while (pos < buf.length && this.state === 'running') {
          const type = buf[pos];
          const end = pos + 1 + buf.readInt32BE(pos + 1);
          if (KNOWN_FRONTEND[type] === 0) {
            if (runStart >= 0) this.forwardRun(buf, runStart, pos);
            this.fatal(new ProtocolViolation(`invalid frontend message type ${type}`));
            return;
          }
          if (EXTENDED_MESSAGE[type] === 1) this.cycleExtended = true;
          if (this.isPlainForward(type, buf, pos, end)) {
            if (runStart < 0) {
              // the coordinator becomes the active link: wait for others first
              if (this.active !== this.coordinator && this.needsSwitch(this.coordinator)) await this.switchTo(this.coordinator);
              this.active = this.coordinator;
              runStart = pos;
            }
            let e = expectationFor(type);
            // A text whose statement names were escaped: its errors' positions map back (escaped-texts.ts).
            const escaped = this.escapedTexts.forwarded(type, buf, pos, end);
            if (e && escaped) e = { ...e, origin: escaped };
            // (A fast-path FunctionCall runs a function too: it counts as a statement run, see runCount.)
            if (e) this.coordinator.queuePush(e, type === Frontend.Query || type === Frontend.FunctionCall);
            this.cycleLinks.add(this.coordinator);
            if (type === Frontend.Sync) this.endCycle();
          } else {
            if (runStart >= 0) {
              this.forwardRun(buf, runStart, pos);
              runStart = -1;
            }
            if (type === Frontend.Terminate) {
              this.close();
              return;
            }
            this.consumedTo = 0;
            try {
              const handled = this.handle(type, buf, pos, end);
              if (handled) await handled;
            } catch (err) {
              if (err instanceof ProtocolViolation) throw err;
              // One statement failed (a worker unreachable, say): report it, keep the session.
              const pgErr = toPgError(err);
              await this.replyError(new PgError({ ...pgErr.fields, severity: 'ERROR' }));
              if (type === Frontend.Query) await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
              else this.cycleFailed = true;
            }
            this.queryEscape = null;
            // A pipelined Bind took the messages up to its Sync along (extended-protocol.ts).
            if (this.consumedTo > end) {
              pos = this.consumedTo;
              continue;
            }
          }
          pos = end;
        }
        if (runStart >= 0) this.forwardRun(buf, runStart, pos);
        this.releaseClientWrites();
      }
    } catch (err) {
      this.fatal(toPgError(err));
    } finally {
      this.releaseClientWrites();
      this.pumping = false;
    }
    if (this.state === 'running') this.releaseIdleWorkers();
  }

  protected forwardRun(buf: Buffer, start: number, end: number): void {
    const bytes = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    // A full coordinator socket pauses the client until it drains (one shared listener, executor/write-gate.ts).
    writeGateFor(this.coordinator.conn.socket).write(bytes, this.client);
  }

  /**
   * True when a message goes to the coordinator PostgreSQL unchanged: the
   * common case, decided without parsing when the lexer finds no word that
   * concerns distributed work.
   */
  protected isPlainForward(type: number, buf: Buffer, start: number, end: number): boolean {
    if (this.cycleFailed || this.copyIn) return false;
    switch (type) {
      case Frontend.Query:
        return !this.txn.involvesWorkers && !this.isRelevant(readQuery(buf, start, end));
      case Frontend.Parse: {
        const p = readParse(buf, start, end);
        if (this.isRelevant(p.query)) return false;
        this.dropStatement(p.name);
        this.statements.set(p.name, LOCAL_STATEMENT);
        return true;
      }
      case Frontend.Bind: {
        // portal and statement names are the first two strings
        const portalEnd = buf.indexOf(0, start + 5);
        const stmtEnd = buf.indexOf(0, portalEnd + 1);
        const stmt = buf.toString('utf8', portalEnd + 1, stmtEnd);
        if (this.statements.get(stmt)) return false;
        this.portals.delete(buf.toString('utf8', start + 5, portalEnd));
        return !this.txn.involvesWorkers || !this.statements.has(stmt);
      }
      case Frontend.Describe:
      case Frontend.Close: {
        const name = buf.toString('utf8', start + 6, end - 1);
        if (buf[start + 5] === 0x53) return !this.statements.get(name);
        return !this.portals.has(name);
      }
      case Frontend.Execute: {
        const name = buf.toString('utf8', start + 5, buf.indexOf(0, start + 5));
        return !this.portals.has(name);
      }
      case Frontend.Sync:
        // A cycle the session answered itself (BEGIN, COMMIT of a deferred portal): handleSync writes
        // ReadyForQuery without a coordinator round trip.
        return this.cycleLinks.size === 1 && this.cycleLinks.has(this.coordinator);
      case Frontend.Flush:
        return this.cycleLinks.size === 0 || (this.cycleLinks.size === 1 && this.cycleLinks.has(this.coordinator));
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        return this.copyIn === null && this.copyLink === this.coordinator;
      case Frontend.FunctionCall:
        return true;
      default:
        return false;
    }
  }

  /** Whether a statement text can concern the distributed catalog at all. */
  protected isRelevant(sql: string): boolean {
    const catalog = this.catalogNow();
    if (catalog === null) return true;
    const workers = catalog.nodes.some((n) => n.isActive && n.groupId !== 0);
    // Functions that may change roles are watched when called (src/commands/roles/watch.ts); unsure while their names load.
    const roleFunctions = workers && this.services.roleFunctionsNow ? this.services.roleFunctionsNow(catalog) : undefined;
    if (roleFunctions === null) {
      this.services.loadRoleFunctions?.(catalog).catch(() => {});
      return true;
    }
    if (catalog.version !== this.relevantVersion || roleFunctions !== this.relevantFunctions) {
      const words = new Set<string>(['create_distributed_table', 'create_reference_table', 'citus_add_node']);
      for (const t of catalog.tables.values()) {
        words.add(t.name);
        words.add(t.name.toLowerCase());
      }
      for (const w of ['role', 'user', 'group', 'schema', 'privileges', 'owner', 'owned', 'grant', 'revoke', 'set', 'reset']) words.add(w);
      if (catalog.tables.size > 0) for (const w of ['begin', 'start', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release', 'set', 'reset', 'discard', 'prepare', 'index']) words.add(w);
      for (const w of CATALOG_VIEW_WORDS) words.add(w);
      // Types, collations, extensions and functions are propagated to the workers (sql/object-statements.ts).
      if (catalog.nodes.some((n) => n.groupId !== 0)) for (const w of ['type', 'domain', 'collation', 'extension', 'function', 'procedure', 'routine']) words.add(w);
      // DO and CALL may change roles inside a function: the session watches them, and calls of such functions.
      if (workers) for (const w of ['do', 'call', ...(roleFunctions ?? [])]) words.add(w);
      this.relevantWords = words;
      this.relevantVersion = catalog.version;
      this.relevantFunctions = roleFunctions;
    }
    return mentionsAnyWord(sql, this.relevantWords) || mentionsCommand(sql, this.services);
  }

  // ---- message handlers ----------------------------------------------------

  /** One message's handler (not async itself: the pump awaits the handler's own promise, one layer less per message). */
  protected handle(type: number, buf: Buffer, start: number, end: number): Promise<void> | void {
    if (this.copyIn) return this.handleCopyIn(type, buf, start, end);
    if (this.cycleFailed && type !== Frontend.Sync && type !== Frontend.Query) return; // skipping to Sync
    switch (type) {
      case Frontend.Query:
        return this.handleQuery(buf, start, end);
      case Frontend.Parse:
        return this.handleParse(buf, start, end);
      case Frontend.Bind:
        return this.handleBind(buf, start, end);
      case Frontend.Describe:
        return this.handleDescribe(buf, start, end);
      case Frontend.Execute:
        return this.handleExecute(buf, start, end);
      case Frontend.Close:
        return this.handleClose(buf, start, end);
      case Frontend.Sync:
        return this.handleSync();
      case Frontend.Flush:
        for (const l of this.cycleLinks) l.send(encodeFlush(), []);
        return;
      default: {
        // CopyData/CopyDone/CopyFail to the link in COPY; FunctionCall to the coordinator
        const link = type === Frontend.FunctionCall ? this.coordinator : this.copyLink;
        const e = expectationFor(type);
        link.send(buf.subarray(start, end), e ? [e] : []);
        if (type === Frontend.CopyDone || type === Frontend.CopyFail) this.copyLink = this.coordinator;
      }
    }
  }

  protected async handleQuery(buf: Buffer, start: number, end: number): Promise<void> {
    // Its statement names escaped, its errors' positions map back through the escape (error-positions.ts; reset by the pump).
    this.queryEscape = this.escapedTexts.forwarded(Frontend.Query, buf, start, end);
    this.cycleFailed = false;
    const sql = readQuery(buf, start, end);
    const auto = this.autoPrepared(sql);
    if (auto !== null && (await auto)) return;
    let catalog = await this.catalog();
    const loading = this.roleFunctionsLoad(catalog);
    if (loading) await loading;
    let stmts: Array<{ stmt: Node; text: string; offset: number }>;
    try {
      const parsed = parseSql(sql).stmts;
      // Parse-tree locations are offsets in the whole string: with several
      // statements, each is planned from a parse of its own text, and starts
      // `offset` characters into the string (its errors' positions count from there).
      const bytes = parsed.length === 1 ? null : Buffer.from(sql, 'utf8');
      stmts = parsed.map((s) => {
        const text = statementText(sql, s);
        if (bytes === null) return { stmt: s.stmt, text, offset: 0 };
        return { stmt: parseSql(text).stmts[0].stmt, text, offset: charCountOf(bytes, s.stmt_location ?? 0) };
      });
    } catch (err) {
      // The parser's position is in the client's whole string.
      await this.replyError(toPgError(err), undefined);
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    let routes = stmts.map((s) => this.plan(s.stmt, s.text, catalog).route(null));
    // A lone write routed directly (router, COPY) passes the shard-move write barrier here;
    // everything else passes it statement by statement in runRoute.
    let hold: (() => void) | null = null;
    while (routes.length === 1 && (routes[0].kind === 'copy-in' || (routes[0].kind === 'router' && routes[0].isWrite))) {
      hold = this.enterWriteBarrier(routes[0]);
      if (hold) break;
      await this.waitForWriteBarrier(routes[0]);
      catalog = await this.catalog();
      routes = stmts.map((s) => this.plan(s.stmt, s.text, catalog).route(null));
    }
    const release = hold ?? (() => {});
    try {
      await this.runPlannedQuery(buf, start, end, stmts, routes, catalog, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  private async runPlannedQuery(
    buf: Buffer,
    start: number,
    end: number,
    stmts: Array<{ stmt: Node; text: string; offset: number }>,
    routes: Route[],
    catalog: Catalog,
    release: () => void,
  ): Promise<void> {
    if (!(routes.length === 1 && (routes[0].kind === 'router' || routes[0].kind === 'copy-in'))) release();
    if (this.statusByte() === 0x45 && routes[0].kind !== 'transaction') {
      release();
      await this.replyError(this.txn.takeLossError() ?? abortedError());
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    // A search_path set before other statements of the query may make them distributed: planned in turn below.
    const searchPathMidway = stmts.some((s, i) => i < stmts.length - 1 && s.stmt.VariableSetStmt?.name === 'search_path');
    // A lone SET LOCAL outside a block changes nothing (PostgreSQL only warns).
    const idleLocalSet = stmts.length === 1 && !!stmts[0].stmt.VariableSetStmt?.is_local && this.statusByte() === 0x49;
    if (routes.every((r) => r.kind === 'local' && !r.watchRoles) && !this.txn.involvesWorkers && !searchPathMidway) {
      if (!idleLocalSet) for (let i = 0; i < stmts.length; i++) this.observeLocal(stmts[i].stmt, stmts[i].text, routes[i]);
      if (stmts.some((s) => mentionsAnyWord(s.text, new Set(CATALOG_VIEW_WORDS)))) await this.services.beforeCatalogViewRead?.();
      await this.sendTo(this.coordinator, buf.subarray(start, end), readyFor(this.inQueryString(undefined)));
      return;
    }
    // Several statements: each SET is seen when its turn comes (below), so the statements before it
    // run without it and a SET LOCAL after BEGIN belongs to that block.
    if (stmts.length === 1 && !idleLocalSet) this.observeLocal(stmts[0].stmt, stmts[0].text, routes[0]);
    if (routes.length === 1 && routes[0].kind === 'router' && (await this.pipelineQuery(routes[0], release))) return;
    if (routes.length === 1 && routes[0].kind === 'router') {
      const link = await this.linkForTask(routes[0].task.node, routes[0].isWrite, routes[0].task.shardIds);
      await this.sendTo(link, encodeQuery(routes[0].task.sql), readyFor(this.inQueryString(routes[0].task.origin ?? null)));
      // In flight until its reply arrives.
      void link.idle().then(release, release);
      return;
    }
    if (routes.length === 1 && routes[0].kind === 'copy-in') {
      await this.beginCopyIn(routes[0], false, release);
      return;
    }
    release();
    if (routes.length === 1 && routes[0].kind === 'copy-out') {
      const progress = this.copyToProgress(stmts[0].stmt, routes[0].table);
      const err = await this.copyOut(routes[0], progress);
      progress?.end();
      if (err) await this.replyError(err);
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    if (routes.length === 1 && routes[0].kind === 'pull') {
      const progress = routes[0].pulls.length > 0 ? this.copyToProgress(stmts[0].stmt, routes[0].pulls[0].table) : null;
      const err = await this.pull(routes[0], progress, { sql: stmts[0].text, paramTypes: [] });
      if (err) {
        progress?.end();
        await this.replyError(err);
        await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
        return;
      }
      await this.sendTo(this.coordinator, encodeQuery(routes[0].sql), readyFor(this.inQueryString(pulledOrigin(routes[0]))));
      this.coordinator.send(dropPulledTables(routes[0].pulls), [E_READY_SWALLOW]);
      // The COPY ends when the coordinator has sent the client its last row.
      if (progress) await this.coordinator.idle().finally(() => progress.end());
      return;
    }
    // Several statements or other kinds: run one by one, stop at the first error —
    // in one implicit transaction across nodes, as PostgreSQL runs a multi-statement query.
    const implicit = await this.txn.beginImplicit(routes);
    let ok = true;
    let setBefore = false;
    for (let i = 0; i < stmts.length && ok; i++) {
      if (i > 0 && this.statusByte() === 0x45 && routes[i].kind !== 'transaction') {
        // A node of the block was lost between two statements: the rest does not run.
        await this.replyError(this.txn.takeLossError() ?? abortedError());
        ok = false;
        break;
      }
      // A statement may change the catalog (create_distributed_table) or the search_path: plan the rest anew.
      let route = routes[i];
      const now = i > 0 ? await this.catalog() : catalog;
      if (now.version !== catalog.version || setBefore) route = this.plan(stmts[i].stmt, stmts[i].text, now).route(null);
      if (stmts.length > 1) this.observeLocal(stmts[i].stmt, stmts[i].text, route);
      if (stmts[i].stmt.VariableSetStmt) setBefore = true;
      this.statementOffset = stmts[i].offset;
      ok = await this.runRoute(route, stmts[i].text, null).finally(() => (this.statementOffset = 0));
    }
    const commitError = implicit ? await this.txn.endImplicit(ok) : null;
    if (commitError) await this.replyError(commitError);
    await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
  }

  /**
   * A lone autocommit router Query on a shared pipelined channel
   * (executor/pipelined-channel.ts); false when the session's own link must
   * run it. The write barrier's hold ends with the request's ReadyForQuery.
   */
  private async pipelineQuery(route: Extract<Route, { kind: 'router' }>, release: () => void): Promise<boolean> {
    const t = this.pipelineTenant(route.task.node, true);
    if (!t) return false;
    if (this.needsSwitch(t)) {
      await this.switchTo(t);
      if (!this.stillAutocommit() || !t.channel.usable) return false;
    }
    this.active = t;
    t.sendRequest([encodeQuery(route.task.sql)], [{ completes: Completes.Ready, forward: true, done: release, origin: this.inQueryString(route.task.origin ?? null) }]);
    return true;
  }

  /**
   * COPY … TO STDOUT of a distributed table or of a query over them: progress
   * counts the rows pulled from the shards (the coordinator PostgreSQL's own
   * pg_stat_progress_copy shows its last step). relid is 0 for a query, as in
   * PostgreSQL.
   */
  private copyToProgress(stmt: Node, table: DistributedTable): CopyProgressEntry | null {
    const copy = stmt.CopyStmt;
    if (!copy || copy.is_from || !this.services.openCopyProgress) return null;
    const shards = table.method === 'reference' ? table.shards.slice(0, 1) : table.shards;
    const relid = copy.relation ? table.relationId : 0;
    return this.services.openCopyProgress(this.coordinator.conn.key.processId, relid, 'COPY TO', shards.map((s) => String(s.shardId)));
  }

  /** Reports a FATAL error to the client and ends the session. */
  protected fatal(err: PgError): void {
    if (this.state === 'closed') return;
    const fields: ErrorFields = { ...err.fields, severity: 'FATAL' };
    const w = new MessageWriter(256);
    writeErrorResponse(w, fields);
    if (!this.client.destroyed) this.client.end(w.flush());
    this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.copyIn && !this.copyIn.failed) void this.copyIn.sink.abort(new PgError({ code: '08006', message: 'the client disconnected during COPY' })).catch(() => {});
    this.copyIn?.release?.();
    this.coordinator.close();
    // Idle links between blocks go to the pool (as they would have at their block's end); others close.
    this.parked.releaseAll();
    for (const w of this.workers.values()) w.close();
    // Forgotten at once: a reply arriving before the Terminate goes out must not hand a link to the pool.
    this.workers.clear();
    for (const w of this.txn.extraLinks) w.close();
    for (const t of this.tenants.values()) t.close();
    this.tenants.clear();
    if (!this.client.destroyed) this.client.end();
    this.onClose?.();
  }
}
