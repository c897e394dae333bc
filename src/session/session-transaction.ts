/**
 * The session's distributed transaction: which worker links joined the
 * transaction block, which of them wrote, and how COMMIT, ROLLBACK and
 * savepoints reach every node.
 *
 * A worker joins lazily: the first statement the block sends it is preceded
 * by the block's own BEGIN (same isolation level and access mode) and the
 * savepoints still open, so ROLLBACK TO works on every node. At COMMIT, a
 * block that wrote on at most one node commits with one-phase commit
 * (read-only nodes first); one that wrote on several goes through two-phase
 * commit (services.commitMultiNode). Multi-shard writes outside a block get a
 * block of their own, so they are all-or-nothing too.
 */
import { PgError } from '../protocol/errors.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { Completes, type BackendLink, type Expectation } from '../executor/backend-link.js';
import { queryOnLink, collectOnLink, tagCount, type CollectedResult } from '../executor/link-query.js';
import type { WorkerNode } from '../metadata/types.js';
import type { Route } from '../planner/route.js';
import { mentionsAnyWord } from '../sql/lexer.js';
import type { SessionServices } from './services.js';
import { encodeTaskWithParams } from './extended-encoders.js';

const E_READY_SWALLOW: Expectation = { completes: Completes.Ready, forward: false };
const WRITE_WORDS = new Set(['insert', 'update', 'delete', 'merge', 'copy', 'create', 'alter', 'drop', 'truncate', 'grant', 'revoke', 'select']);

export class SessionTransaction {
  private beginText = 'BEGIN';
  private savepoints: string[] = [];
  private sets: string[] = [];
  private coordinatorWrote = false;
  /** A node of the open block was lost: the block can only roll back. */
  broken = false;

  constructor(
    private readonly coordinator: BackendLink,
    private readonly workers: Map<number, BackendLink>,
    private readonly services: SessionServices,
  ) {}

  /** True while worker links take part in the open transaction block. */
  get involvesWorkers(): boolean {
    for (const w of this.workers.values()) if (w.inTransaction) return true;
    return false;
  }

  private joined(): BackendLink[] {
    return [...this.workers.values()].filter((w) => w.inTransaction);
  }

  /** Whether session-level SETs were made (worker connections then stay with the session). */
  get hasSessionSettings(): boolean {
    return this.sets.length > 0;
  }

  rememberSet(text: string): void {
    this.sets.push(text);
    if (this.sets.length > 100) this.sets.shift();
  }

  /** Session-level SETs replayed on a new worker link (search_path, timezone, statement_timeout…). */
  replaySets(link: BackendLink): void {
    if (this.sets.length === 0) return;
    link.send(encodeQuery(this.sets.join(';')), [E_READY_SWALLOW]);
  }

  noteLocalStatement(text: string): void {
    // Conservative: anything that may write makes the coordinator a 2PC participant.
    if (!this.coordinatorWrote && mentionsAnyWord(text, WRITE_WORDS)) this.coordinatorWrote = true;
  }

  /** Joins a worker link to the open block (if any) before it runs a statement. */
  async join(link: BackendLink, inBlock: boolean, isWrite: boolean): Promise<void> {
    if (!inBlock) return;
    if (!link.inTransaction) {
      link.inTransaction = true;
      const sql = [this.beginText, ...this.savepoints.map((s) => `SAVEPOINT ${s}`)].join(';');
      link.send(encodeQuery(sql), [E_READY_SWALLOW]);
    }
    if (isWrite) link.wroteInTransaction = true;
  }

  linkLost(link: BackendLink): void {
    if (link.inTransaction) this.broken = true;
    link.inTransaction = false;
  }

  private reset(): void {
    this.broken = false;
    this.beginText = 'BEGIN';
    this.savepoints = [];
    this.coordinatorWrote = false;
    for (const w of this.workers.values()) {
      w.inTransaction = false;
      w.wroteInTransaction = false;
    }
  }

  /** Runs transaction control across the nodes; returns the command tag or the error. */
  async run(verb: string, text: string): Promise<string | PgError> {
    await this.coordinator.idle();
    for (const w of this.joined()) await w.idle();
    switch (verb) {
      case 'begin': {
        const r = await queryOnLink(this.coordinator, text);
        if (r.error) return r.error;
        this.reset();
        this.beginText = text;
        return r.tag;
      }
      case 'commit':
        return this.commit(text);
      case 'rollback':
        return this.rollback(text);
      case 'savepoint':
      case 'release':
      case 'rollback_to': {
        for (const w of this.joined()) {
          const r = await queryOnLink(w, text);
          if (r.error) return r.error;
        }
        const r = await queryOnLink(this.coordinator, text);
        if (r.error) return r.error;
        const name = /\s(\S+)\s*;?\s*$/.exec(text)?.[1] ?? '';
        if (verb === 'savepoint') this.savepoints.push(name);
        else if (verb === 'release') this.savepoints = this.savepoints.slice(0, Math.max(0, this.savepoints.lastIndexOf(name)));
        return r.tag;
      }
      default: {
        if (verb === 'prepare' && this.involvesWorkers) {
          return new PgError({ code: '0A000', message: 'PREPARE TRANSACTION is not supported for transactions that involve worker nodes' });
        }
        const r = await queryOnLink(this.coordinator, text);
        return r.error ?? r.tag;
      }
    }
  }

  private async rollback(text: string): Promise<string | PgError> {
    for (const w of this.joined()) await queryOnLink(w, 'ROLLBACK');
    const r = await queryOnLink(this.coordinator, text);
    this.reset();
    return r.error ?? r.tag;
  }

  private async commit(text: string): Promise<string | PgError> {
    const workers = this.joined();
    if (workers.length === 0 && !this.broken) {
      const r = await queryOnLink(this.coordinator, text);
      this.reset();
      return r.error ?? r.tag;
    }
    const failed = this.broken || this.coordinator.status === 0x45 || workers.some((w) => w.status === 0x45);
    if (failed) {
      await this.rollback('ROLLBACK');
      return 'ROLLBACK';
    }
    const written = workers.filter((w) => w.wroteInTransaction);
    const readOnly = workers.filter((w) => !w.wroteInTransaction);
    const participants = written.length + (this.coordinatorWrote ? 1 : 0);
    try {
      if (participants <= 1) {
        for (const w of [...readOnly, ...written]) {
          const r = await queryOnLink(w, 'COMMIT');
          if (r.error) {
            await this.rollback('ROLLBACK');
            return r.error;
          }
        }
        const r = await queryOnLink(this.coordinator, 'COMMIT');
        return r.error ?? r.tag;
      }
      const all = this.coordinatorWrote ? [...written, this.coordinator] : written;
      const ro = this.coordinatorWrote ? readOnly : [...readOnly, this.coordinator];
      await this.services.commitMultiNode(all, ro);
      return 'COMMIT';
    } catch (err) {
      for (const w of [...workers, this.coordinator]) if (w.status !== 0x49) await queryOnLink(w, 'ROLLBACK');
      return err instanceof PgError ? err : new PgError({ code: 'XX000', message: String(err) });
    } finally {
      this.reset();
    }
  }

  /**
   * Runs the tasks of a multi-shard statement: in parallel across nodes,
   * one after another on each node, inside the session's block or a block of
   * their own when they write.
   */
  async runTasks(
    route: Extract<Route, { kind: 'multi-shard' }>,
    bindBytes: Buffer | null,
    linkFor: (node: WorkerNode, isWrite: boolean) => Promise<BackendLink>,
  ): Promise<CollectedResult> {
    const inBlock = this.coordinator.status !== 0x49;
    const byNode = new Map<number, { node: WorkerNode; sqls: string[] }>();
    for (const t of route.tasks) {
      const g = byNode.get(t.node.nodeId) ?? { node: t.node, sqls: [] };
      g.sqls.push(t.sql);
      byNode.set(t.node.nodeId, g);
    }
    const ownBlock = !inBlock && route.isWrite;
    const links: BackendLink[] = [];
    for (const g of byNode.values()) links.push(await linkFor(g.node, route.isWrite));
    if (ownBlock) for (const l of links) l.send(encodeQuery('BEGIN'), [E_READY_SWALLOW]);
    const groups = [...byNode.values()];
    const results = await Promise.all(groups.map(async (g, i) => {
      const out: CollectedResult[] = [];
      for (const sql of g.sqls) {
        const r = await collectOnLink(links[i], bindBytes ? encodeTaskWithParams(sql, bindBytes) : encodeQuery(sql));
        out.push(r);
        if (r.error) break;
      }
      return out;
    }));
    const merged: CollectedResult = { rowDescription: null, rows: [], tag: '', error: null };
    let count = 0;
    for (const list of results) {
      for (const r of list) {
        merged.error ??= r.error;
        merged.rowDescription ??= r.rowDescription;
        for (const row of r.rows) merged.rows.push(row);
        count += tagCount(r.tag);
        if (!merged.tag) merged.tag = r.tag;
      }
    }
    if (route.commandTag) merged.tag = route.commandTag === 'INSERT' ? `INSERT 0 ${count}` : `${route.commandTag} ${count}`;
    if (route.commandTag === '' && merged.rows.length > 0) {
      // reference table writes: every placement returns the same rows; keep one copy
      merged.rows = results[0].flatMap((r) => r.rows);
    }
    if (ownBlock) {
      if (merged.error) {
        for (const l of links) await queryOnLink(l, 'ROLLBACK');
      } else if (links.length === 1) {
        const r = await queryOnLink(links[0], 'COMMIT');
        if (r.error) merged.error = r.error;
      } else {
        try {
          await this.services.commitMultiNode(links, []);
        } catch (err) {
          for (const l of links) if (l.status !== 0x49) await queryOnLink(l, 'ROLLBACK');
          merged.error = err instanceof PgError ? err : new PgError({ code: 'XX000', message: String(err) });
        }
      }
    }
    return merged;
  }
}
