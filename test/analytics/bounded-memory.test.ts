/**
 * A result much larger than what the coordinator should buffer streams with
 * bounded coordinator memory: `SELECT * FROM big ORDER BY x, id` over a
 * distributed table (pull plan: the shards' rows are copied into a temporary
 * table on the coordinator PostgreSQL, which sorts — spilling to disk — and
 * streams the rows back through the coordinator process to the client). The
 * coordinator runs in this process, so its resident set size is sampled
 * (every 25 ms) while the query runs:
 *
 * - read by psql in a child process, so nothing but the coordinator counts:
 *   the peak RSS must grow by less than 32 MB while ~100 MB of rows pass;
 * - read in this process by a slow consumer that pauses its socket for
 *   200 ms every 20 000 rows: the coordinator must hold back rather than
 *   buffer, so the RSS may not grow while the reader is paused (by less than
 *   16 MB per pause; PostgreSQL could send far more in 200 ms). The reader's
 *   own garbage counts in this process's RSS too, so the overall growth is
 *   only reported.
 *
 * PGWEAVE_MEMORY_ROWS sets the row count (default 200 000 rows of about 550
 * bytes: 103 MB of DataRow messages).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type pg from 'pg';
import { pgBinary } from '../../src/cluster/pg-binaries.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { message, rawLogin } from '../server/raw-protocol.js';
import { textClient } from './support.js';

const ROWS = Number(process.env.PGWEAVE_MEMORY_ROWS ?? '200000');
const MB = 1024 * 1024;
const QUERY = 'SELECT * FROM big ORDER BY x, id';

let cluster: TestCluster | undefined;
let c: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url, 'bounded-memory');
  for (const w of cluster.workers) await c.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  await c.query('CREATE TABLE big (id bigint PRIMARY KEY, x int NOT NULL, pad text NOT NULL)');
  // Filled on the coordinator, then distributed: create_distributed_table moves the rows into the shards.
  await c.query(`INSERT INTO big SELECT g, (g::bigint * 7919) % 1000003, repeat(md5(g::text), 16) FROM generate_series(1, ${ROWS}) g`);
  await c.query(`SELECT create_distributed_table('big', 'id', shard_count => 8)`);
  // A small pull first, so one-time allocations (code paths, pools) are not counted.
  await c.query('SELECT count(*) FROM big WHERE x < 10');
}, { timeout: 600_000 });

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

/** Samples this process's RSS until stopped; returns the baseline and the peak. */
function rssSampler(): { stop(): { baseline: number; peak: number } } {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return { baseline, peak };
    },
  };
}

test(`${ROWS} ordered rows read by psql: the coordinator's RSS stays bounded`, { timeout: 600_000 }, async (t) => {
  const sampler = rssSampler();
  const started = performance.now();
  // psql counts the bytes of its unaligned output; the coordinator (this process) is all that is measured.
  const out = await new Promise<{ code: number | null; bytes: number; lines: number; stderr: string }>((resolve, reject) => {
    const child = spawn(pgBinary('psql'), [cluster!.url, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', QUERY], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let bytes = 0;
    let lines = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, bytes, lines, stderr });
    });
  });
  const { baseline, peak } = sampler.stop();
  const growth = peak - baseline;
  t.diagnostic(`psql read ${out.lines} rows (${(out.bytes / MB).toFixed(1)} MB of text) in ${((performance.now() - started) / 1000).toFixed(1)} s; coordinator RSS ${(baseline / MB).toFixed(0)} MB before, peak ${(peak / MB).toFixed(0)} MB (+${(growth / MB).toFixed(1)} MB)`);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.lines, ROWS);
  assert.ok(growth < 32 * MB, `coordinator RSS grew by ${(growth / MB).toFixed(1)} MB while ${(out.bytes / MB).toFixed(1)} MB streamed`);
});

test(`${ROWS} ordered rows read by a slow consumer: the coordinator holds back instead of buffering`, { timeout: 600_000 }, async (t) => {
  const conn = await rawLogin({ host: cluster!.config.listen.host, port: cluster!.config.listen.port }, 'postgres', cluster!.password);
  const sampler = rssSampler();
  const started = performance.now();
  let rows = 0;
  let bytes = 0;
  let last: number | null = null;
  let ordered = true;
  let error: string | null = null;
  let pauses = 0;
  let pauseGrowth = 0;
  try {
    conn.write(message('Q', QUERY + '\0'));
    for (let guard = 0; guard < ROWS + 100; guard++) {
      const m = await conn.next(120_000);
      if (!m) throw new Error('no answer within 120 s');
      if (m.type === 'E') error = m.body.toString('utf8');
      if (m.type === 'Z') break;
      if (m.type !== 'D') continue;
      rows++;
      bytes += m.raw.length;
      // x is the second column: skip id's length-prefixed value
      const idLen = m.body.readInt32BE(2);
      const xLen = m.body.readInt32BE(6 + idLen);
      const x = Number(m.body.toString('utf8', 10 + idLen, 10 + idLen + xLen));
      if (last !== null && x < last) ordered = false;
      last = x;
      if (rows % 20_000 === 0) {
        conn.socket.pause();
        const before = process.memoryUsage().rss;
        let most = before;
        for (let i = 0; i < 8; i++) {
          await new Promise((r) => setTimeout(r, 25));
          most = Math.max(most, process.memoryUsage().rss);
        }
        pauseGrowth = Math.max(pauseGrowth, most - before);
        pauses++;
        conn.socket.resume();
      }
    }
  } finally {
    conn.destroy();
  }
  const { baseline, peak } = sampler.stop();
  const growth = peak - baseline;
  t.diagnostic(`${rows} rows, ${(bytes / MB).toFixed(1)} MB of DataRows in ${((performance.now() - started) / 1000).toFixed(1)} s; process RSS (coordinator and reader) ${(baseline / MB).toFixed(0)} MB before, peak ${(peak / MB).toFixed(0)} MB (+${(growth / MB).toFixed(1)} MB); largest growth during one of ${pauses} pauses: ${(pauseGrowth / MB).toFixed(1)} MB`);
  assert.equal(error, null, `the query failed: ${error}`);
  assert.equal(rows, ROWS);
  assert.ok(ordered, 'rows arrive in ORDER BY order');
  assert.ok(pauses >= 5, 'the reader paused');
  assert.ok(pauseGrowth < 16 * MB, `RSS grew by ${(pauseGrowth / MB).toFixed(1)} MB while the reader was paused`);
});
