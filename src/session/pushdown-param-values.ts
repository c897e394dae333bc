/**
 * The values of a prepared statement's parameters as typed SQL literals,
 * for a pushdown whose worker queries cannot take Bind parameters
 * (planner/pushdown-params.ts). PostgreSQL decides both halves:
 *   - the types: the coordinator PostgreSQL parses the client's statement
 *     over its own (empty) copies of the tables and describes it — the
 *     types the client declared, the rest inferred exactly as a worker
 *     would; asked once per prepared statement;
 *   - the values: text-format values are the text the type's input
 *     function reads; binary-format ones are turned into that text by the
 *     coordinator (`SELECT $1::text, …` bound with the client's bytes and
 *     formats), so no binary format is decoded here — but float4 and
 *     float8: their text there follows the session's extra_float_digits
 *     (0 or less rounds them), so their eight or four bytes are read here
 *     and written as the shortest text that reads back the same value.
 */
import { Backend } from '../protocol/constants.js';
import { Frontend } from '../protocol/constants.js';
import { PgError } from '../protocol/errors.js';
import { encodeMessage } from '../protocol/writer.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import { paramFormat, type BindMessage } from '../protocol/frontend/bind.js';
import { Completes, type BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { typedLiteral } from '../planner/pushdown-params.js';
import { encodeClose, encodeDescribe, encodeExecute, encodeParse, encodeSync } from './extended-encoders.js';
import { RESERVED_PREFIX } from './worker-statements.js';

export interface ParamTypes {
  oids: number[];
  /** Each type's qualified, quoted name (`pg_catalog."int4"`): no length or precision implied. */
  names: string[];
}

/**
 * The probe's name on the coordinator link, where the client's forwarded statements live too: under
 * the reserved prefix (client names with it are escaped, client-statement-names.ts), and `pgws0` is
 * one no statement text gets (worker-statements.ts counts from 1).
 */
const PROBE = `${RESERVED_PREFIX}0`;

/** Sends `bytes` (ending in Sync) and collects ParameterDescription, DataRows and the first error. */
function exchange(link: BackendLink, bytes: Buffer): Promise<{ oids: number[]; rows: Buffer[]; error: PgError | null }> {
  return new Promise((resolve) => {
    const out = { oids: [] as number[], rows: [] as Buffer[], error: null as PgError | null };
    link.collector = (type, buf, start, end) => {
      if (type === Backend.ParameterDescription) {
        const n = buf.readInt16BE(start + 5);
        for (let i = 0; i < n; i++) out.oids.push(buf.readUInt32BE(start + 7 + 4 * i));
      } else if (type === Backend.DataRow) out.rows.push(Buffer.from(buf.subarray(start, end)));
      else if (type === Backend.ErrorResponse) out.error ??= readErrorResponse(buf, start, end);
    };
    link.send(bytes, [{
      completes: Completes.Ready,
      forward: false,
      done: (err) => {
        link.collector = null;
        if (err && !out.error) out.error = err;
        resolve(out);
      },
    }]);
  });
}

/** The parameter types PostgreSQL gives the statement (declared ones kept, the others inferred). */
export async function inferParamTypes(coordinator: BackendLink, query: string, declared: readonly number[]): Promise<ParamTypes | PgError> {
  const described = await exchange(coordinator, Buffer.concat([
    encodeParse(PROBE, query, declared), encodeDescribe('S', PROBE), encodeClose('S', PROBE), encodeSync(),
  ]));
  if (described.error) return described.error;
  if (described.oids.length === 0) return { oids: [], names: [] };
  // Schema and type name, both quoted: `format_type` writes SQL's spelling, and `'101'::bit` or
  // `'abc'::character` would mean bit(1) and char(1), cutting the value; `pg_catalog."bit"` has no length.
  const named = await queryOnLink(coordinator,
    `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(ty.typname)
       FROM unnest(ARRAY[${described.oids.join(', ')}]::pg_catalog.oid[]) WITH ORDINALITY t(oid, i)
       JOIN pg_catalog.pg_type ty ON ty.oid = t.oid JOIN pg_catalog.pg_namespace n ON n.oid = ty.typnamespace ORDER BY t.i`);
  if (named.error) return named.error;
  return { oids: described.oids, names: named.rows.map((r) => decodeDataRow(r)[0] ?? 'text') };
}

/** A Bind of the client's parameter values and formats to `statement`, results in text. */
function encodeBindValues(statement: string, bind: BindMessage): Buffer {
  return encodeMessage((w) => {
    w.begin(Frontend.Bind).cstring('').cstring(statement).int16(bind.paramFormats.length);
    for (const f of bind.paramFormats) w.int16(f);
    w.int16(bind.params.length);
    for (const p of bind.params) {
      if (p === null) w.int32(-1);
      else w.int32(p.length).bytes(p);
    }
    w.int16(0).end();
  });
}

/** Each parameter's value as a typed literal, in parameter order. */
export async function paramLiterals(coordinator: BackendLink, bind: BindMessage, types: ParamTypes): Promise<string[] | PgError> {
  if (bind.params.length !== types.oids.length) {
    return new PgError({ code: '08P01', message: `bind message supplies ${bind.params.length} parameters, but prepared statement requires ${types.oids.length}` });
  }
  let texts: Array<string | null> = bind.params.map((p, i) => (p === null ? null : paramFormat(bind, i) === 0 ? p.toString('utf8') : exactFloatText(p, types.oids[i]!)));
  if (bind.params.some((p, i) => p !== null && texts[i] === null)) {
    const select = `SELECT ${types.oids.map((_, i) => `$${i + 1}::pg_catalog.text`).join(', ')}`;
    const r = await exchange(coordinator, Buffer.concat([
      encodeParse(PROBE, select, types.oids), encodeBindValues(PROBE, bind), encodeExecute('', 0), encodeClose('S', PROBE), encodeSync(),
    ]));
    if (r.error) return r.error;
    const converted = decodeDataRow(r.rows[0]!);
    texts = texts.map((t, i) => t ?? converted[i]!);
  }
  return texts.map((v, i) => typedLiteral(v, types.names[i]!));
}

const FLOAT4 = 700;
const FLOAT8 = 701;

/** A binary float4/float8 value as exact text (JavaScript's shortest round-trip form, which float4in/float8in read), else null. */
function exactFloatText(bytes: Buffer, oid: number): string | null {
  const n = oid === FLOAT8 && bytes.length === 8 ? bytes.readDoubleBE(0) : oid === FLOAT4 && bytes.length === 4 ? bytes.readFloatBE(0) : null;
  if (n === null) return null;
  if (Number.isNaN(n)) return 'NaN';
  if (Object.is(n, -0)) return '-0';
  return String(n);
}
