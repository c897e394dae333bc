/**
 * A RowDescription field's table OID and column number (what JDBC's
 * ResultSetMetaData and npgsql's GetSchemaTable look up in the pg_class and
 * pg_attribute of the server they talk to) name the coordinator's table
 * and column, never a shard's (whose OID means nothing on the coordinator,
 * or names an unrelated table there) nor one of pgweave's staging tables.
 * Every statement runs through pgweave and on a plain PostgreSQL database
 * loaded with the same schema and rows; each field's (table OID, column
 * number) is resolved through that side's own catalogs to (relname,
 * attname), and both must agree — 0 where PostgreSQL sends 0 (a computed
 * column); inside a transaction block, results the coordinator computes
 * over partial and intermediate results may show 0/0 instead. `users` had a column dropped before it was distributed, so its
 * shards (made later, without it) number its columns differently.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import { frontend, rawLogin, type BackendMessage } from '../server/raw-protocol.js';
import { nodeUrl, textClient, withTextClient, startPipeliningPair, type PipeliningPair } from './support.js';

let cluster: TestCluster;
let pair: PipeliningPair | undefined;
let admin: pg.Client;
/** The plain PostgreSQL: a database of its own on the coordinator's server, reached directly. */
let plain: pg.Client;
let plainUrl: string;
const urls: Record<string, string> = {};
const addresses: Record<string, { host: string; port: number }> = {};

const SCHEMA = [
  'CREATE TABLE users (id bigint PRIMARY KEY, gone int, name text, country text)',
  'ALTER TABLE users DROP COLUMN gone',
  'CREATE TABLE orders (id bigint, user_id bigint, amount int, PRIMARY KEY (user_id, id))',
  'CREATE TABLE items (id bigint PRIMARY KEY, user_id bigint, sku text)',
  'CREATE TABLE countries (code text PRIMARY KEY, cname text)',
  'CREATE TABLE local_notes (gone int, user_id bigint, note text)',
  'ALTER TABLE local_notes DROP COLUMN gone',
];
const DATA = [
  `INSERT INTO users SELECT g, 'user' || g, CASE WHEN g % 2 = 0 THEN 'fr' ELSE 'de' END FROM generate_series(1, 8) g`,
  'INSERT INTO orders SELECT g, (g % 8) + 1, g * 10 FROM generate_series(1, 16) g',
  `INSERT INTO items SELECT g, (g % 8) + 1, 'sku' || g FROM generate_series(1, 12) g`,
  `INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany')`,
  `INSERT INTO local_notes VALUES (1, 'first'), (2, 'second')`,
];

before(async () => {
  pair = await startPipeliningPair();
  ({ cluster, admin } = pair);
  Object.assign(urls, pair.urls);
  Object.assign(addresses, pair.addresses);
  // Relations made straight on the workers first, so worker OIDs are taken by tables the coordinator knows nothing of.
  for (const w of cluster.workers) await withTextClient(nodeUrl(cluster, w.port), (n) => n.query('CREATE TABLE worker_only_padding (a int)'));
  for (const sql of SCHEMA) await admin.query(sql);
  await admin.query(`SELECT create_distributed_table('users', 'id', shard_count => 4)`);
  await admin.query(`SELECT create_distributed_table('orders', 'user_id', colocate_with => 'users')`);
  await admin.query(`SELECT create_distributed_table('items', 'id', shard_count => 3, colocate_with => 'none')`);
  await admin.query(`SELECT create_reference_table('countries')`);
  for (const sql of DATA) await admin.query(sql);
  await withTextClient(nodeUrl(cluster, cluster.coordinatorPg.port), (c) => c.query('CREATE DATABASE plain'));
  plainUrl = nodeUrl(cluster, cluster.coordinatorPg.port).replace(/\/postgres$/, '/plain');
  plain = await textClient(plainUrl);
  for (const sql of [...SCHEMA, ...DATA]) await plain.query(sql);
  // The precondition of the dropped column: a shard numbers users.name otherwise than the coordinator.
  await withTextClient(nodeUrl(cluster, cluster.workers[0]!.port), async (w) => {
    const r = await w.query(`SELECT attnum FROM pg_attribute WHERE attrelid = (SELECT oid FROM pg_class WHERE relname LIKE 'users\\_1%' LIMIT 1) AND attname = 'name'`);
    assert.equal(Number(r.rows[0].attnum), 2);
  });
  const r = await plain.query(`SELECT attnum FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name'`);
  assert.equal(Number(r.rows[0].attnum), 3);
});

after(async () => {
  await plain?.end().catch(() => {});
  await pair?.stop();
});

/** Each field's (table OID, column number) as `relname.attname` through `c`'s own catalogs; '0' for 0/0. */
async function resolve(c: pg.Client, fields: ReadonlyArray<{ tableID: number; columnID: number }>): Promise<string[]> {
  const out: string[] = [];
  for (const f of fields) {
    if (f.tableID === 0 && f.columnID === 0) {
      out.push('0');
      continue;
    }
    const r = await c.query(
      `SELECT c.relname, a.attname FROM pg_catalog.pg_class c
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = $2 AND NOT a.attisdropped
        WHERE c.oid = $1`,
      [f.tableID, f.columnID],
    );
    out.push(r.rows.length === 0 ? `no relation ${f.tableID}` : `${r.rows[0].relname}.${r.rows[0].attname ?? `no column ${f.columnID}`}`);
  }
  return out;
}

/**
 * Runs `sql` through pgweave (client `c`) and on the plain database, and
 * compares the resolved fields. `staged`: the coordinator computes the
 * result over a staging table pgweave does not trace to its source inside a
 * block (partial and intermediate results): each field may also be 0/0 —
 * never another relation, nor a column the plain database does not name.
 */
async function same(c: pg.Client, sql: string, values?: unknown[], options: { name?: string; staged?: boolean } = {}): Promise<void> {
  const expected = await resolve(plain, (await plain.query({ text: sql, values })).fields);
  const actual = await resolve(c, (await c.query({ text: sql, values, name: options.name })).fields);
  assert.deepEqual(actual, options.staged ? actual.map((a, i) => (a === '0' ? '0' : expected[i])) : expected, sql);
}

for (const mode of ['off', 'on'] as const) {
  const withClient = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => withTextClient(urls[mode]!, fn);

  test(`pipelining ${mode}: router reads name the coordinator's table and column numbers`, async () => {
    await withClient(async (c) => {
      await same(c, 'SELECT * FROM users WHERE id = 1');
      await same(c, 'SELECT name, id, country FROM users WHERE id = $1', [2]);
      for (let i = 1; i <= 3; i++) await same(c, 'SELECT country, name FROM users WHERE id = $1', [i], { name: `router_${mode}` });
      await same(c, 'SELECT amount, id FROM orders WHERE user_id = 3');
    });
  });

  test(`pipelining ${mode}: a computed column has table 0 and column 0, as PostgreSQL sends it`, async () => {
    await withClient(async (c) => {
      await same(c, `SELECT id, name || '!' AS shout, 1 AS one, name FROM users WHERE id = 1`);
      await same(c, `SELECT id + 0 AS id, upper(name) FROM users WHERE id = $1`, [1]);
      await same(c, 'SELECT count(*) FROM users');
      await same(c, 'SELECT 1 AS one');
    });
  });

  test(`pipelining ${mode}: multi-shard reads, concatenated, merged and aggregated`, async () => {
    await withClient(async (c) => {
      await same(c, 'SELECT id, name, country FROM users');
      await same(c, 'SELECT name, id FROM users WHERE id > $1', [0]);
      // Merged on the coordinator over partial results.
      await same(c, 'SELECT id, name FROM users ORDER BY id LIMIT 3');
      await same(c, 'SELECT country, count(*) FROM users GROUP BY country ORDER BY country');
      await same(c, 'SELECT DISTINCT country FROM users');
    });
  });

  test(`pipelining ${mode}: a reference table`, async () => {
    await withClient(async (c) => {
      await same(c, 'SELECT * FROM countries');
      await same(c, 'SELECT cname FROM countries WHERE code = $1', ['fr']);
    });
  });

  test(`pipelining ${mode}: joins, co-located and with a reference table`, async () => {
    await withClient(async (c) => {
      await same(c, 'SELECT u.name, o.amount, o.id FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 1 ORDER BY o.id');
      await same(c, 'SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id');
      await same(c, 'SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id ORDER BY o.id');
      await same(c, 'SELECT u.name, k.cname, u.id FROM users u JOIN countries k ON k.code = u.country');
      await same(c, 'SELECT u.name, k.cname, u.id FROM users u JOIN countries k ON k.code = u.country ORDER BY u.id');
    });
  });

  test(`pipelining ${mode}: INSERT, UPDATE and DELETE … RETURNING`, async () => {
    await withClient(async (c) => {
      const id = mode === 'off' ? 100 : 200;
      for (const client of [c, plain]) await client.query(`DELETE FROM users WHERE id IN (${id}, ${id + 1})`);
      // Each statement changes the plain database too, once, before pgweave runs it: same rows, same answers.
      const both = async (sql: string, values?: unknown[]) => {
        const expected = await resolve(plain, (await plain.query({ text: sql, values })).fields);
        assert.deepEqual(await resolve(c, (await c.query({ text: sql, values })).fields), expected, sql);
      };
      await both(`INSERT INTO users VALUES (${id}, 'new', 'fr') RETURNING *`);
      await both(`INSERT INTO users VALUES ($1, 'new', 'de') RETURNING name, id, 7 AS seven`, [id + 1]);
      await both(`UPDATE users SET name = 'newer' WHERE id = $1 RETURNING country, name`, [id]);
      await both(`UPDATE users SET name = name WHERE id IN (1, 2, 3, ${id}) RETURNING id, name`);
      await both(`DELETE FROM users WHERE id = ${id + 1} RETURNING name`);
      await both(`INSERT INTO items SELECT id + ${id}, id, name FROM users WHERE id <= 2 RETURNING sku, id`);
      await both(`DELETE FROM items WHERE id > ${id} RETURNING *`);
    });
  });

  test(`pipelining ${mode}: results the coordinator computes over pulled tables name the tables pulled`, async () => {
    await withClient(async (c) => {
      // Not co-located (items is distributed by its own id): both tables pulled, LIKE their tables.
      await same(c, 'SELECT u.name, i.sku, u.id FROM users u JOIN items i ON i.user_id = u.id ORDER BY i.id');
      await same(c, 'SELECT i.*, u.* FROM users u JOIN items i ON i.user_id = u.id WHERE i.id < $1 ORDER BY i.id', [5]);
      // Inside a block the staging tables are not committed: the session's own backend still sees them.
      for (const client of [c, plain]) await client.query('BEGIN');
      await same(c, 'SELECT u.name, i.sku FROM users u JOIN items i ON i.user_id = u.id WHERE u.id = $1 ORDER BY i.id', [2]);
      for (const client of [c, plain]) await client.query('COMMIT');
      // A coordinator-local table read next in the same session keeps its own OID.
      await same(c, 'SELECT * FROM local_notes');
      await same(c, 'SELECT n.note, u.name FROM local_notes n JOIN users u ON u.id = n.user_id ORDER BY u.id');
    });
  });

  test(`pipelining ${mode}: results over partial and intermediate results name the tables they come from`, async () => {
    await withClient(async (c) => {
      // A subquery with a LIMIT and a CTE joined to a distributed table are planned as intermediate results.
      await same(c, 'SELECT * FROM (SELECT id, name FROM users ORDER BY id LIMIT 2) s ORDER BY id');
      await same(c, 'WITH top AS (SELECT id, name FROM users ORDER BY id LIMIT 2) SELECT t.name, o.amount FROM top t JOIN orders o ON o.user_id = t.id ORDER BY o.id');
      await same(c, 'SELECT name FROM users WHERE id IN (SELECT user_id FROM items WHERE sku = $1)', ['sku3']);
      // Inside a block the coordinator does not describe the statement (a failed Parse would abort the block):
      // a pulled table still maps by name, partial and intermediate results to 0/0.
      for (const client of [c, plain]) await client.query('BEGIN');
      await same(c, 'SELECT * FROM (SELECT id, name FROM users ORDER BY id LIMIT 2) s ORDER BY id', undefined, { staged: true });
      await same(c, 'SELECT country, count(*) FROM users GROUP BY country ORDER BY country', undefined, { staged: true });
      await same(c, 'SELECT u.name, i.sku FROM users u JOIN items i ON i.user_id = u.id ORDER BY i.id');
      for (const client of [c, plain]) await client.query('COMMIT');
    });
  });

  test(`pipelining ${mode}: a prepared statement's Describe`, async () => {
    const sqls = ['SELECT name, id FROM users WHERE id = $1', 'SELECT country, name, $1::int AS p FROM users', 'SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1',
      // (Before: XX000 "Cannot read properties of undefined (reading 'table')", planMultiShard without a distributed table.)
      'SELECT cname FROM countries WHERE code = $1',
      // Pulled statements (before: no parameters and NoData, the session's own answer for statements without a shard task).
      'SELECT u.name, i.sku FROM users u JOIN items i ON i.user_id = u.id WHERE u.id = $1',
      'SELECT * FROM (SELECT id, name FROM users ORDER BY id LIMIT $1) s'];
    const describe = async (raw: Awaited<ReturnType<typeof rawLogin>>, sql: string) => {
      raw.write(Buffer.concat([frontend.parse({ name: 'd', text: sql, types: [] }), frontend.describe({ type: 'S', name: 'd' }), frontend.sync()]));
      const msgs = await raw.readUntil('Z');
      raw.write(Buffer.concat([frontend.close({ type: 'S', name: 'd' }), frontend.sync()]));
      await raw.readUntil('Z');
      const row = msgs.find((m) => m.type === 'T');
      assert.ok(row, `${sql}: ${msgs.map((m) => m.type + m.body.toString('latin1')).join('|')}`);
      return fieldsOf(row);
    };
    const ours = await rawLogin(addresses[mode]!, 'postgres', cluster.password);
    const theirs = await rawLogin({ host: '127.0.0.1', port: cluster.coordinatorPg.port }, 'postgres', cluster.password, { database: 'plain' });
    try {
      for (const sql of sqls) {
        const expected = await resolve(plain, await describe(theirs, sql));
        await withClient(async (c) => assert.deepEqual(await resolve(c, await describe(ours, sql)), expected, sql));
      }
    } finally {
      ours.destroy();
      theirs.destroy();
    }
  });
}

/** A RowDescription's (table OID, column number) per field. */
function fieldsOf(m: BackendMessage): Array<{ tableID: number; columnID: number }> {
  const out: Array<{ tableID: number; columnID: number }> = [];
  let pos = 2;
  for (let i = m.body.readInt16BE(0); i > 0; i--) {
    pos = m.body.indexOf(0, pos) + 1;
    out.push({ tableID: m.body.readUInt32BE(pos), columnID: m.body.readInt16BE(pos + 4) });
    pos += 18;
  }
  return out;
}
