/**
 * Client authentication: SCRAM-SHA-256 against the role's verifier in the
 * coordinator PostgreSQL (as PgBouncer's auth_query does), so PostgreSQL's
 * roles and passwords are the cluster's users.
 *
 * An unknown role, a role without a SCRAM verifier, an expired one and the
 * internal role all go through the same exchange against a mock verifier and
 * fail with the same message as a wrong password: the reply never reveals
 * whether a role exists. On success the recovered SCRAM keys let the
 * coordinator log in to nodes as this same role.
 */
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { PgError } from '../protocol/errors.js';
import { MessageWriter } from '../protocol/writer.js';
import {
  writeAuthenticationSASL,
  writeAuthenticationSASLContinue,
  writeAuthenticationSASLFinal,
} from '../protocol/backend/authentication.js';
import { readSASLInitialResponse, readSASLResponse } from '../protocol/frontend/sasl.js';
import { ScramServerExchange, mockScramVerifier, parseScramVerifier, type ScramKeys } from '../protocol/scram.js';
import type { InternalPool } from '../pool/internal-pool.js';
import type { HandshakeReader } from './handshake-reader.js';

const mockSecret = randomBytes(32);

export interface RoleLogin {
  verifier: string | null;
  canLogin: boolean;
  expired: boolean;
}

export async function lookupRole(pool: InternalPool, user: string): Promise<RoleLogin | null> {
  const r = await pool.query(
    'SELECT rolpassword, rolcanlogin, coalesce(rolvaliduntil < now(), false) FROM pg_catalog.pg_authid WHERE rolname = $1',
    [user],
  );
  if (r.rows.length === 0) return null;
  const [verifier, canLogin, expired] = r.rows[0];
  return { verifier, canLogin: canLogin === 't', expired: expired === 't' };
}

function passwordFailed(user: string): PgError {
  return new PgError({ severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${user}"` });
}

/** Runs the SCRAM exchange; returns the client's keys or throws a FATAL PgError. */
export async function authenticateScram(
  socket: Duplex,
  reader: HandshakeReader,
  user: string,
  role: RoleLogin | null,
): Promise<ScramKeys> {
  const real = role && !role.expired ? parseScramVerifier(role.verifier) : null;
  const verifier = real ?? mockScramVerifier(user, mockSecret);
  const w = new MessageWriter(256);

  writeAuthenticationSASL(w, ['SCRAM-SHA-256']);
  socket.write(w.flush());

  const first = await reader.readMessage();
  const initial = readSASLInitialResponse(first, 0, first.length);
  if (initial.mechanism !== 'SCRAM-SHA-256') {
    throw new PgError({ severity: 'FATAL', code: '08P01', message: `client selected an invalid SASL authentication mechanism "${initial.mechanism}"` });
  }
  const exchange = new ScramServerExchange(verifier);
  writeAuthenticationSASLContinue(w, exchange.handleClientFirst(initial.data));
  socket.write(w.flush());

  const second = await reader.readMessage();
  const outcome = exchange.handleClientFinal(readSASLResponse(second, 0, second.length));
  if (!outcome || !real) throw passwordFailed(user);
  writeAuthenticationSASLFinal(w, outcome.serverFinal);
  socket.write(w.flush());
  if (!role!.canLogin) {
    throw new PgError({ severity: 'FATAL', code: '28000', message: `role "${user}" is not permitted to log in` });
  }
  return outcome.keys;
}
