/**
 * passthrough: what the coordinator costs on the hot path of a single-node
 * read. One plain PostgreSQL, an in-process pgweave coordinator in front of it,
 * `pgbench -S -M prepared` through pgweave and straight at the same PostgreSQL,
 * in one run; prints both TPS and their ratio. The project's goal is ≥ 0.8 of
 * direct; a byte-piping proxy typically reaches about 0.45.
 *
 * --profile adds one more pgweave run under the V8 CPU profiler (in-process,
 * node:inspector) and prints the functions with the most self time. That run's
 * TPS is lower (the profiler costs) and is not the headline number.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import net from 'node:net';
import { cpus, loadavg } from 'node:os';
import { machineSummary, parsePriority, runProgram, startBenchCluster } from './support.js';
import type { Benchmark } from './run.js';

interface Options {
  duration: number;
  clients: number;
  threads: number;
  scale: number;
  rounds: number;
  profile: boolean;
  profileOut: string | null;
  pipeProxy: boolean;
  /** Scheduling priority (nice value) for everything the benchmark runs, or null to leave it. */
  priority: number | null;
}

const USAGE =
  'passthrough [--duration S=20] [--clients N=8] [--threads N=2] [--scale N=10] [--rounds N=1] [--pipe-proxy] [--priority NICE] [--profile] [--profile-out FILE.cpuprofile]';

function parseOptions(args: string[]): Options {
  const o: Options = { duration: 20, clients: 8, threads: 2, scale: 10, rounds: 1, profile: false, profileOut: null, pipeProxy: false, priority: null };
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
    else if (a === '--rounds') o.rounds = value();
    else if (a === '--profile') o.profile = true;
    else if (a === '--pipe-proxy') o.pipeProxy = true;
    else if (a === '--priority') {
      o.priority = parsePriority(args[++i]);
    }
    else if (a === '--profile-out') {
      o.profile = true;
      o.profileOut = args[++i] ?? null;
    } else throw new Error(`unknown option ${a}\nusage: ${USAGE}`);
  }
  return o;
}

/**
 * The reference point: a plain byte-piping TCP proxy (socket.pipe both ways)
 * in this same process, the least any Node.js proxy can do.
 */
async function startPipeProxy(target: { host: string; port: number }): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (client) => {
    const backend = net.connect({ host: target.host, port: target.port, noDelay: true });
    sockets.add(client).add(backend);
    const done = () => {
      client.destroy();
      backend.destroy();
      sockets.delete(client);
      sockets.delete(backend);
    };
    client.on('error', done).on('close', done);
    backend.on('error', done).on('close', done);
    client.pipe(backend);
    backend.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
}

async function pgbench(url: string, o: Options): Promise<PgbenchResult> {
  const { stdout } = await runProgram('pgbench', ['-S', '-M', 'prepared', '-c', String(o.clients), '-j', String(o.threads), '-T', String(o.duration), '-n', url]);
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

/** Self time per function (summed over call sites), the top `n`, as printable lines. */
function topSelfTime(profile: { nodes: ProfileNode[] }, n: number): string[] {
  const byFunction = new Map<string, number>();
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
  }
  const lines = [...byFunction.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([key, hits]) => `${((100 * hits) / total).toFixed(1).padStart(5)}%  ${key}`);
  const busy = (100 * total) / Math.max(1, total + idle);
  return [`coordinator thread busy ${busy.toFixed(0)}% of the run; self time as % of busy samples:`, ...lines];
}

async function runPassthrough(args: string[]): Promise<void> {
  const o = parseOptions(args);
  console.log(`machine: ${machineSummary()}`);
  // On a shared machine, --priority gives the benchmark's processes the same,
  // higher priority: this process (the coordinator), pgbench (its child) and
  // the postmaster, whose backends forked from now on inherit it.
  const cluster = await startBenchCluster({ name: 'passthrough', workers: 0, priority: o.priority });
  const { created, coordinator, password } = cluster;
  let pipeProxy: { port: number; close(): Promise<void> } | null = null;
  cluster.atStop(async () => pipeProxy?.close());

  try {
    if (o.priority !== null) console.log(`priority: nice ${o.priority} for the coordinator, pgbench and PostgreSQL`);
    const pgAddr = created.config.coordinator;
    const directUrl = `postgres://postgres:${password}@${pgAddr.host}:${pgAddr.port}/postgres`;
    const weaveUrl = `postgres://postgres:${password}@${coordinator.address.host}:${coordinator.address.port}/postgres`;
    pipeProxy = o.pipeProxy ? await startPipeProxy(pgAddr) : null;
    const pipeUrl = pipeProxy ? `postgres://postgres:${password}@127.0.0.1:${pipeProxy.port}/postgres` : null;
    const version = (await runProgram('psql', ['-X', '-At', directUrl, '-c', 'show server_version'])).stdout.trim();
    console.log(`PostgreSQL ${version} at ${pgAddr.host}:${pgAddr.port}; pgweave coordinator (in-process) at ${coordinator.address.host}:${coordinator.address.port}`);

    console.log(`pgbench -i -s ${o.scale} …`);
    await runProgram('pgbench', ['-i', '-q', '-s', String(o.scale), directUrl]);
    await runProgram('psql', ['-X', directUrl, '-c', 'VACUUM ANALYZE']);

    const pgbenchArgs = `pgbench -S -M prepared -c ${o.clients} -j ${o.threads} -T ${o.duration} -n`;
    console.log(`warm-up (5 s each way) …`);
    await pgbench(directUrl, { ...o, duration: 5 });
    await pgbench(weaveUrl, { ...o, duration: 5 });
    if (pipeUrl) await pgbench(pipeUrl, { ...o, duration: 5 });

    // Rounds alternate direct and pgweave so that other load on the machine
    // falls on both sides alike; the summary takes medians.
    const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
    const loadBefore = load();
    if (loadavg()[0]! > cpus().length * 0.5) {
      console.log(`note: load average ${loadBefore} before the run: other work on this machine skews the numbers`);
    }
    const direct: PgbenchResult[] = [];
    const weave: PgbenchResult[] = [];
    const piped: PgbenchResult[] = [];
    const line = (name: string, r: PgbenchResult) =>
      `${name} ${r.tps.toFixed(0).padStart(7)} tps  latency ${r.latencyMs.toFixed(3)} ms  (${r.transactions} transactions, ${r.failed} failed)`;
    for (let round = 1; round <= o.rounds; round++) {
      const d = await pgbench(directUrl, o);
      direct.push(d);
      console.log(line(`round ${round} direct: `, d));
      const w = await pgbench(weaveUrl, o);
      weave.push(w);
      console.log(line(`round ${round} pgweave:`, w) + `  ratio ${(w.tps / d.tps).toFixed(2)}`);
      if (pipeUrl) {
        const p = await pgbench(pipeUrl, o);
        piped.push(p);
        console.log(line(`round ${round} pipe:   `, p) + `  ratio ${(p.tps / d.tps).toFixed(2)}`);
      }
    }
    const median = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const d = median(direct.map((r) => r.tps));
    const w = median(weave.map((r) => r.tps));
    console.log('');
    console.log(`${pgbenchArgs}   (${o.rounds} round${o.rounds > 1 ? 's, medians' : ''})`);
    console.log(`direct PostgreSQL: ${d.toFixed(0)} tps`);
    console.log(`through pgweave:   ${w.toFixed(0)} tps`);
    // each round's ratio compares runs made a minute apart: steadier than a ratio of medians
    const ratio = median(weave.map((r, i) => r.tps / direct[i]!.tps));
    console.log(`ratio:             ${ratio.toFixed(2)} of direct (goal ≥ 0.80)${o.rounds > 1 ? '  [median of per-round ratios]' : ''}`);
    if (piped.length > 0) {
      const p = median(piped.map((r) => r.tps));
      const pipeRatio = median(piped.map((r, i) => r.tps / direct[i]!.tps));
      console.log(`byte-piping proxy: ${p.toFixed(0)} tps, ${pipeRatio.toFixed(2)} of direct (reference)`);
    }
    console.log(`load average (1/5/15 min): ${loadBefore} before, ${load()} after`);

    if (o.profile) {
      console.log('');
      console.log(`profiling one more pgweave run (${o.duration} s) …`);
      const stop = await startProfiler();
      const p = await pgbench(weaveUrl, o);
      const profile = await stop();
      console.log(`profiled run: ${p.tps.toFixed(0)} tps (the profiler slows it down)`);
      for (const line of topSelfTime(profile, 15)) console.log(line);
      if (o.profileOut) {
        writeFileSync(o.profileOut, JSON.stringify(profile));
        console.log(`profile written to ${o.profileOut} (open in Chrome DevTools → Performance)`);
      }
    }
  } finally {
    await cluster.stop();
  }
}

export const passthrough: Benchmark = {
  description: 'pgbench -S -M prepared through pgweave vs. straight at the same PostgreSQL',
  usage: USAGE,
  run: runPassthrough,
};
