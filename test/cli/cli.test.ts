/**
 * The real `pgweave` command, as a user runs it: up (create, with TLS between
 * the coordinator and the workers), up (idempotent), status, url, psql, down,
 * up (restart). The cluster runs detached, exactly as
 * from a shell; `after` takes it down whatever happened.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive, psqlEnv, psqlPath } from '../../src/cluster/index.js';
import { freePortRange, stopOnExit } from '../helpers/postgres.js';

const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', env, timeout: 180_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function pgweave(...args: string[]): Promise<Run> {
  return run(process.execPath, [BIN, ...args]);
}

interface StatusJson {
  dir: string;
  healthy: boolean;
  processes: { name: string; role: string; host: string; port: number; pid: number | null; healthy: boolean }[];
}

async function status(dir: string): Promise<StatusJson> {
  const r = await pgweave('status', '--dir', dir, '--json');
  return JSON.parse(r.stdout) as StatusJson;
}

/** psql (the real client) with the URL, as a user would paste it. */
async function psqlSelect1(url: string): Promise<string> {
  const r = await run(psqlPath(), ['-X', '-At', '-c', 'select 1', url], psqlEnv(''));
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

let root: string;
let dir: string;
let port: number;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pgweave-test-cli-'));
  chmodSync(root, 0o755);
  dir = join(root, 'cluster');
  port = await freePortRange(4);
});

after(async () => {
  await pgweave('down', '--dir', dir);
  rmSync(root, { recursive: true, force: true });
});

test('pgweave up, status, url, psql, down, up again', async () => {
  const first = await pgweave('up', '--dir', dir, '--port', String(port), '--workers', '2', '--fast');
  try {
    const state = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { nodes: { dataDir: string }[] };
    stopOnExit(state.nodes.map((n) => n.dataDir), root);
  } catch {
    // No cluster.json: the assertions below say why.
  }
  assert.equal(first.code, 0, `up failed:\n${first.stderr}`);
  const lines = first.stdout.trimEnd().split('\n');
  const url = lines[lines.length - 1]!;
  assert.match(url, new RegExp(`^postgres://postgres:[A-Za-z0-9_-]+@127\\.0\\.0\\.1:${port}/postgres$`));
  assert.equal(lines.length, 5, 'one line per process, then the URL');
  assert.equal(await psqlSelect1(url), '1');
  // up registers its workers through the coordinator (citus_add_node)
  const nodes = await run(psqlPath(), ['-X', '-At', '-c', 'select count(*) from pg_dist_node where isactive', url], psqlEnv(''));
  assert.equal(nodes.stdout.trim(), '2');

  assert.equal((statSync(join(dir, 'cluster.json')).mode & 0o777).toString(8), '600');
  assert.equal((statSync(join(dir, 'pgweave.json')).mode & 0o777).toString(8), '600');
  const config = JSON.parse(readFileSync(join(dir, 'pgweave.json'), 'utf8'));
  // The coordinator PostgreSQL is reached through its Unix-domain socket; the workers (TLS) over TCP only.
  const { socketDir, ...coordinatorAddress } = config.coordinator;
  assert.deepEqual(coordinatorAddress, { host: '127.0.0.1', port: port + 1 });
  assert.match(socketDir, /\/sockets$/);
  // The pgweave coordinator listens on the same directory too (`pgweave psql` goes through it).
  assert.deepEqual(config.listen, { host: '127.0.0.1', port, socketDir });
  assert.ok(statSync(join(socketDir, `.s.PGSQL.${port}`)).isSocket(), 'the pgweave coordinator listens on its socket');
  assert.ok(statSync(join(socketDir, `.s.PGSQL.${port + 1}`)).isSocket(), 'the coordinator PostgreSQL listens on its socket');
  assert.deepEqual(config.workers, [{ host: '127.0.0.1', port: port + 2 }, { host: '127.0.0.1', port: port + 3 }]);
  assert.equal(existsSync(join(socketDir, `.s.PGSQL.${port + 2}`)), false, 'a worker with TLS has no socket');
  assert.equal(config.internal.user, 'pgweave_internal');

  // TLS between the coordinator and the workers by default: a CA of the cluster, verify-full.
  const tlsDir = join(dir, 'tls');
  assert.deepEqual(config.workerTls, { mode: 'verify-full', ca: join(tlsDir, 'ca.crt') });
  assert.equal((statSync(tlsDir).mode & 0o777).toString(8), '700');
  for (const key of ['ca.key', 'server.key']) assert.equal((statSync(join(tlsDir, key)).mode & 0o777).toString(8), '600', key);
  const password = new URL(url).password;
  const worker = (sslmode: string, sql: string) =>
    run(psqlPath(), ['-X', '-At', '-c', sql, `host=127.0.0.1 port=${port + 2} dbname=postgres user=postgres sslmode=${sslmode} sslrootcert=${join(tlsDir, 'ca.crt')}`], psqlEnv(password));
  const plaintext = await worker('disable', 'select 1');
  assert.notEqual(plaintext.code, 0, 'a worker refuses plaintext');
  assert.match(plaintext.stderr, /no pg_hba\.conf entry|SSL off/);
  const verified = await worker('verify-full', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()');
  assert.equal(verified.code, 0, verified.stderr);
  assert.equal(verified.stdout.trim(), 't', 'the certificate names 127.0.0.1 and chains to the cluster CA');
  // What the coordinator opened to the workers (its pools, run_command_on_workers' own connection) is encrypted.
  const fromCoordinator = await run(psqlPath(), ['-X', '-At', '-c',
    "select result from run_command_on_workers($$select count(*) filter (where s.ssl) || '/' || count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) where a.backend_type = 'client backend'$$)", url], psqlEnv(''));
  assert.equal(fromCoordinator.code, 0, fromCoordinator.stderr);
  for (const line of fromCoordinator.stdout.trim().split('\n')) {
    const [encrypted, all] = line.split('/').map(Number);
    assert.ok(all! > 0 && encrypted === all, `encrypted/all connections on a worker: ${line}`);
  }

  const before = await status(dir);
  assert.equal(before.healthy, true);
  assert.deepEqual(before.processes.map((p) => [p.role, p.port]), [
    ['coordinator-process', port],
    ['coordinator', port + 1],
    ['worker', port + 2],
    ['worker', port + 3],
  ]);
  for (const p of before.processes) assert.ok(p.healthy && p.pid !== null, `${p.name} healthy`);

  const second = await pgweave('up', '--dir', dir, '--port', String(port), '--workers', '2', '--fast');
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout.trimEnd().split('\n').pop(), url, 'up again prints the same URL');
  const afterSecond = await status(dir);
  assert.deepEqual(afterSecond.processes.map((p) => p.pid), before.processes.map((p) => p.pid), 'up again restarts nothing');

  const printed = await pgweave('url', '--dir', dir);
  assert.equal(printed.stdout.trim(), url);
  assert.match(printed.stderr, /password/);

  const viaPsql = await pgweave('psql', '--dir', dir, '--', '-X', '-At', '-c', 'select 40 + 2');
  assert.equal(viaPsql.code, 0, viaPsql.stderr);
  assert.equal(viaPsql.stdout.trim(), '42');

  const down = await pgweave('down', '--dir', dir);
  assert.equal(down.code, 0, down.stderr);
  for (const p of before.processes) assert.equal(processAlive(p.pid!), false, `${p.name} (pid ${p.pid}) stopped`);
  const stopped = await status(dir);
  assert.equal(stopped.healthy, false);
  for (const p of stopped.processes) assert.equal(p.pid, null, `${p.name} has no pid`);

  const third = await pgweave('up', '--dir', dir);
  assert.equal(third.code, 0, third.stderr);
  assert.equal(third.stdout.trimEnd().split('\n').pop(), url);
  assert.equal(await psqlSelect1(url), '1');
  assert.equal((await status(dir)).healthy, true);
});
