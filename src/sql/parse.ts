/**
 * PostgreSQL's own parser (libpg-query, compiled from PostgreSQL's source),
 * with a bounded cache: applications repeat the same statement texts, and a
 * parse costs tens of microseconds. Parse errors become PgErrors with the
 * SQLSTATE and cursor position PostgreSQL would report.
 */
import { loadModule, parseSync } from 'libpg-query';
import { PgError } from '../protocol/errors.js';

/* The parse tree is PostgreSQL's node tree as JSON: typed loosely on purpose. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Node = any;

export interface RawStatement {
  stmt: Node;
  /** Byte... character offset of the statement in the query string. */
  stmt_location?: number;
  stmt_len?: number;
}

export interface ParseResult {
  stmts: RawStatement[];
}

let loaded: Promise<void> | null = null;

/** Loads the parser's WebAssembly module; call once before parseSql. */
export function initParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

const CACHE_SIZE = 2000;
const cache = new Map<string, ParseResult>();

export function parseSql(sql: string): ParseResult {
  const hit = cache.get(sql);
  if (hit) return hit;
  let result: ParseResult;
  try {
    result = parseSync(sql) as ParseResult;
  } catch (err) {
    const e = err as Error & { sqlDetails?: { cursorPosition?: number; message?: string } };
    const pos = e.sqlDetails?.cursorPosition;
    throw new PgError({
      code: '42601',
      message: e.sqlDetails?.message ?? e.message,
      position: pos !== undefined ? String(pos + 1) : undefined,
    });
  }
  result.stmts ??= [];
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  cache.set(sql, result);
  return result;
}

/** The source text of statement i of a multi-statement string (locations are UTF-8 byte offsets). */
export function statementText(sql: string, s: RawStatement): string {
  const start = s.stmt_location ?? 0;
  if (Buffer.byteLength(sql, 'utf8') === sql.length) return s.stmt_len ? sql.slice(start, start + s.stmt_len) : sql.slice(start);
  const bytes = Buffer.from(sql, 'utf8');
  return (s.stmt_len ? bytes.subarray(start, start + s.stmt_len) : bytes.subarray(start)).toString('utf8');
}
