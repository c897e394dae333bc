/**
 * Hashes of date, timestamp and timestamptz, and the subset of PostgreSQL's
 * date/time input syntax we can parse exactly.
 *
 * PostgreSQL stores a date as int32 days since 2000-01-01 and hashes it with
 * hashint4; timestamp and timestamptz are int64 microseconds since
 * 2000-01-01 00:00:00 (UTC for timestamptz), hashed with timestamp_hash, which
 * is hashint8. ±infinity are INT32/INT64 MIN and MAX.
 *
 * PostgreSQL's date/time parser (datetime.c) accepts a huge grammar that
 * depends on DateStyle, the session TimeZone and the timezone_abbreviations
 * file. We accept only forms whose meaning depends on none of these:
 *   - 'infinity', '-infinity', 'epoch' (any case, surrounding spaces);
 *   - YYYY-M[M]-D[D] with a 4-digit year, optionally followed (after spaces or
 *     'T') by H[H]:M[M][:S[S][.fraction]], then optionally a zone (Z, UTC, GMT,
 *     ±H[H][[:]MM[:SS]]), then optionally AD or BC.
 * A timestamptz without a zone is in the session TimeZone: we hash it only when
 * the caller tells us that zone is UTC (sessionTimeZone). Everything else
 * ('now', 'today', zone names, other DateStyles, 5-digit years…) throws
 * UnsupportedHashInputError and the caller asks PostgreSQL.
 */
import { hashUint32 } from './hash-any.js';
import { hashInt8 } from './hash-integer.js';
import { isDigitCode, isPgSpace, matchesWordAt, rangeEqualsWord, skipSpaces, trimmedEnd, UnsupportedHashInputError } from './hash-input.js';

export const DATE_NEG_INFINITY = -2147483648;
export const DATE_POS_INFINITY = 2147483647;
export const TIMESTAMP_NEG_INFINITY = -(2n ** 63n);
export const TIMESTAMP_POS_INFINITY = 2n ** 63n - 1n;

const POSTGRES_EPOCH_JDATE = 2451545; // date2j(2000, 1, 1)
const UNIX_EPOCH_DAYS = -10957; // 1970-01-01 as a PostgreSQL date
const USECS_PER_DAY = 86_400_000_000n;
const USECS_PER_SEC = 1_000_000;
/** timestamp.h: 4714-11-24 00:00:00 BC and 294277-01-01 00:00:00 as microseconds since 2000. */
const MIN_TIMESTAMP = -211813488000000000n;
const END_TIMESTAMP = 9223371331200000000n;
const MAX_TZDISP_HOUR = 15;

/** Time zone names that are UTC at every instant, so a zoneless timestamptz in them is UTC. */
const UTC_ZONE_NAMES = new Set([
  'utc', 'etc/utc', 'uct', 'etc/uct', 'gmt', 'etc/gmt', 'gmt0', 'etc/gmt0', 'gmt+0', 'etc/gmt+0', 'gmt-0', 'etc/gmt-0',
  'greenwich', 'etc/greenwich', 'universal', 'etc/universal', 'zulu', 'etc/zulu',
]);

export interface DateTimeInputOptions {
  /** The session's TimeZone setting; needed for a timestamptz written without a zone. */
  sessionTimeZone?: string;
}

/** hashint4 of a date given as days since 2000-01-01. */
export function hashDate(daysSince2000: number): number {
  return hashUint32(daysSince2000 | 0);
}

/** timestamp_hash of a timestamp or timestamptz given as microseconds since 2000-01-01 (UTC). */
export function hashTimestamp(microsSince2000: bigint): number {
  return hashInt8(microsSince2000);
}

/** Days since 2000-01-01 of a JS Date's UTC calendar day (its time of day is ignored). */
export function dateToPgDays(value: Date): number {
  return Math.floor(value.getTime() / 86_400_000) + UNIX_EPOCH_DAYS;
}

/** Microseconds since 2000-01-01 UTC of a JS Date (millisecond precision). */
export function dateToPgTimestamp(value: Date): bigint {
  return (BigInt(value.getTime()) + BigInt(UNIX_EPOCH_DAYS) * 86_400_000n) * 1000n;
}

/** The parsed pieces of a date/time literal. */
interface DateTimeFields {
  special: 'none' | 'infinity' | '-infinity' | 'epoch';
  julianDay: number;
  /** Microseconds since local midnight (may reach 24:00:00 and a leap second). */
  timeOfDay: number;
  hasTime: boolean;
  /** Seconds east of UTC, or null when no zone was written. */
  zoneOffset: number | null;
}

const fields: DateTimeFields = { special: 'none', julianDay: 0, timeOfDay: 0, hasTime: false, zoneOffset: null };

/** Parses date_in's text form; returns days since 2000-01-01 (infinities as INT32 MIN/MAX). */
export function parseDate(text: string): number {
  parseDateTimeFields('date', text);
  if (fields.special === 'infinity') return DATE_POS_INFINITY;
  if (fields.special === '-infinity') return DATE_NEG_INFINITY;
  if (fields.special === 'epoch') return UNIX_EPOCH_DAYS;
  if (fields.hasTime || fields.zoneOffset !== null) unsupported('date', text, 'a time or zone in a date literal');
  return fields.julianDay - POSTGRES_EPOCH_JDATE;
}

/**
 * Parses timestamp_in / timestamptz_in's text form; returns microseconds since
 * 2000-01-01 (UTC for timestamptz). `precision` is the typmod of timestamp(p).
 */
export function parseTimestamp(text: string, withTimeZone: boolean, precision?: number, options?: DateTimeInputOptions): bigint {
  const typeName = withTimeZone ? 'timestamptz' : 'timestamp';
  parseDateTimeFields(typeName, text);
  if (fields.special === 'infinity') return TIMESTAMP_POS_INFINITY;
  if (fields.special === '-infinity') return TIMESTAMP_NEG_INFINITY;
  if (fields.special === 'epoch') return BigInt(UNIX_EPOCH_DAYS) * USECS_PER_DAY;
  let micros = BigInt(fields.julianDay - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY + BigInt(fields.timeOfDay);
  if (withTimeZone) {
    let offset = fields.zoneOffset;
    if (offset === null) {
      const zone = options?.sessionTimeZone?.trim().toLowerCase();
      if (zone === undefined || !UTC_ZONE_NAMES.has(zone)) {
        unsupported(typeName, text, 'no explicit zone and the session TimeZone is not known to be UTC');
      }
      offset = 0;
    }
    micros -= BigInt(offset) * BigInt(USECS_PER_SEC);
  } // timestamp without time zone silently ignores a written zone, as PostgreSQL does
  if (micros < MIN_TIMESTAMP || micros >= END_TIMESTAMP) unsupported(typeName, text, 'timestamp out of range');
  if (precision !== undefined && precision < 6) micros = roundToPrecision(micros, precision);
  return micros;
}

/** AdjustTimestampForTypmod: round half away from zero to `precision` fractional digits. */
function roundToPrecision(micros: bigint, precision: number): bigint {
  const scale = 10n ** BigInt(6 - precision);
  const offset = scale / 2n;
  if (micros >= 0n) return ((micros + offset) / scale) * scale;
  return -(((-micros + offset) / scale) * scale);
}

function unsupported(typeName: string, text: string, reason: string): never {
  throw new UnsupportedHashInputError(typeName, text, reason);
}

/** Reads the digits text[from, to) as a number (the caller checked they are digits). */
function digitsValue(text: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) v = v * 10 + (text.charCodeAt(i) - 48);
  return v;
}

/** Index past the run of digits starting at `from`. */
function digitsEnd(text: string, from: number): number {
  let i = from;
  while (i < text.length && isDigitCode(text.charCodeAt(i))) i++;
  return i;
}

/** Fills `fields` from `text` or throws UnsupportedHashInputError. */
function parseDateTimeFields(typeName: string, text: string): void {
  const start = skipSpaces(text, 0);
  const end = trimmedEnd(text);
  fields.special = 'none';
  fields.hasTime = false;
  fields.zoneOffset = null;
  fields.timeOfDay = 0;
  for (const word of ['infinity', '-infinity', 'epoch'] as const) {
    if (rangeEqualsWord(text, start, end, word)) {
      fields.special = word;
      return;
    }
  }
  const bad = (reason = 'unsupported date/time input form'): never => unsupported(typeName, text, reason);

  // Date: YYYY-M[M]-D[D]
  let i = start;
  let j = digitsEnd(text, i);
  if (j - i !== 4 || text.charCodeAt(j) !== 45) bad();
  const year = digitsValue(text, i, j);
  i = j + 1;
  j = digitsEnd(text, i);
  if (j - i < 1 || j - i > 2 || text.charCodeAt(j) !== 45) bad();
  const month = digitsValue(text, i, j);
  i = j + 1;
  j = digitsEnd(text, i);
  if (j - i < 1 || j - i > 2) bad();
  const day = digitsValue(text, i, j);
  i = j;

  // Time: ('T' | spaces) H[H]:M[M][:S[S][.fraction]]
  const sep = text.charCodeAt(i);
  let afterSep = skipSpaces(text, i);
  if (sep === 84 || sep === 116) afterSep = i + 1; // 'T' / 't'
  if ((afterSep > i) && isDigitCode(text.charCodeAt(afterSep))) {
    i = afterSep;
    j = digitsEnd(text, i);
    if (j - i < 1 || j - i > 2 || text.charCodeAt(j) !== 58) bad();
    const hour = digitsValue(text, i, j);
    i = j + 1;
    j = digitsEnd(text, i);
    if (j - i < 1 || j - i > 2) bad();
    const minute = digitsValue(text, i, j);
    i = j;
    let second = 0;
    let fraction = 0;
    if (text.charCodeAt(i) === 58) {
      i++;
      j = digitsEnd(text, i);
      if (j - i < 1 || j - i > 2) bad();
      second = digitsValue(text, i, j);
      i = j;
      if (text.charCodeAt(i) === 46) {
        j = digitsEnd(text, i + 1);
        fraction = parseFractionalSecond(text, i, j);
        i = j;
      }
    }
    if (minute > 59 || second > 60 || hour > 24) bad('date/time field value out of range');
    if (second === 60 && fraction > 0) bad('date/time field value out of range');
    if (hour === 24 && (minute > 0 || second > 0 || fraction > 0)) bad('date/time field value out of range');
    fields.hasTime = true;
    fields.timeOfDay = ((hour * 60 + minute) * 60 + second) * USECS_PER_SEC + fraction;
    i = parseZone(text, i, end, bad);
  } else if (sep === 84 || sep === 116) {
    bad();
  }

  // Era: AD or BC
  let bc = false;
  const eraStart = skipSpaces(text, i);
  if (eraStart < end) {
    if (eraStart === i) bad();
    if (rangeEqualsWord(text, eraStart, end, 'bc')) bc = true;
    else if (!rangeEqualsWord(text, eraStart, end, 'ad')) bad();
    i = end;
  }
  if (i !== end) bad();

  if (year === 0) bad('date/time field value out of range');
  const internalYear = bc ? 1 - year : year;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(internalYear, month)) bad('date/time field value out of range');
  const julian = date2j(internalYear, month, day);
  if (julian < 0) bad('date out of range'); // before 4714-11-24 BC
  fields.julianDay = julian;
}

/**
 * ParseFractionalSecond: PostgreSQL reads ".ddd" with strtod and rounds
 * frac × 10^6 to the nearest integer, ties to even (rint). We repeat those very
 * double operations so digits beyond microseconds round identically.
 */
function parseFractionalSecond(text: string, dot: number, end: number): number {
  const digits = end - dot - 1;
  if (digits === 0) return 0;
  if (digits <= 6) return digitsValue(text, dot + 1, end) * 10 ** (6 - digits);
  const scaled = Number(text.slice(dot, end)) * 1_000_000;
  const rounded = Math.round(scaled);
  return rounded - scaled === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

/**
 * An optional zone after the time: Z, UTC, GMT or ±H[H][[:]MM[:SS]] (DecodeTimezone).
 * Sets fields.zoneOffset (seconds east of UTC); returns the index after it.
 */
function parseZone(text: string, from: number, end: number, bad: (reason?: string) => never): number {
  let i = skipSpaces(text, from);
  if (i >= end) return from;
  const c = text.charCodeAt(i);
  if (c === 43 || c === 45) {
    const signStart = i;
    i++;
    let j = digitsEnd(text, i);
    if (j - i < 1 || j - i > 4) bad();
    let hours = digitsValue(text, i, j);
    let minutes = 0;
    let seconds = 0;
    if (text.charCodeAt(j) === 58) {
      if (j - i > 2) bad();
      i = j + 1;
      j = digitsEnd(text, i);
      if (j - i < 1 || j - i > 2) bad();
      minutes = digitsValue(text, i, j);
      if (text.charCodeAt(j) === 58) {
        i = j + 1;
        j = digitsEnd(text, i);
        if (j - i < 1 || j - i > 2) bad();
        seconds = digitsValue(text, i, j);
      }
    } else if (j - signStart > 3) {
      minutes = hours % 100;
      hours = Math.floor(hours / 100);
    }
    if (hours > MAX_TZDISP_HOUR || minutes > 59 || seconds > 59) bad('time zone displacement out of range');
    const offset = (hours * 60 + minutes) * 60 + seconds;
    fields.zoneOffset = c === 45 ? -offset : offset;
    return j;
  }
  for (const word of ['z', 'utc', 'gmt']) {
    if (matchesWordAt(text, i, word)) {
      const after = i + word.length;
      if (after < end && !isPgSpace(text.charCodeAt(after))) bad();
      fields.zoneOffset = 0;
      return after;
    }
  }
  return from;
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  return month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]!;
}

/** PostgreSQL's date2j: Julian day number of a proleptic Gregorian date (year 0 = 1 BC). */
export function date2j(year: number, month: number, day: number): number {
  let y = year;
  let m = month;
  if (m > 2) {
    m += 1;
    y += 4800;
  } else {
    m += 13;
    y += 4799;
  }
  const century = Math.trunc(y / 100);
  let julian = y * 365 - 32167;
  julian += Math.trunc(y / 4) - century + Math.trunc(century / 4);
  julian += Math.trunc((7834 * m) / 256) + day;
  return julian;
}
