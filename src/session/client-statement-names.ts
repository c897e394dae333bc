/**
 * Keeps the client's prepared-statement names apart from the session's own
 * on the coordinator link. The session prepares statements of its own there
 * (`pgws<n>`, worker-statements.ts: a block's BEGIN with its SELECT, the
 * final queries of prepared pulls), while the client's statements on local
 * tables are forwarded to the same PostgreSQL connection with the client's
 * names — one namespace. A statement name is any string PostgreSQL accepts
 * (through the protocol or a quoted identifier), so no name of ours is out
 * of a client's reach; instead the session reserves the prefix `pgws` and
 * escapes every client name that starts with it before anything else sees
 * the message (an error's position in the escaped text is told in the
 * client's: escaped-texts.ts): `pgws…` becomes `pgws_…` (the rest kept).
 * Ours are `pgws` followed by a digit, an escaped client name has `_` there, and a name
 * without the prefix stays as it is, so the mapping is one-to-one and never
 * yields one of ours. Escaped are the names in Parse, Bind, Describe and
 * Close (statements) and in SQL — PREPARE, EXECUTE (also under EXPLAIN and
 * CREATE TABLE AS) and DEALLOCATE — of a simple Query or a Parse.
 *
 * What the client may notice: its escaped names appear as such where the
 * coordinator PostgreSQL reports them (pg_prepared_statements, error
 * messages), pg_prepared_statements also lists the session's own `pgws<n>`
 * statements, and a 63-byte name starting with `pgws` loses its last byte
 * to PostgreSQL's name length limit one byte earlier than it would.
 */
import { Frontend } from '../protocol/constants.js';
import { encodeMessage } from '../protocol/writer.js';
import { scanWords } from '../sql/lexer.js';
import { parseSql, type Node } from '../sql/parse.js';
import { walkTree } from '../sql/tree-walk.js';
import { quoteIdent } from '../sql/quote.js';
import { spliceText, type SplicedText, type TextEdit } from '../sql/text-splice.js';
import { RESERVED_PREFIX } from './worker-statements.js';

/** The name a client's statement has on the coordinator link. */
export function escapeStatementName(name: string): string {
  return name.startsWith(RESERVED_PREFIX) ? `${RESERVED_PREFIX}_${name.slice(RESERVED_PREFIX.length)}` : name;
}

const P = 0x70;
const G = 0x67;
const W = 0x77;
const S = 0x73;

/** Whether `buf[i…]` begins with `pgws` exactly (protocol names are case-sensitive). */
function reservedAt(buf: Buffer, i: number): boolean {
  return buf[i] === P && buf[i + 1] === G && buf[i + 2] === W && buf[i + 3] === S;
}

/** Whether `buf[start, end)` contains `word` (lower-case ASCII) in any letter case. */
function mentionsFolded(buf: Buffer, start: number, end: number, word: string): boolean {
  const first = word.charCodeAt(0);
  // Looks for the first letter (either case) natively, then compares the rest.
  for (const c of [first, first & ~0x20]) {
    for (let i = buf.indexOf(c, start); i >= 0 && i + word.length <= end; i = buf.indexOf(c, i + 1)) {
      let k = 1;
      while (k < word.length && (buf[i + k]! | 0x20) === word.charCodeAt(k)) k++;
      if (k === word.length) return true;
    }
  }
  return false;
}

/**
 * Whether a statement text needs a look by the parser: it may name a
 * reserved statement (an unquoted identifier folds to lower case), or
 * deallocate every statement (DEALLOCATE ALL, DISCARD ALL).
 */
function worthParsing(buf: Buffer, start: number, end: number): boolean {
  return mentionsFolded(buf, start, end, RESERVED_PREFIX) || mentionsFolded(buf, start, end, 'dealloc') || mentionsFolded(buf, start, end, 'discard');
}

/**
 * The client's messages in `chunk` (whole messages) with every statement
 * name escaped; the same buffer when nothing needs it (the common case:
 * a few byte comparisons per message). `onDeallocateAll` is called when a
 * Query or Parse holds DEALLOCATE ALL or DISCARD ALL, which would also
 * remove the session's statements where it runs (the coordinator link:
 * lazy-prepare.ts `forgetAllPrepared`). `onEscapedText` gets each Query
 * or Parse whose SQL changed, by the offset of its message in the returned
 * buffer, with the splice (its errors' positions map back: escaped-texts.ts).
 */
export function escapeClientStatementNames(chunk: Buffer, onDeallocateAll: () => void = () => {}, onEscapedText?: (messageAt: number, text: SplicedText) => void): Buffer {
  let pos = 0;
  let copied = 0;
  let parts: Buffer[] | null = null;
  let outLength = 0;
  let escapedText: SplicedText | null = null;
  const noteText = (t: SplicedText): void => {
    escapedText = t;
  };
  while (pos + 5 <= chunk.length) {
    const type = chunk[pos]!;
    const end = pos + 1 + chunk.readInt32BE(pos + 1);
    let replaced: Buffer | null = null;
    escapedText = null;
    if (type === Frontend.Parse) replaced = escapeParse(chunk, pos, end, onDeallocateAll, noteText);
    else if (type === Frontend.Query) replaced = escapeQuery(chunk, pos, end, onDeallocateAll, noteText);
    else if (type === Frontend.Bind) {
      const stmtStart = chunk.indexOf(0, pos + 5) + 1;
      if (stmtStart > 0 && stmtStart < end && reservedAt(chunk, stmtStart)) replaced = replaceString(chunk, pos, end, stmtStart);
    } else if ((type === Frontend.Describe || type === Frontend.Close) && pos + 6 < end && chunk[pos + 5] === 0x53 && reservedAt(chunk, pos + 6)) {
      replaced = replaceString(chunk, pos, end, pos + 6);
    }
    if (replaced) {
      (parts ??= []).push(chunk.subarray(copied, pos), replaced);
      outLength += pos - copied;
      // The statement text changed: its errors' positions map back through the splice (error-positions.ts).
      if (escapedText !== null) onEscapedText?.(outLength, escapedText);
      outLength += replaced.length;
      copied = end;
    }
    pos = end;
  }
  if (!parts) return chunk;
  parts.push(chunk.subarray(copied));
  return Buffer.concat(parts);
}

/** The message `buf[start, end)` with its null-terminated string at `at` escaped. */
function replaceString(buf: Buffer, start: number, end: number, at: number): Buffer | null {
  const stop = buf.indexOf(0, at);
  // A malformed message (no terminator inside it) goes on as it is: the session reports it.
  if (stop < 0 || stop >= end) return null;
  const name = Buffer.from(escapeStatementName(buf.toString('utf8', at, stop)), 'utf8');
  return withBody(buf[start]!, [buf.subarray(start + 5, at), name, buf.subarray(stop, end)]);
}

/** A message of `type` whose body is `body`'s parts in order (only escaped messages pay for it). */
function withBody(type: number, body: Buffer[]): Buffer {
  return encodeMessage((w) => {
    w.begin(type);
    for (const b of body) w.bytes(b);
    w.end();
  });
}

function escapeParse(buf: Buffer, start: number, end: number, onDeallocateAll: () => void, onText: (t: SplicedText) => void): Buffer | null {
  const nameEnd = buf.indexOf(0, start + 5);
  const queryEnd = nameEnd < 0 ? -1 : buf.indexOf(0, nameEnd + 1);
  if (queryEnd < 0 || queryEnd >= end) return null;
  const nameReserved = reservedAt(buf, start + 5);
  const sql = worthParsing(buf, nameEnd + 1, queryEnd) ? escapeSqlText(buf.toString('utf8', nameEnd + 1, queryEnd), onDeallocateAll) : null;
  if (!nameReserved && sql === null) return null;
  if (sql !== null) onText(sql);
  const name = nameReserved ? Buffer.from(escapeStatementName(buf.toString('utf8', start + 5, nameEnd)), 'utf8') : buf.subarray(start + 5, nameEnd);
  const query = sql === null ? buf.subarray(nameEnd + 1, queryEnd) : sql.bytes;
  return withBody(Frontend.Parse, [name, Buffer.from([0]), query, buf.subarray(queryEnd, end)]);
}

function escapeQuery(buf: Buffer, start: number, end: number, onDeallocateAll: () => void, onText: (t: SplicedText) => void): Buffer | null {
  if (!worthParsing(buf, start + 5, end - 1)) return null;
  const sql = escapeSqlText(buf.toString('utf8', start + 5, end - 1), onDeallocateAll);
  if (sql === null) return null;
  onText(sql);
  return withBody(Frontend.Query, [sql.bytes, Buffer.from([0])]);
}

/** Keywords a statement name follows: PREPARE name, EXECUTE name, DEALLOCATE [PREPARE] name. */
const NAME_KEYWORDS = new Set(['prepare', 'execute', 'deallocate']);
/** Only white space and comments between two words. */
const GAP = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*$/;

/**
 * `sql` with the reserved statement names of its PREPARE, EXECUTE and
 * DEALLOCATE statements escaped, or null when it has none. PostgreSQL's
 * parser says which names the statements use; the lexer finds them as the
 * word right after their keyword. Text that does not parse is left alone
 * (PostgreSQL reports the error). `onDeallocateAll`: called when the text
 * holds DEALLOCATE ALL or DISCARD ALL.
 */
export function escapeSql(sql: string, onDeallocateAll: () => void = () => {}): string | null {
  return escapeSqlText(sql, onDeallocateAll)?.sql ?? null;
}

/** `escapeSql` keeping the splice (its positions map back to `sql`). */
function escapeSqlText(sql: string, onDeallocateAll: () => void): SplicedText | null {
  let stmts: Node[];
  try {
    stmts = parseSql(sql).stmts.map((s) => s.stmt);
  } catch {
    return null;
  }
  const names = new Set<string>();
  let deallocatesAll = false;
  walkTree(stmts, (o) => {
    for (const k of ['PrepareStmt', 'ExecuteStmt', 'DeallocateStmt']) {
      const name = o[k]?.name;
      if (typeof name === 'string' && name.startsWith(RESERVED_PREFIX)) names.add(name);
    }
    if ((o.DeallocateStmt && typeof o.DeallocateStmt.name !== 'string') || o.DiscardStmt?.target === 'DISCARD_ALL') deallocatesAll = true;
  });
  if (deallocatesAll) onDeallocateAll();
  if (names.size === 0) return null;
  // The lexer's offsets are the string's; the splice's are UTF-8 bytes.
  const edits: TextEdit[] = [];
  let previous: { word: string; end: number } | null = null;
  scanWords(sql, (word, start, end) => {
    if (previous && NAME_KEYWORDS.has(previous.word) && names.has(word) && GAP.test(sql.slice(previous.end, start))) {
      const at = Buffer.byteLength(sql.slice(0, start));
      edits.push({ at, len: Buffer.byteLength(sql.slice(start, end)), sql: quoteIdent(escapeStatementName(word)) });
    }
    previous = { word, end };
  });
  return edits.length === 0 ? null : spliceText(Buffer.from(sql, 'utf8'), edits);
}
