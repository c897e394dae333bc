/**
 * SCRAM-SHA-256, both ends: our server exchange against our client (with a
 * password and with pass-through keys) and against an independent client
 * implementation (node-postgres's), wrong passwords, tampered messages, and
 * the verifier format PostgreSQL stores in pg_authid.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  ScramClientExchange,
  ScramServerExchange,
  mockScramVerifier,
  parseScramVerifier,
  type ScramKeys,
  type ScramVerifier,
} from '../../src/protocol/scram.js';
import { PgError } from '../../src/protocol/errors.js';

/** A verifier as PostgreSQL's scram_build_secret computes it. */
function buildVerifier(password: string, iterations = 4096, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

function verifierFor(password: string): ScramVerifier {
  const v = parseScramVerifier(buildVerifier(password));
  assert.ok(v);
  return v;
}

/** Runs a whole exchange; returns the server's outcome and whether the client accepted the server. */
function exchange(
  verifier: ScramVerifier,
  credentials: { password: string } | { keys: ScramKeys },
): { keys: ScramKeys | null; clientAcceptedServer: boolean } {
  const server = new ScramServerExchange(verifier);
  const client = new ScramClientExchange(credentials);
  const serverFirst = server.handleClientFirst(client.clientFirst());
  const outcome = server.handleClientFinal(client.clientFinal(serverFirst));
  if (!outcome) return { keys: null, clientAcceptedServer: false };
  client.verifyServerFinal(outcome.serverFinal);
  return { keys: outcome.keys, clientAcceptedServer: true };
}

function assertPgError(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PgError, `expected PgError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('parseScramVerifier', () => {
  test('parses the pg_authid format', () => {
    const salt = Buffer.from('0123456789abcdef');
    const text = buildVerifier('secret', 4096, salt);
    const v = parseScramVerifier(text);
    assert.ok(v);
    assert.equal(v.iterations, 4096);
    assert.equal(v.salt, salt.toString('base64'));
    assert.equal(v.storedKey.length, 32);
    assert.equal(v.serverKey.length, 32);
  });

  test('a verifier PostgreSQL 15 produced parses to its parts', () => {
    // SELECT rolpassword FROM pg_authid after CREATE ROLE … PASSWORD 'pencil'
    const text =
      'SCRAM-SHA-256$4096:X3bSQEvx7TOE/6e0CzIgrA==$y0ttsJ3OpC9SWiGVzQqrdYVUxWPRNnzWi0ULfXjbfkE=:JJqDAYXd+6Fu0LDqnr4bTIZvaPBSPZ5i/yxL/h+tJZk=';
    const v = parseScramVerifier(text);
    assert.ok(v);
    assert.equal(v.iterations, 4096);
    assert.equal(v.salt, 'X3bSQEvx7TOE/6e0CzIgrA==');
  });

  test('md5 hashes, plain text, empty and null are not SCRAM verifiers', () => {
    assert.equal(parseScramVerifier(null), null);
    assert.equal(parseScramVerifier(''), null);
    assert.equal(parseScramVerifier('md5' + 'a'.repeat(32)), null);
    assert.equal(parseScramVerifier('pencil'), null);
    assert.equal(parseScramVerifier('SCRAM-SHA-256$4096:salt'), null);
  });
});

describe('SCRAM exchange', () => {
  test('our client with the right password logs in, and the server proves itself', () => {
    const v = verifierFor('correct horse');
    const { keys, clientAcceptedServer } = exchange(v, { password: 'correct horse' });
    assert.ok(keys);
    assert.ok(clientAcceptedServer);
    assert.deepEqual(keys.storedKey, v.storedKey);
    assert.deepEqual(keys.serverKey, v.serverKey);
    // the recovered ClientKey is the one the password derives
    assert.deepEqual(createHash('sha256').update(keys.clientKey).digest(), v.storedKey);
  });

  test('a wrong password yields no keys', () => {
    assert.equal(exchange(verifierFor('right'), { password: 'wrong' }).keys, null);
  });

  test('passwords are NFKC-normalized like PostgreSQL (SASLprep)', () => {
    // U+2168 ROMAN NUMERAL NINE normalizes to "IX"
    assert.ok(exchange(verifierFor('\u2168'), { password: 'IX' }).keys);
  });

  test('pass-through: the keys recovered from one login authenticate again, without the password', () => {
    const v = verifierFor('pass-through');
    const first = exchange(v, { password: 'pass-through' });
    assert.ok(first.keys);
    // a second server (another node) holding the same verifier
    const second = exchange(v, { keys: first.keys });
    assert.ok(second.keys);
    assert.ok(second.clientAcceptedServer);
    // and a third hop from the second's keys
    assert.ok(exchange(v, { keys: second.keys! }).keys);
  });

  test('pass-through keys of another role fail against this verifier', () => {
    const other = exchange(verifierFor('a'), { password: 'a' }).keys!;
    assert.equal(exchange(verifierFor('a'), { keys: other }).keys, null, 'different salt: different keys');
  });

  test('the client refuses a server that does not hold the verifier', () => {
    // a mock verifier (unknown role) with a proof forged to pass: the server
    // signature cannot match what the password derives
    const real = verifierFor('pw');
    const impostor: ScramVerifier = { ...real, serverKey: randomBytes(32) };
    const server = new ScramServerExchange(impostor);
    const client = new ScramClientExchange({ password: 'pw' });
    const outcome = server.handleClientFinal(client.clientFinal(server.handleClientFirst(client.clientFirst())));
    assert.ok(outcome, 'the stored key is right, so the proof passes');
    assertPgError(() => client.verifyServerFinal(outcome.serverFinal), '08P01', /signature does not match/);
    assertPgError(() => client.verifyServerFinal('e=other-error'), '08P01');
  });

  test('a mock verifier is stable per user, differs between users, and matches no password', () => {
    const secret = randomBytes(32);
    const a1 = mockScramVerifier('alice', secret);
    const a2 = mockScramVerifier('alice', secret);
    const b = mockScramVerifier('bob', secret);
    assert.equal(a1.salt, a2.salt, 'the same salt on every attempt, as a real role would have');
    assert.notEqual(a1.salt, b.salt);
    assert.equal(a1.iterations, 4096);
    for (const password of ['', 'alice', 'password']) assert.equal(exchange(a1, { password }).keys, null);
  });

  test('a tampered proof or a proof of the wrong length yields no keys', () => {
    const v = verifierFor('pw');
    const server = new ScramServerExchange(v);
    const client = new ScramClientExchange({ password: 'pw' });
    const final = client.clientFinal(server.handleClientFirst(client.clientFirst()));
    const at = final.lastIndexOf(',p=');
    const proof = Buffer.from(final.slice(at + 3), 'base64');
    proof[0] ^= 1;
    assert.equal(server.handleClientFinal(`${final.slice(0, at)},p=${proof.toString('base64')}`), null);
    assert.equal(server.handleClientFinal(`${final.slice(0, at)},p=${proof.subarray(0, 31).toString('base64')}`), null);
  });

  test('a nonce that is not the server\'s is refused with 08P01', () => {
    const v = verifierFor('pw');
    const server = new ScramServerExchange(v);
    const client = new ScramClientExchange({ password: 'pw' });
    const final = client.clientFinal(server.handleClientFirst(client.clientFirst()));
    assertPgError(() => server.handleClientFinal(final.replace(/r=([^,]+)/, 'r=$1x')), '08P01', /nonce/);
  });

  test('a channel-binding flag that does not match the gs2 header is refused', () => {
    const v = verifierFor('pw');
    const server = new ScramServerExchange(v);
    const client = new ScramClientExchange({ password: 'pw' });
    const final = client.clientFinal(server.handleClientFirst(client.clientFirst()));
    assertPgError(() => server.handleClientFinal(final.replace('c=biws', 'c=eSws')), '08P01', /channel binding/);
  });

  test('malformed client messages are refused with 08P01, not thrown as TypeErrors', () => {
    const v = verifierFor('pw');
    assertPgError(() => new ScramServerExchange(v).handleClientFirst(''), '08P01');
    assertPgError(() => new ScramServerExchange(v).handleClientFirst('n,'), '08P01');
    assertPgError(() => new ScramServerExchange(v).handleClientFirst('x,,n=*,r=abc'), '08P01');
    assertPgError(() => new ScramServerExchange(v).handleClientFirst('n,,n=*'), '08P01', /nonce/);
    assertPgError(() => new ScramServerExchange(v).handleClientFirst('p=tls-server-end-point,,n=*,r=abc'), '08P01', /channel binding/);
    const server = new ScramServerExchange(v);
    server.handleClientFirst('n,,n=*,r=abc');
    assertPgError(() => server.handleClientFinal('c=biws,r=abc'), '08P01', /proof/);
  });

  test('the client refuses a server-first-message whose nonce does not extend its own', () => {
    const client = new ScramClientExchange({ password: 'pw' });
    client.clientFirst();
    assertPgError(() => client.clientFinal('r=someoneelse,s=c2FsdA==,i=4096'), '08P01');
    assertPgError(() => new ScramClientExchange({ password: 'pw' }).clientFinal('garbage'), '08P01');
  });

  test('node-postgres\'s independent SCRAM client logs in against our server', async () => {
    const require = createRequire(import.meta.url);
    const sasl = require('pg/lib/crypto/sasl.js') as {
      startSession(mechanisms: string[]): { response: string };
      continueSession(session: object, password: string, serverData: string): Promise<void>;
      finalizeSession(session: object, serverData: string): void;
    };
    const v = verifierFor('from-pg');
    for (const [password, ok] of [['from-pg', true], ['not-it', false]] as const) {
      const session = sasl.startSession(['SCRAM-SHA-256']);
      const server = new ScramServerExchange(v);
      const serverFirst = server.handleClientFirst(session.response);
      await sasl.continueSession(session, password, serverFirst);
      const outcome = server.handleClientFinal((session as { response: string }).response);
      assert.equal(outcome !== null, ok, `password ${password}`);
      if (outcome) sasl.finalizeSession(session, outcome.serverFinal);
    }
  });
});
