/**
 * A throwaway pgweave cluster for tests: coordinator PostgreSQL and workers
 * created by src/cluster (fast settings, temp dir, free ports), and the
 * coordinator started in this very process with startCoordinator, so a test can
 * inspect or profile it. Start one per test file (or share one), not per test.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster, destroyCluster, stopClusterPostgres, type ClusterSpec, type ClusterState } from '../../src/cluster/index.js';
import type { CoordinatorConfig, NodeAddress } from '../../src/server/config.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { freePort, stopOnExit } from './postgres.js';

export interface TestCluster {
  dir: string;
  /** The coordinator's config, with the port it actually listens on. */
  config: CoordinatorConfig;
  /** postgres://postgres:…@127.0.0.1:PORT/postgres through the coordinator. */
  url: string;
  /** The client superuser's (postgres) password, the same on every node. */
  password: string;
  coordinatorPg: NodeAddress;
  workers: NodeAddress[];
  /** The in-process coordinator. */
  coordinator: Coordinator;
  stop(): Promise<void>;
}

export async function startTestCluster(
  opts: {
    workers?: number;
    workerTls?: ClusterSpec['workerTls'];
    /** Coordinator settings a test needs (e.g. pipelineChannels). */
    coordinator?: Partial<CoordinatorConfig>;
    /** The coordinator reaches the nodes over TCP only (tests that tell connections apart by port). */
    tcpOnly?: boolean;
  } = {},
): Promise<TestCluster> {
  const workerCount = opts.workers ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'pgweave-test-cluster-'));
  chmodSync(dir, 0o755); // the PostgreSQL OS user must reach the data directories inside

  const created = await createWithFreePorts(dir, workerCount, opts.workerTls);
  const state = created.state;
  const base = opts.tcpOnly ? withoutSockets(created.config) : created.config;
  const config: CoordinatorConfig = { ...base, ...opts.coordinator };
  const forget = stopOnExit(state.nodes.map((n) => n.dataDir), dir);
  let coordinator: Coordinator;
  try {
    coordinator = await startCoordinator(config);
  } catch (err) {
    await destroyCluster(state);
    forget();
    throw err;
  }
  const listening: CoordinatorConfig = { ...config, listen: { ...coordinator.address } };
  let stopped = false;
  return {
    dir,
    config: listening,
    url: `postgres://${state.clientUser}:${state.clientPassword}@${coordinator.address.host}:${coordinator.address.port}/postgres`,
    password: state.clientPassword,
    coordinatorPg: config.coordinator,
    workers: config.workers,
    coordinator,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await coordinator.close();
      } finally {
        await stopClusterPostgres(state, 'immediate');
        forget();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Creates the cluster on ports free a moment ago; another test file may take
 * one in between, so a failed creation (it cleans up after itself) is retried
 * on new ports. The coordinator listens on port 0: the OS picks one, no race.
 */
async function createWithFreePorts(dir: string, workers: number, workerTls?: ClusterSpec['workerTls']): Promise<{ state: ClusterState; config: CoordinatorConfig }> {
  for (let attempt = 1; ; attempt++) {
    const ports = new Set<number>();
    while (ports.size < workers + 1) ports.add(await freePort());
    const [coordinatorPort, ...workerPorts] = [...ports];
    const spec: ClusterSpec = { dir, listenPort: 0, coordinatorPort: coordinatorPort!, workerPorts, fast: true, workerTls };
    try {
      return await createCluster(spec);
    } catch (err) {
      if (attempt >= 3 || !/could not bind|Address already in use|could not create any TCP/i.test(String((err as Error).message))) throw err;
    }
  }
}

/** The config with every node reached over TCP (no `socketDir`). */
function withoutSockets(config: CoordinatorConfig): CoordinatorConfig {
  const tcp = ({ host, port }: { host: string; port: number }) => ({ host, port });
  return { ...config, coordinator: tcp(config.coordinator), workers: config.workers.map(tcp) };
}
