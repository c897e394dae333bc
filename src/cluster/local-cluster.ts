/**
 * The PostgreSQL servers of a local cluster: one coordinator PostgreSQL and N
 * workers, created, started, stopped and health-checked together.
 *
 * Creation gives every node identical SCRAM verifiers for the client superuser
 * (`postgres`) and the internal role (`pgweave_internal`): the coordinator
 * authenticates to workers as the client by SCRAM pass-through, which only
 * works when the worker stores the very verifier the client logged in with
 * (DESIGN.md, decision 9). Verifiers are copied as stored strings: PostgreSQL
 * accepts a SCRAM verifier in ALTER ROLE … PASSWORD and keeps it as it is.
 *
 * A failed creation removes what it made, so `pgweave up` can simply run again.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, lstatSync, unlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { CoordinatorConfig, WorkerTlsConfig } from '../server/config.js';
import {
  CLIENT_SUPERUSER,
  INTERNAL_ROLE,
  STORAGE_ROOT,
  chooseStorage,
  clusterPaths,
  coordinatorNode,
  saveClusterState,
  workerNodes,
  writeSecretJson,
  type ClusterNode,
  type ClusterState,
} from './cluster-state.js';
import { DEFAULT_HOST, initPostgres, postgresPid, startPostgres, stopPostgres, type PostgresServerOptions } from './postgres-server.js';
import { ensurePostgresOwnedDir } from './postgres-user.js';
import { canLogin, quoteIdent, quoteLiteral, runSql, type SqlTarget } from './psql.js';

export interface ClusterSpec {
  dir: string;
  /** Address every process listens on; default 127.0.0.1. */
  host?: string;
  /** The pgweave coordinator process. */
  listenPort: number;
  /** The coordinator PostgreSQL. */
  coordinatorPort: number;
  /** One PostgreSQL per entry. */
  workerPorts: number[];
  /** Unsafe durability settings for tests. */
  fast?: boolean;
  maxConnections?: number;
  /**
   * TLS between the coordinator and the workers: each worker gets this
   * certificate and key and accepts TCP only over TLS; the coordinator's
   * config gets `workerTls` with `mode` and `ca` (server/config.ts).
   */
  workerTls?: { certFile: string; keyFile: string; ca: string; mode: WorkerTlsConfig['mode'] };
}

/** `pgweave up --port P --workers N`: coordinator process on P, its PostgreSQL on P+1, workers on P+2 … P+1+N. */
export function specForBasePort(dir: string, port: number, workers: number, fast = false): ClusterSpec {
  return {
    dir,
    listenPort: port,
    coordinatorPort: port + 1,
    workerPorts: Array.from({ length: workers }, (_, i) => port + 2 + i),
    fast,
  };
}

export interface CreatedCluster {
  state: ClusterState;
  config: CoordinatorConfig;
}

/** A random password that needs no escaping in URLs, shells or config files. */
export function generatePassword(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Creates and starts every PostgreSQL of a new cluster in spec.dir, sets up
 * roles and verifiers, and writes DIR/pgweave.json and DIR/cluster.json. The
 * coordinator process is not started here.
 */
export async function createCluster(spec: ClusterSpec): Promise<CreatedCluster> {
  const paths = clusterPaths(spec.dir);
  if (existsSync(paths.stateFile)) throw new Error(`${paths.dir} already holds a cluster (${paths.stateFile})`);
  const host = spec.host ?? DEFAULT_HOST;
  mkdirSync(paths.dir, { recursive: true, mode: 0o755 });
  mkdirSync(paths.logDir, { recursive: true, mode: 0o755 });
  const storage = chooseStorage(paths.dir);

  const names = ['coordinator', ...spec.workerPorts.map((_, i) => `worker${i + 1}`)];
  const ports = [spec.coordinatorPort, ...spec.workerPorts];
  const nodes: ClusterNode[] = names.map((name, i) => ({
    name,
    role: i === 0 ? 'coordinator' : 'worker',
    host,
    port: ports[i]!,
    dataDir: join(storage.nodesDir, name),
    logFile: join(storage.pgLogDir, `pg-${name}.log`),
  }));
  for (const node of nodes) {
    if (existsSync(node.dataDir) && readdirSync(node.dataDir).length > 0) {
      throw new Error(
        `${node.dataDir} already holds data from an earlier cluster whose ${paths.stateFile} is gone. ` +
          `Remove ${node.dataDir} (or run with another --dir) to create a new cluster.`,
      );
    }
  }

  const state: ClusterState = {
    version: 1,
    dir: paths.dir,
    listen: { host, port: spec.listenPort },
    clientUser: CLIENT_SUPERUSER,
    clientPassword: generatePassword(),
    storageDir: storage.storageDir,
    fast: spec.fast ?? false,
    socketDir: storage.socketDir,
    nodes,
    createdAt: new Date().toISOString(),
  };
  const internalPassword = generatePassword();

  try {
    if (storage.storageDir) {
      mkdirSync(STORAGE_ROOT, { recursive: true, mode: 0o755 });
      for (const d of [storage.storageDir, storage.nodesDir, storage.pgLogDir]) ensurePostgresOwnedDir(d, 0o700);
    }
    // Traversable by the coordinator process; the socket itself asks for SCRAM (pg_hba `local`).
    if (state.socketDir) ensurePostgresOwnedDir(state.socketDir, 0o755);
    const tls = spec.workerTls ? { certFile: spec.workerTls.certFile, keyFile: spec.workerTls.keyFile } : undefined;
    // A node's socket directory, for its server and its address in the config: none for a worker that takes
    // TLS — PostgreSQL has no TLS on its Unix-domain socket, and nothing may reach it without TLS (docs/security.md).
    const socketOf = (role: ClusterNode['role']) => (role === 'worker' && tls ? undefined : (state.socketDir ?? undefined));
    await Promise.all(
      nodes.map((node) => initPostgres({ ...nodeServerOptions(state, node, spec.maxConnections), tls: node.role === 'worker' ? tls : undefined, socketDir: socketOf(node.role) })),
    );
    if (storage.storageDir) linkLogs(paths.logDir, nodes);
    await startClusterPostgres(state);
    await setUpRoles(state, internalPassword);

    const config: CoordinatorConfig = {
      // The coordinator process listens on the same socket directory too (server/listen-socket.ts), as PostgreSQL would.
      listen: withSocket({ ...state.listen }, state.socketDir ?? undefined),
      coordinator: withSocket({ host, port: spec.coordinatorPort }, socketOf('coordinator')),
      workers: spec.workerPorts.map((port) => withSocket({ host, port }, socketOf('worker'))),
      internalDatabase: 'postgres',
      internal: { user: INTERNAL_ROLE, password: internalPassword },
      auth: { method: 'scram-sha-256' },
      ...(spec.workerTls ? { workerTls: { mode: spec.workerTls.mode, ca: spec.workerTls.ca } } : {}),
    };
    writeSecretJson(paths.configFile, config);
    saveClusterState(state); // last: its presence means "created"
    return { state, config };
  } catch (err) {
    await removeCreatedNodes(state);
    rmSync(paths.configFile, { force: true });
    throw err;
  }
}

/** A node address for the coordinator's config (server/config.ts), naming the socket directory when there is one. */
function withSocket(address: { host: string; port: number }, socketDir: string | undefined): { host: string; port: number; socketDir?: string } {
  return socketDir === undefined ? address : { ...address, socketDir };
}

/** The options a node was created with (the password only matters to initdb). */
export function nodeServerOptions(state: ClusterState, node: ClusterNode, maxConnections?: number): PostgresServerOptions {
  return {
    socketDir: state.socketDir ?? undefined,
    dataDir: node.dataDir,
    port: node.port,
    host: node.host,
    superuser: state.clientUser,
    superuserPassword: state.clientPassword,
    fast: state.fast,
    maxConnections,
  };
}

/** DIR/log/<node>.log → the real log under the storage directory. */
function linkLogs(logDir: string, nodes: ClusterNode[]): void {
  for (const node of nodes) {
    const link = join(logDir, basename(node.logFile));
    try {
      if (lstatSync(link)) unlinkSync(link);
    } catch {
      // No old link.
    }
    symlinkSync(node.logFile, link);
  }
}

/**
 * Creates the internal role on the coordinator, then gives every worker the
 * coordinator's verifiers for the client superuser and the internal role, and
 * checks they now match exactly.
 */
async function setUpRoles(state: ClusterState, internalPassword: string): Promise<void> {
  const coordinator = superuserTarget(state, coordinatorNode(state));
  const roles = [state.clientUser, INTERNAL_ROLE];
  const roleList = roles.map(quoteLiteral).join(', ');
  const readVerifiers = `SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (${roleList}) ORDER BY rolname;`;

  const verifierRows = await runSql(
    coordinator,
    `CREATE ROLE ${quoteIdent(INTERNAL_ROLE)} SUPERUSER LOGIN PASSWORD ${quoteLiteral(internalPassword)};\n${readVerifiers}`,
  );
  const verifiers = new Map(verifierRows.map(([name, verifier]) => [name!, verifier!]));
  for (const role of roles) {
    if (!verifiers.get(role)?.startsWith('SCRAM-SHA-256$')) throw new Error(`role ${role} on the coordinator has no SCRAM verifier`);
  }

  await Promise.all(
    workerNodes(state).map(async (worker) => {
      const target = superuserTarget(state, worker);
      const statements = [`CREATE ROLE ${quoteIdent(INTERNAL_ROLE)} SUPERUSER LOGIN;`];
      for (const role of roles) statements.push(`ALTER ROLE ${quoteIdent(role)} PASSWORD ${quoteLiteral(verifiers.get(role)!)};`);
      statements.push(readVerifiers);
      const rows = await runSql(target, statements.join('\n'));
      const copied = new Map(rows.map(([name, verifier]) => [name!, verifier!]));
      for (const role of roles) {
        if (copied.get(role) !== verifiers.get(role)) throw new Error(`worker ${worker.name}: the verifier of ${role} differs from the coordinator's`);
      }
    }),
  );
}

/** Connects as the client superuser: its password is the same on every node. */
export function superuserTarget(state: ClusterState, node: ClusterNode): SqlTarget {
  return { host: node.host, port: node.port, user: state.clientUser, password: state.clientPassword };
}

/** Starts every PostgreSQL of the cluster that is not running. */
export async function startClusterPostgres(state: ClusterState): Promise<void> {
  for (const node of state.nodes) {
    if (!existsSync(join(node.dataDir, 'PG_VERSION'))) {
      throw new Error(
        `the data directory of ${node.name} (${node.dataDir}) is missing; ` +
          `the cluster in ${state.dir} cannot start. Remove ${state.dir} to create a new one.`,
      );
    }
  }
  await Promise.all(state.nodes.map((node) => startPostgres(nodeServerOptions(state, node), node.logFile)));
}

/** Stops every PostgreSQL of the cluster, by data directory. */
export async function stopClusterPostgres(state: ClusterState, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  await Promise.all(state.nodes.map((node) => stopPostgres(node.dataDir, mode)));
}

/** Stops and deletes the nodes of a creation that failed, and its storage directory. */
async function removeCreatedNodes(state: ClusterState): Promise<void> {
  await stopClusterPostgres(state, 'immediate').catch(() => {});
  for (const node of state.nodes) rmSync(node.dataDir, { recursive: true, force: true });
  if (state.storageDir) rmSync(state.storageDir, { recursive: true, force: true });
}

/**
 * Deletes a stopped cluster entirely: data directories, storage directory and
 * DIR itself. Used by tests; the CLI has no command for it.
 */
export async function destroyCluster(state: ClusterState): Promise<void> {
  await stopClusterPostgres(state, 'immediate');
  for (const node of state.nodes) rmSync(node.dataDir, { recursive: true, force: true });
  if (state.storageDir) rmSync(state.storageDir, { recursive: true, force: true });
  rmSync(resolve(state.dir), { recursive: true, force: true });
}

export interface NodeStatus {
  name: string;
  role: 'coordinator' | 'worker';
  host: string;
  port: number;
  pid: number | null;
  healthy: boolean;
  dataDir: string;
  logFile: string;
}

/** pid and health (accepts a login and answers SELECT 1) of every PostgreSQL. */
export async function clusterPostgresStatus(state: ClusterState): Promise<NodeStatus[]> {
  return Promise.all(
    state.nodes.map(async (node) => {
      const pid = postgresPid(node.dataDir);
      const healthy = pid !== null && (await canLogin(superuserTarget(state, node)));
      return { name: node.name, role: node.role, host: node.host, port: node.port, pid, healthy, dataDir: node.dataDir, logFile: node.logFile };
    }),
  );
}
