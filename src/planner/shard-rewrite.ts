/**
 * Rewrites a statement for one shard group by splicing shard names into the
 * original text at the parse tree's locations (DESIGN.md decision 2): the
 * rest of the text — literals, comments, formatting — reaches the worker
 * byte for byte. A relation without an alias gets its own name as alias, so
 * column references qualified by the table name keep working.
 */
import { scanWords } from '../sql/lexer.js';
import { quoteIdent } from '../sql/quote.js';
import { SplicedText, spliceText, type TextEdit } from '../sql/text-splice.js';
import type { RelationRef } from './relations.js';

/** Length in bytes of a (possibly schema-qualified, possibly quoted) name at `at`. */
export function qualifiedNameLength(text: Buffer, at: number): number {
  let i = at;
  for (;;) {
    if (text[i] === 0x22) {
      i++;
      while (i < text.length) {
        if (text[i] === 0x22) {
          if (text[i + 1] === 0x22) { i += 2; continue; }
          i++;
          break;
        }
        i++;
      }
    } else {
      while (i < text.length && isIdentByte(text[i])) i++;
    }
    // whitespace around the dot is legal SQL
    let j = i;
    while (j < text.length && isSpace(text[j])) j++;
    if (text[j] !== 0x2e) return i - at;
    j++;
    while (j < text.length && isSpace(text[j])) j++;
    i = j;
  }
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0c;
}

function isIdentByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f || b === 0x24 || b >= 0x80;
}

export interface Replacement {
  ref: RelationRef;
  schema: string;
  shardName: string;
  /** Where the grammar allows no alias (COPY t, TRUNCATE t…). */
  noAlias?: boolean;
  /** Other spans of the text to replace for this shard (an ON CONSTRAINT name). */
  edits?: TextEdit[];
}

export type { TextEdit };

/**
 * The span of the constraint name of `ON CONFLICT ON CONSTRAINT name`, whose
 * InferClause starts at `at` (the ON): the shard's constraint carries the
 * shard id (`name_<shardid>`), so the name must be replaced per shard. Null
 * when the words there are not what the grammar put (never expected).
 */
export function constraintNameSpan(text: Buffer, at: number, name: string): { at: number; len: number } | null {
  const rest = text.subarray(at).toString('utf8');
  const words: Array<{ word: string; start: number; end: number }> = [];
  scanWords(rest, (word, start, end) => {
    if (words.length < 3) words.push({ word, start, end });
  });
  if (words.length < 3 || words[0]!.word !== 'on' || words[1]!.word !== 'constraint' || words[2]!.word !== name) return null;
  const start = at + Buffer.byteLength(rest.slice(0, words[2]!.start));
  return { at: start, len: Buffer.byteLength(rest.slice(words[2]!.start, words[2]!.end)) };
}

/**
 * Returns the statement text with each relation replaced by its shard. A
 * relation without an alias gets its name as alias, so column references
 * qualified by its schema too (`app.t.c`) are cut to `"t".c`: PostgreSQL
 * would not resolve the schema-qualified form against the alias.
 */
export function spliceShardNames(text: Buffer, replacements: Replacement[]): string {
  return spliceShardText(text, replacements).sql;
}

/**
 * `spliceShardNames` keeping the splices, so positions in the result map
 * back to `source` (an error's position: sql/text-splice.ts).
 */
export function spliceShardText(source: Buffer | SplicedText, replacements: Replacement[]): SplicedText {
  const text = source instanceof SplicedText ? source.bytes : source;
  const edits: TextEdit[] = [];
  for (const r of replacements) {
    if (r.edits) edits.push(...r.edits);
    const at = r.ref.location;
    let name = quoteIdent(r.schema) + '.' + quoteIdent(r.shardName);
    const aliased = !r.ref.hasAlias && !r.noAlias && !afterTableKeyword(text, at);
    if (aliased) name += ' AS ' + quoteIdent(r.ref.name);
    edits.push({ at, len: qualifiedNameLength(text, at), sql: name });
    if (!aliased) continue;
    for (const c of r.ref.qualifiedColumns ?? []) {
      if (c.schema !== r.schema) continue;
      edits.push({ at: c.location, len: namePartsLength(text, c.location, c.qualifiers), sql: quoteIdent(r.ref.name) + '.' });
    }
  }
  edits.sort((a, b) => a.at - b.at);
  // An edit inside one already applied (the same reference reached through two replacements) is skipped.
  return spliceText(source, edits);
}

/**
 * Whether the name at `at` follows the keyword TABLE (`TABLE t`, `TABLE ONLY
 * t`: a SELECT * FROM t whose grammar takes no alias; its columns cannot be
 * qualified anyway).
 */
function afterTableKeyword(text: Buffer, at: number): boolean {
  const wordBefore = (end: number): { word: string; start: number } => {
    let i = end;
    while (i > 0 && isSpace(text[i - 1]!)) i--;
    const stop = i;
    while (i > 0 && isIdentByte(text[i - 1]!)) i--;
    return { word: text.toString('latin1', i, stop).toLowerCase(), start: i };
  };
  let w = wordBefore(at);
  if (w.word === 'only') w = wordBefore(w.start);
  return w.word === 'table' && (w.start === 0 || !isIdentByte(text[w.start - 1]!));
}

/** Length in bytes of `count` name parts and the dot after each, from `at` (`app . t .`). */
function namePartsLength(text: Buffer, at: number, count: number): number {
  let i = at;
  for (let n = 0; n < count; n++) {
    if (text[i] === 0x22) {
      i++;
      while (i < text.length && !(text[i] === 0x22 && text[i + 1] !== 0x22)) i += text[i] === 0x22 ? 2 : 1;
      i++;
    } else {
      while (i < text.length && isIdentByte(text[i])) i++;
    }
    while (i < text.length && isSpace(text[i])) i++;
    if (text[i] === 0x2e) i++;
    while (i < text.length && isSpace(text[i])) i++;
  }
  return i - at;
}
