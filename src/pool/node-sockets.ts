/**
 * Which nodes the coordinator reaches through a Unix-domain socket: a node
 * on the coordinator's own machine whose address in the config names its
 * socket directory (server/config.ts `socketDir`). Loopback TCP costs both
 * sides a full TCP stack per message; on the 2-core machines this project
 * targets, a backend spends about a third less CPU per pgbench -S
 * statement over its socket (docs/benchmarks.md, router).
 *
 * The map is process wide (`setNodeSockets`, set by the coordinator from its
 * config at start) and keyed by host:port, as the catalog names nodes, so
 * every connection to a node — pools, channels, the internal role, cancel
 * requests — takes the socket without its caller knowing. A socket that
 * cannot be reached (the node moved, the directory went) falls back to TCP.
 */
import net from 'node:net';
import { join } from 'node:path';

const sockets = new Map<string, string>();

/** The socket file of a server on `port` in directory `dir`, as libpq and PostgreSQL name it. */
export function socketPath(dir: string, port: number): string {
  return join(dir, `.s.PGSQL.${port}`);
}

/** Nodes reachable through a socket in `socketDir`: host:port → DIR/.s.PGSQL.PORT (replaces earlier entries of the same nodes). */
export function setNodeSockets(nodes: Iterable<{ host: string; port: number; socketDir?: string }>): void {
  for (const n of nodes) {
    if (n.socketDir) sockets.set(`${n.host}:${n.port}`, socketPath(n.socketDir, n.port));
    else sockets.delete(`${n.host}:${n.port}`);
  }
}

/** The socket path of host:port, or null: reach it over TCP. */
export function nodeSocketPath(host: string, port: number): string | null {
  return sockets.get(`${host}:${port}`) ?? null;
}

/** A connected socket to host:port: the node's Unix-domain socket when known and reachable, else TCP. */
export function openNodeSocket(host: string, port: number): Promise<net.Socket> {
  const path = nodeSocketPath(host, port);
  if (path === null) return connectSocket({ host, port });
  return connectSocket({ path }).catch(() => connectSocket({ host, port }));
}

/** A socket to `to` (TCP or a Unix-domain path), once connected; rejects with the connect error. */
export function connectSocket(to: net.NetConnectOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(to);
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.removeListener('error', onError);
      resolve(socket);
    });
  });
}
