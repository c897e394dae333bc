/**
 * SQL against a cluster node through the `psql` binary.
 *
 * The cluster module sets up roles and checks health before any pgweave code
 * that speaks the protocol is running, and at runtime it may depend only on
 * what the PostgreSQL installation itself provides, so it uses psql, which
 * ships next to initdb. SQL goes in on stdin and the password in PGPASSWORD,
 * so neither shows in the process list. psql runs with -X (no ~/.psqlrc) and
 * without inherited PG* variables, so the caller's environment cannot redirect
 * it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findPgBinaries } from './pg-binaries.js';

export interface SqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
}

/** psql next to the server binaries, else the one on PATH. */
export function psqlPath(): string {
  try {
    const path = join(findPgBinaries().bindir, 'psql');
    if (existsSync(path)) return path;
  } catch {
    // Fall back to PATH.
  }
  return 'psql';
}

/** The environment psql runs with: no PG* variables from the caller, the password, a connect timeout. */
export function psqlEnv(password: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  return { ...env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '5', PGAPPNAME: 'pgweave', ...extra };
}

/**
 * Runs `sql` (one or more statements; it stops at the first error) and returns
 * the result rows of the last statement as arrays of text fields (NULL as '').
 */
export async function runSql(target: SqlTarget, sql: string, timeoutMs = 60_000): Promise<string[][]> {
  const args = [
    '-X', '-q', '-A', '-t',
    '-F', '\t',
    '-v', 'ON_ERROR_STOP=1',
    '-h', target.host,
    '-p', String(target.port),
    '-U', target.user,
    '-d', target.database ?? 'postgres',
    '-f', '-',
  ];
  const { code, stdout, stderr } = await runWithInput(psqlPath(), args, sql, psqlEnv(target.password), timeoutMs);
  if (code !== 0) {
    throw new Error(`SQL on ${target.host}:${target.port} as ${target.user} failed: ${stderr.trim() || `psql exited with ${code}`}`);
  }
  return stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t'));
}

/** Healthy = accepts a login and answers SELECT 1. */
export async function canLogin(target: SqlTarget, timeoutMs = 10_000): Promise<boolean> {
  try {
    const rows = await runSql(target, 'SELECT 1;', timeoutMs);
    return rows[0]?.[0] === '1';
  } catch {
    return false;
  }
}

/** An SQL identifier, always quoted ("" doubles embedded quotes). */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** An SQL string literal, like PostgreSQL's quote_literal: E'' form when it holds backslashes. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('string literal contains a NUL character');
  const quoted = value.replace(/'/g, "''");
  return value.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runWithInput(file: string, args: string[], input: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: signal ? `${stderr}\n(psql killed by ${signal})` : stderr });
    });
    // psql may exit (e.g. refused connection) before reading its input.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}
