/**
 * Shared pieces of the router tests: clients that keep every value as
 * PostgreSQL's text (so results of pgweave and a plain PostgreSQL compare
 * byte for byte, numeric precision included), a seeded PRNG for
 * deterministic workloads, outcome normalisation, running client programs
 * (pgbench, psql) without blocking the event loop of the in-process
 * coordinator, and the worker PostgreSQL servers of a test cluster.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { loadClusterState, workerNodes, type ClusterNode, type ClusterState } from '../../src/cluster/index.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';

/** Every value stays the text PostgreSQL sent. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export async function textClient(url: string, applicationName = 'pgweave-router-test'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: TEXT_TYPES, application_name: applicationName });
  // An 'error' event without a listener would end the test process; the next query reports it instead.
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** Runs `fn` with a text client of its own (closed afterwards), so a transaction it leaves open harms no other. */
export async function withTextClient<T>(url: string, fn: (s: pg.Client) => Promise<T>): Promise<T> {
  const s = await textClient(url);
  try {
    return await fn(s);
  } finally {
    await s.end().catch(() => {});
  }
}

/** Mulberry32: small, fast, and the same sequence on every machine. */
export function prng(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
  };
}

/** One statement's result, reduced to what must be equal on both systems. */
export interface ResultShape {
  command: string | null;
  rowCount: number | null;
  fields: string[];
  types: number[];
  rows: Array<Array<string | null>>;
}

export type Outcome = { ok: true; results: ResultShape[] } | { ok: false; code: string; message: string; connectionLost: boolean };

export interface Statement {
  /** Category, for the counts the test reports. */
  kind: string;
  sql: string;
  /** Extended protocol with these values (otherwise the simple protocol). */
  params?: unknown[];
  /** A named prepared statement (extended protocol). */
  name?: string;
  /** The statement's ORDER BY defines the complete row order. */
  ordered?: boolean;
  /** Meant to touch several shard groups (otherwise it must be routed to one). */
  multi?: boolean;
}

function shapeOf(r: pg.QueryResult<unknown[]>, ordered: boolean): ResultShape {
  const rows = (r.rows ?? []).map((row) => row.map((v) => (v === null ? null : String(v))));
  if (!ordered) rows.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : JSON.stringify(x) > JSON.stringify(y) ? 1 : 0));
  return {
    command: r.command ?? null,
    rowCount: r.rowCount ?? null,
    fields: (r.fields ?? []).map((f) => f.name),
    types: (r.fields ?? []).map((f) => f.dataTypeID),
    rows,
  };
}

/** Runs one statement; never throws (errors become outcomes). Gives up after timeoutMs. */
export async function runStatement(c: pg.Client, s: Statement, timeoutMs = 60_000): Promise<Outcome> {
  const config: pg.QueryArrayConfig = { text: s.sql, rowMode: 'array' };
  if (s.params) config.values = s.params;
  if (s.name) config.name = s.name;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const r = (await Promise.race([c.query(config), timeout])) as unknown as pg.QueryArrayResult | pg.QueryArrayResult[];
    const list = Array.isArray(r) ? r : [r];
    return { ok: true, results: list.map((x) => shapeOf(x, s.ordered ?? false)) };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const code = e.code ?? 'NONE';
    const connectionLost = !e.code || /terminated|ECONNRESET|not queryable|no answer within/i.test(e.message ?? '');
    return { ok: false, code, message: e.message ?? String(err), connectionLost: connectionLost && !/^[0-9A-Z]{5}$/.test(code) };
  } finally {
    clearTimeout(timer);
  }
}

/** Differences between two outcomes, or null when they are the same. */
export function difference(expected: Outcome, actual: Outcome): string | null {
  if (!expected.ok || !actual.ok) {
    if (!expected.ok && !actual.ok && expected.code === actual.code) return null;
    const show = (o: Outcome) => (o.ok ? `ok (${o.results.map((r) => `${r.command} ${r.rowCount}`).join('; ')})` : `error ${o.code}: ${o.message}`);
    return `PostgreSQL: ${show(expected)}\n    pgweave:    ${show(actual)}`;
  }
  if (expected.results.length !== actual.results.length) return `${expected.results.length} results vs ${actual.results.length}`;
  for (let i = 0; i < expected.results.length; i++) {
    const e = expected.results[i]!;
    const a = actual.results[i]!;
    for (const key of ['command', 'rowCount', 'fields', 'types'] as const) {
      if (JSON.stringify(e[key]) !== JSON.stringify(a[key])) return `${key}: PostgreSQL ${JSON.stringify(e[key])}, pgweave ${JSON.stringify(a[key])}`;
    }
    if (e.rows.length !== a.rows.length) return `rows: PostgreSQL ${e.rows.length}, pgweave ${a.rows.length}\n    PostgreSQL: ${preview(e.rows)}\n    pgweave:    ${preview(a.rows)}`;
    for (let j = 0; j < e.rows.length; j++) {
      if (JSON.stringify(e.rows[j]) !== JSON.stringify(a.rows[j])) return `row ${j}: PostgreSQL ${JSON.stringify(e.rows[j])}, pgweave ${JSON.stringify(a.rows[j])}`;
    }
  }
  return null;
}

function preview(rows: unknown[]): string {
  const s = JSON.stringify(rows.slice(0, 5));
  return rows.length > 5 ? `${s.slice(0, 300)} …` : s.slice(0, 300);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program asynchronously (a synchronous spawn would freeze the
 * coordinator, which runs in this very process). Killed by its own pid
 * after timeoutMs.
 */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The test cluster's state (data directories and logs of every PostgreSQL). */
export function clusterState(cluster: TestCluster): ClusterState {
  const state = loadClusterState(cluster.dir);
  if (!state) throw new Error(`no cluster state in ${cluster.dir}`);
  return state;
}

/** The worker PostgreSQL listening on `port`. */
export function workerByPort(cluster: TestCluster, port: number): ClusterNode {
  const node = workerNodes(clusterState(cluster)).find((n) => n.port === port);
  if (!node) throw new Error(`no worker on port ${port}`);
  return node;
}

/** A URL straight to a node's PostgreSQL as the client superuser (same password everywhere). */
export function nodeUrl(cluster: TestCluster, port: number): string {
  return `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${port}/postgres`;
}

/** Registers every worker of the cluster (startTestCluster leaves them unregistered). */
export async function addWorkers(c: pg.Client, cluster: TestCluster): Promise<void> {
  for (const w of cluster.workers) await c.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
}

/**
 * The worker port holding each key's shard of `table` (hash of a bigint or
 * int key as PostgreSQL computes it, looked up in pg_dist_shard).
 */
export async function nodeOfKeys(c: pg.Client, table: string, keys: number[], hashFn = 'hashint8'): Promise<Map<number, number>> {
  const r = await c.query<{ k: string; port: string }>(
    `SELECT k.k, n.nodeport AS port
       FROM unnest($1::bigint[]) AS k(k)
       JOIN pg_dist_shard s ON s.logicalrelid = $2::regclass
        AND ${hashFn}(k.k::${hashFn === 'hashint8' ? 'bigint' : 'int'}) BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int
       JOIN pg_dist_placement p ON p.shardid = s.shardid
       JOIN pg_dist_node n ON n.groupid = p.groupid`,
    [keys, table],
  );
  return new Map(r.rows.map((row) => [Number(row.k), Number(row.port)]));
}

/**
 * One cluster served by two coordinators: the cluster's own with pipelined
 * channels off (every statement on the session's own connections) and a
 * second with them on (autocommit statements may share a channel). `urls`
 * and `addresses` are keyed 'off' and 'on'; `admin` is a text client of the
 * first with the workers added; `stop` ends it and stops both.
 */
export interface PipeliningPair {
  cluster: TestCluster;
  piped: Coordinator;
  admin: pg.Client;
  urls: Record<'off' | 'on', string>;
  addresses: Record<'off' | 'on', { host: string; port: number }>;
  stop(): Promise<void>;
}

export async function startPipeliningPair(): Promise<PipeliningPair> {
  const cluster = await startTestCluster({ workers: 2, coordinator: { pipelineChannels: 0 } });
  const piped = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 }, pipelineChannels: 2 });
  const admin = await textClient(cluster.url);
  await addWorkers(admin, cluster);
  return {
    cluster,
    piped,
    admin,
    urls: { off: cluster.url, on: cluster.url.replace(`:${cluster.config.listen.port}/`, `:${piped.address.port}/`) },
    addresses: { off: cluster.config.listen, on: piped.address },
    async stop() {
      await admin.end().catch(() => {});
      await piped.close();
      await cluster.stop();
    },
  };
}
