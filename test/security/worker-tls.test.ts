/**
 * TLS between the coordinator and the workers (issue 10), against a real
 * 2-worker cluster: the test makes a CA and the workers' certificate with
 * openssl and creates the cluster with `workerTls` (src/cluster: workers get
 * ssl = on and a pg_hba.conf with nothing but `hostssl`; the coordinator's
 * config gets `workerTls: { mode: 'verify-full', ca }`), then shows that
 *
 *   - the coordinator runs
 *     router, multi-shard, DDL and run_command_on_workers over TLS (the
 *     workers' pg_stat_ssl says so), as the client's role;
 *   - a plaintext connection is refused by the worker (28000);
 *   - another CA, a host name the certificate does not name (verify-full),
 *     a node without TLS: each fails with a class-08 error that says why,
 *     also through a coordinator configured with the wrong CA.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { connectBackend } from '../../src/pool/backend-connection.js';
import { setBackendTlsPolicy, type BackendTls } from '../../src/pool/backend-tls.js';
import { PgError } from '../../src/protocol/errors.js';
import { Client } from './support.js';

const TINA = 'Tina-pw-6d02c9';

let cluster: TestCluster;
let certs: string;
let coordinator: Coordinator | null = null;
const clients: Client[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: certs, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and a certificate it signs for the workers naming only 127.0.0.1 (so "localhost" is a mismatch). */
function makeCertificates(): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=pgweave test CA');
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '2', '-subj', '/CN=some other CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=pgweave worker');
  writeFileSync(join(certs, 'san.ext'), 'subjectAltName = IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
}

async function login(user: string, password: string): Promise<Client> {
  const c = await Client.login(coordinator?.address ?? cluster.config.listen, user, password);
  clients.push(c);
  return c;
}

async function start(workerTls: NonNullable<Parameters<typeof startCoordinator>[0]['workerTls']>): Promise<void> {
  for (const c of clients.splice(0)) c.close();
  await coordinator?.close();
  coordinator = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 }, workerTls });
}

/** Opens one connection to a worker as the internal role with explicit TLS options; returns 'ok' or the error. */
async function connectWorker(host: string, tls: BackendTls | null): Promise<PgError | 'ok'> {
  const w = cluster.workers[0]!;
  try {
    const conn = await connectBackend({ host, port: w.port, user: cluster.config.internal.user, database: 'postgres', credentials: { password: cluster.config.internal.password }, tls });
    conn.socket.destroy();
    return 'ok';
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
}

before(async () => {
  certs = mkdtempSync(join(tmpdir(), 'pgweave-tls-'));
  chmodSync(certs, 0o755); // createCluster copies the certificate as root into the workers' data directories
  makeCertificates();
  // The cluster config's workerTls: workers with ssl and hostssl-only pg_hba, the coordinator with verify-full.
  cluster = await startTestCluster({
    workers: 2,
    workerTls: { certFile: join(certs, 'server.crt'), keyFile: join(certs, 'server.key'), ca: join(certs, 'ca.crt'), mode: 'verify-full' },
  });
  assert.deepEqual(cluster.config.workerTls, { mode: 'verify-full', ca: join(certs, 'ca.crt') });
  const admin = await Client.login(cluster.config.listen, 'postgres', cluster.password);
  try {
    // citus_add_node, distribution and grants already run over verified TLS.
    for (const w of cluster.workers) await admin.ok(`SELECT citus_add_node('${w.host}', ${w.port})`);
    await admin.ok(`CREATE ROLE tina LOGIN PASSWORD '${TINA}'`);
    await admin.ok('CREATE TABLE readings (device int NOT NULL, v int)');
    await admin.ok('INSERT INTO readings SELECT i % 10, i FROM generate_series(1, 100) i');
    await admin.ok("SELECT create_distributed_table('readings', 'device', shard_count => 4)");
    await admin.ok('GRANT SELECT, INSERT ON readings TO tina');
  } finally {
    admin.close();
  }
});

after(async () => {
  for (const c of clients) c.close();
  await coordinator?.close();
  setBackendTlsPolicy(null);
  await cluster?.stop();
  rmSync(certs, { recursive: true, force: true });
});

test('a worker that accepts only hostssl refuses a plaintext connection', async () => {
  const refused = await connectWorker('127.0.0.1', null);
  assert.ok(refused instanceof PgError);
  assert.equal(refused.fields.code, '28000');
  assert.match(refused.fields.message, /no encryption/);
  assert.equal(await connectWorker('127.0.0.1', { mode: 'verify-full', ca: readCa('ca.crt') }), 'ok');
});

function readCa(name: string): Buffer {
  return readFileSync(join(certs, name));
}

test('verify-full: every path runs over verified TLS, as the client\'s role', async () => {
  const tina = await login('tina', TINA);
  assert.deepEqual(await tina.ok('SELECT count(*), sum(v) FROM readings'), [['100', '5050']], 'multi-shard');
  assert.deepEqual(await tina.ok('SELECT count(*) FROM readings WHERE device = 3'), [['10']], 'router');
  await tina.ok('INSERT INTO readings VALUES (3, 1000)');
  const onWorkers = await tina.ok("SELECT * FROM run_command_on_workers($$SELECT current_user || ' ' || ssl || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()$$)");
  for (const row of onWorkers) assert.match(row[3]!, /^tina true TLSv1\.[23]$/, row[3]);
  const admin = await login('postgres', cluster.password);
  await admin.ok('CREATE INDEX readings_v ON readings (v)');
  // Every TCP connection the workers hold is encrypted (pg_hba allows nothing else; this says so from the inside).
  const all = await admin.ok(
    "SELECT * FROM run_command_on_workers($$SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL$$)",
  );
  for (const row of all) {
    const [encrypted, total] = row[3]!.split('/');
    assert.equal(encrypted, total, row[3]);
    assert.ok(Number(total) >= 1);
  }
});

test('another CA: the coordinator refuses the workers with a class-08 error', async () => {
  const wrong = await connectWorker('127.0.0.1', { mode: 'verify-ca', ca: readCa('other-ca.crt') });
  assert.ok(wrong instanceof PgError);
  assert.match(wrong.fields.code ?? '', /^08/);
  assert.match(wrong.fields.message, /certificate verification failed/);

  await start({ mode: 'verify-ca', ca: join(certs, 'other-ca.crt') });
  const tina = await login('tina', TINA);
  const r = await tina.query('SELECT count(*) FROM readings');
  assert.match(r.error ?? '', /^08/, `${r.error} ${r.message}`);
  assert.match(r.message ?? '', /certificate verification failed/);
  assert.equal(r.rows.length, 0);
});

test('verify-full refuses a host name the certificate does not name; verify-ca accepts it', async () => {
  const mismatch = await connectWorker('localhost', { mode: 'verify-full', ca: readCa('ca.crt') });
  assert.ok(mismatch instanceof PgError);
  assert.match(mismatch.fields.code ?? '', /^08/);
  assert.match(mismatch.fields.message, /does not match host name "localhost"/);
  assert.equal(await connectWorker('localhost', { mode: 'verify-ca', ca: readCa('ca.crt') }), 'ok');
  assert.equal(await connectWorker('localhost', { mode: 'require' }), 'ok', 'require without a CA: encrypted, not verified');
});

test('a node without TLS is refused, never used in plaintext', async () => {
  const c = cluster.coordinatorPg;
  try {
    const conn = await connectBackend({ ...c, user: cluster.config.internal.user, database: 'postgres', credentials: { password: cluster.config.internal.password }, tls: { mode: 'require' } });
    conn.socket.destroy();
    assert.fail('connected without TLS');
  } catch (err) {
    assert.ok(err instanceof PgError, String(err));
    assert.match(err.fields.code ?? '', /^08/);
    assert.match(err.fields.message, /does not support SSL/);
  }
});
