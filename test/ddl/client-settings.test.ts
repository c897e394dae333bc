/**
 * Work done on the workers for a client over connections of its own — DDL
 * propagation and run_command_on_* (src/commands/client-settings.ts) —
 * reads as it did in the client's session: its SET values (TimeZone,
 * DateStyle…) and the settings of its StartupMessage (`options=-c …`).
 * A column default with a timestamptz or date literal is fixed when the
 * DDL is parsed, so every shard's default must equal a plain PostgreSQL's
 * given the same statements in the same settings.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;
const workers: pg.Client[] = [];
const extra: pg.Client[] = [];

before(async () => {
  [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
  weave = new pg.Client({ connectionString: cluster.url });
  reference = new pg.Client({ connectionString: plain.url });
  await weave.connect();
  await reference.connect();
  for (const w of cluster.workers) {
    await weave.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
    const { user, password } = cluster.config.internal;
    const c = new pg.Client({ host: w.host, port: w.port, user, password, database: 'postgres' });
    await c.connect();
    workers.push(c);
  }
  const ddl = 'CREATE TABLE ev (id int, t timestamptz, d date, note text)';
  await weave.query(ddl);
  await reference.query(ddl);
  await weave.query(`SELECT create_distributed_table('ev', 'id', shard_count => 4)`);
}, { timeout: 300_000 });

after(async () => {
  await Promise.allSettled([weave?.end(), reference?.end(), ...workers.map((c) => c.end()), ...extra.map((c) => c.end())]);
  await Promise.allSettled([cluster?.stop(), plain?.stop()]);
});

/** The default of ev's `column` as stored, read in UTC: one per shard on the workers, and the plain PostgreSQL's. */
async function defaults(column: string): Promise<{ shards: string[]; expected: string }> {
  const sql = (like: string) => `SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY';
    SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
      JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
      JOIN pg_catalog.pg_class c ON c.oid = d.adrelid
     WHERE c.relname ${like} AND a.attname = '${column}' ORDER BY c.relname`;
  const rows = (r: unknown) => ((r as pg.QueryResult[])[2]!.rows as Array<{ pg_get_expr: string }>).map((x) => x.pg_get_expr);
  const shards = (await Promise.all(workers.map(async (w) => rows(await w.query(sql(`~ '^ev_[0-9]+$'`)))))).flat();
  const [expected] = rows(await reference.query(sql(`= 'ev'`)));
  return { shards, expected: expected! };
}

test('a DDL statement reads its literals in the session\'s SET TimeZone and DateStyle on every shard', async () => {
  for (const c of [weave, reference]) {
    await c.query(`SET TimeZone = 'Asia/Tokyo'`);
    await c.query(`SET DateStyle = 'SQL, DMY'`);
    await c.query(`ALTER TABLE ev ALTER COLUMN t SET DEFAULT '2026-01-02 03:04'::timestamptz`);
    await c.query(`ALTER TABLE ev ALTER COLUMN d SET DEFAULT '02/03/2026'::date`);
    await c.query('RESET TimeZone; RESET DateStyle');
  }
  const t = await defaults('t');
  assert.match(t.expected, /2026-01-01 18:04:00\+00/);
  assert.deepEqual(t.shards, [t.expected, t.expected, t.expected, t.expected]);
  const d = await defaults('d');
  assert.match(d.expected, /2026-03-02/);
  assert.deepEqual(d.shards, [d.expected, d.expected, d.expected, d.expected]);
});

test('startup settings (options=-c …) reach DDL propagation and run_command_on_workers', async () => {
  const options = '-c TimeZone=America/Caracas -c extra_float_digits=0';
  const w = new pg.Client({ connectionString: cluster.url, options });
  const r = new pg.Client({ connectionString: plain.url, options });
  extra.push(w, r);
  await w.connect();
  await r.connect();
  for (const c of [w, r]) await c.query(`ALTER TABLE ev ALTER COLUMN t SET DEFAULT '2026-05-06 07:08'::timestamptz`);
  const t = await defaults('t');
  assert.match(t.expected, /2026-05-06 11:08:00\+00/);
  assert.deepEqual(t.shards, [t.expected, t.expected, t.expected, t.expected]);

  const zone = await w.query(`SELECT success, result FROM run_command_on_workers($$SELECT pg_catalog.current_setting('TimeZone')$$)`);
  assert.deepEqual(zone.rows, [{ success: true, result: 'America/Caracas' }, { success: true, result: 'America/Caracas' }]);
  const text = await w.query(`SELECT result FROM run_command_on_workers($$SELECT (0.1::float8 + 0.2)::text$$)`);
  const expected = (await r.query(`SELECT (0.1::float8 + 0.2)::text AS result`)).rows[0];
  assert.deepEqual(text.rows, [expected, expected]);
  assert.deepEqual(expected, { result: '0.3' });
});

test('run_command_on_workers runs in the session\'s SET values, not the worker\'s defaults', async () => {
  await weave.query(`SET TimeZone = 'Pacific/Auckland'`);
  await weave.query(`SET DateStyle = 'German'`);
  try {
    const r = await weave.query(`SELECT result FROM run_command_on_workers($$SELECT '2026-07-08 09:10+00'::timestamptz::text$$)`);
    assert.deepEqual(r.rows.map((x) => x.result), ['08.07.2026 21:10:00 NZST', '08.07.2026 21:10:00 NZST']);
  } finally {
    await weave.query('RESET TimeZone; RESET DateStyle');
  }
});
