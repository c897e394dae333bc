/**
 * The pgweave coordinator process: accepts PostgreSQL protocol connections and
 * serves each with a Session. `startCoordinator` is what `pgweave serve` runs
 * and what tests start in-process.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { MAX_MESSAGE_SIZE } from '../protocol/constants.js';
import { InternalPool } from '../pool/internal-pool.js';
import { NodePools } from '../pool/node-pools.js';
import { MetadataCache } from '../metadata/metadata-cache.js';
import { initParser } from '../sql/parse.js';
import { RecoveryLoop } from '../jobs/recovery-loop.js';
import { CleanupLoop } from '../jobs/cleanup-loop.js';
import { DeadlockDetector } from '../jobs/deadlock-detector.js';
import { closeCommitGates } from '../transaction/commit-gate.js';
import { IdleConnectionPool } from '../pool/idle-connection-pool.js';
import { ChannelRegistry, DEFAULT_PIPELINE_CHANNELS } from '../executor/channel-group.js';
import { refreshShardSizes } from '../commands/shard-functions.js';
import { CronScheduler, cronDisabled, duplexPair } from '../jobs/cron-scheduler.js';
import { closeStreams } from '../streams/wakeup.js';
import { connectBackend } from '../pool/backend-connection.js';
import { setBackendTlsPolicy } from '../pool/backend-tls.js';
import { setNodeSockets } from '../pool/node-sockets.js';
import { Session } from '../session/session.js';
import { makeSessionServices } from './session-services.js';
import { CancelRegistry } from './cancel-registry.js';
import { acceptClient } from './accept-client.js';
import { listenOnSocket, startListening } from './listen-socket.js';
import { workerTlsPolicy } from './worker-tls.js';
import type { CoordinatorConfig, NodeAddress } from './config.js';
import type { ServerContext } from './context.js';

export type { CoordinatorConfig, NodeAddress } from './config.js';
export { readConfigFile } from './config.js';

export interface Coordinator {
  address: NodeAddress;
  /** Number of client sessions currently open. */
  readonly sessionCount: number;
  close(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig): Promise<Coordinator> {
  // One policy per process: every connection to a node, whoever opens it, follows the config.
  setBackendTlsPolicy(workerTlsPolicy(config));
  setNodeSockets([config.coordinator, ...config.workers]);
  const internal = new InternalPool({
    host: config.coordinator.host,
    port: config.coordinator.port,
    user: config.internal.user,
    database: config.internalDatabase ?? 'postgres',
    credentials: { password: config.internal.password },
    params: [['application_name', 'pgweave internal']],
  });
  // Fail fast when the coordinator PostgreSQL is unreachable or the internal role is wrong.
  await internal.query('SELECT 1');
  await initParser();
  const pools = new NodePools({ user: config.internal.user, password: config.internal.password });
  const metadata = new MetadataCache(pools, config.coordinator);
  const idleConnections = new IdleConnectionPool();
  const pipelines = new ChannelRegistry(config.pipelineChannels ?? DEFAULT_PIPELINE_CHANNELS, config.pipelineStallMs);
  const recovery = new RecoveryLoop(pools, config);
  recovery.start();
  const deadlocks = new DeadlockDetector(pools, metadata, config);
  deadlocks.start();
  const cleanup = new CleanupLoop(pools, metadata, config);
  cleanup.start();

  const ctx: ServerContext = {
    config,
    internal,
    cancels: new CancelRegistry(),
    tls: config.tls
      ? tls.createSecureContext({
          cert: readFileSync(config.tls.cert),
          key: readFileSync(config.tls.key),
          ca: config.tls.ca ? readFileSync(config.tls.ca) : undefined,
        })
      : null,
    sessions: new Set(),
    sessionOptions: { maxMessageSize: config.maxMessageSize ?? MAX_MESSAGE_SIZE },
    shared: { config, pools, metadata, refreshShardSizes, idleConnections, pipelines, onDatabase: (db) => (recovery.watch(db), deadlocks.watch(db), cleanup.watch(db)) },
  };

  const servers: net.Server[] = [];
  const closeListeners = (): Promise<void> =>
    Promise.all(servers.map((srv) => new Promise<void>((resolve) => (srv.listening ? srv.close(() => resolve()) : resolve())))).then(() => {});
  const stopServices = (): void => {
    closeStreams(pools);
    recovery.stop();
    deadlocks.stop();
    cleanup.stop();
    closeCommitGates(pools);
    idleConnections.close();
    pipelines.close();
    internal.close();
    metadata.close();
    pools.close();
  };

  let addr: net.AddressInfo;
  let socketDir: string | undefined;
  try {
    const server = net.createServer({ noDelay: true }, (socket) => {
      acceptClient(socket, ctx).catch(() => socket.destroy());
    });
    servers.push(server);
    server.on('error', () => {});
    await startListening(server, { port: config.listen.port, host: config.listen.host });
    addr = server.address() as net.AddressInfo;
    // The Unix-domain socket beside it, named after the TCP port (which the system may have chosen).
    if (config.listen.socketDir) {
      const socketServer = net.createServer((socket) => {
        acceptClient(socket, ctx, true).catch(() => socket.destroy());
      });
      servers.push(socketServer);
      socketServer.on('error', () => {});
      await listenOnSocket(socketServer, config.listen.socketDir, addr.port);
      socketDir = config.listen.socketDir;
    }
  } catch (err) {
    await closeListeners();
    stopServices();
    throw err;
  }

  // cron: every coordinator competes for leadership; the leader runs jobs through in-process sessions of the internal role.
  const cron = new CronScheduler({
    pools,
    coordinator: config.coordinator,
    internalDatabase: config.internalDatabase ?? 'postgres',
    async openSession(database, applicationName) {
      const credentials = { password: config.internal.password };
      const backend = await connectBackend({ ...config.coordinator, user: config.internal.user, database, credentials, params: [['application_name', applicationName]] });
      const [client, serverSide] = duplexPair();
      new Session(serverSide, backend, ctx.sessionOptions, makeSessionServices(ctx.shared, database, config.internal.user, credentials)).start(null);
      return client;
    },
  });
  if (!cronDisabled()) cron.start();

  return {
    address: { host: config.listen.host, port: addr.port, ...(socketDir ? { socketDir } : {}) },
    get sessionCount() {
      return ctx.sessions.size;
    },
    async close() {
      // A listener's close waits for its open connections, so the sessions are ended right after.
      const closed = closeListeners();
      for (const s of [...ctx.sessions]) s.close();
      await closed;
      cron.stop();
      stopServices();
    },
  };
}
