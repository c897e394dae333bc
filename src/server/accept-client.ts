/**
 * The startup phase of one client connection, as a straight-line async
 * function: SSLRequest/GSSENCRequest negotiation (TLS when configured),
 * CancelRequest, StartupMessage, authentication, the backend connection made
 * as the client's own role, then AuthenticationOk, ParameterStatus,
 * BackendKeyData and ReadyForQuery — after which a Session owns the socket.
 * Any failure ends only this connection, with a FATAL ErrorResponse.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { PgError, ProtocolViolation, toPgError } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import { readStartupPacket } from '../protocol/frontend/startup.js';
import { writeAuthenticationOk } from '../protocol/backend/authentication.js';
import { writeParameterStatus } from '../protocol/backend/parameter-status.js';
import { writeBackendKeyData } from '../protocol/backend/backend-key-data.js';
import { writeReadyForQuery } from '../protocol/backend/ready-for-query.js';
import { writeErrorResponse } from '../protocol/backend/error-response.js';
import { writeNegotiateProtocolVersion } from '../protocol/backend/negotiate-protocol-version.js';
import { connectBackend, type BackendCredentials } from '../pool/backend-connection.js';
import { Session } from '../session/session.js';
import { authenticateScram, lookupRole } from './authenticate.js';
import { HandshakeReader } from './handshake-reader.js';
import { makeSessionServices } from './session-services.js';
import { startupSettings } from './startup-settings.js';
import type { ServerContext } from './context.js';

function isLoopback(address: string | undefined): boolean {
  return !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
}

/** Sends a FATAL error and closes; the socket may already be gone. */
function refuse(socket: Duplex, err: PgError): void {
  const w = new MessageWriter(256);
  writeErrorResponse(w, { ...err.fields, severity: err.fields.severity === 'ERROR' ? 'FATAL' : err.fields.severity });
  if (!socket.destroyed) socket.end(w.flush());
}

/**
 * `viaSocket`: the client came through the Unix-domain socket (listen-socket.ts).
 * As PostgreSQL, it then gets no TLS (SSLRequest is answered 'N') and counts as
 * local for `trust`, like a loopback address.
 */
export async function acceptClient(raw: net.Socket, ctx: ServerContext, viaSocket = false): Promise<void> {
  raw.setNoDelay(true);
  raw.on('error', () => {});
  let socket: Duplex = raw;
  const reader = new HandshakeReader(raw);
  try {
    let params: Map<string, string> | null = null;
    let sslAnswered = false;
    const w = new MessageWriter(512);
    while (!params) {
      const pkt = await reader.readStartupPacket();
      const p = readStartupPacket(pkt, pkt.length);
      if (p.kind === 'ssl') {
        if (sslAnswered) throw new ProtocolViolation('SSLRequest received twice');
        sslAnswered = true;
        if (ctx.tls && !viaSocket) {
          raw.write('S');
          const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx.tls });
          secure.on('error', () => {});
          reader.switchTo(secure);
          socket = secure;
        } else {
          raw.write('N');
        }
      } else if (p.kind === 'gssenc') {
        raw.write('N');
      } else if (p.kind === 'cancel') {
        reader.finish();
        ctx.cancels.cancel(p.processId, p.secretKey);
        socket.destroy();
        return;
      } else {
        params = p.params;
        const unrecognized = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
        for (const k of unrecognized) params.delete(k);
        if (p.minorVersion > 0 || unrecognized.length > 0) {
          writeNegotiateProtocolVersion(w, 0, unrecognized);
          socket.write(w.flush());
        }
      }
    }

    const user = params.get('user')!;
    const database = params.get('database') || user;
    const replication = params.get('replication');
    if (replication && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
      throw new PgError({ severity: 'FATAL', code: '0A000', message: 'replication connections are not supported through the pgweave coordinator; connect to a node directly' });
    }

    let credentials: BackendCredentials;
    const trusted = ctx.config.auth?.method === 'trust' && (viaSocket || isLoopback(raw.remoteAddress));
    if (user === ctx.config.internal.user && trusted) {
      throw new PgError({ severity: 'FATAL', code: '28000', message: `role "${user}" is reserved for the coordinator's internal use` });
    }
    if (trusted) {
      credentials = { trust: true };
    } else {
      const role = user === ctx.config.internal.user ? null : await lookupRole(ctx.internal, user);
      credentials = { keys: await authenticateScram(socket, reader, user, role) };
    }

    const passthrough = [...params].filter(([k]) => k !== 'user' && k !== 'database');
    const backend = await connectBackend({
      host: ctx.config.coordinator.host,
      port: ctx.config.coordinator.port,
      user,
      database,
      credentials,
      params: passthrough,
    });

    const leftover = reader.finish();
    const startup = startupSettings(params);
    const services = makeSessionServices(ctx.shared, database, user, credentials, startup.signature === '' ? null : startup);
    const session = new Session(socket, backend, ctx.sessionOptions, services);
    const key = ctx.cancels.register(session);
    ctx.sessions.add(session);
    session.onClose = () => {
      ctx.cancels.unregister(key);
      ctx.sessions.delete(session);
    };

    writeAuthenticationOk(w);
    for (const [name, value] of backend.parameters) writeParameterStatus(w, name, value);
    writeBackendKeyData(w, key);
    writeReadyForQuery(w, 'I');
    socket.write(w.flush());
    session.start(leftover);
  } catch (err) {
    reader.finish();
    const pgErr = toPgError(err, '08P01');
    // a client that went away needs no reply
    if (!(err instanceof PgError) && /closed the connection/.test(pgErr.message)) {
      socket.destroy();
      return;
    }
    refuse(socket, pgErr);
  }
}
