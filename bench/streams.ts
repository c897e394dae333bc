/**
 * streams: pgweave topics against the usual single-PostgreSQL queue, in one
 * run on one machine.
 *
 * pgweave: a local cluster (coordinator PostgreSQL + 2 workers, default
 * durable settings, or fsync off everywhere with --fast), the coordinator in this process, one topic with
 * --partitions partitions; producers use pgweave.publish (one event per
 * transaction) and the client library's producer.send (batches);
 * consumers are the client library's at-least-once consumers in one group.
 *
 * Baseline: pgmq's design on the cluster's coordinator PostgreSQL, reached
 * directly: a queue table (msg_id bigserial, vt, read_ct, enqueued_at,
 * message jsonb); send = INSERT; read = UPDATE … vt = now() + 30 s over the
 * first N visible rows taken with FOR UPDATE SKIP LOCKED, RETURNING them;
 * ack = DELETE by msg_id. Its consumers poll every 10 ms when the queue is
 * empty (pgmq.read_with_poll polls every 100 ms by default).
 *
 * Measured for both: publish throughput unbatched (--clients producers, one
 * event per transaction) and batched (--batch events per transaction),
 * consume throughput (--consumers consumers draining a backlog), and
 * end-to-end latency from the publish's commit (the producer's call
 * returned) to the consumer receiving the event, at --rate events/s.
 */
import { loadavg } from 'node:os';
import pg from 'pg';
import { StreamsClient, type Consumer } from '../src/client/index.js';
import { machineSummary, startBenchCluster } from './support.js';
import type { Benchmark } from './run.js';

interface Options {
  duration: number;
  clients: number;
  batch: number;
  consumers: number;
  partitions: number;
  backlog: number;
  rate: number;
  /** fsync off & co. on every PostgreSQL (both sides): measures CPU cost rather than the disk's flush latency. */
  fast: boolean;
  /** Run one side only (profiling); no ratio is printed. */
  only: 'baseline' | 'pgweave' | null;
}

const USAGE = 'streams [--duration S=5] [--clients N=8] [--batch N=100] [--consumers N=4] [--partitions N=8] [--backlog N=20000] [--rate N=200] [--fast] [--only baseline|pgweave]';

function parseOptions(args: string[]): Options {
  const o: Options = { duration: 5, clients: 8, batch: 100, consumers: 4, partitions: 8, backlog: 20000, rate: 200, fast: false, only: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--fast') {
      o.fast = true;
      continue;
    }
    if (a === '--only') {
      const side = args[++i];
      if (side !== 'baseline' && side !== 'pgweave') throw new Error(`--only takes baseline or pgweave\nusage: ${USAGE}`);
      o.only = side;
      continue;
    }
    const v = Number(args[++i]);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive integer\nusage: ${USAGE}`);
    if (a === '--duration') o.duration = v;
    else if (a === '--clients') o.clients = v;
    else if (a === '--batch') o.batch = v;
    else if (a === '--consumers') o.consumers = v;
    else if (a === '--partitions') o.partitions = v;
    else if (a === '--backlog') o.backlog = v;
    else if (a === '--rate') o.rate = v;
    else throw new Error(`unknown option ${a}\nusage: ${USAGE}`);
  }
  return o;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function clients(url: string, n: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
}

/** Runs `step` in a loop on every client for `seconds`; returns the events per second (step returns events done). */
async function loop(cs: pg.Client[], seconds: number, step: (c: pg.Client, i: number) => Promise<number>): Promise<number> {
  const end = Date.now() + seconds * 1000;
  const start = Date.now();
  let total = 0;
  await Promise.all(
    cs.map(async (c, ci) => {
      for (let i = 0; Date.now() < end; i++) {
        const done = await step(c, ci * 1_000_000 + i); // not `total += await …`: that reads total before the await
        total += done;
      }
    }),
  );
  return total / ((Date.now() - start) / 1000);
}

interface Side {
  publishOne: number;
  publishBatch: number;
  consume: number;
  p50: number;
  p99: number;
}

const BASELINE_SCHEMA = `
DROP TABLE IF EXISTS bench_queue;
CREATE TABLE bench_queue (
  msg_id bigserial PRIMARY KEY,
  read_ct int NOT NULL DEFAULT 0,
  enqueued_at timestamptz NOT NULL DEFAULT now(),
  vt timestamptz NOT NULL DEFAULT now(),
  message jsonb
);
CREATE INDEX ON bench_queue (vt);`;

const BASELINE_READ = `
WITH cte AS (
  SELECT msg_id FROM bench_queue WHERE vt <= clock_timestamp() ORDER BY msg_id LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE bench_queue q SET vt = clock_timestamp() + interval '30 seconds', read_ct = read_ct + 1
FROM cte WHERE q.msg_id = cte.msg_id RETURNING q.msg_id, q.message`;

async function baseline(url: string, o: Options): Promise<Side> {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(BASELINE_SCHEMA);
  const producers = await clients(url, o.clients);
  const payload = (i: number) => JSON.stringify({ i, body: 'x'.repeat(100) });
  const publishOne = await loop(producers, o.duration, async (c, i) => {
    await c.query('INSERT INTO bench_queue (message) VALUES ($1)', [payload(i)]);
    return 1;
  });
  const publishBatch = await loop(producers, o.duration, async (c, i) => {
    await c.query('INSERT INTO bench_queue (message) SELECT pg_catalog.unnest($1::jsonb[])', [Array.from({ length: o.batch }, (_, j) => payload(i * o.batch + j))]);
    return o.batch;
  });
  await setup.query('TRUNCATE bench_queue');
  for (let n = 0; n < o.backlog; n += 1000) {
    await setup.query('INSERT INTO bench_queue (message) SELECT pg_catalog.unnest($1::jsonb[])', [Array.from({ length: 1000 }, (_, j) => payload(n + j))]);
  }
  await setup.query('VACUUM ANALYZE bench_queue');
  const consumers = await clients(url, o.consumers);
  let consumed = 0;
  const started = Date.now();
  await Promise.all(
    consumers.map(async (c) => {
      for (;;) {
        const r = await c.query(BASELINE_READ, [100]);
        if (r.rows.length === 0) break;
        await c.query('DELETE FROM bench_queue WHERE msg_id = ANY($1::bigint[])', [r.rows.map((row) => row.msg_id)]);
        consumed += r.rows.length;
      }
    }),
  );
  const consume = consumed / ((Date.now() - started) / 1000);

  // Latency: one producer at --rate, one consumer polling every 10 ms when empty.
  const sent = new Map<number, number>();
  const latencies: number[] = [];
  let stop = false;
  const reader = consumers[0]!;
  const consumerDone = (async () => {
    while (!stop || sent.size > 0) {
      const r = await reader.query(BASELINE_READ, [100]);
      const now = performance.now();
      if (r.rows.length === 0) {
        await sleep(10);
        continue;
      }
      for (const row of r.rows) {
        const at = sent.get(row.message.i);
        if (at !== undefined) {
          latencies.push(now - at);
          sent.delete(row.message.i);
        }
      }
      await reader.query('DELETE FROM bench_queue WHERE msg_id = ANY($1::bigint[])', [r.rows.map((row) => row.msg_id)]);
    }
  })();
  await produceAtRate(o, async (i) => {
    await producers[0]!.query('INSERT INTO bench_queue (message) VALUES ($1)', [JSON.stringify({ i })]);
    sent.set(i, performance.now());
  });
  stop = true;
  await Promise.race([consumerDone, sleep(10_000)]);
  for (const c of [...producers, ...consumers, setup]) await c.end();
  return { publishOne, publishBatch, consume, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function produceAtRate(o: Options, publish: (i: number) => Promise<void>): Promise<void> {
  const interval = 1000 / o.rate;
  const start = performance.now();
  const count = Math.round(o.rate * o.duration);
  for (let i = 0; i < count; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await publish(i);
  }
}

async function weave(url: string, o: Options): Promise<Side> {
  const admin = await StreamsClient.connect(url);
  await admin.createTopic('bench_events', { partitions: o.partitions });
  const producers = await clients(url, o.clients);
  const payload = (i: number) => ({ i, body: 'x'.repeat(100) });
  const publishOne = await loop(producers, o.duration, async (c, i) => {
    await c.query('SELECT pgweave.publish($1, $2, $3)', ['bench_events', JSON.stringify(payload(i)), `k${i}`]);
    return 1;
  });
  const libProducers = await Promise.all(Array.from({ length: o.clients }, () => StreamsClient.connect(url)));
  const end = Date.now() + o.duration * 1000;
  const t0 = Date.now();
  let batched = 0;
  await Promise.all(
    libProducers.map(async (client, ci) => {
      const producer = client.producer();
      for (let i = 0; Date.now() < end; i++) {
        // keyless: each batch goes to one partition (round-robin), one lock, one INSERT
        await producer.send('bench_events', Array.from({ length: o.batch }, (_, j) => ({ value: payload(ci * 1e6 + i * o.batch + j) })));
        batched += o.batch;
      }
    }),
  );
  const publishBatch = batched / ((Date.now() - t0) / 1000);

  // Consume: a fresh group reads the backlog from the start of a new topic.
  await admin.createTopic('bench_backlog', { partitions: o.partitions });
  const loader = admin.producer();
  for (let n = 0; n < o.backlog; n += 1000) {
    await loader.send('bench_backlog', Array.from({ length: 1000 }, (_, j) => ({ key: `k${(n + j) % 997}`, value: payload(n + j) })));
  }
  const group = 'bench_group';
  const consumers: Array<Consumer<{ i: number }>> = [];
  const consumerClients: StreamsClient[] = [];
  for (let k = 0; k < o.consumers; k++) {
    const c = await StreamsClient.connect(url);
    consumerClients.push(c);
    consumers.push(c.consumer<{ i: number }>({ topic: 'bench_backlog', group, consumerId: `bench-${k}`, maxEvents: 100, waitMs: 200, leaseTimeoutMs: 10000 }));
  }
  let consumed = 0;
  const started = Date.now();
  await Promise.all(
    consumers.map(async (consumer) => {
      let idle = 0;
      while (consumed < o.backlog && idle < 25) {
        const batch = await consumer.poll();
        if (!batch) {
          idle++;
          continue;
        }
        idle = 0;
        await batch.commit();
        consumed += batch.events.length;
      }
    }),
  );
  const consume = consumed / ((Date.now() - started) / 1000);
  for (const c of consumers) await c.close();

  // Latency: one producer at --rate, one consumer waiting in poll (woken by the coordinator's notification).
  const sent = new Map<number, number>();
  const latencies: number[] = [];
  const latencyClient = await StreamsClient.connect(url);
  const consumer = latencyClient.consumer<{ i: number }>({ topic: 'bench_events', group: 'bench_latency', consumerId: 'latency', start: 'latest', maxEvents: 100, waitMs: 1000 });
  await consumer.poll(); // joins the group at the end of the topic
  let stop = false;
  const consumerDone = (async () => {
    while (!stop || sent.size > 0) {
      const batch = await consumer.poll();
      const now = performance.now();
      if (!batch) {
        if (stop) break;
        continue;
      }
      for (const e of batch.events) {
        const at = sent.get(e.value.i);
        if (at !== undefined) {
          latencies.push(now - at);
          sent.delete(e.value.i);
        }
      }
      await batch.commit();
    }
  })();
  const producer = await clients(url, 1);
  await produceAtRate(o, async (i) => {
    await producer[0]!.query('SELECT pgweave.publish($1, $2, $3)', ['bench_events', JSON.stringify({ i: 1e9 + i }), `lat${i % 64}`]);
    sent.set(1e9 + i, performance.now());
  });
  stop = true;
  await Promise.race([consumerDone, sleep(10_000)]);
  await consumer.close();
  for (const c of [...producers, ...producer]) await c.end();
  for (const c of [...libProducers, ...consumerClients, latencyClient, admin]) c.close();
  return { publishOne, publishBatch, consume, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function runStreams(args: string[]): Promise<void> {
  const o = parseOptions(args);
  console.log(`machine: ${machineSummary()}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const cluster = await startBenchCluster({ name: 'streams', workers: 2, fast: o.fast });
  const { created, coordinator, password } = cluster;
  try {
    const pgAddr = created.config.coordinator;
    const directUrl = `postgres://postgres:${password}@${pgAddr.host}:${pgAddr.port}/postgres`;
    const weaveUrl = `postgres://postgres:${password}@${coordinator.address.host}:${coordinator.address.port}/postgres`;
    const admin = new pg.Client({ connectionString: weaveUrl });
    await admin.connect();
    for (const w of created.config.workers) await admin.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
    await admin.end();
    console.log(`pgweave: coordinator in-process, 2 workers, topic of ${o.partitions} partitions; baseline: FOR UPDATE SKIP LOCKED queue on one PostgreSQL`);
    console.log(`options: ${JSON.stringify(o)}`);

    const none: Side = { publishOne: NaN, publishBatch: NaN, consume: NaN, p50: NaN, p99: NaN };
    const b = o.only === 'pgweave' ? none : await baseline(directUrl, o);
    const w = o.only === 'baseline' ? none : await weave(weaveUrl, o);
    const row = (name: string, bv: number, wv: number, unit: string, higherIsBetter = true) =>
      `${name.padEnd(34)} ${bv.toFixed(0).padStart(9)} ${wv.toFixed(0).padStart(9)}  ${unit.padEnd(9)} ratio ${(higherIsBetter ? wv / bv : bv / wv).toFixed(2)}`;
    console.log('');
    console.log(`${''.padEnd(34)} ${'baseline'.padStart(9)} ${'pgweave'.padStart(9)}`);
    console.log(row(`publish, 1 event/txn, ${o.clients} clients`, b.publishOne, w.publishOne, 'events/s'));
    console.log(row(`publish, ${o.batch} events/txn, ${o.clients} clients`, b.publishBatch, w.publishBatch, 'events/s'));
    console.log(row(`consume, ${o.consumers} consumers, batches of 100`, b.consume, w.consume, 'events/s'));
    console.log(`${`end-to-end latency p50 at ${o.rate}/s`.padEnd(34)} ${b.p50.toFixed(1).padStart(9)} ${w.p50.toFixed(1).padStart(9)}  ms`);
    console.log(`${`end-to-end latency p99 at ${o.rate}/s`.padEnd(34)} ${b.p99.toFixed(1).padStart(9)} ${w.p99.toFixed(1).padStart(9)}  ms`);
    console.log('(ratio: pgweave / baseline for throughput)');
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await cluster.stop();
  }
}

export const streams: Benchmark = {
  description: 'topics: publish (unbatched, batched), consume, end-to-end latency vs a FOR UPDATE SKIP LOCKED queue',
  usage: USAGE,
  run: runStreams,
};
