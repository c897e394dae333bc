/**
 * MessageFramer (client → coordinator: whole messages only, lengths checked),
 * MessageBoundaryScanner (PostgreSQL → client: boundaries seen while bytes pass
 * straight through) and forEachMessage. Sockets cut streams anywhere, so every
 * property is checked with the stream split at every byte boundary.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageBoundaryScanner, MessageFramer, forEachMessage } from '../../src/protocol/framer.js';
import { ProtocolViolation } from '../../src/protocol/errors.js';
import { MAX_MESSAGE_SIZE } from '../../src/protocol/constants.js';

/** One typed message: type byte, int32 length (counting itself), body. */
function msg(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(4 + b.length, 1);
  return Buffer.concat([head, b]);
}

/** A header claiming `length` for message type `type`, with no body. */
function header(type: string, length: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(length | 0, 1);
  return h;
}

const query = msg('Q', 'select 1\0');
const sync = msg('S');
const parse = msg('P', 'stmt\0select $1::int\0\0\0');
const big = msg('d', Buffer.alloc(70_000, 0x61));
const stream = Buffer.concat([query, sync, parse, sync, big, msg('X')]);

/** The message types and lengths in a buffer of whole messages. */
function typesIn(buf: Buffer): string[] {
  const out: string[] = [];
  forEachMessage(buf, (type, start, end) => out.push(`${String.fromCharCode(type)}:${end - start}`));
  return out;
}

/** Feeds chunks through a framer and checks each output holds only whole messages. */
function frameAll(framer: MessageFramer, chunks: Buffer[]): Buffer {
  const outputs: Buffer[] = [];
  for (const c of chunks) {
    const whole = framer.take(c);
    if (whole === null) continue;
    assert.ok(whole.length > 0, 'take() returns null rather than an empty buffer');
    // every output must parse as whole messages, ending exactly at its end
    let pos = 0;
    while (pos < whole.length) {
      assert.ok(pos + 5 <= whole.length, 'output ends inside a header');
      pos += 1 + whole.readInt32BE(pos + 1);
    }
    assert.equal(pos, whole.length, 'output ends inside a message');
    outputs.push(whole);
  }
  return Buffer.concat(outputs);
}

function assertViolation(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolViolation, `expected ProtocolViolation, got ${String(err)}`);
    assert.equal(err.code, '08P01');
    assert.equal(err.fields.severity, 'FATAL');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('MessageFramer', () => {
  test('a chunk of whole messages comes back as the same buffer, uncopied', () => {
    const framer = new MessageFramer();
    const out = framer.take(stream);
    assert.equal(out, stream);
    assert.equal(framer.pendingBytes, 0);
  });

  test('two chunks split at every byte boundary reassemble to the original messages', () => {
    const small = Buffer.concat([query, sync, parse, sync, msg('X')]);
    for (let cut = 0; cut <= small.length; cut++) {
      const framer = new MessageFramer();
      const out = frameAll(framer, [small.subarray(0, cut), small.subarray(cut)]);
      assert.deepEqual(out, small, `cut at ${cut}`);
      assert.equal(framer.pendingBytes, 0);
    }
  });

  test('three chunks split at every pair of boundaries reassemble', () => {
    const small = Buffer.concat([query, sync, parse]);
    for (let a = 0; a <= small.length; a++) {
      for (let b = a; b <= small.length; b++) {
        const framer = new MessageFramer();
        const out = frameAll(framer, [small.subarray(0, a), small.subarray(a, b), small.subarray(b)]);
        assert.deepEqual(out, small, `cuts at ${a},${b}`);
      }
    }
  });

  test('one byte at a time reassembles, and nothing is released before a message is whole', () => {
    const small = Buffer.concat([query, sync, parse]);
    const framer = new MessageFramer();
    const outputs: string[] = [];
    for (let i = 0; i < small.length; i++) {
      const whole = framer.take(small.subarray(i, i + 1));
      if (whole) outputs.push(...typesIn(whole));
      const released = outputs.length;
      // after byte i, exactly the messages ending at or before i+1 are out
      let ends = 0;
      let pos = 0;
      for (const m of [query, sync, parse]) {
        pos += m.length;
        if (pos <= i + 1) ends++;
      }
      assert.equal(released, ends, `after byte ${i}`);
    }
    assert.deepEqual(outputs, typesIn(small));
    assert.equal(framer.pendingBytes, 0);
  });

  test('a large message split at many points, with a small tail, reassembles', () => {
    for (const cut of [1, 4, 5, 6, 4096, 65_536, 69_999, big.length - 1]) {
      const input = Buffer.concat([big, query]);
      const framer = new MessageFramer();
      const out = frameAll(framer, [input.subarray(0, cut), input.subarray(cut, cut + 3), input.subarray(cut + 3)]);
      assert.deepEqual(out, input, `cut at ${cut}`);
    }
  });

  test('the pending tail survives the caller reusing the chunk buffer', () => {
    const framer = new MessageFramer();
    // a big chunk with a small incomplete tail: the framer must keep its own copy
    const chunk = Buffer.concat([big, query.subarray(0, 7)]);
    const copyOfTail = Buffer.from(query.subarray(0, 7));
    assert.equal(framer.take(chunk)?.length, big.length);
    chunk.fill(0); // socket buffers may be reused
    const rest = framer.take(query.subarray(7));
    // the tail has been copied only when small against a large chunk, so check the outcome
    assert.ok(rest);
    assert.deepEqual(rest.subarray(0, 7), copyOfTail);
  });

  test('a 16 MB message arriving in 16 KB chunks is released once, whole (chunks are not re-joined each time)', () => {
    const body = Buffer.alloc(16 << 20);
    for (let i = 0; i < body.length; i += 4096) body[i] = i & 0xff;
    const huge = msg('B', body);
    const input = Buffer.concat([huge, sync]);
    const framer = new MessageFramer();
    const released: Buffer[] = [];
    for (let pos = 0; pos < input.length; pos += 16384) {
      const whole = framer.take(input.subarray(pos, pos + 16384));
      if (whole) released.push(whole);
      if (pos + 16384 < huge.length) assert.equal(framer.pendingBytes, pos + 16384);
    }
    assert.equal(released.length, 1);
    assert.deepEqual(typesIn(released[0]!), [`B:${huge.length}`, 'S:5']);
    assert.ok(released[0]!.equals(input));
  });

  test('pendingBytes counts the incomplete tail', () => {
    const framer = new MessageFramer();
    assert.equal(framer.take(query.subarray(0, 3)), null);
    assert.equal(framer.pendingBytes, 3);
    assert.equal(framer.take(query.subarray(3, 9)), null);
    assert.equal(framer.pendingBytes, 9);
    assert.deepEqual(framer.take(query.subarray(9)), query);
    assert.equal(framer.pendingBytes, 0);
  });

  test('lengths below 4 are violations, however the header arrives', () => {
    for (const len of [0, 1, 3, -1, -4, -0x80000000]) {
      const bad = header('Q', len);
      assertViolation(() => new MessageFramer().take(bad), new RegExp(`invalid message length ${len} for message type "Q"`));
      // header split, and behind valid messages
      const framer = new MessageFramer();
      const input = Buffer.concat([sync, bad]);
      assert.deepEqual(framer.take(input.subarray(0, sync.length + 2)), sync);
      assertViolation(() => framer.take(input.subarray(sync.length + 2)), /invalid message length/);
    }
  });

  test('a length over the limit is refused as soon as the header is seen', () => {
    const framer = new MessageFramer(1024);
    assertViolation(() => framer.take(header('d', 1025)), /message of 1025 bytes exceeds the limit of 1024 bytes/);
    // exactly the limit is accepted
    const atLimit = msg('d', Buffer.alloc(1020));
    assert.deepEqual(new MessageFramer(1024).take(atLimit), atLimit);
  });

  test('the default limit is PostgreSQL\'s 1 GB, and 0x7fffffff is refused', () => {
    assert.equal(MAX_MESSAGE_SIZE, 0x3fffffff);
    assertViolation(() => new MessageFramer().take(header('Q', 0x7fffffff)), /exceeds the limit/);
    // a header of exactly the limit is pending, not refused
    const framer = new MessageFramer();
    assert.equal(framer.take(header('d', MAX_MESSAGE_SIZE)), null);
    assert.equal(framer.pendingBytes, 5);
  });

  test('a valid message with an empty body (Sync) and a lone type byte are handled', () => {
    const framer = new MessageFramer();
    assert.equal(framer.take(Buffer.from('S')), null);
    assert.deepEqual(framer.take(Buffer.from([0, 0, 0, 4])), sync);
    assert.equal(framer.take(Buffer.alloc(0)), null);
  });
});

describe('MessageBoundaryScanner', () => {
  const rfq = (status: string) => msg('Z', status);
  const backendStream = Buffer.concat([
    msg('1'),
    msg('2'),
    msg('T', Buffer.from([0, 1, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])),
    msg('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x31])),
    msg('C', 'SELECT 1\0'),
    rfq('T'),
    msg('n'),
    msg('d', Buffer.alloc(3000, 0x62)),
    rfq('E'),
    msg('C', 'ROLLBACK\0'),
    rfq('I'),
  ]);
  const expected: Array<[string, number]> = [
    ['1', -1], ['2', -1], ['T', 0], ['D', 0], ['C', 0x53], ['Z', 0x54], ['n', -1], ['d', 0x62], ['Z', 0x45], ['C', 0x52], ['Z', 0x49],
  ];

  function scanAll(chunks: Buffer[]): Array<[string, number]> {
    const scanner = new MessageBoundaryScanner();
    const seen: Array<[string, number]> = [];
    for (const c of chunks) scanner.scan(c, (type, first) => seen.push([String.fromCharCode(type), first]));
    return seen;
  }

  test('reports every message type with its first body byte in one chunk', () => {
    assert.deepEqual(scanAll([backendStream]), expected);
  });

  test('reports the same split at every byte boundary', () => {
    for (let cut = 0; cut <= backendStream.length; cut++) {
      assert.deepEqual(scanAll([backendStream.subarray(0, cut), backendStream.subarray(cut)]), expected, `cut at ${cut}`);
    }
  });

  test('reports the same fed one byte at a time', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < backendStream.length; i++) chunks.push(backendStream.subarray(i, i + 1));
    assert.deepEqual(scanAll(chunks), expected);
  });

  test('reports the same with the header split at each of its bytes across three chunks', () => {
    const z = rfq('T');
    for (let a = 0; a <= z.length; a++) {
      for (let b = a; b <= z.length; b++) {
        assert.deepEqual(scanAll([z.subarray(0, a), z.subarray(a, b), z.subarray(b)]), [['Z', 0x54]], `cuts ${a},${b}`);
      }
    }
  });

  test('a length below 4 from the server is a violation, whole or split', () => {
    const bad = header('Z', 2);
    assert.throws(() => scanAll([bad]), ProtocolViolation);
    assert.throws(() => scanAll([bad.subarray(0, 3), bad.subarray(3)]), ProtocolViolation);
  });
});

describe('forEachMessage', () => {
  test('visits each message with its start and end', () => {
    const seen: Array<[string, number, number]> = [];
    const buf = Buffer.concat([query, sync, parse]);
    forEachMessage(buf, (type, start, end) => seen.push([String.fromCharCode(type), start, end]));
    assert.deepEqual(seen, [
      ['Q', 0, query.length],
      ['S', query.length, query.length + 5],
      ['P', query.length + 5, buf.length],
    ]);
  });
});
