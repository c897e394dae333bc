/**
 * Where a local cluster lives on disk and what `pgweave up` remembers about it.
 *
 * A cluster directory DIR holds:
 *   DIR/cluster.json     ClusterState: nodes, ports, data dirs, the client password (0600)
 *   DIR/pgweave.json     the coordinator's CoordinatorConfig (0600, holds the internal password)
 *   DIR/coordinator.pid  pid of the detached coordinator process
 *   DIR/log/             coordinator.log and one <node>.log per PostgreSQL
 *   DIR/nodes/<node>/    PostgreSQL data directories
 *
 * As root, PostgreSQL runs as the `postgres` user, which cannot reach a DIR
 * under a private home (root's is 0700). Then the data directories and
 * PostgreSQL logs live under /var/lib/pgweave/<sha1(DIR)[0..12]>/ instead,
 * DIR/log/<node>.log links to the real log, and cluster.json records the paths.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { isRoot, postgresUserCanReach } from './postgres-user.js';

export type NodeRole = 'coordinator' | 'worker';

export interface ClusterNode {
  /** "coordinator", "worker1", "worker2", … */
  name: string;
  role: NodeRole;
  host: string;
  port: number;
  dataDir: string;
  logFile: string;
}

export interface ClusterState {
  version: 1;
  /** Absolute cluster directory. */
  dir: string;
  /** Where the pgweave coordinator process listens. */
  listen: { host: string; port: number };
  /** The client superuser and its password: what the connection URL holds. */
  clientUser: string;
  clientPassword: string;
  /** Where data directories live when not under DIR (root, unreachable DIR); null otherwise. */
  storageDir: string | null;
  fast: boolean;
  /** The nodes' Unix-domain socket directory (absent in clusters created before sockets, or when the path is too long). */
  socketDir?: string | null;
  nodes: ClusterNode[];
  createdAt: string;
}

export const INTERNAL_ROLE = 'pgweave_internal';
export const CLIENT_SUPERUSER = 'postgres';
export const DEFAULT_CLUSTER_DIR = join(homedir(), '.pgweave', 'default');
export const DEFAULT_PORT = 6432;
export const DEFAULT_WORKERS = 2;
export const STORAGE_ROOT = '/var/lib/pgweave';

export interface ClusterPaths {
  dir: string;
  stateFile: string;
  configFile: string;
  pidFile: string;
  logDir: string;
  coordinatorLog: string;
}

export function clusterPaths(dir: string): ClusterPaths {
  const abs = resolve(dir);
  return {
    dir: abs,
    stateFile: join(abs, 'cluster.json'),
    configFile: join(abs, 'pgweave.json'),
    pidFile: join(abs, 'coordinator.pid'),
    logDir: join(abs, 'log'),
    coordinatorLog: join(abs, 'log', 'coordinator.log'),
  };
}

/**
 * Where the PostgreSQL data directories and logs of cluster DIR go: under DIR
 * when the PostgreSQL OS user can reach it, else under /var/lib/pgweave.
 */
export function chooseStorage(dir: string): { storageDir: string | null; nodesDir: string; pgLogDir: string; socketDir: string | null } {
  const abs = resolve(dir);
  if (!isRoot() || postgresUserCanReach(abs)) {
    return { storageDir: null, nodesDir: join(abs, 'nodes'), pgLogDir: join(abs, 'log'), socketDir: usableSocketDir(join(abs, 'sockets')) };
  }
  const storageDir = join(STORAGE_ROOT, createHash('sha1').update(abs).digest('hex').slice(0, 12));
  return { storageDir, nodesDir: join(storageDir, 'nodes'), pgLogDir: join(storageDir, 'log'), socketDir: usableSocketDir(join(storageDir, 'sockets')) };
}

/**
 * `dir` when a socket path in it fits a sockaddr_un (107 bytes, with
 * `/.s.PGSQL.NNNNN`) and unix_socket_directories can list it (no comma),
 * else null: the nodes then listen on TCP only.
 */
function usableSocketDir(dir: string): string | null {
  return Buffer.byteLength(dir) + '/.s.PGSQL.65535'.length <= 107 && !dir.includes(',') ? dir : null;
}

/** The cluster's state, or null when DIR holds no cluster. */
export function loadClusterState(dir: string): ClusterState | null {
  const { stateFile } = clusterPaths(dir);
  if (!existsSync(stateFile)) return null;
  let state: ClusterState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState;
  } catch (err) {
    throw new Error(`${stateFile} is not valid JSON: ${(err as Error).message}`);
  }
  if (state.version !== 1 || !Array.isArray(state.nodes) || !state.listen) {
    throw new Error(`${stateFile} is not a pgweave cluster state (version 1)`);
  }
  return state;
}

/** Writes a secret-holding JSON file atomically with mode 0600. */
export function writeSecretJson(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

export function saveClusterState(state: ClusterState): void {
  writeSecretJson(clusterPaths(state.dir).stateFile, state);
}

/** postgres://user:password@host:port/postgres through the coordinator process. */
export function clusterUrl(state: ClusterState, database = 'postgres'): string {
  const user = encodeURIComponent(state.clientUser);
  const password = encodeURIComponent(state.clientPassword);
  const host = state.listen.host.includes(':') ? `[${state.listen.host}]` : state.listen.host;
  return `postgres://${user}:${password}@${host}:${state.listen.port}/${encodeURIComponent(database)}`;
}

export function coordinatorNode(state: ClusterState): ClusterNode {
  const node = state.nodes.find((n) => n.role === 'coordinator');
  if (!node) throw new Error(`cluster ${state.dir} has no coordinator node`);
  return node;
}

export function workerNodes(state: ClusterState): ClusterNode[] {
  return state.nodes.filter((n) => n.role === 'worker');
}
