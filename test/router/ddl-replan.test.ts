/**
 * Worker-side prepared statements after DDL that changes a result type
 * (issue #4). The coordinator prepares statements of its own on worker
 * connections (`pgws<n>` on session links, `pgwc<n>` on pipelined
 * channels), named after their text; after `ALTER TABLE … ADD COLUMN` the
 * shard query's text is the same, and binding the old statement made the
 * worker answer 0A000 "cached plan must not change result type" — to a
 * client that never prepared anything (simple Query or unnamed extended
 * statements), on every connection that held the statement before the DDL.
 *
 * What a client must see is what a plain PostgreSQL shows it, compared here
 * with a plain table on the coordinator's PostgreSQL: simple and unnamed
 * statements re-plan silently and return the new columns — in and outside
 * transaction blocks, in this session and in other sessions whose pooled
 * or channel connections held the statement before the DDL, with the DDL
 * run through this coordinator or through another one. A client's own
 * named statement prepared before the DDL: PostgreSQL answers 0A000, while
 * pgweave plans a client's statement again at the catalog change and
 * returns the new shape (src/session/README.md) — the same on every
 * connection, pipelined or not.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { frontend, rawLogin, type BackendMessage } from '../server/raw-protocol.js';
import { addWorkers, nodeUrl, textClient, startPipeliningPair, type PipeliningPair } from './support.js';

let cluster: TestCluster;
let pair: PipeliningPair | undefined;
let admin: pg.Client;
let plain: pg.Client;
const urls: Record<string, string> = {};
const addresses: Record<string, { host: string; port: number }> = {};
const clients: pg.Client[] = [];

before(async () => {
  pair = await startPipeliningPair();
  ({ cluster, admin } = pair);
  Object.assign(urls, pair.urls);
  Object.assign(addresses, pair.addresses);
  plain = await textClient(nodeUrl(cluster, cluster.coordinatorPg.port));
});

after(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await plain?.end().catch(() => {});
  await pair?.stop();
});

async function client(url: string): Promise<pg.Client> {
  const c = await textClient(url);
  clients.push(c);
  return c;
}

type Outcome = { code: string; message: string } | { fields: string[]; rows: unknown[][] };

/** A statement's outcome: its columns and rows, or its error. `name`: a named (client-prepared) statement. */
async function outcome(c: pg.Client, text: string, values?: unknown[], name?: string): Promise<Outcome> {
  try {
    const r = await c.query({ text, values, name, rowMode: 'array' });
    return { fields: r.fields.map((f) => f.name), rows: r.rows };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { code: e.code ?? String(err), message: e.message ?? '' };
  }
}

/** The same statement through pgweave (table `dist`) and on the plain PostgreSQL (table `local`): equal outcomes. */
async function same(c: pg.Client, text: string, values: unknown[] | undefined, dist: string, local: string): Promise<Outcome> {
  const got = await outcome(c, text.replaceAll('$T', dist), values);
  const want = await outcome(plain, text.replaceAll('$T', local), values);
  assert.deepEqual(got, want, `${text} (${JSON.stringify(values)})`);
  return got;
}

/** A distributed table through pgweave and a plain one on the coordinator's PostgreSQL, with the same rows. */
async function tables(name: string): Promise<{ dist: string; local: string }> {
  const local = `${name}_plain`;
  for (const [c, t] of [[admin, name], [plain, local]] as const) {
    await c.query(`CREATE TABLE ${t} (id bigint PRIMARY KEY, v int NOT NULL)`);
    await c.query(`INSERT INTO ${t} SELECT g, g * 10 FROM generate_series(1, 8) g`);
  }
  await admin.query(`SELECT create_distributed_table('${name}', 'id', shard_count => 4)`);
  return { dist: name, local };
}

/** Runs a DDL statement through `via` (a pgweave coordinator) on `dist`, and on the plain table. */
async function ddl(via: pg.Client, text: string, dist: string, local: string): Promise<void> {
  await via.query(text.replaceAll('$T', dist));
  await plain.query(text.replaceAll('$T', local));
}

/** The column names of a RowDescription. */
function fieldNames(m: BackendMessage): string[] {
  const names: string[] = [];
  let pos = 2;
  for (let i = 0; i < m.body.readInt16BE(0); i++) {
    const end = m.body.indexOf(0, pos);
    names.push(m.body.toString('utf8', pos, end));
    pos = end + 1 + 18;
  }
  return names;
}

const SELECT = 'SELECT * FROM $T WHERE id = $1';
const SIMPLE = 'SELECT * FROM $T WHERE id = 3';

for (const mode of ['off', 'on'] as const) {
  const other = mode === 'off' ? 'on' : 'off';

  test(`pipelining ${mode}: simple and unnamed statements after ADD/DROP COLUMN and ALTER COLUMN TYPE return the new shape`, async () => {
    const { dist, local } = await tables(`ddl_unnamed_${mode}`);
    const c = await client(urls[mode]!);
    // Another session whose connections hold the statements too (a pooled link or the channel).
    const d = await client(urls[mode]!);
    const ddlVia = await client(urls[mode]!);
    const ddlOther = await client(urls[other]!);
    const prime = async (): Promise<void> => {
      for (const s of [c, d]) {
        for (const id of [1, 2, 3, 4, 5, 6, 7, 8]) await same(s, SELECT, [id], dist, local);
        await same(s, SIMPLE, undefined, dist, local);
      }
    };
    const check = async (): Promise<void> => {
      for (const s of [c, d]) {
        for (const id of [1, 2, 3, 4, 5, 6, 7, 8]) await same(s, SELECT, [id], dist, local);
        await same(s, SIMPLE, undefined, dist, local);
        await s.query('BEGIN');
        await same(s, SELECT, [2], dist, local);
        await same(s, SELECT, [7], dist, local);
        await s.query('COMMIT');
      }
    };
    await prime();
    await ddl(ddlVia, 'ALTER TABLE $T ADD COLUMN w text DEFAULT \'x\'', dist, local);
    await check();
    // Through the other coordinator: this one learns of the change by notification.
    await ddl(ddlOther, 'ALTER TABLE $T DROP COLUMN v', dist, local);
    await check();
    await ddl(ddlVia, 'ALTER TABLE $T ALTER COLUMN w TYPE varchar(10)', dist, local);
    await check();
    const last = await same(c, SELECT, [3], dist, local);
    assert.deepEqual(last, { fields: ['id', 'w'], rows: [['3', 'x']] });
  });

  test(`pipelining ${mode}: a transaction block's statements after ADD COLUMN return the new shape`, async () => {
    const { dist, local } = await tables(`ddl_block_${mode}`);
    const c = await client(urls[mode]!);
    await c.query('BEGIN');
    for (const id of [1, 4, 6]) await same(c, SELECT, [id], dist, local);
    await c.query('COMMIT');
    await ddl(admin, 'ALTER TABLE $T ADD COLUMN w int DEFAULT 5', dist, local);
    await c.query('BEGIN');
    for (const id of [1, 4, 6]) await same(c, SELECT, [id], dist, local);
    await same(c, SIMPLE, undefined, dist, local);
    await c.query('COMMIT');
    assert.deepEqual(await outcome(c, SELECT.replace('$T', dist), [4]), { fields: ['id', 'v', 'w'], rows: [['4', '40', '5']] });
  });

  test(`pipelining ${mode}: a client's named statement prepared before ADD COLUMN is planned again (PostgreSQL: 0A000)`, async () => {
    const { dist, local } = await tables(`ddl_named_${mode}`);
    const c = await client(urls[mode]!);
    const q = (t: string, id: number, s: pg.Client = c): Promise<Outcome> => outcome(s, SELECT.replace('$T', t), [id], `byid_${t}`);
    assert.deepEqual(await q(dist, 2), { fields: ['id', 'v'], rows: [['2', '20']] });
    assert.deepEqual(await q(local, 2, plain), { fields: ['id', 'v'], rows: [['2', '20']] });
    await ddl(admin, 'ALTER TABLE $T ADD COLUMN w int DEFAULT 9', dist, local);
    // PostgreSQL refuses the old statement (its result type was fixed at Parse) …
    const refused = await q(local, 2, plain);
    assert.ok('code' in refused && refused.code === '0A000' && /cached plan must not change result type/.test(refused.message), JSON.stringify(refused));
    // … pgweave planned it again at the catalog change: the new shape, on every shard's connection.
    for (const id of [1, 2, 3, 4, 5, 6, 7, 8]) assert.deepEqual(await q(dist, id), { fields: ['id', 'v', 'w'], rows: [[String(id), String(id * 10), '9']] });
    await c.query('BEGIN');
    assert.deepEqual(await q(dist, 5), { fields: ['id', 'v', 'w'], rows: [['5', '50', '9']] });
    await c.query('COMMIT');
  });

  test(`pipelining ${mode}: Describe of a statement prepared before ADD COLUMN shows the new columns, as its Execute returns`, async () => {
    const { dist } = await tables(`ddl_describe_${mode}`);
    const conn = await rawLogin(addresses[mode]!, 'postgres', cluster.password);
    try {
      const describe = async (): Promise<string[]> => {
        conn.write(Buffer.concat([frontend.describe({ type: 'S', name: 's' }), frontend.sync()]));
        const replies = await conn.readUntil('Z');
        const row = replies.find((m) => m.type === 'T');
        assert.ok(row, JSON.stringify(replies.map((m) => m.type)));
        return fieldNames(row);
      };
      const execute = async (id: number): Promise<string[]> => {
        conn.write(Buffer.concat([frontend.bind({ statement: 's', values: [String(id)] }), frontend.describe({ type: 'P', name: '' }), frontend.execute({}), frontend.sync()]));
        const replies = await conn.readUntil('Z');
        const types = replies.map((m) => m.type);
        assert.deepEqual(types, ['2', 'T', 'D', 'C', 'Z']);
        return fieldNames(replies[1]);
      };
      conn.write(Buffer.concat([frontend.parse({ name: 's', text: SELECT.replace('$T', dist), types: [] }), frontend.sync()]));
      await conn.readUntil('Z');
      assert.deepEqual(await describe(), ['id', 'v']);
      assert.deepEqual(await execute(3), ['id', 'v']);
      await admin.query(`ALTER TABLE ${dist} ADD COLUMN w int`);
      assert.deepEqual(await describe(), ['id', 'v', 'w']);
      assert.deepEqual(await execute(3), ['id', 'v', 'w']);
      assert.deepEqual(await execute(6), ['id', 'v', 'w']);
    } finally {
      conn.destroy();
    }
  });

  test(`pipelining ${mode}: a local table's statement in a block with workers after ADD COLUMN returns the new shape`, async () => {
    const { dist, local } = await tables(`ddl_withlocal_${mode}`);
    // A local table lives on the coordinator's PostgreSQL: the plain client reads the same table.
    const loc = `ddl_loc_${mode}`;
    await admin.query(`CREATE TABLE ${loc} (id bigint PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO ${loc} VALUES (1, 10), (2, 20)`);
    const c = await client(urls[mode]!);
    const block = async (): Promise<void> => {
      await c.query('BEGIN');
      await same(c, SELECT, [2], dist, local);
      await same(c, SELECT, [1], loc, loc);
      await c.query('COMMIT');
    };
    await block();
    await admin.query(`ALTER TABLE ${loc} ADD COLUMN w int DEFAULT 7`);
    await block();
  });
}
