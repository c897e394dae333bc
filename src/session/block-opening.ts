/**
 * Owns what a worker joining the open transaction block is sent first, and
 * the bookkeeping it comes from: the block's BEGIN text and characteristics
 * (isolation level, READ ONLY, DEFERRABLE — from the coordinator at BEGIN,
 * then SET TRANSACTION), its SET LOCAL / SET TRANSACTION statements, and
 * the savepoints still open (so ROLLBACK TO works on every node).
 *
 * Lifecycle: one instance per block; the session's transaction replaces it
 * at BEGIN (`begun`), at the block's end (a fresh one), and after COMMIT /
 * ROLLBACK AND CHAIN (`chained`: the old block's characteristics, nothing
 * else).
 */
import type { BackendLink } from '../executor/backend-link.js';
import type { PgError } from '../protocol/errors.js';
import { tagSql, tagStatement } from '../transaction/deadlock-detection.js';
import { runPreparedBatch } from './prepared-batch.js';
import { sendSwallowed } from './txn-wire.js';

export type Isolation = 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';

/** Whether COMMIT/ROLLBACK text asks for AND CHAIN. */
export function isChain(text: string): boolean {
  return /\band\s+chain\b/i.test(text) && !/\band\s+no\s+chain\b/i.test(text);
}

/** Whether `text` is one statement that may be prepared as it is (nothing after a semicolon, not even a comment). */
export function isOneStatement(text: string): boolean {
  return !/;\s*\S/.test(text);
}

export class BlockOpening {
  /** SET LOCAL / SET TRANSACTION of the open block, replayed on joining workers. */
  private localSets: string[] = [];
  private savepoints: string[] = [];

  constructor(
    private beginText = 'BEGIN',
    private isolation: Isolation = 'read committed',
    private readOnly = false,
    private deferrableBlock = false,
  ) {}

  /** The block a BEGIN opened; the characteristics are the coordinator's SHOW answers. */
  static begun(text: string, isolation: string, readOnly: string, deferrable: string): BlockOpening {
    return new BlockOpening(text, (isolation as Isolation) || 'read committed', readOnly === 'on', deferrable === 'on');
  }

  /** The next block of COMMIT/ROLLBACK AND CHAIN: this block's characteristics, as one BEGIN. */
  chained(): BlockOpening {
    return new BlockOpening(this.characteristicsText(), this.isolation, this.readOnly, this.deferrableBlock);
  }

  /** The BEGIN that opens the block with its characteristics (for AND CHAIN on the coordinator). */
  get begin(): string {
    return this.beginText;
  }

  get readCommitted(): boolean {
    return this.isolation === 'read committed' || this.isolation === 'read uncommitted';
  }

  get deferrable(): boolean {
    return this.deferrableBlock;
  }

  /** A SET LOCAL or SET TRANSACTION of the block. */
  noteLocalSet(text: string): void {
    this.localSets.push(text);
    const level = /isolation\s+level\s+(read\s+uncommitted|read\s+committed|repeatable\s+read|serializable)/i.exec(text);
    if (level) this.isolation = level[1]!.toLowerCase().replace(/\s+/g, ' ') as Isolation;
    if (/\bread\s+only\b/i.test(text)) this.readOnly = true;
    if (/\bread\s+write\b/i.test(text)) this.readOnly = false;
    if (/\bnot\s+deferrable\b/i.test(text)) this.deferrableBlock = false;
    else if (/\bdeferrable\b/i.test(text)) this.deferrableBlock = true;
  }

  /** SAVEPOINT, RELEASE or ROLLBACK TO (`verb`) that succeeded on every node. */
  noteSavepoint(verb: 'savepoint' | 'release' | 'rollback_to', text: string): void {
    const name = /\s(\S+)\s*;?\s*$/.exec(text)?.[1] ?? '';
    if (verb === 'savepoint') this.savepoints.push(name);
    else if (verb === 'release') this.savepoints = this.savepoints.slice(0, Math.max(0, this.savepoints.lastIndexOf(name)));
    else this.savepoints = this.savepoints.slice(0, this.savepoints.lastIndexOf(name) + 1);
  }

  /**
   * Sends a joining link its opening — BEGIN, the block's SETs, `imported`
   * (a snapshot import), the tag, the open savepoints — and resolves when
   * the link has answered it (prepared: with its first error; the simple
   * Query, as always, only with a lost connection's). The common opening,
   * BEGIN and the tag alone, goes as prepared statements
   * (prepared-batch.ts): the worker parses nothing per block. Otherwise as
   * one simple Query, its text new in every block anyway.
   */
  send(link: BackendLink, imported: string | null, tag: number): Promise<PgError | null> {
    if (imported === null && this.localSets.length === 0 && this.savepoints.length === 0 && isOneStatement(this.beginText)) {
      return runPreparedBatch(link, [{ sql: this.beginText }, tagStatement(tag)], false).then((r) => r.error);
    }
    const statements = [this.beginText, ...this.localSets, ...(imported === null ? [] : [imported]), tagSql(tag), ...this.savepoints.map((s) => `SAVEPOINT ${s}`)];
    return sendSwallowed(link, statements.join('\n;'));
  }

  private characteristicsText(): string {
    return `BEGIN ISOLATION LEVEL ${this.isolation.toUpperCase()}${this.readOnly ? ' READ ONLY' : ' READ WRITE'}${this.deferrableBlock ? ' DEFERRABLE' : ''}`;
  }
}
