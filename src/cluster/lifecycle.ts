/**
 * The whole local cluster as one unit: what `pgweave up`, `status` and `down`
 * do, independent of how the CLI prints it.
 *
 * `up` is idempotent: it creates the cluster when DIR holds none, starts
 * whatever PostgreSQL or coordinator process is stopped, leaves running ones
 * alone, and returns only once a client can log in through the coordinator.
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { createClusterCertificates } from './certificates.js';
import { clusterPaths, loadClusterState, workerNodes, type ClusterState } from './cluster-state.js';
import {
  coordinatorProcessPid,
  spawnCoordinatorProcess,
  stopCoordinatorProcess,
  waitForCoordinator,
  type CoordinatorCommand,
} from './coordinator-process.js';
import { clusterPostgresStatus, createCluster, specForBasePort, startClusterPostgres, stopClusterPostgres } from './local-cluster.js';
import { DEFAULT_HOST } from './postgres-server.js';
import { canLogin, quoteLiteral, runSql } from './psql.js';

export interface UpOptions {
  dir: string;
  port: number;
  workers: number;
  fast?: boolean;
  /**
   * TLS between the coordinator and the workers (default on): at creation,
   * a CA and the workers' certificate in DIR/tls (certificates.ts), workers
   * with ssl and hostssl-only pg_hba.conf, the coordinator with verify-full.
   */
  workerTls?: boolean;
  /** How to run the coordinator process for a given config file. */
  coordinatorCommand(configFile: string): CoordinatorCommand;
  /** Progress lines ("creating…"); default: nothing. */
  progress?(line: string): void;
}

export interface ProcessStatus {
  name: string;
  role: 'coordinator-process' | 'coordinator' | 'worker';
  host: string;
  port: number;
  pid: number | null;
  healthy: boolean;
  /** Data directory, for PostgreSQL processes. */
  dataDir?: string;
  logFile: string;
}

export interface UpResult {
  state: ClusterState;
  created: boolean;
  /** Options that were ignored because the existing cluster differs. */
  warnings: string[];
  processes: ProcessStatus[];
}

export async function upCluster(o: UpOptions): Promise<UpResult> {
  const paths = clusterPaths(o.dir);
  const progress = o.progress ?? (() => {});
  const warnings: string[] = [];
  let state = loadClusterState(paths.dir);
  const created = state === null;
  if (state === null) {
    if (!Number.isInteger(o.workers) || o.workers < 0) throw new Error(`--workers must be a whole number ≥ 0, not ${o.workers}`);
    const spec = specForBasePort(paths.dir, o.port, o.workers, o.fast);
    const ports = [spec.listenPort, spec.coordinatorPort, ...spec.workerPorts];
    if (!Number.isInteger(o.port) || o.port < 1 || ports[ports.length - 1]! > 65535) {
      throw new Error(`--port ${o.port} with ${o.workers} workers needs ports ${o.port}…${ports[ports.length - 1]}, which are not all valid`);
    }
    const taken: number[] = [];
    for (const port of ports) if (!(await portIsFree(port))) taken.push(port);
    if (taken.length > 0) {
      throw new Error(`port${taken.length > 1 ? 's' : ''} ${taken.join(', ')} on 127.0.0.1 ${taken.length > 1 ? 'are' : 'is'} in use; choose another --port (the cluster uses ${ports[0]}…${ports[ports.length - 1]})`);
    }
    progress(`creating a cluster with ${o.workers} worker${o.workers === 1 ? '' : 's'} in ${paths.dir}`);
    if (o.workerTls !== false) {
      mkdirSync(paths.dir, { recursive: true, mode: 0o755 });
      const certs = createClusterCertificates(paths.dir, spec.host ?? DEFAULT_HOST);
      spec.workerTls = { certFile: certs.certFile, keyFile: certs.keyFile, ca: certs.ca, mode: 'verify-full' };
    }
    state = (await createCluster(spec)).state;
  } else {
    const workers = workerNodes(state).length;
    if (o.port !== state.listen.port) warnings.push(`the cluster in ${paths.dir} listens on port ${state.listen.port}; ignoring --port ${o.port}`);
    if (o.workers !== workers) warnings.push(`the cluster in ${paths.dir} has ${workers} workers; ignoring --workers ${o.workers}`);
    await startClusterPostgres(state);
  }

  let pid = coordinatorProcessPid(paths);
  if (pid === null) {
    progress(`starting the pgweave coordinator on ${state.listen.host}:${state.listen.port}`);
    pid = spawnCoordinatorProcess(o.coordinatorCommand(paths.configFile), paths);
  }
  await waitForCoordinator(state, paths, pid);
  await registerWorkers(state, progress);
  return { state, created, warnings, processes: await processStatus(state) };
}

/**
 * Registers the cluster's workers through the coordinator with citus_add_node,
 * as a user would; a worker already registered is left as it is.
 */
async function registerWorkers(state: ClusterState, progress: (line: string) => void): Promise<void> {
  const target = { host: state.listen.host, port: state.listen.port, user: state.clientUser, password: state.clientPassword };
  const known = new Set((await runSql(target, 'SELECT nodename, nodeport FROM pg_dist_node')).map((r) => `${r[0]}:${r[1]}`));
  for (const w of workerNodes(state)) {
    if (known.has(`${w.host}:${w.port}`)) continue;
    progress(`registering worker ${w.host}:${w.port} (citus_add_node)`);
    await runSql(target, `SELECT citus_add_node(${quoteLiteral(w.host)}, ${Number(w.port)})`);
  }
}

/** Every process of the cluster in DIR; null when DIR holds no cluster. */
export async function clusterStatus(dir: string): Promise<{ state: ClusterState; processes: ProcessStatus[] } | null> {
  const state = loadClusterState(dir);
  if (state === null) return null;
  return { state, processes: await processStatus(state) };
}

async function processStatus(state: ClusterState): Promise<ProcessStatus[]> {
  const paths = clusterPaths(state.dir);
  const pid = coordinatorProcessPid(paths);
  const target = { ...state.listen, user: state.clientUser, password: state.clientPassword };
  const [coordinatorHealthy, nodes] = await Promise.all([
    pid === null ? Promise.resolve(false) : canLogin(target),
    clusterPostgresStatus(state),
  ]);
  return [
    { name: 'pgweave', role: 'coordinator-process', host: state.listen.host, port: state.listen.port, pid, healthy: coordinatorHealthy, logFile: paths.coordinatorLog },
    ...nodes.map((n) => ({ name: n.name, role: n.role, host: n.host, port: n.port, pid: n.pid, healthy: n.healthy, dataDir: n.dataDir, logFile: n.logFile })),
  ];
}

/**
 * Stops the coordinator process (by its pid file) and every PostgreSQL of the
 * cluster (by data directory). Returns null when DIR holds no cluster.
 */
export async function downCluster(dir: string): Promise<{ state: ClusterState; coordinatorStopped: boolean } | null> {
  const state = loadClusterState(dir);
  if (state === null) return null;
  const coordinatorStopped = await stopCoordinatorProcess(clusterPaths(state.dir));
  await stopClusterPostgres(state);
  return { state, coordinatorStopped };
}

/** Whether `port` on 127.0.0.1 can be bound right now. */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
