/**
 * What a transaction block costs on the coordinator's sockets (pgbench -N
 * over the extended protocol: BEGIN; UPDATE; SELECT; INSERT; END). BEGIN and
 * END are portals the session answers itself: their BindComplete, NoData,
 * CommandComplete and ReadyForQuery leave in one client write although a
 * coordinator round trip lies between Bind and Execute, and the Sync of such
 * a cycle is answered by the session, not sent to the coordinator
 * PostgreSQL (one coordinator write for BEGIN, one for COMMIT). Replies keep
 * their order and content whatever is batched, a lone Sync reports the
 * block's status, and errors still skip to Sync.
 *
 * Writes are counted on the coordinator's own sockets (the accepted client
 * socket and the session's coordinator connection, found by port) by
 * wrapping net.Socket's write path in this test process, where the
 * coordinator runs: the count is what the coordinator asks of the kernel,
 * independent of how loopback TCP merges segments on the way.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { frontend, rawLogin, type BackendMessage, type RawConnection } from '../server/raw-protocol.js';
import { addWorkers, textClient } from './support.js';

let cluster: TestCluster;
let c: pg.Client;

/** Socket writes by the coordinator, keyed by the socket's remote port (client sockets) or local port (backend sockets). */
const writesByRemote = new Map<number, number>();
const writesByLocal = new Map<number, number>();
type WriteGeneric = (this: net.Socket, writev: boolean, data: unknown, encoding: string, cb: () => void) => unknown;
const proto = net.Socket.prototype as unknown as { _writeGeneric: WriteGeneric };
const original = proto._writeGeneric;
/** CommandCompletes the coordinator received, by the receiving socket's local port (statements a backend ran). */
const completesByLocal = new Map<number, number>();
const pendingBytes = new WeakMap<net.Socket, Buffer>();
const originalEmit = net.Socket.prototype.emit;
function countCompletes(socket: net.Socket, chunk: Buffer): void {
  let buf = Buffer.concat([pendingBytes.get(socket) ?? Buffer.alloc(0), chunk]);
  let pos = 0;
  while (buf.length - pos >= 5 && buf.length - pos >= 1 + buf.readInt32BE(pos + 1)) {
    if (buf[pos] === 0x43 && socket.localPort !== undefined) completesByLocal.set(socket.localPort, (completesByLocal.get(socket.localPort) ?? 0) + 1);
    pos += 1 + buf.readInt32BE(pos + 1);
  }
  buf = buf.subarray(pos);
  pendingBytes.set(socket, buf);
}

before(async () => {
  net.Socket.prototype.emit = function (this: net.Socket, event: string | symbol, ...args: unknown[]) {
    if (event === 'data' && Buffer.isBuffer(args[0]) && this.remotePort === cluster?.coordinatorPg.port) countCompletes(this, args[0]);
    return (originalEmit as (this: net.Socket, ...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof net.Socket.prototype.emit;
  proto._writeGeneric = function (this: net.Socket, writev, data, encoding, cb) {
    if (this.remotePort !== undefined) writesByRemote.set(this.remotePort, (writesByRemote.get(this.remotePort) ?? 0) + 1);
    if (this.localPort !== undefined) writesByLocal.set(this.localPort, (writesByLocal.get(this.localPort) ?? 0) + 1);
    return original.call(this, writev, data, encoding, cb);
  };
  // TCP: the test tells the coordinator's connections apart by port.
  cluster = await startTestCluster({ workers: 2, tcpOnly: true });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query('CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)');
  await c.query(`SELECT create_distributed_table('acct', 'id', shard_count => 4)`);
  await c.query('INSERT INTO acct SELECT g, 0 FROM generate_series(1, 20) g');
  await c.query('CREATE TABLE hist (id int NOT NULL, at timestamptz NOT NULL)');
  await c.query(`SELECT create_distributed_table('hist', 'id', colocate_with => 'acct')`);
});

after(async () => {
  proto._writeGeneric = original;
  net.Socket.prototype.emit = originalEmit;
  await c?.end().catch(() => {});
  await cluster?.stop();
});

interface Probe {
  conn: RawConnection;
  /** Coordinator writes to this client so far. */
  clientWrites(): number;
  /** Writes on the session's connection to the coordinator PostgreSQL so far. */
  coordinatorWrites(): number;
  /** Statements the coordinator PostgreSQL completed for this session so far. */
  coordinatorStatements(): number;
}

/** A raw client with BEGIN, the UPDATE and END prepared (as pgbench -M prepared does), and the write counters of its session. */
async function probe(): Promise<Probe> {
  const url = new URL(cluster.url);
  const conn = await rawLogin(cluster.config.listen, decodeURIComponent(url.username), cluster.password);
  // The coordinator connection's port, as the coordinator PostgreSQL sees its client.
  conn.write(frontend.query('SELECT inet_client_port()'));
  const rows = await conn.readUntil('Z');
  const d = rows.find((m) => m.type === 'D')!;
  const linkPort = Number(d.body.subarray(6).toString());
  const clientPort = conn.socket.localPort!;
  conn.write(
    Buffer.concat([
      frontend.parse({ name: 'b', text: 'BEGIN' }),
      frontend.parse({ name: 'u', text: 'UPDATE acct SET bal = bal + $1 WHERE id = $2', types: [23, 23] }),
      frontend.parse({ name: 'e', text: 'END' }),
      frontend.sync(),
    ]),
  );
  assert.deepEqual(types(await conn.readUntil('Z')), '111Z');
  return {
    conn,
    clientWrites: () => writesByRemote.get(clientPort) ?? 0,
    coordinatorWrites: () => writesByLocal.get(linkPort) ?? 0,
    coordinatorStatements: () => completesByLocal.get(linkPort) ?? 0,
  };
}

function types(ms: BackendMessage[]): string {
  return ms.map((m) => m.type).join('');
}

function status(ms: BackendMessage[]): string {
  return String.fromCharCode(ms[ms.length - 1]!.body[0]!);
}

/** Bind (text parameters), Describe portal, Execute, Sync of a prepared statement: one chunk, as pgbench sends it. */
function request(statement: string, values: string[] = []): Buffer {
  return Buffer.concat([
    frontend.bind({ statement, values }),
    frontend.describe({ type: 'P' }),
    frontend.execute({}),
    frontend.sync(),
  ]);
}

/** Sends one chunk and returns its replies up to ReadyForQuery with the writes it cost. */
async function measured(p: Probe, bytes: Buffer): Promise<{ replies: BackendMessage[]; client: number; coordinator: number }> {
  const client0 = p.clientWrites();
  const coordinator0 = p.coordinatorWrites();
  p.conn.write(bytes);
  const replies = await p.conn.readUntil('Z');
  return { replies, client: p.clientWrites() - client0, coordinator: p.coordinatorWrites() - coordinator0 };
}

test('BEGIN and END over the extended protocol: one client write each, one coordinator write each, replies in order', async () => {
  const p = await probe();
  try {
    for (let round = 0; round < 3; round++) {
      const begin = await measured(p, request('b'));
      assert.equal(types(begin.replies), '2nCZ');
      assert.equal(status(begin.replies), 'T');
      assert.equal(begin.client, 1, 'BindComplete … ReadyForQuery of BEGIN leave in one write');
      assert.equal(begin.coordinator, 1, 'BEGIN is one coordinator write; its Sync is answered by the session');

      const update = await measured(p, request('u', ['5', String(round + 1)]));
      assert.equal(types(update.replies), '2nCZ');
      assert.equal(status(update.replies), 'T');
      assert.equal(update.coordinator, 0, 'a routed statement in a block does not touch the coordinator');

      const end = await measured(p, request('e'));
      assert.equal(types(end.replies), '2nCZ');
      assert.equal(status(end.replies), 'I');
      assert.equal(end.client, 1, 'BindComplete … ReadyForQuery of END leave in one write');
      assert.equal(end.coordinator, 1, 'COMMIT is one coordinator write');
    }
    const r = await c.query('SELECT id, bal FROM acct WHERE id <= 3 ORDER BY id');
    assert.deepEqual(r.rows, [
      { id: '1', bal: '5' },
      { id: '2', bal: '5' },
      { id: '3', bal: '5' },
    ]);
  } finally {
    p.conn.destroy();
  }
});

test('a lone Sync reports the block status without a coordinator round trip', async () => {
  const p = await probe();
  try {
    const idle = await measured(p, frontend.sync());
    assert.equal(types(idle.replies), 'Z');
    assert.equal(status(idle.replies), 'I');
    assert.equal(idle.coordinator, 0);
    await measured(p, request('b'));
    const inBlock = await measured(p, frontend.sync());
    assert.equal(status(inBlock.replies), 'T');
    assert.equal(inBlock.coordinator, 0);
    const end = await measured(p, request('e'));
    assert.equal(status(end.replies), 'I');
  } finally {
    p.conn.destroy();
  }
});

test('a whole block in one chunk: every reply in order, the routed one between the session\'s own', async () => {
  const p = await probe();
  try {
    const all = await measured(
      p,
      Buffer.concat([
        frontend.bind({ statement: 'b' }),
        frontend.execute({}),
        frontend.bind({ statement: 'u', values: ['7', '9'] }),
        frontend.execute({}),
        frontend.bind({ statement: 'e' }),
        frontend.execute({}),
        frontend.sync(),
      ]),
    );
    assert.equal(types(all.replies), '2C2C2CZ');
    assert.deepEqual(
      all.replies.filter((m) => m.type === 'C').map((m) => m.body.subarray(0, m.body.length - 1).toString()),
      ['BEGIN', 'UPDATE 1', 'COMMIT'],
    );
    assert.equal(status(all.replies), 'I');
    assert.deepEqual((await c.query('SELECT bal FROM acct WHERE id = 9')).rows, [{ bal: '7' }]);
  } finally {
    p.conn.destroy();
  }
});

test('an error in a block still skips to Sync, and ROLLBACK ends the block', async () => {
  const p = await probe();
  try {
    await measured(p, request('b'));
    // A division by zero on the worker: ErrorResponse, then the block is aborted.
    p.conn.write(Buffer.concat([frontend.parse({ name: 'z', text: 'UPDATE acct SET bal = bal / $1 WHERE id = $2', types: [23, 23] }), frontend.sync()]));
    await p.conn.readUntil('Z');
    const failed = await measured(p, request('z', ['0', '1']));
    assert.match(types(failed.replies), /EZ$/);
    assert.equal(status(failed.replies), 'E');
    // END of an aborted block answers ROLLBACK.
    const end = await measured(p, request('e'));
    assert.equal(types(end.replies), '2nCZ');
    assert.equal(end.replies.find((m) => m.type === 'C')!.body.toString(), 'ROLLBACK\0');
    assert.equal(status(end.replies), 'I');
  } finally {
    p.conn.destroy();
  }
});

test('a block after one that took the transaction time: BEGIN and the time are two coordinator statements, the INSERT gets that time', async () => {
  const p = await probe();
  try {
    p.conn.write(Buffer.concat([frontend.parse({ name: 'h', text: 'INSERT INTO hist (id, at) VALUES ($1, CURRENT_TIMESTAMP)', types: [23] }), frontend.sync()]));
    await p.conn.readUntil('Z');
    // The first block asks for the time at its INSERT; the next fetches it along with BEGIN.
    for (let block = 0; block < 2; block++) {
      const statements0 = p.coordinatorStatements();
      const begin = await measured(p, request('b'));
      assert.equal(types(begin.replies), '2nCZ');
      if (block === 1) {
        // BEGIN, then one SELECT of the characteristics and the time (not three SHOWs and a SELECT).
        assert.equal(p.coordinatorStatements() - statements0, 2);
        assert.equal(begin.coordinator, 1);
      }
      const insert = await measured(p, request('h', [String(100 + block)]));
      assert.equal(types(insert.replies), '2nCZ');
      p.conn.write(frontend.query('SELECT now()::text'));
      const now = (await p.conn.readUntil('Z')).find((m) => m.type === 'D')!;
      const end = await measured(p, request('e'));
      assert.equal(status(end.replies), 'I');
      const r = await c.query('SELECT (at = $1::timestamptz) AS same FROM hist WHERE id = $2', [now.body.subarray(6).toString(), 100 + block]);
      assert.deepEqual(r.rows, [{ same: 't' }], 'the INSERT took the block\'s coordinator time');
    }
  } finally {
    p.conn.destroy();
  }
});
