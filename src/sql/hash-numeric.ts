/**
 * hash_numeric (PostgreSQL's numeric.c) and the numeric_in parsing it needs.
 *
 * PostgreSQL stores a numeric as base-10000 digits (int16 each) plus a weight
 * (the base-10000 exponent of the first digit). hash_numeric hashes the digits
 * with leading and trailing zero digits stripped, as little-endian int16s, and
 * XORs the weight in; the sign and display scale are not hashed, so 1.50 and
 * 1.5 hash alike. NaN and ±Infinity hash to 0; zero hashes to -1.
 *
 * We parse the decimal text the way numeric_in (PostgreSQL 15) does — optional
 * whitespace, sign, digits with one decimal point, an exponent — and, when the
 * column has a typmod numeric(p,s), round to s places the way apply_typmod does
 * (half away from zero), because that rounding happens before the value is
 * stored and hashed. Inputs numeric_in would reject throw
 * UnsupportedHashInputError. Scratch arrays are reused: no allocation per call
 * once warm.
 */
import { hashBytes } from './hash-any.js';
import { isDigitCode, isPgSpace, matchesWordAt, skipSpaces, UnsupportedHashInputError } from './hash-input.js';

/** numeric(precision, scale); PostgreSQL 15 allows scale in -1000..1000. */
export interface NumericTypmod {
  precision: number;
  scale: number;
}

/** Limits of the stored format (numeric.c: int16 weight, 14-bit display scale). */
const NUMERIC_WEIGHT_MIN = -32768;
const NUMERIC_WEIGHT_MAX = 32767;
const NUMERIC_DSCALE_MAX = 0x3fff;

/** Decimal digits of the value being parsed; index 0 is headroom for a rounding carry. */
let decimalDigits = new Uint8Array(256);
/** Base-10000 digits as little-endian int16s, the bytes hash_numeric hashes. */
let groupBytes = new Uint8Array(128);

/**
 * The hash PostgreSQL's hash_numeric gives the numeric whose text form is
 * `value` (after numeric(p,s) rounding when `typmod` is given). Integers may be
 * passed as bigint or as a safe-integer number.
 */
export function hashNumeric(value: string | bigint | number, typmod?: NumericTypmod): number {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'bigint') text = value.toString();
  else if (Number.isSafeInteger(value)) text = String(value);
  else throw new UnsupportedHashInputError('numeric', String(value), 'only integral JS numbers convert to numeric exactly; pass the text form');
  return hashNumericText(text, typmod);
}

function reject(text: string, reason: string): never {
  throw new UnsupportedHashInputError('numeric', text, reason);
}

/** Lengths of the special spellings numeric_in accepts, in the order it tries them. */
const SPECIAL_SPELLINGS: Array<[word: string, infinite: boolean]> = [
  ['nan', false],
  ['infinity', true],
  ['+infinity', true],
  ['-infinity', true],
  ['inf', true],
  ['+inf', true],
  ['-inf', true],
];

function hashNumericText(text: string, typmod: NumericTypmod | undefined): number {
  let i = skipSpaces(text, 0);

  for (const [word, infinite] of SPECIAL_SPELLINGS) {
    if (matchesWordAt(text, i, word)) {
      if (skipSpaces(text, i + word.length) !== text.length) reject(text, 'invalid input syntax for type numeric');
      if (infinite && typmod) reject(text, 'numeric with a typmod cannot hold an infinite value');
      return 0; // hash_numeric: NaN and infinities hash to 0
    }
  }

  if (text.charCodeAt(i) === 43 /* + */ || text.charCodeAt(i) === 45 /* - */) i++;
  if (decimalDigits.length < text.length + 2) decimalDigits = new Uint8Array(text.length * 2 + 2);
  const d = decimalDigits;
  d[0] = 0;
  let n = 1; // next free index in d
  let pointIndex = -1; // index in d of the first fractional digit
  let fractionDigits = 0;
  if (text.charCodeAt(i) === 46 /* . */) {
    pointIndex = n;
    i++;
  }
  if (!isDigitCode(text.charCodeAt(i))) reject(text, 'invalid input syntax for type numeric');
  for (; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (isDigitCode(code)) {
      d[n++] = code - 48;
      if (pointIndex >= 0) fractionDigits++;
    } else if (code === 46 && pointIndex < 0) {
      pointIndex = n;
    } else break;
  }
  if (pointIndex < 0) pointIndex = n;

  let exponent = 0;
  const e = text.charCodeAt(i);
  if (e === 101 || e === 69) {
    // numeric_in reads the exponent with strtol, which would also skip spaces
    // after the 'e'; we accept only the plain [+-]digits form.
    i++;
    let negative = false;
    const sign = text.charCodeAt(i);
    if (sign === 43 || sign === 45) {
      negative = sign === 45;
      i++;
    }
    if (!isDigitCode(text.charCodeAt(i))) reject(text, 'exponent form not supported');
    for (; i < text.length && isDigitCode(text.charCodeAt(i)); i++) {
      exponent = exponent * 10 + (text.charCodeAt(i) - 48);
      if (exponent > 1e9) reject(text, 'value overflows numeric format');
    }
    if (negative) exponent = -exponent;
  }
  for (; i < text.length; i++) if (!isPgSpace(text.charCodeAt(i))) reject(text, 'invalid input syntax for type numeric');

  // Digit d[j] stands for d[j] × 10^(point - 1 - j).
  const point = pointIndex + exponent;
  const dscale = Math.max(0, fractionDigits - exponent);
  let first = 1;
  let end = n;
  while (first < end && d[first] === 0) first++;
  while (end > first && d[end - 1] === 0) end--;

  // numeric_in applies a typmod before checking the storage limits, but a Bind
  // parameter or a cast is parsed without the typmod first; decline both ways.
  if (dscale > NUMERIC_DSCALE_MAX) reject(text, 'value overflows numeric format');

  if (typmod) {
    const cutoff = point + typmod.scale; // digits at index >= cutoff are rounded away
    if (cutoff < end) {
      const roundUp = cutoff >= first && d[cutoff]! >= 5;
      end = Math.max(cutoff, first);
      if (roundUp) {
        let j = cutoff - 1;
        while (d[j] === 9) d[j--] = 0;
        d[j] = d[j]! + 1;
        if (j < first) first = j;
      }
      while (end > first && d[end - 1] === 0) end--;
    }
    if (end > first && point - first > typmod.precision - typmod.scale) reject(text, 'numeric field overflow');
  }

  if (end === first) return -1; // hash_numeric: zero hashes to (uint32) -1
  return hashDecimalDigits(text, d, first, end, point);
}

/**
 * Groups decimal digits d[first, end) (non-zero at both ends, d[j] worth
 * 10^(point-1-j)) into base-10000 digits and hashes them as hash_numeric does.
 */
function hashDecimalDigits(text: string, d: Uint8Array, first: number, end: number, point: number): number {
  const firstExponent = point - 1 - first;
  const lastExponent = point - end;
  const weight = Math.floor(firstExponent / 4);
  if (weight < NUMERIC_WEIGHT_MIN || weight > NUMERIC_WEIGHT_MAX) reject(text, 'value overflows numeric format');
  const groups = weight - Math.floor(lastExponent / 4) + 1;
  if (groupBytes.length < groups * 2) groupBytes = new Uint8Array(groups * 4);
  const out = groupBytes;
  let group = 0;
  let groupIndex = 0;
  let currentWeight = weight;
  for (let j = first; j < end; j++) {
    const exp = point - 1 - j;
    const w = Math.floor(exp / 4);
    if (w !== currentWeight) {
      // Flush finished groups, including all-zero ones between non-zero digits.
      while (currentWeight > w) {
        out[groupIndex * 2] = group & 0xff;
        out[groupIndex * 2 + 1] = group >>> 8;
        groupIndex++;
        group = 0;
        currentWeight--;
      }
    }
    group += d[j]! * POWERS_OF_TEN[exp - w * 4]!;
  }
  out[groupIndex * 2] = group & 0xff;
  out[groupIndex * 2 + 1] = group >>> 8;
  groupIndex++;
  return (hashBytes(out, 0, groupIndex * 2) ^ weight) | 0;
}

const POWERS_OF_TEN = [1, 10, 100, 1000];
