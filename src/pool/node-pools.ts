/**
 * The coordinator's internal connections to every node, one InternalPool per
 * (host, port, database), all as the internal role (a superuser with the same
 * SCRAM verifier on every node). Catalog reads and writes, shard creation,
 * data movement and 2PC recovery go through here; client SQL never does
 * (DESIGN.md decision 9): for that, `connectAsClient` opens a connection as
 * the client's own role with the client's credentials.
 *
 * Decision 10: each coordinator database is its own distributed database whose
 * shards live in the same-named database on every worker. `ensureDatabase`
 * creates that database on a worker the first time it is needed; success is
 * remembered per process so the check costs one round trip per node and
 * database, ever.
 */
import { connectBackend, type BackendCredentials } from './backend-connection.js';
import { InternalClient } from './internal-client.js';
import { InternalPool } from './internal-pool.js';
import { PgError } from '../protocol/errors.js';
import { quoteIdent } from '../sql/quote.js';

export interface InternalRole {
  user: string;
  password: string;
}

export interface NodePoolsOptions {
  /** Connections per (node, database); default 4. */
  maxPerPool?: number;
  connectTimeoutMs?: number;
  /** Database used for administrative connections (CREATE DATABASE); default "postgres". */
  maintenanceDatabase?: string;
}

function poolKey(host: string, port: number, database: string): string {
  return `${host}\u0000${port}\u0000${database}`;
}

export class NodePools {
  private readonly pools = new Map<string, InternalPool>();
  private readonly ensured = new Set<string>();
  private readonly ensuring = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    readonly internal: InternalRole,
    private readonly options: NodePoolsOptions = {},
  ) {}

  /** The internal-role pool for one database on one node, created on first use. */
  get(host: string, port: number, database: string): InternalPool {
    if (this.closed) throw new PgError({ code: '57P01', message: 'the coordinator is shutting down' });
    const key = poolKey(host, port, database);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new InternalPool(
        {
          host,
          port,
          database,
          user: this.internal.user,
          credentials: { password: this.internal.password },
          params: [['application_name', 'pgweave internal']],
          connectTimeoutMs: this.options.connectTimeoutMs,
        },
        this.options.maxPerPool ?? 4,
      );
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Makes sure `database` exists on the node, creating it (owned by the
   * internal role) when missing. A concurrent creation by another coordinator
   * counts as success.
   */
  ensureDatabase(host: string, port: number, database: string): Promise<void> {
    const key = poolKey(host, port, database);
    if (this.ensured.has(key)) return Promise.resolve();
    let pending = this.ensuring.get(key);
    if (!pending) {
      pending = this.createDatabaseIfMissing(host, port, database).then(
        () => {
          this.ensured.add(key);
          this.ensuring.delete(key);
        },
        (err) => {
          this.ensuring.delete(key);
          throw err;
        },
      );
      this.ensuring.set(key, pending);
    }
    return pending;
  }

  private async createDatabaseIfMissing(host: string, port: number, database: string): Promise<void> {
    const admin = this.get(host, port, this.options.maintenanceDatabase ?? 'postgres');
    const found = await admin.query('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1', [database]);
    if (found.rows.length > 0) return;
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(database)}`);
    } catch (err) {
      // 42P04 duplicate_database; 23505 when two CREATE DATABASE race on pg_database's unique index.
      const code = err instanceof PgError ? err.code : '';
      if (code !== '42P04' && code !== '23505') throw err;
    }
  }

  /** Forgets that a database exists on a node (after it was dropped there). */
  forgetDatabase(host: string, port: number, database: string): void {
    this.ensured.delete(poolKey(host, port, database));
  }

  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) pool.close();
    this.pools.clear();
  }
}

/**
 * A fresh, unpooled connection to a node as a client role with the client's
 * own credentials (password, recovered SCRAM keys, or trust). Used where a
 * command must run with the caller's privileges on a worker
 * (run_command_on_workers and friends). The caller closes it.
 */
export async function connectAsClient(
  host: string,
  port: number,
  database: string,
  user: string,
  credentials: BackendCredentials,
  connectTimeoutMs = 10000,
): Promise<InternalClient> {
  const conn = await connectBackend({ host, port, database, user, credentials, connectTimeoutMs, params: [['application_name', 'pgweave']] });
  return new InternalClient(conn);
}
