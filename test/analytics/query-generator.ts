/**
 * A seeded generator of random SELECT statements over a small schema with
 * NULLs everywhere (the differential test loads it into pgweave and into a
 * plain PostgreSQL and compares every result):
 *
 *   customers(cid PK)               distributed by cid
 *   purchases(cid, pid) PK          distributed by cid, co-located with customers
 *   items(item PK)                  distributed by item
 *   (purchases.score and items.density are float8: multiples of 1/8, so their
 *   sums are exact in any order; variances and correlations are not)
 *   regions(region PK)              reference table
 *
 * Statements combine joins on any columns (inner, left, right, full, comma
 * joins), WHERE predicates with IN/EXISTS/NOT EXISTS/scalar and correlated
 * subqueries, aggregates (count, count DISTINCT, sum, avg, min, max,
 * string_agg, bool_or, stddev/variance) with GROUP BY (ROLLUP, CUBE, GROUPING SETS)/HAVING, DISTINCT, window
 * functions, derived tables, CTEs, set operations, ORDER BY/LIMIT/OFFSET and
 * equality filters on the distribution column (so router, multi-shard and
 * pull plans are all exercised).
 *
 * Every statement has a deterministic result: ORDER BY … LIMIT only orders by
 * every output column, window functions are those whose value is the same
 * for peers (rank, dense_rank, running aggregates), and string_agg orders
 * its input. `ordered` says whether the row order is defined.
 *
 * Top-level outputs may also be values whose text depends on the order rows
 * are combined in: array_agg/json_agg/jsonb_agg/string_agg without ORDER BY
 * (`unordered` names them; the test compares their elements as multisets)
 * and variances, covariances and correlations of floats (compared with a
 * tolerance). ORDER BY never names them (the group keys it names order the
 * rows totally). A fraction of statements turn literals of their
 * predicates into $n parameters (`params`: two sets of values, one per
 * execution of the prepared statement), run inside BEGIN … COMMIT
 * (`block`), or with `pgweave.repartition_join_threshold = 0`
 * (`repartition`).
 */

type ColType = 'int' | 'num' | 'text' | 'float';

interface Col {
  name: string;
  type: ColType;
}

interface TableDef {
  name: string;
  cols: Col[];
  /** Distribution column, or null for a reference table. */
  dist: string | null;
}

export const RANDOM_SCHEMA_TABLES: TableDef[] = [
  {
    name: 'customers',
    dist: 'cid',
    cols: [
      { name: 'cid', type: 'int' },
      { name: 'name', type: 'text' },
      { name: 'region', type: 'text' },
      { name: 'tier', type: 'int' },
      { name: 'balance', type: 'num' },
    ],
  },
  {
    name: 'purchases',
    dist: 'cid',
    cols: [
      { name: 'cid', type: 'int' },
      { name: 'pid', type: 'int' },
      { name: 'item', type: 'int' },
      { name: 'qty', type: 'int' },
      { name: 'price', type: 'num' },
      { name: 'note', type: 'text' },
      { name: 'score', type: 'float' },
    ],
  },
  {
    name: 'items',
    dist: 'item',
    cols: [
      { name: 'item', type: 'int' },
      { name: 'category', type: 'text' },
      { name: 'weight', type: 'int' },
      { name: 'region', type: 'text' },
      { name: 'density', type: 'float' },
    ],
  },
  {
    name: 'regions',
    dist: null,
    cols: [
      { name: 'region', type: 'text' },
      { name: 'zone', type: 'text' },
      { name: 'rank', type: 'int' },
    ],
  },
];

export const RANDOM_SCHEMA_DDL = [
  `CREATE TABLE customers (cid int PRIMARY KEY, name text NOT NULL, region text, tier int, balance numeric(10,2))`,
  `CREATE TABLE purchases (cid int NOT NULL, pid int NOT NULL, item int, qty int, price numeric(8,2), note text, score float8, PRIMARY KEY (cid, pid))`,
  `CREATE TABLE items (item int PRIMARY KEY, category text, weight int, region text, density float8)`,
  `CREATE TABLE regions (region text PRIMARY KEY, zone text, rank int)`,
  // an expression index and a partial index: pulled tables copy the indexes' key columns
  `CREATE INDEX customers_lower_name ON customers (lower(name), tier)`,
  `CREATE INDEX purchases_big_items ON purchases (item) WHERE qty > 5`,
];

export const RANDOM_SCHEMA_DISTRIBUTE = [
  `SELECT create_distributed_table('customers', 'cid', shard_count => 8)`,
  `SELECT create_distributed_table('purchases', 'cid', colocate_with => 'customers')`,
  `SELECT create_distributed_table('items', 'item', shard_count => 4)`,
  `SELECT create_reference_table('regions')`,
];

/** Columns with many distinct values: joins on them stay small. */
const KEYISH = new Set(['cid', 'item', 'region', 'pid', 'name', 'c1']);

const REGION_NAMES = ['north', 'south', 'east', 'west', 'center', 'polar'];
const NOTES = ['gift', 'rush', 'bulk', '', 'Gift', 'repeat'];
const CATEGORIES = ['toys', 'food', 'tools', 'books'];

/** Mulberry32. */
export class Rng {
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
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

function q(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** INSERT statements for the schema's rows (run before distributing). */
export function randomSchemaData(seed: number): string[] {
  const r = new Rng(seed);
  const nul = (p: number, v: () => string) => (r.chance(p) ? 'NULL' : v());
  // The float columns draw from their own sequence, so the other columns keep their values for a seed.
  const f = new Rng(seed ^ 0x5eed);
  const float = () => (f.chance(0.1) ? 'NULL' : String(f.int(-800, 800) / 8));
  const regions = REGION_NAMES.map((name, i) => `(${q(name)}, ${nul(0.2, () => q(r.pick(['A', 'B', 'C'])))}, ${nul(0.15, () => String(i % 3))})`);
  const customers: string[] = [];
  for (let cid = 1; cid <= 120; cid++) {
    customers.push(`(${cid}, ${q(`n${cid % 37}`)}, ${nul(0.12, () => q(r.pick(REGION_NAMES.slice(0, 5).concat(['nowhere']))))}, ${nul(0.15, () => String(r.int(1, 5)))}, ${nul(0.1, () => `${r.int(-100, 999)}.${String(r.int(0, 99)).padStart(2, '0')}`)})`);
  }
  const purchases: string[] = [];
  for (let i = 1; i <= 400; i++) {
    const cid = r.int(1, 130); // some purchases of customers that do not exist
    purchases.push(`(${cid}, ${i}, ${nul(0.1, () => String(r.int(1, 45)))}, ${nul(0.1, () => String(r.int(0, 9)))}, ${nul(0.1, () => `${r.int(0, 99)}.${String(r.int(0, 99)).padStart(2, '0')}`)}, ${nul(0.2, () => q(r.pick(NOTES)))}, ${float()})`);
  }
  const items: string[] = [];
  for (let item = 1; item <= 40; item++) {
    items.push(`(${item}, ${nul(0.15, () => q(r.pick(CATEGORIES)))}, ${nul(0.15, () => String(r.int(1, 20)))}, ${nul(0.2, () => q(r.pick(REGION_NAMES)))}, ${float()})`);
  }
  return [
    `INSERT INTO regions VALUES ${regions.join(', ')}`,
    `INSERT INTO customers VALUES ${customers.join(', ')}`,
    `INSERT INTO purchases VALUES ${purchases.join(', ')}`,
    `INSERT INTO items VALUES ${items.join(', ')}`,
  ];
}

// ---- statements ---------------------------------------------------------------

interface Source {
  /** The name its columns are qualified with. */
  ref: string;
  /** Its text in a FROM clause. */
  from: string;
  cols: Col[];
  /** The base table, when the source is one (for distribution-column filters). */
  table: TableDef | null;
}

/** How an unordered collection aggregate's text is canonicalized: its elements sorted. */
export type UnorderedKind = 'array' | 'json' | 'string';

export interface GeneratedQuery {
  sql: string;
  ordered: boolean;
  /** Output columns holding array_agg/json_agg/jsonb_agg/string_agg without ORDER BY. */
  unordered: Array<{ index: number; kind: UnorderedKind }>;
  /** $n values of a prepared statement, executed once with `values` and once with `alt`; null: a plain statement. */
  params: { values: string[]; alt: string[] } | null;
  /** Run inside BEGIN … COMMIT. */
  block: boolean;
  /** Run with pgweave.repartition_join_threshold = 0 (joins on other columns repartition where broadcasting moves no less). */
  repartition: boolean;
  /** Features used, for the counts the test reports. */
  features: Set<string>;
}

interface SelectResult {
  sql: string;
  types: ColType[];
  ordered: boolean;
  unordered?: Array<{ index: number; kind: UnorderedKind }>;
}

/** An aggregate or expression; `loose` when its text depends on the combine order, `unordered` for collections. */
interface Output {
  sql: string;
  type: ColType;
  loose?: boolean;
  unordered?: UnorderedKind;
}

interface Context {
  depth: number;
  /** Sources of enclosing queries (correlation). */
  outer: Source[];
  ctes: Source[];
  features: Set<string>;
}

export class QueryGenerator {
  private aliasCounter = 0;
  /**
   * A statement without aggregates, DISTINCT, ordering, window functions or
   * set operations anywhere: the shape multi-shard plans concatenate.
   */
  private simple = false;
  /** Predicate literals may become $n parameters. */
  private paramMode = false;
  private params: string[] = [];
  private alt: string[] = [];
  constructor(private readonly r: Rng) {}

  generate(): GeneratedQuery {
    this.aliasCounter = 0;
    this.simple = this.r.chance(0.35);
    const features = new Set<string>();
    if (this.simple) features.add('concatenation shape');
    this.paramMode = this.r.chance(0.15);
    this.params = [];
    this.alt = [];
    const block = this.r.chance(0.1);
    const repartition = !block && this.r.chance(0.2);
    if (block) features.add('BEGIN … COMMIT');
    if (repartition) features.add('repartition_join_threshold = 0');
    const ctx: Context = { depth: 0, outer: [], ctes: [], features };
    let withClause = '';
    if (this.r.chance(0.15)) {
      const n = this.r.int(1, 2);
      const parts: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `w${i + 1}`;
        const body = this.select({ ...ctx, depth: 1 }, null, true);
        const cols = body.types.map((type, j) => ({ name: `c${j + 1}`, type }));
        parts.push(`${name} AS (${body.sql})`);
        ctx.ctes.push({ ref: name, from: name, cols, table: null });
      }
      withClause = `WITH ${parts.join(', ')} `;
      features.add('CTE');
    }
    let main: SelectResult;
    if (!this.simple && withClause === '' && this.r.chance(0.25)) {
      main = this.analytic(ctx);
    } else if (!this.simple && this.r.chance(0.12)) {
      main = this.setOperation(ctx);
    } else {
      main = this.select(ctx, null, false, true);
    }
    if (this.paramMode) features.add(this.params.length > 0 ? 'prepared with $n' : 'prepared without $n');
    return {
      sql: withClause + main.sql,
      ordered: main.ordered,
      features,
      unordered: main.unordered ?? [],
      params: this.paramMode ? { values: this.params, alt: this.alt } : null,
      block,
      repartition,
    };
  }

  /** The outputs ORDER BY may name (1-based), as `ORDER BY` items; loose outputs are left out. */
  private orderItems(outputs: Output[], item: () => string): string[] {
    return outputs.flatMap((o, i) => (o.loose ? [] : [`${i + 1}${item()}`]));
  }

  private unorderedOf(outputs: Output[], features: Set<string>): Array<{ index: number; kind: UnorderedKind }> {
    const u = outputs.flatMap((o, index) => (o.unordered ? [{ index, kind: o.unordered }] : []));
    if (u.length > 0) features.add('unordered collection aggregate');
    return u;
  }

  /**
   * A dashboard-style statement the pushdown planners take: one table, or
   * customers joined with purchases on the distribution column (optionally
   * with the reference table), or purchases/customers joined with items on
   * other columns (broadcast or repartition joins), aggregates grouped by other columns (or by
   * the distribution column, or not at all) with HAVING on aggregates,
   * ORDER BY every output and LIMIT/OFFSET; or plain rows ordered by every
   * output with LIMIT, or DISTINCT.
   */
  private analytic(ctx: Context): SelectResult {
    const r = this.r;
    ctx.features.add('pushdown shape');
    const c = RANDOM_SCHEMA_TABLES[0]!;
    const p = RANDOM_SCHEMA_TABLES[1]!;
    const g = RANDOM_SCHEMA_TABLES[3]!;
    const sources: Source[] = [];
    let from: string;
    const shape = r.int(0, 5);
    const i = RANDOM_SCHEMA_TABLES[2]!;
    if (shape >= 4) {
      // Not co-located: broadcast or (with repartition_join_threshold = 0) repartition joins.
      const [left, on] = shape === 4 ? [p, 'i.item = p.item'] : [c, 'i.region = c.region'];
      const ref = left === p ? 'p' : 'c';
      sources.push({ ref, from: `${left.name} ${ref}`, cols: left.cols, table: left }, { ref: 'i', from: 'items i', cols: i.cols, table: i });
      from = `${left.name} ${ref} ${r.pick(['JOIN', 'JOIN', 'LEFT JOIN'])} items i ON ${on}`;
      ctx.features.add('non-co-located join');
    } else if (shape === 0) {
      sources.push({ ref: 'p', from: 'purchases p', cols: p.cols, table: p });
      from = 'purchases p';
    } else if (shape === 1) {
      const t = r.pick([c, RANDOM_SCHEMA_TABLES[2]!]);
      sources.push({ ref: 't', from: `${t.name} t`, cols: t.cols, table: t });
      from = `${t.name} t`;
    } else {
      sources.push({ ref: 'c', from: 'customers c', cols: c.cols, table: c }, { ref: 'p', from: 'purchases p', cols: p.cols, table: p });
      from = 'customers c JOIN purchases p ON p.cid = c.cid';
      if (shape === 3) {
        sources.push({ ref: 'g', from: 'regions g', cols: g.cols, table: g });
        from += ' JOIN regions g ON g.region = c.region';
      }
    }
    const where = r.chance(0.5) ? ` WHERE ${this.predicate({ ...ctx, depth: 2 }, sources)}` : '';
    const outputs: Output[] = [];
    let tail = '';
    if (r.chance(0.75)) {
      ctx.features.add('aggregate');
      const groupCount = r.pick([0, 1, 1, 1, 2]);
      const groups: string[] = [];
      for (let i = 0; i < groupCount; i++) {
        const col = r.chance(0.2) ? `${sources[0]!.ref}.${sources[0]!.table!.dist}` : this.column(sources)!;
        if (!groups.includes(col)) groups.push(col);
      }
      outputs.push(...groups.map((g) => ({ sql: g, type: 'int' as ColType })));
      for (let i = r.int(1, 3); i > 0; i--) outputs.push(this.aggregate(sources, ctx, undefined, true));
      if (groups.length > 0 && r.chance(0.3)) {
        // Grouping sets: GROUPING() among the outputs keeps "ORDER BY every output" a total order
        // (a subtotal's NULL and a NULL group value sort alike otherwise).
        const kind = r.pick(['ROLLUP', 'CUBE', 'GROUPING SETS']);
        outputs.push({ sql: `GROUPING(${groups.join(', ')})`, type: 'int' });
        if (kind === 'GROUPING SETS') {
          // Single keys, maybe all keys, maybe the grand total, maybe a set twice (its rows then appear twice).
          const sets = groups.map((g) => `(${g})`);
          if (groups.length > 1 && r.chance(0.5)) sets.push(`(${groups.join(', ')})`);
          if (r.chance(0.5)) sets.push('()');
          if (r.chance(0.15)) sets.push(sets[0]!);
          tail += ` GROUP BY GROUPING SETS (${sets.join(', ')})`;
        } else {
          tail += ` GROUP BY ${kind} (${groups.join(', ')})`;
        }
        ctx.features.add(kind);
      } else if (groups.length > 0) {
        tail += ` GROUP BY ${groups.join(', ')}`;
        ctx.features.add('GROUP BY');
      }
      if (r.chance(0.35)) {
        const num = this.column(sources, 'numeric') ?? 'NULL::int';
        tail += ` HAVING ${r.pick(['count(*)', `sum(${num})`, `avg(${num})`, `count(DISTINCT ${num})`, `max(${num})`])} ${r.pick(['>', '<', '>='])} ${r.int(1, 40)}`;
        ctx.features.add('HAVING');
      }
    } else {
      for (let i = r.int(1, 3); i > 0; i--) outputs.push(this.expression(sources));
      if (r.chance(0.3)) {
        ctx.features.add('DISTINCT');
        return { sql: `SELECT DISTINCT ${outputs.map((o) => o.sql).join(', ')} FROM ${from}${where}`, types: [], ordered: false };
      }
    }
    let ordered = false;
    const items = this.orderItems(outputs, () => `${r.pick(['', ' DESC'])}${r.pick(['', ' NULLS FIRST', ' NULLS LAST'])}`);
    if (r.chance(0.7) && items.length > 0) {
      tail += ` ORDER BY ${items.join(', ')}`;
      ordered = true;
      ctx.features.add('ORDER BY');
      if (r.chance(0.6)) {
        tail += ` LIMIT ${r.int(1, 10)}${r.chance(0.3) ? ` OFFSET ${r.int(1, 5)}` : ''}`;
        ctx.features.add('LIMIT');
      }
    }
    return { sql: `SELECT ${outputs.map((o) => o.sql).join(', ')} FROM ${from}${where}${tail}`, types: [], ordered, unordered: this.unorderedOf(outputs, ctx.features) };
  }

  private nextAlias(): string {
    return `a${++this.aliasCounter}`;
  }

  private setOperation(ctx: Context): SelectResult {
    const n = this.r.int(1, 2);
    const types: ColType[] = [];
    for (let i = 0; i < n; i++) types.push(this.r.pick(['int', 'text', 'num', 'int', 'text', 'num', 'float'] as const));
    const op = this.r.pick(['UNION', 'UNION ALL', 'INTERSECT', 'EXCEPT', 'INTERSECT ALL', 'EXCEPT ALL']);
    ctx.features.add(`set operation ${op}`);
    const left = this.select({ ...ctx, depth: ctx.depth + 1 }, types, false);
    const right = this.select({ ...ctx, depth: ctx.depth + 1 }, types, false);
    let sql = `(${left.sql}) ${op} (${right.sql})`;
    let ordered = false;
    if (this.r.chance(0.5)) {
      sql += ` ORDER BY ${types.map((_, i) => `${i + 1}${this.r.pick([' ASC', ' DESC', ''])}${this.r.pick(['', ' NULLS FIRST', ' NULLS LAST'])}`).join(', ')}`;
      ordered = true;
      if (this.r.chance(0.5)) sql += ` LIMIT ${this.r.int(1, 8)}`;
    }
    return { sql, types, ordered };
  }

  private tableSource(ctx: Context): Source {
    const useCte = ctx.ctes.length > 0 && this.r.chance(0.35);
    if (useCte) {
      const c = this.r.pick(ctx.ctes);
      const alias = this.nextAlias();
      return { ref: alias, from: `${c.from} ${alias}`, cols: c.cols, table: null };
    }
    if (ctx.depth < 2 && this.r.chance(0.1)) {
      const sub = this.select({ ...ctx, depth: ctx.depth + 1, outer: [] }, null, true);
      const alias = this.nextAlias();
      ctx.features.add('derived table');
      return { ref: alias, from: `(${sub.sql}) ${alias}`, cols: sub.types.map((type, i) => ({ name: `c${i + 1}`, type })), table: null };
    }
    const t = this.r.pick(RANDOM_SCHEMA_TABLES);
    const alias = this.nextAlias();
    return { ref: alias, from: `${t.name} ${alias}`, cols: t.cols, table: t };
  }

  private ref(s: Source): string {
    return s.ref;
  }

  private fromText(s: Source): string {
    return s.from;
  }

  /** A column of the sources: of `type`; 'numeric' is int, num or float, 'exact' int or num. */
  private column(sources: Source[], type?: ColType | 'numeric' | 'exact'): string | null {
    const all: string[] = [];
    for (const s of sources) {
      for (const c of s.cols) {
        const ok = !type || c.type === type
          || (type === 'numeric' && (c.type === 'int' || c.type === 'num' || c.type === 'float'))
          || (type === 'exact' && (c.type === 'int' || c.type === 'num'));
        if (ok) all.push(`${this.ref(s)}.${c.name}`);
      }
    }
    return all.length > 0 ? this.r.pick(all) : null;
  }

  private typeOfColumn(sources: Source[], colRef: string): ColType {
    const [alias, name] = colRef.split('.');
    for (const s of sources) if (this.ref(s) === alias) for (const c of s.cols) if (c.name === name) return c.type;
    return 'int';
  }

  private literal(type: ColType): string {
    const v = this.literalValue(type);
    return type === 'text' ? q(v) : v;
  }

  /** A literal's value as text (unquoted). */
  private literalValue(type: ColType): string {
    switch (type) {
      case 'int':
        return String(this.r.int(0, 60));
      case 'num':
        return `${this.r.int(-10, 200)}.${this.r.int(0, 9)}`;
      case 'float':
        return String(this.r.int(-800, 800) / 8);
      default:
        return this.r.pick([...REGION_NAMES, ...NOTES.filter((x) => x), ...CATEGORIES, 'n1', 'n20', 'A', 'B']);
    }
  }

  /** A literal compared with a column of its type, or (in a prepared statement) a $n parameter standing for one. */
  private param(type: ColType, value?: string): string {
    if (!this.paramMode || !this.r.chance(0.7)) return value ?? this.literal(type);
    this.params.push(value ?? this.literalValue(type));
    this.alt.push(this.literalValue(type));
    return `$${this.params.length}`;
  }

  /** FROM clause with joins; returns the sources in scope. */
  private from(ctx: Context): { sql: string; sources: Source[]; joinPreds: string[] } {
    const count = ctx.depth >= 2 ? 1 : this.r.pick([1, 1, 2, 2, 2, 3]);
    const sources: Source[] = [];
    const joinPreds: string[] = [];
    let sql = '';
    // The sources an ON condition may name: those joined since the last comma (`a, b JOIN c ON a.x = c.x` is an error).
    let visible: Source[] = [];
    for (let i = 0; i < count; i++) {
      const s = this.tableSource(ctx);
      if (i === 0) {
        sql = this.fromText(s);
        sources.push(s);
        visible.push(s);
        continue;
      }
      const comma = this.r.chance(0.3);
      const cond = this.joinCondition(comma ? sources : visible, s);
      if (!cond) {
        sql += ` CROSS JOIN ${this.fromText(s)}`;
        ctx.features.add('CROSS JOIN');
        visible.push(s);
      } else if (comma) {
        sql += `, ${this.fromText(s)}`;
        joinPreds.push(cond);
        ctx.features.add('comma join');
        visible = [s];
      } else {
        const kind = this.r.pick(['JOIN', 'LEFT JOIN', 'LEFT JOIN', 'RIGHT JOIN', 'FULL JOIN', 'INNER JOIN']);
        ctx.features.add(kind === 'INNER JOIN' ? 'JOIN' : kind);
        let on = cond;
        // Extra conditions in ON (a filter of one side, or a distribution column = constant), except for FULL JOIN,
        // which needs merge- or hash-joinable conditions only.
        if (kind !== 'FULL JOIN' && this.r.chance(0.3)) {
          const side = this.r.chance(0.5) ? [s] : [...visible, s];
          on += ` AND ${(this.r.chance(0.4) && this.distEquality(side, ctx)) || this.predicate({ ...ctx, depth: 2 }, side)}`;
          ctx.features.add('extra ON condition');
        }
        sql += ` ${kind} ${this.fromText(s)} ON ${on}`;
        visible.push(s);
      }
      sources.push(s);
    }
    return { sql, sources, joinPreds };
  }

  private joinCondition(left: Source[], right: Source): string | null {
    // Prefer distribution columns when both sides have them (co-located joins), else any same-typed columns.
    const rRef = this.ref(right);
    if (right.table?.dist && this.r.chance(0.5)) {
      for (const l of left) {
        if (l.table?.dist && l.table.name !== 'items' && right.table.name !== 'items') {
          return `${this.ref(l)}.${l.table.dist} = ${rRef}.${right.table.dist}`;
        }
      }
    }
    // Mostly key-like columns, so joins stay small.
    const keyish = right.cols.filter((c) => KEYISH.has(c.name));
    const rc = keyish.length > 0 && this.r.chance(0.75) ? this.r.pick(keyish) : this.r.pick(right.cols);
    const candidates: string[] = [];
    for (const l of left) for (const c of l.cols) if (c.type === rc.type && (KEYISH.has(c.name) || this.r.chance(0.3))) candidates.push(`${this.ref(l)}.${c.name}`);
    if (candidates.length === 0) return null;
    return `${this.r.pick(candidates)} = ${rRef}.${rc.name}`;
  }

  private predicate(ctx: Context, sources: Source[]): string {
    const r = this.r;
    const kind = r.int(0, 13);
    const col = this.column(sources)!;
    const type = this.typeOfColumn(sources, col);
    switch (kind) {
      case 0:
      case 1:
        return `${col} ${r.pick(['=', '<>', '<', '>', '<=', '>='])} ${this.param(type)}`;
      case 2:
        return `${col} IS ${r.pick(['', 'NOT '])}NULL`;
      case 3:
        return type === 'text' ? `${col} LIKE ${q(r.pick(['n1%', '%o%', 'g%', '%t', 'e%']))}` : `${col} BETWEEN ${this.param(type)} AND ${this.param(type)}`;
      case 4:
        return `${col} IN (${[1, 2, 3].map(() => this.param(type)).join(', ')})`;
      case 5:
        return `coalesce(${col}, ${this.param(type)}) ${r.pick(['=', '<', '>='])} ${this.param(type)}`;
      case 6:
      case 7: {
        if (ctx.depth >= 2) return `${col} IS NOT NULL`;
        ctx.features.add('IN subquery');
        const not = r.chance(0.3) ? 'NOT ' : '';
        if (not) ctx.features.add('NOT IN subquery');
        const sub = this.select({ ...ctx, depth: ctx.depth + 1, outer: r.chance(0.4) ? sources : [] }, [type], false);
        return `${col} ${not}IN (${sub.sql})`;
      }
      case 8:
      case 9: {
        if (ctx.depth >= 2) return `${col} IS NULL`;
        const not = r.chance(0.4) ? 'NOT ' : '';
        ctx.features.add(`${not}EXISTS`);
        const sub = this.select({ ...ctx, depth: ctx.depth + 1, outer: sources }, null, false, false, true);
        return `${not}EXISTS (${sub.sql})`;
      }
      case 10: {
        if (ctx.depth >= 2 || type === 'text' || this.simple) return `${col} IS NOT NULL`;
        ctx.features.add('scalar subquery');
        const inner = this.tableSource({ ...ctx, ctes: [] });
        const innerCol = this.column([inner], 'numeric') ?? `${this.ref(inner)}.${inner.cols[0]!.name}`;
        let where = '';
        const corr = this.correlation([inner], sources);
        if (corr && r.chance(0.5)) {
          where = ` WHERE ${corr}`;
          ctx.features.add('correlated subquery');
        }
        const agg = this.typeOfColumn([inner], innerCol) === 'text' ? 'count' : r.pick(['max', 'min', 'avg', 'sum', 'count']);
        return `${col} ${r.pick(['<', '>', '='])} (SELECT ${agg}(${innerCol}) FROM ${this.fromText(inner)}${where})`;
      }
      case 11:
        return `NOT (${this.predicate(ctx, sources)})`;
      case 12:
        return `(${this.predicate(ctx, sources)} OR ${this.predicate(ctx, sources)})`;
      default: {
        // An equality on a distribution column: router plans when it pins every distributed table.
        const withDist = sources.filter((s) => s.table?.dist);
        if (withDist.length === 0) return `${col} IS NOT NULL`;
        const s = r.pick(withDist);
        ctx.features.add('distribution column = constant');
        return `${this.ref(s)}.${s.table!.dist} = ${this.param('int', String(r.int(1, 45)))}`;
      }
    }
  }

  /** `<distribution column> = <constant>` on one of the sources that has one, or null. */
  private distEquality(sources: Source[], ctx: Context): string | null {
    const withDist = sources.filter((s) => s.table?.dist);
    if (withDist.length === 0) return null;
    const s = this.r.pick(withDist);
    ctx.features.add('distribution column = constant');
    return `${this.ref(s)}.${s.table!.dist} = ${this.param('int', String(this.r.int(1, 45)))}`;
  }

  /** An equality between a column of `inner` and a same-typed column of `outer`. */
  private correlation(inner: Source[], outer: Source[]): string | null {
    const pairs: string[] = [];
    for (const i of inner) for (const ic of i.cols) for (const o of outer) for (const oc of o.cols) {
      if (ic.type === oc.type && (ic.name === oc.name || this.r.chance(0.15))) pairs.push(`${this.ref(i)}.${ic.name} = ${this.ref(o)}.${oc.name}`);
    }
    return pairs.length > 0 ? this.r.pick(pairs) : null;
  }

  private expression(sources: Source[], type?: ColType): { sql: string; type: ColType } {
    const r = this.r;
    const col = this.column(sources, type) ?? this.column(sources)!;
    const t = this.typeOfColumn(sources, col);
    switch (r.int(0, 5)) {
      case 0:
        return t === 'text' ? { sql: `upper(${col})`, type: t } : { sql: `${col} + ${this.literal(t === 'num' ? 'int' : t)}`, type: t };
      case 1:
        return { sql: `coalesce(${col}, ${this.literal(t)})`, type: t };
      case 2:
        return t === 'text' ? { sql: `length(${col})`, type: 'int' } : { sql: `CASE WHEN ${col} > ${this.literal(t)} THEN ${col} ELSE ${this.literal(t)} END`, type: t };
      default:
        return { sql: col, type: t };
    }
  }

  /**
   * An aggregate of the sources (of `type` when given). `loose` allows
   * outputs whose text depends on the combine order: collection aggregates
   * without ORDER BY and float variances/covariances (top-level outputs only).
   */
  private aggregate(sources: Source[], ctx: Context, type?: ColType, loose = false): Output {
    const r = this.r;
    if (type === 'text') {
      const c = this.column(sources, 'text');
      if (c) {
        ctx.features.add('string_agg');
        return { sql: `string_agg(${c}, ',' ORDER BY ${c})`, type: 'text' };
      }
    }
    const numeric = this.column(sources, 'numeric');
    const exact = this.column(sources, 'exact');
    const any = this.column(sources)!;
    const options: Array<() => Output> = [
      () => ({ sql: 'count(*)', type: 'int' }),
      () => ({ sql: `count(${any})`, type: 'int' }),
      () => {
        ctx.features.add('count(DISTINCT)');
        return { sql: `count(DISTINCT ${any})`, type: 'int' };
      },
    ];
    if (numeric) {
      const nt = this.typeOfColumn(sources, numeric);
      options.push(
        () => ({ sql: `sum(${numeric})`, type: nt }),
        () => ({ sql: `avg(${numeric})`, type: nt === 'float' ? 'float' : 'num' }),
        () => ({ sql: `min(${numeric})`, type: nt }),
        () => ({ sql: `max(${numeric})`, type: nt }),
        () => ({ sql: `bool_or(${numeric} > ${this.literal(nt)})::int`, type: 'int' }),
        () => ({ sql: `sum(DISTINCT ${numeric})`, type: nt }),
      );
    }
    if (exact) {
      options.push(
        () => ({ sql: `stddev_samp(${exact})`, type: 'num' }),
        () => ({ sql: `${r.pick(['var_pop', 'variance', 'stddev_pop'])}(${exact})`, type: 'num' }),
      );
    }
    if (loose) {
      const text = this.column(sources, 'text');
      const float = this.column(sources, 'float');
      options.push(
        () => {
          const fn = r.pick(['array_agg', 'json_agg', 'jsonb_agg']);
          ctx.features.add(fn);
          // json has no ordering operator, so collections stay out of ORDER BY (loose) even when ordered inside
          if (r.chance(0.3)) return { sql: `${fn}(${any} ORDER BY ${any}${r.pick(['', ' DESC', ' NULLS FIRST'])})`, type: 'text', loose: true };
          return { sql: `${fn}(${any})`, type: 'text', loose: true, unordered: fn === 'array_agg' ? 'array' : 'json' };
        },
      );
      if (text) {
        options.push(() => {
          ctx.features.add('string_agg');
          return r.chance(0.3) ? { sql: `string_agg(${text}, ',' ORDER BY ${text} DESC)`, type: 'text' } : { sql: `string_agg(${text}, ',')`, type: 'text', loose: true, unordered: 'string' };
        });
      }
      if (float) {
        options.push(() => {
          ctx.features.add('float variance');
          return { sql: `${r.pick(['var_pop', 'var_samp', 'variance', 'stddev_samp', 'stddev_pop', 'stddev'])}(${float})`, type: 'float', loose: true };
        });
      }
      if (numeric) {
        const other = this.column(sources, 'numeric')!;
        options.push(() => {
          ctx.features.add('covariance/correlation');
          return { sql: `${r.pick(['corr', 'covar_pop', 'covar_samp', 'regr_slope', 'regr_r2', 'regr_avgx'])}(${numeric}, ${other})`, type: 'float', loose: true };
        });
      }
    }
    for (let guard = 0; guard < 20; guard++) {
      const a = r.pick(options)();
      if (!type || a.type === type || (type === 'num' && a.type === 'int')) return a;
    }
    return type === 'text' ? { sql: `min(${any}::text)`, type: 'text' } : { sql: 'count(*)', type: 'int' };
  }

  private window(sources: Source[], ctx: Context): Output {
    const r = this.r;
    const part = this.column(sources);
    const ord = this.column(sources);
    const over = `OVER (${r.chance(0.7) ? `PARTITION BY ${part}` : ''}${r.chance(0.6) ? ` ORDER BY ${ord}${r.pick(['', ' DESC', ' NULLS FIRST'])}` : ''})`;
    const numeric = this.column(sources, 'numeric');
    const fn = r.pick(['rank()', 'dense_rank()', 'count(*)', numeric ? `sum(${numeric})` : 'count(*)', numeric ? `max(${numeric})` : 'rank()']);
    ctx.features.add('window function');
    const type: ColType = fn.startsWith('sum') || fn.startsWith('max') ? this.typeOfColumn(sources, numeric!) : 'int';
    return { sql: `${fn} ${over}`, type };
  }

  /**
   * A SELECT. `types` forces the output column types (set operations, IN
   * subqueries); `named` aliases the outputs c1, c2… (derived tables, CTEs);
   * `exists` makes a correlated EXISTS body.
   */
  private select(ctx: Context, types: ColType[] | null, named: boolean, top = false, exists = false): SelectResult {
    const r = this.r;
    const { sql: fromSql, sources, joinPreds } = this.from(ctx);
    const preds = [...joinPreds];
    if (exists || (ctx.outer.length > 0 && r.chance(0.7))) {
      const corr = this.correlation(sources, ctx.outer);
      if (corr) {
        preds.push(corr);
        ctx.features.add('correlated subquery');
      }
    }
    const extra: string[] = [];
    for (let i = r.pick([0, 1, 1, 2, 3]); i > 0; i--) extra.push(this.predicate(ctx, sources));
    // A condition on the enclosing query's columns only, inside the subquery.
    if (ctx.outer.length > 0 && r.chance(0.25)) {
      extra.push((r.chance(0.4) && this.distEquality(ctx.outer, ctx)) || this.predicate({ ...ctx, depth: 2 }, ctx.outer));
      ctx.features.add('outer-only condition in subquery');
    }
    if (extra.length > 1 && r.chance(0.2)) preds.push(`(${extra.join(' OR ')})`);
    else preds.push(...extra);
    const where = preds.length > 0 ? ` WHERE ${preds.join(' AND ')}` : '';

    if (exists) return { sql: `SELECT 1 FROM ${fromSql}${where}`, types: ['int'], ordered: false };

    const wantCount = types ? types.length : r.int(1, 4);
    const aggregateMode = !this.simple && r.chance(0.4);
    const outputs: Output[] = [];
    const loose = top && !types && ctx.depth === 0;
    let groupBy = '';
    let having = '';
    if (aggregateMode) {
      ctx.features.add('aggregate');
      const groupCount = r.int(0, Math.min(2, wantCount));
      const groupCols: Array<{ sql: string; type: ColType }> = [];
      for (let i = 0; i < groupCount; i++) {
        const want = types?.[i];
        const c = this.column(sources, want);
        if (!c) break;
        groupCols.push({ sql: c, type: this.typeOfColumn(sources, c) });
      }
      outputs.push(...groupCols);
      while (outputs.length < wantCount) outputs.push(this.aggregate(sources, ctx, types?.[outputs.length], loose));
      if (groupCols.length > 0) {
        groupBy = ` GROUP BY ${groupCols.map((g) => g.sql).join(', ')}`;
        ctx.features.add('GROUP BY');
        if (r.chance(0.3)) {
          having = ` HAVING count(*) ${r.pick(['>', '>=', '<'])} ${r.int(1, 4)}`;
          ctx.features.add('HAVING');
        }
      }
    } else {
      for (let i = 0; i < wantCount; i++) {
        if (!types && top && !this.simple && r.chance(0.15) && ctx.depth === 0) outputs.push(this.window(sources, ctx));
        else outputs.push(this.expression(sources, types?.[i]));
      }
    }
    // Forced types that could not be met become casts (int ↔ num) or text conversions.
    const list = outputs.map((o, i) => {
      let sql = o.sql;
      const want = types?.[i];
      if (want && want !== o.type) {
        // never text → number: whether such a cast fails depends on the plan
        if (o.type === 'text') sql = `length(${sql})`;
        sql = want === 'text' ? `(${sql})::text` : want === 'int' ? `(${sql})::int` : want === 'float' ? `(${sql})::float8` : `(${sql})::numeric`;
      }
      return named ? `${sql} AS c${i + 1}` : sql;
    });
    const outTypes = outputs.map((o, i) => types?.[i] ?? o.type);
    const distinct = !aggregateMode && !this.simple && r.chance(0.2) ? 'DISTINCT ' : '';
    if (distinct) ctx.features.add('DISTINCT');
    let sql = `SELECT ${distinct}${list.join(', ')} FROM ${fromSql}${where}${groupBy}${having}`;
    let ordered = false;
    const items = this.orderItems(outputs, () => `${r.pick(['', ' DESC', ' ASC'])}${r.pick(['', '', ' NULLS FIRST', ' NULLS LAST'])}`);
    if (!this.simple && (top || (!types && r.chance(0.1))) && r.chance(top ? 0.45 : 1) && items.length > 0) {
      sql += ` ORDER BY ${items.join(', ')}`;
      ordered = true;
      ctx.features.add('ORDER BY');
      if (r.chance(0.5)) {
        sql += ` LIMIT ${r.int(1, 10)}`;
        ctx.features.add('LIMIT');
        if (r.chance(0.3)) {
          sql += ` OFFSET ${r.int(1, 5)}`;
          ctx.features.add('OFFSET');
        }
      }
    }
    return { sql, types: outTypes, ordered: ordered && top, unordered: top ? this.unorderedOf(outputs, ctx.features) : [] };
  }
}
