/**
 * Batch encoding for the routing engine (distributed-copy.ts): a shard's
 * rows copied byte for byte into one bounded CopyData message, a row too large
 * for a batch as a message of its own, and the text[] literal of a batch's
 * column values (for the INSERT … FROM unnest batches).
 */
import { Frontend } from '../../protocol/constants.js';

/** One shard's rows waiting to be sent. */
export class ShardBuffer {
  buf: Buffer | null = null;
  len = 0;
  lines: number[] = [];
  rows: Buffer[] | null = null;
  constructor(readonly capacity: number, private readonly prefix: Buffer | null) {}

  private start(): void {
    this.buf = Buffer.allocUnsafe(this.capacity);
    this.buf[0] = Frontend.CopyData;
    this.len = 5;
    if (this.prefix) {
      this.prefix.copy(this.buf, 5);
      this.len += this.prefix.length;
    }
    this.lines = [];
  }

  get empty(): boolean {
    return this.buf === null;
  }

  /** Whether `n` more bytes fit (the binary trailer kept free). */
  fits(n: number): boolean {
    return this.buf === null ? 5 + (this.prefix?.length ?? 0) + n + 2 <= this.capacity : this.len + n + 2 <= this.capacity;
  }

  add(src: Buffer, s: number, e: number, line: number, tail: Buffer | null = null): void {
    if (this.buf === null) this.start();
    src.copy(this.buf!, this.len, s, e);
    this.len += e - s;
    if (tail) {
      tail.copy(this.buf!, this.len);
      this.len += tail.length;
    }
    this.lines.push(line);
  }

  /** The buffered rows as one CopyData message, and their client lines; the buffer starts over. */
  take(trailer: Buffer | null): { message: Buffer; lines: number[] } {
    const buf = this.buf!;
    if (trailer) {
      trailer.copy(buf, this.len);
      this.len += trailer.length;
    }
    buf.writeInt32BE(this.len - 1, 1);
    const out = { message: buf.subarray(0, this.len), lines: this.lines };
    this.buf = null;
    this.len = 0;
    this.lines = [];
    return out;
  }
}

/** One oversized row, sent alone. */
export function singleRowMessage(prefix: Buffer | null, row: Buffer, trailer: Buffer | null): Buffer {
  const parts = [Buffer.alloc(5), ...(prefix ? [prefix] : []), row, ...(trailer ? [trailer] : [])];
  const total = parts.reduce((n, p) => n + p.length, 0);
  parts[0][0] = Frontend.CopyData;
  parts[0].writeInt32BE(total - 1, 1);
  return Buffer.concat(parts, total);
}

export function textArrayLiteral(values: ReadonlyArray<string | null>): string {
  let s = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) s += ',';
    const v = values[i];
    s += v === null ? 'NULL' : '"' + v.replace(/[\\"]/g, '\\$&') + '"';
  }
  return s + '}';
}
