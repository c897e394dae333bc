/**
 * A scanner for PostgreSQL's lexical rules — comments (nested), string
 * literals ('' and E'' with escapes, B'', X'', U&''), dollar quoting, quoted
 * identifiers and parameters — that reports identifiers and keywords with
 * their positions. It is not a parser: the session uses it to decide in a
 * couple of microseconds whether a statement can concern the distributed
 * catalog at all (any word naming a distributed table, a Citus function or a
 * transaction verb); only then is the statement parsed by PostgreSQL's own
 * parser (libpg-query). Words inside literals and comments never count.
 */

const enum C {
  Space = 32,
  Tab = 9,
  LF = 10,
  CR = 13,
  FF = 12,
  Quote = 39, // '
  DQuote = 34, // "
  Dollar = 36,
  Dash = 45,
  Slash = 47,
  Star = 42,
  Backslash = 92,
  Underscore = 95,
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === C.Underscore || c >= 128;
}

function isIdentCont(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57) || c === C.Dollar;
}

/**
 * Calls `onWord(word, start, end, quoted)` for every identifier or keyword.
 * Unquoted words are lower-cased, as PostgreSQL folds them; quoted ones keep
 * their case with "" unescaped. Unterminated literals end the scan quietly:
 * the parser reports them properly.
 */
export function scanWords(sql: string, onWord: (word: string, start: number, end: number, quoted: boolean) => void): void {
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === C.Space || c === C.Tab || c === C.LF || c === C.CR || c === C.FF) {
      i++;
    } else if (c === C.Dash && sql.charCodeAt(i + 1) === C.Dash) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
    } else if (c === C.Slash && sql.charCodeAt(i + 1) === C.Star) {
      i = skipBlockComment(sql, i);
      if (i < 0) return;
    } else if (c === C.Quote) {
      i = skipString(sql, i + 1, false);
      if (i < 0) return;
    } else if (c === C.DQuote) {
      const start = i;
      let word = '';
      i++;
      for (;;) {
        const q = sql.indexOf('"', i);
        if (q < 0) return;
        word += sql.slice(i, q);
        if (sql.charCodeAt(q + 1) === C.DQuote) { word += '"'; i = q + 2; continue; }
        i = q + 1;
        break;
      }
      onWord(word, start, i, true);
    } else if (c === C.Dollar) {
      const d = sql.charCodeAt(i + 1);
      if (d >= 48 && d <= 57) {
        i += 2;
        while (i < n && sql.charCodeAt(i) >= 48 && sql.charCodeAt(i) <= 57) i++;
        continue;
      }
      // $tag$ or $$
      let j = i + 1;
      while (j < n && isIdentCont(sql.charCodeAt(j)) && sql.charCodeAt(j) !== C.Dollar) j++;
      if (sql.charCodeAt(j) === C.Dollar) {
        const tag = sql.slice(i, j + 1);
        const close = sql.indexOf(tag, j + 1);
        if (close < 0) return;
        i = close + tag.length;
      } else {
        i++;
      }
    } else if (isIdentStart(c)) {
      const start = i;
      i++;
      while (i < n && isIdentCont(sql.charCodeAt(i))) i++;
      const next = sql.charCodeAt(i);
      // E'..', B'..', X'..', N'..' and U&'..' / U&"..": prefixes of literals
      if (next === C.Quote && i - start === 1) {
        const p = c | 0x20;
        i = skipString(sql, i + 1, p === 101 /* e */);
        if (i < 0) return;
        continue;
      }
      if (i - start === 1 && (c | 0x20) === 117 && next === 38 /* & */) {
        const q = sql.charCodeAt(i + 1);
        if (q === C.Quote) {
          i = skipString(sql, i + 2, false);
          if (i < 0) return;
          continue;
        }
        if (q === C.DQuote) { i++; continue; } // the quoted identifier follows
      }
      onWord(sql.slice(start, i).toLowerCase(), start, i, false);
    } else if (c >= 48 && c <= 57) {
      i++;
      while (i < n && isIdentCont(sql.charCodeAt(i))) i++;
    } else {
      i++;
    }
  }
}

/** Skips a string literal body starting after its opening quote; returns the index after it, or -1 when it is unterminated. */
export function skipString(sql: string, i: number, backslashEscapes: boolean): number {
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (backslashEscapes && c === C.Backslash) { i += 2; continue; }
    if (c === C.Quote) {
      if (sql.charCodeAt(i + 1) === C.Quote) { i += 2; continue; }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/** Skips a (nested) block comment starting at `i` (its `/*`); returns the index after it, or -1 when it is unterminated. */
export function skipBlockComment(sql: string, i: number): number {
  const n = sql.length;
  let depth = 1;
  i += 2;
  while (i < n && depth > 0) {
    if (sql.charCodeAt(i) === C.Slash && sql.charCodeAt(i + 1) === C.Star) { depth++; i += 2; }
    else if (sql.charCodeAt(i) === C.Star && sql.charCodeAt(i + 1) === C.Slash) { depth--; i += 2; }
    else i++;
  }
  return depth > 0 ? -1 : i;
}

/** True when any word of the statement is in `words` (already lower-case / exact for quoted). */
export function mentionsAnyWord(sql: string, words: ReadonlySet<string>): boolean {
  let found = false;
  scanWords(sql, (w) => {
    if (!found && words.has(w)) found = true;
  });
  return found;
}
