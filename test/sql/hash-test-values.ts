/**
 * Values for the hash property test (hash.test.ts): seeded random values in
 * the text input forms hashDistributionValue promises to parse, plus the edge
 * cases where bit-exactness usually breaks (int limits, the 12-byte blocks of
 * hash_any, multibyte UTF-8, trailing blanks, numeric zeros and weights,
 * dates before 2000 and BC, fractional seconds that round, zone offsets).
 */

const COUNT = 2000;

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Characters for strings: ASCII, blanks, quotes, and 2-, 3- and 4-byte UTF-8. */
const CHARS = ['a', 'b', 'Z', '0', '9', ' ', '\t', "'", '\\', '"', 'é', 'ß', 'Ω', '€', '☃', '世', '界', '𝄞', '😀', '-', '_'];

export function makeGenerators(seed: number) {
  const rand = seededRandom(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
  const chance = (p: number): boolean => rand() < p;
  const digits = (n: number): string => Array.from({ length: n }, () => String(int(0, 9))).join('');
  const pad = (n: number, width: number): string => String(n).padStart(width, '0');
  const spaces = (): string => (chance(0.1) ? pick([' ', '  ', '\t', '\n ', '\r']) : '');
  const fill = (edges: string[], make: () => string): string[] => {
    const out = [...edges];
    while (out.length < COUNT) out.push(make());
    return out;
  };
  const randomString = (length: number, chars = CHARS): string =>
    Array.from({ length }, () => pick(chars)).join('');

  const intText = (value: number | bigint): string => {
    const text = String(value);
    const signed = text.startsWith('-') ? text : (chance(0.1) ? '+' : '') + text;
    return spaces() + (chance(0.05) ? signed.replace(/^([-+]?)/, '$100') : signed) + spaces();
  };
  const random64 = (): bigint => {
    const bits = int(1, 64);
    const hi = BigInt(int(0, 2 ** 31 - 1)) * 4294967296n + BigInt(int(0, 2 ** 32 - 1));
    const magnitude = hi % (1n << BigInt(bits - 1));
    return chance(0.5) ? -magnitude - (chance(0.01) ? 1n : 0n) : magnitude;
  };

  const dateText = (): string => {
    const year = pick([int(1, 9999), int(1900, 2100), int(1, 4714)]);
    const month = int(1, 12);
    const day = int(1, [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!);
    const bc = chance(0.1);
    const m = chance(0.8) ? pad(month, 2) : String(month);
    const d = chance(0.8) ? pad(day, 2) : String(day);
    return `${pad(year, 4)}-${m}-${d}` + (bc ? pick([' BC', ' bc']) : chance(0.05) ? ' AD' : '');
  };
  const timeText = (): string => {
    const h = int(0, 23);
    const m = int(0, 59);
    let text = `${chance(0.9) ? pad(h, 2) : h}:${pad(m, 2)}`;
    if (chance(0.9)) text += `:${pad(int(0, 59), 2)}`;
    if (text.length > 5 && chance(0.6)) text += '.' + digits(int(0, 9));
    return text;
  };
  const timestampParts = (): [date: string, time: string, era: string] => {
    const date = dateText();
    const era = date.match(/ (BC|bc|AD)$/)?.[0] ?? '';
    return [date.slice(0, date.length - era.length), timeText(), era];
  };
  const timestampEdges = [
    'infinity', '-infinity', 'epoch', ' Infinity ', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999',
    '1970-01-01 00:00:00', '2020-02-29 12:00', '2020-01-01 24:00:00', '2020-01-01 23:59:60', '2016-12-31T23:59:60',
    '2020-01-01 00:00:00.0000005', '2020-01-01 00:00:00.0000015', '2020-01-01 00:00:00.0000025', '2020-01-01 00:00:00.9999995',
    '2020-01-01 00:00:00.9999999', '2020-01-01 12:00:00.', '0001-01-01 00:00:00', '0001-01-01 00:00:00 BC',
    '4714-11-24 00:00:00 BC', '4714-11-23 23:59:59 BC', '9999-12-31 23:59:59.999999', '2020-1-2 3:04:05', '2020-01-01t12:00',
    '2020-01-01 12:00:00.125', '2020-01-01 12:00:00.135', '1900-01-01 00:00:00.5',
  ];
  const zone = (): string =>
    pick(['Z', 'z', ' UTC', ' utc', ' GMT', '+00', '-00', '+05', '-08', '+5', '-3', '+05:30', '-03:30', '+0530', '+530',
      '-0800', ' +09:00', '+14:45', '-11:00:15', '+15:59:59', '+16', '-12:60', '+01:02:03']);

  return {
    int2: () => fill(['0', '-1', '1', '32767', '-32768', ' 42 ', '+7', '-0', '007', '\t12\n', '32768', '-32769'],
      () => intText(int(-32768, 32767))),
    int4: () => fill(['0', '-1', '1', '2147483647', '-2147483648', '2147483648', '-2147483649', ' -17 ', '+0', '0000000000000042'],
      () => intText(pick([int(-(2 ** 31), 2 ** 31 - 1), int(-1000, 1000)]))),
    int8: () => fill(['0', '-1', '9223372036854775807', '-9223372036854775808', '9223372036854775808', '4294967295', '4294967296',
      '-4294967296', '-4294967297', '2147483648', '-2147483649', '9007199254740993', '-9007199254740993', ' +123 '],
      () => intText(random64())),
    oid: () => fill(['0', '1', '4294967295', '4294967296', '-1', '-2147483648', '-2147483649', ' 16384 ', '+5'],
      () => intText(pick([int(0, 2 ** 32 - 1), int(-(2 ** 31), -1)]))),
    bool: () => fill(['t', 'tr', 'tru', 'true', 'TRUE', 'True', 'f', 'fa', 'false', 'FALSE', 'y', 'ye', 'yes', 'YES', 'n', 'no', 'NO',
      'on', 'ON', 'of', 'off', 'OFF', '1', '0', ' true ', '\tyes\n', 'o', 'truex', '2', '', 'nope'],
      () => spaces() + pick(['true', 'false', 'yes', 'no', 'on', 'off', '1', '0']).slice(0, int(1, 5)).toUpperCase() + spaces()),
    char: () => fill(['', 'A', 'z', ' ', '\\101', '\\000', '\\177', '\\7', 'ab', '\\\\', '\\'],
      () => String.fromCharCode(int(1, 127)) + (chance(0.2) ? randomString(int(1, 3)) : '')),
    text: () => {
      const edges = [''];
      for (let length = 0; length <= 100; length++) {
        edges.push('x'.repeat(length), randomString(length, ['a', 'b', 'c']), randomString(length));
      }
      return fill(edges, () => randomString(int(0, 100)));
    },
    bpchar: () => fill(['', ' ', '   ', 'a', 'a ', 'a   ', ' a', 'ab  c  ', 'abcdefghijkl', 'abcdefghijkl   ', 'abcdefghijklm', 'é  '],
      () => randomString(int(0, 30)) + ' '.repeat(chance(0.5) ? int(1, 20) : 0)),
    name: () => fill(['', 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(200), 'x'.repeat(62) + 'é', 'x'.repeat(61) + '€', 'x'.repeat(62) + '😀'],
      () => randomString(int(0, 80))),
    uuid: () => fill(['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
      'A0EEBC999C0B4EF8BB6D6BB9BD380A11', 'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11', '{a0eebc999c0b4ef8bb6d6bb9bd380a11}'],
      () => {
        const hex = Array.from({ length: 32 }, () => '0123456789abcdef'[int(0, 15)]).join('');
        let text = chance(0.7)
          ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
          : hex.replace(/(....)(?=.)/g, (g) => (chance(0.5) ? g + '-' : g));
        if (chance(0.3)) text = text.toUpperCase();
        return chance(0.1) ? `{${text}}` : text;
      }),
    numeric: () => fill(['0', '-0', '0.000', '+0.0e5', '00001.10000', '1.5', '1.50', '-1.5', '9999', '10000', '0.0001', '0.00001', '1e4',
      '-0.0001e4', 'NaN', 'nan', ' NaN ', 'Infinity', '-Infinity', '+infinity', 'inf', '-INF', '.5', '5.', '1E5', '1e-5', '12345678901234567890.123456789',
      '1e131071', '1e131072', '1e-16383', '1e-16384', '9.995', '123.5', '-123.5', '0.0005', '1.005', '99999999.9995', '1e'],
      () => {
        const intPart = chance(0.2) ? '' : '0'.repeat(chance(0.2) ? int(1, 3) : 0) + digits(int(1, 25));
        let frac = chance(0.3) ? '' : digits(int(1, 25));
        if (chance(0.2)) frac += '0'.repeat(int(1, 8));
        let text = pick(['', '', '-', '+']) + (intPart === '' && frac === '' ? '0' : intPart) + (frac ? '.' + frac : chance(0.1) ? '.' : '');
        if (chance(0.2)) text += pick(['e', 'E']) + pick(['', '+', '-']) + int(0, 40);
        return spaces() + text + spaces();
      }),
    smallNumeric: () => fill(['0.001', '0.0099', '0.01', '0.00999', '0.000005', '0.1', '-0.00049'],
      () => pick(['', '-']) + '0.' + '0'.repeat(int(0, 4)) + digits(int(1, 6))),
    date: () => fill(['infinity', '-infinity', ' Infinity ', 'epoch', 'EPOCH', '2000-01-01', '1999-12-31', '1970-01-01', '0001-01-01', '0001-01-01 BC',
      '4713-01-01 BC', '4714-11-24 BC', '4714-11-23 BC', '9999-12-31', '2000-02-29', '1900-02-29', '2100-02-29', '2020-1-5',
      '2020-02-30', '2020-13-01', '0000-01-01', ' 2020-06-15 ', '2020-06-15 ad', '+infinity'],
      () => spaces() + dateText() + spaces()),
    timestamp: () => fill(timestampEdges, () => {
      const [date, time, era] = timestampParts();
      return spaces() + date + pick([' ', 'T', '  ']) + time + (chance(0.1) ? zone() : '') + era + spaces();
    }),
    timestamptz: () => fill(timestampEdges.filter((t) => !/\d$|\.$|BC$|t12:00$/.test(t)).concat(
      timestampEdges.filter((t) => /:\d\d(\.\d*)?$/.test(t)).map((t) => t + zone())),
      () => {
        const [date, time, era] = timestampParts();
        return spaces() + date + pick([' ', 'T']) + time + zone() + era + spaces();
      }),
    zonelessTimestamp: () => fill(['2000-01-01', '2020-06-15 12:34:56.789', 'epoch', 'infinity'], () => {
      const [date, time, era] = timestampParts();
      return chance(0.2) ? date + era : `${date} ${time}${era}`;
    }),
  };
}

/** Each value `copies` times with one random edit (drop, insert or duplicate a character). */
export function mutate(seed: number, values: string[], copies: number): string[] {
  const rand = seededRandom(seed ^ 0x5bd1e995);
  const insertable = ['0', '9', '-', '+', '.', ':', ' ', 'e', 'T', 'x', '{', '}', '\\', 'é', 'Z', '5'];
  const out: string[] = [];
  for (const value of values) {
    for (let c = 0; c < copies; c++) {
      const at = Math.floor(rand() * (value.length + 1));
      const kind = Math.floor(rand() * 3);
      if (kind === 0 && value.length > 0) out.push(value.slice(0, at) + value.slice(at + 1));
      else if (kind === 1) out.push(value.slice(0, at) + insertable[Math.floor(rand() * insertable.length)] + value.slice(at));
      else out.push(value.slice(0, at) + value.slice(at, at + 1) + value.slice(at));
    }
  }
  return out;
}
