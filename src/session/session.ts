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
import type { Duplex } from 'node:stream';
import { Backend, Frontend, type TransactionStatus } from '../protocol/constants.js';
import { MessageFramer } from '../protocol/framer.js';
import { PgError, ProtocolViolation, toPgError, type ErrorFields } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { writeErrorResponse } from '../protocol/backend/error-response.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import { readQuery } from '../protocol/frontend/query.js';
import { readParse } from '../protocol/frontend/parse.js';
import { readBind, paramFormat, type BindMessage } from '../protocol/frontend/bind.js';
import { readDescribe, readClose, readExecute } from '../protocol/frontend/describe-execute-close.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import { encodeQuery, encodeExtendedQuery } from '../pool/frontend-encoders.js';
import { BackendLink, Completes, type Expectation } from '../executor/backend-link.js';
import { collectOnLink, decodeDataRow, decodeFieldNames, type CollectedResult } from '../executor/link-query.js';
import { mentionsAnyWord, scanWords } from '../sql/lexer.js';
import { parseSql, statementText, type Node } from '../sql/parse.js';
import type { Catalog, WorkerNode } from '../metadata/types.js';
import { planStatement, type StatementPlan } from '../planner/plan-statement.js';
import type { Route } from '../planner/route.js';
import { BIND_COMPLETE, CLOSE_COMPLETE, NO_DATA, PARSE_COMPLETE, writeCommandOutput, writeParameterDescription, type CommandOutput } from './replies.js';
import type { CopyInSink, SessionServices } from './services.js';
import { SessionTransaction } from './session-transaction.js';
import { pullTables } from './pull-tables.js';
import { encodeBindFor, encodeDescribe, encodeExecute, encodeParse, encodeSync, encodeFlush, encodeClose } from './extended-encoders.js';

export interface SessionOptions {
  maxMessageSize: number;
}

/** Frontend message types a client may send once the session has started. */
const KNOWN_FRONTEND = new Uint8Array(256);
for (const t of [
  Frontend.Bind, Frontend.Close, Frontend.CopyData, Frontend.CopyDone, Frontend.CopyFail, Frontend.Describe,
  Frontend.Execute, Frontend.Flush, Frontend.FunctionCall, Frontend.Parse, Frontend.Query, Frontend.Sync,
  Frontend.Terminate,
]) KNOWN_FRONTEND[t] = 1;

// Shared expectation objects: the forward path allocates none per message.
const E_READY: Expectation = { completes: Completes.Ready, forward: true };
const E_READY_KEEP: Expectation = { completes: Completes.Ready, forward: true, keepReady: true };
const E_READY_SWALLOW: Expectation = { completes: Completes.Ready, forward: false };
const E_PARSE: Expectation = { completes: Completes.ParseComplete, forward: true };
const E_PARSE_SWALLOW: Expectation = { completes: Completes.ParseComplete, forward: false };
const E_BIND: Expectation = { completes: Completes.BindComplete, forward: true };
const E_CLOSE: Expectation = { completes: Completes.CloseComplete, forward: true };
const E_CLOSE_SWALLOW: Expectation = { completes: Completes.CloseComplete, forward: false };
const E_DESCRIBE: Expectation = { completes: Completes.Describe, forward: true };
const E_EXECUTE: Expectation = { completes: Completes.Execute, forward: true };

function expectationFor(type: number): Expectation | null {
  switch (type) {
    case Frontend.Query:
    case Frontend.Sync:
    case Frontend.FunctionCall:
      return E_READY;
    case Frontend.Parse:
      return E_PARSE;
    case Frontend.Bind:
      return E_BIND;
    case Frontend.Close:
      return E_CLOSE;
    case Frontend.Describe:
      return E_DESCRIBE;
    case Frontend.Execute:
      return E_EXECUTE;
    default:
      return null; // Flush, CopyData, CopyDone, CopyFail: no reply of their own
  }
}

/** A statement prepared by the client and planned by the coordinator. */
interface PlannedStatement {
  id: number;
  query: string;
  plan: StatementPlan;
  paramTypes: number[];
}

type Portal =
  | { kind: 'link'; link: BackendLink }
  | { kind: 'deferred'; route: Route; bind: BindMessage; bindBytes: Buffer; result: CollectedResult | CommandOutput | null; described: boolean; noParams?: boolean };

const LOCAL_STATEMENT = null;
const CATALOG_VIEW_WORDS = ['citus_shards', 'citus_tables'];

export class Session {
  private readonly framer: MessageFramer;
  private state: 'created' | 'running' | 'closed' = 'created';
  private readonly coordinator: BackendLink;
  private readonly workers = new Map<number, BackendLink>();
  private readonly connecting = new Map<number, Promise<BackendLink>>();
  private readonly inbox: Buffer[] = [];
  private pumping = false;
  /** The link whose forwarded replies are in flight; null when the session itself writes. */
  private active: BackendLink | null = null;
  /** Links that received messages since the last Sync. */
  private readonly cycleLinks = new Set<BackendLink>();
  private cycleFailed = false;
  /** Target of CopyData during COPY: the link that received the COPY statement. */
  private copyLink: BackendLink;
  private readonly statements = new Map<string, PlannedStatement | typeof LOCAL_STATEMENT>();
  private readonly portals = new Map<string, Portal>();
  private nextStatementId = 1;
  private readonly planCache = new Map<string, PlannedStatement>();
  private relevantWords: Set<string> = new Set();
  private relevantVersion = -1;
  private readonly txn: SessionTransaction;
  readonly settings = new Map<string, string>();
  private searchPath: string[];
  private readonly out = new MessageWriter(1024);
  /** A COPY … FROM STDIN into a distributed table in progress. */
  private copyIn: { sink: CopyInSink; failed: PgError | null } | null = null;
  onClose: (() => void) | null = null;

  constructor(
    private readonly client: Duplex,
    backend: BackendConnection,
    options: SessionOptions,
    private readonly services: SessionServices,
  ) {
    this.framer = new MessageFramer(options.maxMessageSize);
    this.coordinator = this.makeLink(backend, -1);
    this.copyLink = this.coordinator;
    this.searchPath = [services.user, 'public'];
    this.txn = new SessionTransaction(this.coordinator, this.workers, services);
  }

  get transactionStatus(): TransactionStatus {
    return String.fromCharCode(this.statusByte()) as TransactionStatus;
  }

  private statusByte(): number {
    const c = this.coordinator.status;
    if (c === 0x45 || (this.txn.broken && c !== 0x49)) return 0x45;
    for (const w of this.workers.values()) if (w.inTransaction && w.status === 0x45) return 0x45;
    if (c === 0x54) return 0x54;
    return 0x49;
  }

  private makeLink(conn: BackendConnection, nodeId: number): BackendLink {
    const link = new BackendLink(conn, this.client, nodeId);
    link.statusForClient = () => this.statusByte();
    link.onForwardedError = () => (this.cycleFailed = true);
    link.onLost = (l) => this.onLinkLost(l);
    return link;
  }

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
  }

  private onClientData(chunk: Buffer): void {
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
    if (!this.pumping) void this.pump();
  }

  /** Processes queued client messages in order, awaiting only where a step needs it. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.inbox.length > 0 && this.state === 'running') {
        const buf = this.inbox.shift()!;
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
          if (this.isPlainForward(type, buf, pos, end)) {
            if (runStart < 0) {
              // the coordinator becomes the active link: wait for others first
              if (this.active !== this.coordinator && this.needsSwitch(this.coordinator)) await this.switchTo(this.coordinator);
              this.active = this.coordinator;
              runStart = pos;
            }
            const e = expectationFor(type);
            if (e) this.coordinator.queuePush(e);
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
            try {
              await this.handle(type, buf, pos, end);
            } catch (err) {
              if (err instanceof ProtocolViolation) throw err;
              // One statement failed (a worker unreachable, say): report it, keep the session.
              const pgErr = toPgError(err);
              await this.replyError(new PgError({ ...pgErr.fields, severity: 'ERROR' }));
              if (type === Frontend.Query) await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
              else this.cycleFailed = true;
            }
          }
          pos = end;
        }
        if (runStart >= 0) this.forwardRun(buf, runStart, pos);
      }
    } catch (err) {
      this.fatal(toPgError(err));
    } finally {
      this.pumping = false;
    }
  }

  private forwardRun(buf: Buffer, start: number, end: number): void {
    const bytes = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
    const socket = this.coordinator.conn.socket;
    if (!socket.write(bytes)) {
      this.client.pause();
      socket.once('drain', () => this.client.resume());
    }
  }

  /**
   * True when a message goes to the coordinator PostgreSQL unchanged: the
   * common case, decided without parsing when the lexer finds no word that
   * concerns distributed work.
   */
  private isPlainForward(type: number, buf: Buffer, start: number, end: number): boolean {
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

  private catalogNow(): Catalog | null {
    return this.services.catalog();
  }

  private async catalog(): Promise<Catalog> {
    return this.catalogNow() ?? (await this.services.loadCatalog());
  }

  /** Whether a statement text can concern the distributed catalog at all. */
  private isRelevant(sql: string): boolean {
    const catalog = this.catalogNow();
    if (catalog === null) return true;
    if (catalog.version !== this.relevantVersion) {
      const words = new Set<string>(['create_distributed_table', 'create_reference_table', 'citus_add_node']);
      for (const t of catalog.tables.values()) {
        words.add(t.name);
        words.add(t.name.toLowerCase());
      }
      for (const w of ['role', 'user', 'group', 'schema', 'privileges', 'owner', 'grant', 'revoke']) words.add(w);
      if (catalog.tables.size > 0) for (const w of ['begin', 'start', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release', 'set', 'reset', 'discard', 'prepare']) words.add(w);
      for (const w of CATALOG_VIEW_WORDS) words.add(w);
      this.relevantWords = words;
      this.relevantVersion = catalog.version;
    }
    return mentionsAnyWord(sql, this.relevantWords) || mentionsCommand(sql, this.services);
  }

  /** Before talking to `link` (or writing own replies, null): the previous link must have answered. */
  private needsSwitch(link: BackendLink | null): boolean {
    return this.active !== null && this.active !== link && this.active.pending > 0;
  }

  private async switchTo(link: BackendLink | null): Promise<void> {
    const prev = this.active;
    if (prev && prev !== link && prev.pending > 0) {
      // replies held back until a Sync: ask for them now
      if (this.cycleLinks.has(prev)) prev.send(encodeFlush(), []);
      await prev.idle();
    }
    this.active = link;
  }

  /** Writes a reply of the session's own, in order. */
  private async reply(write: (w: MessageWriter) => void): Promise<void> {
    if (this.needsSwitch(null)) await this.switchTo(null);
    else this.active = null;
    write(this.out);
    this.client.write(this.out.flush());
  }

  private async replyBytes(bytes: Buffer): Promise<void> {
    if (this.needsSwitch(null)) await this.switchTo(null);
    else this.active = null;
    this.client.write(bytes);
  }

  private async replyError(err: PgError): Promise<void> {
    await this.reply((w) => writeErrorResponse(w, err.fields));
  }

  private endCycle(): void {
    this.cycleLinks.clear();
    this.cycleFailed = false;
  }

  // ---- message handlers ----------------------------------------------------

  private async handle(type: number, buf: Buffer, start: number, end: number): Promise<void> {
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

  private async handleQuery(buf: Buffer, start: number, end: number): Promise<void> {
    this.cycleFailed = false;
    const sql = readQuery(buf, start, end);
    const catalog = await this.catalog();
    let stmts: Array<{ stmt: Node; text: string }>;
    try {
      stmts = parseSql(sql).stmts.map((s) => ({ stmt: s.stmt, text: statementText(sql, s) }));
    } catch (err) {
      await this.replyError(toPgError(err));
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    const routes = stmts.map((s) => this.plan(s.stmt, s.text, catalog).route(null));
    if (this.statusByte() === 0x45 && this.txn.involvesWorkers && routes[0].kind !== 'transaction') {
      await this.replyError(abortedError());
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    for (let i = 0; i < stmts.length; i++) this.observeLocal(stmts[i].stmt, stmts[i].text, routes[i]);
    if (routes.every((r) => r.kind === 'local') && !this.txn.involvesWorkers) {
      if (stmts.some((s) => mentionsAnyWord(s.text, new Set(CATALOG_VIEW_WORDS)))) await this.services.beforeCatalogViewRead?.();
      await this.sendTo(this.coordinator, buf.subarray(start, end), E_READY);
      return;
    }
    if (routes.length === 1 && routes[0].kind === 'router') {
      const link = await this.linkForTask(routes[0].task.node, routes[0].isWrite);
      await this.sendTo(link, encodeQuery(routes[0].task.sql), E_READY);
      return;
    }
    if (routes.length === 1 && routes[0].kind === 'copy-in') {
      await this.beginCopyIn(routes[0]);
      return;
    }
    if (routes.length === 1 && routes[0].kind === 'pull') {
      const err = await this.pull(routes[0]);
      if (err) {
        await this.replyError(err);
        await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
        return;
      }
      await this.sendTo(this.coordinator, encodeQuery(routes[0].sql), E_READY);
      return;
    }
    // Several statements or other kinds: run one by one, stop at the first error.
    for (let i = 0; i < stmts.length; i++) {
      const ok = await this.runRoute(routes[i], stmts[i].text, null);
      if (!ok) break;
    }
    await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
  }

  private plan(stmt: Node, text: string, catalog: Catalog): StatementPlan {
    return planStatement(stmt, Buffer.from(text, 'utf8'), {
      catalog,
      searchPath: this.searchPath,
      isCommand: (n) => this.services.isCommand(n),
    });
  }

  /** Keeps the session's view of SET search_path and custom settings current. */
  private observeLocal(stmt: Node, text: string, route: Route): void {
    const set = stmt.VariableSetStmt;
    if (!set || route.kind !== 'local') return;
    const name: string | undefined = set.name;
    if (!name) return;
    const values = ((set.args ?? []) as Node[]).map((a) => a.A_Const?.sval?.sval ?? a.A_Const?.ival?.ival ?? a.String?.sval ?? '');
    if (name === 'search_path') {
      this.searchPath = set.kind === 'VAR_SET_VALUE' ? values.map(String).map((s) => (s === '$user' ? this.services.user : s)) : [this.services.user, 'public'];
    }
    if (set.kind === 'VAR_SET_VALUE') this.settings.set(name, values.map(String).join(', '));
    else if (set.kind === 'VAR_RESET' || set.kind === 'VAR_SET_DEFAULT') this.settings.delete(name);
    if (!set.is_local) this.txn.rememberSet(text);
  }

  /** Sends one forwarded message to a link, keeping output in order. */
  private async sendTo(link: BackendLink, bytes: Buffer, e: Expectation): Promise<void> {
    if (this.needsSwitch(link)) await this.switchTo(link);
    this.active = link;
    this.cycleLinks.add(link);
    this.copyLink = link;
    link.send(bytes, [e]);
  }

  /** Executes a route of the simple protocol (ReadyForQuery written by the caller). Returns false on error. */
  private async runRoute(route: Route, text: string, bind: { bind: BindMessage; bytes: Buffer } | null): Promise<boolean> {
    switch (route.kind) {
      case 'local': {
        await this.switchTo(this.coordinator);
        this.txn.noteLocalStatement(text);
        const r = await this.forwardAndWait(this.coordinator, encodeQuery(text));
        return r;
      }
      case 'router': {
        const link = await this.linkForTask(route.task.node, route.isWrite);
        return this.forwardAndWait(link, encodeQuery(route.task.sql));
      }
      case 'error':
        await this.replyError(route.error);
        return false;
      case 'transaction': {
        const out = await this.txn.run(route.verb, text);
        if (out instanceof PgError) {
          await this.replyError(out);
          return false;
        }
        await this.reply((w) => writeCommandOutput(w, { fields: [], rows: [], tag: out }, false));
        return true;
      }
      case 'command': {
        const out = await this.runCommand(route, bind?.bind ?? null);
        if (out instanceof PgError) {
          await this.replyError(out);
          return false;
        }
        await this.reply((w) => writeCommandOutput(w, out, true));
        return true;
      }
      case 'global-utility':
      case 'utility': {
        const out = await this.runUtility(route);
        if (out instanceof PgError) {
          await this.replyError(out);
          return false;
        }
        await this.reply((w) => writeCommandOutput(w, { fields: [], rows: [], tag: out }, false));
        return true;
      }
      case 'copy-in':
        await this.replyError(new PgError({ code: '0A000', message: 'COPY FROM STDIN into a distributed table must be the only statement of its query string' }));
        return false;
      case 'evaluate-insert': {
        const next = await this.evaluateInsert(route, null);
        if (next instanceof PgError) {
          await this.replyError(next);
          return false;
        }
        return this.runRoute(next, text, null);
      }
      case 'pull': {
        const err = await this.pull(route);
        if (err) {
          await this.replyError(err);
          return false;
        }
        return this.forwardAndWait(this.coordinator, encodeQuery(route.sql));
      }
      case 'multi-shard': {
        const result = await this.runMultiShard(route, null);
        if (result.error) {
          await this.replyError(result.error);
          return false;
        }
        await this.reply((w) => {
          if (result.rowDescription) w.bytes(result.rowDescription);
          for (const r of result.rows) w.bytes(r);
        });
        await this.reply((w) => writeCommandOutput(w, { fields: [], rows: [], tag: result.tag }, false));
        return true;
      }
    }
  }

  /** Forwards a Query to a link, keeps its ReadyForQuery, and waits for it. */
  private async forwardAndWait(link: BackendLink, bytes: Buffer): Promise<boolean> {
    if (this.needsSwitch(link)) await this.switchTo(link);
    this.active = link;
    this.copyLink = link;
    let failed = false;
    const prev = link.onForwardedError;
    link.onForwardedError = () => (failed = true);
    link.send(bytes, [E_READY_KEEP]);
    await link.idle();
    link.onForwardedError = prev;
    return !failed;
  }

  private async runCommand(route: Extract<Route, { kind: 'command' }>, bind: BindMessage | null): Promise<CommandOutput | PgError> {
    const arg = (v: { text: string | null } | { param: number }): string | null =>
      'param' in v ? paramText(bind, v.param - 1) : v.text;
    try {
      await this.switchTo(this.coordinator);
      await this.coordinator.idle();
      const out = await this.services.runCommand(
        { name: route.name, positional: route.positional.map(arg), named: new Map([...route.named].map(([k, v]) => [k, arg(v)])) },
        {
          runAsClient: (sql, params) => this.runAsClient(sql, params),
          settings: this.settings,
          inTransactionBlock: this.statusByte() !== 0x49,
        },
      );
      if (route.alias && out.fields.length === 1) out.fields = [{ ...out.fields[0], name: route.alias }];
      return out;
    } catch (err) {
      return toPgError(err);
    }
  }

  private async runUtility(route: Extract<Route, { kind: 'utility' | 'global-utility' }>): Promise<string | PgError> {
    try {
      await this.switchTo(this.coordinator);
      await this.coordinator.idle();
      if (route.kind === 'global-utility') return await this.services.runGlobalUtility(route.statement, route.stmt, this.sessionAccess());
      return await this.services.runUtility(route.statement, route.stmt, route.tables, this.sessionAccess());
    } catch (err) {
      return toPgError(err);
    }
  }

  private sessionAccess() {
    return {
      runAsClient: (sql: string, params?: ReadonlyArray<string | null>) => this.runAsClient(sql, params),
      settings: this.settings,
      inTransactionBlock: this.statusByte() !== 0x49,
    };
  }

  private async beginCopyIn(route: Extract<Route, { kind: 'copy-in' }>): Promise<void> {
    let sink: CopyInSink;
    try {
      await this.switchTo(null);
      sink = await this.services.beginCopyIn(route.statement, route.stmt, route.table, {
        ...this.sessionAccess(),
        linkFor: (node, isWrite) => this.linkForTask(node, isWrite),
      });
    } catch (err) {
      await this.replyError(toPgError(err));
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    this.copyIn = { sink, failed: null };
    await this.reply((w) => {
      w.begin(Backend.CopyInResponse).int8(sink.binary ? 1 : 0).int16(sink.columnCount);
      for (let i = 0; i < sink.columnCount; i++) w.int16(sink.binary ? 1 : 0);
      w.end();
    });
  }

  /** Client messages while a COPY … FROM STDIN into a distributed table runs. */
  private async handleCopyIn(type: number, buf: Buffer, start: number, end: number): Promise<void> {
    const copy = this.copyIn!;
    if (type === Frontend.CopyData) {
      if (copy.failed) return;
      try {
        await copy.sink.data(buf.subarray(start + 5, end));
      } catch (err) {
        copy.failed = toPgError(err);
        await copy.sink.abort(copy.failed).catch(() => {});
        await this.replyError(copy.failed);
      }
      return;
    }
    if (type === Frontend.Flush || type === Frontend.Sync) return; // ignored during COPY, as PostgreSQL does
    this.copyIn = null;
    if (type === Frontend.CopyDone && !copy.failed) {
      try {
        const tag = await copy.sink.done();
        await this.reply((w) => writeCommandOutput(w, { fields: [], rows: [], tag }, false));
      } catch (err) {
        await this.replyError(toPgError(err));
      }
    } else if (type === Frontend.CopyFail && !copy.failed) {
      const reason = new PgError({ code: '57014', message: `COPY from stdin failed: ${buf.toString('utf8', start + 5, end - 1)}` });
      await copy.sink.abort(reason).catch(() => {});
      await this.replyError(reason);
    } else if (type !== Frontend.CopyDone && type !== Frontend.CopyFail) {
      const err = new PgError({ code: '08P01', message: `unexpected message type 0x${type.toString(16)} during COPY from stdin` });
      if (!copy.failed) await copy.sink.abort(err).catch(() => {});
      await this.replyError(err);
    }
    await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
  }

  /**
   * Computes the rows of an INSERT on the coordinator PostgreSQL (defaults,
   * sequences, now()) inside a savepoint that is rolled back, and plans the
   * INSERT of the resulting constants.
   */
  private async evaluateInsert(route: Extract<Route, { kind: 'evaluate-insert' }>, params: ReadonlyArray<string | null> | null): Promise<Route | PgError> {
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    const inBlock = this.statusByte() !== 0x49;
    await this.runAsClient(inBlock ? 'SAVEPOINT pgweave_evaluate' : 'BEGIN');
    let evaluated: { fields: string[]; rows: Array<Array<string | null>> };
    try {
      evaluated = await this.runAsClient(route.evaluationSql, params ?? undefined);
    } catch (err) {
      return toPgError(err);
    } finally {
      await this.runAsClient(inBlock ? 'ROLLBACK TO SAVEPOINT pgweave_evaluate; RELEASE SAVEPOINT pgweave_evaluate' : 'ROLLBACK');
    }
    try {
      const sql = route.rebuild(evaluated.fields, evaluated.rows);
      const next = this.plan(parseSql(sql).stmts[0].stmt, sql, await this.catalog()).route(null);
      if (next.kind === 'evaluate-insert') return new PgError({ code: 'XX000', message: 'could not evaluate the INSERT on the coordinator' });
      return next;
    } catch (err) {
      return toPgError(err);
    }
  }

  private async pull(route: Extract<Route, { kind: 'pull' }>): Promise<PgError | null> {
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    return pullTables(this.coordinator, route.pulls, (node) => this.linkForTask(node, false));
  }

  private async runAsClient(sql: string, params?: ReadonlyArray<string | null>) {
    await this.coordinator.idle();
    const r = await collectOnLink(this.coordinator, params ? encodeExtendedQuery(sql, params) : encodeQuery(sql));
    if (r.error) throw r.error;
    return { fields: decodeFieldNames(r.rowDescription), rows: r.rows.map(decodeDataRow), command: r.tag };
  }

  private async runMultiShard(route: Extract<Route, { kind: 'multi-shard' }>, bind: { bind: BindMessage; bytes: Buffer } | null): Promise<CollectedResult> {
    await this.switchTo(null);
    return this.txn.runTasks(route, bind?.bytes ?? null, (node, write) => this.linkForTask(node, write));
  }

  /** The session's link to a worker, opened as the client's role and joined to the transaction. */
  private async linkForTask(node: WorkerNode, isWrite: boolean): Promise<BackendLink> {
    let link = this.workers.get(node.nodeId);
    if (!link) {
      let pending = this.connecting.get(node.nodeId);
      if (!pending) {
        pending = this.services.connectNode(node).then((conn) => {
          const l = this.makeLink(conn, node.nodeId);
          this.workers.set(node.nodeId, l);
          this.txn.replaySets(l);
          return l;
        });
        this.connecting.set(node.nodeId, pending);
        pending.finally(() => this.connecting.delete(node.nodeId)).catch(() => {});
      }
      link = await pending;
    }
    await this.txn.join(link, this.statusByte() !== 0x49, isWrite);
    return link;
  }

  private onLinkLost(link: BackendLink): void {
    if (this.state !== 'running') return;
    if (link === this.coordinator) {
      this.fatal(new PgError({ severity: 'FATAL', code: '08006', message: `the coordinator lost its connection to PostgreSQL at ${link.conn.host}:${link.conn.port}` }));
      return;
    }
    // A worker went away: the session goes on; statements for it will reconnect.
    const answerClient = link.pendingForwarded > 0;
    const waitingForReady = link.pendingForwardedReady > 0;
    this.workers.delete(link.nodeId);
    this.txn.linkLost(link);
    if (answerClient) {
      const err = new PgError({ code: '08006', message: `connection to the worker at ${link.conn.host}:${link.conn.port} was lost` });
      writeErrorResponse(this.out, err.fields);
      if (waitingForReady) writeReadyForQuery(this.out, this.transactionStatus);
      this.client.write(this.out.flush());
      this.cycleFailed = !waitingForReady;
      if (this.active === link) this.active = null;
    }
  }

  // ---- extended protocol -----------------------------------------------------

  private dropStatement(name: string): void {
    const old = this.statements.get(name);
    if (!old) return;
    this.statements.delete(name);
    if (this.planCache.get(planCacheKey(old.query, old.paramTypes)) === old) return;
    for (const other of this.statements.values()) if (other === old) return;
    this.closeWorkerStatements(old.id);
  }

  /** Closes the worker-side statements of a client statement (Close + Flush: no Sync mid-cycle). */
  private closeWorkerStatements(id: number): void {
    for (const link of this.workers.values()) {
      for (const wname of [...link.prepared]) {
        if (wname.startsWith(`pgw${id}_`) && link.pending === 0) {
          link.prepared.delete(wname);
          link.send(Buffer.concat([encodeClose('S', wname), encodeFlush()]), [E_CLOSE_SWALLOW]);
        }
      }
    }
  }

  /** Plans reused across Parse messages of the same text (drivers re-Parse unnamed statements). */
  private cachedStatement(query: string, paramTypes: number[], catalog: Catalog): PlannedStatement | null {
    const key = planCacheKey(query, paramTypes);
    const hit = this.planCache.get(key);
    if (!hit) return null;
    if (hit.plan.catalogVersion !== catalog.version) {
      this.planCache.delete(key);
      return null;
    }
    return hit;
  }

  private rememberStatement(st: PlannedStatement): void {
    if (this.planCache.size >= 256) {
      const [oldestKey, oldest] = this.planCache.entries().next().value as [string, PlannedStatement];
      this.planCache.delete(oldestKey);
      let used = false;
      for (const other of this.statements.values()) if (other === oldest) used = true;
      if (!used) this.closeWorkerStatements(oldest.id);
    }
    this.planCache.set(planCacheKey(st.query, st.paramTypes), st);
  }

  private async handleParse(buf: Buffer, start: number, end: number): Promise<void> {
    const msg = readParse(buf, start, end);
    const catalog = await this.catalog();
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
    if (!plan || (fixed && fixed.kind === 'local' && !this.txn.involvesWorkers)) {
      if (stmt) this.observeLocal(stmt, msg.query, { kind: 'local' });
      this.dropStatement(msg.name);
      this.statements.set(msg.name, LOCAL_STATEMENT);
      await this.sendTo(this.coordinator, buf.subarray(start, end), E_PARSE);
      return;
    }
    this.dropStatement(msg.name);
    const planned: PlannedStatement = { id: this.nextStatementId++, query: msg.query, plan, paramTypes: msg.paramTypes };
    this.statements.set(msg.name, planned);
    this.rememberStatement(planned);
    await this.replyBytes(PARSE_COMPLETE);
  }

  private async handleBind(buf: Buffer, start: number, end: number): Promise<void> {
    const bind = readBind(buf, start, end);
    const stmt = this.statements.get(bind.statement);
    const bytes = buf.subarray(start, end);
    if (!stmt) {
      this.portals.delete(bind.portal);
      await this.sendTo(this.coordinator, bytes, E_BIND);
      return;
    }
    let plan = stmt.plan;
    const catalog = await this.catalog();
    if (plan.catalogVersion !== catalog.version) {
      const parsed = parseSql(stmt.query).stmts[0].stmt;
      plan = stmt.plan = this.plan(parsed, stmt.query, catalog);
    }
    const params = plan.needsParams ? bind.params.map((p, i) => paramAsText(p, paramFormat(bind, i), stmt.paramTypes[i] ?? 0)) : null;
    const route = plan.route(params as ReadonlyArray<string | null> | null);
    if (route.kind !== 'transaction' && this.statusByte() === 0x45) {
      await this.replyError(abortedError());
      this.cycleFailed = true;
      return;
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
      this.portals.set(bind.portal, { kind: 'deferred', route: next, bind, bindBytes: Buffer.from(bytes), result: null, described: false, noParams: true });
      await this.replyBytes(BIND_COMPLETE);
      return;
    }
    if (route.kind === 'pull') {
      const err = await this.pull(route);
      if (err) {
        await this.replyError(err);
        this.cycleFailed = true;
        return;
      }
    }
    if (route.kind === 'router' || route.kind === 'pull' || route.kind === 'local') {
      const link = route.kind === 'router' ? await this.linkForTask(route.task.node, route.isWrite) : this.coordinator;
      const sql = route.kind === 'router' ? route.task.sql : route.kind === 'pull' ? route.sql : stmt.query;
      const shardKey = route.kind === 'router' ? route.task.shardIds[0] : route.kind === 'pull' ? 'pull' : 0;
      const wname = `pgw${stmt.id}_${shardKey}`;
      if (this.needsSwitch(link)) await this.switchTo(link);
      this.active = link;
      this.cycleLinks.add(link);
      this.copyLink = link;
      if (!link.prepared.has(wname)) {
        link.prepared.add(wname);
        link.send(encodeParse(wname, sql, stmt.paramTypes), [E_PARSE_SWALLOW]);
      }
      link.send(encodeBindFor(bind.portal, wname, buf, start, end), [E_BIND]);
      this.portals.set(bind.portal, { kind: 'link', link });
      return;
    }
    this.portals.set(bind.portal, { kind: 'deferred', route, bind, bindBytes: Buffer.from(bytes), result: null, described: false });
    await this.replyBytes(BIND_COMPLETE);
  }

  private async handleDescribe(buf: Buffer, start: number, end: number): Promise<void> {
    const d = readDescribe(buf, start, end);
    if (d.target === 'S') {
      const stmt = this.statements.get(d.name)!;
      const task = stmt.plan.describeTask();
      if (task) {
        const link = await this.linkForTask(task.node, false);
        const wname = `pgw${stmt.id}_d`;
        if (this.needsSwitch(link)) await this.switchTo(link);
        this.active = link;
        this.cycleLinks.add(link);
        if (!link.prepared.has(wname)) {
          link.prepared.add(wname);
          link.send(encodeParse(wname, task.sql, stmt.paramTypes), [E_PARSE_SWALLOW]);
        }
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

  private async runDeferred(portal: Extract<Portal, { kind: 'deferred' }>): Promise<void> {
    if (portal.result) return;
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

  private async handleExecute(buf: Buffer, start: number, end: number): Promise<void> {
    const e = readExecute(buf, start, end);
    const portal = this.portals.get(e.portal)!;
    if (portal.kind === 'link') {
      await this.sendTo(portal.link, buf.subarray(start, end), E_EXECUTE);
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

  private async handleClose(buf: Buffer, start: number, end: number): Promise<void> {
    const c = readClose(buf, start, end);
    if (c.target === 'S') this.dropStatement(c.name);
    else this.portals.delete(c.name);
    await this.replyBytes(CLOSE_COMPLETE);
  }

  private async handleSync(): Promise<void> {
    const links = [...this.cycleLinks];
    this.endCycle();
    if (links.length === 0) {
      await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    if (links.length === 1) {
      await this.sendTo(links[0], encodeSync(), E_READY);
      this.cycleLinks.clear();
      return;
    }
    for (const l of links) {
      await this.switchTo(l);
      l.send(encodeSync(), [E_READY_KEEP]);
    }
    await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
  }

  /** Reports a FATAL error to the client and ends the session. */
  private fatal(err: PgError): void {
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
    this.coordinator.close();
    for (const w of this.workers.values()) w.close();
    if (!this.client.destroyed) this.client.end();
    this.onClose?.();
  }
}

/**
 * A parameter value as PostgreSQL's text form, for hashing a distribution
 * key: text format as is; binary format for the types clients send binary
 * (integers, uuid, text). Undefined when unknown (routing then declines).
 */
function paramAsText(p: Buffer | null, format: number, typeOid: number): string | null | undefined {
  if (p === null) return null;
  if (format === 0) return p.toString('utf8');
  switch (typeOid) {
    case 21:
      return p.length === 2 ? String(p.readInt16BE(0)) : undefined;
    case 23:
      return p.length === 4 ? String(p.readInt32BE(0)) : undefined;
    case 20:
      return p.length === 8 ? p.readBigInt64BE(0).toString() : undefined;
    case 25:
    case 1043:
      return p.toString('utf8');
    case 2950:
      if (p.length !== 16) return undefined;
      {
        const h = p.toString('hex');
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      }
    default:
      return undefined;
  }
}

function planCacheKey(query: string, paramTypes: readonly number[]): string {
  return paramTypes.length === 0 ? query : paramTypes.join(',') + '\u0000' + query;
}

function abortedError(): PgError {
  return new PgError({ code: '25P02', message: 'current transaction is aborted, commands ignored until end of transaction block' });
}

function paramText(bind: BindMessage | null, i: number): string | null {
  const p = bind?.params[i];
  if (p === undefined || p === null) return null;
  return p.toString('utf8');
}

/** Cuts the RowDescription ('T') message off the front of an encoded reply. */
function rowDescriptionOnly(bytes: Buffer): Buffer {
  if (bytes[0] !== Backend.RowDescription) return NO_DATA;
  return bytes.subarray(0, 1 + bytes.readInt32BE(1));
}

/** Whether a statement names any coordinator function (so it must be planned). */
function mentionsCommand(sql: string, services: SessionServices): boolean {
  let found = false;
  scanWords(sql, (w) => {
    if (!found && services.isCommand(w)) found = true;
  });
  return found;
}
