/**
 * COPY … FROM STDIN into distributed and reference tables, against a plain
 * PostgreSQL running the very same streams: every format and option (text
 * with escapes, other delimiters and NULL strings, CRLF, the `\.` marker, a
 * last line without newline; CSV with HEADER / HEADER MATCH, quotes,
 * newlines inside quotes, QUOTE/ESCAPE, FORCE_NOT_NULL / FORCE_NULL; binary;
 * WHERE; ENCODING, with LATIN1 distribution values found by lookups),
 * column lists with defaults and sequences evaluated on the coordinator,
 * streams cut at random byte positions, bad rows (the same error, the same
 * CONTEXT line, nothing left), invalid options, COPY inside transaction
 * blocks, CopyFail, and reference tables (every row on every placement).
 * Outcomes (tag or SQLSTATE + message + CONTEXT) and the resulting table
 * contents must be identical.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import type { RawConnection } from '../server/raw-protocol.js';
import { copyIn, type CopyOutcome, cut, outcomeSummary, rawQuery, type SideBySide, startSideBySide, tableRows, textClient } from './support.js';

let cluster: TestCluster;
let weave: pg.Client;
let reference: pg.Client;
let weaveRaw: RawConnection;
let plainRaw: RawConnection;

const SCHEMA = `
CREATE TABLE events (
  tenant_id int NOT NULL,
  id bigserial,
  kind text NOT NULL DEFAULT 'click',
  payload jsonb,
  amount numeric(10,2),
  at timestamptz DEFAULT '2024-01-01 00:00:00+00',
  note text,
  PRIMARY KEY (tenant_id, id)
);
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL, population bigint);
CREATE TABLE keyed (k text NOT NULL DEFAULT 'fixed-key', v int);
CREATE TABLE by_uuid (u uuid NOT NULL, n int);
`;

let sides: SideBySide;

before(async () => {
  sides = await startSideBySide(SCHEMA, 6, [
    `SELECT create_distributed_table('events', 'tenant_id')`,
    `SELECT create_reference_table('countries')`,
    `SELECT create_distributed_table('keyed', 'k')`,
    `SELECT create_distributed_table('by_uuid', 'u')`,
  ]);
  ({ cluster, weave, reference, weaveRaw, plainRaw } = sides);
});

after(async () => {
  await sides?.stop();
});

async function reset(): Promise<void> {
  for (const c of [weave, reference]) {
    await c.query('TRUNCATE events, countries, keyed, by_uuid');
    await c.query(`SELECT setval('events_id_seq', 1, false)`);
  }
}

/** Runs one COPY stream on both systems; asserts equal outcomes and equal tables. */
async function same(sql: string, data: Buffer | Buffer[], opts: { seed?: number; tables?: string[]; fail?: string } = {}): Promise<CopyOutcome> {
  await reset();
  const whole = Array.isArray(data) ? Buffer.concat(data) : data;
  const expected = await copyIn(plainRaw, sql, [whole], { fail: opts.fail });
  const chunks = Array.isArray(data) ? data : cut(data, opts.seed ?? 1);
  const actual = await copyIn(weaveRaw, sql, chunks, { fail: opts.fail });
  assert.equal(outcomeSummary(actual), outcomeSummary(expected), `outcome of ${sql}`);
  assert.equal(actual.status, expected.status);
  for (const t of opts.tables ?? ['events', 'countries', 'keyed', 'by_uuid']) {
    assert.deepEqual(await tableRows(weave, t), await tableRows(reference, t), `contents of ${t} after ${sql}`);
  }
  return actual;
}

const b = (s: string) => Buffer.from(s, 'utf8');

function eventRows(n: number, start = 0): string {
  let s = '';
  for (let i = start; i < start + n; i++) {
    const note = i % 7 === 0 ? '\\N' : i % 5 === 0 ? `tab\\there\\\\back\\nnew \\101\\x42 ü` : `note ${i}`;
    s += `${i % 23}\t${i + 1}\t${i % 3 === 0 ? 'view' : 'click'}\t{"i": ${i}, "s": "x\\\\ty"}\t${(i * 1.25).toFixed(2)}\t2024-03-0${1 + (i % 9)} 10:00:00+00\t${note}\n`;
  }
  return s;
}

test('text format: escapes, NULLs, every column, stream cut at random positions', async () => {
  const out = await same('COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN', b(eventRows(400)), { seed: 7 });
  assert.equal(out.tag, 'COPY 400');
  assert.equal(out.columns, 7);
});

test('text format without a column list, and one byte per CopyData message', async () => {
  const data = b(eventRows(30));
  await same('COPY events FROM STDIN', data.toString().split('').map((ch) => b(ch)));
});

test('text format: columns left out get defaults; the sequence is evaluated on the coordinator', async () => {
  let s = '';
  for (let i = 0; i < 250; i++) s += `${i % 11}\t{"n": ${i}}\t${i % 4 === 0 ? '\\N' : `n${i}`}\n`;
  const out = await same('COPY events (tenant_id, payload, note) FROM STDIN', b(s), { seed: 3 });
  assert.equal(out.tag, 'COPY 250');
  // the ids are the sequence's, in row order, and the next value continues after them
  const next = await weave.query(`SELECT nextval('events_id_seq')`);
  assert.equal(next.rows[0].nextval, '251');
});

test('text format: DELIMITER, NULL, CRLF line ends, end marker, a last line without newline', async () => {
  const rows = ['1|2|view|NULL|1.50|NULL|a\\|b', '2|3|click|{}|NULL|2024-01-02 00:00:00+00|NULL'];
  await same(`COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN WITH (DELIMITER '|', NULL 'NULL')`, b(rows.join('\r\n') + '\r\n'));
  await same(`COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN (DELIMITER '|', NULL 'NULL')`, b(rows.join('\n') + '\n\\.\n'));
  await same(`COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN WITH DELIMITER '|' NULL 'NULL'`, b(rows.join('\n')));
  // a data newline escaped by a backslash
  await same('COPY events (tenant_id, id, note) FROM STDIN', b('4\t1\tline one\\\nline two\n5\t2\tplain\n'));
});

test('WHERE and ENCODING: the same rows and counts as PostgreSQL', async () => {
  const out = await same('COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN WHERE tenant_id % 2 = 0 AND note IS NOT NULL', b(eventRows(300)), { seed: 5 });
  assert.match(out.tag ?? '', /^COPY \d+$/);
  assert.notEqual(out.tag, 'COPY 300');
  // a bad value in a row the WHERE clause leaves out still fails, as in PostgreSQL
  await same('COPY events (tenant_id, id, note) FROM STDIN WHERE tenant_id > 100', b('1\t1\tok\n2\tx\tbad\n'));
  // LATIN1 bytes: the shards convert them as PostgreSQL would
  await same(`COPY events (tenant_id, id, note) FROM STDIN (ENCODING 'LATIN1')`, Buffer.from('1\t1\tgr\xfcn\n2\t2\tplain \xe9\n', 'latin1'));
  assert.equal((await weave.query('SELECT note FROM events WHERE id = 1')).rows[0].note, 'grün');
  // a LATIN1 distribution value lands in the shard its UTF-8 text hashes to, where lookups find it
  await same(`COPY keyed FROM STDIN (ENCODING 'LATIN1')`, Buffer.from('gr\xfcn\t1\nplain\t2\n\xe9t\xe9\t3\n', 'latin1'));
  for (const [k, v] of [['grün', '1'], ['plain', '2'], ['été', '3']]) {
    assert.deepEqual((await weave.query('SELECT v FROM keyed WHERE k = $1', [k])).rows, [{ v }], `lookup of ${k}`);
  }
});

test('CSV: HEADER, quotes, delimiters and newlines inside quotes, doubled quotes', async () => {
  let s = 'tenant_id,id,kind,payload,amount,at,note\n';
  for (let i = 0; i < 300; i++) {
    const note = i % 4 === 0 ? '"multi\nline, with ""quotes"""' : i % 4 === 1 ? '' : i % 4 === 2 ? '""' : `plain ${i}`;
    s += `${i % 17},${i + 1},${i % 2 ? 'view' : '"cl""ick"'},"{""k"": ${i}}",${i}.5,2024-05-05 01:02:03+00,${note}\n`;
  }
  const out = await same('COPY events FROM STDIN WITH (FORMAT csv, HEADER true)', b(s), { seed: 11 });
  assert.equal(out.tag, 'COPY 300');
  await same('COPY events FROM STDIN CSV HEADER', b(s), { seed: 12 });
  await same('COPY events FROM STDIN (FORMAT csv, HEADER MATCH)', b(s), { seed: 13 });
  await same('COPY events FROM STDIN (FORMAT csv, HEADER MATCH)', b(s.replace('tenant_id,id', 'tenant,id')));
  await same('COPY events FROM STDIN (FORMAT csv, HEADER MATCH)', b(s.replace('tenant_id,id,', 'tenant_id,')));
});

test('CSV: QUOTE, ESCAPE, NULL, FORCE_NOT_NULL, FORCE_NULL, quoted distribution values, CRLF', async () => {
  const s = [
    `'7';1;'it\\'s';NA;NA;NA;NA`,
    `8;2;click;NA;'3.25';NA;''`,
    `'9';3;'NA';NA;NA;NA;'semi;colon\r\nand newline'`,
    `10;4;NA;NA;NA;NA;'NA'`,
  ].join('\r\n') + '\r\n';
  await same(`COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN WITH (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'NA', FORCE_NOT_NULL (kind), FORCE_NULL (note))`, b(s));
  await same(`COPY keyed (k, v) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (k))`, b(',1\n"",2\nx,3\n'));
});

test('binary format, generated by PostgreSQL itself', async () => {
  await reset();
  await reference.query(`INSERT INTO events (tenant_id, id, kind, payload, amount, at, note)
    SELECT i % 13, i, CASE WHEN i % 2 = 0 THEN 'view' ELSE 'click' END, jsonb_build_object('i', i), i * 0.5,
           '2024-01-01'::timestamptz + i * interval '1 hour', CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
    FROM generate_series(1, 500) i`);
  const dump = await rawQuery(plainRaw, 'COPY events (tenant_id, id, kind, payload, amount, at, note) TO STDOUT (FORMAT binary)');
  assert.ok(dump.ok);
  const out = await same('COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN (FORMAT binary)', dump.data, { seed: 5 });
  assert.equal(out.tag, 'COPY 500');
  assert.equal(out.format, 1);
  // binary with a column left out: the sequence value is appended in binary form
  const partial = (await rawQuery(plainRaw, 'COPY (SELECT tenant_id, note FROM events ORDER BY id LIMIT 50) TO STDOUT (FORMAT binary)')).data;
  await same('COPY events (tenant_id, note) FROM STDIN (FORMAT binary)', partial, { seed: 6 });
  // binary by a uuid column, and a broken signature
  const uuids = (await rawQuery(plainRaw, `COPY (SELECT md5(i::text)::uuid, i FROM generate_series(1, 40) i) TO STDOUT (FORMAT binary)`)).data;
  await same('COPY by_uuid FROM STDIN (FORMAT binary)', uuids, { seed: 8 });
  await same('COPY by_uuid FROM STDIN (FORMAT binary)', b('not a binary copy file at all'));
});

test('a bad row in the middle: the same error and line as PostgreSQL, and nothing of the COPY remains', async () => {
  const good = eventRows(600);
  const lines = good.split('\n');
  lines[317] = lines[317].replace(/\t[0-9.]+\t2024/, '\tnot-a-number\t2024');
  const out = await same('COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN', b(lines.join('\n')), { seed: 9 });
  assert.equal(out.error?.code, '22P02');
  assert.match(out.error?.where ?? '', /^COPY events, line 318, column amount: "not-a-number"/);
  assert.equal((await weave.query('SELECT count(*) FROM events')).rows[0].count, '0');
  // in the distribution column (hashed by the coordinator PostgreSQL, which rejects it)
  lines[317] = good.split('\n')[317].replace(/^\d+/, 'x12');
  const bad = await same('COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN', b(lines.join('\n')));
  assert.equal(bad.error?.where, 'COPY events, line 318, column tenant_id: "x12"');
  // a duplicate key, a missing column, extra data, a NOT NULL violation
  await same('COPY events (tenant_id, id, note) FROM STDIN', b('1\t1\ta\n2\t2\tb\n1\t1\tagain\n'));
  await same('COPY events (tenant_id, id, note) FROM STDIN', b('1\t1\ta\n2\t2\n'));
  await same('COPY events (tenant_id, id, note) FROM STDIN', b('1\t1\ta\n2\t2\tb\tc\n'));
  await same('COPY events (tenant_id, id, kind) FROM STDIN', b('1\t1\tview\n2\t2\t\\N\n'));
  await same('COPY events (tenant_id, note) FROM STDIN', b('1\ta\n2\n'));
  await same('COPY events (tenant_id, note) FROM STDIN', b('1\ta\n2\tb\tc\n'));
});

test('invalid statements fail with PostgreSQL\'s error before any data', async () => {
  await same(`COPY events FROM STDIN (FORMAT csv, DELIMITER '||')`, b(''));
  await same(`COPY events FROM STDIN (FORMAT binary, HEADER)`, b(''));
  await same(`COPY events FROM STDIN (FORCE_NOT_NULL (note))`, b(''));
  await same(`COPY events (tenant_id, nope) FROM STDIN`, b(''));
  await same(`COPY events (tenant_id, tenant_id) FROM STDIN`, b(''));
  await same(`COPY events FROM STDIN (bogus_option 1)`, b(''));
  await same(`COPY events FROM STDIN (FORMAT csv, QUOTE 'ab')`, b(''));
});

test('CopyFail from the client: PostgreSQL\'s error, nothing remains', async () => {
  await same('COPY events (tenant_id, id, note) FROM STDIN', b(eventRows(50).split('\n').map((l) => l.split('\t').slice(0, 2).join('\t') + '\tx').join('\n')), { fail: 'client gave up' });
});

test('the distribution column left out: its default decides the shard; without one the COPY is refused', async () => {
  await same('COPY keyed (v) FROM STDIN', b('1\n2\n3\n'));
  const rows = await weave.query(`SELECT count(*) FROM keyed WHERE k = 'fixed-key'`);
  assert.equal(rows.rows[0].count, '3');
  const refused = await copyIn(weaveRaw, 'COPY events (id, note) FROM STDIN', [b('1\ta\n')]);
  assert.equal(refused.error?.code, '23502');
  assert.match(refused.error!.message, /partition column/);
  const nul = await copyIn(weaveRaw, 'COPY keyed (k, v) FROM STDIN', [b('a\t1\n\\N\t2\n')]);
  assert.equal(nul.error?.code, '23502');
  assert.equal(nul.error?.where, 'COPY keyed, line 2');
  assert.equal((await weave.query('SELECT count(*) FROM keyed')).rows[0].count, '3');
});

test('reference tables: every row reaches every placement', async () => {
  let s = '';
  for (let i = 0; i < 120; i++) s += `c${i}\tCountry ${i}\t${i * 1000}\n`;
  const out = await same('COPY countries FROM STDIN', b(s), { seed: 4 });
  assert.equal(out.tag, 'COPY 120');
  for (const w of cluster.workers) {
    const direct = await textClient(`postgres://postgres:${encodeURIComponent(cluster.password)}@${w.host}:${w.port}/postgres`);
    try {
      const shard = await direct.query(`SELECT relname FROM pg_class WHERE relname LIKE 'countries\\_%' AND relkind = 'r'`);
      const n = await direct.query(`SELECT count(*) FROM ${shard.rows[0].relname}`);
      assert.equal(n.rows[0].count, '120', `placement on ${w.port}`);
    } finally {
      await direct.end();
    }
  }
  await same('COPY countries FROM STDIN', b('a\tA\t1\na\tB\t2\n'));
});

test('inside transaction blocks: committed with the block, rolled back with it, an error fails the block', async () => {
  for (const c of [weave, reference]) await c.query('TRUNCATE events');
  const run = async (raw: RawConnection) => {
    const log: string[] = [];
    const q = async (sql: string) => log.push(outcomeSummary(await rawQuery(raw, sql)));
    const cp = async (sql: string, data: string) => {
      const o = await copyIn(raw, sql, [b(data)]);
      log.push(`${outcomeSummary(o)} ${o.status}`);
    };
    await q('BEGIN');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '1\t100\tin block\n2\t101\tin block\n');
    await q(`INSERT INTO events (tenant_id, id, note) VALUES (3, 102, 'insert')`);
    await q('COMMIT');
    await q('BEGIN');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '4\t103\trolled back\n5\t104\trolled back\n');
    await q('ROLLBACK');
    await q('BEGIN');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '6\t105\tok\n7\t106\tok\n');
    await q('SAVEPOINT s1');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '8\t107\tok\n1\t100\tduplicate\n');
    await q('SELECT 1');
    await q('ROLLBACK TO SAVEPOINT s1');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '9\t108\tafter savepoint\n');
    await q('COMMIT');
    await q('BEGIN');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '10\t109\tok\n');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '11\t110\tbad\\x\tmore\n');
    await q('COMMIT');
    await q('BEGIN');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '12\t111\tok\n');
    // a distribution value only PostgreSQL can judge: its error and line, and the block fails
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '13\t112\tok\nx12\t113\tbad key\n');
    await cp('COPY events (tenant_id, id, note) FROM STDIN', '14\t114\tafter\n');
    await q('ROLLBACK');
    return log;
  };
  const expected = await run(plainRaw);
  const actual = await run(weaveRaw);
  assert.deepEqual(actual, expected);
  assert.deepEqual(await tableRows(weave, 'events'), await tableRows(reference, 'events'));
});

test('a row larger than a shard batch, and a large stream', async () => {
  const big = 'x'.repeat(3 << 20);
  await same('COPY events (tenant_id, id, note) FROM STDIN', b(`1\t1\t${big}\n2\t2\tsmall\n1\t3\t${big}y\n`), { tables: [] });
  assert.equal((await weave.query('SELECT sum(length(note)) FROM events')).rows[0].sum, String(2 * (3 << 20) + 1 + 5));
  const many = b(eventRows(40_000));
  const chunks: Buffer[] = [];
  for (let i = 0; i < many.length; i += 65536) chunks.push(many.subarray(i, i + 65536));
  await same('COPY events (tenant_id, id, kind, payload, amount, at, note) FROM STDIN', chunks);
});
