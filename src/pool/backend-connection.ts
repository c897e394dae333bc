/**
 * One connection from the coordinator to a PostgreSQL node.
 *
 * States: connecting → authenticating → ready → (owned by a session in raw
 * mode | running internal queries) → closed. `connectBackend` performs the
 * startup and authentication (SCRAM with a password, SCRAM pass-through with a
 * client's keys, or trust) and resolves at the first ReadyForQuery, with the
 * server's ParameterStatus values and BackendKeyData collected. After that the
 * owner attaches its own 'data' handler: sessions forward bytes, InternalClient
 * decodes results.
 *
 * Where the coordinator's config asks for TLS to the nodes (backend-tls.ts),
 * the socket is a TLS socket negotiated and verified before the startup
 * message: credentials and queries never cross the network in plaintext,
 * and a node that offers no TLS is refused, never used without it.
 */
import net from 'node:net';
import { Backend } from '../protocol/constants.js';
import { MessageFramer, forEachMessage } from '../protocol/framer.js';
import { PgError } from '../protocol/errors.js';
import { readAuthentication } from '../protocol/backend/authentication.js';
import { readParameterStatus } from '../protocol/backend/parameter-status.js';
import { readBackendKeyData, type BackendKey } from '../protocol/backend/backend-key-data.js';
import { readErrorResponse } from '../protocol/backend/error-response.js';
import { ScramClientExchange, type ScramKeys } from '../protocol/scram.js';
import { encodeStartup, encodeSASLInitialResponse, encodeSASLResponse, encodeCancelRequest } from './frontend-encoders.js';
import { backendTlsFor, openPlainSocket, openTlsSocket, type BackendTls } from './backend-tls.js';

export type BackendCredentials = { password: string } | { keys: ScramKeys } | { trust: true };

export interface BackendConnectOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  credentials: BackendCredentials;
  /** Extra startup parameters (application_name, options, client_encoding…). */
  params?: Iterable<[string, string]>;
  connectTimeoutMs?: number;
  /** TLS for this connection; default: the process's policy for the node (backend-tls.ts), null for plaintext. */
  tls?: BackendTls | null;
}

export interface BackendConnection {
  socket: net.Socket;
  host: string;
  port: number;
  parameters: Map<string, string>;
  key: BackendKey;
}

function connectionError(o: BackendConnectOptions, err: Error): PgError {
  return new PgError({
    severity: 'FATAL',
    code: '08006',
    message: `could not connect to PostgreSQL at ${o.host}:${o.port}: ${err.message}`,
  });
}

/** Opens, authenticates and returns a connection that has sent its first ReadyForQuery. */
export async function connectBackend(o: BackendConnectOptions): Promise<BackendConnection> {
  const timeoutMs = o.connectTimeoutMs ?? 10000;
  const tlsOptions = o.tls === undefined ? backendTlsFor(o.host, o.port) : o.tls;
  const opening = tlsOptions ? openTlsSocket(o.host, o.port, tlsOptions) : openPlainSocket(o.host, o.port);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PgError({ severity: 'FATAL', code: '08006', message: `timeout connecting to PostgreSQL at ${o.host}:${o.port}` })), timeoutMs);
  });
  let socket: net.Socket;
  try {
    socket = await Promise.race([opening, timeout]);
  } catch (err) {
    // A socket that opens after the timeout is closed at once.
    void opening.then((s) => s.destroy(), () => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return startup(socket, o, timeoutMs);
}

/** Startup and authentication on an open (plain or TLS) socket, up to the first ReadyForQuery. */
function startup(socket: net.Socket, o: BackendConnectOptions, timeoutMs: number): Promise<BackendConnection> {
  return new Promise((resolve, reject) => {
    socket.setNoDelay(true);
    const framer = new MessageFramer();
    const parameters = new Map<string, string>();
    let key: BackendKey = { processId: 0, secretKey: 0 };
    let scram: ScramClientExchange | null = null;
    let settled = false;
    const timer = setTimeout(() => fail(new PgError({ severity: 'FATAL', code: '08006', message: `timeout connecting to PostgreSQL at ${o.host}:${o.port}` })), timeoutMs);

    function fail(err: PgError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }

    function onMessage(buf: Buffer, type: number, start: number, end: number): void {
      switch (type) {
        case Backend.Authentication: {
          const auth = readAuthentication(buf, start, end);
          if (auth.kind === 'ok') return;
          if (auth.kind === 'sasl') {
            if (!auth.mechanisms.includes('SCRAM-SHA-256')) throw new PgError({ code: '08004', message: `server offers no supported SASL mechanism (${auth.mechanisms.join(', ')})` });
            if ('trust' in o.credentials) throw new PgError({ severity: 'FATAL', code: '28000', message: `PostgreSQL at ${o.host}:${o.port} requires a password for role "${o.user}", and the coordinator has none for it (trust authentication needs the node to trust the coordinator too)` });
            scram = new ScramClientExchange(o.credentials);
            socket.write(encodeSASLInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
            return;
          }
          if (auth.kind === 'sasl-continue' && scram) {
            socket.write(encodeSASLResponse(scram.clientFinal(auth.data)));
            return;
          }
          if (auth.kind === 'sasl-final' && scram) {
            scram.verifyServerFinal(auth.data);
            return;
          }
          throw new PgError({ code: '08004', message: `PostgreSQL at ${o.host}:${o.port} asked for an unsupported authentication method (${auth.kind}); configure scram-sha-256` });
        }
        case Backend.ParameterStatus: {
          const [name, value] = readParameterStatus(buf, start, end);
          parameters.set(name, value);
          return;
        }
        case Backend.BackendKeyData:
          key = readBackendKeyData(buf, start, end);
          return;
        case Backend.ErrorResponse:
          throw readErrorResponse(buf, start, end);
        case Backend.ReadyForQuery:
          settled = true;
          clearTimeout(timer);
          socket.removeListener('data', onData);
          socket.removeListener('error', onError);
          socket.removeListener('close', onClose);
          resolve({ socket, host: o.host, port: o.port, parameters, key });
          return;
        default:
          return; // NoticeResponse, NegotiateProtocolVersion: nothing to do
      }
    }

    function onData(chunk: Buffer): void {
      try {
        const whole = framer.take(chunk);
        if (whole) forEachMessage(whole, (type, start, end) => { if (!settled) onMessage(whole, type, start, end); });
      } catch (err) {
        fail(err instanceof PgError ? err : connectionError(o, err as Error));
      }
    }
    const onError = (err: Error) => fail(connectionError(o, err));
    const onClose = () => fail(connectionError(o, new Error('server closed the connection during startup')));

    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    const params: Array<[string, string]> = [['user', o.user], ['database', o.database]];
    for (const [k, v] of o.params ?? []) if (k !== 'user' && k !== 'database') params.push([k, v]);
    socket.write(encodeStartup(params));
    socket.resume();
  });
}

/** Asks a node to cancel the query running on the backend with this key (over TLS where the node's connections use it). */
export async function sendCancelRequest(host: string, port: number, key: BackendKey): Promise<void> {
  const tlsOptions = backendTlsFor(host, port);
  let s: net.Socket;
  try {
    s = tlsOptions ? await openTlsSocket(host, port, tlsOptions) : await openPlainSocket(host, port);
  } catch {
    return; // as before: a cancel that cannot be delivered is dropped
  }
  await new Promise<void>((resolve) => {
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.end(encodeCancelRequest(key.processId, key.secretKey));
  });
}
