/**
 * Executes planned Routes for the simple protocol (and for deferred portals):
 * forwarding to one backend, multi-shard task lists, Citus functions,
 * utility statements, INSERTs evaluated on the coordinator, pulls into
 * temporary tables, and COPY … FROM STDIN into distributed tables.
 */
import { Backend, Frontend } from '../protocol/constants.js';
import { PgError, toPgError } from '../protocol/errors.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import { type BindMessage } from '../protocol/frontend/bind.js';
import { encodeExtendedQuery, encodeQuery } from '../pool/frontend-encoders.js';
import { BackendLink } from '../executor/backend-link.js';
import { collectOnLink, decodeDataRow, queryOnLink, type CollectedResult } from '../executor/link-query.js';
import { parseSql } from '../sql/parse.js';
import { isPlainPull, type CommandQueryCall, type Route } from '../planner/route.js';
import { runCommandQuery } from './command-query-tables.js';
import { writeCommandOutput, type CommandOutput } from './replies.js';
import type { CopyInSink, SessionAccess } from './services.js';
import type { WorkerNode } from '../metadata/types.js';
import { dropPulledTables } from './pull-tables.js';
import { runPullRoute } from './intermediate-results.js';
import { noteStagedRelations, type StatementSource } from './staged-relations.js';
import { E_READY_KEEP, paramText, E_READY_SWALLOW } from './session-parts.js';
import { pulledOrigin, type ErrorOrigin } from './error-positions.js';
import { SessionBase } from './session-base.js';
import { executeInsertSelect } from '../commands/copy/insert-select.js';
import { streamCopyTo } from '../commands/copy/copy-out.js';
import type { Node } from '../sql/parse.js';
import { linkCommitter } from '../commands/copy/commit-links.js';
import type { CopyCounters } from '../commands/copy/copy-progress.js';

export abstract class RouteRunner extends SessionBase {

  /**
   * A statement refused before it reached any node (a planner's "not
   * supported", a refused DDL) aborts the open block as any error does in
   * PostgreSQL: the coordinator's block fails too, so the next statements get
   * 25P02, COMMIT rolls the block back on every node, and ROLLBACK TO
   * SAVEPOINT recovers it — PostgreSQL's own rules, as its block is failed.
   */
  protected async abortBlockOnCoordinator(): Promise<void> {
    await this.coordinator.idle();
    if (this.coordinator.status !== 0x54) return;
    await queryOnLink(this.coordinator, `DO $pgweave$ BEGIN RAISE EXCEPTION 'the statement was refused by pgweave'; END $pgweave$`);
  }

  /** Executes a route of the simple protocol (ReadyForQuery written by the caller). Returns false on error. */
  protected async runRoute(route: Route, text: string, bind: { bind: BindMessage; bytes: Buffer } | null): Promise<boolean> {
    if (bind !== null) return this.runRouteNow(route, text, bind);
    const release = this.enterWriteBarrier(route);
    if (!release) {
      // The shard group is being moved: wait for the cutover, then plan again (new placement).
      await this.waitForWriteBarrier(route);
      const again = this.plan(parseSql(text).stmts[0].stmt, text, await this.catalog()).route(null);
      return this.runRoute(again, text, bind);
    }
    try {
      return await this.runRouteNow(route, text, bind);
    } finally {
      release();
    }
  }

  private async runRouteNow(route: Route, text: string, bind: { bind: BindMessage; bytes: Buffer } | null): Promise<boolean> {
    switch (route.kind) {
      case 'local': {
        await this.switchTo(this.coordinator);
        if (route.watchRoles && this.services.watchRoles) return this.runWatchingRoles(text);
        const r = await this.forwardAndWait(this.coordinator, encodeQuery(text));
        return r;
      }
      case 'router': {
        const link = await this.linkForTask(route.task.node, route.isWrite, route.task.shardIds);
        return this.forwardAndWait(link, encodeQuery(route.task.sql), route.task.origin ?? null);
      }
      case 'error':
        await this.abortBlockOnCoordinator();
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
        const next = (await this.insertAtTransactionTime(route, null, null)) ?? (await this.evaluateInsert(route, null));
        if (next instanceof PgError) {
          await this.replyError(next);
          return false;
        }
        return this.runRoute(next, text, null);
      }
      case 'pull': {
        const err = await this.pull(route, null, { sql: text, paramTypes: [] });
        if (err) {
          await this.replyError(err);
          return false;
        }
        const ok = await this.forwardAndWait(this.coordinator, encodeQuery(route.sql), pulledOrigin(route));
        this.coordinator.send(dropPulledTables(route.pulls), [E_READY_SWALLOW]);
        return ok;
      }
      case 'copy-out': {
        const err = await this.copyOut(route, null);
        if (err) await this.replyError(err);
        return !err;
      }
      case 'explain': {
        const out = await this.runExplain(route);
        if (out instanceof PgError) {
          await this.replyError(out);
          return false;
        }
        await this.reply((w) => writeCommandOutput(w, out, true));
        return true;
      }
      case 'insert-select':
      case 'multi-shard': {
        const result = route.kind === 'multi-shard' ? await this.runMultiShard(route, null) : await this.runInsertSelect(route, null, null);
        if (result.error) {
          await this.replyError(result.error, result.errorOrigin ?? null);
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

  /**
   * A statement that may change roles inside a function (DO, CALL, SELECT f()): outside a
   * block it runs in a coordinator transaction of its own, so the workers'
   * roles can commit together with it (src/commands/roles/watch.ts); inside
   * the client's block the change joins the block. Results stream to the
   * client as for any local statement. `execute` runs the statement on the
   * coordinator (the extended protocol passes its own, with the client's
   * parameters) and replies its error itself; errors of the watch are replied here.
   */
  protected async runWatchingRoles(text: string, execute = () => this.forwardAndWait(this.coordinator, encodeQuery(text))): Promise<boolean> {
    const inBlock = this.statusByte() !== 0x49;
    const access = () => ({ ...this.sessionAccess(), inTransactionBlock: inBlock, linkFor: (node: WorkerNode, isWrite: boolean) => this.linkForTask(node, isWrite) });
    let watch: { wrapped: boolean; settle(access: SessionAccess): Promise<void> } | null = null;
    // After a failure: the transaction the watch opened is rolled back; the client's block fails, as after any error.
    const undo = () => this.runAsClient(watch?.wrapped || !inBlock ? 'ROLLBACK' : 'SELECT pg_catalog.int4div(1, 0)').catch(() => {});
    try {
      watch = await this.services.watchRoles!(text, access());
    } catch (err) {
      // (Outside a block the watch may have opened its transaction before failing.)
      if (inBlock || this.statusByte() !== 0x49) await undo();
      await this.replyError(toPgError(err));
      return false;
    }
    if (!(await execute())) {
      if (watch.wrapped) await undo();
      return false;
    }
    try {
      await watch.settle(access());
      return true;
    } catch (err) {
      if (watch.wrapped || inBlock) await undo();
      await this.replyError(toPgError(err));
      return false;
    }
  }

  /**
   * Forwards a Query to a link, keeps its ReadyForQuery, and waits for it.
   * `origin`: where its text came from (error-positions.ts; the client's own by default).
   */
  protected async forwardAndWait(link: BackendLink, bytes: Buffer, origin?: ErrorOrigin): Promise<boolean> {
    if (this.needsSwitch(link)) await this.switchTo(link);
    this.active = link;
    this.copyLink = link;
    let failed = false;
    const prev = link.onForwardedError;
    link.onForwardedError = () => (failed = true);
    const from = this.inQueryString(origin);
    link.send(bytes, [from === undefined ? E_READY_KEEP : { ...E_READY_KEEP, origin: from }]);
    await link.idle();
    link.onForwardedError = prev;
    return !failed;
  }

  protected async runCommand(route: Extract<Route, { kind: 'command' }>, bind: BindMessage | null): Promise<CommandOutput | PgError> {
    const arg = (v: { text: string | null } | { param: number }): string | null =>
      'param' in v ? paramText(bind, v.param - 1) : v.text;
    try {
      await this.switchTo(this.coordinator);
      await this.coordinator.idle();
      const run = (call: CommandQueryCall) => this.services.runCommand(
        { name: call.name, positional: call.positional.map(arg), named: new Map([...call.named].map(([k, v]) => [k, arg(v)])) },
        {
          runAsClient: (sql, params) => this.runAsClient(sql, params),
          settings: this.settings,
          inTransactionBlock: this.statusByte() !== 0x49,
          linkFor: (node, isWrite) => this.linkForTask(node, isWrite),
        },
      );
      if (route.query) return await runCommandQuery(this.coordinator, route.query, run);
      const out = await run({ ...route, tempName: '' });
      if (route.alias && out.fields.length === 1) out.fields = [{ ...out.fields[0], name: route.alias }];
      if (route.columns) {
        const idx = route.columns.map((c) => out.fields.findIndex((f) => f.name === c.name));
        const missing = idx.indexOf(-1);
        if (missing >= 0) return new PgError({ code: '42703', message: `column "${route.columns[missing].name}" does not exist` });
        const cols = route.columns;
        return { ...out, fields: idx.map((i, k) => ({ ...out.fields[i], name: cols[k].as })), rows: out.rows.map((r) => idx.map((i) => r[i])) };
      }
      return out;
    } catch (err) {
      return toPgError(err);
    }
  }

  protected async runUtility(route: Extract<Route, { kind: 'utility' | 'global-utility' }>): Promise<string | PgError> {
    try {
      await this.switchTo(this.coordinator);
      await this.coordinator.idle();
      if (route.kind === 'global-utility') {
        return await this.services.runGlobalUtility(route.statement, route.stmt, { ...this.sessionAccess(), linkFor: (node, isWrite) => this.linkForTask(node, isWrite) });
      }
      return await this.services.runUtility(route.statement, route.stmt, route.tables, {
        ...this.sessionAccess(),
        linkFor: (node, isWrite) => this.linkForTask(node, isWrite),
      });
    } catch (err) {
      return toPgError(err);
    }
  }

  protected async beginCopyIn(route: Extract<Route, { kind: 'copy-in' }>, extended = false, release: () => void = () => {}): Promise<void> {
    // The client waits for CopyInResponse before it sends data: nothing held back.
    this.releaseClientWrites();
    let sink: CopyInSink;
    try {
      await this.switchTo(null);
      sink = await this.services.beginCopyIn(route.statement, route.stmt, route.table, {
        ...this.sessionAccess(),
        linkFor: (node, isWrite) => this.linkForTask(node, isWrite),
        sessionPid: this.coordinator.conn.key.processId,
      });
    } catch (err) {
      release();
      await this.replyError(toPgError(err));
      if (extended) this.cycleFailed = true;
      else await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
      return;
    }
    this.copyIn = { sink, failed: null, extended, release };
    await this.reply((w) => {
      w.begin(Backend.CopyInResponse).int8(sink.binary ? 1 : 0).int16(sink.columnCount);
      for (let i = 0; i < sink.columnCount; i++) w.int16(sink.binary ? 1 : 0);
      w.end();
    });
  }

  /**
   * Client messages while a COPY … FROM STDIN into a distributed table runs.
   * Flush and Sync are ignored meanwhile, as PostgreSQL does. After an error
   * a simple-protocol COPY drops CopyData until CopyDone/CopyFail, then
   * answers ReadyForQuery; an extended-protocol one leaves copy mode at once
   * and skips to Sync (later CopyData are dropped there), so a client that
   * syncs on seeing the error gets its ReadyForQuery.
   */
  protected async handleCopyIn(type: number, buf: Buffer, start: number, end: number): Promise<void> {
    const copy = this.copyIn!;
    if (type === Frontend.CopyData) {
      if (copy.failed) return;
      try {
        await copy.sink.data(buf.subarray(start + 5, end));
      } catch (err) {
        copy.failed = toPgError(err);
        if (copy.extended) this.endExtendedCopy();
        await copy.sink.abort(copy.failed).catch(() => {});
        await this.replyError(copy.failed);
      }
      return;
    }
    if (type === Frontend.Flush || type === Frontend.Sync) return; // ignored during COPY, as PostgreSQL does
    this.copyIn = null;
    let failed = copy.failed !== null;
    if (type === Frontend.CopyDone && !copy.failed) {
      try {
        const tag = await copy.sink.done();
        await this.reply((w) => writeCommandOutput(w, { fields: [], rows: [], tag }, false));
      } catch (err) {
        failed = true;
        await this.replyError(toPgError(err));
      }
    } else if (type === Frontend.CopyFail && !copy.failed) {
      failed = true;
      const reason = new PgError({ code: '57014', message: `COPY from stdin failed: ${buf.toString('utf8', start + 5, end - 1)}` });
      await copy.sink.abort(reason).catch(() => {});
      await this.replyError(reason);
    } else if (type !== Frontend.CopyDone && type !== Frontend.CopyFail) {
      failed = true;
      const err = new PgError({ code: '08P01', message: `unexpected message type 0x${type.toString(16)} during COPY from stdin` });
      if (!copy.failed) await copy.sink.abort(err).catch(() => {});
      await this.replyError(err);
    }
    copy.release?.();
    if (!copy.extended) await this.reply((w) => writeReadyForQuery(w, this.transactionStatus));
    else if (failed) this.cycleFailed = true;
  }

  /** An extended-protocol COPY failed: out of copy mode (its write-barrier hold released), skipping to the client's Sync. */
  private endExtendedCopy(): void {
    this.copyIn?.release?.();
    this.copyIn = null;
    this.cycleFailed = true;
  }

  /**
   * An INSERT whose only values needing the coordinator are transaction-time
   * functions (now(), CURRENT_TIMESTAMP…): routed with the coordinator's
   * transaction timestamp in their place — asked once per block
   * (SessionTransaction.transactionTime), no evaluation of the INSERT, no
   * savepoint. `paramNumber`: the timestamp goes as that parameter (the
   * extended protocol), else as a literal. Null: the INSERT needs evaluateInsert.
   */
  protected async insertAtTransactionTime(route: Extract<Route, { kind: 'evaluate-insert' }>, params: ReadonlyArray<string | null> | null, paramNumber: number | null): Promise<Route | PgError | null> {
    if (!route.atTransactionTime) return null;
    let time: string;
    try {
      time = await this.txn.transactionTime(async (sql) => {
        await this.switchTo(this.coordinator);
        const r = await this.runAsClient(sql);
        return r.rows[0]?.[0] ?? '';
      });
    } catch (err) {
      return toPgError(err);
    }
    return route.atTransactionTime(params, time, paramNumber);
  }

  /**
   * Computes the rows of an INSERT on the coordinator PostgreSQL (defaults,
   * sequences, now()) inside a savepoint that is rolled back, and plans the
   * INSERT of the resulting constants.
   */
  protected async evaluateInsert(route: Extract<Route, { kind: 'evaluate-insert' }>, params: ReadonlyArray<string | null> | null): Promise<Route | PgError> {
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    const inBlock = this.statusByte() !== 0x49;
    if (inBlock) {
      // Whether the block's coordinator transaction had an xid before: if not, the one this
      // evaluation assigns carries no write once rolled back (SessionTransaction.noteEvaluation).
      const before = this.coordinator.runCount;
      const r = await this.runAsClient('SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL;\nSAVEPOINT pgweave_evaluate');
      this.txn.noteEvaluationStart(r.rows[0]?.[0] === 't', before);
    } else {
      await this.runAsClient('BEGIN');
    }
    let evaluated: { fields: string[]; rows: Array<Array<string | null>> };
    try {
      evaluated = await this.runAsClient(route.evaluationSql, params ?? undefined);
    } catch (err) {
      return toPgError(err);
    } finally {
      await this.runAsClient(inBlock ? 'ROLLBACK TO SAVEPOINT pgweave_evaluate; RELEASE SAVEPOINT pgweave_evaluate' : 'ROLLBACK');
      if (inBlock) this.txn.noteEvaluationEnd();
    }
    try {
      const { sql, rowHashes } = route.rebuild(evaluated.fields, evaluated.rows);
      const next = this.plan(parseSql(sql).stmts[0].stmt, sql, await this.catalog()).route(null, rowHashes);
      if (next.kind === 'evaluate-insert') return new PgError({ code: 'XX000', message: 'could not evaluate the INSERT on the coordinator' });
      return next;
    } catch (err) {
      return toPgError(err);
    }
  }

  /** `source`: the client's statement, which the coordinator describes for the final query's RowDescription (staged-relations.ts). */
  protected async pull(route: Extract<Route, { kind: 'pull' }>, progress: CopyCounters | null = null, source: StatementSource | null = null): Promise<PgError | null> {
    await this.ensureSupportFunctions(route);
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    const err = await this.txn.pull(route.intermediate?.snapshot ?? route.pulls, (node) => this.linkForTask(node, false), (linkFor) =>
      runPullRoute(this.coordinator, route, linkFor, progress, this.settings, this.services.ensureStagingSchema?.bind(this.services) ?? null));
    // The final query's RowDescription names the staging tables: the client sees their sources or 0/0.
    if (!err && route.sql !== '') await noteStagedRelations(this.coordinator, source);
    return err;
  }

  /**
   * A pushdown's worker and final queries may call the pgweave_* aggregate
   * support functions: they exist on the coordinator and on the nodes the
   * route reads (every active node for a repartition join) before it runs.
   */
  private async ensureSupportFunctions(route: Extract<Route, { kind: 'pull' }> | null): Promise<void> {
    const ensure = this.services.ensureSupportFunctions;
    if (!ensure || (route && isPlainPull(route))) return;
    const nodes = new Map<number, WorkerNode>();
    if (route) {
      for (const p of route.intermediate?.snapshot ?? route.pulls) {
        for (const s of p.table.shards) for (const pl of s.placements) nodes.set(pl.node.nodeId, pl.node);
      }
    }
    if (!route || route.repartition) for (const n of this.services.catalog()?.nodes ?? []) if (n.isActive) nodes.set(n.nodeId, n);
    await ensure.call(this.services, [...nodes.values()]);
  }

  /** COPY … TO STDOUT of a distributed or reference table, or of a SELECT that concatenates, streamed from the shards (src/commands/copy/copy-out.ts). */
  protected async copyOut(route: Extract<Route, { kind: 'copy-out' }>, progress: CopyCounters | null): Promise<PgError | null> {
    // copy-out.ts writes to the socket itself and waits for its drains: nothing held back.
    this.releaseClientWrites();
    await this.switchTo(null);
    const table = route.table;
    // A query's snapshots: the nodes of its distributed tables (each task reads reference tables on its own node).
    const read = route.query ? route.query.tables.filter((t) => t.method === 'hash') : [table];
    const pulls = read.map((t) => ({ table: t, tempName: '', filterSql: null, refName: t.name }));
    return streamCopyTo(table, route.stmt as Node, route.statement, {
      runAsClient: (sql) => this.runAsClient(sql),
      withReadLinks: (run) => this.txn.pull(pulls, (node) => this.linkForTask(node, false), run),
      client: this.client,
      progress,
    }, route.query ?? null);
  }

  /** EXPLAIN of a distributed statement (src/planner/explain.ts), run with this session's connections. */
  protected async runExplain(route: Extract<Route, { kind: 'explain' }>): Promise<CommandOutput | PgError> {
    try {
      await this.ensureSupportFunctions(null);
      await this.switchTo(this.coordinator);
      await this.coordinator.idle();
      const lines = await route.explain.run({
        coordinator: async (sql, params) => (await this.runAsClient(sql, params)).rows,
        worker: async (node, sql, params) => {
          const link = await this.linkForTask(node, false);
          await link.idle();
          const r = await collectOnLink(link, params ? encodeExtendedQuery(sql, params) : encodeQuery(sql));
          if (r.error) throw r.error;
          return r.rows.map(decodeDataRow);
        },
        pull: (pulls) => this.pull({ kind: 'pull', pulls, sql: '' }),
        pullPartial: (r) => this.pull(r),
      });
      return { fields: [{ name: 'QUERY PLAN', typeOid: 25 }], rows: lines.map((l) => [l]) };
    } catch (err) {
      return toPgError(err);
    }
  }

  /** INSERT … SELECT into a distributed or reference table (src/commands/copy/insert-select.ts). */
  protected async runInsertSelect(route: Extract<Route, { kind: 'insert-select' }>, bind: { bind: BindMessage; bytes: Buffer } | null, params: ReadonlyArray<string | null> | null): Promise<CollectedResult> {
    await this.switchTo(this.coordinator);
    await this.coordinator.idle();
    // A data-modifying WITH writes the coordinator too: outside a block, one of its own commits both together.
    const implicit = route.plan.writesCoordinator && await this.txn.beginImplicit([route], true);
    const result = await executeInsertSelect(route.plan, {
      ...this.sessionAccess(),
      params,
      coordinator: this.coordinator,
      linkFor: (node, isWrite) => this.linkForTask(node, isWrite),
      commitMultiNode: linkCommitter(this.services.commitGate ?? null, this.services.catalog, this.settings, (w, r) => this.services.commitMultiNode(w, r)),
      pull: (pulls) => this.pull({ kind: 'pull', pulls, sql: '' }),
      withSnapshots: (tables, run) => this.txn.pull(tables, (node) => this.linkForTask(node, false), run),
      runMultiShard: (r) => this.runMultiShard(r, bind),
    });
    if (implicit) result.error = (await this.txn.endImplicit(!result.error)) ?? result.error;
    return result;
  }

  protected async runMultiShard(route: Extract<Route, { kind: 'multi-shard' }>, bind: { bind: BindMessage; bytes: Buffer } | null): Promise<CollectedResult> {
    await this.switchTo(null);
    const bindBytes = route.paramsInlined ? null : (bind?.bytes ?? null);
    return this.txn.runTasks(route, bindBytes, (node, write) => this.linkForTask(node, write));
  }
}
