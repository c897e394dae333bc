/**
 * encodeBindFor (session/extended-encoders.ts): the client's Bind re-addressed
 * to the worker's portal and statement, values and format codes byte for
 * byte, optionally followed by the rest of a pipelined request (Describe,
 * Execute, Sync) in the same buffer — checked against pg-protocol's own
 * encoding of the same messages, with multi-byte names and empty ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialize } from 'pg-protocol';
import { encodeBindFor } from '../../src/session/extended-encoders.js';

const values = ['42', null, 'grüße'];

test('a Bind re-addressed keeps values and formats byte for byte', () => {
  const client = serialize.bind({ portal: '', statement: 's1', values, binary: false });
  for (const [portal, statement] of [['', 'pgwc7'], ['pörtal', 'pgw12_102008'], ['', '']]) {
    const expected = serialize.bind({ portal, statement, values, binary: false });
    assert.deepEqual(encodeBindFor(portal!, statement!, client, 0, client.length), expected);
  }
});

test('a pipelined request: the Bind re-addressed, then Describe, Execute and Sync as they were, in one buffer', () => {
  const bind = serialize.bind({ portal: '', statement: 'client_stmt', values, binary: true });
  const tail = Buffer.concat([serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync()]);
  // The request sits inside a bigger chunk, as it does in the session's inbox.
  const before = serialize.flush();
  const chunk = Buffer.concat([before, bind, tail, serialize.sync()]);
  const start = before.length;
  const end = start + bind.length;
  const out = encodeBindFor('', 'pgwc1', chunk, start, end, end + tail.length);
  assert.deepEqual(out, Buffer.concat([serialize.bind({ portal: '', statement: 'pgwc1', values, binary: true }), tail]));
});
