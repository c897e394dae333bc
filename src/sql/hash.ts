/**
 * PostgreSQL's hash functions, bit-exact, for the types a table can be
 * distributed by — the entry point the router and COPY use.
 *
 * Citus-compatible hash distribution puts a row in the shard whose range holds
 * the value's hash under the column type's default hash opclass (support
 * function 1). Workers must be able to compute the same hash in SQL, and a
 * Citus user's layout must be identical here, so we reproduce PostgreSQL's own
 * functions (DESIGN.md decision 3) and test them against a real server.
 *
 * Two ways in:
 *   - typed functions (hashInt4, hashInt8, hashText, hashUuid, hashNumeric,
 *     hashDate, hashTimestamp…) for values the caller already holds;
 *   - hashDistributionValue(typeName, text) for a value in PostgreSQL's text
 *     input form (a SQL literal, a text-format Bind parameter), parsed as the
 *     type's input function would. Forms we cannot parse exactly throw
 *     UnsupportedHashInputError: ask PostgreSQL (`SELECT hashtext($1)`…) then.
 *
 * Files: hash-any.ts (Jenkins hash_any / hash_uint32), hash-integer.ts,
 * hash-text.ts (text, bpchar, name, uuid, bool, "char"), hash-numeric.ts,
 * hash-datetime.ts, hash-input.ts (shared parsing helpers, the error type).
 */
import { parseDate, parseTimestamp, hashDate, hashTimestamp, type DateTimeInputOptions } from './hash-datetime.js';
import { UnsupportedHashInputError } from './hash-input.js';
import { hashInt4, hashInt8, hashOid, parseInt8Text, parseOidText, parseSmallIntegerText } from './hash-integer.js';
import { hashNumeric, type NumericTypmod } from './hash-numeric.js';
import { hashBool, hashBpchar, hashChar, hashName, hashText, hashUuid, parseBool, parseCharByte } from './hash-text.js';

export { hashBytes, hashUint32 } from './hash-any.js';
export { UnsupportedHashInputError } from './hash-input.js';
export { hashInt2, hashInt4, hashInt8, hashOid } from './hash-integer.js';
export { hashBool, hashBpchar, hashChar, hashName, hashText, hashUuid, parseUuid } from './hash-text.js';
export { hashNumeric, type NumericTypmod } from './hash-numeric.js';
export {
  hashDate,
  hashTimestamp,
  dateToPgDays,
  dateToPgTimestamp,
  parseDate,
  parseTimestamp,
  type DateTimeInputOptions,
} from './hash-datetime.js';

/** The distribution column types we hash, by their pg_type name. */
export type HashableTypeName =
  | 'int2' | 'int4' | 'int8' | 'oid' | 'bool' | 'char'
  | 'text' | 'varchar' | 'bpchar' | 'name' | 'uuid'
  | 'numeric' | 'date' | 'timestamp' | 'timestamptz' | 'citext';

/** Options that affect how some text input is read. */
export type HashInputOptions = DateTimeInputOptions;

/** Hashes one value in text input form. */
export type DistributionValueHasher = (text: string, options?: HashInputOptions) => number;

/** A distribution column type: its pg_type name and type modifiers, e.g. numeric(10,2). */
export interface HashableType {
  name: HashableTypeName;
  typmods: number[];
}

/** Spellings PostgreSQL accepts for each type (lower case, single spaces). */
const TYPE_ALIASES: Record<string, HashableTypeName> = {
  int2: 'int2', smallint: 'int2', smallserial: 'int2', serial2: 'int2',
  int4: 'int4', integer: 'int4', int: 'int4', serial: 'int4', serial4: 'int4',
  int8: 'int8', bigint: 'int8', bigserial: 'int8', serial8: 'int8',
  oid: 'oid',
  bool: 'bool', boolean: 'bool',
  '"char"': 'char',
  text: 'text',
  varchar: 'varchar', 'character varying': 'varchar', 'char varying': 'varchar',
  bpchar: 'bpchar', character: 'bpchar',
  name: 'name',
  uuid: 'uuid',
  numeric: 'numeric', decimal: 'numeric', dec: 'numeric',
  date: 'date',
  timestamp: 'timestamp', 'timestamp without time zone': 'timestamp',
  timestamptz: 'timestamptz', 'timestamp with time zone': 'timestamptz',
};

const TYPE_NAME_PATTERN = /^(?:pg_catalog\.)?("char"|[a-z][a-z0-9_]*(?: [a-z]+)*?)(?: ?\(([-0-9, ]*)\))?( with(?:out)? time zone)?$/;

/**
 * Resolves a type name as written in SQL, by format_type(), or as pg_type's
 * typname: 'integer', 'bigserial', 'character varying(20)', 'numeric(10,2)',
 * 'timestamp(3) with time zone', 'pg_catalog.int8'… A bare `char` means
 * pg_type's "char" (the one-byte type), as in the catalogs; `char(n)` and
 * `character` mean bpchar, as in SQL. Throws UnsupportedHashInputError for
 * types we do not hash (arrays, domains, enums, floats…).
 */
export function resolveHashableType(typeName: string): HashableType {
  const normalized = typeName.trim().replace(/\s+/g, ' ').toLowerCase();
  const match = TYPE_NAME_PATTERN.exec(normalized);
  const fail = (reason: string): never => {
    throw new UnsupportedHashInputError(typeName, '', reason);
  };
  // The citext extension's type, in whatever schema the extension lives.
  if (/^(?:[a-z_][a-z0-9_$]*\.)?citext$/.test(normalized)) return { name: 'citext', typmods: [] };
  if (!match) fail('not a type name we hash');
  let base = match![1]!;
  const mods = match![2];
  const zone = match![3];
  if (zone) {
    if (base !== 'timestamp') fail('not a type name we hash');
    base += zone;
  }
  if (base === 'char') base = mods === undefined ? '"char"' : 'character';
  const name = TYPE_ALIASES[base];
  if (!name) fail('no hash support for this type; ask PostgreSQL');
  const typmods = mods === undefined ? [] : mods.split(',').map((m) => Number(m.trim()));
  if (typmods.some((m) => !Number.isInteger(m))) fail('invalid type modifier');
  validateTypmods(name!, typmods, fail);
  return { name: name!, typmods };
}

function validateTypmods(name: HashableTypeName, typmods: number[], fail: (reason: string) => never): void {
  if (typmods.length === 0) return;
  switch (name) {
    case 'numeric': {
      const [precision, scale = 0] = typmods;
      if (typmods.length > 2 || precision! < 1 || precision! > 1000 || scale < -1000 || scale > 1000) fail('invalid numeric type modifier');
      return;
    }
    case 'varchar':
    case 'bpchar':
      if (typmods.length > 1 || typmods[0]! < 1 || typmods[0]! > 10485760) fail('invalid length modifier');
      return;
    case 'timestamp':
    case 'timestamptz':
      if (typmods.length > 1 || typmods[0]! < 0) fail('invalid timestamp precision');
      return;
    default:
      fail('this type takes no modifier');
  }
}

/** Counts code points (PostgreSQL's character length of a UTF8 string). */
function characterLength(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0xd800 || code > 0xdbff) count++; // a high surrogate is counted with its low half
  }
  return count;
}

/** Length of `text` without trailing blanks (U+0020). */
function withoutTrailingBlanks(text: string): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 32) end--;
  return end;
}

/** Builds the hasher of text input for one resolved type. */
export function makeDistributionValueHasher(type: HashableType): DistributionValueHasher {
  switch (type.name) {
    case 'int2':
      return (text) => hashInt4(parseSmallIntegerText('int2', text));
    case 'int4':
      return (text) => hashInt4(parseSmallIntegerText('int4', text));
    case 'int8':
      return (text) => hashInt8(parseInt8Text(text));
    case 'oid':
      return (text) => hashOid(parseOidText(text));
    case 'bool':
      return (text) => hashBool(parseBool(text));
    case 'char':
      return (text) => hashChar(parseCharByte(text));
    case 'text':
    case 'name':
      return type.name === 'text' ? hashText : hashName;
    case 'varchar': {
      const maxLength = type.typmods[0];
      if (maxLength === undefined) return hashText;
      return (text) => {
        // varchar(n) silently truncates excess blanks in an INSERT but not in a
        // comparison; the caller's context decides, so let PostgreSQL decide.
        if (characterLength(text) > maxLength) throw new UnsupportedHashInputError('varchar', text, `longer than varchar(${maxLength})`);
        return hashText(text);
      };
    }
    case 'bpchar': {
      const maxLength = type.typmods[0];
      if (maxLength === undefined) return hashBpchar;
      return (text) => {
        // bpchar(n) drops excess blanks and hashing ignores trailing blanks, so
        // only the non-blank part must fit; longer values are an error in PostgreSQL.
        const end = withoutTrailingBlanks(text);
        if (characterLength(end === text.length ? text : text.slice(0, end)) > maxLength) {
          throw new UnsupportedHashInputError('bpchar', text, `longer than character(${maxLength})`);
        }
        return hashBpchar(text);
      };
    }
    case 'uuid':
      return hashUuid;
    case 'citext':
      // citext_hash: hash_any of the value lowercased under the database's
      // default collation. Only ASCII is reproduced (A-Z → a-z, as in every
      // locale but Turkish and Azeri); anything else goes to PostgreSQL.
      return (text) => {
        if (/[^\x00-\x7f]/.test(text)) throw new UnsupportedHashInputError('citext', text, 'non-ASCII citext values are lowercased by the server locale');
        return hashText(text.toLowerCase());
      };
    case 'numeric': {
      const typmod: NumericTypmod | undefined =
        type.typmods.length === 0 ? undefined : { precision: type.typmods[0]!, scale: type.typmods[1] ?? 0 };
      return (text) => hashNumeric(text, typmod);
    }
    case 'date':
      return (text) => hashDate(parseDate(text));
    case 'timestamp':
    case 'timestamptz': {
      const withTimeZone = type.name === 'timestamptz';
      const precision = type.typmods[0];
      return (text, options) => hashTimestamp(parseTimestamp(text, withTimeZone, precision, options));
    }
  }
}

/** Hashers by the type name the caller used; type names are few, so this stays small. */
const hasherCache = new Map<string, DistributionValueHasher>();

/** The hasher for a type name, resolved once and cached. */
export function distributionValueHasher(typeName: string): DistributionValueHasher {
  let hasher = hasherCache.get(typeName);
  if (!hasher) {
    hasher = makeDistributionValueHasher(resolveHashableType(typeName));
    if (hasherCache.size < 1000) hasherCache.set(typeName, hasher);
  }
  return hasher;
}

/**
 * The hash PostgreSQL's default hash opclass gives the value of type
 * `typeName` whose text input form is `text` — what Citus-style distribution
 * places rows by. Throws UnsupportedHashInputError when the type or the input
 * form is not one we reproduce exactly (or PostgreSQL would reject it).
 */
export function hashDistributionValue(typeName: string, text: string, options?: HashInputOptions): number {
  return distributionValueHasher(typeName)(text, options);
}

/**
 * What the catalog's pgweave.hash_function names for types whose hash
 * support function SQL cannot call on the type itself (date → hashint4,
 * bool → hashchar, timestamptz → timestamp_hash, bytea → hashvarlena).
 */
export const ELEMENT_HASH_FUNCTION = 'pgweave.element_hash';

/**
 * SQL computing PostgreSQL's hash of `valueSql` with a table's hash function
 * (DistributedTable.hashFunction). For ELEMENT_HASH_FUNCTION the expression is
 * inlined — hash_array of a one-element array is 31 + h modulo 2^32, and
 * hash_array calls the element type's own hash support function — so it runs
 * on any node and as any role; NULL stays NULL.
 */
export function hashCallSql(hashFunction: string, valueSql: string): string {
  if (hashFunction !== ELEMENT_HASH_FUNCTION) return `${hashFunction}(${valueSql})`;
  return (
    `(CASE WHEN (${valueSql}) IS NULL THEN NULL ELSE ` +
    `(((pg_catalog.hash_array(ARRAY[(${valueSql})])::int8 + 2147483617) % 4294967296 + 4294967296) % 4294967296 - 2147483648)::int4 END)`
  );
}
