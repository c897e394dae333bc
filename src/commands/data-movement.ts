/**
 * Moving rows between a table and its shards, in PostgreSQL's text form.
 *
 * Reading: a cursor in the source's open transaction, fetched in batches, so
 * memory stays bounded whatever the table size and the rows read are exactly
 * those of the transaction that later commits the move.
 *
 * Writing: one INSERT per batch and target, the batch passed as one text[]
 * parameter per column and turned back into values by
 * `unnest(...)` plus an explicit cast to each column's type — the type's own
 * input function, as COPY would use (DESIGN.md decision 1: PostgreSQL decides
 * what a value means). Generated columns are left out and recomputed by the
 * target.
 */
import type { InternalClient, Row } from '../pool/internal-client.js';
import { quoteIdent } from '../sql/quote.js';
import type { ColumnDefinition } from './table-definition.js';

export const FETCH_ROWS = 10000;
const FLUSH_ROWS = 5000;
const FLUSH_BYTES = 8 << 20;

/** One text[] literal: NULL unquoted, everything else double-quoted with \ and " escaped. */
export function arrayLiteral(values: ReadonlyArray<string | null>): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    parts[i] = v === null || v === undefined ? 'NULL' : '"' + v.replace(/["\\]/g, '\\$&') + '"';
  }
  return '{' + parts.join(',') + '}';
}

/**
 * INSERT INTO target (cols) SELECT u.c1::type1, … FROM unnest($1::text[], …) u.
 * `overriding` for coordinator tables with GENERATED ALWAYS identity columns.
 */
export function insertFromArraysSql(target: string, columns: ColumnDefinition[], overriding = false): string {
  const names = columns.map((c) => quoteIdent(c.name)).join(', ');
  const aliases = columns.map((_, i) => `c${i + 1}`);
  const casts = columns.map((c, i) => `u.${aliases[i]}::${c.sqlType}`).join(', ');
  const params = columns.map((_, i) => `$${i + 1}::pg_catalog.text[]`).join(', ');
  const override = overriding ? ' OVERRIDING SYSTEM VALUE' : '';
  return `INSERT INTO ${target} (${names})${override} SELECT ${casts} FROM unnest(${params}) AS u(${aliases.join(', ')})`;
}

/** Rows collected for one target, column by column. */
export class RowBuffer {
  private columns: Array<Array<string | null>>;
  rows = 0;
  private bytes = 0;

  constructor(
    private readonly width: number,
    private readonly insertSql: string,
  ) {
    this.columns = Array.from({ length: width }, () => []);
  }

  /** Adds row[offset .. offset+width). */
  add(row: Row, offset: number): void {
    for (let i = 0; i < this.width; i++) {
      const v = row[offset + i] ?? null;
      this.columns[i]!.push(v);
      if (v !== null) this.bytes += v.length;
    }
    this.rows++;
  }

  get full(): boolean {
    return this.rows >= FLUSH_ROWS || this.bytes >= FLUSH_BYTES;
  }

  /** Sends the buffered rows (if any) to every client (each placement of a shard) and empties the buffer. */
  async flush(clients: InternalClient[]): Promise<void> {
    if (this.rows === 0) return;
    const params = this.columns.map((values) => arrayLiteral(values));
    this.columns = Array.from({ length: this.width }, () => []);
    this.rows = 0;
    this.bytes = 0;
    await Promise.all(clients.map((c) => c.query(this.insertSql, params)));
  }
}

/**
 * Runs `query` through a cursor in `client`'s open transaction and hands the
 * rows to `onBatch`, FETCH_ROWS at a time, waiting for each batch to be
 * handled before fetching the next.
 */
export async function forEachBatch(client: InternalClient, query: string, onBatch: (rows: Row[]) => Promise<void>): Promise<number> {
  const cursor = 'pgweave_move';
  await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${query}`);
  let total = 0;
  for (;;) {
    const batch = await client.query(`FETCH ${FETCH_ROWS} FROM ${cursor}`);
    if (batch.rows.length === 0) break;
    total += batch.rows.length;
    await onBatch(batch.rows);
    if (batch.rows.length < FETCH_ROWS) break;
  }
  await client.query(`CLOSE ${cursor}`);
  return total;
}
