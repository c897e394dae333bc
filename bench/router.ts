/**
 * router: pgbench's own workloads on distributed pgbench tables, through
 * pgweave, against the same workloads on one plain PostgreSQL, in one run.
 *
 * pgweave side: a coordinator (in this process) with 2 workers; pgbench
 * tables created by `pgbench -i` through the coordinator, then distributed:
 * pgbench_accounts by aid in 32 shards, pgbench_history by aid co-located
 * with it (so each -N transaction runs on one worker and commits in one
 * phase), pgbench_branches and pgbench_tellers as reference tables. Plain
 * side: one PostgreSQL created the same way (same settings, same scale).
 *
 * Measured, alternating sides so other load on the machine falls on both:
 *   pgbench -S -M prepared -c 8 -j 2 -T 15   (one routed SELECT per transaction)
 *   pgbench -N -M prepared -c 8 -j 2 -T 15   (BEGIN, UPDATE, SELECT, INSERT, END on one worker)
 * printing TPS and the ratio pgweave / plain. The issue's goal for -S is ≥ 0.8.
 * Also printed: the coordinator's CPU time (user + system, this process)
 * per pgweave transaction, and the CPU time of the PostgreSQL servers of
 * each side per transaction (workers and coordinator PostgreSQL; the plain
 * server) — steadier than TPS on a shared machine, since other load
 * changes how long a transaction waits, less what it costs.
 *
 * --profile adds one more pgweave run of each workload under the V8 CPU
 * profiler (in-process, node:inspector) and prints the functions with the
 * most self time: where coordinator time goes. Those runs are slower (the
 * profiler costs) and are not the headline numbers.
 *
 * --unix makes pgbench connect through the Unix-domain sockets of both
 * sides (the coordinator's and the plain server's) instead of loopback TCP.
 *
 * --mode simple|extended runs pgbench's other query modes (-M) instead of
 * prepared; the issue's goal is for prepared.
 *
 * --channels N sets the coordinator's pipelined channels per (worker,
 * database, role) (src/executor/pipelined-channel.ts); 0 runs without
 * pipelining, every session on connections of its own.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { cpus, loadavg } from 'node:os';
import { workerNodes } from '../src/cluster/index.js';
import { channelStats } from '../src/executor/pipelined-channel.js';
import { endedChildrenCpuMicros, machineSummary, median, runProgram, cpuByProcessKind, serversCpuSnapshot, settledServersCpuMicros, startBenchCluster, startPlainPostgres } from './support.js';
import type { Benchmark } from './run.js';

interface Options {
  duration: number;
  clients: number;
  threads: number;
  scale: number;
  shards: number;
  workers: number;
  rounds: number;
  profile: boolean;
  profileOut: string | null;
  workloads: Array<'S' | 'N'>;
  /** Pipelined channels per (worker, database, role); null: the coordinator's default. */
  channels: number | null;
  /** pgbench connects through Unix-domain sockets on both sides instead of loopback TCP. */
  unix: boolean;
  /** pgbench's query mode (-M): the issue's goal is for prepared. */
  mode: 'prepared' | 'simple' | 'extended';
}

const USAGE =
  'router [--duration S=15] [--clients N=8] [--threads N=2] [--scale N=10] [--shards N=32] [--workers N=2] [--rounds N=1] [--only S|N] [--mode prepared|simple|extended] [--channels N (0: no pipelining)] [--unix] [--profile] [--profile-out PREFIX]';

function parseOptions(args: string[]): Options {
  const o: Options = { duration: 15, clients: 8, threads: 2, scale: 10, shards: 32, workers: 2, rounds: 1, profile: false, profileOut: null, workloads: ['S', 'N'], channels: null, unix: false, mode: 'prepared' };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): number => {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--duration') o.duration = value();
    else if (a === '--clients') o.clients = value();
    else if (a === '--threads') o.threads = value();
    else if (a === '--scale') o.scale = value();
    else if (a === '--shards') o.shards = value();
    else if (a === '--workers') o.workers = value();
    else if (a === '--rounds') o.rounds = value();
    else if (a === '--channels') {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error('--channels needs an integer ≥ 0');
      o.channels = v;
    } else if (a === '--profile') o.profile = true;
    else if (a === '--unix') o.unix = true;
    else if (a === '--profile-out') {
      o.profile = true;
      o.profileOut = args[++i] ?? null;
    } else if (a === '--mode') {
      const m = args[++i];
      if (m !== 'prepared' && m !== 'simple' && m !== 'extended') throw new Error('--mode takes prepared, simple or extended');
      o.mode = m;
    } else if (a === '--only') {
      const w = args[++i];
      if (w !== 'S' && w !== 'N') throw new Error('--only takes S or N');
      o.workloads = [w];
    } else throw new Error(`unknown option ${a}\nusage: ${USAGE}`);
  }
  return o;
}

function psql(url: string, sql: string): Promise<{ stdout: string }> {
  return runProgram('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', sql]);
}

interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
  /** pgbench's own CPU time over the run (µs). */
  clientMicros: number;
}

/**
 * Where one side's transactions spend the machine's CPU: pgbench's, the
 * servers' (and the coordinator's) per transaction, and how many of the
 * machine's CPUs all of it kept busy over the run. Near all of them, the
 * side is CPU-bound and its tps is the CPUs divided by the sum.
 */
function cpuBudget(r: PgbenchResult, seconds: number, serversMicros: number, coordinatorMicros = 0): string {
  const perTx = (micros: number) => micros / Math.max(1, r.transactions);
  const total = perTx(r.clientMicros) + serversMicros + coordinatorMicros;
  const busy = (total * r.transactions) / (seconds * 1e6);
  return `pgbench ${perTx(r.clientMicros).toFixed(0)} µs/transaction; all ${total.toFixed(0)} µs/transaction, ${busy.toFixed(2)} of ${cpus().length} CPUs busy`;
}

async function pgbench(url: string, workload: 'S' | 'N', o: Options, duration = o.duration): Promise<PgbenchResult> {
  const clientCpu0 = endedChildrenCpuMicros();
  const { stdout } = await runProgram('pgbench', [`-${workload}`, '-M', o.mode, '-c', String(o.clients), '-j', String(o.threads), '-T', String(duration), '-n', url]);
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
    clientMicros: endedChildrenCpuMicros() - clientCpu0,
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}

/** Starts the V8 sampling profiler in this process; the returned function stops it and yields the profile. */
async function startProfiler(): Promise<() => Promise<{ nodes: ProfileNode[] }>> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  return async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: { nodes: ProfileNode[] } };
    session.disconnect();
    return profile;
  };
}

/** Where coordinator time goes: self time per function and per source area (src/<folder>, node internals, GC…). */
function profileSummary(profile: { nodes: ProfileNode[] }, n: number): string[] {
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += hits;
      continue;
    }
    total += hits;
    const file = url ? url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '') : '';
    const key = `${functionName || '(anonymous)'}${file ? `  ${file}:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
    const area = /\/src\/([^/]+)\//.exec(file)?.[1]
      ? `src/${/\/src\/([^/]+)\//.exec(file)![1]}`
      : file.includes('node_modules/')
        ? `node_modules/${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? '?'}`
        : file.startsWith('node:')
          ? 'node internals'
          : functionName.startsWith('(')
            ? functionName
            : file ? 'other JS' : '(native)';
    byArea.set(area, (byArea.get(area) ?? 0) + hits);
  }
  const pct = (hits: number) => `${((100 * hits) / Math.max(1, total)).toFixed(1).padStart(5)}%`;
  const busy = (100 * total) / Math.max(1, total + idle);
  return [
    `coordinator thread busy ${busy.toFixed(0)}% of the run; self time as % of busy samples`,
    'by area:',
    ...[...byArea.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, h]) => `  ${pct(h)}  ${k}`),
    `top ${n} functions:`,
    ...[...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, h]) => `  ${pct(h)}  ${k}`),
  ];
}

/** The servers' CPU per transaction by node and process kind (bench/support.ts cpuByProcessKind): the total, and the parts of 5 µs and up. */
function cpuSplit(split: Map<string, number>, transactions: number): string {
  const per = (v: number) => v / Math.max(1, transactions);
  const parts = [...split].filter(([, v]) => per(v) >= 5).map(([key, v]) => `${key} ${per(v).toFixed(0)}`);
  const total = [...split.values()].reduce((t, v) => t + v, 0);
  return `${per(total).toFixed(0)} µs/transaction (${parts.join(', ')})`;
}

async function runRouter(args: string[]): Promise<void> {
  const o = parseOptions(args);
  console.log(`date: ${new Date().toISOString()}`);
  console.log(`machine: ${machineSummary()}`);
  // The same settings on every PostgreSQL (those `pgweave up` uses), so both sides pay the same for durability.
  const cluster = await startBenchCluster({ name: 'router', workers: o.workers, config: o.channels === null ? undefined : { pipelineChannels: o.channels } });
  const plainSide = await startPlainPostgres({ name: 'plain' }).catch(async (err: unknown) => {
    await cluster.stop();
    throw err;
  });
  const { created, coordinator, password, state: weave } = cluster;
  const { created: createdPlain, state: plain } = plainSide;

  try {
    const url = (port: number, pw = password) => `postgres://postgres:${encodeURIComponent(pw)}@127.0.0.1:${port}/postgres`;
    // --unix: both sides through their Unix-domain sockets (libpq's host=DIRECTORY), as a local psql connects by default.
    const socketUrl = (dir: string | undefined, port: number, pw: string) => {
      if (!dir) throw new Error('--unix: no Unix-domain socket directory here (path too long?)');
      return `postgres://postgres:${encodeURIComponent(pw)}@/postgres?host=${encodeURIComponent(dir)}&port=${port}`;
    };
    const weaveUrl = o.unix ? socketUrl(coordinator.address.socketDir, coordinator.address.port, password) : url(coordinator.address.port);
    const plainUrl = o.unix
      ? socketUrl(createdPlain.config.coordinator.socketDir, createdPlain.config.coordinator.port, plain.clientPassword)
      : url(createdPlain.config.coordinator.port, plain.clientPassword);
    console.log(`pgbench connects through ${o.unix ? 'Unix-domain sockets' : 'loopback TCP'} on both sides`);
    const version = (await psql(plainUrl, 'show server_version')).stdout.trim();
    console.log(`PostgreSQL ${version}; pgweave coordinator (in-process) with ${o.workers} workers, ${o.shards} shards`);

    for (const w of created.config.workers) await psql(weaveUrl, `SELECT citus_add_node('${w.host}', ${w.port})`);
    console.log(`pgbench -i -s ${o.scale} on both …`);
    await runProgram('pgbench', ['-i', '-q', '-s', String(o.scale), weaveUrl]);
    await runProgram('pgbench', ['-i', '-q', '-s', String(o.scale), plainUrl]);
    console.log('distributing the pgbench tables …');
    await psql(
      weaveUrl,
      `SELECT create_distributed_table('pgbench_accounts', 'aid', shard_count => ${o.shards});
       SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts');
       SELECT create_reference_table('pgbench_branches');
       SELECT create_reference_table('pgbench_tellers');`,
    );
    // Shards are plain tables on the workers: vacuum and analyze them there, as the plain side is.
    for (const w of workerNodes(weave)) await psql(url(w.port), 'VACUUM ANALYZE');
    await psql(plainUrl, 'VACUUM ANALYZE');

    console.log('warm-up (5 s per workload and side) …');
    for (const wl of o.workloads) {
      await pgbench(plainUrl, wl, o, 5);
      await pgbench(weaveUrl, wl, o, 5);
    }

    const loadBefore = loadavg().map((l) => l.toFixed(2)).join(' ');
    if (loadavg()[0]! > cpus().length * 0.5) console.log(`note: load average ${loadBefore} before the run: other work on this machine skews the numbers`);
    const line = (name: string, r: PgbenchResult) =>
      `${name} ${r.tps.toFixed(0).padStart(7)} tps  latency ${r.latencyMs.toFixed(3)} ms  (${r.transactions} transactions, ${r.failed} failed)`;
    const results = new Map<string, { plain: number[]; weave: number[]; cpu: number[] }>();
    for (const wl of o.workloads) results.set(wl, { plain: [], weave: [], cpu: [] });
    for (let round = 1; round <= o.rounds; round++) {
      for (const wl of o.workloads) {
        const plainCpu0 = await settledServersCpuMicros(plain);
        const plainSplit0 = serversCpuSnapshot(plain);
        const p = await pgbench(plainUrl, wl, o);
        const plainServers = ((await settledServersCpuMicros(plain)) - plainCpu0) / Math.max(1, p.transactions);
        console.log(line(`-${wl} round ${round} PostgreSQL:`, p) + `  server CPU ${plainServers.toFixed(0)} µs/transaction`);
        console.log(`  its server by process: ${cpuSplit(cpuByProcessKind(plainSplit0, serversCpuSnapshot(plain)), p.transactions)}`);
        console.log(`  CPU: ${cpuBudget(p, o.duration, plainServers)}`);
        const weaveCpu0 = await settledServersCpuMicros(weave);
        const weaveSplit0 = serversCpuSnapshot(weave);
        const { runs: runs0, coalesced: coalesced0, resent: resent0, writes: writes0, requests: requests0 } = channelStats;
        const cpu0 = process.cpuUsage();
        const w = await pgbench(weaveUrl, wl, o);
        const cpu = process.cpuUsage(cpu0);
        const weaveServers = ((await settledServersCpuMicros(weave)) - weaveCpu0) / Math.max(1, w.transactions);
        const weaveSplit = cpuSplit(cpuByProcessKind(weaveSplit0, serversCpuSnapshot(weave)), w.transactions);
        const cpuPerTx = (cpu.user + cpu.system) / Math.max(1, w.transactions);
        const perTx = (micros: number) => (micros / Math.max(1, w.transactions)).toFixed(0);
        console.log(
          line(`-${wl} round ${round} pgweave:   `, w) +
            `  ratio ${(w.tps / p.tps).toFixed(2)}  coordinator CPU ${cpuPerTx.toFixed(0)} µs/transaction (user ${perTx(cpu.user)}, system ${perTx(cpu.system)}), its servers ${weaveServers.toFixed(0)} µs/transaction`,
        );
        console.log(`  its servers by process: ${weaveSplit}`);
        console.log(`  CPU: ${cpuBudget(w, o.duration, weaveServers, cpuPerTx)}`);
        const runs = channelStats.runs - runs0;
        const coalesced = channelStats.coalesced - coalesced0;
        if (coalesced > 0) console.log(`  shared Syncs: ${coalesced} statements in ${runs} runs (${(coalesced / runs).toFixed(1)} per run), ${channelStats.resent - resent0} re-sent`);
        const writes = channelStats.writes - writes0;
        if (writes > 0) console.log(`  channel writes: ${((channelStats.requests - requests0) / writes).toFixed(2)} requests per write`);
        if (w.failed > 0 || p.failed > 0) console.log(`warning: failed transactions (pgweave ${w.failed}, PostgreSQL ${p.failed})`);
        results.get(wl)!.plain.push(p.tps);
        results.get(wl)!.weave.push(w.tps);
        results.get(wl)!.cpu.push(cpuPerTx);
      }
    }

    console.log('');
    console.log(`summary (${o.rounds} round${o.rounds > 1 ? 's, medians' : ''}; ${o.workers} workers, ${o.shards} shards, scale ${o.scale}):`);
    for (const wl of o.workloads) {
      const r = results.get(wl)!;
      const p = median(r.plain);
      const w = median(r.weave);
      const goal = wl === 'S' && o.mode === 'prepared' ? ' (goal ≥ 0.80)' : '';
      console.log(`pgbench -${wl} -M ${o.mode} -c ${o.clients} -j ${o.threads} -T ${o.duration}: PostgreSQL ${p.toFixed(0)} tps, pgweave ${w.toFixed(0)} tps, ratio ${(w / p).toFixed(2)}${goal}; coordinator CPU ${median(r.cpu).toFixed(0)} µs/transaction`);
    }
    console.log(`load average (1/5/15 min): ${loadBefore} before, ${loadavg().map((l) => l.toFixed(2)).join(' ')} after`);

    if (o.profile) {
      for (const wl of o.workloads) {
        console.log('');
        console.log(`profiling one more pgweave run of -${wl} (${o.duration} s) …`);
        const stop = await startProfiler();
        const r = await pgbench(weaveUrl, wl, o);
        const profile = await stop();
        console.log(`profiled run: ${r.tps.toFixed(0)} tps (the profiler slows it down)`);
        for (const l of profileSummary(profile, 20)) console.log(l);
        if (o.profileOut) {
          const file = `${o.profileOut}-${wl}.cpuprofile`;
          writeFileSync(file, JSON.stringify(profile));
          console.log(`profile written to ${file} (open in Chrome DevTools → Performance)`);
        }
      }
    }
  } finally {
    await cluster.stop();
    await plainSide.stop();
  }
}

export const router: Benchmark = {
  description: 'pgbench -S and -N (prepared) on distributed pgbench tables through pgweave vs. one plain PostgreSQL',
  usage: USAGE,
  run: runRouter,
};
