/**
 * Distribution column values of a binary COPY, hashed from their binary
 * (send/recv) form: integers, oid, bool, text-like types and uuid straight
 * from the bytes; numeric turned into its text form and hashed as text input
 * (so the column's typmod rounds it exactly as numeric_recv would); date and
 * timestamp (without a precision modifier) from their day/microsecond counts.
 * Other types cannot be hashed from binary here: such a COPY is refused.
 */
import { PgError } from '../../protocol/errors.js';
import {
  hashBool, hashBpchar, hashDate, hashInt2, hashInt4, hashInt8, hashName, hashOid, hashText, hashTimestamp, hashUuid,
  type DistributionValueHasher,
} from '../../sql/hash.js';

export type BinaryHasher = (buf: Buffer, start: number, end: number) => number;

/** The hasher for a distribution column of base type `typeOid` (sqlType: format_type text). */
export function binaryHasher(typeOid: number, sqlType: string, textHasher: DistributionValueHasher | null): BinaryHasher {
  switch (typeOid) {
    case 21:
      return (b, s) => hashInt2(b.readInt16BE(s));
    case 23:
      return (b, s) => hashInt4(b.readInt32BE(s));
    case 20:
      return (b, s) => hashInt8(b.readBigInt64BE(s));
    case 26:
      return (b, s) => hashOid(b.readUInt32BE(s));
    case 16:
      return (b, s) => hashBool(b[s] !== 0);
    case 25:
      return (b, s, e) => hashText(b.subarray(s, e));
    case 1043:
      if (textHasher && /\(/.test(sqlType)) return (b, s, e) => textHasher(b.toString('utf8', s, e));
      return (b, s, e) => hashText(b.subarray(s, e));
    case 1042:
      return (b, s, e) => hashBpchar(b.subarray(s, e));
    case 19:
      return (b, s, e) => hashName(b.subarray(s, e));
    case 2950:
      return (b, s, e) => hashUuid(b.subarray(s, e));
    case 1082:
      return (b, s) => hashDate(b.readInt32BE(s));
    case 1114:
    case 1184:
      if (!/\(/.test(sqlType)) return (b, s) => hashTimestamp(b.readBigInt64BE(s));
      break;
    case 1700:
      if (textHasher) return (b, s, e) => textHasher(numericText(b, s, e));
      break;
    default:
      break;
  }
  throw new PgError({
    code: '0A000',
    message: `binary COPY into a table distributed by a column of type ${sqlType} is not supported`,
    hint: 'Use COPY in text or CSV format.',
  });
}

/** numeric_send's form as numeric_out's text. */
export function numericText(b: Buffer, s: number, _e: number): string {
  const ndigits = b.readInt16BE(s);
  const weight = b.readInt16BE(s + 2);
  const sign = b.readUInt16BE(s + 4);
  const dscale = b.readInt16BE(s + 6);
  if (sign === 0xc000) return 'NaN';
  if (sign === 0xd000) return 'Infinity';
  if (sign === 0xf000) return '-Infinity';
  const digits: number[] = [];
  for (let i = 0; i < ndigits; i++) digits.push(b.readInt16BE(s + 8 + 2 * i));
  // integer part: base-10000 digits 0..weight
  let intPart = '';
  for (let i = 0; i <= weight; i++) {
    const d = i < ndigits ? digits[i] : 0;
    intPart += i === 0 ? String(d) : String(d).padStart(4, '0');
  }
  if (intPart === '') intPart = '0';
  let frac = '';
  for (let i = weight + 1; frac.length < dscale; i++) {
    const d = i >= 0 && i < ndigits ? digits[i] : 0;
    frac += String(d).padStart(4, '0');
  }
  frac = frac.slice(0, dscale);
  return (sign === 0x4000 ? '-' : '') + intPart + (dscale > 0 ? '.' + frac : '');
}
