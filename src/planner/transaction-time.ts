/**
 * Transaction-time functions in a statement: now(), transaction_timestamp(),
 * CURRENT_TIMESTAMP[(p)], LOCALTIMESTAMP[(p)], CURRENT_DATE, CURRENT_TIME[(p)],
 * LOCALTIME[(p)]. On one PostgreSQL they all derive from the transaction's
 * start time, so they are the same in every row, every statement and every
 * shard of a transaction block. An INSERT into a distributed table whose
 * values need nothing else from the coordinator gets them by splicing the
 * coordinator's transaction timestamp into its text at the parse tree's
 * locations (DESIGN.md decision 2) — no evaluation of the whole INSERT on
 * the coordinator. The cast that follows the timestamp is PostgreSQL's own
 * conversion (in the session's TimeZone, which workers replay), the same one
 * the function applies to the transaction start time.
 *
 * statement_timestamp() and clock_timestamp() are not among them: they differ
 * per statement and per call.
 */
import type { Node } from '../sql/parse.js';
import { SKIP, walkTree } from '../sql/tree-walk.js';
import { spliceText, type SplicedText } from '../sql/text-splice.js';

/** The cast (after timestamptz) that turns the transaction timestamp into each SQLValueFunction's value. */
const SVF_CASTS: Record<string, { type: string; typmod: boolean }> = {
  SVFOP_CURRENT_TIMESTAMP: { type: 'pg_catalog.timestamptz', typmod: false },
  SVFOP_CURRENT_TIMESTAMP_N: { type: 'pg_catalog.timestamptz', typmod: true },
  SVFOP_LOCALTIMESTAMP: { type: 'pg_catalog.timestamp', typmod: false },
  SVFOP_LOCALTIMESTAMP_N: { type: 'pg_catalog.timestamp', typmod: true },
  SVFOP_CURRENT_DATE: { type: 'pg_catalog.date', typmod: false },
  SVFOP_CURRENT_TIME: { type: 'pg_catalog.timetz', typmod: false },
  SVFOP_CURRENT_TIME_N: { type: 'pg_catalog.timetz', typmod: true },
  SVFOP_LOCALTIME: { type: 'pg_catalog.time', typmod: false },
  SVFOP_LOCALTIME_N: { type: 'pg_catalog.time', typmod: true },
};

const TIME_FUNCTIONS = new Set(['now', 'transaction_timestamp']);

/** One transaction-time function call in the text: its byte range and the cast its value needs. */
export interface TimeCall {
  start: number;
  end: number;
  /** The type the timestamptz value is cast to (null: timestamptz itself). */
  cast: string | null;
}

/** Whether `v` is a transaction-time function call (see the module comment). */
export function isTransactionTimeCall(v: Node): boolean {
  const svf = v?.SQLValueFunction;
  if (svf) return svf.op in SVF_CASTS;
  const fn = v?.FuncCall;
  if (!fn || fn.args || fn.agg_star || fn.agg_distinct || fn.over || fn.agg_filter || fn.agg_order || fn.func_variadic) return false;
  const parts = (fn.funcname ?? []) as Node[];
  const name = parts[parts.length - 1]?.String?.sval;
  if (!TIME_FUNCTIONS.has(name)) return false;
  return parts.length === 1 || (parts.length === 2 && parts[0]?.String?.sval === 'pg_catalog');
}

/** Every transaction-time call in `tree`, with its extent in `text` (UTF-8 bytes), in text order. */
export function findTimeCalls(tree: Node, text: Buffer): TimeCall[] {
  const calls: TimeCall[] = [];
  walkTree(tree, (o) => {
    if (!isTransactionTimeCall(o)) return;
    calls.push(timeCallAt(o, text));
    return SKIP;
  });
  return calls.sort((a, b) => a.start - b.start);
}

function timeCallAt(v: Node, text: Buffer): TimeCall {
  const svf = v.SQLValueFunction;
  if (svf) {
    const { type, typmod } = SVF_CASTS[svf.op];
    const start: number = svf.location;
    let end = wordEnd(text, start);
    if (typmod) end = closingParen(text, end);
    // (The parse tree's JSON leaves out zero values: CURRENT_TIMESTAMP(0) has no typmod field.)
    return { start, end, cast: type === 'pg_catalog.timestamptz' && !typmod ? null : typmod ? `${type}(${svf.typmod ?? 0})` : type };
  }
  const start: number = v.FuncCall.location;
  return { start, end: closingParen(text, start), cast: null };
}

function wordEnd(text: Buffer, at: number): number {
  let i = at;
  while (i < text.length && isWordByte(text[i])) i++;
  return i;
}

/** The byte after the first ')' from `at`, skipping comments (the calls have no arguments but a typmod). */
function closingParen(text: Buffer, at: number): number {
  let i = at;
  while (i < text.length) {
    const b = text[i];
    if (b === 0x22) {
      // a quoted name ("now"): skip to its closing quote
      i = text.indexOf(0x22, i + 1) + 1;
      if (i === 0) return text.length;
      continue;
    }
    if (b === 0x2d && text[i + 1] === 0x2d) {
      const nl = text.indexOf(0x0a, i);
      i = nl < 0 ? text.length : nl + 1;
      continue;
    }
    if (b === 0x2f && text[i + 1] === 0x2a) {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text[i] === 0x2f && text[i + 1] === 0x2a) { depth++; i += 2; }
        else if (text[i] === 0x2a && text[i + 1] === 0x2f) { depth--; i += 2; }
        else i++;
      }
      continue;
    }
    if (b === 0x29) return i + 1;
    i++;
  }
  return i;
}

function isWordByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x5f;
}

/**
 * The SQL that replaces each call: the transaction timestamp `value` (an SQL
 * expression of type timestamptz: a literal or a parameter) cast as the call
 * needs, parenthesized so operators and casts around the call still apply to it.
 */
export function timeCallSql(call: TimeCall, value: string): string {
  return call.cast === null ? `(${value})` : `(CAST(${value} AS ${call.cast}))`;
}

/** `text` with each call (in text order) replaced by `value` cast as it needs (positions map back: sql/text-splice.ts). */
export function spliceTimeCalls(text: Buffer, calls: readonly TimeCall[], value: string): SplicedText {
  return spliceText(text, calls.map((c) => ({ at: c.start, len: c.end - c.start, sql: timeCallSql(c, value) })));
}
