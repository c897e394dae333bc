/**
 * Progress of a running COPY … FROM STDIN in pgweave_stat_progress_copy:
 * a COPY fed slowly through a raw client stream, watched from another
 * connection of the same coordinator and from a second coordinator process
 * serving the same cluster (they share nothing but PostgreSQL). Its row
 * shows pg_stat_progress_copy's columns, grows as data arrives, and
 * disappears when the COPY ends — committed, failed on a bad row, or left by
 * a client that disconnects — and a COPY … TO STDOUT, counted as rows are
 * pulled from the shards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { frontend, message, type RawConnection } from '../server/raw-protocol.js';
import { addWorkers, clusterEndpoint, rawConnect, textClient } from './support.js';

let cluster: TestCluster;
let weave: pg.Client;
let second: Coordinator;
let secondClient: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  weave = await textClient(cluster.url);
  await addWorkers(weave, cluster);
  await weave.query('SET citus.shard_count = 4');
  await weave.query('CREATE TABLE ev (tenant_id int NOT NULL, id bigint NOT NULL, body text)');
  await weave.query(`SELECT create_distributed_table('ev', 'tenant_id')`);
  second = await startCoordinator({ ...cluster.config, listen: { host: cluster.config.listen.host, port: 0 } });
  secondClient = await textClient(cluster.url.replace(`:${cluster.config.listen.port}/`, `:${second.address.port}/`));
});

after(async () => {
  await weave?.end().catch(() => {});
  await secondClient?.end().catch(() => {});
  await second?.close().catch(() => {});
  await cluster?.stop();
});

function rows(from: number, n: number): Buffer {
  let s = '';
  for (let i = from; i < from + n; i++) s += `${i % 97}\t${i}\tbody ${i}\n`;
  return Buffer.from(s);
}

interface ProgressRow {
  pid: string;
  datname: string;
  relid: string;
  relname: string;
  command: string;
  type: string;
  bytes_processed: string;
  bytes_total: string;
  tuples_processed: string;
  tuples_excluded: string;
  shards: string;
}

async function progressOf(c: pg.Client, pid: string): Promise<ProgressRow | null> {
  const r = await c.query('SELECT * FROM pgweave_stat_progress_copy WHERE pid = $1', [pid]);
  return (r.rows[0] as ProgressRow | undefined) ?? null;
}

/** Polls until `ok` holds for the client's progress row (null: the row is gone); fails after 20 s. */
async function waitFor(c: pg.Client, pid: string, ok: (r: ProgressRow | null) => boolean, what: string): Promise<ProgressRow | null> {
  let last: ProgressRow | null = null;
  for (let i = 0; i < 200; i++) {
    last = await progressOf(c, pid);
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}; last seen: ${JSON.stringify(last)}`);
}

/** pg_backend_pid() of a raw connection: the pid the progress view shows for its COPYs. */
async function backendPid(raw: RawConnection): Promise<string> {
  raw.write(frontend.query('SELECT pg_backend_pid()'));
  const answer = await raw.readUntil('Z', 10_000);
  const row = answer.find((m) => m.type === 'D');
  assert.ok(row, 'pg_backend_pid() answers');
  // DataRow: int16 field count, int32 length, the text
  return row.body.toString('utf8', 6, 6 + row.body.readInt32BE(2));
}

async function startCopy(sql = 'COPY ev (tenant_id, id, body) FROM STDIN'): Promise<{ raw: RawConnection; pid: string }> {
  const raw = await rawConnect(clusterEndpoint(cluster));
  const pid = await backendPid(raw);
  raw.write(frontend.query(sql));
  assert.equal((await raw.next())?.type, 'G');
  return { raw, pid };
}

test('a slow COPY: its progress grows, is seen from another coordinator process, and vanishes at the end', async () => {
  await weave.query('TRUNCATE ev');
  const { raw, pid } = await startCopy();
  const first = rows(0, 300);
  raw.write(message('d', first));
  const seen = (await waitFor(weave, pid, (r) => r !== null && Number(r.tuples_processed) === 300, 'the first 300 rows show'))!;
  assert.equal(seen.command, 'COPY FROM');
  assert.equal(seen.type, 'PIPE');
  assert.equal(seen.relname, 'ev');
  assert.equal(seen.datname, 'postgres');
  assert.equal(seen.bytes_processed, String(first.length));
  assert.equal(seen.bytes_total, '0');
  assert.equal(seen.tuples_excluded, '0');
  const relid = (await weave.query(`SELECT 'ev'::regclass::oid AS oid`)).rows[0].oid;
  assert.equal(seen.relid, relid);
  // per shard: the four shards' rows add up
  const shards = JSON.parse(seen.shards) as Record<string, number>;
  assert.equal(Object.keys(shards).length, 4);
  assert.equal(Object.values(shards).reduce((a, b) => a + b, 0), 300);

  // An ordinary role sees it too (the view does not depend on seeing the session in pg_stat_activity).
  await weave.query('CREATE ROLE progress_watcher');
  await weave.query('SET ROLE progress_watcher');
  try {
    assert.equal((await weave.query('SELECT count(*) FROM pgweave_stat_progress_copy WHERE pid = $1', [pid])).rows[0].count, '1');
  } finally {
    await weave.query('RESET ROLE');
  }

  // More data: the count grows, as another coordinator process sees it.
  const more = rows(300, 700);
  raw.write(message('d', more));
  const grown = (await waitFor(secondClient, pid, (r) => r !== null && Number(r.tuples_processed) === 1000, 'the next rows show on the second coordinator'))!;
  assert.equal(grown.bytes_processed, String(first.length + more.length));

  raw.write(message('c'));
  const done = await raw.readUntil('Z', 30_000);
  assert.ok(done.some((m) => m.type === 'C' && m.body.toString('utf8', 0, m.body.length - 1) === 'COPY 1000'));
  await waitFor(weave, pid, (r) => r === null, 'the row vanishes after the COPY');
  await waitFor(secondClient, pid, (r) => r === null, 'the row vanishes on the second coordinator too');
  raw.destroy();
  assert.equal((await weave.query('SELECT count(*) FROM ev')).rows[0].count, '1000');
});

test('a COPY that fails on a bad row, and one whose client disconnects: their rows vanish', async () => {
  await weave.query('TRUNCATE ev');
  const bad = await startCopy();
  bad.raw.write(message('d', rows(0, 200)));
  await waitFor(weave, bad.pid, (r) => r !== null && Number(r.tuples_processed) === 200, 'the failing COPY shows');
  bad.raw.write(message('d', Buffer.from('5\tnot a number\tbody\n')));
  bad.raw.write(message('c'));
  const answer = await bad.raw.readUntil('Z', 30_000);
  const error = answer.find((m) => m.type === 'E');
  assert.ok(error, 'the COPY fails');
  await waitFor(weave, bad.pid, (r) => r === null, 'the failed COPY vanishes');
  bad.raw.destroy();

  const gone = await startCopy();
  gone.raw.write(message('d', rows(0, 200)));
  await waitFor(weave, gone.pid, (r) => r !== null && Number(r.tuples_processed) === 200, 'the second COPY shows');
  gone.raw.destroy();
  await waitFor(weave, gone.pid, (r) => r === null, 'the abandoned COPY vanishes');
  assert.equal((await weave.query('SELECT count(*) FROM ev')).rows[0].count, '0');
});

test('a WHERE clause: excluded rows are counted apart', async () => {
  await weave.query('TRUNCATE ev');
  const { raw, pid } = await startCopy('COPY ev FROM STDIN WHERE id % 4 = 0');
  // Enough rows (~7 MB) that shard batches (1 MB each here) are sent and answered before the end.
  for (let i = 0; i < 30; i++) raw.write(message('d', rows(i * 10_000, 10_000)));
  const seen = (await waitFor(weave, pid, (r) => r !== null && Number(r.tuples_excluded) > 0, 'excluded rows show'))!;
  assert.ok(Number(seen.tuples_processed) + Number(seen.tuples_excluded) <= 300_000);
  raw.write(message('c'));
  const done = await raw.readUntil('Z', 30_000);
  assert.ok(done.some((m) => m.type === 'C' && m.body.toString('utf8', 0, m.body.length - 1) === 'COPY 75000'));
  await waitFor(weave, pid, (r) => r === null, 'the row vanishes');
  raw.destroy();
});

test('COPY … TO STDOUT of a distributed table: rows pulled from the shards, the row stays while the client reads', async () => {
  await weave.query('TRUNCATE ev');
  // ~40 MB: more than socket buffers hold, so the COPY waits for a client that does not read yet.
  await weave.query(`INSERT INTO ev SELECT g % 97, g, repeat('x', 400) FROM generate_series(1, 100000) g`);
  const raw = await rawConnect(clusterEndpoint(cluster));
  const pid = await backendPid(raw);
  raw.write(frontend.query('COPY ev TO STDOUT'));
  const seen = (await waitFor(weave, pid, (r) => r !== null && Number(r.tuples_processed) === 100_000, 'the COPY TO shows every pulled row'))!;
  assert.equal(seen.command, 'COPY TO');
  assert.equal(seen.relname, 'ev');
  assert.ok(Number(seen.bytes_processed) > 40_000_000);
  assert.equal(Object.values(JSON.parse(seen.shards) as Record<string, number>).reduce((a, b) => a + b, 0), 100_000);
  const answer = await raw.readUntil('Z', 120_000);
  assert.equal(answer.filter((m) => m.type === 'd').length, 100_000);
  assert.ok(answer.some((m) => m.type === 'C' && m.body.toString('utf8', 0, m.body.length - 1) === 'COPY 100000'));
  await waitFor(weave, pid, (r) => r === null, 'the COPY TO row vanishes');
  raw.destroy();
});
