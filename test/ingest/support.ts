/**
 * Shared pieces of the ingest tests: a cluster with two workers and a plain
 * PostgreSQL started side by side, raw-protocol COPY FROM STDIN / TO STDOUT
 * (so a test controls exactly how the stream is cut into CopyData messages),
 * and comparison of outcomes and table contents between the two systems.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { frontend, message, rawLogin, errorFieldsOf, type RawConnection } from '../server/raw-protocol.js';
import type { ErrorFields } from '../../src/protocol/errors.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

/** Every value stays PostgreSQL's text. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export async function textClient(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: TEXT_TYPES, application_name: 'pgweave-ingest-test' });
  c.on('error', () => {});
  await c.connect();
  return c;
}

export async function addWorkers(c: pg.Client, cluster: TestCluster): Promise<void> {
  for (const w of cluster.workers) await c.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
}

export interface Endpoint {
  host: string;
  port: number;
  password: string;
}

export function clusterEndpoint(cluster: TestCluster): Endpoint {
  return { host: cluster.config.listen.host, port: cluster.config.listen.port, password: cluster.password };
}

export function plainEndpoint(pgs: TestPostgres): Endpoint {
  return { host: pgs.host, port: pgs.port, password: pgs.password };
}

export function rawConnect(e: Endpoint): Promise<RawConnection> {
  return rawLogin({ host: e.host, port: e.port }, 'postgres', e.password);
}

export interface CopyOutcome {
  ok: boolean;
  tag: string | null;
  error: ErrorFields | null;
  /** Transaction status of the final ReadyForQuery. */
  status: string;
  /** COPY TO: the CopyData payloads, concatenated. */
  data: Buffer;
  /** CopyInResponse/CopyOutResponse: overall format and column count. */
  format: number | null;
  columns: number | null;
}

/** Sends a simple Query and reads everything up to ReadyForQuery. */
export async function rawQuery(conn: RawConnection, sql: string): Promise<CopyOutcome> {
  conn.write(frontend.query(sql));
  return readOutcome(conn);
}

async function readOutcome(conn: RawConnection, timeoutMs = 60_000): Promise<CopyOutcome> {
  const out: CopyOutcome = { ok: true, tag: null, error: null, status: '?', data: Buffer.alloc(0), format: null, columns: null };
  const data: Buffer[] = [];
  for (;;) {
    const m = await conn.next(timeoutMs);
    if (!m) throw new Error('connection closed or timed out before ReadyForQuery');
    if (m.type === 'E') {
      out.ok = false;
      out.error ??= errorFieldsOf(m);
    } else if (m.type === 'C') out.tag = m.body.toString('utf8', 0, m.body.length - 1);
    else if (m.type === 'd') data.push(Buffer.from(m.body));
    else if (m.type === 'H' || m.type === 'G') {
      out.format = m.body[0]!;
      out.columns = m.body.readInt16BE(1);
    } else if (m.type === 'Z') {
      out.status = String.fromCharCode(m.body[0]!);
      out.data = Buffer.concat(data);
      return out;
    }
  }
}

/**
 * Runs `COPY … FROM STDIN`, sending `chunks` as CopyData messages (then
 * CopyDone, or CopyFail when `fail` is given).
 */
export async function copyIn(conn: RawConnection, sql: string, chunks: Buffer[], opts: { fail?: string } = {}): Promise<CopyOutcome> {
  conn.write(frontend.query(sql));
  const first = await conn.next(60_000);
  if (!first) throw new Error('no answer to COPY');
  if (first.type !== 'G') {
    // an error before CopyInResponse: read on to ReadyForQuery
    const out = await readOutcome(conn);
    if (first.type === 'E') {
      out.ok = false;
      out.error = errorFieldsOf(first);
    }
    return out;
  }
  const parts: Buffer[] = chunks.map((c) => message('d', c));
  parts.push(opts.fail !== undefined ? message('f', Buffer.from(opts.fail + '\0')) : message('c'));
  conn.write(Buffer.concat(parts));
  const out = await readOutcome(conn);
  out.format = first.body[0]!;
  out.columns = first.body.readInt16BE(1);
  return out;
}

/** Cuts a buffer into pieces of pseudo-random sizes (1 … max bytes), so rows straddle CopyData messages. */
export function cut(data: Buffer, seed: number, max = 97): Buffer[] {
  const out: Buffer[] = [];
  let a = seed >>> 0;
  let pos = 0;
  while (pos < data.length) {
    a = (Math.imul(a ^ (a >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
    const n = 1 + (a % max);
    out.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/** What must match between pgweave and PostgreSQL for one COPY. */
export function outcomeSummary(o: CopyOutcome): string {
  if (!o.ok) return `ERROR ${o.error!.code}: ${o.error!.message}${o.error!.where ? ` | ${o.error!.where}` : ''}${o.error!.detail ? ` | ${o.error!.detail}` : ''}`;
  return `${o.tag} (${o.columns} columns, format ${o.format})`;
}

/** All rows of a table as sorted text lines. */
export async function tableRows(c: pg.Client, table: string): Promise<string[]> {
  const r = await c.query({ text: `SELECT * FROM ${table}`, rowMode: 'array' });
  return (r.rows as unknown[][]).map((row) => JSON.stringify(row)).sort();
}

/** Runs a program (psql) without blocking the event loop of the in-process coordinator. */
export function runProgram(cmd: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** A test cluster and a plain PostgreSQL with the same schema, text clients and raw connections to both. */
export interface SideBySide {
  cluster: TestCluster;
  plain: TestPostgres;
  weave: pg.Client;
  reference: pg.Client;
  weaveRaw: RawConnection;
  plainRaw: RawConnection;
  stop(): Promise<void>;
}

/**
 * Starts both systems, creates `schema` on each, and on the cluster runs
 * `distribute` (create_distributed_table / create_reference_table calls)
 * with `citus.shard_count` set.
 */
export async function startSideBySide(schema: string, shardCount: number, distribute: string[]): Promise<SideBySide> {
  const [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  const weave = await textClient(cluster.url);
  const reference = await textClient(plain.url);
  await addWorkers(weave, cluster);
  await weave.query(`SET citus.shard_count = ${shardCount}`);
  await weave.query(schema);
  await reference.query(schema);
  for (const sql of distribute) await weave.query(sql);
  const weaveRaw = await rawConnect(clusterEndpoint(cluster));
  const plainRaw = await rawConnect(plainEndpoint(plain));
  return {
    cluster,
    plain,
    weave,
    reference,
    weaveRaw,
    plainRaw,
    async stop() {
      weaveRaw.destroy();
      plainRaw.destroy();
      await weave.end().catch(() => {});
      await reference.end().catch(() => {});
      await Promise.all([cluster.stop(), plain.stop()]);
    },
  };
}

/** Binary COPY data as its tuples (hex), sorted; throws unless the stream ends with one trailer. */
export function binaryTuples(data: Buffer): string[] {
  const out: string[] = [];
  let pos = 19 + data.readInt32BE(15);
  for (;;) {
    const count = data.readInt16BE(pos);
    if (count === -1) break;
    const start = pos;
    pos += 2;
    for (let f = 0; f < count; f++) {
      const len = data.readInt32BE(pos);
      pos += 4 + Math.max(0, len);
    }
    out.push(data.subarray(start, pos).toString('hex'));
  }
  assert.equal(pos + 2, data.length, 'nothing after the trailer');
  return out.sort();
}
