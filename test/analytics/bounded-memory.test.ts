/**
 * A result much larger than what the coordinator should buffer streams with
 * bounded coordinator memory: `SELECT * FROM big ORDER BY x` over a
 * distributed table (pull plan: shards' rows copied into a temporary table on
 * the coordinator PostgreSQL, which sorts — spilling to disk — and streams
 * the rows back through the coordinator process to the client). The
 * coordinator runs in this process, so its resident set size is sampled
 * during the query; the client reads with a raw protocol connection in this
 * process too, pausing its socket now and then like a slow consumer, so
 * unbounded buffering anywhere on the coordinator's path would show.
 *
 * PGWEAVE_MEMORY_ROWS sets the row count (default 200 000 rows of about
 * 550 bytes: 110 MB of DataRow messages); the coordinator process's peak RSS
 * must grow by less than 64 MB, well under the result's size.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { message, rawLogin } from '../server/raw-protocol.js';
import { textClient } from './support.js';

const ROWS = Number(process.env.PGWEAVE_MEMORY_ROWS ?? '200000');
const GROWTH_LIMIT_MB = 64;
const MB = 1024 * 1024;

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
}, { timeout: 600_000 });

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

test(`SELECT * … ORDER BY over ${ROWS} rows streams with bounded coordinator memory`, { timeout: 600_000 }, async (t) => {
  const conn = await rawLogin({ host: cluster!.config.listen.host, port: cluster!.config.listen.port }, 'postgres', cluster!.password);
  // A small pull first, so one-time allocations (code paths, pools) are not counted.
  conn.write(message('Q', 'SELECT count(*) FROM big WHERE x < 10\0'));
  await conn.readUntil('Z', 120_000);
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 25);
  const started = performance.now();
  let rows = 0;
  let bytes = 0;
  let last: number | null = null;
  let ordered = true;
  let error: string | null = null;
  try {
    conn.write(message('Q', 'SELECT * FROM big ORDER BY x, id\0'));
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
      // a slow consumer now and then: the coordinator must hold back, not buffer
      if (rows % 20_000 === 0) {
        conn.socket.pause();
        await new Promise((r) => setTimeout(r, 200));
        conn.socket.resume();
      }
    }
  } finally {
    clearInterval(sampler);
    conn.destroy();
  }
  const elapsed = performance.now() - started;
  const growth = peak - baseline;
  t.diagnostic(`${rows} rows, ${(bytes / MB).toFixed(1)} MB of DataRows in ${(elapsed / 1000).toFixed(1)} s; coordinator process RSS ${(baseline / MB).toFixed(0)} MB before, peak ${(peak / MB).toFixed(0)} MB (+${(growth / MB).toFixed(1)} MB)`);
  assert.equal(error, null, `the query failed: ${error}`);
  assert.equal(rows, ROWS);
  assert.ok(ordered, 'rows arrive in ORDER BY order');
  assert.ok(growth < GROWTH_LIMIT_MB * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB while streaming ${(bytes / MB).toFixed(1)} MB (limit ${GROWTH_LIMIT_MB} MB)`);
});
