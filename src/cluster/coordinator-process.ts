/**
 * The detached pgweave coordinator process of a local cluster.
 *
 * `pgweave up` returns to the shell while the cluster keeps running, so the
 * coordinator runs as a detached child (`pgweave serve --config DIR/pgweave.json`)
 * with its output in DIR/log/coordinator.log and its pid in DIR/coordinator.pid.
 * The command to run is passed in by the caller (the CLI knows where its own
 * entry point is; this module does not). A pid is trusted only while that
 * process is alive and, where /proc exists, its command line names the
 * cluster's config file, so a stale pid file never makes us signal a stranger.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ClusterPaths, ClusterState } from './cluster-state.js';
import { processAlive, tailFile } from './postgres-server.js';
import { canLogin } from './psql.js';

export interface CoordinatorCommand {
  file: string;
  args: string[];
}

/** The live coordinator process of the cluster, or null. */
export function coordinatorProcessPid(paths: ClusterPaths): number | null {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(paths.pidFile, 'utf8').trim(), 10);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return null;
  if (existsSync('/proc/self')) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!cmdline.includes(paths.configFile)) return null;
    } catch {
      return null;
    }
  }
  return pid;
}

/** Starts the coordinator detached from this process; returns its pid. */
export function spawnCoordinatorProcess(command: CoordinatorCommand, paths: ClusterPaths): number {
  mkdirSync(dirname(paths.coordinatorLog), { recursive: true });
  const logFd = openSync(paths.coordinatorLog, 'a', 0o600);
  try {
    const child = spawn(command.file, command.args, {
      cwd: paths.dir,
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: process.env,
    });
    if (child.pid === undefined) throw new Error(`cannot start ${command.file}`);
    child.unref();
    writeFileSync(paths.pidFile, `${child.pid}\n`, { mode: 0o644 });
    return child.pid;
  } finally {
    closeSync(logFd);
  }
}

/**
 * Waits until a client can log in through the coordinator and run SELECT 1.
 * Fails early, with the end of its log, when the process exits.
 */
export async function waitForCoordinator(state: ClusterState, paths: ClusterPaths, pid: number, timeoutMs = 60_000): Promise<void> {
  const target = { host: state.listen.host, port: state.listen.port, user: state.clientUser, password: state.clientPassword };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!processAlive(pid)) {
      throw new Error(`the pgweave coordinator (pid ${pid}) exited.\n--- last lines of ${paths.coordinatorLog} ---\n${tailFile(paths.coordinatorLog, 30)}`);
    }
    if (await canLogin(target, 10_000)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `the pgweave coordinator (pid ${pid}) does not accept logins on ${state.listen.host}:${state.listen.port} after ${timeoutMs / 1000}s.\n` +
          `--- last lines of ${paths.coordinatorLog} ---\n${tailFile(paths.coordinatorLog, 30)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** SIGTERM, then SIGKILL after `timeoutMs`; removes the pid file. Returns whether a process was stopped. */
export async function stopCoordinatorProcess(paths: ClusterPaths, timeoutMs = 15_000): Promise<boolean> {
  const pid = coordinatorProcessPid(paths);
  if (pid === null) {
    rmSync(paths.pidFile, { force: true });
    return false;
  }
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (processAlive(pid)) {
    signal(pid, 'SIGKILL');
    while (processAlive(pid)) await new Promise((r) => setTimeout(r, 50));
  }
  rmSync(paths.pidFile, { force: true });
  return true;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}
