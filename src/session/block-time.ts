/**
 * Owns what the coordinator is asked at a block's BEGIN and the block's
 * transaction time: the block's characteristics (isolation level, READ
 * ONLY, DEFERRABLE — whatever set them, BEGIN options or session defaults)
 * and the coordinator's transaction timestamp that transaction-time
 * functions of INSERTs into distributed tables stand for
 * (planner/transaction-time.ts).
 *
 * The time is asked once per block and kept until the block ends (per
 * statement outside a block). When the session's last block asked for it
 * and its last block of the same BEGIN text was READ COMMITTED, BEGIN
 * fetches it along with the characteristics in one SELECT — two coordinator
 * statements per block (pgbench -N) — since the SELECT takes a snapshot,
 * which only READ COMMITTED may take this early; a block that turns out
 * otherwise is begun again without it (`begin`). A block's BEGIN and
 * these SELECTs and SHOWs go as prepared statements (prepared-batch.ts),
 * in one write and one round trip.
 */
import { queryOnLink, decodeDataRow } from '../executor/link-query.js';
import type { BackendLink } from '../executor/backend-link.js';
import type { PgError } from '../protocol/errors.js';
import type { InsertEvaluations } from './insert-evaluation.js';
import { isOneStatement } from './block-opening.js';
import { forgetPrepared, runPreparedBatch, STATEMENT_MISSING, type BatchResult } from './prepared-batch.js';

/** now() in UTC, exactly (microseconds), readable whatever the session's DateStyle. */
const TRANSACTION_TIME_EXPR = `pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYY-MM-DD HH24:MI:SS.US') OPERATOR(pg_catalog.||) '+00'`;
const TRANSACTION_TIME_SQL = `SELECT ${TRANSACTION_TIME_EXPR}`;
/** The block's characteristics and its time in one statement after BEGIN (current_setting shows what SHOW shows). */
const CHARACTERISTICS_AND_TIME_SQL = `SELECT pg_catalog.current_setting('transaction_isolation'), pg_catalog.current_setting('transaction_read_only'), pg_catalog.current_setting('transaction_deferrable'), ${TRANSACTION_TIME_EXPR}`;

/** The block's characteristics without a snapshot (SHOW takes none), one statement each. */
const SHOW_CHARACTERISTICS = ['SHOW transaction_isolation', 'SHOW transaction_read_only', 'SHOW transaction_deferrable'];

/** What a BEGIN learnt from the coordinator. */
export interface BlockStart {
  isolation: string;
  readOnly: string;
  deferrable: string;
  /** The block's transaction time, when it came along. */
  time: string | null;
}

export class BlockTime {
  /** The coordinator's transaction timestamp in the open block, once asked. */
  time: string | null = null;
  /** The open block asked for the transaction time (the next BEGIN then fetches it along). */
  wanted = false;
  /** The BEGIN text whose last block was READ COMMITTED (may fetch the time along). */
  private readCommittedBegin: string | null = null;

  /**
   * Runs BEGIN (`text`) on the coordinator with what the block needs to
   * know; `opensBlock`: no block was open before (else only BEGIN's own
   * answer, a warning, matters). Returns the block's characteristics, null
   * when a block was open already, or the error.
   */
  async begin(coordinator: BackendLink, text: string, opensBlock: boolean): Promise<BlockStart | null | PgError> {
    const withTime = opensBlock && this.wanted && this.readCommittedBegin === text;
    const prepared = opensBlock && isOneStatement(text);
    let r = await this.ask(coordinator, withTime ? [text, CHARACTERISTICS_AND_TIME_SQL] : [text, ...SHOW_CHARACTERISTICS], prepared);
    if (r.error) return r.error;
    if (!opensBlock) return null;
    let [iso, ro, def, time] = withTime
      ? (r.rows[0] ? decodeDataRow(r.rows[0]) : []).map((v) => v ?? '')
      : r.rows.map((row) => decodeDataRow(row)[0] ?? '');
    if (withTime && iso !== 'read committed') {
      r = await this.ask(coordinator, ['ROLLBACK', text, ...SHOW_CHARACTERISTICS], prepared);
      if (r.error) return r.error;
      [iso, ro, def] = r.rows.map((row) => decodeDataRow(row)[0] ?? '');
      time = '';
    }
    this.readCommittedBegin = iso === 'read committed' ? text : null;
    this.wanted = false;
    return { isolation: iso ?? '', readOnly: ro ?? '', deferrable: def ?? '', time: withTime && time ? time : null };
  }

  /**
   * Runs `statements` on the coordinator and collects their rows: as
   * prepared statements (prepared-batch.ts) when `prepared` — the block
   * opens with a BEGIN that is one statement: the coordinator then parses
   * and plans nothing per block — else as one simple Query (a BEGIN inside
   * a block, whose only answer is a warning, must not abort that block).
   * A client's DEALLOCATE ALL or DISCARD ALL may have removed the
   * statements: they are prepared again, once the failed attempt is rolled
   * back (it ran nothing the block keeps).
   */
  private async ask(coordinator: BackendLink, statements: readonly string[], prepared: boolean): Promise<BatchResult> {
    if (!prepared) {
      const r = await queryOnLink(coordinator, statements.join('\n;'));
      return { rows: r.rows, error: r.error };
    }
    const batch = statements.map((sql) => ({ sql }));
    const r = await runPreparedBatch(coordinator, batch, true);
    if (r.error?.fields.code !== STATEMENT_MISSING) return r;
    forgetPrepared(coordinator, batch);
    if (coordinator.status !== 0x49) {
      const x = await queryOnLink(coordinator, 'ROLLBACK');
      if (x.error) return { rows: [], error: x.error };
    }
    return runPreparedBatch(coordinator, batch, true);
  }

  /**
   * The transaction time for a statement: the block's (asked once), or the
   * coordinator's now() per statement outside a block. `ask` runs the query
   * on the coordinator (the session keeps output in order).
   */
  async get(coordinator: BackendLink, ask: (sql: string) => Promise<string>, evaluations: InsertEvaluations): Promise<string> {
    const inBlock = coordinator.status !== 0x49;
    if (inBlock) this.wanted = true;
    if (inBlock && this.time !== null) return this.time;
    const before = coordinator.runCount;
    const time = await ask(TRANSACTION_TIME_SQL);
    // A SELECT of now() neither writes nor takes an xid.
    evaluations.ranReadOnly(before);
    if (inBlock) this.time = time;
    return time;
  }

  /** The block ended: its time goes (whether the next BEGIN fetches one is remembered). */
  reset(): void {
    this.time = null;
  }
}
