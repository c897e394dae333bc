/**
 * Rewrites a statement for one shard group by splicing shard names into the
 * original text at the parse tree's locations (DESIGN.md decision 2): the
 * rest of the text — literals, comments, formatting — reaches the worker
 * byte for byte. A relation without an alias gets its own name as alias, so
 * column references qualified by the table name keep working.
 */
import { quoteIdent } from '../sql/quote.js';
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
}

/** Returns the statement text with each relation replaced by its shard. */
export function spliceShardNames(text: Buffer, replacements: Replacement[]): string {
  const sorted = [...replacements].sort((a, b) => a.ref.location - b.ref.location);
  const parts: Buffer[] = [];
  let pos = 0;
  for (const r of sorted) {
    const at = r.ref.location;
    const len = qualifiedNameLength(text, at);
    parts.push(text.subarray(pos, at));
    let name = quoteIdent(r.schema) + '.' + quoteIdent(r.shardName);
    if (!r.ref.hasAlias && !r.noAlias) name += ' AS ' + quoteIdent(r.ref.name);
    parts.push(Buffer.from(name));
    pos = at + len;
  }
  parts.push(text.subarray(pos));
  return Buffer.concat(parts).toString('utf8');
}
