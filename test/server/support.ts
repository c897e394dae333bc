/**
 * Small shared pieces of the server tests: running client programs without
 * blocking the event loop (the coordinator under test runs in this process),
 * bounded polling, and queries straight to the coordinator PostgreSQL.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import type { NodeAddress } from '../../src/server/config.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program asynchronously (execFileSync would freeze the in-process
 * coordinator it talks to). Kills it, by its own pid, after timeoutMs.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
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

/** Polls `check` every intervalMs until it returns a truthy value or attempts run out. */
export async function pollUntil<T>(check: () => Promise<T>, attempts = 100, intervalMs = 100): Promise<T> {
  let last: T = await check();
  for (let i = 1; i < attempts && !last; i++) {
    await new Promise((r) => setTimeout(r, intervalMs));
    last = await check();
  }
  return last;
}

/** A client straight to the coordinator PostgreSQL (bypassing the coordinator), as postgres. */
export async function directClient(pgAddr: NodeAddress, password: string): Promise<pg.Client> {
  const c = new pg.Client({ host: pgAddr.host, port: pgAddr.port, user: 'postgres', password, database: 'postgres', application_name: 'test-direct' });
  await c.connect();
  return c;
}

/** pids of backends on the coordinator PostgreSQL running a query containing `marker`. */
export async function activeQueryPids(direct: pg.Client, marker: string): Promise<number[]> {
  const r = await direct.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
    [marker],
  );
  return r.rows.map((row) => row.pid);
}

/** The connection options of the URL with another port (another coordinator on the same cluster). */
export function clientConfig(url: string, overrides: pg.ClientConfig = {}): pg.ClientConfig {
  return { connectionString: url, ...overrides };
}

export function withPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

export function sqlstateOf(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}
