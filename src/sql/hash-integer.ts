/**
 * hashint2, hashint4, hashint8 and hashoid (PostgreSQL's hashfunc.c) and the
 * integer input syntax of int2in/int4in/int8in/oidin.
 *
 * int2 and int4 hash the sign-extended 32-bit value, so equal values of
 * different integer widths hash alike; int8 folds its high half into the low
 * half (complemented for negatives) so that int8 values inside the int4 range
 * hash like the int4. Integer distribution keys are the router's hot path:
 * numbers go through without allocating; bigints through one shared DataView.
 */
import { hashUint32 } from './hash-any.js';
import { isDigitCode, isPgSpace, skipSpaces, UnsupportedHashInputError } from './hash-input.js';

const TWO_32 = 4294967296;
const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;
const int64View = new DataView(new ArrayBuffer(8));

/** hashint4 of an int32. */
export function hashInt4(v: number): number {
  if ((v | 0) !== v) throw new RangeError(`hashInt4: ${v} is not an int32`);
  return hashUint32(v);
}

/** hashint2 of an int16 (the same as hashint4 of that value). */
export function hashInt2(v: number): number {
  if ((v << 16) >> 16 !== v) throw new RangeError(`hashInt2: ${v} is not an int16`);
  return hashUint32(v);
}

/** hashint8 of an int64, given as a bigint or as a safe-integer number. */
export function hashInt8(v: bigint | number): number {
  let lo: number;
  let hi: number;
  let negative: boolean;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`hashInt8: ${v} is not a safe integer; pass a bigint`);
    hi = Math.floor(v / TWO_32); // val >> 32 (arithmetic)
    lo = v - hi * TWO_32; // (uint32) val
    negative = v < 0;
  } else {
    if (v < INT8_MIN || v > INT8_MAX) throw new RangeError(`hashInt8: ${v} is not an int64`);
    int64View.setBigInt64(0, v, true);
    lo = int64View.getUint32(0, true);
    hi = int64View.getInt32(4, true);
    negative = v < 0n;
  }
  return hashUint32(lo ^ (negative ? ~hi : hi));
}

/** hashoid of an oid (uint32). */
export function hashOid(v: number): number {
  if (!Number.isInteger(v) || v < 0 || v >= TWO_32) throw new RangeError(`hashOid: ${v} is not a uint32`);
  return hashUint32(v | 0);
}

/**
 * The value of int2in/int4in/int8in's syntax — optional spaces, sign, decimal
 * digits, optional spaces — or null when the text is not in that form. Large
 * magnitudes come back as bigint. (PostgreSQL 16 also accepts 0x/0o/0b prefixes
 * and '_' separators; those return null here, so the caller asks PostgreSQL.)
 */
function parseIntegerText(text: string): number | bigint | null {
  let i = skipSpaces(text, 0);
  let negative = false;
  const sign = text.charCodeAt(i);
  if (sign === 45 || sign === 43) {
    negative = sign === 45;
    i++;
  }
  const digitsStart = i;
  let value = 0;
  while (i < text.length && isDigitCode(text.charCodeAt(i))) {
    value = value * 10 + (text.charCodeAt(i) - 48);
    i++;
  }
  const digitsEnd = i;
  if (digitsEnd === digitsStart) return null;
  for (; i < text.length; i++) if (!isPgSpace(text.charCodeAt(i))) return null;
  if (value <= Number.MAX_SAFE_INTEGER) return negative ? -value : value;
  const big = BigInt(text.slice(digitsStart, digitsEnd));
  return negative ? -big : big;
}

/** int2in / int4in: the value, or UnsupportedHashInputError for bad syntax or overflow. */
export function parseSmallIntegerText(typeName: 'int2' | 'int4', text: string): number {
  const value = parseIntegerText(text);
  if (value === null) throw new UnsupportedHashInputError(typeName, text, 'invalid input syntax for an integer');
  const limit = typeName === 'int2' ? 32768 : 2147483648;
  if (typeof value !== 'number' || value < -limit || value >= limit) {
    throw new UnsupportedHashInputError(typeName, text, 'value out of range');
  }
  return value;
}

/** int8in: the value (a number when safe, else a bigint). */
export function parseInt8Text(text: string): number | bigint {
  const value = parseIntegerText(text);
  if (value === null) throw new UnsupportedHashInputError('int8', text, 'invalid input syntax for type bigint');
  if (typeof value === 'bigint' && (value < INT8_MIN || value > INT8_MAX)) {
    throw new UnsupportedHashInputError('int8', text, 'value out of range for type bigint');
  }
  return value;
}

/**
 * oidin: strtoul syntax (spaces, sign, digits, trailing spaces). A minus sign
 * is accepted for magnitudes up to 2^31 and wraps, as oidin allows for
 * backward compatibility: '-1' is 4294967295.
 */
export function parseOidText(text: string): number {
  const value = parseIntegerText(text);
  if (value === null) throw new UnsupportedHashInputError('oid', text, 'invalid input syntax for type oid');
  if (typeof value !== 'number' || value >= TWO_32 || value < -2147483648) {
    throw new UnsupportedHashInputError('oid', text, 'value out of range for type oid');
  }
  return value < 0 ? value + TWO_32 : value === 0 ? 0 : value; // -0 → 0
}
