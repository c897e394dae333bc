/**
 * Transaction-time functions (now(), CURRENT_TIMESTAMP, transaction_timestamp(),
 * LOCALTIMESTAMP, CURRENT_DATE…) in INSERTs into distributed tables: as on one
 * PostgreSQL, their value is the transaction's start time — the same in every
 * row, every shard and every statement of a block, VALUES, RETURNING and
 * ON CONFLICT alike, and equal to the coordinator's own now() in the block —
 * over the simple protocol, unnamed and named prepared statements (the
 * timestamp then travels as an extra parameter of the worker's prepared
 * statement, which must not keep one block's value for the next). Also: the
 * time fetched along with BEGIN never moves a REPEATABLE READ snapshot, and a
 * block whose coordinator ran nothing but BEGIN commits one worker's write
 * with one phase, while any coordinator write in it still means two.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { encodeBindAppending } from '../../src/session/extended-encoders.js';
import { encodeMessage } from '../../src/protocol/writer.js';
import { addWorkers, nodeOfKeys, textClient, withTextClient } from './support.js';
import { faults } from '../../src/transaction/fault-injection.js';

let cluster: TestCluster;
let c: pg.Client;
/** Two keys whose shard groups are on different workers. */
let a: number;
let b: number;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query(`
    CREATE TABLE ev (id int NOT NULL, seq int NOT NULL, at timestamptz, local_at timestamp, day date, at0 timestamptz,
                     PRIMARY KEY (id, seq));
    CREATE TABLE ev2 (id int NOT NULL, at timestamptz NOT NULL, stamped timestamptz);`);
  await c.query(`SELECT create_distributed_table('ev', 'id', shard_count => 4)`);
  await c.query(`SELECT create_distributed_table('ev2', 'id', colocate_with => 'ev')`);
  const nodes = await nodeOfKeys(c, 'ev', [1, 2, 3, 4, 5, 6, 7, 8]);
  a = 1;
  b = [2, 3, 4, 5, 6, 7, 8].find((x) => nodes.get(x) !== nodes.get(1))!;
  assert.ok(b, 'some key lives on the other worker');
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

/** A client of its own, so a test that leaves a transaction open harms no other. */
const withClient = <T>(fn: (s: pg.Client) => Promise<T>): Promise<T> => withTextClient(cluster.url, fn);

async function one(s: pg.Client, q: string | pg.QueryConfig): Promise<Record<string, string | null>> {
  const r = await s.query(q as pg.QueryConfig);
  return r.rows[0] as Record<string, string | null>;
}

test('now() and its siblings in a block equal the coordinator\'s now(), across both workers and all statements', async () => {
  await withClient(async (s) => {
    await s.query('DELETE FROM ev; DELETE FROM ev2');
    await s.query('BEGIN');
    const coordinatorNow = (await one(s, 'SELECT now()::text AS t')).t;
    // Time passes inside the block: a worker joining later must still see the block's start time.
    await s.query('SELECT pg_sleep(0.05)');
    await s.query(`INSERT INTO ev (id, seq, at, local_at, day) VALUES (${a}, 1, now(), LOCALTIMESTAMP, CURRENT_DATE)`);
    await s.query({ text: 'INSERT INTO ev (id, seq, at, at0) VALUES ($1, 2, CURRENT_TIMESTAMP, current_timestamp(0))', values: [b] });
    await s.query({ name: 'ev_named', text: 'INSERT INTO ev (id, seq, at) VALUES ($1, $2, transaction_timestamp())', values: [a, 3] });
    await s.query({ name: 'ev_named', text: 'INSERT INTO ev (id, seq, at) VALUES ($1, $2, transaction_timestamp())', values: [b, 4] });
    await s.query('SELECT pg_sleep(0.05)');
    // RETURNING and ON CONFLICT see the block's time too (the worker's own now() would be later).
    const returned = await one(s, { text: 'INSERT INTO ev2 (id, at) VALUES ($1, now()) RETURNING at::text, now()::text AS n', values: [b] });
    assert.equal(returned.at, coordinatorNow);
    assert.equal(returned.n, coordinatorNow, 'RETURNING now()');
    await s.query(`INSERT INTO ev (id, seq) VALUES (${a}, 1) ON CONFLICT (id, seq) DO UPDATE SET at0 = now()`);
    const literal = await one(s, `INSERT INTO ev2 (id, at) VALUES (${a}, '2001-02-03 04:05:06+00') RETURNING now()::text AS n`);
    assert.equal(literal.n, coordinatorNow, 'RETURNING now() of an INSERT of constants');
    const check = await one(s, `
      SELECT now()::text AS n, localtimestamp::text AS l, current_date::text AS d, current_timestamp(0)::text AS z`);
    assert.equal(check.n, coordinatorNow, 'the coordinator\'s now() stays the block\'s');
    const rows = (await s.query('SELECT id, seq, at::text, local_at::text, day::text, at0::text FROM ev ORDER BY seq')).rows;
    assert.equal(rows.length, 4);
    for (const r of rows) assert.equal(r.at, coordinatorNow, `row ${r.seq} (id ${r.id})`);
    assert.equal(rows[0].local_at, check.l);
    assert.equal(rows[0].day, check.d);
    assert.equal(rows[0].at0, coordinatorNow, 'ON CONFLICT DO UPDATE SET at0 = now()');
    assert.equal(rows[1].at0, check.z, 'current_timestamp(0)');
    await s.query('COMMIT');
  });
});

test('each block gets its own transaction time, also through one prepared statement', async () => {
  await withClient(async (s) => {
    await s.query('DELETE FROM ev2');
    const seen: string[] = [];
    for (let block = 0; block < 3; block++) {
      await s.query('BEGIN');
      const n = (await one(s, 'SELECT now()::text AS t')).t!;
      seen.push(n);
      for (const id of [a, b]) {
        await s.query({ name: 'ev2_stamp', text: 'INSERT INTO ev2 (id, at, stamped) VALUES ($1, now(), $2)', values: [id, n] });
      }
      await s.query('COMMIT');
      await s.query('SELECT pg_sleep(0.01)');
    }
    assert.equal(new Set(seen).size, 3, 'three different block times');
    const mismatched = await s.query('SELECT id, at::text, stamped::text FROM ev2 WHERE at <> stamped');
    assert.deepEqual(mismatched.rows, []);
    assert.equal((await s.query('SELECT 1 FROM ev2')).rowCount, 6);
  });
});

test('outside a block one statement\'s rows share one time, and the session\'s time zone applies as on the coordinator', async () => {
  await withClient(async (s) => {
    await s.query('DELETE FROM ev');
    await s.query(`INSERT INTO ev (id, seq, at) VALUES (${a}, 1, now()), (${b}, 2, now())`);
    const times = (await s.query('SELECT DISTINCT at FROM ev')).rows;
    assert.equal(times.length, 1, 'rows on both workers share one now()');
    // Autocommit statements each get their own now().
    await s.query({ text: 'INSERT INTO ev (id, seq, at) VALUES ($1, 3, now())', values: [a] });
    assert.equal((await s.query('SELECT DISTINCT at FROM ev')).rows.length, 2);

    await s.query("SET TIME ZONE 'Asia/Kathmandu'");
    await s.query('BEGIN');
    const check = await one(s, 'SELECT localtimestamp::text AS l, current_date::text AS d, localtime(2)::text AS t2');
    await s.query({ text: 'INSERT INTO ev (id, seq, local_at, day) VALUES ($1, 4, CURRENT_TIMESTAMP, CURRENT_DATE)', values: [b] });
    await s.query(`INSERT INTO ev (id, seq, local_at, day) VALUES (${a}, 5, localtimestamp, now())`);
    const rows = (await s.query('SELECT local_at::text, day::text FROM ev WHERE seq IN (4, 5) ORDER BY seq')).rows;
    assert.deepEqual(rows, [{ local_at: check.l, day: check.d }, { local_at: check.l, day: check.d }]);
    const t2 = await one(s, { text: 'INSERT INTO ev2 (id, at) VALUES ($1, now()) RETURNING localtime(2)::text AS t2', values: [b] });
    assert.equal(t2.t2, check.t2);
    await s.query('COMMIT');
  });
});

test('statement_timestamp() and clock_timestamp() keep their own meaning', async () => {
  await withClient(async (s) => {
    await s.query('DELETE FROM ev');
    await s.query('BEGIN');
    await s.query('SELECT pg_sleep(0.02)');
    await s.query(`INSERT INTO ev (id, seq, at, at0) VALUES (${a}, 1, statement_timestamp(), now())`);
    const r = await one(s, 'SELECT (at > at0)::text AS later FROM ev');
    assert.equal(r.later, 'true', 'statement_timestamp() is the statement\'s, later than the block\'s start');
    await s.query('COMMIT');
  });
});

test('the timestamp parameter is appended to the client\'s Bind whatever its format codes', () => {
  const bind = (formats: number[], values: Buffer[]): Buffer => encodeMessage((w) => {
    w.begin(0x42).cstring('p').cstring('s').int16(formats.length);
    for (const f of formats) w.int16(f);
    w.int16(values.length);
    for (const v of values) w.int32(v.length).bytes(v);
    w.int16(1).int16(1).end();
  });
  const time = '2026-11-22 07:00:00.123456+00';
  const int4 = Buffer.from([0, 0, 0, 7]);
  const cases: Array<[number[], number[]]> = [
    [[], []], // all text: no codes needed
    [[0], [0]], // one text code covers the extra value
    [[1], [1, 0]], // one binary code: spelled out per parameter
    [[1, 0], [1, 0, 0]],
  ];
  for (const [formats, expected] of cases) {
    const values = formats.length === 2 ? [int4, Buffer.from('x')] : [int4];
    const out = encodeBindAppending('', 'pgw1_2', bind(formats, values), 0, bind(formats, values).length, [time]);
    assert.equal(out.toString('latin1', 5, 12), '\0pgw1_2\0'.slice(0, 7));
    let pos = 5 + 1 + 7;
    const n = out.readInt16BE(pos);
    const codes = Array.from({ length: n }, (_, i) => out.readInt16BE(pos + 2 + 2 * i));
    assert.deepEqual(codes, expected, `formats ${JSON.stringify(formats)}`);
    pos += 2 + 2 * n;
    assert.equal(out.readInt16BE(pos), values.length + 1);
    pos += 2;
    for (const v of values) {
      assert.deepEqual(out.subarray(pos + 4, pos + 4 + out.readInt32BE(pos)), v);
      pos += 4 + v.length;
    }
    assert.equal(out.toString('utf8', pos + 4, pos + 4 + out.readInt32BE(pos)), time);
    pos += 4 + Buffer.byteLength(time);
    assert.deepEqual([out.readInt16BE(pos), out.readInt16BE(pos + 2)], [1, 1], 'result formats kept');
    assert.equal(out.readInt32BE(1), out.length - 1, 'message length');
  }
});

test('a BEGIN that fetches the block time along still takes a REPEATABLE READ snapshot at the first statement', async () => {
  await c.query('CREATE TABLE IF NOT EXISTS loc (id int)');
  await c.query('DELETE FROM loc');
  await withClient(async (s) => {
    // A READ COMMITTED block that uses now() in an INSERT: the next BEGIN fetches the time along.
    for (let i = 0; i < 2; i++) {
      await s.query('BEGIN');
      await s.query({ text: 'INSERT INTO ev2 (id, at) VALUES ($1, now())', values: [a] });
      await s.query('COMMIT');
    }
    await s.query("SET default_transaction_isolation = 'repeatable read'");
    await s.query('BEGIN');
    // Committed after BEGIN, before the block's first statement: a REPEATABLE READ block sees it.
    await c.query('INSERT INTO loc VALUES (1)');
    assert.equal((await one(s, 'SELECT count(*)::text AS n FROM loc')).n, '1');
    assert.equal((await one(s, 'SELECT current_setting(\'transaction_isolation\') AS i')).i, 'repeatable read');
    const n = (await one(s, 'SELECT now()::text AS t')).t;
    const r = await one(s, { text: 'INSERT INTO ev2 (id, at) VALUES ($1, now()) RETURNING at::text', values: [b] });
    assert.equal(r.at, n);
    await s.query('COMMIT');
    await s.query('RESET default_transaction_isolation');
    // And READ COMMITTED again: the time fetched along is the block's.
    for (let i = 0; i < 3; i++) {
      await s.query('BEGIN');
      await s.query('SELECT pg_sleep(0.01)');
      const t = (await one(s, 'SELECT now()::text AS t')).t;
      const x = await one(s, { text: 'INSERT INTO ev2 (id, at) VALUES ($1, now()) RETURNING at::text', values: [b] });
      assert.equal(x.at, t, `block ${i}`);
      await s.query('COMMIT');
    }
  });
});

test('EXPLAIN of an INSERT with now() shows the router plan it runs as', async () => {
  for (const sql of [
    `INSERT INTO ev2 (id, at) VALUES (${a}, now())`,
    `INSERT INTO ev (id, seq) VALUES (${a}, 1) ON CONFLICT (id, seq) DO UPDATE SET at0 = now() RETURNING now()`,
  ]) {
    const lines = (await c.query({ text: `EXPLAIN (COSTS OFF) ${sql}`, rowMode: 'array' })).rows.map((r) => String((r as unknown[])[0]));
    assert.match(lines.join('\n'), /Task Count: 1/, sql);
    assert.match(lines.join('\n'), /Insert on ev2?_\d+/, sql);
  }
});

test('a block whose coordinator ran only BEGIN commits one worker\'s write with one phase; a coordinator write in it makes two', async () => {
  await c.query('CREATE TABLE IF NOT EXISTS loc (id int)');
  const points: string[] = [];
  faults.handler = (p) => {
    points.push(p);
  };
  try {
    await withClient(async (s) => {
      for (let i = 0; i < 2; i++) {
        await s.query('BEGIN');
        await s.query({ text: 'INSERT INTO ev2 (id, at) VALUES ($1, now())', values: [a] });
        await s.query('COMMIT');
      }
      assert.equal(points.join(', '), '', 'one-phase commit');
      // Coordinator-local writes over the extended protocol (Parse/Bind/Execute forwarded) and the simple one.
      for (const local of [{ text: 'INSERT INTO loc VALUES ($1)', values: [7] }, { text: 'INSERT INTO loc VALUES (8)' }]) {
        points.length = 0;
        await s.query('BEGIN');
        await s.query({ text: 'INSERT INTO ev2 (id, at) VALUES ($1, now())', values: [a] });
        await s.query(local);
        await s.query('COMMIT');
        assert.ok(points.includes('before-prepare'), `two-phase commit with the coordinator (${points.join(', ')})`);
      }
      assert.equal((await one(s, 'SELECT count(*)::text AS n FROM loc WHERE id IN (7, 8)')).n, '2');
    });
  } finally {
    faults.handler = null;
  }
});
