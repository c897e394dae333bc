/**
 * Shared Syncs on a pipelined channel (src/executor/pipelined-channel.ts):
 * reads of several sessions written in one event-loop turn go to the
 * worker behind one Sync.
 *
 * Most tests drive a channel directly against a real PostgreSQL, so which
 * requests share a window is decided by the test (every request sent in
 * one synchronous stretch lands in the same window), not by timing. Each
 * tenant writes to a client stream of its own whose bytes the test reads
 * back as messages.
 *
 * Shown: a run's members each get their own rows and a ReadyForQuery, and
 * share one transaction; an error in a run reaches only its own session,
 * and the members skipped behind it run again and answer; a session's
 * later request waits behind its unanswered member, so its replies stay in
 * order even when the member is re-sent; a connection that does not read
 * committed shares no Syncs; through the coordinator, concurrent prepared
 * reads form runs and answer correctly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type pg from 'pg';
import { serialize } from 'pg-protocol';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { connectBackend, type BackendConnection } from '../../src/pool/backend-connection.js';
import { channelStats, PipelinedChannel, type ChannelTenant } from '../../src/executor/pipelined-channel.js';
import { Completes, type Expectation } from '../../src/executor/backend-link.js';
import { readErrorFields } from '../../src/protocol/backend/error-response.js';
import { decodeDataRow } from '../../src/executor/link-query.js';
import { addWorkers, textClient } from './support.js';

let server: TestPostgres;
const connections: BackendConnection[] = [];

const READ = 'SELECT v, 100 / $2::int AS q, now()::text AS t FROM items WHERE k = $1';

before(async () => {
  server = await startTestPostgres();
  const admin = await connect();
  const ch = new PipelinedChannel(admin, 0, 600_000);
  const setup = new Client(ch);
  setup.query('CREATE TABLE items (k int PRIMARY KEY, v int NOT NULL); INSERT INTO items SELECT k, k * 10 FROM generate_series(1, 20) k');
  await setup.replies(1);
  ch.close();
});

after(async () => {
  for (const c of connections) c.socket.destroy();
  await server?.stop();
});

async function connect(params: Array<[string, string]> = []): Promise<BackendConnection> {
  const c = await connectBackend({ host: server.host, port: server.port, user: server.user, database: 'postgres', credentials: { password: server.password }, params, tls: null });
  connections.push(c);
  return c;
}

interface Message {
  type: string;
  /** The whole message, type byte first. */
  raw: Buffer;
}

/** One client session on a channel: its tenant and the messages its client stream received. */
class Client {
  readonly stream = new PassThrough();
  readonly tenant: ChannelTenant;
  readonly messages: Message[] = [];
  private pending = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  constructor(readonly channel: PipelinedChannel) {
    this.tenant = channel.tenant(this.stream);
    this.tenant.statusForClient = () => 0x49;
    this.stream.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5 && this.pending.length >= 1 + this.pending.readInt32BE(1)) {
        const end = 1 + this.pending.readInt32BE(1);
        this.messages.push({ type: String.fromCharCode(this.pending[0]!), raw: this.pending.subarray(0, end) });
        this.pending = this.pending.subarray(end);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** A simple Query, alone. */
  query(sql: string): void {
    this.tenant.sendRequest([serialize.query(sql)], [{ completes: Completes.Ready, forward: true }]);
  }

  /** Bind/Execute/Sync of READ (parsed on first use, as the session does), sharing its Sync when `coalesce`. */
  read(k: number, divisor: number, coalesce = true): void {
    const { name, parse, key } = this.channel.statement(READ, [], 1);
    const parts: Buffer[] = [];
    const expect: Expectation[] = [];
    if (parse) {
      parts.push(serialize.parse({ name, text: READ, types: [] }));
      expect.push({ completes: Completes.ParseComplete, forward: false, forwardError: true, done: (err) => this.channel.statementParsed(key, name, err === null) });
    }
    parts.push(Buffer.concat([serialize.bind({ statement: name, values: [String(k), String(divisor)] }), serialize.execute({}), serialize.sync()]));
    expect.push({ completes: Completes.BindComplete, forward: true }, { completes: Completes.Execute, forward: true }, { completes: Completes.Ready, forward: true });
    this.tenant.sendRequest(parts, expect, coalesce && !parse);
  }

  /** Waits until `n` ReadyForQuery messages have arrived in all. */
  async replies(n: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (this.messages.filter((m) => m.type === 'Z').length < n) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${n} replies; got ${this.messages.map((m) => m.type).join('')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** The answers, one per ReadyForQuery: the row's text values, or the error's SQLSTATE. */
  answers(): Array<{ row?: string[]; error?: string; status: string }> {
    const out: Array<{ row?: string[]; error?: string; status: string }> = [];
    let cur: { row?: string[]; error?: string } = {};
    for (const m of this.messages) {
      if (m.type === 'D') cur.row = decodeDataRow(m.raw).map((v) => v ?? 'NULL');
      else if (m.type === 'E') cur.error = readErrorFields(m.raw, 0, m.raw.length).code;
      else if (m.type === 'Z') {
        out.push({ ...cur, status: String.fromCharCode(m.raw[5]!) });
        cur = {};
      }
    }
    return out;
  }
}

/** A channel whose isolation probe is answered and whose READ statement is prepared (so reads may share Syncs). */
async function readyChannel(params: Array<[string, string]> = []): Promise<PipelinedChannel> {
  const ch = new PipelinedChannel(await connect(params), 0, 600_000);
  const c = new Client(ch);
  c.read(1, 1);
  await c.replies(1);
  assert.deepEqual(c.answers()[0]!.row?.slice(0, 2), ['10', '100']);
  return ch;
}

test('reads sent in one turn share a Sync and a transaction; each session gets its own row and ReadyForQuery', async () => {
  const ch = await readyChannel();
  assert.equal(ch.sharesSyncs, true, 'the connection reads committed');
  const before = { ...channelStats };
  const clients = [1, 2, 3, 4].map(() => new Client(ch));
  clients.forEach((c, i) => c.read(i + 1, 1));
  await Promise.all(clients.map((c) => c.replies(1)));
  assert.equal(channelStats.runs - before.runs, 1, 'one run');
  assert.equal(channelStats.coalesced - before.coalesced, 4, 'of four requests');
  const answers = clients.map((c) => c.answers());
  answers.forEach((a, i) => {
    assert.equal(a.length, 1);
    assert.deepEqual(a[0]!.row!.slice(0, 2), [String((i + 1) * 10), '100']);
    assert.equal(a[0]!.status, 'I');
  });
  assert.equal(new Set(answers.map((a) => a[0]!.row![2])).size, 1, 'the members share one transaction (one now())');
  // Every client got exactly BindComplete, DataRow, CommandComplete, ReadyForQuery.
  for (const c of clients) assert.deepEqual(c.messages.map((m) => m.type), ['2', 'D', 'C', 'Z']);
});

test('an error in a run reaches its own session only; the members skipped behind it run again and answer', async () => {
  const ch = await readyChannel();
  const before = { ...channelStats };
  const clients = [1, 2, 3, 4].map(() => new Client(ch));
  clients.forEach((c, i) => c.read(i + 1, i === 1 ? 0 : 1));
  await Promise.all(clients.map((c) => c.replies(1)));
  assert.equal(channelStats.coalesced - before.coalesced, 4);
  assert.equal(channelStats.resent - before.resent, 2, 'the two members behind the error went again');
  const answers = clients.map((c) => c.answers()[0]!);
  assert.deepEqual(answers[0]!.row!.slice(0, 2), ['10', '100']);
  assert.equal(answers[1]!.error, '22012', 'division by zero, for the session that divided');
  assert.equal(answers[1]!.row, undefined);
  assert.deepEqual(answers[2]!.row!.slice(0, 2), ['30', '100']);
  assert.deepEqual(answers[3]!.row!.slice(0, 2), ['40', '100']);
  for (const a of answers) assert.equal(a.status, 'I');
  // The channel goes on serving.
  const after = new Client(ch);
  after.read(5, 1);
  await after.replies(1);
  assert.deepEqual(after.answers()[0]!.row!.slice(0, 2), ['50', '100']);
});

test('a session’s later request waits behind its unanswered run member: replies stay in order when the member is re-sent', async () => {
  const ch = await readyChannel();
  const failing = new Client(ch);
  const a = new Client(ch);
  const other = new Client(ch);
  failing.read(1, 0);
  a.read(2, 1);
  other.read(3, 1);
  // After the window is written (its flush is the setImmediate queued first), a second request of `a`.
  await new Promise<void>((resolve) =>
    setImmediate(() => {
      a.read(4, 2);
      resolve();
    }),
  );
  await a.replies(2);
  await other.replies(1);
  await failing.replies(1);
  assert.equal(failing.answers()[0]!.error, '22012');
  const rows = a.answers().map((x) => x.row!.slice(0, 2));
  assert.deepEqual(rows, [['20', '100'], ['40', '50']], 'the first request answered first');
  assert.deepEqual(other.answers()[0]!.row!.slice(0, 2), ['30', '100']);
});

test('requests that may not share (a second request of the same session in the window, a write) keep their own Syncs', async () => {
  const ch = await readyChannel();
  const before = { ...channelStats };
  const x = new Client(ch);
  const y = new Client(ch);
  x.read(1, 1);
  x.read(2, 1);
  y.read(3, 1, false);
  await x.replies(2);
  await y.replies(1);
  assert.equal(channelStats.coalesced - before.coalesced, 0);
  assert.deepEqual(x.answers().map((r) => r.row![0]), ['10', '20']);
  assert.deepEqual(y.answers()[0]!.row!.slice(0, 2), ['30', '100']);
});

test('a connection that does not read committed shares no Syncs', async () => {
  const ch = await readyChannel([['options', '-c default_transaction_isolation=serializable']]);
  assert.equal(ch.sharesSyncs, false);
  const before = { ...channelStats };
  const clients = [1, 2, 3].map(() => new Client(ch));
  clients.forEach((c, i) => c.read(i + 1, 1));
  await Promise.all(clients.map((c) => c.replies(1)));
  assert.equal(channelStats.coalesced - before.coalesced, 0);
  clients.forEach((c, i) => assert.equal(c.answers()[0]!.row![0], String((i + 1) * 10)));
});

test('through the coordinator: concurrent prepared reads of many sessions form runs and each gets its own row', async () => {
  let cluster: TestCluster | null = null;
  const sessions: pg.Client[] = [];
  try {
    cluster = await startTestCluster({ workers: 1, coordinator: { pipelineChannels: 1, pipelineStallMs: 600_000 } });
    const admin = await textClient(cluster.url);
    sessions.push(admin);
    await addWorkers(admin, cluster);
    await admin.query('CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)');
    await admin.query(`SELECT create_distributed_table('accounts', 'id', shard_count => 4)`);
    await admin.query('INSERT INTO accounts SELECT i, i * 7 FROM generate_series(1, 100) i');
    for (let i = 0; i < 8; i++) sessions.push(await textClient(cluster.url));
    const readers = sessions.slice(1);
    const before = channelStats.coalesced;
    let rounds = 0;
    while (channelStats.coalesced === before && rounds < 300) {
      rounds++;
      await Promise.all(
        readers.map(async (c, i) => {
          const id = ((rounds * 8 + i) % 100) + 1;
          const r = await c.query({ name: 'balance', text: 'SELECT balance FROM accounts WHERE id = $1', values: [id] });
          assert.deepEqual(r.rows, [{ balance: String(id * 7) }]);
        }),
      );
    }
    assert.ok(channelStats.coalesced > before, `reads of concurrent sessions shared a Sync within ${rounds} rounds`);
  } finally {
    for (const c of sessions) await c.end().catch(() => {});
    await cluster?.stop();
  }
});
