/**
 * Streams on a 2-worker cluster (issue 8, item 1 and the pieces around it):
 * gap-free offsets in commit order, transactional publishing, consumer
 * groups with exactly-once and at-least-once consumption while producers
 * commit out of order and consumers join, leave and get SIGKILLed mid-batch,
 * fencing, dead letters, replay, retention, wake-ups and the CLI.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { StreamsClient, FencedError, type Consumer } from '../../src/client/index.js';
import { psqlEnv, psqlPath } from '../../src/cluster/index.js';
import { faults } from '../../src/transaction/fault-injection.js';

const CHILD = fileURLToPath(new URL('./consumer-child.js', import.meta.url));
const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

let cluster: TestCluster;
let sql: pg.Client;
const children = new Set<ChildProcess>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: cluster.url });
  await c.connect();
  return c;
}

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  sql = await connect();
  for (const w of cluster.workers) await sql.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await sql?.end();
  await cluster?.stop();
});

test('offsets are gap-free and follow commit order, not the order offsets were taken', async () => {
  await sql.query("SELECT pgweave.create_topic('ordered', partitions => 2)");
  const a = await connect();
  const b = await connect();
  const c = await connect();
  try {
    // All three use key 'k': one partition. A takes the partition's next offset and commits late.
    await a.query('BEGIN');
    await a.query(`SELECT pgweave.publish('ordered', '{"who":"a"}', 'k')`);
    let aCommitted = 0;
    let bInserted = 0;
    const bDone = (async () => {
      await b.query('BEGIN');
      await b.query(`INSERT INTO ordered (key, payload) VALUES ('k', '{"who":"b"}')`);
      bInserted = Date.now();
      await b.query('COMMIT');
    })();
    await c.query('BEGIN');
    const cDone = c.query(`SELECT pgweave.publish('ordered', '{"who":"c"}', 'k')`).then(() => c.query('ROLLBACK'));
    // A consumer polling meanwhile must not see anything past A's uncommitted offset.
    const early = await sql.query(`SELECT * FROM pgweave.read_topic('ordered')`);
    assert.equal(early.rows.length, 0);
    await sleep(300);
    aCommitted = Date.now();
    await a.query('COMMIT');
    await Promise.all([bDone, cDone]);
    assert.ok(bInserted >= aCommitted, 'B takes its offset only once A has committed');
    const r = await sql.query(`SELECT event_offset, payload->>'who' AS who FROM ordered ORDER BY event_offset`);
    assert.deepEqual(r.rows, [
      { event_offset: '0', who: 'a' },
      { event_offset: '1', who: 'b' },
    ]);
    // C rolled back: its offset is given back, the next event gets 2.
    const next = await sql.query(`SELECT * FROM pgweave.publish('ordered', '{"who":"d"}', 'k')`);
    assert.equal(next.rows[0].offset, '2');
  } finally {
    await Promise.all([a.end(), b.end(), c.end()]);
  }
});

test('a transaction publishing on both workers commits or rolls back as a whole', async () => {
  await sql.query("SELECT pgweave.create_topic('multi', partitions => 4)");
  // Keys for every partition, found by publishing and reading back where they went.
  const keys = new Map<number, string>();
  for (let i = 0; keys.size < 4 && i < 200; i++) {
    const r = await sql.query(`SELECT * FROM pgweave.publish('multi', '{"probe":true}', $1)`, [`key${i}`]);
    if (!keys.has(r.rows[0].partition)) keys.set(r.rows[0].partition, `key${i}`);
  }
  const before = await sql.query(`SELECT count(*)::int AS n FROM multi`);
  await sql.query('BEGIN');
  for (const key of keys.values()) await sql.query(`SELECT pgweave.publish('multi', '{"txn":1}', $1)`, [key]);
  await sql.query('ROLLBACK');
  assert.equal((await sql.query(`SELECT count(*)::int AS n FROM multi`)).rows[0].n, before.rows[0].n);
  await sql.query('BEGIN');
  for (const key of keys.values()) await sql.query(`SELECT pgweave.publish('multi', '{"txn":2}', $1)`, [key]);
  await sql.query('COMMIT');
  const r = await sql.query(`SELECT count(DISTINCT partition)::int AS p, count(*)::int AS n FROM multi WHERE payload->>'txn' = '2'`);
  assert.deepEqual(r.rows[0], { p: 4, n: 4 });
  // Offsets stay gap-free per partition.
  const gaps = await sql.query(`SELECT partition, count(*)::int AS n, max(event_offset)::int AS m FROM multi GROUP BY partition`);
  for (const g of gaps.rows) assert.equal(g.m, g.n - 1, `partition ${g.partition} has gaps`);
});

test('COPY into a topic numbers its rows like any publish', async () => {
  await sql.query("SELECT pgweave.create_topic('copied', partitions => 2)");
  await sql.query(`SELECT * FROM pgweave.publish('copied', '{"n":0}', 'a')`);
  const rows = Array.from({ length: 50 }, (_, i) => `${i % 2 ? 'a' : 'b'}\t{"n": ${i + 1}}`).join('\n') + '\n';
  await new Promise<void>((resolve, reject) => {
    const p = spawn(psqlPath(), ['-X', '-v', 'ON_ERROR_STOP=1', cluster.url, '-c', 'COPY copied (key, payload) FROM STDIN'], { env: psqlEnv(cluster.password), stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(err))));
    p.stdin!.end(rows);
  });
  const r = await sql.query(`SELECT partition, count(*)::int AS n, min(event_offset)::int AS lo, max(event_offset)::int AS hi FROM copied GROUP BY partition ORDER BY partition`);
  assert.equal(r.rows.reduce((n, row) => n + row.n, 0), 51);
  for (const row of r.rows) assert.deepEqual([row.lo, row.hi], [0, row.n - 1], `partition ${row.partition} is numbered 0..n-1`);
  // Offsets follow the input order within a key.
  const a = await sql.query(`SELECT (payload->>'n')::int AS n FROM copied WHERE key = 'a' ORDER BY event_offset`);
  assert.deepEqual(a.rows.map((x) => x.n), a.rows.map((x) => x.n).sort((x, y) => x - y));
});

interface Tracker {
  committed: Set<string>;
  rolledBack: Set<string>;
}

/** One producer: N transactions of 1-3 events with one key, a random pause while holding the offset, then COMMIT (or ROLLBACK). */
async function produce(id: number, txns: number, tracker: Tracker): Promise<void> {
  const c = await connect();
  try {
    for (let t = 0; t < txns; t++) {
      const key = `key-${id}-${Math.floor(Math.random() * 40)}`;
      const ids = Array.from({ length: 1 + Math.floor(Math.random() * 3) }, (_, i) => `p${id}-t${t}-e${i}`);
      await c.query('BEGIN');
      for (const eventId of ids) {
        if (Math.random() < 0.5) await c.query(`SELECT pgweave.publish('work', $1, $2)`, [JSON.stringify({ id: eventId }), key]);
        else await c.query(`INSERT INTO work (key, payload) VALUES ($1, $2)`, [key, JSON.stringify({ id: eventId })]);
      }
      await sleep(Math.random() * 30);
      if (Math.random() < 0.1) {
        await c.query('ROLLBACK');
        for (const e of ids) tracker.rolledBack.add(e);
      } else {
        await c.query('COMMIT');
        for (const e of ids) tracker.committed.add(e);
      }
    }
  } finally {
    await c.end();
  }
}

/** An in-process consumer that writes the tally and stops between batches when asked. */
function runConsumer(client: StreamsClient, group: string, mode: 'exactly-once' | 'at-least-once', consumerId: string, tally: string) {
  const consumer: Consumer<{ id: string }> = client.consumer({ topic: 'work', group, consumerId, mode, maxEvents: 10, waitMs: 300, leaseTimeoutMs: 2000 });
  let stopping = false;
  const failures: string[] = [];
  const done = (async () => {
    while (!stopping) {
      const batch = await consumer.poll();
      if (!batch) continue;
      try {
        for (const e of batch.events) {
          await batch.query(
            `INSERT INTO ${tally} (event_id, consumer, partition, event_offset, n, processed_at) VALUES ($1, $2, $3, $4, 1, clock_timestamp())
             ON CONFLICT (event_id) DO UPDATE SET n = ${tally}.n + 1`,
            [e.value.id, consumerId, e.partition, e.offset],
          );
        }
        await batch.commit();
      } catch (err) {
        // Fenced, or a transient failure: the batch is not committed and will be delivered again.
        if (!(err instanceof FencedError)) failures.push(String((err as Error).message));
      }
    }
    await consumer.close();
  })();
  return {
    async stop() {
      stopping = true;
      await done;
      return failures;
    },
    done,
  };
}

interface Child {
  proc: ChildProcess;
  batches: Array<Array<[number, number, string]>>;
  mid: Promise<void>;
}

function startChild(group: string, mode: string, consumerId: string, tally: string, pauseAt: number): Child {
  const proc = spawn(process.execPath, [CHILD, cluster.url, 'work', group, mode, consumerId, tally, String(pauseAt)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(proc);
  const child: Child = { proc, batches: [], mid: Promise.resolve() };
  child.mid = new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { batch?: Array<[number, number, string]>; mid?: boolean; error?: string };
      if (msg.batch) child.batches.push(msg.batch);
      if (msg.mid) resolve();
      if (msg.error) reject(new Error(`child ${consumerId}: ${msg.error}`));
    });
    proc.on('exit', () => reject(new Error(`child ${consumerId} exited before pausing`)));
  });
  child.mid.catch(() => {});
  return child;
}

/** Sum of a group's lag (a coordinator function's rows are returned as they are: aggregate here). */
async function totalLag(group: string): Promise<number> {
  const r = await sql.query(`SELECT * FROM pgweave.consumer_lag($1)`, [group]);
  return r.rows.reduce((sum, row) => sum + Number(row.lag), 0);
}

async function waitForLag0(group: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lag = await totalLag(group);
    if (lag === 0) return;
    if (Date.now() > deadline) assert.fail(`group ${group} still lags by ${lag}`);
    await sleep(200);
  }
}

test('consumer groups consume every event: exactly once with the offset in the transaction, at least once otherwise', { timeout: 120_000 }, async () => {
  await sql.query("SELECT pgweave.create_topic('work', partitions => 4)");
  for (const t of ['tally_eo', 'tally_alo']) {
    await sql.query(`CREATE TABLE ${t} (event_id text PRIMARY KEY, consumer text, partition int, event_offset bigint, n int NOT NULL, processed_at timestamptz)`);
    await sql.query(`SELECT create_distributed_table('${t}', 'event_id')`);
  }
  const client = await StreamsClient.connect(cluster.url);
  const tracker: Tracker = { committed: new Set(), rolledBack: new Set() };
  try {
    // Consumers before the producers start: one in-process and one child process per group.
    const eoA = runConsumer(client, 'eo', 'exactly-once', 'eo-a', 'tally_eo');
    const aloA = runConsumer(client, 'alo', 'at-least-once', 'alo-a', 'tally_alo');
    const eoChild = startChild('eo', 'exactly-once', 'eo-child', 'tally_eo', 3);
    const aloChild = startChild('alo', 'at-least-once', 'alo-child', 'tally_alo', 3);

    const producers = Promise.all([0, 1, 2].map((id) => produce(id, 40, tracker)));
    await sleep(800);
    const eoB = runConsumer(client, 'eo', 'exactly-once', 'eo-b', 'tally_eo'); // joins
    const aloB = runConsumer(client, 'alo', 'at-least-once', 'alo-b', 'tally_alo');
    // The children stop halfway through their third batch; kill them there.
    await Promise.all([eoChild.mid, aloChild.mid]);
    eoChild.proc.kill('SIGKILL');
    aloChild.proc.kill('SIGKILL');
    await sleep(300);
    await Promise.all([eoA.stop(), aloA.stop()]); // leave
    const eoC = runConsumer(client, 'eo', 'exactly-once', 'eo-c', 'tally_eo'); // joins late
    const aloC = runConsumer(client, 'alo', 'at-least-once', 'alo-c', 'tally_alo');
    await producers;
    await Promise.all([waitForLag0('eo', 40_000), waitForLag0('alo', 40_000)]);
    await Promise.all([eoB.stop(), aloB.stop(), eoC.stop(), aloC.stop()]);

    assert.ok(tracker.committed.size > 50, `${tracker.committed.size} events committed`);
    const events = await sql.query(`SELECT payload->>'id' AS id, partition, event_offset::int AS o FROM work`);
    const published = new Set(events.rows.map((r) => r.id as string));
    assert.deepEqual([...published].sort(), [...tracker.committed].sort(), 'the topic holds exactly the committed events');
    // Per partition the offsets are 0..n-1.
    const byPartition = new Map<number, number[]>();
    for (const r of events.rows) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r.o]);
    for (const [p, offsets] of byPartition) assert.deepEqual(offsets.sort((x, y) => x - y), offsets.map((_, i) => i), `partition ${p} is gap-free`);

    // Exactly once: every committed event tallied once, nothing else; each partition processed in offset order.
    const eo = await sql.query(`SELECT event_id, n, partition, event_offset::int AS o, consumer FROM tally_eo ORDER BY processed_at, event_offset`);
    assert.equal(eo.rows.filter((r) => r.n !== 1).length, 0, 'no event tallied twice in exactly-once mode');
    assert.deepEqual(eo.rows.map((r) => r.event_id).sort(), [...tracker.committed].sort());
    for (const p of byPartition.keys()) {
      const order = eo.rows.filter((r) => r.partition === p).map((r) => r.o);
      assert.deepEqual(order, [...order].sort((x, y) => x - y), `partition ${p} consumed in commit (offset) order`);
    }
    assert.ok(!eo.rows.some((r) => r.consumer === 'eo-child' && eoChild.batches.at(-1)!.some((b) => b[2] === r.event_id)), 'the killed batch left no trace');

    // At least once: none missing; duplicates only from the batch the killed consumer was in.
    const alo = await sql.query(`SELECT event_id, n FROM tally_alo`);
    assert.deepEqual(alo.rows.map((r) => r.event_id).sort(), [...tracker.committed].sort());
    const killedBatch = new Set(aloChild.batches.at(-1)!.map((b) => b[2]));
    const duplicates = alo.rows.filter((r) => r.n > 1).map((r) => r.event_id);
    for (const d of duplicates) assert.ok(killedBatch.has(d), `duplicate ${d} is from the killed batch`);
    assert.ok(duplicates.length > 0, 'the killed at-least-once batch was partly processed and is delivered again');
  } finally {
    client.close();
  }
});

test('an exactly-once batch whose distributed commit fails leaves neither its writes nor its offsets', { timeout: 60_000 }, async () => {
  await sql.query("SELECT pgweave.create_topic('atomic', partitions => 2)");
  await sql.query(`CREATE TABLE tally_atomic (event_id text PRIMARY KEY, n int NOT NULL)`);
  await sql.query(`SELECT create_distributed_table('tally_atomic', 'event_id')`);
  await sql.query(`SELECT * FROM pgweave.publish_batch('atomic', $1)`, [JSON.stringify(Array.from({ length: 8 }, (_, i) => ({ key: `k${i}`, payload: { id: `a${i}` } })))]);
  const client = await StreamsClient.connect(cluster.url);
  const consumer = client.consumer<{ id: string }>({ topic: 'atomic', group: 'atomic', mode: 'exactly-once', maxEvents: 100, waitMs: 200 });
  const tallyAll = async (batch: NonNullable<Awaited<ReturnType<typeof consumer.poll>>>) => {
    for (const e of batch.events) {
      await batch.query('INSERT INTO tally_atomic VALUES ($1, 1) ON CONFLICT (event_id) DO UPDATE SET n = tally_atomic.n + 1', [e.value.id]);
    }
  };
  try {
    const first = await consumer.poll();
    assert.ok(first && first.events.length === 8);
    await tallyAll(first);
    // The two-phase commit of the batch (workers + the coordinator's offsets) fails after the first PREPARE.
    let armed = true;
    faults.handler = (point) => {
      if (point === 'between-prepares' && armed) {
        armed = false;
        throw new Error('injected failure between two PREPAREs');
      }
    };
    await assert.rejects(first.commit());
    faults.handler = null;
    // Recovery rolls the prepared parts back; then the batch comes again, whole, and commits once.
    let again = await consumer.poll();
    for (let i = 0; i < 50 && (!again || again.events.length < 8); i++) again = await consumer.poll();
    assert.equal(again?.events.length, 8, 'the whole batch is delivered again');
    await tallyAll(again!);
    await again!.commit();
    const r = await sql.query(`SELECT count(*)::int AS events, sum(n)::int AS tallied FROM tally_atomic`);
    assert.deepEqual(r.rows[0], { events: 8, tallied: 8 });
    assert.equal(await totalLag('atomic'), 0);
  } finally {
    faults.handler = null;
    await consumer.close();
    client.close();
  }
});

test('a consumer whose lease was taken over cannot commit (fencing)', async () => {
  await sql.query("SELECT pgweave.create_topic('fence', partitions => 1)");
  await sql.query(`SELECT pgweave.publish('fence', '{"n":1}')`);
  const x = await sql.query(`SELECT * FROM pgweave.poll_events('fg', 'x', 'fence')`);
  assert.equal(x.rows.length, 1);
  // The group is replayed from the start: every lease gets a new epoch.
  await sql.query(`SELECT * FROM pgweave.seek_group('fg', 'fence', start => 'earliest')`);
  await assert.rejects(
    sql.query(`SELECT pgweave.commit_offset('fg', 'fence', 'x', 0, $1, 1)`, [x.rows[0].epoch]),
    (err: { code?: string }) => err.code === 'PW001',
  );
  // x leaves, y takes over and commits under the new epoch.
  await sql.query(`SELECT pgweave.leave_group('fg', 'fence', 'x')`);
  const y = await sql.query(`SELECT * FROM pgweave.poll_events('fg', 'y', 'fence')`);
  assert.equal(y.rows.length, 1);
  assert.notEqual(y.rows[0].epoch, x.rows[0].epoch);
  await sql.query(`SELECT pgweave.commit_offset('fg', 'fence', 'y', 0, $1, 1)`, [y.rows[0].epoch]);
  await assert.rejects(sql.query(`SELECT pgweave.commit_offset('fg', 'fence', 'x', 0, $1, 1)`, [x.rows[0].epoch]), /no longer holds/);
});

test('an event that keeps failing goes to the dead-letter topic after max_deliveries', async () => {
  await sql.query("SELECT pgweave.create_topic('jobs', partitions => 1)");
  await sql.query(`SELECT pgweave.create_consumer_group('workers', 'jobs', max_deliveries => 3)`);
  for (const n of [1, 2, 3]) await sql.query(`SELECT pgweave.publish('jobs', $1)`, [JSON.stringify({ n, poison: n === 2 })]);
  const delivered: Array<{ n: number; deliveries: number; head: boolean }> = [];
  for (let i = 0; i < 12; i++) {
    const r = await sql.query(`SELECT * FROM pgweave.poll_events('workers', 'w', 'jobs', max_events => 10)`);
    if (r.rows.length === 0) break;
    // Process in order; stop (without committing) at the poison event.
    let next: number | null = null;
    for (const row of r.rows) {
      delivered.push({ n: row.payload.n, deliveries: row.deliveries, head: row === r.rows[0] });
      if (row.payload.poison) break;
      next = Number(row.offset) + 1;
    }
    if (next !== null) await sql.query(`SELECT pgweave.commit_offset('workers', 'jobs', 'w', 0, $1, $2)`, [r.rows[0].epoch, next]);
  }
  const dlq = await sql.query(`SELECT payload, headers FROM jobs_dead_letter`);
  assert.equal(dlq.rows.length, 1);
  assert.equal(dlq.rows[0].payload.n, 2);
  assert.equal(dlq.rows[0].headers.dead_letter.group, 'workers');
  assert.equal(dlq.rows[0].headers.dead_letter.deliveries, 3);
  assert.deepEqual(
    delivered.filter((d) => d.n === 2 && d.head).map((d) => d.deliveries),
    [1, 2, 3],
    'the poison event headed max_deliveries failed deliveries (alone from the second on)',
  );
  assert.ok(delivered.some((d) => d.n === 3), 'events after it are delivered');
  assert.equal(await totalLag('workers'), 0);
});

test('replay from an offset or a timestamp, retention, lag and waking waiting consumers', async () => {
  await sql.query("SELECT pgweave.create_topic('replay', partitions => 2)");
  const first = await sql.query(`SELECT * FROM pgweave.publish_batch('replay', $1)`, [JSON.stringify([1, 2, 3].map((n) => ({ key: 'a', payload: { n } })))]);
  assert.deepEqual(first.rows.map((r) => [r.first_offset, r.count]), [['0', 3]]);
  await sleep(50);
  const mark = (await sql.query('SELECT now()::text AS t')).rows[0].t;
  await sql.query(`SELECT * FROM pgweave.publish_batch('replay', $1)`, [JSON.stringify([4, 5].map((n) => ({ key: 'a', payload: { n } })))]);
  const all = await sql.query(`SELECT * FROM pgweave.poll_events('r', 'c', 'replay')`);
  assert.deepEqual(all.rows.map((r) => r.payload.n), [1, 2, 3, 4, 5]);
  const p = all.rows[0].partition;
  await sql.query(`SELECT pgweave.commit_offset('r', 'replay', 'c', $1, $2, 5)`, [p, all.rows[0].epoch]);
  assert.equal(await totalLag('r'), 0);

  await sql.query(`SELECT * FROM pgweave.seek_group('r', 'replay', partition => $1, to_offset => 1)`, [p]);
  assert.deepEqual((await sql.query(`SELECT payload FROM pgweave.poll_events('r', 'c', 'replay')`)).rows.map((r) => r.payload.n), [2, 3, 4, 5]);
  await sql.query(`SELECT * FROM pgweave.seek_group('r', 'replay', to_timestamp => $1)`, [mark]);
  assert.deepEqual((await sql.query(`SELECT payload FROM pgweave.poll_events('r', 'c', 'replay')`)).rows.map((r) => r.payload.n), [4, 5]);
  assert.equal(await totalLag('r'), 2);

  // Retention deletes a prefix of each partition; consumers continue from what is left.
  await sql.query(`SELECT pgweave.alter_topic('replay', retention => '0 seconds')`);
  await sql.query(`SELECT * FROM pgweave.publish('replay', '{"n":6}', 'a')`);
  await sleep(20);
  const deleted = await sql.query(`SELECT pgweave.apply_retention('replay') AS n`);
  assert.equal(deleted.rows[0].n, '6');
  const offsets = await sql.query(`SELECT * FROM pgweave.topic_offsets('replay')`);
  const row = offsets.rows.find((r) => r.partition === p);
  assert.equal(row.end_offset, '6');
  await sql.query(`SELECT pgweave.alter_topic('replay', retention => NULL)`);

  // A waiting poll wakes up when an event is published (long before its wait_ms).
  const waiter = await connect();
  try {
    const started = Date.now();
    const waiting = waiter.query(`SELECT * FROM pgweave.poll_events('r', 'c', 'replay', wait_ms => 20000)`);
    await sleep(300);
    await sql.query(`SELECT * FROM pgweave.publish('replay', '{"n":7}', 'a')`);
    const woke = await waiting;
    assert.deepEqual(woke.rows.map((r) => r.payload.n), [7]);
    assert.ok(Date.now() - started < 10_000, 'woken by the publish, not by the timeout');
  } finally {
    await waiter.end();
  }
});

function cli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

test('pgweave streams lag and tail', async () => {
  const lag = await cli(['streams', 'lag', 'workers', '--url', cluster.url]);
  assert.match(lag, /jobs\s+0\s+/);
  assert.match(lag, /total lag 0/);
  const tail = await cli(['streams', 'tail', 'work', '--from-beginning', '--count', '2', '--json', '--url', cluster.url]);
  const lines = tail.trim().split('\n').map((l) => JSON.parse(l) as { payload: { n: number } });
  assert.equal(lines.length, 2);
});
