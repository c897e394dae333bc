/**
 * TLS from the coordinator to PostgreSQL nodes, with libpq's sslmode
 * semantics (docs/security.md):
 *
 *   require      encrypted; the certificate chain is verified only when a CA
 *                is configured (as libpq does when a root certificate exists)
 *   verify-ca    encrypted; the server's chain must lead to the configured CA
 *   verify-full  verify-ca, and the certificate must name the host the
 *                coordinator connected to (DNS or IP subject alternative
 *                name, else the common name)
 *
 * States of one negotiation: TCP connect → SSLRequest sent → one byte read
 * ('S': go on; 'N': the node has no TLS, refused — the coordinator never
 * falls back to plaintext) → TLS handshake → chain and host name checked →
 * the TLS socket is handed to the startup (backend-connection.ts). Any
 * failure is a class-08 PgError naming the node and the reason.
 *
 * Which nodes use TLS is a process-wide policy (`setBackendTlsPolicy`), set
 * by the coordinator from its config at start: every connection to a node —
 * pools, the internal role, connections as a client's role, cancel
 * requests — goes through connectBackend, so none can be missed, and no
 * caller has to carry TLS options.
 */
import net from 'node:net';
import tls from 'node:tls';
import { PgError } from '../protocol/errors.js';
import { connectSocket, openNodeSocket } from './node-sockets.js';

export type BackendTlsMode = 'require' | 'verify-ca' | 'verify-full';

export interface BackendTls {
  mode: BackendTlsMode;
  /** PEM of the CA that must have signed the nodes' certificates. */
  ca?: string | Buffer;
  /** A client certificate and key, for nodes whose pg_hba.conf asks for `clientcert`. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Which TLS (if any) the connection to host:port uses. */
export type BackendTlsPolicy = (host: string, port: number) => BackendTls | null;

const SSL_REQUEST_CODE = 80877103;

let policy: BackendTlsPolicy | null = null;

/** Sets the TLS policy for every later connection to a node (null: plaintext everywhere). */
export function setBackendTlsPolicy(p: BackendTlsPolicy | null): void {
  policy = p;
}

export function backendTlsFor(host: string, port: number): BackendTls | null {
  return policy?.(host, port) ?? null;
}

function tlsError(host: string, port: number, message: string, detail?: string): PgError {
  return new PgError({ severity: 'FATAL', code: '08006', message: `could not connect to PostgreSQL at ${host}:${port}: ${message}`, detail });
}

/** A plaintext socket, once connected: the node's Unix-domain socket where it has one (node-sockets.ts), else TCP. */
export function openPlainSocket(host: string, port: number): Promise<net.Socket> {
  return asConnectError(openNodeSocket(host, port), host, port);
}

/** A TCP socket, once connected (TLS never goes over a Unix-domain socket: PostgreSQL offers none there). */
function openTcpSocket(host: string, port: number): Promise<net.Socket> {
  return asConnectError(connectSocket({ host, port }), host, port);
}

/** A failed connect as the class-08 error that names the node. */
function asConnectError(opening: Promise<net.Socket>, host: string, port: number): Promise<net.Socket> {
  return opening.catch((err: Error) => Promise.reject(tlsError(host, port, err.message)));
}

function sslRequest(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(SSL_REQUEST_CODE, 4);
  return b;
}

/** Connects, negotiates TLS and verifies the node per `opts.mode`; resolves with the TLS socket. */
export async function openTlsSocket(host: string, port: number, opts: BackendTls): Promise<tls.TLSSocket> {
  const raw = await openTcpSocket(host, port);
  try {
    await askForTls(raw, host, port);
    const secure = await handshake(raw, host, port, opts);
    verify(secure, host, port, opts);
    return secure;
  } catch (err) {
    raw.destroy();
    throw err;
  }
}

/** SSLRequest, then exactly one byte: 'S' or a refusal. */
function askForTls(raw: net.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      raw.removeListener('data', onData);
      raw.removeListener('error', onError);
      raw.removeListener('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      cleanup();
      raw.pause();
      const answer = String.fromCharCode(chunk[0]!);
      // Bytes after 'S' would have been injected before the handshake (CVE-2021-23222): refuse them.
      if (answer === 'S' && chunk.length === 1) return resolve();
      if (answer === 'N') return reject(tlsError(host, port, 'the server does not support SSL, but the coordinator requires it', 'Turn on ssl on the node (ssl = on, ssl_cert_file, ssl_key_file) or remove workerTls from the coordinator\'s config.'));
      reject(tlsError(host, port, answer === 'S' ? 'received unencrypted data after the SSL response' : 'the server answered the SSL request with an error'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(tlsError(host, port, err.message));
    };
    const onClose = () => {
      cleanup();
      reject(tlsError(host, port, 'server closed the connection during the SSL request'));
    };
    raw.on('data', onData);
    raw.on('error', onError);
    raw.on('close', onClose);
    raw.write(sslRequest());
  });
}

function handshake(raw: net.Socket, host: string, port: number, opts: BackendTls): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket: raw,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      // Checked in verify() with the mode's rules and clear messages, after the handshake:
      // `authorized` then reflects the chain alone, the host name is checked against the real host.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      // SNI carries host names only, never addresses.
      servername: net.isIP(host) ? undefined : host,
    });
    const onError = (err: Error) => reject(tlsError(host, port, `SSL handshake failed: ${err.message}`));
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      secure.removeListener('error', onError);
      resolve(secure);
    });
  });
}

function verify(secure: tls.TLSSocket, host: string, port: number, opts: BackendTls): void {
  const checkChain = opts.mode !== 'require' || opts.ca !== undefined;
  if (checkChain && !secure.authorized) {
    secure.destroy();
    throw tlsError(host, port, `SSL certificate verification failed (${opts.mode}): ${String(secure.authorizationError ?? 'unknown error')}`, 'The node\'s certificate is not signed by the CA named in workerTls.ca.');
  }
  if (opts.mode !== 'verify-full') return;
  const cert = secure.getPeerCertificate();
  const mismatch = tls.checkServerIdentity(host, cert);
  if (mismatch) {
    secure.destroy();
    throw tlsError(host, port, `server certificate does not match host name "${host}" (verify-full)`, mismatch.message);
  }
}
