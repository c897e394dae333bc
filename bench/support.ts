/**
 * What every benchmark needs around its measurement: a local cluster (or one
 * plain PostgreSQL) in a temporary directory with the coordinator in this
 * process, stopped and removed at the end or on SIGINT/SIGTERM
 * (`startBenchCluster`, `startPlainPostgres`); free ports for the PostgreSQL
 * servers; a one-line description of the machine; child programs (psql,
 * pgbench) run without blocking the event loop the in-process coordinator
 * shares; the `--priority` option; and medians of rounds.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, freemem, setPriority, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createCluster, postgresPid, stopClusterPostgres, type ClusterState, type CreatedCluster } from '../src/cluster/index.js';
import { startCoordinator, type Coordinator } from '../src/server/index.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function machineSummary(): string {
  const cpu = cpus();
  return `${cpu.length} CPU (${cpu[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM (${(freemem() / 2 ** 30).toFixed(1)} free), node ${process.version}`;
}

/** Runs a program without blocking the event loop: the coordinator shares this process. */
export function runProgram(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 << 20, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** The value of `--priority`: a nice value from -20 to 19. */
export function parsePriority(text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new Error('--priority needs a nice value from -20 to 19');
  return n;
}

/** The median; of an even count, the mean of the middle two. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export interface BenchClusterOptions {
  /** Names the temporary directory: pgweave-bench-NAME-…. */
  name: string;
  /** Worker PostgreSQL servers (0: the coordinator PostgreSQL alone, as passthrough uses it). */
  workers: number;
  /** fsync and friends off everywhere (createCluster's `fast`). */
  fast?: boolean;
  /**
   * A nice value for this process (the coordinator and its children) and
   * every postmaster (their backends forked from now on inherit it), set
   * before the coordinator starts; null: left alone.
   */
  priority?: number | null;
  /** Settings of the in-process coordinator over those createCluster wrote (e.g. `pipelineChannels`). */
  config?: Partial<CreatedCluster['config']>;
}

export interface BenchCluster {
  /** The temporary directory (data directories inside; removed by `stop`): room for the benchmark's files. */
  dir: string;
  /** createCluster's result: `config` (addresses, workers) and `state`. */
  created: CreatedCluster;
  state: ClusterState;
  /** The password of the `postgres` role on every PostgreSQL and through the coordinator. */
  password: string;
  /** Runs `fn` first when the cluster stops (something the benchmark started on top of it). */
  atStop(fn: () => Promise<unknown>): void;
  /** Stops the coordinator and every PostgreSQL and removes the directory; once, however often called. */
  stop(): Promise<void>;
}

export interface BenchClusterWithCoordinator extends BenchCluster {
  /** The coordinator, running in this process. */
  coordinator: Coordinator;
}

/**
 * A local cluster in a new temporary directory with the pgweave coordinator
 * in this process. Until `stop()` (call it in a `finally`), SIGINT and
 * SIGTERM stop it (and every other one still running) and exit with 130.
 */
export function startBenchCluster(options: BenchClusterOptions): Promise<BenchClusterWithCoordinator> {
  return startLocal(options, true) as Promise<BenchClusterWithCoordinator>;
}

/** One plain PostgreSQL (a cluster without workers, no coordinator), for a benchmark's baseline side. */
export function startPlainPostgres(options: Omit<BenchClusterOptions, 'workers'>): Promise<BenchCluster> {
  return startLocal({ ...options, workers: 0 }, false);
}

/** The clusters still running: SIGINT or SIGTERM stops them all, then exits with 130. */
const running = new Set<() => Promise<void>>();
const onSignal = () => void Promise.all([...running].map((stop) => stop())).finally(() => process.exit(130));

function track(stop: () => Promise<void>): void {
  if (running.size === 0) {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  running.add(stop);
}

function untrack(stop: () => Promise<void>): void {
  if (!running.delete(stop) || running.size > 0) return;
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}

async function startLocal(options: BenchClusterOptions, withCoordinator: boolean): Promise<BenchCluster | BenchClusterWithCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), `pgweave-bench-${options.name}-`));
  chmodSync(dir, 0o755); // the PostgreSQL OS user must reach the data directories inside
  let state: ClusterState | null = null;
  let coordinator: Coordinator | null = null;
  const first: Array<() => Promise<unknown>> = [];
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const fn of first) await fn().catch(() => {});
      await coordinator?.close().catch(() => {});
      if (state) await stopClusterPostgres(state, 'fast').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      untrack(stop);
    })());
  track(stop);
  try {
    const ports = new Set<number>();
    while (ports.size < options.workers + 1) ports.add(await freePort());
    const [coordinatorPort, ...workerPorts] = [...ports];
    const created = await createCluster({ dir, listenPort: 0, coordinatorPort: coordinatorPort!, workerPorts, fast: options.fast });
    state = created.state;
    if (options.priority != null) {
      setPriority(options.priority);
      for (const n of state.nodes) {
        const pid = postgresPid(n.dataDir);
        if (pid !== null) setPriority(pid, options.priority);
      }
    }
    if (withCoordinator) coordinator = await startCoordinator({ ...created.config, ...options.config });
    const cluster: BenchCluster = { dir, created, state, password: state.clientPassword, atStop: (fn) => void first.push(fn), stop };
    return coordinator ? { ...cluster, coordinator } : cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * CPU time (user + system, µs) spent so far by every PostgreSQL server of
 * `state`: each postmaster, its live children (backends, background
 * processes) and the children it has reaped. Differences of two readings
 * give the servers' CPU over a run — steadier than TPS on a shared machine.
 */
export function serversCpuMicros(state: ClusterState): number {
  const tick = 1e6 / 100; // USER_HZ is 100 on Linux
  const fields = (pid: string): string[] | null => {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return s.slice(s.lastIndexOf(')') + 2).split(' ');
    } catch {
      return null;
    }
  };
  const postmasters = new Set<string>();
  let total = 0;
  for (const n of state.nodes) {
    const pid = postgresPid(n.dataDir);
    const f = pid === null ? null : fields(String(pid));
    if (f === null) continue;
    postmasters.add(String(pid));
    // utime, stime, cutime, cstime: fields 14–17 of stat (11–14 after the name)
    total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * tick;
  }
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) > 57) continue;
    const f = fields(entry);
    if (f !== null && postmasters.has(f[1]!)) total += (Number(f[11]) + Number(f[12])) * tick;
  }
  return total;
}

/**
 * CPU time (user + system, µs) of this process's children that have ended
 * and been waited for (cutime + cstime of /proc/self/stat). A program run
 * through `runProgram` is counted once it exits: the difference of two
 * readings around one pgbench run is pgbench's own CPU time.
 */
export function endedChildrenCpuMicros(): number {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * (1e6 / 100);
}

/** One reading of the servers' processes (serversCpuSnapshot). */
export interface ServersCpuSnapshot {
  /** Live processes: pid → node, kind ("backends", "walwriter", …) and CPU so far (µs). */
  live: Map<string, { node: string; kind: string; micros: number }>;
  /** Per node: the postmaster's own CPU and that of the children it reaped (µs). */
  postmaster: Map<string, { own: number; reaped: number }>;
}

/**
 * Every PostgreSQL process of `state` with its CPU so far, by node and
 * kind: cpuByProcessKind of two readings shows where a run's server CPU
 * went.
 */
export function serversCpuSnapshot(state: ClusterState): ServersCpuSnapshot {
  const tick = 1e6 / 100;
  const read = (pid: string): { f: string[]; title: string } | null => {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '');
      return { f: s.slice(s.lastIndexOf(')') + 2).split(' '), title };
    } catch {
      return null;
    }
  };
  const snap: ServersCpuSnapshot = { live: new Map(), postmaster: new Map() };
  const names = new Map<string, string>();
  for (const n of state.nodes) {
    const pid = postgresPid(n.dataDir);
    const r = pid === null ? null : read(String(pid));
    if (r === null) continue;
    names.set(String(pid), n.name);
    snap.postmaster.set(n.name, { own: (Number(r.f[11]) + Number(r.f[12])) * tick, reaped: (Number(r.f[13]) + Number(r.f[14])) * tick });
  }
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) > 57) continue;
    const r = read(entry);
    const node = r === null ? undefined : names.get(r.f[1]!);
    if (r === null || node === undefined) continue;
    // Client backends are titled "postgres: user db host(port) state"; the others by their job.
    const kind = /^postgres: \S+ \S+ \S+\(\d+\)/.test(r.title) ? 'backends' : r.title.replace(/^postgres: /, '').split(' ')[0]!;
    snap.live.set(entry, { node, kind, micros: (Number(r.f[11]) + Number(r.f[12])) * tick });
  }
  return snap;
}

/**
 * CPU (µs) between two readings by "node kind". Processes that ended in
 * between count under "node ended" with only their CPU after the first
 * reading: the reaped children's CPU the postmaster adds up includes what
 * they spent before it (a pooled connection of the setup closed in the
 * run would otherwise charge the run with the setup's work).
 */
export function cpuByProcessKind(a: ServersCpuSnapshot, b: ServersCpuSnapshot): Map<string, number> {
  const out = new Map<string, number>();
  const add = (key: string, v: number) => out.set(key, (out.get(key) ?? 0) + v);
  for (const [node, pb] of b.postmaster) {
    const pa = a.postmaster.get(node) ?? { own: 0, reaped: 0 };
    add(`${node} postmaster`, pb.own - pa.own);
    add(`${node} ended`, pb.reaped - pa.reaped);
  }
  for (const [pid, x] of a.live) if (!b.live.has(pid)) add(`${x.node} ended`, -x.micros);
  for (const [pid, x] of b.live) add(`${x.node} ${x.kind}`, x.micros - (a.live.get(pid)?.micros ?? 0));
  return out;
}

/**
 * serversCpuMicros once the servers are quiet: backends of a client that
 * just ended are counted only when their postmaster has reaped them, so
 * this reads until two readings 100 ms apart agree (at most 3 s).
 */
export async function settledServersCpuMicros(state: ClusterState): Promise<number> {
  let last = serversCpuMicros(state);
  for (let i = 0; i < 30; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = serversCpuMicros(state);
    if (now === last) return now;
    last = now;
  }
  return last;
}
