/**
 * WriteGate coalescing (executor/write-gate.ts): every write of one
 * event-loop turn to a client socket — the session's own replies and bytes
 * forwarded from backend links — reaches the socket as one write, in order,
 * at the end of the turn; backpressure (write()'s verdict, pause and
 * resume of the source) is unchanged. A sink that records each underlying
 * write stands in for the socket: loopback TCP reads may merge or split
 * segments, so counting 'data' events on a real client would not be
 * deterministic. A held gate (a session answering a deferred portal across
 * a backend round trip) keeps its writes until released, and a refused
 * write under a hold flushes at once.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { WriteGate } from '../../src/executor/write-gate.js';

/** A Writable that records the chunks of each underlying write call. */
function recordingSink(highWaterMark = 16384): { sink: Writable; writes: Buffer[][] } {
  const writes: Buffer[][] = [];
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      writes.push([chunk]);
      setImmediate(cb);
    },
    writev(chunks, cb) {
      writes.push(chunks.map((c) => c.chunk as Buffer));
      setImmediate(cb);
    },
  });
  return { sink, writes };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('client writes per event-loop turn', () => {
  test('writes of one turn leave in one underlying write, in order', async () => {
    const { sink, writes } = recordingSink();
    const gate = new WriteGate(sink);
    // BEGIN over the extended protocol: ParseComplete, BindComplete, NoData, CommandComplete, ReadyForQuery.
    const replies = ['1', '2', 'n', 'C', 'Z'].map((t) => Buffer.from(t));
    for (const r of replies) gate.write(r);
    await Promise.resolve();
    assert.equal(writes.length, 0, 'nothing leaves before the turn ends');
    await turn();
    await turn();
    assert.equal(writes.length, 1);
    assert.equal(Buffer.concat(writes[0]!).toString(), '12nCZ');
    // The next turn's writes are a write of their own.
    gate.write(Buffer.from('D'));
    gate.write(Buffer.from('Z'));
    await turn();
    await turn();
    assert.equal(writes.length, 2);
    assert.equal(Buffer.concat(writes[1]!).toString(), 'DZ');
  });

  test('a full sink still pauses the source until it drains', async () => {
    const { sink, writes } = recordingSink(4);
    const gate = new WriteGate(sink);
    let paused = 0;
    let resumed = 0;
    const source = { pause: () => paused++, resume: () => resumed++ };
    assert.equal(gate.write(Buffer.from('ab'), source), true);
    assert.equal(gate.write(Buffer.from('cdef'), source), false);
    assert.equal(paused, 1);
    assert.equal(gate.full, true);
    await gate.drained();
    assert.equal(resumed, 1);
    assert.equal(Buffer.concat(writes.flat()).toString(), 'abcdef');
  });

  test('a held gate keeps the writes of several turns until released, then leaves them in one write', async () => {
    const { sink, writes } = recordingSink();
    const gate = new WriteGate(sink);
    gate.hold();
    gate.write(Buffer.from('2')); // BindComplete of BEGIN
    await turn();
    await turn(); // the coordinator round trip
    assert.equal(writes.length, 0, 'nothing leaves while held');
    gate.write(Buffer.from('n'));
    gate.write(Buffer.from('C'));
    gate.write(Buffer.from('Z'));
    gate.release();
    assert.equal(writes.length, 0, 'the release leaves the writes to the end of the turn');
    await turn();
    await turn();
    assert.equal(writes.length, 1);
    assert.equal(Buffer.concat(writes[0]!).toString(), '2nCZ');
    // Released: the next turn's writes leave at its end again.
    gate.write(Buffer.from('D'));
    await turn();
    await turn();
    assert.equal(writes.length, 2);
    gate.release(); // an unmatched release changes nothing
    gate.write(Buffer.from('E'));
    await turn();
    await turn();
    assert.equal(writes.length, 3);
  });

  test('a refused write under a hold flushes at once, so a drain can come', async () => {
    const { sink, writes } = recordingSink(4);
    const gate = new WriteGate(sink);
    let paused = 0;
    let resumed = 0;
    const source = { pause: () => paused++, resume: () => resumed++ };
    gate.hold();
    assert.equal(gate.write(Buffer.from('ab'), source), true);
    assert.equal(gate.write(Buffer.from('cdef'), source), false);
    assert.equal(paused, 1);
    await gate.drained();
    assert.equal(resumed, 1);
    assert.equal(Buffer.concat(writes.flat()).toString(), 'abcdef');
    // Still held: later writes wait for the release.
    const before = writes.length;
    gate.write(Buffer.from('g'));
    await turn();
    await turn();
    assert.equal(writes.length, before);
    gate.release();
    await turn();
    await turn();
    assert.equal(Buffer.concat(writes.flat()).toString(), 'abcdefg');
  });
});
