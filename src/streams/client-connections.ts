/**
 * Connections to workers AS A CLIENT ROLE, kept idle for reuse: for
 * autocommit publishes (group commit across the role's sessions, see
 * publish.ts) and for stream calls made where no session lends its own
 * worker links. Keyed by node, database and role; each query autocommits.
 * Sockets are unref'd so they never hold a process open.
 */
import type { BackendCredentials } from '../pool/backend-connection.js';
import { connectAsClient } from '../pool/node-pools.js';
import type { InternalClient } from '../pool/internal-client.js';
import type { WorkerNode } from '../metadata/types.js';
import type { Rowset } from './access.js';

const MAX_IDLE = 16;

export class ClientConnections {
  private readonly idle = new Map<string, InternalClient[]>();
  private closed = false;

  async query(
    node: WorkerNode,
    database: string,
    user: string,
    credentials: BackendCredentials,
    sql: string,
    params?: ReadonlyArray<string | null>,
  ): Promise<Rowset> {
    const key = `${node.host}:${node.port}/${database}/${user}`;
    const list = this.idle.get(key) ?? [];
    this.idle.set(key, list);
    let client = list.pop();
    while (client && client.closed) client = list.pop();
    if (!client) {
      client = await connectAsClient(node.host, node.port, database, user, credentials);
      client.conn.socket.unref();
    }
    try {
      return await client.query(sql, params);
    } finally {
      if (!client.closed && !this.closed && list.length < MAX_IDLE) list.push(client);
      else client.close();
    }
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.close();
    this.idle.clear();
  }
}

const registry = new WeakMap<object, ClientConnections>();

export function clientConnectionsFor(owner: object): ClientConnections {
  let c = registry.get(owner);
  if (!c) {
    c = new ClientConnections();
    registry.set(owner, c);
  }
  return c;
}

export function closeClientConnections(owner: object): void {
  registry.get(owner)?.close();
  registry.delete(owner);
}
