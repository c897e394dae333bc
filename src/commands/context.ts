/**
 * What a command (a Citus-compatible SQL function the coordinator intercepts)
 * gets to work with. The session builds one per call: the client's database,
 * role and credentials, the coordinator's pools and metadata cache, the
 * session's settings (citus.shard_count…), and a way to run SQL in the
 * client's own session on the coordinator PostgreSQL — so names resolve with
 * the client's search_path and privileges are checked as the client.
 *
 * Commands run internal work (catalog, shard DDL, data movement) through
 * `pools` as the internal role, and anything on behalf of the client
 * (run_command_on_*) as the client, with `credentials` (DESIGN.md decision 9).
 */
import type { BackendCredentials } from '../pool/backend-connection.js';
import type { QueryResult } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import type { NodeAddress, WorkerNode } from '../metadata/types.js';
import type { BackendLink } from '../executor/backend-link.js';

/** The parts of the coordinator's configuration commands use (server/config's CoordinatorConfig has them). */
export interface CommandConfig {
  coordinator: NodeAddress;
  internalDatabase?: string;
  internal: { user: string; password: string };
}

export interface CommandContext {
  database: string;
  /** The client's role. */
  user: string;
  /** The client's credentials, to connect to workers as the client. */
  credentials: BackendCredentials;
  config: CommandConfig;
  pools: NodePools;
  metadata: MetadataCache;
  /** Session settings (GUCs) the coordinator tracks, e.g. citus.shard_count. */
  settings: Map<string, string>;
  /** Runs SQL on the coordinator PostgreSQL in the client's own session and transaction. */
  runAsClient(sql: string, params?: ReadonlyArray<string | null>): Promise<QueryResult>;
  /** Whether the client is inside a transaction block (set when called from a session). */
  inTransactionBlock?: boolean;
  /** The session's own connection to a worker (as the client, joined to its transaction block); set when called from a session. */
  linkFor?(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
}
