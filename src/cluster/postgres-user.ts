/**
 * Running PostgreSQL binaries as an unprivileged operating-system user.
 *
 * PostgreSQL refuses to run as root. When pgweave itself runs as root (CI
 * containers, fresh VMs), every initdb/pg_ctl/postgres runs as the `postgres`
 * user through `runuser`, and every file PostgreSQL touches (data directories,
 * log files, the initdb password file) is handed to that user. When pgweave runs
 * as an ordinary user, these helpers run binaries directly and change no
 * ownership. PGWEAVE_PG_OS_USER names a different unprivileged user.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, chmodSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** The user PostgreSQL runs as when pgweave runs as root. */
export const POSTGRES_OS_USER = process.env.PGWEAVE_PG_OS_USER ?? 'postgres';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** Error from a failed command, carrying its output so callers can explain the failure. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

let cachedIds: { uid: number; gid: number } | undefined;

/** uid/gid of the PostgreSQL OS user; throws a clear error if it does not exist. */
export function postgresOsUserIds(): { uid: number; gid: number } {
  if (cachedIds) return cachedIds;
  try {
    const uid = Number(execFileSync('id', ['-u', POSTGRES_OS_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', POSTGRES_OS_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    cachedIds = { uid, gid };
    return cachedIds;
  } catch {
    throw new Error(
      `PostgreSQL refuses to run as root, and the user "${POSTGRES_OS_USER}" to run it as does not exist. ` +
        `Create it (useradd --system --create-home ${POSTGRES_OS_USER}), install the postgresql package ` +
        '(which creates it), run pgweave as a non-root user, or set PGWEAVE_PG_OS_USER.',
    );
  }
}

/**
 * Runs a PostgreSQL binary as the PostgreSQL OS user (directly when not root).
 * The working directory is "/" because the caller's (e.g. /root) may be
 * unreadable for that user, which makes initdb and pg_ctl fail.
 */
export function runAsPostgresUser(
  file: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  const [cmd, cmdArgs] = isRoot() ? ['runuser', ['-u', POSTGRES_OS_USER, '--', file, ...args]] : [file, args];
  return new Promise((resolvePromise, reject) => {
    execFile(
      cmd,
      cmdArgs,
      { cwd: '/', encoding: 'utf8', timeout: opts.timeoutMs ?? 180_000, env: opts.env ?? process.env, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof error.code === 'number' ? error.code : null;
          const output = [stderr, stdout].map((s) => s.trim()).filter(Boolean).join('\n');
          reject(new CommandError(`${[file, ...args].join(' ')} failed${output ? `:\n${output}` : `: ${error.message}`}`, stdout, stderr, code));
        } else {
          resolvePromise({ stdout, stderr });
        }
      },
    );
  });
}

/** Hands a file or directory to the PostgreSQL OS user; a no-op unless root. */
export function chownToPostgresUser(path: string): void {
  if (!isRoot()) return;
  const { uid, gid } = postgresOsUserIds();
  chownSync(path, uid, gid);
}

/**
 * Creates a directory (and missing parents, which stay root's and 0755) and
 * hands it to the PostgreSQL OS user with the given mode.
 */
export function ensurePostgresOwnedDir(path: string, mode = 0o700): void {
  mkdirSync(path, { recursive: true, mode: 0o755 });
  chmodSync(path, mode);
  chownToPostgresUser(path);
}

/**
 * Whether the PostgreSQL OS user can reach (traverse into) `path`, judged on
 * the nearest existing ancestor, since missing directories are created 0755.
 * Always true when not root: then PostgreSQL runs as the caller.
 */
export function postgresUserCanReach(path: string): boolean {
  if (!isRoot()) return true;
  let existing = resolve(path);
  while (!existsSync(existing)) existing = dirname(existing);
  try {
    execFileSync('runuser', ['-u', POSTGRES_OS_USER, '--', 'test', '-x', existing], { cwd: '/', stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
