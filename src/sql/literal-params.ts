/**
 * A simple Query's constants as parameters: `SELECT abalance FROM
 * pgbench_accounts WHERE aid = 4711` becomes `… WHERE aid = $1` with the
 * value '4711' of type int4, so that statements which differ only in their
 * constants share one plan on the coordinator and one prepared statement on
 * the worker (session/auto-prepare.ts). This is the scan only: which
 * constants may really become parameters is decided on the parse tree of
 * the result (`paramsAreComparedColumns`), since a constant's context — a
 * typed literal `date '…'`, a negative number, LIMIT, a cast — is the
 * parser's business.
 *
 * The scan follows PostgreSQL's lexical rules closely enough to refuse
 * (null) whatever it does not model exactly: E'', B'', X'', N'' and U&''
 * strings, dollar quoting, parameters already present, string constants
 * continued on the next line ('a'\n'b' is one constant), numbers with a
 * fraction or exponent, integers beyond int4 (whose type the parser picks
 * from their size), and numbers glued to letters. Plain '…' strings become
 * parameters of unknown type (0), resolved from their context exactly as
 * the literal is; integers become int4 (23), the type PostgreSQL gives them.
 */
import type { Node } from './parse.js';
import { skipBlockComment, skipString } from './lexer.js';
import { SKIP, STOP, walkTree } from './tree-walk.js';

/** The statement with its constants replaced by $1…$n, their values (text) and types. */
export interface LiteralParams {
  text: string;
  values: string[];
  types: number[];
}

const INT4 = 23;
const UNKNOWN = 0;
const INT4_MAX = 2147483647;

function isIdentChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128 || (c >= 48 && c <= 57) || c === 36;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * The statement with its plain string and integer constants as parameters,
 * or null when the text holds anything the scan does not model (see the
 * module comment), or no constant at all.
 */
export function parameterizeLiterals(sql: string): LiteralParams | null {
  const n = sql.length;
  let out = '';
  let copied = 0;
  const values: string[] = [];
  const types: number[] = [];
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45) {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
    } else if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42 /* * */) {
      i = skipBlockComment(sql, i);
      if (i < 0) return null;
    } else if (c === 39 /* ' */) {
      const j = skipString(sql, i + 1, false);
      if (j < 0) return null;
      const value = sql.slice(i + 1, j - 1).replaceAll("''", "'");
      // A constant continued after a line break is one constant with the next: not modelled.
      let k = j;
      while (k < n && (sql.charCodeAt(k) === 32 || sql.charCodeAt(k) === 9 || sql.charCodeAt(k) === 10 || sql.charCodeAt(k) === 13 || sql.charCodeAt(k) === 12)) k++;
      if (sql.charCodeAt(k) === 39) return null;
      out += sql.slice(copied, i) + '$' + (values.length + 1);
      values.push(value);
      types.push(UNKNOWN);
      copied = i = j;
    } else if (c === 34 /* " */) {
      const q = sql.indexOf('"', i + 1);
      if (q < 0) return null;
      i = q + 1;
      // "" inside a quoted identifier: the scan simply goes on with the next quoted part.
    } else if (c === 36 /* $ */) {
      return null;
    } else if (isDigit(c) || (c === 46 /* . */ && isDigit(sql.charCodeAt(i + 1)))) {
      let j = i;
      while (j < n && isDigit(sql.charCodeAt(j))) j++;
      const next = sql.charCodeAt(j);
      if (next === 46 || isIdentChar(next) || j === i || j - i > 10) return null;
      const digits = sql.slice(i, j);
      if (Number(digits) > INT4_MAX) return null;
      out += sql.slice(copied, i) + '$' + (values.length + 1);
      values.push(digits);
      types.push(INT4);
      copied = i = j;
    } else if (isIdentChar(c)) {
      const start = i;
      while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      // E'', B'', X'', N'': one-letter prefixes of other constants; U&'…' and U&"…" too.
      const next = sql.charCodeAt(i);
      if ((next === 39 && i - start === 1) || (next === 38 /* & */ && i - start === 1 && (c | 0x20) === 117)) return null;
    } else {
      i++;
    }
  }
  if (values.length === 0) return null;
  return { text: out + sql.slice(copied), values, types };
}

const COMPARISONS = new Set(['=', '<>', '!=', '<', '>', '<=', '>=']);

/**
 * Whether each of $1…$`count` occurs exactly once in `tree`, each as one
 * side of a comparison (=, <>, <, >, <=, >=) whose other side is a plain
 * column reference: the one context where a parameter of the constant's
 * type resolves exactly as the constant does (the column's type decides
 * the operator and an unknown constant's type either way). A constant
 * anywhere else — cast, negated, in a target list, LIMIT, a function's
 * argument, a typed literal — keeps the statement on the literal path.
 */
export function paramsAreComparedColumns(tree: Node, count: number): boolean {
  const seen = new Array<boolean>(count + 1).fill(false);
  let found = 0;
  const bad = walkTree(tree, (node, key, parent) => {
    const p = node.ParamRef;
    if (!p) return undefined;
    const number = p.number as number;
    if (!(number >= 1 && number <= count) || seen[number] || parent === null || (key !== 'lexpr' && key !== 'rexpr')) return STOP;
    if (parent.kind !== 'AEXPR_OP' || !Array.isArray(parent.name) || parent.name.length !== 1) return STOP;
    if (!COMPARISONS.has(parent.name[0]?.String?.sval)) return STOP;
    const other = key === 'lexpr' ? parent.rexpr : parent.lexpr;
    if (!other?.ColumnRef) return STOP;
    seen[number] = true;
    found++;
    return SKIP;
  });
  return !bad && found === count;
}
