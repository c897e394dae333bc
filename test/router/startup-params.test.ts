/**
 * A client's StartupMessage settings reach the workers (issue 4): pgJDBC
 * sends TimeZone, DateStyle and extra_float_digits as startup keys, libpq
 * sends PGOPTIONS as `options` and PGTZ/PGDATESTYLE as keys. Workers answer
 * router and multi-shard statements, so their rows must render as the
 * coordinator's own table renders them in the same session.
 *
 * One cluster: its coordinator without pipelined channels, and a second
 * coordinator on the same PostgreSQL servers with one channel per worker
 * and a stall limit beyond any test (so statements never fall back to a
 * connection of their own because the machine is slow).
 *
 * Shown: timestamptz, float8 and interval read from a distributed table
 * (router, extended protocol, multi-shard) equal the same values read from
 * a coordinator table, under startup keys and under `options`; psql's
 * PGTZ/PGDATESTYLE/PGOPTIONS; `options=-c search_path=s1` routes an
 * unqualified table of s1 (and RESET goes back to it); sessions with
 * different settings taking turns never get one another's pooled worker
 * connection; sessions with different zones running together each get
 * their own pipelined channel and zone, plain sessions keep theirs; bad
 * startup values are refused with PostgreSQL's FATAL and SQLSTATE.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { optionSettings, startupSettings } from '../../src/server/startup-settings.js';
import { splitIdentifierList } from '../../src/sql/quote.js';
import { addWorkers, nodeOfKeys, run, textClient } from './support.js';

let cluster: TestCluster;
let piped: Coordinator;
let admin: pg.Client;
const urls: Record<'off' | 'on', string> = { off: '', on: '' };
const opened: pg.Client[] = [];

/** Every value stays the text PostgreSQL sent; rows as arrays. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/** The settings pgJDBC-like clients send as StartupMessage keys. */
const NEW_YORK = { TimeZone: 'America/New_York', DateStyle: 'SQL, DMY', extra_float_digits: '0', IntervalStyle: 'postgres_verbose' };
/** The same kind of settings through `options` (libpq's PGOPTIONS), -c and -- forms. */
const TOKYO_OPTIONS = '-c TimeZone=Asia/Tokyo -c DateStyle=German,\\ DMY -cextra_float_digits=1 --IntervalStyle=sql_standard';

/** A client whose StartupMessage carries `keys` (beyond what node-postgres sends) and `options`. */
async function startupClient(url: string, keys: Record<string, string> = {}, options?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, types: TEXT_TYPES, application_name: 'pgweave-startup-test', ...(options ? { options } : {}) });
  const withKeys = c as unknown as { getStartupConf(): Record<string, string> };
  const base = withKeys.getStartupConf.bind(c);
  withKeys.getStartupConf = () => ({ ...base(), ...keys });
  c.on('error', () => {});
  await c.connect();
  opened.push(c);
  return c;
}

before(async () => {
  cluster = await startTestCluster({ workers: 2, coordinator: { pipelineChannels: 0 } });
  piped = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 }, pipelineChannels: 1, pipelineStallMs: 600_000 });
  urls.off = cluster.url;
  urls.on = cluster.url.replace(`:${cluster.config.listen.port}/`, `:${piped.address.port}/`);
  admin = await textClient(cluster.url);
  await addWorkers(admin, cluster);
  const values = `SELECT g, timestamptz '2024-03-10 06:30:00+00' + g * interval '7 hours 1 minute', g / 3.0::float8 + 1e-7, g * interval '1 day 2 hours 3 minutes 4.5 seconds' FROM generate_series(1, 24) g`;
  for (const table of ['vals', 'vals_local']) {
    await admin.query(`CREATE TABLE ${table} (k bigint PRIMARY KEY, ts timestamptz NOT NULL, f float8 NOT NULL, iv interval NOT NULL)`);
    if (table === 'vals') await admin.query(`SELECT create_distributed_table('vals', 'k', shard_count => 4)`);
    await admin.query(`INSERT INTO ${table} ${values}`);
  }
  await admin.query('CREATE SCHEMA s1');
  for (const schema of ['public', 's1']) {
    await admin.query(`CREATE TABLE ${schema}.items (k bigint PRIMARY KEY, v text NOT NULL)`);
    await admin.query(`SELECT create_distributed_table('${schema}.items', 'k', shard_count => 4)`);
    await admin.query(`INSERT INTO ${schema}.items SELECT g, '${schema} ' || g FROM generate_series(1, 8) g`);
  }
});

after(async () => {
  for (const c of opened) await c.end().catch(() => {});
  await admin?.end().catch(() => {});
  await piped?.close();
  await cluster?.stop();
});

const COLUMNS = 'k, ts, ts::timestamp AS local_ts, f, f::text AS f_text, iv, iv::text AS iv_text';

async function rows(c: pg.Client, text: string, values?: unknown[]): Promise<unknown[][]> {
  return (await c.query({ text, values, rowMode: 'array' })).rows as unknown[][];
}

/** Router (simple and extended) and multi-shard reads of `vals` equal the same reads of the coordinator's `vals_local`. */
async function assertSameAsLocal(c: pg.Client, label: string): Promise<void> {
  const reads: Array<[string, unknown[] | undefined]> = [
    [`SELECT ${COLUMNS} FROM TABLE WHERE k = 3`, undefined],
    [`SELECT ${COLUMNS} FROM TABLE WHERE k = $1`, [5]],
    [`SELECT ${COLUMNS} FROM TABLE ORDER BY k`, undefined],
  ];
  for (const [text, values] of reads) {
    const local = await rows(c, text.replace('TABLE', 'vals_local'), values);
    const distributed = await rows(c, text.replace('TABLE', 'vals'), values);
    assert.ok(local.length > 0);
    assert.deepEqual(distributed, local, `${label}: ${text}`);
  }
}

for (const mode of ['off', 'on'] as const) {
  test(`pipelining ${mode}: TimeZone, DateStyle, extra_float_digits and IntervalStyle as startup keys apply to worker rows`, async () => {
    const c = await startupClient(urls[mode], NEW_YORK);
    // The settings took effect at all (the coordinator's own table, as PostgreSQL renders it).
    assert.deepEqual(await rows(c, 'SELECT ts, f, iv FROM vals_local WHERE k = 3'), [['10/03/2024 23:33:00 EDT', '1.0000001', '@ 3 days 6 hours 9 mins 13.5 secs']]);
    await assertSameAsLocal(c, `${mode}, startup keys`);
  });

  test(`pipelining ${mode}: settings given in options (-c, -cname, --name) apply to worker rows`, async () => {
    const c = await startupClient(urls[mode], {}, TOKYO_OPTIONS);
    assert.deepEqual(await rows(c, 'SELECT ts FROM vals_local WHERE k = 3'), [['11.03.2024 12:33:00 JST']]);
    await assertSameAsLocal(c, `${mode}, options`);
  });

  test(`pipelining ${mode}: options=-c search_path=s1 routes an unqualified table of s1, also after RESET`, async () => {
    const c = await startupClient(urls[mode], {}, '-c search_path=s1');
    assert.deepEqual(await rows(c, 'SELECT v FROM items WHERE k = 2'), [['s1 2']]);
    assert.deepEqual(await rows(c, 'SELECT v FROM items WHERE k = $1', [3]), [['s1 3']]);
    assert.deepEqual(await rows(c, 'SELECT count(*) FROM items WHERE v LIKE $1', ['s1 %']), [['8']]);
    await c.query('SET search_path = public');
    assert.deepEqual(await rows(c, 'SELECT v FROM items WHERE k = 2'), [['public 2']]);
    // RESET goes back to the client's startup value, on the coordinator and on the workers.
    await c.query('RESET search_path');
    assert.deepEqual(await rows(c, 'SELECT v FROM items WHERE k = 2'), [['s1 2']]);
    assert.deepEqual(await rows(c, 'SELECT v FROM items WHERE k = $1', [4]), [['s1 4']]);
  });
}

test('psql: PGTZ, PGDATESTYLE and PGOPTIONS apply to worker rows', async () => {
  const env = { PGTZ: 'America/New_York', PGDATESTYLE: 'SQL, DMY', PGOPTIONS: '-c extra_float_digits=0 -c IntervalStyle=iso_8601' };
  for (const url of [urls.off, urls.on]) {
    const query = (table: string) => `SELECT ts, f, iv FROM ${table} WHERE k = 7`;
    const r = await run('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', query('vals_local'), '-c', query('vals'), '-c', query('vals_local').replace('= 7', '= 9'), '-c', query('vals').replace('= 7', '= 9')], { env });
    assert.equal(r.code, 0, r.stderr);
    const [local7, dist7, local9, dist9] = r.stdout.trim().split('\n');
    assert.equal(local7, '12/03/2024 03:37:00 EDT|2.33333343333333|P7DT14H21M31.5S');
    assert.equal(dist7, local7);
    assert.equal(dist9, local9);
  }
});

test('pipelining off: sessions with different startup settings taking turns never get one another\'s pooled connection', async () => {
  const sessions = [
    { label: 'New York', client: await startupClient(urls.off, NEW_YORK) },
    { label: 'no settings', client: await textClient(urls.off) },
    { label: 'Tokyo', client: await startupClient(urls.off, {}, TOKYO_OPTIONS) },
    { label: 'UTC', client: await startupClient(urls.off, { TimeZone: 'UTC', extra_float_digits: '3' }) },
  ];
  opened.push(sessions[1]!.client);
  // Each statement gives the worker connection back to the idle pool; the next session's statement takes one.
  for (let round = 0; round < 3; round++) {
    for (const s of sessions) await assertSameAsLocal(s.client, `round ${round}, ${s.label}`);
  }
});

test('pipelining on: sessions with different zones running together each see their own zone, on channels of their own', async () => {
  const all = Array.from({ length: 24 }, (_, i) => i + 1);
  const nodes = await nodeOfKeys(admin, 'vals', all);
  const keys = all.filter((k) => nodes.get(k) === cluster.workers[0]!.port);
  assert.ok(keys.length >= 3, 'keys on the first worker');
  const groups = [
    { label: 'New York', open: () => startupClient(urls.on, { TimeZone: 'America/New_York' }) },
    { label: 'Tokyo', open: () => startupClient(urls.on, { TimeZone: 'Asia/Tokyo' }) },
    { label: 'no settings', open: async () => { const c = await textClient(urls.on); opened.push(c); return c; } },
  ];
  const sessions: Array<{ group: number; client: pg.Client; key: number; expected: string }> = [];
  for (let g = 0; g < groups.length; g++) {
    for (let i = 0; i < 4; i++) {
      const client = await groups[g]!.open();
      const key = keys[(g + i) % keys.length]!;
      const expected = String((await rows(client, 'SELECT ts FROM vals_local WHERE k = $1', [key]))[0]![0]);
      sessions.push({ group: g, client, key, expected });
    }
  }
  assert.notEqual(sessions[0]!.expected, sessions[4]!.expected, 'the zones render differently');
  const read = async (s: (typeof sessions)[number], i: number) => {
    const r = i % 2 === 0
      ? await rows(s.client, `SELECT pg_backend_pid(), ts FROM vals WHERE k = ${s.key}`)
      : await rows(s.client, 'SELECT pg_backend_pid(), ts FROM vals WHERE k = $1', [s.key]);
    assert.equal(r[0]![1], s.expected, `${groups[s.group]!.label} session ${i} sees its own zone`);
    return { group: s.group, pid: String(r[0]![0]) };
  };
  // Rounds of every session at once, until each group is served by one backend (its channel is open).
  let pids: Array<Set<string>> = [];
  for (let round = 0; round < 200; round++) {
    const answers = await Promise.all(sessions.map((s, i) => read(s, i)));
    pids = groups.map((_, g) => new Set(answers.filter((a) => a.group === g).map((a) => a.pid)));
    if (pids.every((p) => p.size === 1)) break;
  }
  assert.ok(pids.every((p) => p.size === 1), 'each group of sessions was served by one pipelined worker connection');
  const backends = pids.map((p) => [...p][0]);
  assert.equal(new Set(backends).size, groups.length, 'each zone has a channel of its own');
});

test('a bad startup setting is refused with PostgreSQL\'s FATAL and SQLSTATE', async () => {
  const refused = async (keys: Record<string, string>, options?: string) => {
    try {
      await startupClient(urls.on, keys, options);
    } catch (err) {
      const e = err as { code?: string; severity?: string; message: string };
      return { code: e.code, severity: e.severity, message: e.message };
    }
    assert.fail('the connection was accepted');
  };
  const timeout = await refused({}, '-c statement_timeout=abc');
  assert.equal(timeout.code, '22023');
  assert.equal(timeout.severity, 'FATAL');
  assert.match(timeout.message, /statement_timeout/);
  const zone = await refused({ TimeZone: 'Not/AZone' });
  assert.equal(zone.code, '22023');
  assert.match(zone.message, /TimeZone/);
  const unknown = await refused({}, '-c no_such_setting=1');
  assert.equal(unknown.code, '42704');
  assert.match(unknown.message, /no_such_setting/);
});

test('startup settings: keys and options as PostgreSQL reads them, one signature per set of settings', () => {
  assert.deepEqual(optionSettings('-c a=1 -cb=2  --c-d=x\\ y -c e=f=g'), { pairs: [['a', '1'], ['b', '2'], ['c_d', 'x y'], ['e', 'f=g']], complete: true });
  assert.equal(optionSettings('-e -c a=1').complete, false);
  const s = startupSettings(new Map([['user', 'u'], ['database', 'd'], ['application_name', 'app'], ['options', '-c TimeZone=UTC -c search_path=s1'], ['TimeZone', 'Asia/Tokyo'], ['DateStyle', 'ISO']]));
  // A key wins over the same setting in options; names compare in lower case.
  assert.deepEqual([...s.settings], [['timezone', 'Asia/Tokyo'], ['search_path', 's1'], ['datestyle', 'ISO']]);
  assert.deepEqual(s.workerParams, [['datestyle', 'ISO'], ['search_path', 's1'], ['timezone', 'Asia/Tokyo']]);
  const same = startupSettings(new Map([['user', 'v'], ['datestyle', 'ISO'], ['search_path', 's1'], ['timezone', 'Asia/Tokyo']]));
  assert.equal(same.signature, s.signature);
  assert.equal(startupSettings(new Map([['user', 'u'], ['database', 'd'], ['application_name', 'app']])).signature, '');
  // Switches that are no settings go to the workers as written.
  assert.deepEqual(startupSettings(new Map([['options', '-e']])).workerParams, [['options', '-e']]);
  assert.deepEqual(splitIdentifierList(' S1 , "My ""Schema""",$user '), ['s1', 'My "Schema"', '$user']);
  assert.equal(splitIdentifierList('a,,b'), null);
  assert.equal(splitIdentifierList('"a'), null);
  assert.deepEqual(splitIdentifierList(''), []);
});
