/**
 * A throwaway plain PostgreSQL for tests: fresh data directory under
 * os.tmpdir(), fast (unsafe) durability settings, a free loopback port, SCRAM
 * login with a random password.
 *
 * Test files run two at a time, so a port found free can be taken before the
 * server binds it; startTestPostgres then retries on another port. Servers that
 * a crashed test never stopped are stopped when the test process exits (also
 * on SIGINT/SIGTERM/SIGHUP), so no test leaves a PostgreSQL running.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgBinary } from '../../src/cluster/pg-binaries.js';
import {
  initPostgres,
  startPostgres,
  stopPostgres,
  tailFile,
  writePostgresConf,
  type PostgresServerOptions,
} from '../../src/cluster/postgres-server.js';
import { isRoot, POSTGRES_OS_USER } from '../../src/cluster/postgres-user.js';

export interface TestPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  dataDir: string;
  url: string;
  stop(): Promise<void>;
}

/** Servers started by this process and not yet stopped, with the directory to remove. */
const running = new Map<number, { dataDirs: string[]; removeDir: string }>();
let nextCleanupId = 1;
let exitHookInstalled = false;

/**
 * A fresh plain PostgreSQL (fast settings) in a temp dir under os.tmpdir(),
 * on a free port. stop() stops it and removes the directory.
 */
export async function startTestPostgres(opts: { maxConnections?: number } = {}): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'pgweave-test-pg-'));
  chmodSync(dir, 0o755); // mkdtemp makes it 0700; the PostgreSQL OS user must reach the data dir inside
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const password = randomBytes(16).toString('hex');
  const options: PostgresServerOptions = {
    dataDir,
    port: await freePort(),
    superuserPassword: password,
    fast: true,
    maxConnections: opts.maxConnections,
  };
  try {
    await initPostgres(options);
    await startRetryingPorts(options, logFile);
  } catch (err) {
    await stopPostgres(dataDir, 'immediate').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const forget = stopOnExit([dataDir], dir);
  const host = '127.0.0.1';
  let stopped = false;
  return {
    host,
    port: options.port,
    user: 'postgres',
    password,
    dataDir,
    url: `postgres://postgres:${password}@${host}:${options.port}/postgres`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopPostgres(dataDir, 'immediate');
      forget();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the server, moving it to another free port when its port was taken
 * between choosing it and binding it.
 */
export async function startRetryingPorts(options: PostgresServerOptions, logFile: string, attempts = 5): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await startPostgres(options, logFile);
      return;
    } catch (err) {
      const portTaken = /could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(tailFile(logFile, 30));
      if (!portTaken || attempt >= attempts) throw err;
      options.port = await freePort();
      writePostgresConf(options);
    }
  }
}

/** A TCP port on 127.0.0.1 that is free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The first of `count` consecutive free ports (for `pgweave up --port P`, which
 * uses P … P+1+workers).
 */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = await freePort();
    if (base + count > 65535) continue;
    let allFree = true;
    for (let p = base + 1; p < base + count && allFree; p++) allFree = await portIsFree(p);
    if (allFree) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/**
 * Makes sure these servers are stopped and `removeDir` deleted when the test
 * process exits, even if the test never calls stop(). Returns a function that
 * cancels this (call it once stop() has done the work).
 */
export function stopOnExit(dataDirs: string[], removeDir: string): () => void {
  installExitHook();
  const id = nextCleanupId++;
  running.set(id, { dataDirs, removeDir });
  return () => running.delete(id);
}

/** Stops, synchronously, every server a crashed or careless test left running. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const { dataDirs, removeDir } of running.values()) {
      for (const dataDir of dataDirs) {
        const args = ['stop', '-D', dataDir, '-m', 'immediate', '-w'];
        try {
          if (isRoot()) execFileSync('runuser', ['-u', POSTGRES_OS_USER, '--', pgBinary('pg_ctl'), ...args], { cwd: '/', stdio: 'ignore' });
          else execFileSync(pgBinary('pg_ctl'), args, { stdio: 'ignore' });
        } catch {
          // Already gone.
        }
      }
      rmSync(removeDir, { recursive: true, force: true });
    }
  });
  // A signal would end the process without 'exit' handlers; exit properly instead.
  const signals: [NodeJS.Signals, number][] = [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]];
  for (const [signal, code] of signals) process.once(signal, () => process.exit(code));
}
