/**
 * What the security tests need beyond a driver: the exact messages a query
 * produced (so "no rows" means no DataRow and no CopyData reached the client,
 * not that a driver dropped them after an error), logins that report the
 * SQLSTATE of a refusal, and the PostgreSQL logs of a test cluster.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { frontend, rawLogin, errorFieldsOf, LoginError, type Address, type RawConnection } from '../server/raw-protocol.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

export { LoginError };

export interface Outcome {
  /** SQLSTATE of the first ErrorResponse, if any. */
  error?: string;
  message?: string;
  /** DataRow messages received. */
  rows: string[][];
  /** CopyData messages received, as text. */
  copyData: string[];
  tags: string[];
}

function dataRow(body: Buffer): string[] {
  const n = body.readInt16BE(0);
  let pos = 2;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len < 0) out.push('NULL');
    else {
      out.push(body.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return out;
}

async function collect(conn: RawConnection): Promise<Outcome> {
  const out: Outcome = { rows: [], copyData: [], tags: [] };
  const messages = await conn.readUntil('Z', 30_000);
  if (messages.at(-1)?.type !== 'Z') throw new Error(`no ReadyForQuery; got ${messages.map((m) => m.type).join('')}`);
  for (const m of messages) {
    if (m.type === 'D') out.rows.push(dataRow(m.body));
    else if (m.type === 'd') out.copyData.push(m.body.toString('utf8'));
    else if (m.type === 'C') out.tags.push(m.body.toString('utf8', 0, m.body.length - 1));
    else if (m.type === 'E' && out.error === undefined) {
      const f = errorFieldsOf(m);
      out.error = f.code;
      out.message = f.message;
    }
  }
  return out;
}

/** A logged-in client that reports every query's messages. */
export class Client {
  private constructor(readonly conn: RawConnection) {}

  static async login(addr: Address, user: string, password: string): Promise<Client> {
    return new Client(await rawLogin(addr, user, password));
  }

  /** Simple query protocol. */
  query(sql: string): Promise<Outcome> {
    this.conn.write(frontend.query(sql));
    return collect(this.conn);
  }

  /** Parse (named) + Bind + Execute + Sync. */
  prepare(name: string, sql: string): Promise<Outcome> {
    this.conn.write(Buffer.concat([frontend.parse({ name, text: sql, types: [] }), frontend.sync()]));
    return collect(this.conn);
  }

  execute(name: string, values: Array<string | null>): Promise<Outcome> {
    this.conn.write(Buffer.concat([frontend.bind({ statement: name, values }), frontend.execute({}), frontend.sync()]));
    return collect(this.conn);
  }

  /** Runs sql and fails on any error; returns the rows. */
  async ok(sql: string): Promise<string[][]> {
    const r = await this.query(sql);
    if (r.error) throw new Error(`${sql}: ${r.error} ${r.message}`);
    return r.rows;
  }

  close(): void {
    this.conn.destroy();
  }
}

/** The SQLSTATE a login is refused with, or 'ok' (the connection is closed again). */
export async function loginOutcome(addr: Address, user: string, password: string): Promise<string> {
  try {
    const c = await Client.login(addr, user, password);
    c.close();
    return 'ok';
  } catch (err) {
    if (err instanceof LoginError) return err.fields.code ?? '?';
    throw err;
  }
}

/** Every PostgreSQL log file under a test cluster's directory. */
export function postgresLogs(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else if (name.endsWith('.log') || (d.endsWith('log') && name.startsWith('postgresql'))) found.push(p);
    }
  };
  walk(dir);
  return found;
}

/** The log files (with their text) that contain any of `needles`. */
export function logsContaining(files: string[], needles: string[]): Array<{ file: string; needle: string }> {
  const hits: Array<{ file: string; needle: string }> = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const needle of needles) if (text.includes(needle)) hits.push({ file, needle });
  }
  return hits;
}

/** Collects everything this process writes to stdout/stderr (the in-process coordinator's output) until stopped. */
export function captureOutput(): { text(): string; stop(): void } {
  const chunks: string[] = [];
  const originals = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  const tap =
    (original: typeof process.stdout.write) =>
    (chunk: unknown, ...rest: unknown[]): boolean => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = tap(originals.out) as typeof process.stdout.write;
  process.stderr.write = tap(originals.err) as typeof process.stderr.write;
  return {
    text: () => chunks.join(''),
    stop() {
      process.stdout.write = originals.out;
      process.stderr.write = originals.err;
    },
  };
}

/** A coordinator in a process of its own (`pgweave serve`), as a second machine would run it. */
export interface CoordinatorProcess {
  address: Address;
  /** Everything the process printed so far. */
  output(): string;
  stop(): Promise<void>;
}

const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

/** Starts `pgweave serve --config FILE` with `config` (written to `file`, mode 0600); resolves once it listens. */
export async function startCoordinatorProcess(config: object, file: string): Promise<CoordinatorProcess> {
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const address = await new Promise<Address>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pgweave serve did not start:\n${text}`)), 60_000);
    const check = () => {
      const m = /listening on ([^\s:]+):(\d+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1]!, port: Number(m[2]) });
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pgweave serve exited (${code}):\n${text}`));
    });
  });
  return {
    address,
    output: () => text,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A 2-worker cluster with both workers registered and `postgres` logged in; stop() closes every client login() opened. */
export interface SecurityCluster {
  cluster: TestCluster;
  admin: Client;
  login(user: string, password: string): Promise<Client>;
  stop(): Promise<void>;
}

export async function startSecurityCluster(): Promise<SecurityCluster> {
  const cluster = await startTestCluster({ workers: 2 });
  const clients: Client[] = [];
  const login = async (user: string, password: string): Promise<Client> => {
    const c = await Client.login(cluster.config.listen, user, password);
    clients.push(c);
    return c;
  };
  const stop = async (): Promise<void> => {
    for (const c of clients) c.close();
    await cluster.stop();
  };
  try {
    const admin = await login('postgres', cluster.password);
    for (const w of cluster.workers) await admin.ok(`SELECT citus_add_node('${w.host}', ${w.port})`);
    return { cluster, admin, login, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
