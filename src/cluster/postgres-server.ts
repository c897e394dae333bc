/**
 * One local PostgreSQL server: initdb, configuration, start, stop, liveness.
 *
 * Every pgweave node (coordinator PostgreSQL and workers) and every test's plain
 * PostgreSQL is created here, so they all share the settings the design needs:
 * SCRAM authentication only, TCP on one address only (no Unix sockets, so
 * nothing depends on socket directories the OS user may not own), logical WAL
 * and prepared transactions (shard moves and 2PC), and max_prepared_transactions
 * equal to max_connections so every session can hold a prepared transaction.
 *
 * The settings live in DATADIR/pgweave.conf, included from postgresql.conf, so
 * they can be rewritten (e.g. a new port) without editing PostgreSQL's file.
 */
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { pgBinary } from './pg-binaries.js';
import { chownToPostgresUser, ensurePostgresOwnedDir, runAsPostgresUser } from './postgres-user.js';
import { socketPath } from '../pool/node-sockets.js';

export { runAsPostgresUser, chownToPostgresUser, ensurePostgresOwnedDir, isRoot, postgresUserCanReach, POSTGRES_OS_USER } from './postgres-user.js';

export interface PostgresServerOptions {
  dataDir: string;
  port: number;
  /** listen_addresses; default 127.0.0.1. */
  host?: string;
  /** The bootstrap superuser's name; default 'postgres'. */
  superuser?: string;
  superuserPassword: string;
  /** Tests: fsync=off, synchronous_commit=off, full_page_writes=off (and initdb --no-sync). */
  fast?: boolean;
  /** Default 300; max_prepared_transactions is set to the same value. */
  maxConnections?: number;
  /** More postgresql.conf settings; they override the ones above. */
  extraConf?: Record<string, string | number>;
  /**
   * TLS: the certificate and key (PEM files) are copied into the data
   * directory, ssl is turned on, and pg_hba.conf accepts TCP connections only
   * with TLS (`hostssl`).
   */
  tls?: { certFile: string; keyFile: string };
  /**
   * A directory for the server's Unix-domain socket (unix_socket_directories),
   * with SCRAM required there as on TCP; without it the server listens on TCP
   * only. The coordinator reaches a node on its own machine through it
   * (pool/node-sockets.ts).
   */
  socketDir?: string;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_SUPERUSER = 'postgres';
export const DEFAULT_MAX_CONNECTIONS = 300;
const CONF_FILE = 'pgweave.conf';
const INCLUDE_LINE = `include_if_exists = '${CONF_FILE}'`;
const START_TIMEOUT_SECONDS = 120;

/**
 * Creates a new data directory with SCRAM auth for `superuser` and writes
 * pgweave's configuration into it. Throws if the directory already holds a
 * cluster or other files.
 */
export async function initPostgres(o: PostgresServerOptions): Promise<void> {
  if (existsSync(join(o.dataDir, 'PG_VERSION'))) {
    throw new Error(`${o.dataDir} already holds a PostgreSQL data directory`);
  }
  if (existsSync(o.dataDir) && readdirSync(o.dataDir).length > 0) {
    throw new Error(`${o.dataDir} is not empty; initdb needs an empty or missing directory`);
  }
  ensurePostgresOwnedDir(o.dataDir, 0o700);

  // initdb reads the password from a file; it must be readable by the PostgreSQL
  // OS user and by nobody else.
  const pwDir = mkdtempSync(join(tmpdir(), 'pgweave-initdb-'));
  const pwFile = join(pwDir, 'pwfile');
  try {
    chownToPostgresUser(pwDir);
    writeFileSync(pwFile, o.superuserPassword + '\n', { mode: 0o600 });
    chownToPostgresUser(pwFile);
    const args = [
      '-D', o.dataDir,
      '-U', o.superuser ?? DEFAULT_SUPERUSER,
      `--pwfile=${pwFile}`,
      '--auth=scram-sha-256',
      '-E', 'UTF8',
      `--locale=${pickLocale()}`,
      '--no-instructions',
    ];
    if (o.fast) args.push('--no-sync');
    await runAsPostgresUser(pgBinary('initdb'), args);
  } finally {
    rmSync(pwDir, { recursive: true, force: true });
  }
  if (o.tls) installServerCertificate(o.dataDir, o.tls);
  writePostgresConf(o);
  writePgHba(o.dataDir, !!o.tls, o.socketDir !== undefined);
}

const SERVER_CERT = 'server.crt';
const SERVER_KEY = 'server.key';

/** Copies the certificate and key where the server reads them; the key readable by the PostgreSQL user only, as it requires. */
function installServerCertificate(dataDir: string, tls: { certFile: string; keyFile: string }): void {
  for (const [from, to] of [[tls.certFile, SERVER_CERT], [tls.keyFile, SERVER_KEY]] as const) {
    const path = join(dataDir, to);
    copyFileSync(from, path);
    chmodSync(path, 0o600);
    chownToPostgresUser(path);
  }
}

/**
 * (Re)writes DATADIR/pgweave.conf from the options and makes postgresql.conf
 * include it. Takes effect at the next start.
 */
export function writePostgresConf(o: PostgresServerOptions): void {
  const maxConnections = o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const settings: Record<string, string | number> = {
    listen_addresses: o.host ?? DEFAULT_HOST,
    port: o.port,
    unix_socket_directories: o.socketDir ?? '',
    password_encryption: 'scram-sha-256',
    max_connections: maxConnections,
    max_prepared_transactions: maxConnections,
    wal_level: 'logical',
    max_replication_slots: 20,
    max_wal_senders: 20,
  };
  if (o.tls) {
    settings.ssl = 'on';
    settings.ssl_cert_file = SERVER_CERT;
    settings.ssl_key_file = SERVER_KEY;
  }
  if (o.fast) {
    settings.fsync = 'off';
    settings.synchronous_commit = 'off';
    settings.full_page_writes = 'off';
  }
  Object.assign(settings, o.extraConf ?? {});

  const lines = ['# Written by pgweave (src/cluster/postgres-server.ts); rewritten on changes.'];
  for (const [name, value] of Object.entries(settings)) {
    if (!/^[a-z_][a-z0-9_.]*$/i.test(name)) throw new Error(`invalid PostgreSQL setting name: ${name}`);
    lines.push(`${name} = ${formatConfValue(value)}`);
  }
  const confPath = join(o.dataDir, CONF_FILE);
  writeFileSync(confPath, lines.join('\n') + '\n', { mode: 0o600 });
  chownToPostgresUser(confPath);

  const mainConf = join(o.dataDir, 'postgresql.conf');
  const current = readFileSync(mainConf, 'utf8');
  if (!current.split('\n').some((l) => l.trim() === INCLUDE_LINE)) {
    appendFileSync(mainConf, `\n${INCLUDE_LINE}\n`);
  }
}

/** Strings are always quoted (PostgreSQL's '' escape), numbers written as they are. */
function formatConfValue(value: string | number): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`invalid PostgreSQL setting value: ${value}`);
    return String(value);
  }
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Loopback TCP with SCRAM (and TLS, with `tlsOnly`), for normal and replication connections; nothing else. */
function writePgHba(dataDir: string, tlsOnly = false, unixSocket = false): void {
  const type = tlsOnly ? 'hostssl' : 'host   ';
  const lines = [`# Written by pgweave: loopback TCP${unixSocket ? ' and the Unix-domain socket' : ''} with SCRAM${tlsOnly ? ' over TLS' : ''} only.`, '# TYPE  DATABASE     USER  ADDRESS       METHOD'];
  if (unixSocket) for (const db of ['all', 'replication']) lines.push(`local   ${db.padEnd(12)} all                 scram-sha-256`);
  for (const db of ['all', 'replication']) {
    for (const address of ['127.0.0.1/32', '::1/128']) lines.push(`${type} ${db.padEnd(12)} all   ${address.padEnd(13)} scram-sha-256`);
  }
  const path = join(dataDir, 'pg_hba.conf');
  writeFileSync(path, lines.join('\n') + '\n', { mode: 0o600 });
  chownToPostgresUser(path);
}

let cachedLocale: string | undefined;

/** C.UTF-8 where the OS has it (byte-order collation, UTF-8 ctype), else C. */
function pickLocale(): string {
  if (cachedLocale) return cachedLocale;
  cachedLocale = 'C';
  try {
    const locales = execFileSync('locale', ['-a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const utf8 = locales.split('\n').find((l) => /^c\.utf-?8$/i.test(l.trim()));
    if (utf8) cachedLocale = utf8.trim();
  } catch {
    // No `locale` command: C always exists.
  }
  return cachedLocale;
}

/**
 * Starts the server with pg_ctl and waits until it accepts connections. Does
 * nothing if it is already running. The log goes to `logFile` (default
 * DATADIR/server.log), which is created for the PostgreSQL OS user.
 */
export async function startPostgres(o: PostgresServerOptions, logFile?: string): Promise<void> {
  if (postgresPid(o.dataDir) !== null) return;
  if (!existsSync(join(o.dataDir, 'PG_VERSION'))) {
    throw new Error(`${o.dataDir} holds no PostgreSQL data directory; run initPostgres first`);
  }
  const log = logFile ?? join(o.dataDir, 'server.log');
  prepareLogFile(log);
  if (o.socketDir !== undefined) prepareSocketDir(o.socketDir, o.port);
  try {
    await runAsPostgresUser(pgBinary('pg_ctl'), ['start', '-w', '-t', String(START_TIMEOUT_SECONDS), '-D', o.dataDir, '-l', log]);
  } catch (err) {
    // A concurrent start of the same directory wins the race: that is fine.
    if (postgresPid(o.dataDir) !== null && (await isReady(o.dataDir))) return;
    throw new Error(`PostgreSQL in ${o.dataDir} (port ${o.port}) did not start: ${(err as Error).message}\n--- last lines of ${log} ---\n${tailFile(log, 20)}`);
  }
}

/**
 * The socket directory exists (PostgreSQL refuses to start without it: a
 * cleaned /tmp), and holds no lock file of a postmaster that is gone. A
 * killed postmaster whose parent never reaps it stays a zombie, which
 * PostgreSQL takes for a live owner of the lock (as of postmaster.pid).
 */
function prepareSocketDir(dir: string, port: number): void {
  if (!existsSync(dir)) ensurePostgresOwnedDir(dir, 0o755);
  const lock = `${socketPath(dir, port)}.lock`;
  let owner: number;
  try {
    owner = Number.parseInt(readFileSync(lock, 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return;
  }
  if (Number.isInteger(owner) && owner > 0 && !processAlive(owner)) rmSync(lock, { force: true });
}

/** The log file exists before pg_ctl appends to it, owned by the PostgreSQL OS user. */
function prepareLogFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  chownToPostgresUser(path);
}

async function isReady(dataDir: string): Promise<boolean> {
  try {
    const { stdout } = await runAsPostgresUser(pgBinary('pg_ctl'), ['status', '-D', dataDir]);
    return stdout.includes('server is running');
  } catch {
    return false;
  }
}

/** Stops the server of `dataDir` and waits until it is gone; does nothing if it is not running. */
export async function stopPostgres(dataDir: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (postgresPid(dataDir) === null) return;
  try {
    await runAsPostgresUser(pgBinary('pg_ctl'), ['stop', '-w', '-t', String(START_TIMEOUT_SECONDS), '-D', dataDir, '-m', mode]);
  } catch (err) {
    if (postgresPid(dataDir) !== null) throw err;
  }
}

/**
 * The postmaster's pid from DATADIR/postmaster.pid, or null when the file is
 * missing or stale (no such process, or a process that is not PostgreSQL).
 */
export function postgresPid(dataDir: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (!processAlive(pid)) return null;
  // A stale pid file can name a pid since reused by another program.
  if (existsSync('/proc/self')) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!/postgres|postmaster/.test(cmdline)) return null;
    } catch {
      return null;
    }
  }
  return pid;
}

/**
 * Whether a process exists and has not exited. A daemon whose parent is an
 * init that never reaps (some containers' pid 1) stays a zombie after exiting;
 * signal 0 still reaches it, so /proc decides where it exists.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return !existsSync('/proc/self'); // no /proc: trust the signal
  }
}

/** Last `lines` lines of a file, or a note that it cannot be read. */
export function tailFile(path: string, lines: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read: ${(err as Error).message})`;
  }
}
