/**
 * Error positions point into the client's text. An ErrorResponse's position
 * ('P', a 1-based character index into the client's query string, which psql
 * turns into `LINE 1: …` and a caret) that a worker raises is an index into
 * the text pgweave sent it: the client's statement with shard names spliced
 * in. The session maps it back (session/error-positions.ts); where the text a
 * node ran is not a splice of the client's (a deparsed query), the position
 * is left out, as PostgreSQL leaves it out of errors that have none.
 *
 * Every statement runs on a plain PostgreSQL with the same schema too, and
 * the error must match field for field — SQLSTATE, message, position,
 * internal position and query, and the psql-style LINE/caret rendering —
 * over simple and extended protocol, with pipelined channels off and on.
 * A multi-shard query matches PostgreSQL's position (its tasks' texts are
 * splices of the client's), and so does a pulled query failing in the
 * coordinator's final query (a splice too); a pulled query failing in the
 * shards' pull queries and a pushdown (texts pgweave deparsed) have none.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startPipeliningPair, textClient, type PipeliningPair } from './support.js';

let pair: PipeliningPair;
let plain: TestPostgres;
let reference: pg.Client;
const weave: Record<'off' | 'on', pg.Client> = {} as Record<'off' | 'on', pg.Client>;

const SCHEMA = `
  CREATE TABLE items (tenant_id int NOT NULL, id int NOT NULL, name text, qty int, PRIMARY KEY (tenant_id, id));
  CREATE TABLE "données" (tenant_id int NOT NULL, "clé" int NOT NULL, valeur text);
  CREATE TABLE plans (plan_id int PRIMARY KEY, label text);
  CREATE TABLE notes (note_id int PRIMARY KEY, body text);
  INSERT INTO items VALUES (1, 1, 'a', 1), (2, 1, 'b', 2);
  INSERT INTO "données" VALUES (1, 1, 'é');
  INSERT INTO plans VALUES (1, 'basic');
  INSERT INTO notes VALUES (1, 'n');
  CREATE FUNCTION bad_sum(a int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT a + 'x'::int); END $$;`;

before(async () => {
  [pair, plain] = await Promise.all([startPipeliningPair(), startTestPostgres()]);
  reference = await textClient(plain.url);
  await reference.query(SCHEMA);
  await pair.admin.query(SCHEMA);
  await pair.admin.query(`SELECT create_distributed_table('items', 'tenant_id', shard_count => 4)`);
  await pair.admin.query(`SELECT create_distributed_table('"données"', 'tenant_id', colocate_with => 'items')`);
  await pair.admin.query(`SELECT create_reference_table('plans')`);
  weave.off = await textClient(pair.urls.off);
  weave.on = await textClient(pair.urls.on);
});

after(async () => {
  for (const c of [weave.off, weave.on, reference]) await c?.end().catch(() => {});
  await Promise.all([pair?.stop(), plain?.stop()]);
});

const FIELDS = ['code', 'message', 'position', 'internalPosition', 'internalQuery', 'where'] as const;

/** psql's rendering of a position: the statement's line holding it and a caret under the character. */
function caret(sql: string, position: string | undefined): string | null {
  if (position === undefined) return null;
  const chars = Array.from(sql);
  const at = Number(position) - 1;
  const lineStart = chars.lastIndexOf('\n', at - 1) + 1;
  let lineEnd = chars.indexOf('\n', at);
  if (lineEnd < 0) lineEnd = chars.length;
  const line = chars.slice(lineStart, lineEnd).join('');
  const lineNo = chars.slice(0, lineStart).filter((c) => c === '\n').length + 1;
  const prefix = `LINE ${lineNo}: `;
  return `${prefix}${line}\n${' '.repeat(prefix.length + at - lineStart)}^`;
}

type Protocol = 'simple' | 'extended';

async function errorOf(c: pg.Client, sql: string, protocol: Protocol, block = false): Promise<Record<string, string | null | undefined>> {
  if (block) await c.query('BEGIN');
  try {
    // A named statement goes through Parse/Bind/Execute even without parameters.
    await c.query(protocol === 'simple' ? sql : { name: `s${Math.abs(hashOf(sql))}`, text: sql });
  } catch (e) {
    const err = e as Record<string, string | undefined>;
    return { ...Object.fromEntries(FIELDS.map((f) => [f, err[f]])), caret: caret(sql, err.position) };
  } finally {
    if (block) await c.query('ROLLBACK');
  }
  assert.fail(`no error from: ${sql}`);
}

function hashOf(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return h;
}

async function samePosition(sql: string, protocol: Protocol, block = false): Promise<void> {
  const expected = await errorOf(reference, sql, protocol, block);
  assert.ok(expected.position !== undefined || expected.internalPosition !== undefined, `plain PostgreSQL's position for ${sql}`);
  for (const mode of ['off', 'on'] as const) {
    const actual = await errorOf(weave[mode], sql, protocol, block);
    assert.deepEqual(actual, expected, `${protocol}, pipelining ${mode}: ${sql}`);
  }
}

/** The error PostgreSQL reports, without its position. */
async function noPosition(sql: string, protocol: Protocol): Promise<void> {
  const expected = await errorOf(reference, sql, protocol);
  assert.notEqual(expected.position, undefined);
  for (const mode of ['off', 'on'] as const) {
    const actual = await errorOf(weave[mode], sql, protocol);
    assert.deepEqual(actual, { ...expected, position: undefined, caret: null }, `${protocol}, pipelining ${mode}: ${sql}`);
  }
}

const ROUTER_CASES: Array<{ what: string; sql: string }> = [
  { what: 'undefined column after the table name in a router SELECT', sql: 'SELECT * FROM items WHERE tenant_id = 1 AND nocol = 2' },
  { what: 'undefined column after the table name in a router UPDATE', sql: 'UPDATE items SET qty = 3 WHERE tenant_id = 1 AND nocol = 2' },
  { what: 'undefined column in a router INSERT … RETURNING', sql: `INSERT INTO items VALUES (1, 9, 'x', 1) RETURNING nocol` },
  { what: 'undefined column after a schema-qualified, aliased join', sql: 'SELECT i.id FROM public.items i JOIN plans p ON p.plan_id = i.qty WHERE i.tenant_id = 1 AND p.nocol = 2' },
  { what: 'a type error in a WHERE on a distributed table', sql: `SELECT * FROM items WHERE tenant_id = 1 AND qty = 'abc'` },
  { what: 'non-ASCII identifiers and literals before the error', sql: `SELECT 'héllo wörld 🙂' AS "naïve", d."clé" FROM "données" d WHERE tenant_id = 1 AND d.valeur = 'é' AND nocol = 2` },
  { what: 'an INSERT with transaction-time values spliced in before the error', sql: `INSERT INTO items (tenant_id, id, name, qty) /* ä */ VALUES (1, 11, CURRENT_TIMESTAMP(3), 'abc')` },
  { what: 'an error inside a function (internal query and position, the function\'s own text)', sql: 'SELECT bad_sum(id) FROM items WHERE tenant_id = 1' },
  { what: 'a second line', sql: `SELECT *\n  FROM "données"\n WHERE tenant_id = 1\n   AND "clé" = 'x'` },
];

for (const protocol of ['simple', 'extended'] as const) {
  for (const c of ROUTER_CASES) {
    test(`${protocol}: ${c.what}`, async () => {
      await samePosition(c.sql, protocol);
    });
  }

  test(`${protocol}: a statement name the session escapes (\`pgws…\` → \`"pgws_…"\`) before the error`, async () => {
    await samePosition(`PREPARE pgwsé AS SELECT 'ü' FROM notes WHERE note_id = 1 AND nocol = 2`, protocol);
  });

  test(`${protocol}: in a transaction block (the session's own links)`, async () => {
    await samePosition(`SELECT 'é', * FROM items WHERE tenant_id = 2 AND nocol = 2`, protocol, true);
    await samePosition(`UPDATE items SET qty = 'x' WHERE tenant_id = 2`, protocol, true);
    await samePosition(`SELECT * FROM "données" WHERE "clé" = 1 AND nocol = 2`, protocol, true);
  });

  test(`${protocol}: a multi-shard query (the position mapped through the tasks' shard names)`, async () => {
    await samePosition(`SELECT * FROM items WHERE nocol = 2`, protocol);
    await samePosition(`SELECT * FROM "données" WHERE valeur = 'é' AND "clé" = 'abc'`, protocol);
  });

  test(`${protocol}: a pulled query failing in the coordinator's final query (the client's text with the pulled tables spliced in): PostgreSQL's position`, async () => {
    await samePosition(`SELECT DISTINCT ON (qty) "name" FROM items WHERE name <> 'ü' ORDER BY qty, nocol`, protocol);
  });

  test(`${protocol}: a pulled query failing in the shards' pull queries (made by pgweave): no position`, async () => {
    await noPosition(`SELECT i.id FROM items i JOIN notes n ON n.note_id = i.id WHERE n.body = 'n' AND i.qty = 'abc'`, protocol);
  });

  test(`${protocol}: a pushdown's deparsed worker query: no position`, async () => {
    await noPosition(`SELECT tenant_id, count(*) FROM items WHERE qty = 'abc' GROUP BY name`, protocol);
  });
}

test('simple: a multi-statement query whose second statement fails counts from the start of the whole string', async () => {
  await samePosition(`SELECT 'é' AS x; SELECT * FROM items WHERE tenant_id = 1 AND nocol = 2`, 'simple');
  await samePosition(`SELECT 1;\nUPDATE "données" SET valeur = 'ü' WHERE tenant_id = 2 AND nocol = 1; SELECT 2`, 'simple');
  // A coordinator table's statement after a distributed one runs on its own text there.
  await samePosition(`SELECT * FROM items WHERE tenant_id = 1; SELECT nocol FROM notes`, 'simple');
  // Statement names the session escapes, before and in the failing statement.
  await samePosition(`PREPARE pgwsa AS SELECT 1; SELECT * FROM items WHERE tenant_id = 1; DEALLOCATE pgwsa; PREPARE pgwsb AS SELECT nocol FROM notes`, 'simple');
  await samePosition(`PREPARE pgwsq(int) AS SELECT $1; EXECUTE pgwsq('abc')`, 'simple');
});
