/**
 * Shared pieces of the analytics tests (TPC-H, random differential queries,
 * bounded memory, EXPLAIN) and of bench/analytics.ts: clients that keep every
 * value as PostgreSQL's text (so numeric results compare exactly), COPY FROM
 * STDIN through node-postgres without extra packages, a bounded query runner
 * that turns errors into outcomes, and result comparison that knows which
 * part of a row order the query defines; a differential pair (pgweave and a
 * plain PostgreSQL loaded alike) with its result assertion and EXPLAIN lines.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

/** Every value stays the text PostgreSQL sent. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export async function textClient(url: string, applicationName = 'pgweave-analytics-test'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: TEXT_TYPES, application_name: applicationName });
  // An 'error' event without a listener would end the test process; the next query reports it instead.
  c.on('error', () => {});
  await c.connect();
  return c;
}

/**
 * `COPY … FROM STDIN` through node-postgres: a Submittable that answers the
 * CopyInResponse with the given chunks (each a run of whole COPY text lines).
 */
class CopyIn {
  callback?: (err: Error | null, tag: string) => void;
  private tag = '';
  private error: Error | null = null;
  constructor(private readonly text: string, private readonly chunks: Buffer[]) {}
  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }
  handleCopyInResponse(connection: { sendCopyFromChunk(b: Buffer): void; endCopyFrom(): void }): void {
    for (const c of this.chunks) connection.sendCopyFromChunk(c);
    connection.endCopyFrom();
  }
  handleCommandComplete(msg: { text: string }): void {
    this.tag = msg.text;
  }
  handleError(err: Error): void {
    this.error ??= err;
  }
  handleReadyForQuery(): void {
    this.callback?.(this.error, this.tag);
  }
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

/** Runs `COPY table FROM STDIN` with these chunks of COPY text; resolves with the command tag. */
export function copyIn(c: pg.Client, sql: string, chunks: Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const q = new CopyIn(sql, chunks);
    q.callback = (err, tag) => (err ? reject(err) : resolve(tag));
    c.query(q as unknown as pg.QueryConfig);
  });
}

export interface QueryResultText {
  fields: string[];
  types: number[];
  rows: Array<Array<string | null>>;
  command: string | null;
  /** The count in the command tag (rows returned or changed), as node-postgres reads it. */
  rowCount?: number | null;
}

export type QueryOutcome =
  | { ok: true; result: QueryResultText; ms: number }
  | { ok: false; code: string; message: string; ms: number; timedOut: boolean };

/**
 * Runs one statement; never throws. A statement still running after timeoutMs is an outcome with timedOut.
 * With `values` it goes through the extended protocol (Parse/Bind/Execute), as a
 * named prepared statement when `name` is given (node-postgres parses it once per
 * connection and binds it again on later calls with the same name).
 */
export async function runQuery(c: pg.Client, sql: string, timeoutMs = 60_000, values?: unknown[], name?: string): Promise<QueryOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const started = performance.now();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { timedOut: true })), timeoutMs);
  });
  try {
    const r = (await Promise.race([c.query({ text: sql, rowMode: 'array', ...(values ? { values } : {}), ...(name ? { name } : {}) }), timeout])) as unknown as pg.QueryArrayResult;
    const ms = performance.now() - started;
    return {
      ok: true,
      ms,
      result: {
        fields: (r.fields ?? []).map((f) => f.name),
        types: (r.fields ?? []).map((f) => f.dataTypeID),
        rows: (r.rows ?? []).map((row) => row.map((v) => (v === null ? null : String(v)))),
        command: r.command ?? null,
        rowCount: r.rowCount ?? null,
      },
    };
  } catch (err) {
    const e = err as { code?: string; message?: string; timedOut?: boolean };
    return { ok: false, code: e.code ?? 'NONE', message: e.message ?? String(err), ms: performance.now() - started, timedOut: !!e.timedOut };
  } finally {
    clearTimeout(timer);
  }
}

function rowKey(r: ReadonlyArray<string | null>): string {
  return JSON.stringify(r);
}

function sortedRows(rows: ReadonlyArray<ReadonlyArray<string | null>>): string[] {
  return rows.map(rowKey).sort();
}

/**
 * How a result's order is defined: 'total' (rows compare in order), 'none'
 * (rows compare as multisets), or the output columns of the ORDER BY keys
 * (those columns compare in order, whole rows as multisets).
 */
export type OrderSpec = 'total' | 'none' | number[];

/** float4 and float8: their low bits depend on the order values are combined in. */
const FLOAT_TYPES = new Set([700, 701]);
/**
 * Tolerance of float columns (a float8 carries ~16 significant digits):
 * relative, with magnitudes below 1 counted as 1 — a covariance or r² that
 * cancels to exactly 0 in one summation order leaves rounding noise (5e-34)
 * in another.
 */
const FLOAT_TOLERANCE = 1e-12;

function floatsClose(e: string | null, a: string | null): boolean {
  if (e === a) return true;
  if (e === null || a === null) return false;
  const x = Number(e);
  const y = Number(a);
  if (!Number.isFinite(x) || !Number.isFinite(y)) return false;
  return Math.abs(x - y) <= FLOAT_TOLERANCE * Math.max(1, Math.abs(x), Math.abs(y));
}

/** Row equality: exact text, except float columns within FLOAT_TOLERANCE. */
function rowsMatch(e: ReadonlyArray<string | null>, a: ReadonlyArray<string | null>, floats: ReadonlySet<number>): boolean {
  if (floats.size === 0) return rowKey(e) === rowKey(a);
  if (e.length !== a.length) return false;
  for (let i = 0; i < e.length; i++) if (floats.has(i) ? !floatsClose(e[i]!, a[i]!) : e[i] !== a[i]) return false;
  return true;
}

/** A row's sort key for multiset comparison: float cells rounded to 10 significant digits so near-equal values sort alike. */
function looseKey(r: ReadonlyArray<string | null>, floats: ReadonlySet<number>): string {
  return rowKey(floats.size === 0 ? r : r.map((v, i) => (floats.has(i) && v !== null && Number.isFinite(Number(v)) ? Number(v).toPrecision(10) : v)));
}

/**
 * Differences between two results, or null when they are equal. Values
 * compare as PostgreSQL's text, exactly, except float4/float8 columns, which
 * compare with a relative tolerance of 1e-12 (absolute below 1; sums and variances of floats
 * combined from shards round differently from one scan, as parallel plans do).
 */
export function compareResults(expected: QueryResultText, actual: QueryResultText, order: OrderSpec): string | null {
  if (JSON.stringify(expected.fields) !== JSON.stringify(actual.fields)) return `columns: PostgreSQL ${JSON.stringify(expected.fields)}, pgweave ${JSON.stringify(actual.fields)}`;
  if (JSON.stringify(expected.types) !== JSON.stringify(actual.types)) return `column types: PostgreSQL ${JSON.stringify(expected.types)}, pgweave ${JSON.stringify(actual.types)}`;
  if (expected.rows.length !== actual.rows.length) {
    return `row count: PostgreSQL ${expected.rows.length}, pgweave ${actual.rows.length}\n  PostgreSQL: ${preview(expected.rows)}\n  pgweave:    ${preview(actual.rows)}`;
  }
  const floats = new Set(expected.types.flatMap((t, i) => (FLOAT_TYPES.has(t) ? [i] : [])));
  if (floats.size > 0) return compareWithFloats(expected, actual, order, floats);
  if (order === 'total') {
    for (let i = 0; i < expected.rows.length; i++) {
      if (rowKey(expected.rows[i]!) !== rowKey(actual.rows[i]!)) return `row ${i}: PostgreSQL ${rowKey(expected.rows[i]!)}, pgweave ${rowKey(actual.rows[i]!)}`;
    }
    return null;
  }
  if (Array.isArray(order)) {
    for (let i = 0; i < expected.rows.length; i++) {
      const e = order.map((k) => expected.rows[i]![k]);
      const a = order.map((k) => actual.rows[i]![k]);
      if (rowKey(e) !== rowKey(a)) return `order keys of row ${i}: PostgreSQL ${rowKey(e)}, pgweave ${rowKey(a)}`;
    }
  }
  const e = sortedRows(expected.rows);
  const a = sortedRows(actual.rows);
  for (let i = 0; i < e.length; i++) {
    if (e[i] !== a[i]) return `rows differ (as multisets): first difference PostgreSQL ${e[i]}, pgweave ${a[i]}`;
  }
  return null;
}

/** compareResults for results with float columns: rows match cell by cell, floats within the tolerance. */
function compareWithFloats(expected: QueryResultText, actual: QueryResultText, order: OrderSpec, floats: ReadonlySet<number>): string | null {
  if (order === 'total' || Array.isArray(order)) {
    const keys = Array.isArray(order) ? order : null;
    for (let i = 0; i < expected.rows.length; i++) {
      const e = keys ? keys.map((k) => expected.rows[i]![k]!) : expected.rows[i]!;
      const a = keys ? keys.map((k) => actual.rows[i]![k]!) : actual.rows[i]!;
      const keyFloats = keys ? new Set(keys.flatMap((k, j) => (floats.has(k) ? [j] : []))) : floats;
      if (!rowsMatch(e, a, keyFloats)) return `${keys ? 'order keys of ' : ''}row ${i}: PostgreSQL ${rowKey(e)}, pgweave ${rowKey(a)}`;
    }
    if (order === 'total') return null;
  }
  const sort = (rows: ReadonlyArray<ReadonlyArray<string | null>>) => rows.map((r) => ({ k: looseKey(r, floats), r })).sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0));
  const e = sort(expected.rows);
  const a = sort(actual.rows);
  for (let i = 0; i < e.length; i++) {
    if (!rowsMatch(e[i]!.r, a[i]!.r, floats)) return `rows differ (as multisets, floats to ${FLOAT_TOLERANCE}): first difference PostgreSQL ${rowKey(e[i]!.r)}, pgweave ${rowKey(a[i]!.r)}`;
  }
  return null;
}

/**
 * A collection's text (an array `{…}`, a JSON array `[…]`) split at its
 * top-level commas, quotes and nesting respected: each element with the
 * separator before it (the comma and the blanks after it; '' for the
 * first). Null when the text is not such a collection; no parts when it is
 * empty.
 */
export function collectionParts(text: string, open: string, close: string): Array<{ sep: string; element: string }> | null {
  if (!text.startsWith(open) || !text.endsWith(close)) return null;
  if (text.slice(1, -1).trim() === '') return [];
  const parts: Array<{ sep: string; element: string }> = [];
  let depth = 0;
  let inString = false;
  let start = 1;
  let sep = '';
  for (let i = 1; i < text.length - 1; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      parts.push({ sep, element: text.slice(start, i) });
      let j = i + 1;
      while (text[j] === ' ' || text[j] === '\n') j++;
      sep = text.slice(i, j);
      start = j;
      i = j - 1;
    }
  }
  parts.push({ sep, element: text.slice(start, text.length - 1) });
  return parts;
}

function preview(rows: unknown[]): string {
  const s = JSON.stringify(rows.slice(0, 5));
  return s.length > 400 ? `${s.slice(0, 400)} …` : s;
}

/** Formats milliseconds for diagnostics. */
export function ms(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`;
}

/** A pgweave cluster (2 workers registered) and a plain PostgreSQL holding the same rows, for differential tests. */
export interface DifferentialPair {
  cluster: TestCluster;
  plain: TestPostgres;
  /** Client of pgweave's coordinator. */
  weave: pg.Client;
  /** Client of the plain PostgreSQL. */
  reference: pg.Client;
  stop(): Promise<void>;
}

/**
 * Starts both sides, runs `setup` on both, `distribute` on pgweave only
 * (create_distributed_table / create_reference_table), then ANALYZE on both.
 */
export async function startDifferentialPair(name: string, setup: readonly string[], distribute: readonly string[]): Promise<DifferentialPair> {
  const [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  const clients: pg.Client[] = [];
  const stop = async () => {
    for (const c of clients) await c.end().catch(() => {});
    await Promise.all([cluster.stop(), plain.stop()]);
  };
  try {
    const weave = await textClient(cluster.url, name);
    clients.push(weave);
    const reference = await textClient(plain.url, name);
    clients.push(reference);
    for (const w of cluster.workers) await weave.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
    for (const c of [weave, reference]) for (const s of setup) await c.query(s);
    for (const s of distribute) await weave.query(s);
    for (const c of [weave, reference]) await c.query('ANALYZE');
    return { cluster, plain, weave, reference, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** pgweave's EXPLAIN of `sql`, one string per line. */
export async function explainLines(c: pg.Client, sql: string, options = 'COSTS OFF', values?: unknown[]): Promise<string[]> {
  const r = await c.query({ text: `EXPLAIN (${options}) ${sql}`, values, rowMode: 'array' });
  return (r.rows as string[][]).map((x) => x[0]!);
}

/** Asserts both sides answer `sql` with the same non-empty result (row order compared when `ordered`). */
export async function assertSameResult(weave: pg.Client, reference: pg.Client, sql: string, ordered: boolean): Promise<void> {
  const expected = await runQuery(reference, sql);
  const actual = await runQuery(weave, sql);
  assert.ok(expected.ok, `PostgreSQL failed: ${sql}: ${!expected.ok && expected.message}`);
  assert.ok(actual.ok, `pgweave failed: ${sql}: ${!actual.ok && actual.message}`);
  assert.equal(compareResults(expected.result, actual.result, ordered ? 'total' : 'none'), null, sql);
  assert.ok(expected.result.rows.length > 0, `no rows: ${sql}`);
}
