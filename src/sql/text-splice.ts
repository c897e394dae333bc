/**
 * Splicing text into a statement at parse-tree locations (DESIGN.md decision
 * 2): shard names, transaction-time values, `$n` literals. The result keeps
 * what it replaced, so a position in the spliced text — an ErrorResponse's
 * 'P', which a node reports in characters of the text it ran — can be told
 * as a position in the text the client wrote (`clientPosition`). Positions
 * are mapped only when an error carries one: the splice itself records its
 * edits and nothing else.
 */

/** Tells a 1-based character position in a text a node ran as one in the client's query string. */
export interface PositionOrigin {
  clientPosition(position: number): number;
}

/** `len` bytes of the source at `at` become `sql`. */
export interface TextEdit {
  at: number;
  len: number;
  sql: string;
}

/**
 * A statement text with edits applied. `source` is what it was made from: the
 * client's text (a Buffer of UTF-8), or an earlier splice of it.
 */
export class SplicedText implements PositionOrigin {
  private text: string | null = null;

  constructor(
    /** The spliced text, UTF-8. */
    readonly bytes: Buffer,
    readonly source: Buffer | SplicedText,
    /** Per applied edit, in text order: source byte offset, source length, spliced length. */
    private readonly applied: readonly number[],
  ) {}

  get sql(): string {
    return (this.text ??= this.bytes.toString('utf8'));
  }

  /** The client's text this was spliced from, through every layer. */
  get clientText(): Buffer {
    return this.source instanceof SplicedText ? this.source.clientText : this.source;
  }

  /**
   * The 1-based character position in the client's text of the 1-based
   * character `position` of this text. A position inside a spliced name or
   * value is the start of what it replaced there.
   */
  clientPosition(position: number): number {
    const byte = this.sourceByte(byteOffsetOfChar(this.bytes, position - 1));
    return charCountOf(this.clientText, byte) + 1;
  }

  /** The byte offset in the client's text of byte `offset` of this text. */
  private sourceByte(offset: number): number {
    let delta = 0;
    let mapped = -1;
    const a = this.applied;
    for (let i = 0; i < a.length && mapped < 0; i += 3) {
      const start = a[i]! + delta;
      if (offset < start) mapped = offset - delta;
      else if (offset < start + a[i + 2]!) mapped = a[i]!;
      else delta += a[i + 2]! - a[i + 1]!;
    }
    if (mapped < 0) mapped = offset - delta;
    return this.source instanceof SplicedText ? this.source.sourceByte(mapped) : mapped;
  }
}

/**
 * `source` with `edits` applied (sorted by `at`; an edit starting inside one
 * already applied is skipped: the same span reached twice).
 */
export function spliceText(source: Buffer | SplicedText, edits: readonly TextEdit[]): SplicedText {
  const text = source instanceof SplicedText ? source.bytes : source;
  const parts: Buffer[] = [];
  const applied: number[] = [];
  let pos = 0;
  for (const e of edits) {
    if (e.at < pos) continue;
    const sql = Buffer.from(e.sql, 'utf8');
    parts.push(text.subarray(pos, e.at), sql);
    applied.push(e.at, e.len, sql.length);
    pos = e.at + e.len;
  }
  parts.push(text.subarray(pos));
  return new SplicedText(Buffer.concat(parts), source, applied);
}

/** The byte offset of the `chars`-th character (0-based) of UTF-8 `bytes` (its length past the end). */
export function byteOffsetOfChar(bytes: Buffer, chars: number): number {
  let seen = 0;
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i]! & 0xc0) === 0x80) continue;
    if (seen === chars) return i;
    seen++;
  }
  return bytes.length;
}

/** The number of characters in the first `end` bytes of UTF-8 `bytes`. */
export function charCountOf(bytes: Buffer, end: number): number {
  let n = 0;
  for (let i = 0; i < end && i < bytes.length; i++) if ((bytes[i]! & 0xc0) !== 0x80) n++;
  return n;
}
