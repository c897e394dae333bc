/**
 * Real PostgreSQL clients through the coordinator: psql, pgbench in all three
 * query modes, node-postgres (parameters, pipelining, prepared statements,
 * cancel, notifications, notices), a raw extended-protocol exchange with row
 * limits, TLS, pgjdbc, and the authentication failures a client can meet.
 * One cluster (coordinator PostgreSQL only) serves the whole file; a second
 * coordinator in front of it serves the TLS tests.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { startCoordinator, type Coordinator } from '../../src/server/index.js';
import { executeMessage, frontend, rawLogin, sendCancel, errorFieldsOf } from './raw-protocol.js';
import { activeQueryPids, directClient, pollUntil, run, sqlstateOf, withPort } from './support.js';

let cluster: TestCluster;
let direct: pg.Client;
let work: string;

before(async () => {
  cluster = await startTestCluster({ workers: 0 });
  direct = await directClient(cluster.coordinatorPg, cluster.password);
  work = mkdtempSync(join(tmpdir(), 'pgweave-clients-'));
});

after(async () => {
  await direct?.end().catch(() => {});
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The BackendKeyData node-postgres received (not in its type declarations). */
function keyOf(c: pg.Client): { processId: number; secretKey: number } {
  const k = c as unknown as { processID: number; secretKey: number };
  return { processId: k.processID, secretKey: k.secretKey };
}

/** A connected node-postgres client through the coordinator. */
async function connect(overrides: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: cluster.url, ...overrides });
  await c.connect();
  return c;
}

function psql(args: string[], opts: { input?: string; url?: string } = {}) {
  return run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', opts.url ?? cluster.url, ...args], { input: opts.input });
}

describe('psql', () => {
  test('\\d describes a table created through the coordinator', async () => {
    const r = await psql(['-c', 'CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL)', '-c', '\\d psql_items']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Table "public\.psql_items"/);
    assert.match(r.stdout, /id\s+\|\s+integer\s+\|\s+\|\s+not null/);
    assert.match(r.stdout, /name\s+\|\s+text/);
    assert.match(r.stdout, /"psql_items_pkey" PRIMARY KEY, btree \(id\)/);
  });

  test('a multi-statement string returns every result', async () => {
    const r = await psql(['-A', '-c', 'select 1 as one; select 2 as two']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['one', '1', '(1 row)', 'two', '2', '(1 row)']);
  });

  test('an error shows its SQLSTATE with VERBOSITY verbose, and the session goes on', async () => {
    const r = await run('psql', ['-X', cluster.url, '-c', '\\set VERBOSITY verbose', '-c', 'select * from no_such_table', '-c', 'select 40 + 2 as answer']);
    assert.match(r.stderr, /ERROR:\s+42P01: relation "no_such_table" does not exist/);
    assert.match(r.stderr, /LOCATION:\s+\w+, parse_relation\.c/);
    assert.match(r.stdout, /answer\s*\n-+\s*\n\s*42/);
  });

  test('\\copy in from a file and out to a file round-trips', async () => {
    const rows = Array.from({ length: 500 }, (_, i) => `${i + 1}\titem ${i + 1} \\\\ tab\\there`).join('\n') + '\n';
    const inFile = join(work, 'items.tsv');
    const outFile = join(work, 'items-out.tsv');
    writeFileSync(inFile, rows);
    const r = await psql([
      '-c', 'CREATE TABLE copy_items (id int PRIMARY KEY, name text)',
      '-c', `\\copy copy_items from '${inFile}'`,
      '-c', `\\copy (select * from copy_items order by id) to '${outFile}'`,
      '-At', '-c', 'select count(*), sum(id) from copy_items',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /COPY 500/);
    assert.match(r.stdout, /500\|125250/);
    assert.equal(readFileSync(outFile, 'utf8'), rows);
  });

  test('COPY FROM STDIN and COPY TO STDOUT through psql', async () => {
    const data = Array.from({ length: 2000 }, (_, i) => `${i}\t${'x'.repeat(i % 50)}`).join('\n') + '\n';
    const load = await psql(['-c', 'CREATE TABLE stdin_items (id int, payload text)', '-c', 'COPY stdin_items FROM STDIN'], { input: data });
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /COPY 2000/);
    const dump = await psql(['-c', 'COPY (select * from stdin_items order by id) TO STDOUT']);
    assert.equal(dump.code, 0, dump.stderr);
    assert.equal(dump.stdout, data);
  });

  test('a COPY that fails on bad data reports 22P02 and the session goes on', async () => {
    const script = join(work, 'bad-copy.sql');
    writeFileSync(script, [
      '\\set VERBOSITY verbose',
      'CREATE TABLE bad_copy (id int);',
      'COPY bad_copy FROM STDIN;',
      '1',
      'not-a-number',
      '\\.',
      'select count(*) as rows_after_failed_copy from bad_copy;',
      '',
    ].join('\n'));
    const r = await run('psql', ['-X', cluster.url, '-f', script]);
    assert.match(r.stderr, /ERROR:\s+22P02: invalid input syntax for type integer: "not-a-number"/);
    assert.match(r.stdout, /rows_after_failed_copy\s*\n-+\s*\n\s*0/);
  });
});

describe('pgbench', () => {
  before(async () => {
    const r = await run('pgbench', ['-i', '-q', '-s', '1', cluster.url], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /done in/);
  });

  for (const mode of ['simple', 'extended', 'prepared']) {
    test(`pgbench -M ${mode} runs transactions with none failed`, async () => {
      const r = await run('pgbench', ['-M', mode, '-c', '4', '-j', '2', '-T', '3', cluster.url], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`query mode: ${mode}`));
      const processed = /number of transactions actually processed: (\d+)/.exec(r.stdout);
      assert.ok(processed, r.stdout);
      assert.ok(Number(processed[1]) > 0, 'some transactions ran');
      assert.match(r.stdout, /number of failed transactions: 0 \(0\.000%\)/);
    });
  }

  test('the pgbench tables hold what the transactions did', async () => {
    // every transaction adds its delta to an account, a teller and a branch, all or nothing
    // (history holds the last run only: pgbench truncates it before each run)
    const r = await direct.query<Record<string, string>>(`
      SELECT (SELECT count(*) FROM pgbench_history)::text AS history,
             (SELECT sum(abalance) FROM pgbench_accounts)::text AS accounts,
             (SELECT sum(tbalance) FROM pgbench_tellers)::text AS tellers,
             (SELECT sum(bbalance) FROM pgbench_branches)::text AS branches`);
    const sums = r.rows[0]!;
    assert.ok(Number(sums.history) > 0);
    assert.deepEqual([sums.tellers, sums.branches], [sums.accounts, sums.accounts], JSON.stringify(sums));
  });
});

describe('node-postgres', () => {
  test('parameters of several types, NULL, and a 2 MB value', async () => {
    const c = await connect();
    try {
      const r = await c.query('SELECT $1::int + $2::int AS sum, $3::text AS t, $4::text IS NULL AS isnull, $5::bytea AS b, length($6::text) AS len', [
        40, 2, 'héllo wörld', null, Buffer.from([0, 1, 2, 255]), 'y'.repeat(2 << 20),
      ]);
      assert.equal(r.rows[0].sum, 42);
      assert.equal(r.rows[0].t, 'héllo wörld');
      assert.equal(r.rows[0].isnull, true);
      assert.deepEqual(r.rows[0].b, Buffer.from([0, 1, 2, 255]));
      assert.equal(r.rows[0].len, 2 << 20);
      const big = await c.query('SELECT repeat($1::text, 1000000) AS big', ['ab']);
      assert.equal(big.rows[0].big.length, 2_000_000);
    } finally {
      await c.end();
    }
  });

  test('pipelined queries (pipeline mode: all sent before any reply) come back in order; a failure stays its own', async () => {
    const c = await connect({ pipeline: true } as pg.ClientConfig);
    try {
      const promises: Array<Promise<unknown>> = [];
      for (let i = 0; i < 50; i++) {
        const sql = i === 25 ? 'SELECT 1 / ($1::int - $1::int) AS v' : 'SELECT $1::int * 2 AS v';
        promises.push(c.query(sql, [i]).then((r) => r.rows[0].v, (err: unknown) => `error ${sqlstateOf(err)}`));
      }
      const results = await Promise.all(promises);
      assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => (i === 25 ? 'error 22012' : i * 2)));
    } finally {
      await c.end();
    }
  });

  test('queries issued without awaiting (queued by the driver) all complete in order', async () => {
    const c = await connect();
    try {
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => c.query('SELECT $1::int AS i', [i]).then((r) => r.rows[0].i)));
      assert.deepEqual(results, Array.from({ length: 30 }, (_, i) => i));
    } finally {
      await c.end();
    }
  });

  test('named prepared statements are parsed once and executed many times', async () => {
    const c = await connect();
    try {
      for (let i = 0; i < 10; i++) {
        const r = await c.query({ name: 'add_two', text: 'SELECT $1::int + $2::int AS s', values: [i, 2] });
        assert.equal(r.rows[0].s, i + 2);
      }
      const prepared = await c.query(`SELECT name, statement FROM pg_prepared_statements WHERE name = 'add_two'`);
      assert.equal(prepared.rows.length, 1);
      assert.equal(prepared.rows[0].statement, 'SELECT $1::int + $2::int AS s');
    } finally {
      await c.end();
    }
  });

  test('a CancelRequest with the key the client received cancels its query with 57014', async () => {
    const c = await connect();
    try {
      const key = keyOf(c);
      assert.ok(key.processId, 'BackendKeyData received');
      const running = c.query('SELECT pg_sleep(30) /* cancel-me */').then(() => null, (err: unknown) => err);
      const pids = await pollUntil(async () => (await activeQueryPids(direct, 'cancel-me')).length > 0);
      assert.ok(pids, 'the query reached PostgreSQL');
      await sendCancel(cluster.config.listen, key.processId, key.secretKey);
      const err = await running;
      assert.equal(sqlstateOf(err), '57014');
      assert.match((err as Error).message, /canceling statement due to user request/);
      const after = await c.query('SELECT 7 AS seven');
      assert.equal(after.rows[0].seven, 7);
    } finally {
      await c.end();
    }
  });

  test('a CancelRequest with a wrong secret key is ignored', async () => {
    const c = await connect();
    try {
      const running = c.query('SELECT pg_sleep(1) /* do-not-cancel */, 1 AS done');
      assert.ok(await pollUntil(async () => (await activeQueryPids(direct, 'do-not-cancel')).length > 0));
      const key = keyOf(c);
      await sendCancel(cluster.config.listen, key.processId, (key.secretKey + 1) | 0);
      await sendCancel(cluster.config.listen, (key.processId + 1) | 0, key.secretKey);
      const r = await running;
      assert.equal(r.rows[0].done, 1);
    } finally {
      await c.end();
    }
  });

  test('LISTEN/NOTIFY: a notification reaches an idle listener', async () => {
    const listener = await connect();
    const notifier = await connect();
    try {
      await listener.query('LISTEN weave_channel');
      const received = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve));
      await notifier.query(`SELECT pg_notify('weave_channel', 'payload ' || 42)`);
      const n = await received;
      assert.equal(n.channel, 'weave_channel');
      assert.equal(n.payload, 'payload 42');
    } finally {
      await listener.end();
      await notifier.end();
    }
  });

  test('NOTICE and WARNING from a DO block reach the client', async () => {
    const c = await connect();
    try {
      const notices: Array<{ severity?: string; message: string; code?: string }> = [];
      c.on('notice', (n) => notices.push({ severity: n.severity, message: n.message ?? '', code: n.code }));
      await c.query(`DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$`);
      assert.deepEqual(notices, [
        { severity: 'NOTICE', message: 'hello 42', code: '00000' },
        { severity: 'WARNING', message: 'careful', code: '01000' },
      ]);
    } finally {
      await c.end();
    }
  });

  test('errors keep their SQLSTATE and fields, and a transaction aborted by one rolls back', async () => {
    const c = await connect();
    try {
      await c.query('CREATE TABLE uniq (id int PRIMARY KEY)');
      await c.query('BEGIN');
      await c.query('INSERT INTO uniq VALUES (1)');
      const err = await c.query('INSERT INTO uniq VALUES (1)').then(() => null, (e: unknown) => e as pg.DatabaseError);
      assert.equal(err?.code, '23505');
      assert.equal(err?.constraint, 'uniq_pkey');
      assert.equal(err?.table, 'uniq');
      const aborted = await c.query('SELECT 1').then(() => null, (e: unknown) => e);
      assert.equal(sqlstateOf(aborted), '25P02');
      await c.query('ROLLBACK');
      const r = await c.query('SELECT count(*)::int AS n FROM uniq');
      assert.equal(r.rows[0].n, 0);
    } finally {
      await c.end();
    }
  });
});

describe('raw extended protocol', () => {
  test('Execute with a row limit returns PortalSuspended, then the rest; Flush answers without Sync', async () => {
    const conn = await rawLogin(cluster.config.listen, 'postgres', cluster.password);
    try {
      conn.write(Buffer.concat([
        frontend.parse({ name: '', text: 'SELECT g FROM generate_series(1, 5) g', types: [] }),
        frontend.bind({ portal: 'p1', statement: '', values: [] }),
        executeMessage('p1', 2),
        frontend.flush(),
      ]));
      const rowsOf = (msgs: Array<{ type: string; body: Buffer }>) =>
        msgs.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6));
      const first = await conn.readUntil('s');
      assert.deepEqual(first.map((m) => m.type), ['1', '2', 'D', 'D', 's']);
      assert.deepEqual(rowsOf(first), ['1', '2']);

      conn.write(Buffer.concat([executeMessage('p1', 2), frontend.flush()]));
      const second = await conn.readUntil('s');
      assert.deepEqual(rowsOf(second), ['3', '4']);

      conn.write(Buffer.concat([executeMessage('p1', 2), frontend.sync()]));
      const last = await conn.readUntil('Z');
      assert.deepEqual(last.map((m) => m.type), ['D', 'C', 'Z']);
      assert.deepEqual(rowsOf(last), ['5']);
      assert.equal(last[1]!.body.toString('utf8', 0, last[1]!.body.length - 1), 'SELECT 1');

      // the portal is gone after Sync ended the implicit transaction
      conn.write(Buffer.concat([executeMessage('p1', 1), frontend.sync()]));
      const gone = await conn.readUntil('Z');
      assert.equal(gone[0]!.type, 'E');
      assert.equal(errorFieldsOf(gone[0]!).code, '34000');
    } finally {
      conn.destroy();
    }
  });

  test('twenty extended-protocol cycles written at once are answered in order', async () => {
    const conn = await rawLogin(cluster.config.listen, 'postgres', cluster.password);
    try {
      const cycles: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        cycles.push(
          frontend.parse({ name: '', text: i === 7 ? 'SELECT 1/0' : 'SELECT $1::int * 3', types: [] }),
          frontend.bind({ portal: '', statement: '', values: i === 7 ? [] : [String(i)] }),
          frontend.execute({ portal: '', rows: 0 }),
          frontend.sync(),
        );
      }
      conn.write(Buffer.concat(cycles));
      const answers: string[] = [];
      for (let i = 0; i < 20; i++) {
        const msgs = await conn.readUntil('Z');
        const row = msgs.find((m) => m.type === 'D');
        const err = msgs.find((m) => m.type === 'E');
        answers.push(row ? row.body.toString('utf8', 6) : err ? errorFieldsOf(err).code : '?');
      }
      assert.deepEqual(answers, Array.from({ length: 20 }, (_, i) => (i === 7 ? '22012' : String(i * 3))));
    } finally {
      conn.destroy();
    }
  });

  test('a cursor in a transaction block fetches in batches', async () => {
    const c = await connect();
    try {
      await c.query('BEGIN');
      await c.query('DECLARE cur CURSOR FOR SELECT g FROM generate_series(1, 10) g');
      const a = await c.query('FETCH 4 FROM cur');
      const b = await c.query('FETCH 100 FROM cur');
      await c.query('COMMIT');
      assert.deepEqual(a.rows.map((r) => r.g), [1, 2, 3, 4]);
      assert.deepEqual(b.rows.map((r) => r.g), [5, 6, 7, 8, 9, 10]);
    } finally {
      await c.end();
    }
  });
});

describe('TLS', () => {
  let tlsCoordinator: Coordinator;
  let certFile: string;
  let tlsUrl: string;

  before(async () => {
    certFile = join(work, 'server.crt');
    const keyFile = join(work, 'server.key');
    const gen = await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', keyFile, '-out', certFile,
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    tlsCoordinator = await startCoordinator({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 }, tls: { cert: certFile, key: keyFile } });
    tlsUrl = withPort(cluster.url, tlsCoordinator.address.port);
  });

  after(async () => {
    await tlsCoordinator?.close();
  });

  test('psql with sslmode=require gets an encrypted session', async () => {
    const r = await psql(['-c', '\\conninfo', '-At', '-c', 'select 6 * 7'], { url: `${tlsUrl}?sslmode=require` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
    assert.match(r.stdout, /^42$/m);
  });

  test('psql with sslmode=verify-full checks the certificate against its CA', async () => {
    const url = new URL(tlsUrl);
    url.hostname = 'localhost';
    const r = await psql(['-At', '-c', 'select current_user'], { url: `${url.toString()}?sslmode=verify-full&sslrootcert=${certFile}` });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'postgres');
  });

  test('node-postgres over TLS (SCRAM with the "y" channel-binding flag) works', async () => {
    const c = await connect({ connectionString: tlsUrl, ssl: { ca: readFileSync(certFile, 'utf8'), servername: 'localhost' } });
    try {
      const r = await c.query('SELECT $1::text AS echo', ['over tls']);
      assert.equal(r.rows[0].echo, 'over tls');
    } finally {
      await c.end();
    }
  });

  test('a TLS-enabled coordinator still accepts sslmode=disable', async () => {
    const r = await psql(['-At', '-c', 'select 1'], { url: `${tlsUrl}?sslmode=disable` });
    assert.equal(r.code, 0, r.stderr);
  });

  test('without TLS configured, sslmode=require fails and sslmode=prefer works', async () => {
    const refused = await psql(['-c', 'select 1'], { url: `${cluster.url}?sslmode=require` });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /server does not support SSL, but SSL was required/);
    const preferred = await psql(['-c', '\\conninfo', '-At', '-c', 'select 1'], { url: `${cluster.url}?sslmode=prefer` });
    assert.equal(preferred.code, 0, preferred.stderr);
    assert.doesNotMatch(preferred.stdout, /SSL connection/);
  });
});

describe('JDBC', () => {
  const jar = ['/usr/share/java/postgresql.jar'].find((p) => existsSync(p));
  test('pgjdbc runs a prepared statement with a parameter', { skip: jar ? false : 'no pgjdbc jar in /usr/share/java (apt-get install libpostgresql-jdbc-java)' }, async (t) => {
    const java = await run('java', ['-version']).catch(() => null);
    if (!java || java.code !== 0) {
      t.skip('java is not installed');
      return;
    }
    const source = join(work, 'Main.java');
    writeFileSync(source, `
import java.sql.*;
public class Main {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
      // the sixth execution crosses prepareThreshold (5): a named server-side statement
      try (PreparedStatement ps = c.prepareStatement("SELECT ?::int * 2 AS doubled, current_user")) {
        for (int i = 1; i <= 6; i++) {
          ps.setInt(1, i * 10);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            System.out.println("row " + rs.getInt(1) + " " + rs.getString(2));
          }
        }
      }
    }
  }
}
`);
    const { port, host } = cluster.config.listen;
    const r = await run('java', ['-cp', jar!, source, `jdbc:postgresql://${host}:${port}/postgres`, 'postgres', cluster.password], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [1, 2, 3, 4, 5, 6].map((i) => `row ${i * 20} postgres`));
  });
});

describe('authentication failures', () => {
  before(async () => {
    await direct.query(`CREATE ROLE cannot_login NOLOGIN PASSWORD 'pw-cannot'`);
    await direct.query(`CREATE ROLE app_user LOGIN PASSWORD 'pw-app'`);
  });

  /** The error a login attempt gets, through `port`. */
  async function loginError(port: number, user: string, password: string): Promise<{ code?: string; message: string } | null> {
    const c = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres' });
    try {
      await c.connect();
      await c.end();
      return null;
    } catch (err) {
      await c.end().catch(() => {});
      return { code: sqlstateOf(err), message: (err as Error).message };
    }
  }

  /** Coordinator and PostgreSQL give the same code and message. */
  async function sameAsPostgres(user: string, password: string): Promise<{ code?: string; message: string } | null> {
    const viaCoordinator = await loginError(cluster.config.listen.port, user, password);
    const viaPostgres = await loginError(cluster.coordinatorPg.port, user, password);
    assert.deepEqual(viaCoordinator, viaPostgres);
    return viaCoordinator;
  }

  test('a role with the right password logs in as itself', async () => {
    const c = await connect({ connectionString: undefined, host: '127.0.0.1', port: cluster.config.listen.port, user: 'app_user', password: 'pw-app', database: 'postgres' });
    try {
      const r = await c.query('SELECT current_user AS u, session_user AS s');
      assert.deepEqual(r.rows[0], { u: 'app_user', s: 'app_user' });
    } finally {
      await c.end();
    }
  });

  test('a wrong password is 28P01', async () => {
    const err = await sameAsPostgres('app_user', 'not-the-password');
    assert.equal(err?.code, '28P01');
    assert.equal(err?.message, 'password authentication failed for user "app_user"');
  });

  test('an unknown role is 28P01 with the same message form', async () => {
    const err = await sameAsPostgres('nobody_here', 'whatever');
    assert.equal(err?.code, '28P01');
    assert.equal(err?.message, 'password authentication failed for user "nobody_here"');
  });

  test('a NOLOGIN role with the right password is 28000', async () => {
    const err = await sameAsPostgres('cannot_login', 'pw-cannot');
    assert.equal(err?.code, '28000');
    assert.equal(err?.message, 'role "cannot_login" is not permitted to log in');
  });

  test('a NOLOGIN role with a wrong password is 28P01 (nothing about the role leaks)', async () => {
    const err = await sameAsPostgres('cannot_login', 'wrong');
    assert.equal(err?.code, '28P01');
  });

  test('the internal role is refused even with its own password', async () => {
    const { user, password } = cluster.config.internal;
    const err = await loginError(cluster.config.listen.port, user, password);
    assert.equal(err?.code, '28P01');
    assert.equal(err?.message, `password authentication failed for user "${user}"`);
  });
});
