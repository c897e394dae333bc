/**
 * The COPY stream readers on their own (no server): row boundaries and
 * field values of text, CSV and binary streams, as PostgreSQL reads them —
 * escaped newlines, quoted newlines, QUOTE/ESCAPE, NULL strings,
 * FORCE_NOT_NULL / FORCE_NULL, CR and CRLF line ends, the end marker — and
 * the option reading that decides what the shards' COPYs get.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initParser, parseSql } from '../../src/sql/parse.js';
import { readCopyOptions } from '../../src/commands/copy/copy-options.js';
import { BinaryRowReader, makeLineReader, type RowReader } from '../../src/commands/copy/copy-rows.js';
import { numericText } from '../../src/commands/copy/binary-values.js';

async function options(sql: string) {
  await initParser();
  return readCopyOptions(parseSql(sql).stmts[0].stmt.CopyStmt);
}

/** Splits a whole stream into rows and reads every field of each. */
function rows(reader: RowReader, data: string, columns: string[]): Array<Array<string | null>> {
  const buf = Buffer.from(data, 'utf8');
  const out: Array<Array<string | null>> = [];
  let pos = 0;
  while (pos < buf.length) {
    let end = reader.rowEnd(buf, pos);
    if (end < 0) end = buf.length;
    const ce = reader.contentEnd(buf, pos, end);
    if (reader.isEndMarker(buf, pos, ce)) break;
    out.push(reader.fields(buf, pos, ce, columns));
    pos = end;
  }
  return out;
}

test('text: escapes, NULL, backslash-escaped newlines and delimiters, end marker', async () => {
  const r = makeLineReader(await options('COPY t FROM STDIN'));
  assert.deepEqual(rows(r, 'a\\tb\t\\N\tc\\\\d\n\\101\\x42\\n\t\\\t\tx\\\ny\n\\.\nignored\n', ['a', 'b', 'c']), [
    ['a\tb', null, 'c\\d'],
    ['AB\n', '\t', 'x\ny'],
  ]);
  const pipe = makeLineReader(await options(`COPY t FROM STDIN WITH (DELIMITER '|', NULL 'NULL')`));
  assert.deepEqual(rows(pipe, '1|NULL|a\\|b\n2||\\N\n', ['a', 'b', 'c']), [
    ['1', null, 'a|b'],
    ['2', '', 'N'],
  ]);
});

test('text: CRLF and CR line ends, a last line without terminator', async () => {
  const crlf = makeLineReader(await options('COPY t FROM STDIN'));
  assert.deepEqual(rows(crlf, '1\ta\r\n2\tb\r\n3\tc', ['x', 'y']), [['1', 'a'], ['2', 'b'], ['3', 'c']]);
  const cr = makeLineReader(await options('COPY t FROM STDIN'));
  assert.deepEqual(rows(cr, '1\ta\r2\tb\r', ['x', 'y']), [['1', 'a'], ['2', 'b']]);
  assert.equal(cr.terminator().toString(), '\r');
});

test('CSV: quotes, doubled quotes, newlines and delimiters inside quotes, NULL rules', async () => {
  const r = makeLineReader(await options('COPY t FROM STDIN CSV'));
  assert.deepEqual(rows(r, '1,"a,b","say ""hi"""\n2,,""\n3,"multi\nline",x\n', ['a', 'b', 'c']), [
    ['1', 'a,b', 'say "hi"'],
    ['2', null, ''],
    ['3', 'multi\nline', 'x'],
  ]);
  const custom = makeLineReader(await options(`COPY t FROM STDIN (FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'NA', FORCE_NOT_NULL (b), FORCE_NULL (c))`));
  assert.deepEqual(rows(custom, `'it\\'s';NA;'NA'\nNA;'x';NA\n`, ['a', 'b', 'c']), [
    ["it's", 'NA', null],
    [null, 'x', null],
  ]);
});

test('options: what the shards get, what PostgreSQL validates', async () => {
  const o = await options(`COPY t FROM STDIN WITH (FORMAT csv, HEADER MATCH, FREEZE, QUOTE '"', FORCE_NOT_NULL (a, "B"))`);
  assert.equal(o.header, true);
  assert.equal(o.headerMatch, true);
  assert.equal(o.shardOptions, ` WITH (FORMAT csv, QUOTE '"', FORCE_NOT_NULL ("a", "B"))`);
  assert.equal(o.validationOptions, ` WITH (HEADER MATCH, FORMAT csv, QUOTE '"', FORCE_NOT_NULL ("a", "B"))`);
  const bad = await options(`COPY t FROM STDIN (force_quote (a), bogus 'x')`);
  assert.equal(bad.invalid, true);
  assert.match(bad.validationOptions, /"force_quote" \("a"\), "bogus" 'x'/);
});

test('binary: header, tuples split anywhere, NULL fields, trailer; numeric values as text', () => {
  const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
  const tuple = (fields: Array<Buffer | null>) => {
    const parts: Buffer[] = [Buffer.alloc(2)];
    parts[0].writeInt16BE(fields.length);
    for (const f of fields) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(f === null ? -1 : f.length);
      parts.push(len, ...(f ? [f] : []));
    }
    return Buffer.concat(parts);
  };
  const int4 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return b;
  };
  const stream = Buffer.concat([header, tuple([int4(7), Buffer.from('seven')]), tuple([int4(8), null]), Buffer.from([0xff, 0xff])]);
  const r = new BinaryRowReader();
  assert.equal(r.readHeader(stream.subarray(0, 10), 0), -1);
  assert.equal(r.readHeader(Buffer.from('nonsense!!!!!!!!!!!!!'), 0), -2);
  let pos = r.readHeader(stream, 0);
  assert.equal(pos, 19);
  const first = r.rowEnd(stream, pos);
  assert.equal(r.rowEnd(stream.subarray(0, first - 1), pos), -1);
  assert.deepEqual(r.field(stream, pos, 0), [pos + 6, pos + 10]);
  pos = first;
  assert.equal(r.field(stream, pos, 1), null);
  assert.equal(r.field(stream, pos, 2), undefined);
  pos = r.rowEnd(stream, pos);
  assert.equal(r.rowEnd(stream, pos), stream.length);
  assert.equal(r.ended, true);
  // numeric_send: 12345.678 = digits [1, 2345, 6780], weight 1, dscale 3
  const n = Buffer.alloc(14);
  n.writeInt16BE(3, 0);
  n.writeInt16BE(1, 2);
  n.writeUInt16BE(0, 4);
  n.writeInt16BE(3, 6);
  n.writeInt16BE(1, 8);
  n.writeInt16BE(2345, 10);
  n.writeInt16BE(6780, 12);
  assert.equal(numericText(n, 0, n.length), '12345.678');
  const small = Buffer.alloc(10);
  small.writeInt16BE(1, 0);
  small.writeInt16BE(-2, 2);
  small.writeUInt16BE(0x4000, 4);
  small.writeInt16BE(8, 6);
  small.writeInt16BE(5, 8);
  assert.equal(numericText(small, 0, small.length), '-0.00000005');
});
