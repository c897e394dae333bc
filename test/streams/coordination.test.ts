/**
 * Leases and cron (issue 8, items 2 and 3).
 *
 * Leases: C consumers on P partitions settle with every partition owned by
 * exactly one live consumer and shares differing by at most one; a consumer
 * that stops heartbeating loses its partitions to the others within the
 * lease timeout.
 *
 * Cron: two coordinator processes (`pgweave serve`) compete for leadership;
 * jobs run on schedule, one run of a job at a time, each recorded in
 * cron.job_run_details; SIGKILLing the leader moves the jobs to the other.
 * The surviving process also shows consumers woken across coordinators.
 * The in-process coordinator of the test cluster runs no scheduler
 * (PGWEAVE_CRON=off), so the two child processes are the only candidates.
 */
process.env.PGWEAVE_CRON = 'off';

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

let cluster: TestCluster;
let sql: pg.Client;
const coordinators = new Set<ChildProcess>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  sql = new pg.Client({ connectionString: cluster.url });
  await sql.connect();
  for (const w of cluster.workers) await sql.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
});

after(async () => {
  for (const c of coordinators) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await sql?.end();
  await cluster?.stop();
});

async function owners(group: string): Promise<Map<number, string | null>> {
  const r = await sql.query(`SELECT * FROM pgweave.consumer_leases($1)`, [group]);
  return new Map(r.rows.map((row) => [row.partition, row.owner]));
}

/** Polls as each consumer (one round = one poll each) until ownership stops changing. */
async function settle(group: string, topic: string, consumers: string[]): Promise<Map<number, string | null>> {
  let last = '';
  for (let round = 0; round < 40; round++) {
    for (const c of consumers) await sql.query(`SELECT * FROM pgweave.poll_events($1, $2, $3)`, [group, c, topic]);
    const now = await owners(group);
    const key = JSON.stringify([...now]);
    const leases = await sql.query(`SELECT * FROM pgweave.consumer_leases($1)`, [group]);
    const pending = leases.rows.filter((row) => row.new_owner !== null || row.owner === null).length;
    if (key === last && pending === 0) return now;
    last = key;
  }
  assert.fail('leases did not settle');
}

function shares(owned: Map<number, string | null>, consumers: string[]): number[] {
  return consumers.map((c) => [...owned.values()].filter((o) => o === c).length);
}

function assertFair(owned: Map<number, string | null>, consumers: string[], partitions: number): void {
  assert.equal(owned.size, partitions);
  for (const [p, o] of owned) assert.ok(o !== null && consumers.includes(o), `partition ${p} is owned by a live consumer (${o})`);
  const s = shares(owned, consumers);
  assert.ok(Math.max(...s) - Math.min(...s) <= 1, `shares ${s.join(',')} differ by at most one`);
}

test('leases: fair shares as consumers join, takeover of a dead consumer within the lease timeout', { timeout: 60_000 }, async () => {
  await sql.query("SELECT pgweave.create_topic('leased', partitions => 8)");
  await sql.query(`SELECT pgweave.create_consumer_group('lg', 'leased', lease_timeout_ms => 1500)`);

  const first = ['c1'];
  assert.deepEqual(shares(await settle('lg', 'leased', first), first), [8]);
  const three = ['c1', 'c2', 'c3'];
  assertFair(await settle('lg', 'leased', three), three, 8);
  const five = ['c1', 'c2', 'c3', 'c4', 'c5'];
  const owned5 = await settle('lg', 'leased', five);
  assertFair(owned5, five, 8);
  assert.deepEqual(shares(owned5, five).sort(), [1, 1, 2, 2, 2]);

  // c2 stops heartbeating (no more polls). The others keep polling; its partitions move within the timeout.
  const lost = [...owned5].filter(([, o]) => o === 'c2').map(([p]) => p);
  const stoppedAt = Date.now();
  const alive = ['c1', 'c3', 'c4', 'c5'];
  let movedAt = 0;
  while (Date.now() - stoppedAt < 10_000) {
    for (const c of alive) await sql.query(`SELECT * FROM pgweave.poll_events('lg', $1, 'leased')`, [c]);
    const now = await owners('lg');
    if (lost.every((p) => now.get(p) !== 'c2' && alive.includes(now.get(p) ?? ''))) {
      movedAt = Date.now();
      break;
    }
    await sleep(100);
  }
  assert.ok(movedAt > 0, 'the dead consumer\'s partitions were taken over');
  const took = movedAt - stoppedAt;
  assert.ok(took <= 1500 + 1000, `taken over ${took} ms after the last heartbeat (lease timeout 1500 ms)`);
  assertFair(await settle('lg', 'leased', alive), alive, 8);

  // More consumers than partitions: some get none, still at most one apart.
  await sql.query("SELECT pgweave.create_topic('narrow', partitions => 3)");
  const many = ['m1', 'm2', 'm3', 'm4', 'm5'];
  const ownedMany = await settle('ng', 'narrow', many);
  assertFair(ownedMany, many, 3);
  // A consumer that leaves hands its partitions over at once.
  const leaver = ownedMany.get(0)!;
  await sql.query(`SELECT pgweave.leave_group('ng', 'narrow', $1)`, [leaver]);
  assertFair(await settle('ng', 'narrow', many.filter((m) => m !== leaver)), many.filter((m) => m !== leaver), 3);
});

interface ServeProcess {
  proc: ChildProcess;
  port: number;
}

async function serve(name: string): Promise<ServeProcess> {
  const file = join(cluster.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...cluster.config, listen: { host: '127.0.0.1', port: 0 } }), { mode: 0o600 });
  const env = { ...process.env };
  delete env.PGWEAVE_CRON;
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env });
  coordinators.add(proc);
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /listening on [^:]+:(\d+)/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`coordinator ${name} exited with ${code}`)));
  });
  return { proc, port };
}

async function waitFor<T>(what: string, fn: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

test('cron: jobs run on schedule, never overlap, are recorded, and move to another coordinator when the leader dies', { timeout: 90_000 }, async () => {
  const a = await serve('coordinator-a');
  await waitFor('a cron leader', async () => {
    const r = await sql.query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [`pgweave cron leader (pid ${a.proc.pid})`]).catch(() => null);
    return r && r.rows.length > 0 ? true : null;
  }, 20_000).catch(() => null);
  const b = await serve('coordinator-b');

  await sql.query(`CREATE TABLE tick_log (app text, at timestamptz)`);
  await sql.query(`CREATE TABLE slow_log (app text, started timestamptz, finished timestamptz)`);
  await sql.query(`SELECT cron.schedule('tick', '1 seconds', $$INSERT INTO tick_log VALUES (current_setting('application_name'), clock_timestamp())$$)`);
  await sql.query(`SELECT cron.schedule('slow', '1 seconds', $$INSERT INTO slow_log SELECT a, s, clock_timestamp() FROM (SELECT current_setting('application_name') AS a, clock_timestamp() AS s, pg_sleep(1.2) OFFSET 0) q$$)`);
  await assert.rejects(sql.query(`SELECT cron.schedule('bad', '61 seconds', 'SELECT 1')`), /invalid schedule/);
  await assert.rejects(sql.query(`SELECT cron.schedule('bad', '* * * 13 *', 'SELECT 1')`), /invalid schedule/);

  const appOf = (p: ServeProcess) => `pgweave cron (pid ${p.proc.pid})`;
  // One leader: all runs come from one process.
  await waitFor('runs', async () => {
    const r = await sql.query(`SELECT count(*)::int AS n FROM tick_log`);
    return r.rows[0].n >= 4 ? true : null;
  }, 20_000);
  const leaders = (await sql.query(`SELECT DISTINCT app FROM tick_log`)).rows.map((r) => r.app);
  assert.equal(leaders.length, 1, `one leader runs the jobs (${leaders.join(', ')})`);
  const leader = leaders[0] === appOf(a) ? a : b;
  const other = leader === a ? b : a;
  assert.equal(leaders[0], appOf(leader));

  // Kill the leader mid-run of the slow job, if it is running one.
  await waitFor('a slow run in progress', async () => {
    const r = await sql.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'`, [appOf(leader)]);
    return r.rows[0].n > 0 ? true : null;
  }, 10_000);
  const killedAt = Date.now();
  leader.proc.kill('SIGKILL');
  const took = await waitFor('the other coordinator to take over', async () => {
    const r = await sql.query(`SELECT count(*)::int AS n FROM tick_log WHERE app = $1`, [appOf(other)]);
    return r.rows[0].n >= 2 ? Date.now() - killedAt : null;
  }, 20_000);
  assert.ok(took < 10_000, `took over in ${took} ms`);
  await sleep(2500);

  // Ticks kept their schedule: about one per second, from one process at a time.
  const ticks = (await sql.query(`SELECT app, extract(epoch FROM at) AS t FROM tick_log ORDER BY at`)).rows;
  const switches = ticks.filter((t, i) => i > 0 && t.app !== ticks[i - 1].app).length;
  assert.equal(switches, 1, 'the leadership moved once');
  // No two runs of the slow job overlapped, across the failover too.
  const slow = (await sql.query(`SELECT app, started, finished FROM slow_log ORDER BY started`)).rows;
  assert.ok(slow.length >= 3, `${slow.length} slow runs`);
  for (let i = 1; i < slow.length; i++) {
    assert.ok(slow[i].started >= slow[i - 1].finished, `run ${i} started ${slow[i].started.toISOString()} before run ${i - 1} finished ${slow[i - 1].finished.toISOString()}`);
  }
  assert.ok(slow.some((s) => s.app === appOf(other)), 'the slow job runs on the new leader');

  // job_run_details records runs: the succeeded ones with their tags and times.
  const details = await sql.query(
    `SELECT j.jobname, d.status, d.return_message, d.start_time, d.end_time FROM cron.job_run_details d JOIN cron.job j USING (jobid) ORDER BY d.runid`,
  );
  const tickRuns = details.rows.filter((r) => r.jobname === 'tick' && r.status === 'succeeded');
  assert.ok(tickRuns.length >= ticks.length - 1, `${tickRuns.length} recorded tick runs for ${ticks.length} ticks`);
  assert.equal(tickRuns[0].return_message, 'INSERT 0 1');
  for (const r of tickRuns) assert.ok(r.end_time >= r.start_time);

  // A consumer waiting on this (in-process) coordinator is woken by a publish through the other
  // coordinator process: by its NOTIFY, since the waiter's own recheck is set to a minute here.
  process.env.PGWEAVE_STREAMS_RECHECK_MS = '60000';
  try {
    await sql.query(`SELECT * FROM pgweave.poll_events('wake', 'w', 'narrow', max_events => 1000)`);
    const viaOther = new pg.Client({ connectionString: cluster.url.replace(`:${cluster.config.listen.port}/`, `:${other.port}/`) });
    await viaOther.connect();
    try {
      const started = Date.now();
      const waiting = sql.query(`SELECT * FROM pgweave.poll_events('wake', 'w', 'narrow', wait_ms => 50000)`);
      await sleep(500);
      await viaOther.query(`SELECT pgweave.publish('narrow', '{"from":"the other coordinator"}', 'k')`);
      const woke = await waiting;
      assert.equal(woke.rows.length, 1);
      assert.ok(Date.now() - started < 40_000, 'woken by the notification, not by a recheck or the timeout');
    } finally {
      await viaOther.end();
    }
  } finally {
    delete process.env.PGWEAVE_STREAMS_RECHECK_MS;
  }

  assert.equal((await sql.query(`SELECT cron.unschedule('tick') AS ok`)).rows[0].ok, true);
  assert.equal((await sql.query(`SELECT cron.unschedule('slow') AS ok`)).rows[0].ok, true);
  await sleep(1500);
  const n = (await sql.query(`SELECT count(*)::int AS n FROM tick_log`)).rows[0].n;
  await sleep(1500);
  assert.equal((await sql.query(`SELECT count(*)::int AS n FROM tick_log`)).rows[0].n, n, 'unscheduled jobs stop');
  other.proc.kill('SIGTERM');
});
