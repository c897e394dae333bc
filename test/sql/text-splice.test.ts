/**
 * Text splices and their positions (src/sql/text-splice.ts): the spliced
 * text, and each 1-based character position in it told as one in the
 * client's text — before, inside and after spliced spans, through two
 * layers, with multi-byte characters (UTF-8 of two, three and four bytes,
 * the last a surrogate pair in JavaScript) before and inside the spans, as
 * PostgreSQL counts positions in characters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spliceText, byteOffsetOfChar, charCountOf } from '../../src/sql/text-splice.js';

/** The 1-based character position of `needle`'s n-th occurrence in `text`. */
function positionOf(text: string, needle: string, nth = 0): number {
  let at = -1;
  for (let i = 0; i <= nth; i++) at = text.indexOf(needle, at + 1);
  assert.ok(at >= 0, `${needle} in ${text}`);
  return Array.from(text.slice(0, at)).length + 1;
}

function bytesAt(text: string, needle: string): { at: number; len: number } {
  const i = text.indexOf(needle);
  return { at: Buffer.byteLength(text.slice(0, i)), len: Buffer.byteLength(needle) };
}

test('positions before, inside and after the splices of non-ASCII text map back', () => {
  const client = `SELECT 'é🙂' FROM tâble t JOIN ü USING (k) WHERE nocol = 'ß'`;
  const edits = [
    { ...bytesAt(client, 'tâble'), sql: '"public"."tâble_102008"' },
    { ...bytesAt(client, 'ü'), sql: '"public"."ü_102009" AS "ü"' },
  ];
  const spliced = spliceText(Buffer.from(client), edits);
  assert.equal(spliced.sql, `SELECT 'é🙂' FROM "public"."tâble_102008" t JOIN "public"."ü_102009" AS "ü" USING (k) WHERE nocol = 'ß'`);
  for (const word of ['SELECT', `'é🙂'`, ' t ', 'JOIN', 'USING', 'nocol', `'ß'`]) {
    assert.equal(spliced.clientPosition(positionOf(spliced.sql, word)), positionOf(client, word), word);
  }
  // Inside a spliced name: the start of the name the client wrote there.
  assert.equal(spliced.clientPosition(positionOf(spliced.sql, '_102008')), positionOf(client, 'tâble'));
  assert.equal(spliced.clientPosition(positionOf(spliced.sql, 'AS "ü"')), positionOf(client, 'ü'));
  // Past the end stays past the end.
  assert.equal(spliced.clientPosition(Array.from(spliced.sql).length + 1), Array.from(client).length + 1);
});

test('two layers: a splice of a splice maps to the first source', () => {
  const client = `INSERT INTO t VALUES (now(), 'ä', CURRENT_DATE, nocol)`;
  const first = spliceText(Buffer.from(client), [
    { ...bytesAt(client, 'now()'), sql: `('2026-01-01 00:00:00+00'::pg_catalog.timestamptz)` },
    { ...bytesAt(client, 'CURRENT_DATE'), sql: `(CAST('2026-01-01 00:00:00+00'::pg_catalog.timestamptz AS pg_catalog.date))` },
  ]);
  const t = first.sql.indexOf(' t ') + 1;
  const second = spliceText(first, [{ at: Buffer.byteLength(first.sql.slice(0, t)), len: 1, sql: '"public"."t_102010" AS "t"' }]);
  assert.equal(second.clientText.toString(), client);
  assert.ok(second.sql.startsWith('INSERT INTO "public"."t_102010" AS "t" VALUES (('));
  for (const word of ['VALUES', `'ä'`, 'nocol']) assert.equal(second.clientPosition(positionOf(second.sql, word)), positionOf(client, word), word);
  assert.equal(second.clientPosition(positionOf(second.sql, 'AS pg_catalog.date')), positionOf(client, 'CURRENT_DATE'));
});

test('overlapping edits: the later one is skipped', () => {
  const spliced = spliceText(Buffer.from('abcdef'), [{ at: 1, len: 3, sql: 'X' }, { at: 2, len: 1, sql: 'Y' }, { at: 4, len: 1, sql: 'Z' }]);
  assert.equal(spliced.sql, 'aXZf');
  assert.equal(spliced.clientPosition(4), 6);
});

test('characters and bytes of UTF-8', () => {
  const b = Buffer.from('aé🙂b');
  assert.equal(byteOffsetOfChar(b, 0), 0);
  assert.equal(byteOffsetOfChar(b, 2), 3);
  assert.equal(byteOffsetOfChar(b, 3), 7);
  assert.equal(byteOffsetOfChar(b, 9), b.length);
  assert.equal(charCountOf(b, 7), 3);
  assert.equal(charCountOf(b, b.length), 4);
});
