/**
 * The coordinator under hostile and unlucky clients: byte streams that break
 * the protocol (before and after login, seeded so a failure can be replayed),
 * clients that vanish mid-query, a PostgreSQL backend killed mid-query, and a
 * crowd of 200 clients at once. After each round ordinary clients must still
 * be served, and nothing may be left behind on the coordinator PostgreSQL.
 *
 * Replay a fuzz failure with PGWEAVE_FUZZ_SEED=<seed printed in the output>.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { ScramClientExchange } from '../../src/protocol/scram.js';
import {
  RawConnection,
  errorFieldsOf,
  frontend,
  message,
  rawLogin,
  startupMessage,
  type Address,
  type BackendMessage,
} from './raw-protocol.js';
import { activeQueryPids, directClient, pollUntil, sqlstateOf, withPort } from './support.js';

const FUZZ_ROLE = 'fuzzer';
const FUZZ_PASSWORD = 'fuzz-pw';
/** The small coordinator's message limit: oversized messages are cheap to send. */
const SMALL_LIMIT = 1 << 20;

let cluster: TestCluster;
let small: Coordinator;
let smallAddr: Address;
let direct: pg.Client;

before(async () => {
  cluster = await startTestCluster({ workers: 0 });
  direct = await directClient(cluster.coordinatorPg, cluster.password);
  // fuzzed streams run as an unprivileged role with a statement timeout, so a
  // mutated message can neither call privileged functions nor run for long
  await direct.query(`CREATE ROLE ${FUZZ_ROLE} LOGIN PASSWORD '${FUZZ_PASSWORD}'`);
  await direct.query(`ALTER ROLE ${FUZZ_ROLE} SET statement_timeout = '3s'`);
  small = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 }, maxMessageSize: SMALL_LIMIT });
  smallAddr = small.address;
});

after(async () => {
  await small?.close();
  await direct?.end().catch(() => {});
  await cluster?.stop();
});

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  constructor(readonly next: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const baseSeed = Number(process.env.PGWEAVE_FUZZ_SEED ?? 0x5eed2024);

/** A header claiming `length` for `type`, no body. */
function header(type: string | number, length: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = typeof type === 'number' ? type : type.charCodeAt(0);
  h.writeInt32BE(length | 0, 1);
  return h;
}

/** Well-formed frontend message sequences the mutations start from. */
const VALID_SEQUENCES: Buffer[] = [
  frontend.query('SELECT 1'),
  frontend.query(`SELECT 'x' || repeat('y', 10) AS s, now()`),
  Buffer.concat([
    frontend.parse({ name: '', text: 'SELECT $1::int + 1', types: [] }),
    frontend.bind({ portal: '', statement: '', values: ['5'] }),
    frontend.describe({ type: 'P', name: '' }),
    frontend.execute({ portal: '', rows: 0 }),
    frontend.sync(),
  ]),
  Buffer.concat([
    frontend.parse({ name: 's1', text: 'SELECT g FROM generate_series(1, 3) g', types: [] }),
    frontend.describe({ type: 'S', name: 's1' }),
    frontend.bind({ portal: 'p1', statement: 's1', values: [] }),
    frontend.execute({ portal: 'p1', rows: 1 }),
    frontend.flush(),
    frontend.close({ type: 'S', name: 's1' }),
    frontend.sync(),
  ]),
  Buffer.concat([frontend.query('BEGIN'), frontend.query('SELECT 2'), frontend.query('ROLLBACK')]),
  Buffer.concat([frontend.copyData(Buffer.from('1\tx\n')), frontend.copyDone(), frontend.copyFail('no')]),
  frontend.query('COPY (SELECT g FROM generate_series(1, 20) g) TO STDOUT'),
  Buffer.concat([frontend.query('SELECT 1'), frontend.end()]),
];

/** Message types a client may send after login (FunctionCall left out: mutated OIDs could call anything). */
const KNOWN_TYPES = ['B', 'C', 'd', 'c', 'f', 'D', 'E', 'H', 'P', 'Q', 'S', 'X'];

/** One fuzzed post-login stream and what to do after sending it. */
interface FuzzCase {
  kind: string;
  chunks: Buffer[];
  finish: 'end' | 'wait' | 'destroy';
}

function postLoginCase(rng: Rng): FuzzCase {
  const finish = rng.pick(['end', 'wait', 'wait', 'destroy'] as const);
  const base = rng.pick(VALID_SEQUENCES);
  const kind = rng.pick(['random-bytes', 'random-type', 'bad-length', 'truncated', 'corrupted-body', 'cut', 'mutated', 'oversized', 'valid-then-garbage']);
  let bytes: Buffer;
  switch (kind) {
    case 'random-bytes':
      bytes = rng.bytes(rng.int(1, 400));
      break;
    case 'random-type': {
      const body = rng.bytes(rng.int(0, 64));
      bytes = Buffer.concat([header(rng.int(0, 255), 4 + body.length), body]);
      break;
    }
    case 'bad-length':
      bytes = header(rng.pick(KNOWN_TYPES), rng.pick([-1, -100, 0, 1, 2, 3, -0x80000000, 0x7fffffff, 0x40000000, SMALL_LIMIT + 1]));
      break;
    case 'truncated': {
      // a header promising more than is ever sent
      const len = rng.int(5, SMALL_LIMIT);
      bytes = Buffer.concat([header(rng.pick(KNOWN_TYPES), len), rng.bytes(rng.int(0, Math.min(len - 5, 200)))]);
      break;
    }
    case 'corrupted-body': {
      bytes = Buffer.from(base);
      // flip bytes inside bodies only: every header stays valid
      const bodyPositions: number[] = [];
      for (let pos = 0; pos < bytes.length; ) {
        const end = pos + 1 + bytes.readInt32BE(pos + 1);
        for (let i = pos + 5; i < end; i++) bodyPositions.push(i);
        pos = end;
      }
      for (let n = rng.int(1, 4); n > 0 && bodyPositions.length > 0; n--) bytes[rng.pick(bodyPositions)] = rng.int(0, 255);
      bytes = Buffer.concat([bytes, frontend.sync()]);
      break;
    }
    case 'cut':
      bytes = base.subarray(0, rng.int(1, base.length - 1));
      break;
    case 'mutated': {
      bytes = Buffer.from(base);
      for (let n = rng.int(1, 6); n > 0; n--) bytes[rng.int(0, bytes.length - 1)] = rng.int(0, 255);
      break;
    }
    case 'oversized': {
      // a real message over the limit, sent in pieces
      const body = Buffer.alloc(SMALL_LIMIT + rng.int(1, 4096), 0x61);
      bytes = Buffer.concat([header('Q', 4 + body.length), body]);
      break;
    }
    default: // valid-then-garbage
      bytes = Buffer.concat([base, rng.bytes(rng.int(1, 100))]);
  }
  // deliver in random pieces
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < bytes.length; ) {
    const size = rng.chance(0.5) ? bytes.length - pos : rng.int(1, Math.max(1, bytes.length - pos));
    chunks.push(bytes.subarray(pos, pos + size));
    pos += size;
  }
  return { kind, chunks, finish };
}

/** Sends a case on a fresh logged-in connection; returns the messages seen and whether they framed. */
async function runPostLoginCase(c: FuzzCase): Promise<{ seen: BackendMessage[]; malformed: boolean }> {
  const conn = await rawLogin(smallAddr, FUZZ_ROLE, FUZZ_PASSWORD);
  const seen: BackendMessage[] = [];
  try {
    for (const chunk of c.chunks) conn.write(chunk);
    if (c.finish === 'end') conn.socket.end();
    if (c.finish !== 'destroy') {
      // read until the server closes or goes quiet
      for (;;) {
        const m = await conn.next(300);
        if (!m) break;
        seen.push(m);
      }
    }
  } finally {
    conn.destroy();
  }
  return { seen, malformed: conn.malformed };
}

/** Sends bytes before any startup packet completes; returns what the server answered before closing. */
async function runPreStartupCase(addr: Address, chunks: Buffer[]): Promise<{ messages: BackendMessage[]; malformed: boolean }> {
  const conn = await RawConnection.connect(addr);
  const messages: BackendMessage[] = [];
  try {
    for (const c of chunks) conn.write(c);
    conn.socket.end();
    for (;;) {
      const m = await conn.next(1000);
      if (!m) break;
      messages.push(m);
    }
    return { messages, malformed: conn.malformed };
  } finally {
    conn.destroy();
  }
}

/** SQLSTATE of an ErrorResponse, or undefined for other messages. */
function sqlstateOfMessage(m: BackendMessage): string | undefined {
  return m.type === 'E' ? errorFieldsOf(m).code : undefined;
}

/** A normal client is still served, by both coordinators. */
async function assertServing(): Promise<void> {
  for (const url of [cluster.url, withPort(cluster.url, smallAddr.port)]) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query('SELECT 1 AS one');
      assert.equal(r.rows[0].one, 1);
    } finally {
      await c.end();
    }
  }
}

/** Runs `count` cases, `concurrency` at a time. */
async function inBatches<T>(count: number, concurrency: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i += concurrency) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, count - i) }, (_, j) => make(i + j)))));
  }
  return out;
}

/** Logs in and sends `bytes`; returns the first ErrorResponse and whether the server then closed. */
async function errorAfter(addr: Address, bytes: Buffer): Promise<{ code?: string; severity?: string; message?: string; closed: boolean }> {
  const conn = await rawLogin(addr, FUZZ_ROLE, FUZZ_PASSWORD);
  try {
    conn.write(bytes);
    const msgs = await conn.readUntil('E', 10_000);
    const err = msgs.find((m) => m.type === 'E');
    const fields = err ? errorFieldsOf(err) : undefined;
    return { code: fields?.code, severity: fields?.severity, message: fields?.message, closed: await conn.waitClosed(10_000) };
  } finally {
    conn.destroy();
  }
}

describe('broken protocol streams', () => {
  test('a bad message length after login gets FATAL 08P01 and the connection closes', async () => {
    for (const len of [-1, 0, 3, -0x80000000]) {
      const r = await errorAfter(smallAddr, header('Q', len));
      assert.equal(r.code, '08P01', `length ${len}`);
      assert.equal(r.severity, 'FATAL');
      assert.match(r.message!, /invalid message length/);
      assert.ok(r.closed);
    }
  });

  test('an unknown message type gets FATAL 08P01, also behind valid messages in the same packet', async () => {
    for (const type of ['z', '\0', 'p', 'A', '\xff']) {
      const r = await errorAfter(smallAddr, message(type, 'junk'));
      assert.equal(r.code, '08P01', `type ${JSON.stringify(type)}`);
      assert.match(r.message!, /invalid frontend message type/);
      assert.ok(r.closed);
    }
    const behind = await errorAfter(smallAddr, Buffer.concat([frontend.query('SELECT 1'), message('z', 'junk')]));
    assert.equal(behind.code, '08P01');
  });

  test('a message over maxMessageSize gets FATAL 08P01 as soon as its header arrives', async () => {
    const headerOnly = await errorAfter(smallAddr, header('Q', SMALL_LIMIT + 1));
    assert.equal(headerOnly.code, '08P01');
    assert.match(headerOnly.message!, new RegExp(`exceeds the limit of ${SMALL_LIMIT} bytes`));
    // a whole 2 MB query
    const sql = `SELECT length('${'x'.repeat(2 * SMALL_LIMIT)}')`;
    const whole = await errorAfter(smallAddr, frontend.query(sql));
    assert.equal(whole.code, '08P01');
  });

  test('a message just under maxMessageSize is served', async () => {
    const n = SMALL_LIMIT - 100;
    const c = new pg.Client({ connectionString: withPort(cluster.url, smallAddr.port) });
    await c.connect();
    try {
      const r = await c.query(`SELECT length('${'x'.repeat(n)}') AS n`);
      assert.equal(r.rows[0].n, n);
    } finally {
      await c.end();
    }
  });

  test('a violation while PostgreSQL streams a result still reaches the client as a whole ErrorResponse', async () => {
    const conn = await rawLogin(smallAddr, FUZZ_ROLE, FUZZ_PASSWORD);
    try {
      conn.write(frontend.query(`COPY (SELECT repeat('x', 1000) FROM generate_series(1, 100000)) TO STDOUT`));
      // once the stream is flowing, break the protocol
      for (;;) {
        const m = await conn.next();
        if (!m || m.type === 'd') break;
      }
      conn.write(message('z', 'junk'));
      let last: BackendMessage | null = null;
      for (;;) {
        const m = await conn.next(5000);
        if (!m) break;
        last = m;
      }
      assert.equal(last?.type, 'E', 'the stream ends with the ErrorResponse, not inside a CopyData');
      assert.equal(errorFieldsOf(last!).code, '08P01');
      assert.equal(conn.takeUnframedBytes().length, 0, 'no partial message left over');
    } finally {
      conn.destroy();
    }
  });

  test('the main coordinator (1 GB limit) refuses a 0x7fffffff length', async () => {
    const r = await errorAfter(cluster.config.listen, header('d', 0x7fffffff));
    assert.equal(r.code, '08P01');
  });

  test('a startup packet asking for protocol 3.2 with _pq_ options gets NegotiateProtocolVersion, then login works', async () => {
    const conn = await RawConnection.connect(smallAddr);
    try {
      const startup = startupMessage({ user: FUZZ_ROLE, database: 'postgres', '_pq_.something': 'on' });
      startup.writeInt32BE((3 << 16) | 2, 4);
      conn.write(startup);
      const first = await conn.next();
      assert.equal(first?.type, 'v');
      assert.equal(first!.body.readInt32BE(0), (3 << 16) | 0, 'newest version supported: 3.0, as PostgreSQL writes it');
      assert.equal(first!.body.readInt32BE(4), 1);
      assert.equal(first!.body.toString('utf8', 8, first!.body.length - 1), '_pq_.something');
      const auth = await conn.next();
      assert.equal(auth?.type, 'R');
      assert.equal(auth!.body.readInt32BE(0), 10, 'SASL');
    } finally {
      conn.destroy();
    }
  });

  test('garbage before startup, or instead of the SASL response, ends only that connection', async (t) => {
    const rng = new Rng(prng(baseSeed));
    t.diagnostic(`seed ${baseSeed}`);
    const startup = startupMessage({ user: FUZZ_ROLE, database: 'postgres' });
    const scram = new ScramClientExchange({ password: FUZZ_PASSWORD });
    const saslInitial = frontend.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst());
    let refusals = 0;
    await inBatches(150, 15, async (i) => {
      let bytes: Buffer;
      switch (i % 5) {
        case 0: // random bytes
          bytes = rng.bytes(rng.int(1, 300));
          break;
        case 1: { // a plausible length, random rest
          bytes = rng.bytes(rng.int(8, 64));
          bytes.writeInt32BE(rng.pick([bytes.length, 8, 16, 7, 0, -1, 10001, 0x7fffffff]), 0);
          break;
        }
        case 2: { // a startup packet with random mutations
          bytes = Buffer.from(startup);
          for (let n = rng.int(1, 4); n > 0; n--) bytes[rng.int(0, bytes.length - 1)] = rng.int(0, 255);
          break;
        }
        case 3: // startup, then garbage where the SASL response belongs
          bytes = Buffer.concat([startup, rng.bytes(rng.int(1, 200))]);
          break;
        default: { // startup, then a mutated SASLInitialResponse
          const sasl = Buffer.from(saslInitial);
          for (let n = rng.int(1, 3); n > 0; n--) sasl[rng.int(0, sasl.length - 1)] = rng.int(0, 255);
          bytes = Buffer.concat([startup, sasl]);
        }
      }
      const cut = rng.int(0, bytes.length);
      const answer = await runPreStartupCase(smallAddr, [bytes.subarray(0, cut), bytes.subarray(cut)]);
      if (answer.messages.some((m) => sqlstateOfMessage(m) === '08P01')) refusals++;
    });
    assert.ok(refusals > 0, 'some streams were refused with 08P01');
    await assertServing();
  });

  test('seeded random and mutated streams after login never take the coordinator down', async (t) => {
    const rng = new Rng(prng(baseSeed + 1));
    t.diagnostic(`seed ${baseSeed + 1}`);
    const kinds = new Map<string, number>();
    let protocolErrors = 0;
    const malformed: string[] = [];
    const rounds = 6;
    for (let round = 0; round < rounds; round++) {
      const results = await inBatches(50, 10, async () => {
        const c = postLoginCase(rng);
        kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
        return { kind: c.kind, ...(await runPostLoginCase(c)) };
      });
      for (const { kind, seen, malformed: broken } of results) {
        if (broken) malformed.push(kind);
        for (const m of seen) if (sqlstateOfMessage(m) === '08P01') protocolErrors++;
      }
      await assertServing();
    }
    t.diagnostic(`cases by kind: ${JSON.stringify(Object.fromEntries(kinds))}; 08P01 errors seen: ${protocolErrors}`);
    assert.ok(protocolErrors > 0);
    assert.deepEqual(malformed, [], 'every reply the clients got frames as whole messages');
    // every fuzzed session ends, and its PostgreSQL backend with it
    assert.ok(await pollUntil(async () => small.sessionCount === 0), `sessions left open: ${small.sessionCount}`);
    // A backend ends a moment after its session on a loaded machine: wait up to 30 s, and name what is left.
    const backendsLeft = async () =>
      (await direct.query(`SELECT pid, state, backend_start::text, left(query, 80) AS query FROM pg_stat_activity WHERE usename = $1`, [FUZZ_ROLE])).rows;
    const leftover = await pollUntil(async () => (await backendsLeft()).length === 0, 300);
    assert.ok(leftover, `no backend of the fuzzing role is left on the coordinator PostgreSQL: ${JSON.stringify(await backendsLeft())}`);
  });
});

describe('clients and backends going away', () => {
  test('a client vanishing mid-query has its query cancelled and its backend closed', async () => {
    const conn = await rawLogin(cluster.config.listen, 'postgres', cluster.password);
    conn.write(frontend.query('SELECT pg_sleep(60) /* vanishing-client */'));
    assert.ok(await pollUntil(async () => (await activeQueryPids(direct, 'vanishing-client')).length > 0), 'the query reached PostgreSQL');
    conn.destroy();
    const gone = await pollUntil(async () => {
      const r = await direct.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%vanishing' || '-client%' AND pid <> pg_backend_pid()`);
      return r.rows[0].n === 0;
    }, 100, 100);
    assert.ok(gone, 'the backend is gone within seconds, long before pg_sleep(60) would end');
  });

  test('a client vanishing inside a transaction releases its locks', async () => {
    await direct.query('CREATE TABLE IF NOT EXISTS locked_by_vanisher (id int)');
    const conn = await rawLogin(cluster.config.listen, 'postgres', cluster.password);
    conn.write(frontend.query('BEGIN; LOCK TABLE locked_by_vanisher IN ACCESS EXCLUSIVE MODE'));
    const reply = await conn.readUntil('Z');
    assert.equal(reply.at(-1)?.body.toString(), 'T', 'in a transaction');
    conn.destroy();
    const released = await pollUntil(async () => {
      const r = await direct.query(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'locked_by_vanisher'`);
      return r.rows[0].n === 0;
    });
    assert.ok(released);
  });

  test('a backend terminated mid-query fails only its own client (57P01 or class 08)', async () => {
    const victim = new pg.Client({ connectionString: cluster.url });
    const bystander = new pg.Client({ connectionString: cluster.url });
    victim.on('error', () => {});
    await victim.connect();
    await bystander.connect();
    try {
      const running = victim.query('SELECT pg_sleep(60) /* doomed-query */').then(() => null, (err: unknown) => err);
      const pids = await pollUntil(async () => {
        const p = await activeQueryPids(direct, 'doomed-query');
        return p.length > 0 ? p : null;
      });
      assert.ok(pids);
      await direct.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid', [pids]);
      const err = await running;
      const code = sqlstateOf(err) ?? '';
      assert.ok(code === '57P01' || code.startsWith('08'), `got ${code}: ${(err as Error)?.message}`);
      const r = await bystander.query('SELECT 2 AS two');
      assert.equal(r.rows[0].two, 2);
      await assertServing();
    } finally {
      await victim.end().catch(() => {});
      await bystander.end();
    }
  });

  test('a backend terminated while its client is idle: the client learns on its next query', async () => {
    const c = new pg.Client({ connectionString: cluster.url, application_name: 'idle-victim' });
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    try {
      await direct.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'idle-victim'`);
      // PostgreSQL's FATAL reaches the idle client, then the coordinator closes the connection
      assert.ok(await pollUntil(async () => errors.length > 0), 'the client is told');
      const code = sqlstateOf(errors[0]) ?? '';
      assert.ok(code === '57P01' || code.startsWith('08'), `got ${code}`);
      const next = await c.query('SELECT 1').then(() => null, (e: unknown) => e);
      assert.ok(next instanceof Error, 'the dead session does not answer');
    } finally {
      await c.end().catch(() => {});
    }
    await assertServing();
  });
});

describe('many clients', () => {
  test('200 concurrent clients are served, then every session and backend is gone', async () => {
    const clients = Array.from({ length: 200 }, () => new pg.Client({ connectionString: cluster.url, application_name: 'crowd' }));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      const results = await Promise.all(clients.map((c, i) => c.query('SELECT $1::int AS i, pg_backend_pid() AS pid', [i])));
      assert.deepEqual(results.map((r) => r.rows[0].i), clients.map((_, i) => i));
      assert.equal(new Set(results.map((r) => r.rows[0].pid)).size, 200, 'each client has its own backend');
      assert.ok(cluster.coordinator.sessionCount >= 200);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
    }
    assert.ok(await pollUntil(async () => cluster.coordinator.sessionCount === 0), `sessions left: ${cluster.coordinator.sessionCount}`);
    const noneLeft = await pollUntil(async () => {
      const r = await direct.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'crowd'`);
      return r.rows[0].n === 0;
    });
    assert.ok(noneLeft, 'no client backend is left on the coordinator PostgreSQL');
  });

  test('connections that open and close without a word leave nothing behind', async () => {
    await inBatches(100, 20, () => new Promise<void>((resolve) => {
      const s = net.connect(cluster.config.listen.port, cluster.config.listen.host, () => s.destroy());
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    }));
    await assertServing();
    assert.ok(await pollUntil(async () => cluster.coordinator.sessionCount === 0));
  });
});
