/**
 * The session's planned statements as the client prepared them: its named
 * statements, the plan cache by text (drivers re-Parse unnamed statements),
 * and the worker-side prepared statements each one used (named after their
 * text, worker-statements.ts), closed on the session's links when the
 * client's statement is dropped and no longer cached.
 */
import type { Catalog } from '../metadata/types.js';
import { encodeClose, encodeFlush } from './extended-encoders.js';
import { E_CLOSE_SWALLOW, planCacheKey, type PlannedStatement } from './session-parts.js';
import { RouteRunner } from './route-runner.js';
import { workerStatementName } from './worker-statements.js';

export abstract class PreparedStatements extends RouteRunner {
  protected dropStatement(name: string): void {
    const old = this.statements.get(name);
    if (!old) return;
    this.statements.delete(name);
    if (this.planCache.get(planCacheKey(old.query, old.paramTypes)) === old) return;
    for (const other of this.statements.values()) if (other === old) return;
    this.closeWorkerStatements(old);
  }

  /**
   * Closes the worker-side statements a client statement used on the
   * session's links (Close + Flush: no Sync mid-cycle). Another statement of
   * the same text then prepares its name again where it needs it.
   */
  protected closeWorkerStatements(st: PlannedStatement): void {
    if (!st.workerNames) return;
    for (const link of this.workers.values()) {
      for (const wname of st.workerNames) {
        if (link.prepared.has(wname) && link.pending === 0) {
          link.prepared.delete(wname);
          link.send(Buffer.concat([encodeClose('S', wname), encodeFlush()]), [E_CLOSE_SWALLOW]);
        }
      }
    }
  }

  /** Plans reused across Parse messages of the same text (drivers re-Parse unnamed statements). */
  protected cachedStatement(query: string, paramTypes: number[], catalog: Catalog): PlannedStatement | null {
    const key = planCacheKey(query, paramTypes);
    const hit = this.planCache.get(key);
    if (!hit) return null;
    if (hit.plan.catalogVersion !== catalog.version) {
      this.planCache.delete(key);
      return null;
    }
    return hit;
  }

  protected rememberStatement(st: PlannedStatement): void {
    if (this.planCache.size >= 256) {
      const [oldestKey, oldest] = this.planCache.entries().next().value as [string, PlannedStatement];
      this.planCache.delete(oldestKey);
      let used = false;
      for (const other of this.statements.values()) if (other === oldest) used = true;
      if (!used) this.closeWorkerStatements(oldest);
    }
    this.planCache.set(planCacheKey(st.query, st.paramTypes), st);
  }
}

let statementCounter = 0;

/** Statement ids are unique per process (plan caches and tests tell statements apart by them). */
export function nextStatementId(): number {
  return ++statementCounter;
}

/** The worker-side name for `sql` of the statement's plan (its catalog version), remembered on the statement so dropping it can close what it used. */
export function usedName(stmt: PlannedStatement, sql: string, paramTypes: readonly number[]): string {
  const name = workerStatementName(sql, paramTypes, stmt.plan.catalogVersion);
  (stmt.workerNames ??= new Set()).add(name);
  return name;
}
