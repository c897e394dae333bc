/**
 * SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it, for both ends.
 *
 * Server side: the coordinator verifies a client against the verifier stored in
 * the coordinator PostgreSQL (pg_authid.rolpassword) and, from the client's
 * proof, recovers the ClientKey (proof XOR HMAC(StoredKey, AuthMessage)).
 * Client side: with that ClientKey — or with a password — the coordinator then
 * authenticates to any node holding the same verifier as that same role, the
 * way PgBouncer passes SCRAM through. No password is ever stored or logged.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { PgError } from './errors.js';

export interface ScramVerifier {
  iterations: number;
  salt: string; // base64, as stored
  storedKey: Buffer;
  serverKey: Buffer;
}

/** The keys that let a party act as the role without knowing its password. */
export interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const VERIFIER = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/;

export function parseScramVerifier(rolpassword: string | null): ScramVerifier | null {
  if (!rolpassword) return null;
  const m = VERIFIER.exec(rolpassword);
  if (!m) return null;
  return {
    iterations: Number(m[1]),
    salt: m[2],
    storedKey: Buffer.from(m[3], 'base64'),
    serverKey: Buffer.from(m[4], 'base64'),
  };
}

/** A verifier that matches no password, so unknown roles look like known ones. */
export function mockScramVerifier(user: string, secret: Buffer): ScramVerifier {
  const salt = createHmac('sha256', secret).update('salt:' + user).digest().subarray(0, 16).toString('base64');
  return { iterations: 4096, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

function authFailed(message: string): PgError {
  return new PgError({ severity: 'FATAL', code: '08P01', message });
}

function attributes(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0], part.slice(2));
  }
  return out;
}

/** Server-side state of one SCRAM exchange. */
export class ScramServerExchange {
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private gs2Header = '';

  constructor(private readonly verifier: ScramVerifier) {}

  /** Takes client-first-message, returns server-first-message. */
  handleClientFirst(data: string): string {
    // gs2-header: "n,," | "y,," | "p=<cb-name>,," then client-first-bare
    const firstComma = data.indexOf(',');
    const secondComma = data.indexOf(',', firstComma + 1);
    if (firstComma < 0 || secondComma < 0) throw authFailed('malformed SCRAM message');
    const cbFlag = data.slice(0, firstComma);
    if (cbFlag.startsWith('p=')) {
      throw authFailed('channel binding is not supported by this server; connect with channel_binding=disable or prefer');
    }
    if (cbFlag !== 'n' && cbFlag !== 'y') throw authFailed('malformed SCRAM message');
    this.gs2Header = data.slice(0, secondComma + 1);
    this.clientFirstBare = data.slice(secondComma + 1);
    const clientNonce = attributes(this.clientFirstBare).get('r');
    if (!clientNonce) throw authFailed('malformed SCRAM message (nonce expected)');
    this.nonce = clientNonce + randomBytes(18).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt},i=${this.verifier.iterations}`;
    return this.serverFirst;
  }

  /**
   * Takes client-final-message. Returns the server-final-message and the
   * recovered ClientKey, or null when the proof is wrong.
   */
  handleClientFinal(data: string): { serverFinal: string; keys: ScramKeys } | null {
    const proofAt = data.lastIndexOf(',p=');
    if (proofAt < 0) throw authFailed('malformed SCRAM message (proof expected)');
    const withoutProof = data.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get('r') !== this.nonce) throw authFailed('SCRAM nonce does not match');
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) {
      throw authFailed('SCRAM channel binding check failed');
    }
    const proof = Buffer.from(data.slice(proofAt + 3), 'base64');
    if (proof.length !== 32) return null;
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.verifier.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) return null;
    const serverSignature = hmac(this.verifier.serverKey, authMessage);
    return {
      serverFinal: 'v=' + serverSignature.toString('base64'),
      keys: { clientKey, storedKey: this.verifier.storedKey, serverKey: this.verifier.serverKey },
    };
  }
}

/** Client-side state of one SCRAM exchange, with a password or pass-through keys. */
export class ScramClientExchange {
  private readonly clientNonce = randomBytes(18).toString('base64');
  private readonly clientFirstBare = `n=*,r=${this.clientNonce}`;
  private expectedServerSignature: Buffer | null = null;

  constructor(private readonly credentials: { password: string } | { keys: ScramKeys }) {}

  clientFirst(): string {
    return 'n,,' + this.clientFirstBare;
  }

  /** Takes server-first-message, returns client-final-message. */
  clientFinal(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !salt || !iterations || !nonce.startsWith(this.clientNonce)) {
      throw new PgError({ code: '08P01', message: 'invalid SCRAM server-first-message from server' });
    }
    let keys: ScramKeys;
    if ('password' in this.credentials) {
      const salted = pbkdf2Sync(this.credentials.password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
      const clientKey = hmac(salted, 'Client Key');
      keys = { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
    } else {
      keys = this.credentials.keys;
    }
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(keys.clientKey, hmac(keys.storedKey, authMessage));
    this.expectedServerSignature = hmac(keys.serverKey, authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final-message; a server that cannot prove the verifier is refused. */
  verifyServerFinal(serverFinal: string): void {
    const v = attributes(serverFinal).get('v');
    const got = v ? Buffer.from(v, 'base64') : null;
    const want = this.expectedServerSignature;
    if (!got || !want || got.length !== want.length || !timingSafeEqual(got, want)) {
      throw new PgError({ code: '08P01', message: 'the server failed SCRAM verification: its signature does not match' });
    }
  }
}
