/**
 * TypeOidMap (executor/type-oids.ts) without servers: pairing a worker's
 * user types with the coordinator's by name (shard row types as their
 * table's, arrays through their element even when the array names differ),
 * and the in-place rewrite of RowDescription / ParameterDescription — a
 * message with built-in OIDs only is left byte for byte, a miss writes
 * nothing; a shard's table OID and column numbers become its table's, an
 * unmapped relation's 0/0, the first relation load reads them all and
 * later ones only the OIDs asked for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageWriter } from '../../src/protocol/writer.js';
import { writeRowDescription, readRowDescription } from '../../src/protocol/backend/row-description.js';
import { TypeOidMap, matchWorkerTypes, type UserType } from '../../src/executor/type-oids.js';
import { relationOf, relationColumns, shardRelations } from '../../src/executor/relation-oids.js';

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

test('shard relations pair with their tables by name, columns by name (the coordinator had one dropped)', () => {
  // Worker rows: (oid, schema, name, attnum, attname); the coordinator's users has a dropped column 2.
  const worker = [['40001', 'public', 'users_102008', '1', 'id'], ['40001', 'public', 'users_102008', '2', 'name'], ['40002', 'pg_temp_3', 'users_102008', '1', 'x'], ['40003', 'public', 'mine', '1', 'a']];
  const { relations, tables } = shardRelations(worker, (schema, name) => (schema === 'public' && name === 'users_102008' ? 30001 : null));
  assert.deepEqual(tables, [30001]);
  const mapped = new Map(relationColumns(relations, [['30001', 'id', '1'], ['30001', 'name', '3']]));
  assert.deepEqual([...mapped.get(40001)!.attnums], [0, 1, 3]);
  assert.equal(mapped.get(40001)!.table, 30001);
  assert.equal(mapped.get(40002)!.table, 0);
  assert.equal(mapped.get(40003)!.table, 0);
});

test("RowDescriptions: a shard's table and columns become its table's, others 0/0; loads all first, then only what is asked", async () => {
  const asked: Array<readonly number[] | null> = [];
  const map = new TypeOidMap(async () => ({ pairs: [], arrays: [], composites: [] }), () => 1, async (oids) => {
    asked.push(oids);
    return oids === null ? [[40001, relationOf(30001, [[1, 1], [2, 3]])]] : [];
  });
  const w = new MessageWriter(256);
  writeRowDescription(w, [
    { name: 'id', tableOid: 40001, columnAttr: 1, typeOid: 20 },
    { name: 'name', tableOid: 40001, columnAttr: 2, typeOid: 25 },
    { name: 'ctid', tableOid: 40001, columnAttr: -1, typeOid: 27 },
    { name: 'computed', typeOid: 23 },
    { name: 'catalog', tableOid: 1259, columnAttr: 2, typeOid: 19 },
    { name: 'temp', tableOid: 40002, columnAttr: 1, typeOid: 23 },
  ]);
  const msg = w.flush();
  const before = Buffer.from(msg);
  assert.equal(map.mapInPlace(msg, 0, msg.length), false);
  assert.deepEqual(msg, before, 'nothing written on a miss');
  const unknown = map.unknownIn(msg, 0, msg.length);
  assert.deepEqual(unknown, { types: [], relations: [40001, 40002] });
  await map.fill(unknown);
  assert.equal(map.mapInPlace(msg, 0, msg.length), true);
  assert.equal(msg.length, before.length);
  assert.deepEqual(readRowDescription(msg).map((f) => [f.tableOid, f.columnAttr, f.typeOid]), [[30001, 1, 20], [30001, 3, 25], [30001, -1, 27], [0, 0, 23], [1259, 2, 19], [0, 0, 23]]);
  writeRowDescription(w, [{ name: 'x', tableOid: 40005, columnAttr: 1, typeOid: 23 }]);
  const next = w.flush();
  assert.equal(map.mapInPlace(next, 0, next.length), false);
  await map.fill(map.unknownIn(next, 0, next.length));
  assert.deepEqual(asked, [null, [40005]]);
});
