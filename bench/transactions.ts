/**
 * transactions: what distributed transactions cost. One run, one cluster
 * (coordinator PostgreSQL + workers, fast settings) and an in-process
 * coordinator; pgbench drives every case with the same transfer script
 * (BEGIN; two UPDATEs; COMMIT — the pair of accounts looked up first from a
 * local table, locked in id order so transfers never deadlock):
 *
 *   plain       the transfer straight at one plain PostgreSQL (the reference)
 *   single      through pgweave, both accounts on one worker: one-phase commit
 *   multi       both accounts on different workers: two-phase commit, gate on
 *   multi-off   the same with SET pgweave.atomic_visibility = off
 *   bank / bank-off   multi-node transfers while readers sum every balance
 *                     (a second pgbench with `SELECT sum(balance)`), gate on/off
 *
 * and prints TPS and the ratios: single/plain, multi/single (what 2PC plus
 * the gate costs; Citus reports 20–30 % for 2PC), multi/multi-off and
 * bank/bank-off (what the commit gate costs, for writers and readers).
 * Every client sets pgweave.atomic_visibility once (on or off), so every
 * case keeps its worker connections alike.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { machineSummary, median, parsePriority, startBenchCluster } from './support.js';
import type { Benchmark } from './run.js';

interface Options {
  duration: number;
  clients: number;
  readers: number;
  threads: number;
  workers: number;
  accounts: number;
  mode: 'prepared' | 'simple' | 'extended';
  priority: number | null;
  rounds: number;
}

const USAGE =
  'transactions [--duration S=10] [--rounds N=3] [--clients N=8] [--readers N=2] [--threads N=2] [--workers N=2] [--accounts N=1000] [--mode prepared|simple|extended] [--priority NICE]';

function parseOptions(args: string[]): Options {
  const o: Options = { duration: 10, clients: 8, readers: 2, threads: 2, workers: 2, accounts: 1000, mode: 'prepared', priority: null, rounds: 3 };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): number => {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--duration') o.duration = value();
    else if (a === '--rounds') o.rounds = value();
    else if (a === '--clients') o.clients = value();
    else if (a === '--readers') o.readers = value();
    else if (a === '--threads') o.threads = value();
    else if (a === '--workers') o.workers = Math.max(2, value());
    else if (a === '--accounts') o.accounts = Math.max(100, value());
    else if (a === '--mode') {
      const m = args[++i];
      if (m !== 'prepared' && m !== 'simple' && m !== 'extended') throw new Error('--mode is prepared, simple or extended');
      o.mode = m;
    } else if (a === '--priority') {
      o.priority = parsePriority(args[++i]);
    } else throw new Error(`unknown option ${a}\nusage: ${USAGE}`);
  }
  return o;
}

/** Runs a program without blocking the event loop: the coordinator shares this process. */
function runProgram(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 << 20, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ').slice(0, 200)} failed:\n${stderr.slice(0, 2000)}`));
      else resolve({ stdout, stderr });
    });
  });
}

interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
}

function transferScript(pairs: string, atomicVisibility: boolean): string {
  return [
    '\\if :init = 0',
    `SET pgweave.atomic_visibility = ${atomicVisibility ? 'on' : 'off'};`,
    '\\set init 1',
    '\\endif',
    `\\set n random(1, :pairs)`,
    `SELECT a, b FROM ${pairs} WHERE n = :n \\gset`,
    'BEGIN;',
    'UPDATE accounts SET balance = balance - 1 WHERE id = :a;',
    'UPDATE accounts SET balance = balance + 1 WHERE id = :b;',
    'COMMIT;',
    '',
  ].join('\n');
}

function readScript(atomicVisibility: boolean): string {
  return ['\\if :init = 0', `SET pgweave.atomic_visibility = ${atomicVisibility ? 'on' : 'off'};`, '\\set init 1', '\\endif', 'SELECT sum(balance) FROM accounts;', ''].join('\n');
}

async function pgbench(url: string, script: string, pairs: number, clients: number, o: Options): Promise<PgbenchResult> {
  const { stdout } = await runProgram('pgbench', [
    '-n', '-f', script, '-M', o.mode, '-c', String(clients), '-j', String(Math.min(o.threads, clients)), '-T', String(o.duration),
    '-D', 'init=0', '-D', `pairs=${pairs}`, url,
  ]);
  const num = (re: RegExp): number => {
    const m = re.exec(stdout);
    if (!m) throw new Error(`unexpected pgbench output:\n${stdout}`);
    return Number(m[1]);
  };
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    latencyMs: num(/latency average = ([\d.]+) ms/),
    transactions: num(/number of transactions actually processed: (\d+)/),
    failed: /number of failed transactions: (\d+)/.test(stdout) ? num(/number of failed transactions: (\d+)/) : 0,
  };
}

async function psql(url: string, sql: string): Promise<string> {
  return (await runProgram('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', sql])).stdout.trim();
}

/** Pairs (a < b) of accounts on one node and on two different nodes, as local tables for the scripts. */
const PAIRS_SQL = `
CREATE TABLE account_node AS
  SELECT k AS id, p.groupid AS node
    FROM generate_series(1, :accounts) k
    JOIN pg_dist_shard s ON s.logicalrelid = 'accounts'::regclass AND hashint4(k) BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int
    JOIN pg_dist_placement p ON p.shardid = s.shardid;
CREATE TABLE pairs_single AS
  SELECT row_number() OVER () AS n, a, b FROM (
    SELECT x.id AS a, (SELECT y.id FROM account_node y WHERE y.node = x.node AND y.id > x.id ORDER BY y.id LIMIT 1) AS b
      FROM account_node x) q WHERE b IS NOT NULL;
CREATE TABLE pairs_multi AS
  SELECT row_number() OVER () AS n, a, b FROM (
    SELECT x.id AS a, (SELECT y.id FROM account_node y WHERE y.node <> x.node AND y.id > x.id ORDER BY y.id LIMIT 1) AS b
      FROM account_node x) q WHERE b IS NOT NULL;
CREATE INDEX ON pairs_single (n); CREATE INDEX ON pairs_multi (n);
`;

async function runTransactions(args: string[]): Promise<void> {
  const o = parseOptions(args);
  console.log(`machine: ${machineSummary()}`);
  const cluster = await startBenchCluster({ name: 'transactions', workers: o.workers, fast: true, priority: o.priority });
  const { dir, created, coordinator, password } = cluster;
  try {
    const pgAddr = created.config.coordinator;
    const weaveUrl = `postgres://postgres:${password}@${coordinator.address.host}:${coordinator.address.port}/postgres`;
    const plainUrl = `postgres://postgres:${password}@${pgAddr.host}:${pgAddr.port}/plain`;
    console.log(`${o.workers} workers, ${o.accounts} accounts (4 shards); pgbench -M ${o.mode}, ${o.clients} clients, ${o.duration} s per case`);

    for (const w of created.config.workers) await psql(weaveUrl, `SELECT citus_add_node('${w.host}', ${w.port})`).catch(() => '');
    await psql(weaveUrl, 'CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)');
    await psql(weaveUrl, "SELECT create_distributed_table('accounts', 'id', shard_count => 4)");
    const values = Array.from({ length: o.accounts }, (_, i) => `(${i + 1}, 1000)`).join(',');
    await psql(weaveUrl, `INSERT INTO accounts VALUES ${values}`);
    await psql(weaveUrl, PAIRS_SQL.replaceAll(':accounts', String(o.accounts)));
    const singlePairs = Number(await psql(weaveUrl, 'SELECT count(*) FROM pairs_single'));
    const multiPairs = Number(await psql(weaveUrl, 'SELECT count(*) FROM pairs_multi'));
    // The reference: the same tables, plain, in another database of the coordinator's PostgreSQL.
    await psql(`postgres://postgres:${password}@${pgAddr.host}:${pgAddr.port}/postgres`, 'CREATE DATABASE plain');
    await psql(plainUrl, `CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL); INSERT INTO accounts VALUES ${values}`);
    const pairsRows = (await psql(weaveUrl, "SELECT string_agg(format('(%s,%s,%s)', n, a, b), ',') FROM pairs_multi")).trim();
    await psql(plainUrl, `CREATE TABLE pairs_multi (n bigint, a int, b int); INSERT INTO pairs_multi VALUES ${pairsRows}; CREATE INDEX ON pairs_multi (n); ANALYZE`);

    const scripts = {
      single: join(dir, 'single.sql'),
      multiOn: join(dir, 'multi-on.sql'),
      multiOff: join(dir, 'multi-off.sql'),
      readOn: join(dir, 'read-on.sql'),
      readOff: join(dir, 'read-off.sql'),
    };
    writeFileSync(scripts.single, transferScript('pairs_single', true));
    writeFileSync(scripts.multiOn, transferScript('pairs_multi', true));
    writeFileSync(scripts.multiOff, transferScript('pairs_multi', false));
    writeFileSync(scripts.readOn, readScript(true));
    writeFileSync(scripts.readOff, readScript(false));

    const loadBefore = loadavg().map((l) => l.toFixed(2)).join(' ');
    if (loadavg()[0]! > cpus().length * 0.5) console.log(`note: load average ${loadBefore} before the run: other work on this machine skews the numbers`);
    const line = (name: string, r: PgbenchResult) =>
      `${name.padEnd(34)} ${r.tps.toFixed(0).padStart(7)} tps  latency ${r.latencyMs.toFixed(2).padStart(7)} ms  (${r.transactions} transactions, ${r.failed} failed)`;

    console.log('warm-up …');
    await pgbench(weaveUrl, scripts.multiOn, multiPairs, o.clients, { ...o, duration: 3 });

    // Rounds run every case in turn, so other load on the machine falls on all of them alike; the summary takes medians.
    type Case = 'plain' | 'single' | 'multi' | 'multiOff' | 'bankW' | 'bankR' | 'offW' | 'offR';
    const results: Record<Case, PgbenchResult[]> = { plain: [], single: [], multi: [], multiOff: [], bankW: [], bankR: [], offW: [], offR: [] };
    const labels: Record<Case, string> = {
      plain: 'plain PostgreSQL',
      single: 'pgweave, single-node (1PC)',
      multi: 'pgweave, multi-node (2PC, gate on)',
      multiOff: 'pgweave, multi-node (2PC, gate off)',
      bankW: 'bank, gate on: transfers',
      bankR: `bank, gate on: sums (${o.readers} readers)`,
      offW: 'bank, gate off: transfers',
      offR: `bank, gate off: sums (${o.readers} readers)`,
    };
    const record = (c: Case, r: PgbenchResult, round: number) => {
      results[c].push(r);
      console.log(line(`${round}. ${labels[c]}`, r));
    };
    for (let round = 1; round <= o.rounds; round++) {
      record('plain', await pgbench(plainUrl, scripts.multiOn, multiPairs, o.clients, o), round);
      record('single', await pgbench(weaveUrl, scripts.single, singlePairs, o.clients, o), round);
      record('multi', await pgbench(weaveUrl, scripts.multiOn, multiPairs, o.clients, o), round);
      record('multiOff', await pgbench(weaveUrl, scripts.multiOff, multiPairs, o.clients, o), round);
      const [bankW, bankR] = await Promise.all([
        pgbench(weaveUrl, scripts.multiOn, multiPairs, o.clients, o),
        pgbench(weaveUrl, scripts.readOn, multiPairs, o.readers, o),
      ]);
      record('bankW', bankW, round);
      record('bankR', bankR, round);
      const [offW, offR] = await Promise.all([
        pgbench(weaveUrl, scripts.multiOff, multiPairs, o.clients, o),
        pgbench(weaveUrl, scripts.readOff, multiPairs, o.readers, o),
      ]);
      record('offW', offW, round);
      record('offR', offR, round);
    }
    const tps = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v.map((x) => x.tps))])) as Record<Case, number>;
    console.log('');
    console.log(`medians of ${o.rounds} round${o.rounds > 1 ? 's' : ''} (tps):`);
    for (const c of Object.keys(labels) as Case[]) console.log(`  ${labels[c].padEnd(36)} ${tps[c].toFixed(0).padStart(7)}`);

    const total = Number(await psql(weaveUrl, 'SELECT sum(balance) FROM accounts'));
    const r = (a: number, b: number) => (a / b).toFixed(2);
    console.log('');
    console.log(`single-node / plain PostgreSQL:         ${r(tps.single, tps.plain)}`);
    console.log(`multi-node (2PC + gate) / single-node:  ${r(tps.multi, tps.single)}   (cost of going multi-node: ${((1 - tps.multi / tps.single) * 100).toFixed(0)} %)`);
    console.log(`multi-node, gate off / single-node:     ${r(tps.multiOff, tps.single)}   (2PC alone: ${((1 - tps.multiOff / tps.single) * 100).toFixed(0)} %)`);
    console.log(`gate on / gate off, transfers only:     ${r(tps.multi, tps.multiOff)}`);
    console.log(`gate on / gate off, bank transfers:     ${r(tps.bankW, tps.offW)}`);
    console.log(`gate on / gate off, bank sums:          ${r(tps.bankR, tps.offR)}`);
    console.log(`total after the run: ${total} (expected ${o.accounts * 1000})${total === o.accounts * 1000 ? '' : '  ← WRONG'}`);
    console.log(`load average (1/5/15 min): ${loadBefore} before, ${loadavg().map((l) => l.toFixed(2)).join(' ')} after`);
  } finally {
    await cluster.stop();
  }
}

export const transactions: Benchmark = {
  description: 'multi-node vs single-node transfers (2PC), commit gate on vs off, against plain PostgreSQL',
  usage: USAGE,
  run: runTransactions,
};
