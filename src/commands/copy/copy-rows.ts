/**
 * Finds the row boundaries of a COPY FROM stream and reads single fields out
 * of a row — exactly as much of PostgreSQL's COPY input parsing
 * (copyfromparse.c) as routing needs: where a row ends, the value of the
 * distribution column, how many fields a row has. The rows themselves go to
 * the shards byte for byte, where PostgreSQL parses them for real.
 *
 * Text format: a row ends at the line terminator (LF, CRLF or CR, chosen by
 * the first line as PostgreSQL does) unless a backslash escapes it; `\N` (or
 * the NULL option) is NULL; `\t`, `\n`, octal and hex escapes are decoded.
 * CSV: terminators inside quotes belong to the value; QUOTE and ESCAPE (which
 * only escapes inside quotes, and only when it differs from QUOTE); an
 * unquoted NULL string is NULL unless FORCE_NOT_NULL, a quoted one only with
 * FORCE_NULL. Binary: the PGCOPY signature and header, then tuples of
 * length-prefixed fields, ended by a -1 field count.
 */
import type { CopyOptions } from './copy-options.js';

export const BINARY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, flags 0, no header extension: what every shard's binary COPY starts with. */
export const BINARY_HEADER = Buffer.concat([BINARY_SIGNATURE, Buffer.alloc(8)]);
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;

/** A field's bytes in the row and whether it needs decoding. */
interface RawField {
  start: number;
  end: number;
  /** Text: contains backslashes. CSV: was quoted (some quote appeared). */
  flagged: boolean;
}

export interface RowReader {
  /** End (exclusive, terminator included) of the row starting at `pos`, or -1 when the row is not complete yet. */
  rowEnd(buf: Buffer, pos: number): number;
  /** Where the row's content ends (its terminator excluded). */
  contentEnd(buf: Buffer, start: number, end: number): number;
  /** Whether this row is the end-of-data marker `\.`. */
  isEndMarker(buf: Buffer, start: number, contentEnd: number): boolean;
  /** The text of field `index` (null for NULL), or undefined when the row has fewer fields. */
  field(buf: Buffer, start: number, contentEnd: number, index: number, column: string): string | null | undefined;
  /** Every field's text (for the header line and coordinator-side decoding). */
  fields(buf: Buffer, start: number, contentEnd: number, columns: readonly string[]): Array<string | null>;
  fieldCount(buf: Buffer, start: number, contentEnd: number): number;
  /** The row's content with `values` appended as further fields, terminated. */
  append(buf: Buffer, start: number, contentEnd: number, values: ReadonlyArray<string | null>): Buffer;
  /** The terminator to add to a last row that came without one. */
  terminator(): Buffer;
}

abstract class LineReader implements RowReader {
  /** 0 until the first line shows which terminator the stream uses. */
  protected eol: 'nl' | 'cr' | 'crnl' | null = null;
  /** Where the next backslash / quote byte is in `seenBuf` (-1: none after `seenFrom`), so rows do not rescan the rest of a buffer. */
  private seenBuf: Buffer | null = null;
  private readonly seenAt: number[] = [0, 0];
  private readonly seenFrom: number[] = [0, 0];

  constructor(protected readonly o: CopyOptions) {}

  /** Field bytes as text, from the data's encoding. */
  protected text(buf: Buffer, start: number, end: number): string {
    return this.o.decode ? this.o.decode(buf, start, end) : buf.toString('utf8', start, end);
  }

  /** buf.indexOf(byte, from), remembered per buffer: rows are scanned in increasing order. */
  protected nextOf(buf: Buffer, slot: 0 | 1, byte: number, from: number): number {
    if (this.seenBuf !== buf) {
      this.seenBuf = buf;
      this.seenFrom[0] = this.seenFrom[1] = Number.MAX_SAFE_INTEGER;
    }
    const at = this.seenAt[slot];
    if (from >= this.seenFrom[slot] && (at === -1 || at >= from)) return at;
    const found = buf.indexOf(byte, from);
    this.seenAt[slot] = found;
    this.seenFrom[slot] = from;
    return found;
  }

  /** Decides the terminator from the first line, as PostgreSQL does; false when more data is needed. */
  protected detectEol(buf: Buffer, pos: number): boolean {
    if (this.eol !== null) return true;
    const nl = buf.indexOf(LF, pos);
    const cr = buf.indexOf(CR, pos);
    if (cr >= 0 && (nl < 0 || cr < nl)) {
      if (cr + 1 >= buf.length) return false;
      this.eol = buf[cr + 1] === LF ? 'crnl' : 'cr';
      return true;
    }
    if (nl >= 0) {
      this.eol = 'nl';
      return true;
    }
    return false;
  }

  protected get terminatorByte(): number {
    return this.eol === 'cr' ? CR : LF;
  }

  abstract rowEnd(buf: Buffer, pos: number): number;

  contentEnd(buf: Buffer, start: number, end: number): number {
    if (end <= start) return start;
    if (this.eol === null) return end;
    const last = buf[end - 1];
    if (this.eol === 'cr') return last === CR ? end - 1 : end;
    if (last !== LF) return end; // a last row without terminator
    if (this.eol === 'crnl' && end - 2 >= start && buf[end - 2] === CR) return end - 2;
    return end - 1;
  }

  isEndMarker(buf: Buffer, start: number, contentEnd: number): boolean {
    return contentEnd - start === 2 && buf[start] === BACKSLASH && buf[start + 1] === 0x2e;
  }

  terminator(): Buffer {
    return Buffer.from(this.eol === 'crnl' ? '\r\n' : this.eol === 'cr' ? '\r' : '\n');
  }

  protected abstract rawFields(buf: Buffer, start: number, contentEnd: number, upTo: number): RawField[];
  protected abstract decode(buf: Buffer, f: RawField, column: string): string | null;

  field(buf: Buffer, start: number, contentEnd: number, index: number, column: string): string | null | undefined {
    const raw = this.rawFields(buf, start, contentEnd, index + 1);
    const f = raw[index];
    return f === undefined ? undefined : this.decode(buf, f, column);
  }

  fields(buf: Buffer, start: number, contentEnd: number, columns: readonly string[]): Array<string | null> {
    return this.rawFields(buf, start, contentEnd, Infinity).map((f, i) => this.decode(buf, f, columns[i] ?? ''));
  }

  fieldCount(buf: Buffer, start: number, contentEnd: number): number {
    return this.rawFields(buf, start, contentEnd, Infinity).length;
  }

  protected abstract encodeValue(v: string | null): string;

  append(buf: Buffer, start: number, contentEnd: number, values: ReadonlyArray<string | null>): Buffer {
    const delimiter = String.fromCharCode(this.o.delimiter);
    const extra = values.map((v) => delimiter + this.encodeValue(v)).join('');
    return Buffer.concat([buf.subarray(start, contentEnd), Buffer.from(extra, 'utf8'), this.terminator()]);
  }
}

/** PostgreSQL's text COPY format. */
export class TextRowReader extends LineReader {
  rowEnd(buf: Buffer, pos: number): number {
    if (!this.detectEol(buf, pos)) return -1;
    const term = this.terminatorByte;
    let from = pos;
    for (;;) {
      const nl = buf.indexOf(term, from);
      if (nl < 0) return -1;
      const bs = this.nextOf(buf, 0, BACKSLASH, from);
      if (bs < 0 || bs >= nl) return nl + 1;
      // A backslash quotes the next byte, a terminator included.
      let i = bs;
      while (i < nl) i += buf[i] === BACKSLASH ? 2 : 1;
      if (i === nl) return nl + 1;
      from = nl + 1;
    }
  }

  protected rawFields(buf: Buffer, start: number, contentEnd: number, upTo: number): RawField[] {
    const d = this.o.delimiter;
    const out: RawField[] = [];
    const b = this.nextOf(buf, 0, BACKSLASH, start);
    const hasBackslash = b >= 0 && b < contentEnd;
    let fieldStart = start;
    if (!hasBackslash) {
      while (out.length < upTo) {
        let at = buf.indexOf(d, fieldStart);
        if (at < 0 || at >= contentEnd) at = contentEnd;
        out.push({ start: fieldStart, end: at, flagged: false });
        if (at === contentEnd) break;
        fieldStart = at + 1;
      }
      return out;
    }
    let i = start;
    let flagged = false;
    while (out.length < upTo) {
      if (i >= contentEnd) {
        out.push({ start: fieldStart, end: contentEnd, flagged });
        break;
      }
      const c = buf[i];
      if (c === BACKSLASH) {
        flagged = true;
        i += 2;
        continue;
      }
      if (c === d) {
        out.push({ start: fieldStart, end: i, flagged });
        fieldStart = i + 1;
        flagged = false;
      }
      i++;
    }
    return out;
  }

  protected decode(buf: Buffer, f: RawField, _column: string): string | null {
    const ns = this.o.nullString;
    if (f.end - f.start === ns.length && buf.compare(ns, 0, ns.length, f.start, f.end) === 0) return null;
    if (!f.flagged) return this.text(buf, f.start, f.end);
    const out: number[] = [];
    let i = f.start;
    while (i < f.end) {
      const c = buf[i++];
      if (c !== BACKSLASH || i >= f.end) {
        out.push(c);
        continue;
      }
      const e = buf[i++];
      if (e >= 0x30 && e <= 0x37) {
        let v = e - 0x30;
        for (let k = 0; k < 2 && i < f.end && buf[i] >= 0x30 && buf[i] <= 0x37; k++) v = v * 8 + (buf[i++] - 0x30);
        out.push(v & 0xff);
      } else if (e === 0x78 && i < f.end && isHex(buf[i])) {
        let v = hexValue(buf[i++]);
        if (i < f.end && isHex(buf[i])) v = v * 16 + hexValue(buf[i++]);
        out.push(v);
      } else {
        out.push(TEXT_ESCAPES[e] ?? e);
      }
    }
    return this.text(Buffer.from(out), 0, out.length);
  }

  protected encodeValue(v: string | null): string {
    if (v === null) return this.o.nullString.toString('utf8');
    const d = String.fromCharCode(this.o.delimiter);
    let s = '';
    for (const ch of v) {
      if (ch === '\\') s += '\\\\';
      else if (ch === '\n') s += '\\n';
      else if (ch === '\r') s += '\\r';
      else if (ch === d) s += '\\' + d;
      else s += ch;
    }
    return s;
  }
}

const TEXT_ESCAPES: Record<number, number> = { 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9, 0x76: 11 };

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

function hexValue(b: number): number {
  return b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10;
}

/** PostgreSQL's CSV COPY format. */
export class CsvRowReader extends LineReader {
  rowEnd(buf: Buffer, pos: number): number {
    if (!this.detectEol(buf, pos)) return -1;
    const term = this.terminatorByte;
    const q = this.o.quote;
    const nl = buf.indexOf(term, pos);
    if (nl < 0) return -1;
    const firstQuote = this.nextOf(buf, 1, q, pos);
    if (firstQuote < 0 || firstQuote > nl) return nl + 1;
    // Quotes ahead: walk the bytes. ESCAPE only matters inside quotes, and only when it is not QUOTE.
    const esc = this.o.escape === q ? -1 : this.o.escape;
    let inQuote = false;
    const n = buf.length;
    for (let i = firstQuote; i < n; i++) {
      const c = buf[i];
      if (inQuote) {
        if (c === esc) {
          if (i + 1 >= n) return -1;
          const next = buf[i + 1];
          if (next === q || next === esc) i++;
        } else if (c === q) inQuote = false;
      } else if (c === q) inQuote = true;
      else if (c === term) return i + 1;
    }
    return -1;
  }

  protected rawFields(buf: Buffer, start: number, contentEnd: number, upTo: number): RawField[] {
    const d = this.o.delimiter;
    const q = this.o.quote;
    const esc = this.o.escape;
    const out: RawField[] = [];
    let fieldStart = start;
    let quoted = false;
    let inQuote = false;
    let i = start;
    while (out.length < upTo) {
      if (i >= contentEnd) {
        out.push({ start: fieldStart, end: contentEnd, flagged: quoted });
        break;
      }
      const c = buf[i];
      if (inQuote) {
        if (c === esc && esc !== q && i + 1 < contentEnd && (buf[i + 1] === q || buf[i + 1] === esc)) i++;
        else if (c === q) {
          // a doubled quote (QUOTE = ESCAPE) is a literal quote
          if (esc === q && i + 1 < contentEnd && buf[i + 1] === q) i++;
          else inQuote = false;
        }
      } else if (c === q) {
        inQuote = true;
        quoted = true;
      } else if (c === d) {
        out.push({ start: fieldStart, end: i, flagged: quoted });
        fieldStart = i + 1;
        quoted = false;
      }
      i++;
    }
    return out;
  }

  protected decode(buf: Buffer, f: RawField, column: string): string | null {
    const ns = this.o.nullString;
    const raw = (): string => this.text(buf, f.start, f.end);
    if (!f.flagged) {
      const isNull = f.end - f.start === ns.length && buf.compare(ns, 0, ns.length, f.start, f.end) === 0;
      if (isNull && !(this.o.forceNotNull === '*' || this.o.forceNotNull.includes(column))) return null;
      return raw();
    }
    const q = this.o.quote;
    const esc = this.o.escape;
    const out: number[] = [];
    let inQuote = false;
    for (let i = f.start; i < f.end; i++) {
      const c = buf[i];
      if (inQuote) {
        if (c === esc && i + 1 < f.end && (buf[i + 1] === q || buf[i + 1] === esc) && !(esc === q && buf[i + 1] !== q)) {
          out.push(buf[++i]);
        } else if (c === q) inQuote = false;
        else out.push(c);
      } else if (c === q) inQuote = true;
      else out.push(c);
    }
    const value = this.text(Buffer.from(out), 0, out.length);
    if ((this.o.forceNull === '*' || this.o.forceNull.includes(column)) && value === ns.toString('utf8')) return null;
    return value;
  }

  protected encodeValue(v: string | null): string {
    if (v === null) return this.o.nullString.toString('utf8');
    const q = String.fromCharCode(this.o.quote);
    const e = String.fromCharCode(this.o.escape);
    let s = q;
    for (const ch of v) {
      if (ch === q || ch === e) s += e;
      s += ch;
    }
    return s + q;
  }
}

/**
 * PostgreSQL's binary COPY format. `rowEnd` returns -1 while a tuple is
 * incomplete; the header is consumed by `readHeader` first.
 */
export class BinaryRowReader {
  /** True once the -1 field count (the trailer) was read. */
  ended = false;

  /** Length of the file header at pos, -1 when incomplete; throws when the signature is wrong. */
  readHeader(buf: Buffer, pos: number): number {
    if (buf.length - pos < 19) {
      if (buf.length - pos > 0 && buf.compare(BINARY_SIGNATURE, 0, Math.min(11, buf.length - pos), pos, Math.min(pos + 11, buf.length)) !== 0) {
        return -2;
      }
      return -1;
    }
    if (buf.compare(BINARY_SIGNATURE, 0, 11, pos, pos + 11) !== 0) return -2;
    const extension = buf.readInt32BE(pos + 15);
    if (extension < 0) return -2;
    if (buf.length - pos < 19 + extension) return -1;
    return 19 + extension;
  }

  /** End of the tuple at pos (-1: incomplete; pos + 2 with `ended` set: the trailer). */
  rowEnd(buf: Buffer, pos: number): number {
    if (buf.length - pos < 2) return -1;
    const count = buf.readInt16BE(pos);
    if (count === -1) {
      this.ended = true;
      return pos + 2;
    }
    let i = pos + 2;
    for (let f = 0; f < count; f++) {
      if (buf.length - i < 4) return -1;
      const len = buf.readInt32BE(i);
      i += 4;
      if (len > 0) i += len;
      if (i > buf.length) return -1;
    }
    return i;
  }

  fieldCount(buf: Buffer, pos: number): number {
    return buf.readInt16BE(pos);
  }

  /** Bytes [start, end) of field `index`, null for NULL, undefined when missing. */
  field(buf: Buffer, pos: number, index: number): [number, number] | null | undefined {
    const count = buf.readInt16BE(pos);
    if (index >= count) return undefined;
    let i = pos + 2;
    for (let f = 0; f < index; f++) {
      const len = buf.readInt32BE(i);
      i += 4 + (len > 0 ? len : 0);
    }
    const len = buf.readInt32BE(i);
    if (len < 0) return null;
    return [i + 4, i + 4 + len];
  }

  /** The tuple with extra fields (already in binary form, null = NULL) appended. */
  append(buf: Buffer, start: number, end: number, values: ReadonlyArray<Buffer | null>): Buffer {
    const parts: Buffer[] = [Buffer.alloc(2), buf.subarray(start + 2, end)];
    parts[0].writeInt16BE(buf.readInt16BE(start) + values.length, 0);
    for (const v of values) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(v === null ? -1 : v.length, 0);
      parts.push(len);
      if (v) parts.push(v);
    }
    return Buffer.concat(parts);
  }
}

export function makeLineReader(o: CopyOptions): LineReader {
  return o.format === 'csv' ? new CsvRowReader(o) : new TextRowReader(o);
}
