/**
 * ingest: bulk loading and data movement. One local cluster (coordinator
 * PostgreSQL + 2 workers + an in-process pgweave coordinator) and, as the
 * plain PostgreSQL of the same run, the cluster's coordinator PostgreSQL
 * addressed directly (same binaries, same settings, same machine).
 *
 * 1. COPY: a generated file of wide-ish events (10 columns, ~190 bytes a row)
 *    loaded with psql's `\copy` into a table distributed over the 2 workers
 *    through pgweave, and into a plain table of the plain PostgreSQL; rounds
 *    alternate which goes first so other load on the machine falls on both.
 *    Prints rows/s of each and the ratio (goal ≥ 1.0: two shards' servers
 *    against one server).
 * 1b. COPY … TO STDOUT of the whole table (psql `\copy … to '/dev/null'`), pgweave
 *    streaming every shard's COPY against the plain server's one COPY.
 * 2. INSERT … SELECT of every row, in each of the three modes (pushdown into a
 *    co-located table; repartition into a table distributed by another
 *    column; through the coordinator, forced by LIMIT), and the same
 *    statement on the plain PostgreSQL; rows/s and ratios.
 */
import { chmodSync, createWriteStream, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { machineSummary, median, parsePriority, runProgram, startBenchCluster } from './support.js';
import type { Benchmark } from './run.js';

interface Options {
  rows: number;
  rounds: number;
  shards: number;
  priority: number | null;
}

const USAGE = 'ingest [--rows N=2000000] [--rounds N=2] [--shards N=32] [--priority NICE]';

function parseOptions(args: string[]): Options {
  const o: Options = { rows: 2_000_000, rounds: 2, shards: 32, priority: null };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): number => {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--rows') o.rows = value();
    else if (a === '--rounds') o.rounds = value();
    else if (a === '--shards') o.shards = value();
    else if (a === '--priority') {
      o.priority = parsePriority(args[++i]);
    } else throw new Error(`unknown option ${a}\nusage: ${USAGE}`);
  }
  return o;
}

function psql(url: string, ...commands: string[]): Promise<{ stdout: string; stderr: string }> {
  return runProgram('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', url, ...commands.flatMap((c) => ['-c', c])]);
}

/** Wall-clock seconds of one psql command. */
async function timed(url: string, command: string): Promise<{ seconds: number; output: string }> {
  const start = process.hrtime.bigint();
  const { stdout } = await psql(url, command);
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, output: stdout.trim() };
}

const TABLE = (name: string) => `CREATE TABLE ${name} (
  tenant_id int NOT NULL,
  event_id bigint NOT NULL,
  user_id bigint NOT NULL,
  kind text NOT NULL,
  url text,
  referrer text,
  user_agent text,
  country char(2),
  amount numeric(12,2),
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, event_id))`;

const BY_USER = (name: string) => TABLE(name).replace('PRIMARY KEY (tenant_id, event_id)', 'PRIMARY KEY (user_id, event_id)');

/** Writes `rows` events as COPY text; deterministic. */
async function generate(path: string, rows: number): Promise<number> {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  const kinds = ['page_view', 'click', 'signup', 'purchase', 'search', 'logout'];
  const agents = ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4) Safari/604.1', 'curl/8.5.0'];
  const countries = ['US', 'DE', 'FR', 'BR', 'IN', 'JP', 'NL', 'SE'];
  let a = 20240917;
  const rnd = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const base = Date.UTC(2024, 0, 1) / 1000;
  let chunk = '';
  for (let i = 1; i <= rows; i++) {
    const tenant = 1 + Math.floor(rnd() * 1000);
    const user = Math.floor(rnd() * 5_000_000);
    const kind = kinds[Math.floor(rnd() * kinds.length)]!;
    const ts = new Date((base + i * 7) * 1000).toISOString().replace('T', ' ').replace('.000Z', '+00');
    chunk += `${tenant}\t${i}\t${user}\t${kind}\thttps://shop.example.com/t/${tenant}/p/${Math.floor(rnd() * 100000)}\t${rnd() < 0.3 ? '\\N' : 'https://search.example.org/?q=item' + Math.floor(rnd() * 1000)}\t${agents[i % agents.length]}\t${countries[Math.floor(rnd() * countries.length)]}\t${(rnd() * 500).toFixed(2)}\t${ts}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      chunk = '';
    }
  }
  out.write(chunk);
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return statSync(path).size;
}

const rate = (rows: number, seconds: number) => `${Math.round(rows / seconds).toLocaleString('en-US').padStart(10)} rows/s (${seconds.toFixed(2)} s)`;

async function runIngest(args: string[]): Promise<void> {
  const o = parseOptions(args);
  console.log(`machine: ${machineSummary()}`);
  const cluster = await startBenchCluster({ name: 'ingest', workers: 2, priority: o.priority });
  const { dir, created, coordinator, password } = cluster;
  try {
    if (o.priority !== null) console.log(`priority: nice ${o.priority} for the coordinator, psql and every PostgreSQL`);
    const workerPorts = created.config.workers.map((w) => w.port);
    const pg = created.config.coordinator;
    const plainUrl = `postgres://postgres:${password}@${pg.host}:${pg.port}/postgres`;
    const weaveUrl = `postgres://postgres:${password}@${coordinator.address.host}:${coordinator.address.port}/postgres`;
    const version = (await psql(plainUrl, 'show server_version')).stdout.trim();
    console.log(`PostgreSQL ${version}: plain at ${pg.host}:${pg.port}; workers at ${workerPorts.join(', ')}; pgweave coordinator (in-process) at ${coordinator.address.port}`);

    for (const w of created.config.workers) await psql(weaveUrl, `SELECT citus_add_node('${w.host}', ${w.port})`);
    await psql(
      weaveUrl,
      `SET citus.shard_count = ${o.shards}`,
      `${TABLE('events')}; ${TABLE('events_copy')}; ${BY_USER('events_by_user')}`,
      `SELECT create_distributed_table('events', 'tenant_id')`,
      `SELECT create_distributed_table('events_copy', 'tenant_id', colocate_with => 'events')`,
      `SELECT create_distributed_table('events_by_user', 'user_id')`,
    );
    await psql(plainUrl, `${TABLE('plain_events')}; ${TABLE('plain_events_copy')}; ${BY_USER('plain_events_by_user')}`);

    const file = join(dir, 'events.tsv');
    console.log(`generating ${o.rows.toLocaleString('en-US')} rows …`);
    const bytes = await generate(file, o.rows);
    chmodSync(file, 0o644);
    console.log(`file: ${(bytes / 2 ** 20).toFixed(0)} MiB, ${(bytes / o.rows).toFixed(0)} bytes a row; ${o.shards} shards over 2 workers`);
    const loadBefore = loadavg().map((l) => l.toFixed(2)).join(' ');
    if (loadavg()[0]! > cpus().length * 0.5) console.log(`note: load average ${loadBefore} before the run: other work on this machine skews the numbers`);

    // 1. COPY
    const plain: number[] = [];
    const weave: number[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      await psql(plainUrl, 'TRUNCATE plain_events', 'CHECKPOINT');
      await psql(weaveUrl, 'TRUNCATE events');
      const runPlain = () => timed(plainUrl, `\\copy plain_events from '${file}'`);
      const runWeave = () => timed(weaveUrl, `\\copy events from '${file}'`);
      let p: { seconds: number; output: string };
      let w: { seconds: number; output: string };
      if (round % 2 === 1) {
        p = await runPlain();
        w = await runWeave();
      } else {
        w = await runWeave();
        p = await runPlain();
      }
      if (p.output !== `COPY ${o.rows}` || w.output !== `COPY ${o.rows}`) throw new Error(`unexpected COPY result: plain "${p.output}", pgweave "${w.output}"`);
      plain.push(o.rows / p.seconds);
      weave.push(o.rows / w.seconds);
      ratios.push(p.seconds / w.seconds);
      console.log(`round ${round}: plain PostgreSQL ${rate(o.rows, p.seconds)}   pgweave ${rate(o.rows, w.seconds)}   ratio ${(p.seconds / w.seconds).toFixed(2)}`);
    }
    const count = (await psql(weaveUrl, 'SELECT count(*) FROM events')).stdout.trim();
    if (count !== String(o.rows)) throw new Error(`pgweave holds ${count} rows, expected ${o.rows}`);

    // 1b. COPY … TO STDOUT of the whole table (streamed from the shards), into /dev/null
    const copyOut: string[] = [];
    {
      const p = await timed(plainUrl, `\\copy plain_events to '/dev/null'`);
      const w = await timed(weaveUrl, `\\copy events to '/dev/null'`);
      if (p.output !== `COPY ${o.rows}` || w.output !== `COPY ${o.rows}`) throw new Error(`unexpected COPY TO result: plain "${p.output}", pgweave "${w.output}"`);
      const line = `COPY … TO STDOUT (\\copy to /dev/null)       pgweave ${rate(o.rows, w.seconds)}   plain PostgreSQL ${rate(o.rows, p.seconds)}   ratio ${(p.seconds / w.seconds).toFixed(2)}`;
      copyOut.push(line);
      console.log(line);
    }

    // 2. INSERT … SELECT, every row, per mode
    const modes: Array<{ name: string; weave: string; plain: string; target: string; plainTarget: string }> = [
      { name: 'pushdown (co-located)', weave: 'INSERT INTO events_copy SELECT * FROM events', plain: 'INSERT INTO plain_events_copy SELECT * FROM plain_events', target: 'events_copy', plainTarget: 'plain_events_copy' },
      { name: 'repartition (by user_id)', weave: 'INSERT INTO events_by_user SELECT * FROM events', plain: 'INSERT INTO plain_events_by_user SELECT * FROM plain_events', target: 'events_by_user', plainTarget: 'plain_events_by_user' },
      { name: 'via coordinator (LIMIT)', weave: `INSERT INTO events_copy SELECT * FROM events LIMIT ${o.rows}`, plain: `INSERT INTO plain_events_copy SELECT * FROM plain_events LIMIT ${o.rows}`, target: 'events_copy', plainTarget: 'plain_events_copy' },
    ];
    const modeResults: string[] = [];
    for (const m of modes) {
      await psql(weaveUrl, `TRUNCATE ${m.target}`);
      await psql(plainUrl, `TRUNCATE ${m.plainTarget}`, 'CHECKPOINT');
      const p = await timed(plainUrl, m.plain);
      const w = await timed(weaveUrl, m.weave);
      if (w.output !== `INSERT 0 ${o.rows}`) throw new Error(`${m.weave}: ${w.output}`);
      const line = `INSERT … SELECT ${m.name.padEnd(25)} pgweave ${rate(o.rows, w.seconds)}   plain PostgreSQL ${rate(o.rows, p.seconds)}   ratio ${(p.seconds / w.seconds).toFixed(2)}`;
      modeResults.push(line);
      console.log(line);
    }

    console.log('');
    console.log(`COPY of ${o.rows.toLocaleString('en-US')} rows (${(bytes / 2 ** 20).toFixed(0)} MiB, psql \\copy)   (${o.rounds} round${o.rounds > 1 ? 's, medians' : ''})`);
    console.log(`plain PostgreSQL: ${Math.round(median(plain)).toLocaleString('en-US')} rows/s`);
    console.log(`pgweave, 2 workers: ${Math.round(median(weave)).toLocaleString('en-US')} rows/s`);
    console.log(`ratio: ${median(ratios).toFixed(2)} (goal ≥ 1.0)${o.rounds > 1 ? '  [median of per-round ratios]' : ''}`);
    for (const l of [...copyOut, ...modeResults]) console.log(l);
    console.log(`load average (1/5/15 min): ${loadBefore} before, ${loadavg().map((l) => l.toFixed(2)).join(' ')} after`);
  } finally {
    await cluster.stop();
  }
}

export const ingest: Benchmark = {
  description: 'COPY and INSERT … SELECT through pgweave (2 workers) vs. one plain PostgreSQL',
  usage: USAGE,
  run: runIngest,
};
