/**
 * Rows a statement moves between nodes — pulls, partial and intermediate
 * results, broadcast and repartition staging, INSERT … SELECT — travel in
 * COPY's binary format whenever every column's binary form means the same
 * on both nodes. Binary COPY is exact for every type: the text form of
 * float4/float8 (and of the geometric types) follows the session's
 * extra_float_digits, so a session with 0 or less would move rounded values
 * and get results PostgreSQL would not give. The connections keep the
 * session's settings, so text a query computes itself (`f::text`, to_char,
 * format) is still the session's. Binary is also the cheaper format: no
 * float or numeric printing on the source, no parsing on the destination
 * (docs/benchmarks.md).
 *
 * A type's binary form is portable when it carries no node-local OID:
 * built-in types (OIDs below 10000 are fixed by PostgreSQL itself) with
 * binary I/O — arrays of them included — except the reg* types (their
 * binary form is the OID, their text form the name the destination
 * resolves); enums (sent by label); domains over portable types (one
 * level: a domain over a domain stays text). Not
 * portable: composite types (record_send writes each attribute's type OID),
 * arrays of user-defined types (array_send writes the element type's OID),
 * types without binary I/O, extension types. Those — and nodes whose
 * databases differ in encoding (binary text is in the server's encoding) —
 * keep the text format, printed with exact floats (`textCopyOut`).
 */
import { Frontend } from '../../protocol/constants.js';
import { encodeMessage } from '../../protocol/writer.js';
import type { BackendLink } from '../../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../../executor/link-query.js';
import type { PgError } from '../../protocol/errors.js';
import { quoteLiteral } from '../../sql/quote.js';
import { exactFloatsQuery } from '../../sql/exact-floats.js';
import { BINARY_HEADER, BINARY_TRAILER } from './copy-rows.js';

/** The COPY option list of a binary transfer, or nothing for text. */
export function copyFormat(binary: boolean): string {
  return binary ? ' (FORMAT binary)' : '';
}

/** regproc, regprocedure, regoper, regoperator, regclass, regtype, regconfig, regdictionary, regnamespace, regrole, regcollation. */
const REG_TYPES = '24, 2202, 2203, 2204, 2205, 2206, 3734, 3769, 4089, 4096, 4191';

/**
 * Whether pg_type row `y` (a domain's base type already) has a portable
 * binary form. A domain over a domain is not looked through: it stays text.
 */
function portable(y: string): string {
  return `(${y}.typtype = 'e' OR (${y}.oid < 10000 AND ${y}.typtype IN ('b', 'r', 'm') AND ${y}.typsend <> 0 AND ${y}.typreceive <> 0 ` +
    `AND (CASE WHEN ${y}.typcategory = 'A' THEN ${y}.typelem ELSE ${y}.oid END) NOT IN (${REG_TYPES})))`;
}

/** The base type of pg_type row `t` (itself unless a domain). */
function baseOf(t: string): string {
  return `CASE WHEN ${t}.typtype = 'd' THEN ${t}.typbasetype ELSE ${t}.oid END`;
}

/** Whether the type `typeOid` (an SQL expression) has a portable binary form (see the module comment). */
export function portableTypeSql(typeOid: string): string {
  // Aliases of their own: `typeOid` may name a column of an outer `t`.
  return `(SELECT ${portable('pgw_y')} FROM pg_catalog.pg_type pgw_t JOIN pg_catalog.pg_type pgw_y ON pgw_y.oid = ${baseOf('pgw_t')} WHERE pgw_t.oid = ${typeOid})`;
}

/** One boolean: whether every column of `relation` (an SQL expression of type regclass) has a portable binary form. */
export function portableColumnsSql(relation: string): string {
  return `SELECT COALESCE(pg_catalog.bool_and(${portable('y')}), true) FROM pg_catalog.pg_attribute a ` +
    `JOIN pg_catalog.pg_type t ON t.oid = a.atttypid JOIN pg_catalog.pg_type y ON y.oid = ${baseOf('t')} ` +
    `WHERE a.attrelid = ${relation} AND a.attnum > 0 AND NOT a.attisdropped`;
}

/** The session's extra_float_digits on a link, as SQL text (compare with `roundsFloats`). */
export const FLOAT_DIGITS_SQL = `pg_catalog.current_setting('extra_float_digits')`;

/** Whether text output at this extra_float_digits rounds float4/float8 (0 or less). */
export function roundsFloats(floatDigits: string | null | undefined): boolean {
  return floatDigits !== null && floatDigits !== undefined && Number(floatDigits) < 1;
}

/**
 * The source side of a text-format transfer, `COPY (…) TO STDOUT`, printing
 * exact floats on a link whose extra_float_digits (`floatDigits`, the
 * session's) rounds them (sql/exact-floats.ts: the query's rows are
 * computed first, then the setting is raised for their printing only, so
 * `f::text` in a pulled filter or a worker query keeps the session's
 * setting). `after`: the SQL setting the
 * session's value back, run on the same link once the COPY is done (the
 * link's transaction goes on; outside one the COPY's own transaction ended
 * the change already).
 */
export function textCopyOut(query: string, floatDigits: string | null): { sql: string; after: string | null } {
  if (!roundsFloats(floatDigits)) return { sql: `COPY (${query}) TO STDOUT`, after: null };
  return {
    sql: `COPY (${exactFloatsQuery('pgweave_rows', query)}) TO STDOUT`,
    after: `SELECT pg_catalog.set_config('extra_float_digits', ${quoteLiteral(floatDigits!)}, true)`,
  };
}

/**
 * Runs `stream` with the `COPY (query) TO STDOUT` of a transfer from
 * `source`: binary as it is; text with exact floats (`textCopyOut`, the
 * link asked for its extra_float_digits first), the setting set back after.
 */
export async function copyOutExactly(source: BackendLink, query: string, binary: boolean, stream: (copyOutSql: string) => Promise<PgError | null>): Promise<PgError | null> {
  if (binary) return stream(`COPY (${query}) TO STDOUT${copyFormat(true)}`);
  const digits = await queryOnLink(source, `SELECT ${FLOAT_DIGITS_SQL}`);
  if (digits.error) return digits.error;
  const { sql, after } = textCopyOut(query, decodeDataRow(digits.rows[0]!)[0] ?? null);
  const err = await stream(sql);
  if (err || !after) return err;
  return (await queryOnLink(source, after)).error;
}

/** Whether every link's database has the same encoding (binary text fields are in the server's encoding). */
export function sameEncoding(links: readonly BackendLink[]): boolean {
  const first = links[0]?.conn.parameters.get('server_encoding');
  return first !== undefined && links.every((l) => l.conn.parameters.get('server_encoding') === first);
}

/** A CopyData message of `payload`. */
export function copyData(payload: Buffer): Buffer {
  return encodeMessage((w) => w.begin(Frontend.CopyData).bytes(payload).end());
}

/** The header every binary COPY FROM starts with, as a CopyData message. */
export const BINARY_HEADER_MESSAGE = copyData(BINARY_HEADER);
/** The trailer every binary COPY FROM ends with, as a CopyData message. */
export const BINARY_TRAILER_MESSAGE = copyData(BINARY_TRAILER);

/**
 * For one binary `COPY … TO STDOUT` stream: its CopyData messages with the
 * header cut out (PostgreSQL sends it with the first row) and the trailer
 * dropped (null), so several streams concatenate into one COPY FROM between
 * one header and one trailer. Text streams pass unchanged.
 */
export function binaryBody(binary: boolean): (message: Buffer) => Buffer | null {
  let headerLeft = binary ? BINARY_HEADER.length : 0;
  return (message) => {
    if (!binary) return message;
    let s = 5;
    if (headerLeft > 0) {
      const cut = Math.min(headerLeft, message.length - s);
      headerLeft -= cut;
      s += cut;
    }
    if (message.length - s === 2 && message[s] === 0xff && message[s + 1] === 0xff) return null;
    if (s === message.length) return null;
    return s === 5 ? message : copyData(message.subarray(s));
  };
}
