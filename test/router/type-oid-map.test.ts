/**
 * TypeOidMap (executor/type-oids.ts) without servers: pairing a worker's
 * user types with the coordinator's by name (shard row types as their
 * table's, arrays through their element even when the array names differ),
 * and the in-place rewrite of RowDescription / ParameterDescription — a
 * message with built-in OIDs only is left byte for byte, a miss writes
 * nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageWriter } from '../../src/protocol/writer.js';
import { writeRowDescription, readRowDescription } from '../../src/protocol/backend/row-description.js';
import { TypeOidMap, matchWorkerTypes, type UserType } from '../../src/executor/type-oids.js';

const ut = (oid: number, name: string, extra: Partial<UserType> = {}): UserType => ({ oid, schema: 'public', name, element: 0, array: 0, relation: false, ...extra });

test('worker types pair with the coordinator by name; shard row types with their table; arrays through their element', () => {
  const worker = [ut(20001, 'mood', { array: 20002 }), ut(20002, '_mood', { element: 20001 }), ut(20003, 't_102008', { relation: true, array: 20004 }), ut(20004, '_t_102008', { element: 20003 }), ut(20005, 'worker_only')];
  const coordinator = [ut(30001, 'mood', { array: 30009 }), ut(30009, '__mood', { element: 30001 }), ut(30003, 't', { relation: true, array: 30004 }), ut(30004, '_t', { element: 30003 })];
  const m = matchWorkerTypes(worker, coordinator, (schema, name) => (schema === 'public' && name === 't_102008' ? 't' : null));
  assert.deepEqual(new Map(m.pairs), new Map([[20001, 30001], [20002, 30009], [20003, 30003], [20004, 30004]]));
  assert.deepEqual(m.arrays, [20002, 20004]);
  assert.deepEqual(m.composites, [20003]);
});

function rowDescription(types: number[]): Buffer {
  const w = new MessageWriter(256);
  writeRowDescription(w, types.map((typeOid, i) => ({ name: `c${i}`, typeOid })));
  return w.flush();
}

test('RowDescriptions: built-in only left as is, user OIDs rewritten in place, a miss writes nothing', async () => {
  const map = new TypeOidMap(async () => ({ pairs: [[20001, 30001]], arrays: [], composites: [] }), () => 1);
  const builtin = rowDescription([23, 25]);
  const copy = Buffer.from(builtin);
  assert.equal(map.mapInPlace(builtin, 0, builtin.length), true);
  assert.deepEqual(builtin, copy);

  const user = rowDescription([23, 20001, 20002]);
  const before = Buffer.from(user);
  assert.equal(map.mapInPlace(user, 0, user.length), false);
  assert.deepEqual(user, before, 'nothing written on a miss');
  await map.fill(map.unknownIn(user, 0, user.length));
  assert.equal(map.mapInPlace(user, 0, user.length), true);
  // 20002 is no type the load knew: it stays as the worker sent it.
  assert.deepEqual(readRowDescription(user).map((f) => f.typeOid), [23, 30001, 20002]);
});

test('declared parameter types: the worker OID, 0 when unknown, the same array without user types', async () => {
  const map = new TypeOidMap(async () => ({ pairs: [[20001, 30001]], arrays: [], composites: [] }), () => 1);
  await map.fillFor([30001, 30005]);
  const plain = [23, 25];
  assert.equal(map.workerTypes(plain), plain);
  assert.deepEqual(map.workerTypes([23, 30001, 30005]), [23, 20001, 0]);
});
