/**
 * The coordinator's Unix-domain socket, as PostgreSQL's `unix_socket_directories`:
 * `DIR/.s.PGSQL.<port>` beside the TCP listener, so `psql -h DIR -p PORT`
 * and libpq's socket paths reach pgweave the way they reach PostgreSQL. A
 * local client pays less per message on a socket than on loopback TCP, and
 * so does the coordinator, which shares the machine's CPUs with it.
 *
 * A socket file left by a coordinator that died is removed before listening;
 * one that still answers belongs to a running server and makes the start
 * fail (EADDRINUSE), as two PostgreSQL servers on one port would.
 */
import type net from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { connectSocket, socketPath } from '../pool/node-sockets.js';

/** Whether something accepts connections on the socket file at `path`. */
function answers(path: string): Promise<boolean> {
  return connectSocket({ path }).then(
    (probe) => (probe.destroy(), true),
    () => false,
  );
}

/** Starts `server` listening on `dir`'s socket for `port`; resolves with the socket's path. */
export async function listenOnSocket(server: net.Server, dir: string, port: number): Promise<string> {
  const path = socketPath(dir, port);
  if (existsSync(path)) {
    if (await answers(path)) {
      throw Object.assign(new Error(`another server is listening on the Unix-domain socket ${path}`), { code: 'EADDRINUSE' });
    }
    unlinkSync(path);
  }
  await startListening(server, { path });
  // As PostgreSQL's default unix_socket_permissions (0777): authentication, not the file mode, decides who gets in.
  chmodSync(path, 0o777);
  return path;
}

/** Starts `server` listening where `options` say (a TCP port and host, or a socket path); rejects with the listen error. */
export function startListening(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}
