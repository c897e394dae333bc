/**
 * The coordinator's configuration: where it listens, which PostgreSQL servers
 * form the cluster, and how clients and the coordinator authenticate.
 *
 * `pgweave up` writes this as DIR/pgweave.json (mode 0600, since it holds the
 * internal role's password); `pgweave serve --config FILE` reads it.
 */
import { readFileSync } from 'node:fs';

export interface NodeAddress {
  host: string;
  port: number;
  /**
   * The node's Unix-domain socket directory, when it runs on the
   * coordinator's machine: connections to host:port go through the socket
   * there instead (cheaper than loopback TCP; pool/node-sockets.ts), unless
   * they use TLS.
   */
  socketDir?: string;
}

export interface CoordinatorConfig {
  /** Where clients connect. */
  listen: NodeAddress;
  /** The coordinator PostgreSQL: catalog, commit records, local tables. */
  coordinator: NodeAddress;
  /** Worker PostgreSQL servers (registered in the catalog by citus_add_node). */
  workers: NodeAddress[];
  /** Database used for internal connections when none is implied (default "postgres"). */
  internalDatabase?: string;
  /**
   * The internal role (superuser on every node) used for catalog reads, role
   * verifier lookups, 2PC recovery and shard moves. Clients can never log in as it.
   */
  internal: { user: string; password: string };
  /**
   * Client authentication: "scram-sha-256" (default) verifies clients against the
   * role verifiers in the coordinator PostgreSQL; "trust" is accepted only for
   * clients connecting from a loopback address.
   */
  auth?: { method: 'scram-sha-256' | 'trust' };
  /** TLS for client connections; without it SSLRequest is answered 'N'. */
  tls?: { cert: string; key: string; ca?: string };
  /**
   * TLS from the coordinator to the worker PostgreSQL servers (all of them:
   * pools, the internal role, connections as clients' roles, cancels), with
   * libpq's sslmode semantics. Without it those connections are plaintext.
   */
  workerTls?: WorkerTlsConfig;
  /**
   * Shared pipelined connections per (worker, database, role) for autocommit
   * router statements (executor/pipelined-channel.ts); 0 turns pipelining off.
   */
  pipelineChannels?: number;
  /** A pipelined channel whose requests wait this long without a reply takes no new ones (default 20 ms). */
  pipelineStallMs?: number;
  /** Largest message a client may send, in bytes (PostgreSQL's limit is 1 GB). */
  maxMessageSize?: number;
}

export interface WorkerTlsConfig {
  /** require: encrypted (chain checked when `ca` is set); verify-ca: chain to `ca`; verify-full: and the host name. */
  mode: 'require' | 'verify-ca' | 'verify-full';
  /** PEM file of the CA that signed the nodes' certificates (needed for verify-ca and verify-full). */
  ca?: string;
  /** A client certificate and key (PEM files), for nodes that ask for one (pg_hba `clientcert`). */
  cert?: string;
  key?: string;
  /** Also use TLS to the coordinator PostgreSQL (default false: it is usually on the same machine). */
  coordinator?: boolean;
}

export function readConfigFile(path: string): CoordinatorConfig {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as CoordinatorConfig;
  if (!raw.listen || !raw.coordinator || !raw.internal) {
    throw new Error(`${path}: a config needs "listen", "coordinator" and "internal"`);
  }
  raw.workers ??= [];
  return raw;
}
