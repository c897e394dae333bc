/**
 * What cannot work is refused with Citus's errors, and a worker that goes
 * away mid-run harms only the clients of its shards.
 *
 * Citus's errors: updating the distribution column (0A000), an INSERT
 * without a distribution key value or with NULL in it, VOLATILE functions in
 * multi-shard UPDATE/DELETE (0A000) — while the same functions stay allowed
 * where the statement runs on one shard.
 *
 * Worker failure: clients working on tenants of both workers; one worker's
 * PostgreSQL is stopped with `pg_ctl stop -m immediate`. Clients of its
 * shards get errors of SQLSTATE class 08 (connection exception) and their
 * sessions stay open; clients of the other worker's shards carry on without
 * a single error. When the worker is started again, the very same sessions
 * reconnect on their next statement.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { nodeServerOptions, startPostgres, stopPostgres } from '../../src/cluster/index.js';
import { addWorkers, clusterState, nodeOfKeys, nodeUrl, runStatement, textClient, workerByPort, type Outcome } from './support.js';

let cluster: TestCluster;
let c: pg.Client;
/** A tenant on the first worker, and one on the second. */
let onFirst: number;
let onSecond: number;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  c = await textClient(cluster.url);
  await addWorkers(c, cluster);
  await c.query(`
    CREATE TABLE accounts (tenant_id bigint NOT NULL, id int NOT NULL, balance numeric NOT NULL DEFAULT 0, note text,
                           PRIMARY KEY (tenant_id, id));
    CREATE SEQUENCE note_seq;`);
  await c.query(`SELECT create_distributed_table('accounts', 'tenant_id', shard_count => 4)`);
  const keys = Array.from({ length: 20 }, (_, i) => i + 1);
  await c.query(`INSERT INTO accounts (tenant_id, id, balance) VALUES ${keys.map((k) => `(${k}, 1, 100)`).join(', ')}`);
  const nodes = await nodeOfKeys(c, 'accounts', keys);
  onFirst = keys.find((k) => nodes.get(k) === cluster.workers[0]!.port)!;
  onSecond = keys.find((k) => nodes.get(k) === cluster.workers[1]!.port)!;
  assert.ok(onFirst && onSecond, 'tenants on both workers');
});

after(async () => {
  await c?.end().catch(() => {});
  await cluster?.stop();
});

async function expectError(sql: string, code: string, message: RegExp): Promise<void> {
  await assert.rejects(c.query(sql), (err: { code?: string; message?: string }) => {
    assert.equal(err.code, code, `${sql}: ${err.message}`);
    assert.match(err.message ?? '', message);
    return true;
  });
}

test('updating the distribution column is refused (0A000), by key and across shards', async () => {
  const msg = /modifying the partition value of rows is not allowed/;
  await expectError(`UPDATE accounts SET tenant_id = 99 WHERE tenant_id = ${onFirst}`, '0A000', msg);
  await expectError(`UPDATE accounts SET tenant_id = tenant_id + 1`, '0A000', msg);
  await expectError(`UPDATE accounts a SET note = 'x', tenant_id = 7 WHERE a.id = 1`, '0A000', msg);
  const r = await c.query(`SELECT count(*) FROM accounts WHERE tenant_id = 99`);
  assert.deepEqual(r.rows, [{ count: '0' }]);
});

test('an INSERT without a distribution key value, or with NULL in it, is refused', async () => {
  // Citus's message; evaluating the row on the coordinator first may meet the NOT NULL constraint's own (same SQLSTATE).
  await expectError(`INSERT INTO accounts (id, balance) VALUES (5, 1)`, '23502', /cannot perform an INSERT without a partition column value|null value in column "tenant_id"/);
  await expectError(`INSERT INTO accounts (tenant_id, id) VALUES (NULL, 5)`, '23502', /NULL in the partition column|null value/i);
  await assert.rejects(c.query({ text: 'INSERT INTO accounts (tenant_id, id) VALUES ($1, $2)', values: [null, 5] }), (err: { code?: string }) => {
    assert.equal(err.code, '23502');
    return true;
  });
});

test('VOLATILE functions in multi-shard UPDATE/DELETE are refused (0A000); on one shard they run', async () => {
  const msg = /functions used in UPDATE and DELETE queries on distributed tables must not be VOLATILE/;
  await expectError(`UPDATE accounts SET balance = balance + random()`, '0A000', msg);
  await expectError(`DELETE FROM accounts WHERE random() > 2`, '0A000', msg);
  await expectError(`UPDATE accounts SET note = nextval('note_seq')::text`, '0A000', msg);
  const before = await c.query('SELECT sum(balance) FROM accounts');
  assert.deepEqual(before.rows, [{ sum: '2000' }], 'nothing changed');
  // One shard: the function runs once per row, as on PostgreSQL.
  const one = await c.query(`UPDATE accounts SET note = (random() * 0)::int::text WHERE tenant_id = ${onFirst} RETURNING note`);
  assert.deepEqual(one.rows, [{ note: '0' }]);
});

/** Outcome of one router statement on tenant `tenant` through client `s`. */
function touch(s: pg.Client, tenant: number): Promise<Outcome> {
  return runStatement(s, { kind: 'probe', sql: `UPDATE accounts SET balance = balance + 1 WHERE tenant_id = ${tenant} RETURNING balance` }, 30_000);
}

function codeOf(o: Outcome): string {
  return o.ok ? 'ok' : o.code;
}

test('a worker stopped mid-run: its clients get class 08 errors, the others carry on, and the sessions reconnect', { timeout: 300_000 }, async (t) => {
  const state = clusterState(cluster);
  const first = workerByPort(cluster, cluster.workers[0]!.port);
  const clientsOfFirst = [await textClient(cluster.url), await textClient(cluster.url)];
  const clientsOfSecond = [await textClient(cluster.url), await textClient(cluster.url)];
  const inBlock = await textClient(cluster.url);
  try {
    // Every session has used its worker.
    for (const s of clientsOfFirst) assert.equal(codeOf(await touch(s, onFirst)), 'ok');
    for (const s of clientsOfSecond) assert.equal(codeOf(await touch(s, onSecond)), 'ok');
    await inBlock.query('BEGIN');
    await inBlock.query(`UPDATE accounts SET note = 'in flight' WHERE tenant_id = ${onFirst}`);

    // Clients of the second worker keep running while the first one stops.
    let stopLoad = false;
    const secondOutcomes: string[] = [];
    const load = (async () => {
      for (let i = 0; i < 10_000 && !stopLoad; i++) {
        for (const s of clientsOfSecond) secondOutcomes.push(codeOf(await touch(s, onSecond)));
      }
    })();

    await stopPostgres(first.dataDir, 'immediate');

    const firstOutcomes: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (const s of clientsOfFirst) firstOutcomes.push(codeOf(await touch(s, onFirst)));
    }
    const blockOutcome = await runStatement(inBlock, { kind: 'probe', sql: `SELECT note FROM accounts WHERE tenant_id = ${onFirst}` }, 30_000);
    const countBeforeRestart = secondOutcomes.length;
    // Some statements of the second worker's clients ran while the first worker was down.
    for (const s of clientsOfSecond) secondOutcomes.push(codeOf(await touch(s, onSecond)));

    await startPostgres(nodeServerOptions(state, first), first.logFile);

    // The same sessions reconnect on their next statement.
    const afterRestart: string[] = [];
    for (const s of clientsOfFirst) afterRestart.push(codeOf(await touch(s, onFirst)));
    const rollback = await runStatement(inBlock, { kind: 'probe', sql: 'ROLLBACK' });
    const blockAfter = await runStatement(inBlock, { kind: 'probe', sql: `SELECT note FROM accounts WHERE tenant_id = ${onFirst}` });
    stopLoad = true;
    await load;

    t.diagnostic(`first worker's clients while it was down: ${firstOutcomes.join(' ')}`);
    t.diagnostic(`in-flight transaction block on it: ${codeOf(blockOutcome)}, then ROLLBACK ${codeOf(rollback)}`);
    t.diagnostic(`second worker's clients: ${secondOutcomes.length} statements (${countBeforeRestart} before the restart), errors: ${secondOutcomes.filter((x) => x !== 'ok').length}`);
    t.diagnostic(`after the restart: ${afterRestart.join(' ')}`);

    for (const code of firstOutcomes) assert.match(code, /^08/, `a client of the stopped worker got ${code}, not a connection exception (08…)`);
    assert.match(codeOf(blockOutcome), /^08|^25P02$/, 'the open transaction block on the stopped worker fails');
    assert.deepEqual(secondOutcomes.filter((x) => x !== 'ok'), [], 'clients of the other worker saw no error');
    assert.ok(secondOutcomes.length >= countBeforeRestart + clientsOfSecond.length);
    assert.deepEqual(afterRestart, clientsOfFirst.map(() => 'ok'), 'the same sessions work again once the worker is back');
    assert.equal(codeOf(rollback), 'ok');
    assert.equal(codeOf(blockAfter), 'ok');
    assert.notEqual((blockAfter as { results: Array<{ rows: unknown[][] }> }).results[0]!.rows[0]![0], 'in flight', 'the in-flight update did not survive');
  } finally {
    for (const s of [...clientsOfFirst, ...clientsOfSecond, inBlock]) await s.end().catch(() => {});
    await startPostgres(nodeServerOptions(state, first), first.logFile).catch(() => {});
  }
});

/** A client straight to a worker's PostgreSQL (to watch and terminate the coordinator's backends there). */
async function workerAdmin(port: number): Promise<pg.Client> {
  return textClient(nodeUrl(cluster, port), 'pgweave-test-admin');
}

/** Terminates the backend whose current or last query contains `marker`, once it is there. */
async function terminateBackend(admin: pg.Client, marker: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const r = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
      [marker],
    );
    if (r.rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no backend on the worker ran ${marker}`);
}

test('a worker backend terminated mid-statement: class 08 at once, other clients carry on, the session reconnects', { timeout: 300_000 }, async (t) => {
  const admin = await workerAdmin(cluster.workers[0]!.port);
  const victim = await textClient(cluster.url);
  const other = await textClient(cluster.url);
  let stopLoad = false;
  const otherOutcomes: string[] = [];
  const load = (async () => {
    while (!stopLoad) otherOutcomes.push(codeOf(await touch(other, onSecond)));
  })();
  // Each statement sleeps far longer than the answer may take: a statement waiting for replies that
  // cannot come shows up as "no answer within" (code NONE), not as a slow success.
  const cases: Array<{ name: string; marker: string; run: (marker: string) => Promise<Outcome> }> = [
    {
      name: 'router statement, simple protocol (forwarded)',
      marker: 'pgw_kill_simple',
      run: (m) => runStatement(victim, { kind: 'probe', sql: `SELECT pg_sleep(60), '${m}' FROM accounts WHERE tenant_id = ${onFirst}` }, 20_000),
    },
    {
      name: 'router statement, extended protocol (forwarded)',
      marker: 'pgw_kill_extended',
      run: (m) => runStatement(victim, { kind: 'probe', sql: `SELECT pg_sleep(60), '${m}' FROM accounts WHERE tenant_id = $1`, params: [onFirst] }, 20_000),
    },
    {
      name: 'multi-shard statement (collected)',
      marker: 'pgw_kill_multi',
      run: (m) => runStatement(victim, { kind: 'probe', sql: `SELECT tenant_id, '${m}' FROM accounts WHERE pg_sleep(60)::text = ''` }, 20_000),
    },
  ];
  const seen: string[] = [];
  try {
    for (const c of cases) {
      const outcome = c.run(c.marker);
      await terminateBackend(admin, c.marker);
      const code = codeOf(await outcome);
      const after = codeOf(await touch(victim, onFirst));
      seen.push(`${c.name}: ${code}, next statement ${after}`);
      assert.match(code, /^08/, `${c.name}: got ${code}, not a connection exception (08…) at once`);
      assert.equal(after, 'ok', `${c.name}: the same session reconnects`);
    }
    // In a transaction block: the statement fails with 08, the block can only roll back, then all is well.
    await victim.query('BEGIN');
    await victim.query(`UPDATE accounts SET note = 'lost with its block' WHERE tenant_id = ${onFirst}`);
    const inBlock = runStatement(victim, { kind: 'probe', sql: `SELECT pg_sleep(60), 'pgw_kill_block' FROM accounts WHERE tenant_id = ${onFirst}` }, 20_000);
    await terminateBackend(admin, 'pgw_kill_block');
    const blockCode = codeOf(await inBlock);
    const nextInBlock = codeOf(await runStatement(victim, { kind: 'probe', sql: `SELECT 1 FROM accounts WHERE tenant_id = ${onFirst}` }, 20_000));
    const rollback = codeOf(await runStatement(victim, { kind: 'probe', sql: 'ROLLBACK' }, 20_000));
    const note = await victim.query(`SELECT note FROM accounts WHERE tenant_id = ${onFirst}`);
    seen.push(`in a block: ${blockCode}, then ${nextInBlock}, ROLLBACK ${rollback}`);
    assert.match(blockCode, /^08/);
    assert.equal(nextInBlock, '25P02', 'the block is aborted');
    assert.equal(rollback, 'ok');
    assert.notEqual(note.rows[0]?.note, 'lost with its block');
  } finally {
    stopLoad = true;
    await load;
    t.diagnostic(seen.join('; '));
    t.diagnostic(`the other worker's client: ${otherOutcomes.length} statements, errors: ${otherOutcomes.filter((x) => x !== 'ok').length}`);
    for (const s of [admin, victim, other]) await s.end().catch(() => {});
  }
  assert.ok(otherOutcomes.length > 0);
  assert.deepEqual(otherOutcomes.filter((x) => x !== 'ok'), [], 'the client of the other worker saw no error');
});

/** Balance of the tenant's account, read through a fresh session. */
async function balanceOf(tenant: number): Promise<string> {
  const s = await textClient(cluster.url);
  try {
    return (await s.query({ text: 'SELECT balance FROM accounts WHERE tenant_id = $1', values: [tenant] })).rows[0].balance;
  } finally {
    await s.end();
  }
}

test('a worker connection lost between the statements of a transaction: the client is told, nothing half-commits', { timeout: 300_000 }, async (t) => {
  const admin = await workerAdmin(cluster.workers[0]!.port);
  const s = await textClient(cluster.url);
  const seen: string[] = [];
  try {
    // A multi-statement query (one implicit transaction): the first worker's backend is terminated
    // after the UPDATE, while the second statement sleeps on the other worker.
    const before = await balanceOf(onFirst);
    const implicit = runStatement(s, {
      kind: 'probe',
      sql: `UPDATE accounts SET balance = balance + 1000, note = 'pgw_implicit_lost' WHERE tenant_id = ${onFirst}; ` +
        `SELECT pg_sleep(3) FROM accounts WHERE tenant_id = ${onSecond}; ` +
        `UPDATE accounts SET balance = balance + 1000 WHERE tenant_id = ${onFirst}`,
    }, 30_000);
    await terminateBackend(admin, 'pgw_implicit_lost');
    const implicitCode = codeOf(await implicit);
    const after = await balanceOf(onFirst);
    seen.push(`multi-statement query: ${implicitCode}, balance ${before} → ${after}`);
    assert.match(implicitCode, /^08/, 'the multi-statement query reports the lost connection (it did not commit)');
    assert.equal(after, before, 'no statement of the rolled-back query stayed');

    // An explicit block: the loss happens while the block is idle; COMMIT reports it.
    await s.query('BEGIN');
    await s.query(`UPDATE accounts SET balance = balance + 1000, note = 'pgw_block_lost' WHERE tenant_id = ${onFirst}`);
    await s.query(`SELECT 1 FROM accounts WHERE tenant_id = ${onSecond}`);
    await terminateBackend(admin, 'pgw_block_lost');
    const commit = await runStatement(s, { kind: 'probe', sql: 'COMMIT' }, 20_000);
    const next = codeOf(await runStatement(s, { kind: 'probe', sql: `SELECT 1 FROM accounts WHERE tenant_id = ${onFirst}` }, 20_000));
    seen.push(`COMMIT of the block: ${codeOf(commit)}, next statement ${next}`);
    assert.match(codeOf(commit), /^08/, 'COMMIT of a block that lost a node reports the loss');
    assert.equal(next, 'ok', 'the block is over; the session reconnects');
    assert.equal(await balanceOf(onFirst), before);
  } finally {
    t.diagnostic(seen.join('; '));
    await s.query('ROLLBACK').catch(() => {});
    for (const x of [admin, s]) await x.end().catch(() => {});
  }
});

test('no MaxListenersExceededWarning: a session that lost many worker connections, then a large pull result', { timeout: 300_000 }, async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  const admin = await workerAdmin(cluster.workers[0]!.port);
  const s = await textClient(cluster.url);
  try {
    await s.query(`CREATE TABLE wide (tenant_id bigint NOT NULL, id int NOT NULL, payload text)`);
    await s.query(`SELECT create_distributed_table('wide', 'tenant_id', shard_count => 8)`);
    await s.query(`INSERT INTO wide SELECT g % 50, g, repeat(md5(g::text), 8) FROM generate_series(1, 30000) g`);
    // Twelve times: the session's connection to the first worker is terminated inside a block.
    // (Outcomes, not assertions: this test is about listeners; the one above checks the errors.)
    const rounds: string[] = [];
    for (let i = 0; i < 12; i++) {
      await runStatement(s, { kind: 'probe', sql: 'BEGIN' }, 20_000);
      await runStatement(s, { kind: 'probe', sql: `SELECT 'pgw_idle_${i}' FROM accounts WHERE tenant_id = ${onFirst}` }, 20_000);
      await terminateBackend(admin, `pgw_idle_${i}`);
      rounds.push(codeOf(await runStatement(s, { kind: 'probe', sql: `SELECT 1 FROM accounts WHERE tenant_id = ${onFirst}` }, 20_000)));
      await runStatement(s, { kind: 'probe', sql: 'ROLLBACK' }, 20_000);
    }
    t.diagnostic(`statements after each termination: ${rounds.join(' ')}`);
    // A pull (ORDER BY across shards runs on the coordinator): ~8 MB streamed through the session.
    const r = await s.query(`SELECT tenant_id, id, payload FROM wide ORDER BY id`);
    assert.equal(r.rows.length, 30000);
    assert.equal(r.rows[29999]!.id, '30000');
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    t.diagnostic(`warnings: ${warnings.length}`);
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
    await s.query('DROP TABLE IF EXISTS wide').catch(() => {});
    for (const x of [admin, s]) await x.end().catch(() => {});
  }
});

test('after the failure, every tenant works again from a new session', async () => {
  const s = await textClient(cluster.url);
  try {
    const r = await s.query('SELECT count(*) AS n, sum(balance) > 2000 AS grew FROM accounts');
    assert.deepEqual(r.rows, [{ n: '20', grew: 't' }]);
    for (const tenant of [onFirst, onSecond]) {
      const one = await s.query({ text: 'SELECT balance FROM accounts WHERE tenant_id = $1', values: [tenant] });
      assert.equal(one.rows.length, 1);
    }
  } finally {
    await s.end();
  }
});
