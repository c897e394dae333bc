/**
 * A deterministic TPC-H data generator: the eight tables of the TPC-H
 * specification (clause 1.4 for types, clause 4.2.3 for value domains) at any
 * scale factor, from a seeded PRNG, so a test can load byte-identical data
 * into a pgweave cluster and into a plain PostgreSQL. It is not dbgen: the
 * comment texts come from a small vocabulary instead of the spec's grammar,
 * and the random streams differ — but cardinalities, key relationships
 * (sparse order keys, customers without orders, the four suppliers of each
 * part), value ranges and the derived columns (retail price, extended price,
 * order status and total price, return flag, line status) follow the spec,
 * so the 22 queries with their validation parameters return non-empty,
 * meaningful results.
 *
 * Rows are produced as COPY text lines (tab-separated, \N for NULL), one
 * array per table, plus the DDL with the spec's column types and primary keys.
 */

/** Mulberry32: small, fast, and the same sequence on every machine. */
export class Random {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
}

export const TPCH_TABLES = ['region', 'nation', 'part', 'supplier', 'partsupp', 'customer', 'orders', 'lineitem'] as const;
export type TpchTable = (typeof TPCH_TABLES)[number];

/** Column types as clause 1.4.1 gives them (identifier → integer, decimal → numeric(15,2)). */
export const TPCH_DDL: Record<TpchTable, string> = {
  region: `CREATE TABLE region (
  r_regionkey integer NOT NULL PRIMARY KEY,
  r_name char(25) NOT NULL,
  r_comment varchar(152))`,
  nation: `CREATE TABLE nation (
  n_nationkey integer NOT NULL PRIMARY KEY,
  n_name char(25) NOT NULL,
  n_regionkey integer NOT NULL,
  n_comment varchar(152))`,
  part: `CREATE TABLE part (
  p_partkey integer NOT NULL PRIMARY KEY,
  p_name varchar(55) NOT NULL,
  p_mfgr char(25) NOT NULL,
  p_brand char(10) NOT NULL,
  p_type varchar(25) NOT NULL,
  p_size integer NOT NULL,
  p_container char(10) NOT NULL,
  p_retailprice numeric(15,2) NOT NULL,
  p_comment varchar(23) NOT NULL)`,
  supplier: `CREATE TABLE supplier (
  s_suppkey integer NOT NULL PRIMARY KEY,
  s_name char(25) NOT NULL,
  s_address varchar(40) NOT NULL,
  s_nationkey integer NOT NULL,
  s_phone char(15) NOT NULL,
  s_acctbal numeric(15,2) NOT NULL,
  s_comment varchar(101) NOT NULL)`,
  partsupp: `CREATE TABLE partsupp (
  ps_partkey integer NOT NULL,
  ps_suppkey integer NOT NULL,
  ps_availqty integer NOT NULL,
  ps_supplycost numeric(15,2) NOT NULL,
  ps_comment varchar(199) NOT NULL,
  PRIMARY KEY (ps_partkey, ps_suppkey))`,
  customer: `CREATE TABLE customer (
  c_custkey integer NOT NULL PRIMARY KEY,
  c_name varchar(25) NOT NULL,
  c_address varchar(40) NOT NULL,
  c_nationkey integer NOT NULL,
  c_phone char(15) NOT NULL,
  c_acctbal numeric(15,2) NOT NULL,
  c_mktsegment char(10) NOT NULL,
  c_comment varchar(117) NOT NULL)`,
  orders: `CREATE TABLE orders (
  o_orderkey integer NOT NULL PRIMARY KEY,
  o_custkey integer NOT NULL,
  o_orderstatus char(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL,
  o_orderdate date NOT NULL,
  o_orderpriority char(15) NOT NULL,
  o_clerk char(15) NOT NULL,
  o_shippriority integer NOT NULL,
  o_comment varchar(79) NOT NULL)`,
  lineitem: `CREATE TABLE lineitem (
  l_orderkey integer NOT NULL,
  l_partkey integer NOT NULL,
  l_suppkey integer NOT NULL,
  l_linenumber integer NOT NULL,
  l_quantity numeric(15,2) NOT NULL,
  l_extendedprice numeric(15,2) NOT NULL,
  l_discount numeric(15,2) NOT NULL,
  l_tax numeric(15,2) NOT NULL,
  l_returnflag char(1) NOT NULL,
  l_linestatus char(1) NOT NULL,
  l_shipdate date NOT NULL,
  l_commitdate date NOT NULL,
  l_receiptdate date NOT NULL,
  l_shipinstruct char(25) NOT NULL,
  l_shipmode char(10) NOT NULL,
  l_comment varchar(44) NOT NULL,
  PRIMARY KEY (l_orderkey, l_linenumber))`,
};

const REGIONS = ['AFRICA', 'AMERICA', 'ASIA', 'EUROPE', 'MIDDLE EAST'];
const NATIONS: Array<[string, number]> = [
  ['ALGERIA', 0], ['ARGENTINA', 1], ['BRAZIL', 1], ['CANADA', 1], ['EGYPT', 4], ['ETHIOPIA', 0], ['FRANCE', 3],
  ['GERMANY', 3], ['INDIA', 2], ['INDONESIA', 2], ['IRAN', 4], ['IRAQ', 4], ['JAPAN', 2], ['JORDAN', 4], ['KENYA', 0],
  ['MOROCCO', 0], ['MOZAMBIQUE', 0], ['PERU', 1], ['CHINA', 2], ['ROMANIA', 3], ['SAUDI ARABIA', 4], ['VIETNAM', 2],
  ['RUSSIA', 3], ['UNITED KINGDOM', 3], ['UNITED STATES', 1],
];
/** The 92 words P_NAME draws five distinct ones from (clause 4.2.3). */
const COLORS = [
  'almond', 'antique', 'aquamarine', 'azure', 'beige', 'bisque', 'black', 'blanched', 'blue', 'blush', 'brown',
  'burlywood', 'burnished', 'chartreuse', 'chiffon', 'chocolate', 'coral', 'cornflower', 'cornsilk', 'cream', 'cyan',
  'dark', 'deep', 'dim', 'dodger', 'drab', 'firebrick', 'floral', 'forest', 'frosted', 'gainsboro', 'ghost',
  'goldenrod', 'green', 'grey', 'honeydew', 'hot', 'indian', 'ivory', 'khaki', 'lace', 'lavender', 'lawn', 'lemon',
  'light', 'lime', 'linen', 'magenta', 'maroon', 'medium', 'metallic', 'midnight', 'mint', 'misty', 'moccasin',
  'navajo', 'navy', 'olive', 'orange', 'orchid', 'pale', 'papaya', 'peach', 'peru', 'pink', 'plum', 'powder', 'puff',
  'purple', 'red', 'rose', 'rosy', 'royal', 'saddle', 'salmon', 'sandy', 'seashell', 'sienna', 'sky', 'slate', 'smoke',
  'snow', 'spring', 'steel', 'tan', 'thistle', 'tomato', 'turquoise', 'violet', 'wheat', 'white', 'yellow',
];
const TYPE_S1 = ['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'];
const TYPE_S2 = ['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'];
const TYPE_S3 = ['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'];
const CONTAINER_S1 = ['SM', 'LG', 'MED', 'JUMBO', 'WRAP'];
const CONTAINER_S2 = ['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'];
const SEGMENTS = ['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'MACHINERY', 'HOUSEHOLD'];
const PRIORITIES = ['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'];
const INSTRUCTIONS = ['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'];
const MODES = ['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'];

/** The word classes of the spec's text grammar (clause 4.2.2.10), abridged. */
const NOUNS = [
  'foxes', 'ideas', 'theodolites', 'pinto beans', 'instructions', 'dependencies', 'excuses', 'platelets', 'asymptotes',
  'courts', 'dolphins', 'multipliers', 'sauternes', 'warthogs', 'frets', 'dinos', 'attainments', 'somas', 'patterns',
  'forges', 'braids', 'hockey players', 'frays', 'warhorses', 'dugouts', 'notornis', 'epitaphs', 'pearls', 'tithes',
  'waters', 'orbits', 'gifts', 'sheaves', 'depths', 'sentiments', 'decoys', 'realms', 'pains', 'grouches', 'escapades',
  'packages', 'requests', 'accounts', 'deposits', 'foxes', 'ideas', 'requests', 'accounts', 'packages', 'deposits',
];
const VERBS = [
  'sleep', 'wake', 'are', 'cajole', 'haggle', 'nag', 'use', 'boost', 'affix', 'detect', 'integrate', 'maintain', 'nod',
  'was', 'lose', 'sublate', 'solve', 'thrash', 'promise', 'engage', 'hinder', 'print', 'x-ray', 'breach', 'eat', 'grow',
  'impress', 'mold', 'poach', 'serve', 'run', 'dazzle', 'snooze', 'doze', 'unwind', 'kindle', 'play', 'hang', 'believe',
  'doubt',
];
const ADJECTIVES = [
  'furious', 'sly', 'careful', 'blithe', 'quick', 'fluffy', 'slow', 'quiet', 'ruthless', 'thin', 'close', 'dogged',
  'daring', 'brave', 'stealthy', 'permanent', 'enticing', 'idle', 'busy', 'regular', 'final', 'ironic', 'even', 'bold',
  'silent', 'special', 'pending', 'unusual', 'express',
];
const ADVERBS = [
  'sometimes', 'always', 'never', 'furiously', 'slyly', 'carefully', 'blithely', 'quickly', 'fluffily', 'slowly',
  'quietly', 'ruthlessly', 'thinly', 'closely', 'doggedly', 'daringly', 'bravely', 'stealthily', 'permanently',
  'enticingly', 'idly', 'busily', 'regularly', 'finally', 'ironically', 'evenly', 'boldly', 'silently',
];
const PREPOSITIONS = [
  'about', 'above', 'according to', 'across', 'after', 'against', 'along', 'alongside of', 'among', 'around', 'at',
  'atop', 'before', 'behind', 'beneath', 'beside', 'besides', 'between', 'beyond', 'by', 'despite', 'during', 'except',
  'for', 'from', 'in place of', 'inside', 'instead of', 'into', 'near', 'of', 'on', 'outside', 'over', 'past', 'since',
  'through', 'throughout', 'to', 'toward', 'under', 'until', 'up', 'upon', 'without', 'with', 'within',
];
const TERMINATORS = ['.', ';', ':', '?', '!', '--'];
const ALPHANUMERIC = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,';

/** Days since 1970-01-01 of STARTDATE (1992-01-01), CURRENTDATE (1995-06-17) and ENDDATE (1998-12-31). */
const START_DATE = Date.UTC(1992, 0, 1) / 86_400_000;
const CURRENT_DATE = Date.UTC(1995, 5, 17) / 86_400_000;
const END_DATE = Date.UTC(1998, 11, 31) / 86_400_000;

function isoDate(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}

/** Money as cents → 'd.cc' with sign. */
function money(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

function pad9(n: number): string {
  return String(n).padStart(9, '0');
}

/** The spec's sparse order keys: the first 8 of every 32. */
export function orderKey(index: number): number {
  return Math.floor(index / 8) * 32 + (index % 8) + 1;
}

export interface TpchData {
  scale: number;
  /** COPY text lines (no trailing newline) per table. */
  rows: Record<TpchTable, string[]>;
}

export interface TpchCounts {
  parts: number;
  suppliers: number;
  customers: number;
  orders: number;
}

export function tpchCounts(scale: number): TpchCounts {
  return {
    parts: Math.max(1, Math.round(scale * 200_000)),
    suppliers: Math.max(1, Math.round(scale * 10_000)),
    customers: Math.max(3, Math.round(scale * 150_000)),
    orders: Math.max(1, Math.round(scale * 1_500_000)),
  };
}

class TextGenerator {
  constructor(private readonly rnd: Random) {}

  private sentence(): string {
    const r = this.rnd;
    const noun = () => (r.next() < 0.3 ? `${r.pick(ADJECTIVES)} ${r.pick(NOUNS)}` : r.pick(NOUNS));
    const verb = () => (r.next() < 0.4 ? `${r.pick(ADVERBS)} ${r.pick(VERBS)}` : r.pick(VERBS));
    switch (r.int(0, 3)) {
      case 0:
        return `${noun()} ${verb()}${r.pick(TERMINATORS)}`;
      case 1:
        return `${noun()} ${verb()} ${r.pick(PREPOSITIONS)} the ${noun()}${r.pick(TERMINATORS)}`;
      case 2:
        return `${noun()} ${verb()} ${noun()}${r.pick(TERMINATORS)}`;
      default:
        return `${r.pick(ADJECTIVES)} ${noun()} ${verb()} ${r.pick(ADVERBS)}${r.pick(TERMINATORS)}`;
    }
  }

  /** A pseudo-text of random length in [min, max] characters (clause 4.2.2.10). */
  text(min: number, max: number): string {
    const len = this.rnd.int(min, max);
    let s = '';
    for (let guard = 0; s.length < len && guard < 50; guard++) s += (s ? ' ' : '') + this.sentence();
    return s.slice(0, len).trimEnd() || 'x';
  }

  /** A v-string: random alphanumeric characters, length uniform in [min, max]. */
  vstring(min: number, max: number): string {
    const len = this.rnd.int(min, max);
    let s = '';
    for (let i = 0; i < len; i++) s += ALPHANUMERIC[this.rnd.int(0, ALPHANUMERIC.length - 1)];
    return s;
  }

  phone(nationKey: number): string {
    const r = this.rnd;
    return `${nationKey + 10}-${r.int(100, 999)}-${r.int(100, 999)}-${r.int(1000, 9999)}`;
  }
}

/** PS_SUPPKEY of the i-th (0..3) supplier of a part (clause 4.2.3). */
function partSupplier(partKey: number, i: number, suppliers: number): number {
  return ((partKey + i * (Math.floor(suppliers / 4) + Math.floor((partKey - 1) / suppliers))) % suppliers) + 1;
}

/** P_RETAILPRICE in cents (clause 4.2.3). */
function retailPriceCents(partKey: number): number {
  return 90000 + (Math.floor(partKey / 10) % 20001) + 100 * (partKey % 1000);
}

/** Generates every table at `scale` from `seed`; the same arguments give the same rows. */
export function generateTpch(scale: number, seed = 10): TpchData {
  const counts = tpchCounts(scale);
  const rnd = new Random(seed);
  const txt = new TextGenerator(rnd);
  const rows: Record<TpchTable, string[]> = {
    region: [], nation: [], part: [], supplier: [], partsupp: [], customer: [], orders: [], lineitem: [],
  };
  const line = (values: Array<string | number>) => values.map(String).join('\t');

  REGIONS.forEach((name, key) => rows.region.push(line([key, name, txt.text(31, 115)])));
  NATIONS.forEach(([name, region], key) => rows.nation.push(line([key, name, region, txt.text(31, 114)])));

  for (let pk = 1; pk <= counts.parts; pk++) {
    const words = new Set<string>();
    for (let guard = 0; words.size < 5 && guard < 100; guard++) words.add(rnd.pick(COLORS));
    const m = rnd.int(1, 5);
    rows.part.push(line([
      pk,
      [...words].join(' '),
      `Manufacturer#${m}`,
      `Brand#${m}${rnd.int(1, 5)}`,
      `${rnd.pick(TYPE_S1)} ${rnd.pick(TYPE_S2)} ${rnd.pick(TYPE_S3)}`,
      rnd.int(1, 50),
      `${rnd.pick(CONTAINER_S1)} ${rnd.pick(CONTAINER_S2)}`,
      money(retailPriceCents(pk)),
      txt.text(5, 22),
    ]));
    for (let i = 0; i < 4; i++) {
      rows.partsupp.push(line([
        pk,
        partSupplier(pk, i, counts.suppliers),
        rnd.int(1, 9999),
        money(rnd.int(100, 100000)),
        txt.text(49, 198),
      ]));
    }
  }

  // SF*5 suppliers complain, SF*5 recommend (at least one of each, so Q16 has something to exclude).
  const special = Math.max(1, Math.round(scale * 5));
  const complaints = new Set<number>();
  const recommends = new Set<number>();
  for (let guard = 0; complaints.size < Math.min(special, counts.suppliers) && guard < 10_000; guard++) complaints.add(rnd.int(1, counts.suppliers));
  for (let guard = 0; recommends.size < Math.min(special, counts.suppliers) && guard < 10_000; guard++) {
    const k = rnd.int(1, counts.suppliers);
    if (!complaints.has(k)) recommends.add(k);
  }
  for (let sk = 1; sk <= counts.suppliers; sk++) {
    const nation = rnd.int(0, 24);
    let comment = txt.text(25, 100);
    if (complaints.has(sk) || recommends.has(sk)) {
      const tail = complaints.has(sk) ? 'Complaints' : 'Recommends';
      const middle = ` ${rnd.pick(ADVERBS)} `;
      const core = `Customer${middle}${tail}`;
      const at = rnd.int(0, Math.max(0, comment.length - core.length));
      comment = (comment.slice(0, at) + core + comment.slice(at + core.length)).slice(0, 100);
    }
    rows.supplier.push(line([
      sk,
      `Supplier#${pad9(sk)}`,
      txt.vstring(10, 40),
      nation,
      txt.phone(nation),
      money(rnd.int(-99999, 999999)),
      comment,
    ]));
  }

  for (let ck = 1; ck <= counts.customers; ck++) {
    const nation = rnd.int(0, 24);
    rows.customer.push(line([
      ck,
      `Customer#${pad9(ck)}`,
      txt.vstring(10, 40),
      nation,
      txt.phone(nation),
      money(rnd.int(-99999, 999999)),
      rnd.pick(SEGMENTS),
      txt.text(29, 116),
    ]));
  }

  const clerks = Math.max(1, Math.round(scale * 1000));
  const lastOrderDate = END_DATE - 151;
  for (let oi = 0; oi < counts.orders; oi++) {
    const ok = orderKey(oi);
    // A third of the customers (keys divisible by 3) place no orders.
    let ck = rnd.int(1, counts.customers);
    if (ck % 3 === 0) ck = ck === counts.customers ? ck - 1 : ck + 1;
    const orderDate = rnd.int(START_DATE, lastOrderDate);
    const lines = rnd.int(1, 7);
    let totalCentsTimes10000 = 0n;
    let shippedF = 0;
    for (let ln = 1; ln <= lines; ln++) {
      const partKey = rnd.int(1, counts.parts);
      const suppKey = partSupplier(partKey, rnd.int(0, 3), counts.suppliers);
      const quantity = rnd.int(1, 50);
      const extendedCents = quantity * retailPriceCents(partKey);
      const discount = rnd.int(0, 10);
      const tax = rnd.int(0, 8);
      const shipDate = orderDate + rnd.int(1, 121);
      const commitDate = orderDate + rnd.int(30, 90);
      const receiptDate = shipDate + rnd.int(1, 30);
      const returnFlag = receiptDate <= CURRENT_DATE ? (rnd.next() < 0.5 ? 'R' : 'A') : 'N';
      const lineStatus = shipDate > CURRENT_DATE ? 'O' : 'F';
      if (lineStatus === 'F') shippedF++;
      // extendedprice * (1 + tax) * (1 - discount), exactly, in 1/10000 cents
      totalCentsTimes10000 += BigInt(extendedCents) * BigInt(100 + tax) * BigInt(100 - discount);
      rows.lineitem.push(line([
        ok,
        partKey,
        suppKey,
        ln,
        `${quantity}.00`,
        money(extendedCents),
        `0.${String(discount).padStart(2, '0')}`,
        `0.${String(tax).padStart(2, '0')}`,
        returnFlag,
        lineStatus,
        isoDate(shipDate),
        isoDate(commitDate),
        isoDate(receiptDate),
        rnd.pick(INSTRUCTIONS),
        rnd.pick(MODES),
        txt.text(10, 43),
      ]));
    }
    // round half up to cents
    const totalCents = Number((totalCentsTimes10000 + 5000n) / 10000n);
    const status = shippedF === lines ? 'F' : shippedF === 0 ? 'O' : 'P';
    rows.orders.push(line([
      ok,
      ck,
      status,
      money(totalCents),
      isoDate(orderDate),
      rnd.pick(PRIORITIES),
      `Clerk#${pad9(rnd.int(1, clerks))}`,
      0,
      txt.text(19, 78),
    ]));
  }
  return { scale, rows };
}

/** The COPY text of one table, in chunks of about `chunkBytes` (whole lines). */
export function copyChunks(lines: readonly string[], chunkBytes = 1 << 20): Buffer[] {
  const out: Buffer[] = [];
  let batch: string[] = [];
  let size = 0;
  for (const l of lines) {
    batch.push(l);
    size += l.length + 1;
    if (size >= chunkBytes) {
      out.push(Buffer.from(batch.join('\n') + '\n'));
      batch = [];
      size = 0;
    }
  }
  if (batch.length > 0) out.push(Buffer.from(batch.join('\n') + '\n'));
  return out;
}
