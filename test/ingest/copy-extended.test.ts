/**
 * COPY over the extended query protocol (Parse/Bind/Describe/Execute, as
 * some drivers send it), against a plain PostgreSQL receiving the very same
 * bytes: COPY FROM STDIN into a distributed table (CopyInResponse after
 * Execute, CopyData/CopyDone, CommandComplete, ReadyForQuery at the Sync;
 * a Sync sent during copy-in is ignored, as PostgreSQL does), a bad row, a
 * Sync right after the error, CopyFail, into a local table (also with the
 * Sync pipelined, then a distributed statement), and COPY … TO
 * STDOUT from a distributed table and from a query — streamed from the
 * workers at Execute when no merge step is needed. The same messages in the
 * same order, the same data, the same errors; nothing of a failed COPY remains.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { errorFieldsOf, frontend, message, type BackendMessage, type RawConnection } from '../server/raw-protocol.js';
import { type SideBySide, startSideBySide, tableRows } from './support.js';

let weave: pg.Client;
let reference: pg.Client;
let weaveRaw: RawConnection;
let plainRaw: RawConnection;

const SCHEMA = `
CREATE TABLE ev (tenant_id int NOT NULL, id bigint NOT NULL, body text);
CREATE TABLE local_notes (id int, note text);
`;

let sides: SideBySide;

before(async () => {
  sides = await startSideBySide(SCHEMA, 4, [
    `SELECT create_distributed_table('ev', 'tenant_id')`,
  ]);
  ({ weave, reference, weaveRaw, plainRaw } = sides);
});

after(async () => {
  await sides?.stop();
});

function rows(from: number, n: number, bad = -1): Buffer {
  let s = '';
  for (let i = from; i < from + n; i++) s += i === bad ? `${i % 13}\tbad\tbody\n` : `${i % 13}\t${i}\tbody ${i}\n`;
  return Buffer.from(s);
}

const parseBindExecute = (sql: string) =>
  Buffer.concat([frontend.parse({ text: sql }), frontend.bind({}), frontend.describe({ type: 'P' }), frontend.execute({})]);

/** What a message says, for comparing two servers: type, plus tag / error / format. */
function describe(m: BackendMessage): string {
  switch (m.type) {
    case 'C':
      return `C ${m.body.toString('utf8', 0, m.body.length - 1)}`;
    case 'E': {
      const f = errorFieldsOf(m);
      return `E ${f.code} ${f.message}${f.where ? ` | ${f.where}` : ''}`;
    }
    case 'Z':
      return `Z ${String.fromCharCode(m.body[0]!)}`;
    case 'G':
    case 'H':
      return `${m.type} ${m.body[0]} ${m.body.readInt16BE(1)}`;
    case 'd':
      return 'd';
    default:
      return m.type;
  }
}

interface Step {
  bytes: Buffer;
  /** Read up to this message type after sending (null: read nothing). */
  until: string | null;
}

/** Sends the same steps to both servers; returns what each answered (CopyData collapsed, data kept). */
async function both(steps: Step[]): Promise<{ weave: string[]; plain: string[]; weaveData: string[]; plainData: string[] }> {
  const run = async (conn: RawConnection) => {
    const seen: string[] = [];
    const data: string[] = [];
    for (const s of steps) {
      conn.write(s.bytes);
      if (s.until === null) continue;
      const got = await conn.readUntil(s.until, 30_000);
      assert.ok(got.length > 0 && got[got.length - 1]!.type === s.until, `no ${s.until} after ${seen.join(', ')} ${got.map(describe).join(', ')}`);
      for (const m of got) {
        if (m.type === 'd') data.push(m.body.toString('utf8'));
        if (m.type === 'd' && seen[seen.length - 1] === 'd') continue;
        seen.push(describe(m));
      }
    }
    return { seen, data };
  };
  const w = await run(weaveRaw);
  const p = await run(plainRaw);
  return { weave: w.seen, plain: p.seen, weaveData: w.data, plainData: p.data };
}

test('COPY FROM STDIN with Parse/Bind/Describe/Execute: the same messages as PostgreSQL, rows all there', async () => {
  await weave.query('TRUNCATE ev');
  await reference.query('TRUNCATE ev');
  const out = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY ev FROM STDIN'), frontend.flush()]), until: 'G' },
    // PostgreSQL holds CommandComplete in its output buffer until the Sync (a Flush during copy-in is ignored).
    { bytes: Buffer.concat([message('d', rows(0, 3000)), message('d', rows(3000, 2000)), frontend.flush(), message('c'), frontend.sync()]), until: 'Z' },
  ]);
  assert.deepEqual(out.weave, out.plain);
  assert.deepEqual(out.weave, ['1', '2', 'n', 'G 0 3', 'C COPY 5000', 'Z I']);
  assert.deepEqual(await tableRows(weave, 'ev'), await tableRows(reference, 'ev'));
});

test('a Sync sent along with Execute is ignored during copy-in; the next Sync answers', async () => {
  await weave.query('TRUNCATE ev');
  await reference.query('TRUNCATE ev');
  const out = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY ev (tenant_id, id, body) FROM STDIN'), frontend.sync()]), until: 'G' },
    { bytes: Buffer.concat([message('d', rows(0, 100)), message('c'), frontend.sync()]), until: 'Z' },
    { bytes: frontend.query('SELECT count(*) FROM ev'), until: 'Z' },
  ]);
  assert.deepEqual(out.weave, out.plain);
  assert.deepEqual(out.weave, ['1', '2', 'n', 'G 0 3', 'C COPY 100', 'Z I', 'T', 'D', 'C SELECT 1', 'Z I']);
});

/**
 * A bad first row, then data until the server reports the error (pgweave
 * finds it when the row's shard batch is answered, PostgreSQL at once),
 * then Sync at once: ReadyForQuery, and later CopyData/CopyDone are dropped.
 */
async function syncOnError(conn: RawConnection): Promise<string[]> {
  const seen: string[] = [];
  conn.write(Buffer.concat([parseBindExecute('COPY ev FROM STDIN'), frontend.flush()]));
  for (const m of await conn.readUntil('G', 30_000)) seen.push(describe(m));
  conn.write(message('d', Buffer.from('1\tnope\tx\n')));
  let failed = false;
  for (let i = 0; i < 80 && !failed; i++) {
    conn.write(message('d', rows(1 + i * 20_000, 20_000)));
    const m = await conn.next(i < 60 ? 50 : 2000);
    if (m) {
      seen.push(describe(m));
      failed = m.type === 'E';
    }
  }
  assert.ok(failed, `no error during the stream: ${seen.join(', ')}`);
  conn.write(frontend.sync());
  for (const m of await conn.readUntil('Z', 30_000)) seen.push(describe(m));
  conn.write(Buffer.concat([message('d', rows(0, 10)), message('c'), frontend.query('SELECT count(*) FROM ev')]));
  for (const m of await conn.readUntil('Z', 30_000)) seen.push(describe(m));
  return seen;
}

test('a bad row, a Sync right after the error, and CopyFail: the same errors, nothing remains', async () => {
  await weave.query('TRUNCATE ev');
  await reference.query('TRUNCATE ev');
  const bad = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY ev FROM STDIN'), frontend.flush()]), until: 'G' },
    { bytes: Buffer.concat([message('d', rows(0, 2000, 1500)), message('c'), frontend.sync()]), until: 'Z' },
  ]);
  assert.deepEqual(bad.weave, bad.plain);
  assert.deepEqual(bad.weave, ['1', '2', 'n', 'G 0 3', 'E 22P02 invalid input syntax for type bigint: "bad" | COPY ev, line 1501, column id: "bad"', 'Z I']);

  // The client syncs as soon as it sees the error, before its CopyDone.
  const early = [await syncOnError(weaveRaw), await syncOnError(plainRaw)];
  assert.deepEqual(early[0], early[1]);
  assert.deepEqual(early[0], ['1', '2', 'n', 'G 0 3', 'E 22P02 invalid input syntax for type bigint: "nope" | COPY ev, line 1, column id: "nope"', 'Z I', 'T', 'D', 'C SELECT 1', 'Z I']);

  const failed = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY ev FROM STDIN'), frontend.flush()]), until: 'G' },
    { bytes: Buffer.concat([message('d', rows(0, 500)), message('f', 'client gave up\0'), frontend.sync()]), until: 'Z' },
  ]);
  assert.deepEqual(failed.weave, failed.plain);
  assert.equal(failed.weave[4]!.split(' | ')[0], 'E 57014 COPY from stdin failed: client gave up');
  assert.equal((await weave.query('SELECT count(*) FROM ev')).rows[0].count, '0');
});

test('COPY into a local table, and COPY … TO STDOUT from a distributed table and a query', async () => {
  await weave.query('TRUNCATE ev');
  await reference.query('TRUNCATE ev');
  await weave.query(`INSERT INTO ev SELECT g % 13, g, 'body ' || g FROM generate_series(1, 400) g`);
  await reference.query(`INSERT INTO ev SELECT g % 13, g, 'body ' || g FROM generate_series(1, 400) g`);
  const local = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY local_notes FROM STDIN'), frontend.flush()]), until: 'G' },
    { bytes: Buffer.concat([message('d', '1\tone\n2\ttwo\n'), message('c'), frontend.sync()]), until: 'Z' },
  ]);
  assert.deepEqual(local.weave, local.plain);
  assert.deepEqual(local.weave, ['1', '2', 'n', 'G 0 2', 'C COPY 2', 'Z I']);
  // The Sync sent along with Execute gets no ReadyForQuery from the coordinator PostgreSQL either;
  // the session must not wait for one (a distributed statement afterwards used to hang).
  const pipelined = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY local_notes FROM STDIN'), frontend.sync()]), until: 'G' },
    { bytes: Buffer.concat([message('d', '3\tthree\n'), message('c'), frontend.sync()]), until: 'Z' },
    { bytes: frontend.query('SELECT count(*) FROM ev'), until: 'Z' },
    { bytes: frontend.query('SELECT count(*) FROM local_notes'), until: 'Z' },
  ]);
  assert.deepEqual(pipelined.weave, pipelined.plain);
  assert.deepEqual(pipelined.weaveData, pipelined.plainData);

  const table = await both([{ bytes: Buffer.concat([parseBindExecute('COPY ev TO STDOUT'), frontend.sync()]), until: 'Z' }]);
  assert.deepEqual(table.weave, table.plain);
  assert.deepEqual(table.weave, ['1', '2', 'n', 'H 0 3', 'd', 'c', 'C COPY 400', 'Z I']);
  assert.deepEqual(table.weaveData.sort(), table.plainData.sort());

  const query = await both([
    { bytes: Buffer.concat([parseBindExecute('COPY (SELECT tenant_id, count(*) FROM ev GROUP BY 1 ORDER BY 1) TO STDOUT (FORMAT csv)'), frontend.sync()]), until: 'Z' },
  ]);
  assert.deepEqual(query.weave, query.plain);
  assert.deepEqual(query.weaveData, query.plainData);
});

test('COPY … TO STDOUT from Execute streams from the workers: a table and a SELECT without a merge step, text, CSV HEADER and binary', async () => {
  await weave.query('TRUNCATE ev');
  await reference.query('TRUNCATE ev');
  await weave.query(`INSERT INTO ev SELECT g % 13, g, 'body ' || g FROM generate_series(1, 400) g`);
  await reference.query(`INSERT INTO ev SELECT g % 13, g, 'body ' || g FROM generate_series(1, 400) g`);
  // The rows come from the workers, not from the coordinator PostgreSQL over pulled copies.
  const ports = new Set(sides.cluster.workers.map((w) => String(w.port)));
  const served = await both([{ bytes: Buffer.concat([parseBindExecute('COPY (SELECT current_setting(\'port\'), id FROM ev WHERE id % 7 = 0) TO STDOUT'), frontend.sync()]), until: 'Z' }]);
  assert.deepEqual(served.weave, ['1', '2', 'n', 'H 0 2', 'd', 'c', 'C COPY 57', 'Z I']);
  const seen = new Set(served.weaveData.map((d) => d.split('\t')[0]!));
  for (const port of seen) assert.ok(ports.has(port), `ran on ${port}, not on a worker`);
  assert.ok(seen.size > 1, 'several workers answered');
  for (const sql of [
    'COPY (SELECT tenant_id, id, body FROM ev WHERE id % 3 = 0) TO STDOUT (FORMAT csv, HEADER)',
    `COPY (SELECT id, upper(body) FROM ev WHERE body LIKE '%7%') TO STDOUT`,
    'COPY (SELECT id, body FROM ev) TO STDOUT (FORMAT binary)',
    'COPY ev (body, id) TO STDOUT (FORMAT csv, HEADER)',
    'COPY (SELECT nope FROM ev) TO STDOUT',
  ]) {
    const out = await both([{ bytes: Buffer.concat([parseBindExecute(sql), frontend.sync()]), until: 'Z' }]);
    assert.deepEqual(out.weave, out.plain, sql);
    if (/header/i.test(sql)) assert.equal(out.weaveData[0], out.plainData[0], `${sql}: the header first`);
    // Binary: one header (PostgreSQL sends it with the first row), one trailer (last); the rows between in any order.
    const rowsOf = (data: string[]) => (/binary/i.test(sql) ? [data[0]!.slice(0, 19), data[0]!.slice(19), ...data.slice(1)].filter((d) => d !== '') : data);
    const [w, p] = [rowsOf(out.weaveData), rowsOf(out.plainData)];
    if (/binary/i.test(sql)) {
      assert.equal(w[0], p[0], `${sql}: binary header`);
      assert.equal(w.at(-1), p.at(-1), `${sql}: binary trailer`);
    }
    assert.deepEqual([...w].sort(), [...p].sort(), sql);
  }
  // The session goes on: a statement after the streamed COPY in the same connection.
  const after = await both([{ bytes: frontend.query('SELECT count(*) FROM ev'), until: 'Z' }]);
  assert.deepEqual(after.weave, after.plain);
});
