/**
 * Owns the insert-evaluation tracking of a transaction block: whether the
 * coordinator PostgreSQL's xid comes only from INSERT evaluations rolled
 * back to their savepoint (defaults, now(), nextval() computed on the
 * coordinator). The coordinator then wrote nothing and stays a read-only
 * participant at COMMIT — so pgbench -N's block (one worker written)
 * commits with one phase.
 *
 * A block whose coordinator transaction ran nothing but its BEGIN and the
 * session's own read-only queries (the transaction timestamp for INSERTs)
 * wrote nothing there either: COMMIT need not ask the coordinator.
 *
 * State: `onlyXid` (the coordinator has no xid but the evaluations') is valid
 * while nothing else has run on the coordinator since the block began or the
 * last evaluation ended (`mark`, its request count then). `reset` at the end
 * of every block.
 */
import type { BackendLink } from '../executor/backend-link.js';
import { queryOnLink, decodeDataRow } from '../executor/link-query.js';

export class InsertEvaluations {
  private onlyXid = false;
  private mark = -1;

  constructor(private readonly coordinator: BackendLink) {}

  /** An evaluation starts in the block; `hadXid`: the coordinator's transaction had an xid before it. */
  start(hadXid: boolean, requestsBefore: number): void {
    this.onlyXid = !hadXid || (this.onlyXid && requestsBefore === this.mark);
  }

  /** The block's BEGIN was answered by the coordinator: no xid yet. */
  begun(): void {
    this.onlyXid = true;
    this.mark = this.coordinator.runCount;
  }

  /** A read-only query of the session's own ran on the coordinator (sent at request count `before`). */
  ranReadOnly(before: number): void {
    if (this.onlyXid && before === this.mark) this.mark = this.coordinator.runCount;
  }

  /** The evaluation was rolled back to its savepoint. */
  end(): void {
    this.mark = this.coordinator.runCount;
  }

  reset(): void {
    this.onlyXid = false;
    this.mark = -1;
  }

  /** Whether the coordinator PostgreSQL's transaction wrote anything (has an xid of a write that stays). */
  async coordinatorWrote(): Promise<boolean> {
    if (this.onlyXid && this.coordinator.runCount === this.mark) return false;
    const r = await queryOnLink(this.coordinator, 'SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL');
    if (r.error) throw r.error;
    return r.rows.length > 0 && decodeDataRow(r.rows[0]!)[0] === 't';
  }
}
