/**
 * rebalance: moving a shard group over logical replication while a writer
 * keeps inserting. One local cluster (coordinator PostgreSQL + 2 workers + an
 * in-process pgweave coordinator); the plain PostgreSQL of the same run is
 * the cluster's coordinator PostgreSQL addressed directly.
 *
 * A table distributed over 2 shards (one per worker) is loaded with ~2×N MB,
 * then one writer inserts rows one statement at a time through pgweave:
 * first for a few seconds undisturbed, then while the shard on worker 1
 * (~N MB with its primary key) moves to worker 2 with
 * citus_move_shard_placement. Prints the move's time and MB/s, the writer's
 * inserts/s before and during the move (ratio), its longest single write
 * (the cutover's blocked window), and, as the plain baseline, the time the
 * plain PostgreSQL takes to copy the same rows into a new table and index it.
 */
import pg from 'pg';
import type { Benchmark } from './run.js';
import { machineSummary, startBenchCluster } from './support.js';

const USAGE = 'rebalance [--mb N=100] [--baseline-seconds N=5]';

function parseOptions(args: string[]): { mb: number; baselineSeconds: number } {
  const o = { mb: 100, baselineSeconds: 5 };
  for (let i = 0; i < args.length; i++) {
    const v = Number(args[i + 1]);
    if (args[i] === '--mb' && v > 0) o.mb = v;
    else if (args[i] === '--baseline-seconds' && v > 0) o.baselineSeconds = v;
    else throw new Error(`unknown option ${args[i]}\nusage: ${USAGE}`);
    i++;
  }
  return o;
}

/** Inserts rows one at a time until stopped; counts them and the longest write. */
class Writer {
  inserts = 0;
  longestMs = 0;
  errors = 0;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  constructor(private readonly client: pg.Client, private nextId: number) {}
  start(): void {
    this.stopped = false;
    this.loop = (async () => {
      while (!this.stopped) {
        const t0 = performance.now();
        try {
          await this.client.query('INSERT INTO items (id, v, payload) VALUES ($1, 0, $2)', [this.nextId++, 'w']);
          this.inserts++;
        } catch {
          this.errors++;
        }
        this.longestMs = Math.max(this.longestMs, performance.now() - t0);
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

async function runRebalanceBench(args: string[]): Promise<void> {
  const o = parseOptions(args);
  console.log(`machine: ${machineSummary()}`);
  const cluster = await startBenchCluster({ name: 'rebalance', workers: 2 });
  const { created, coordinator, password } = cluster;
  const clients: pg.Client[] = [];
  try {
    const pgAddr = created.config.coordinator;
    const connect = async (host: string, port: number) => {
      const c = new pg.Client({ host, port, user: 'postgres', password, database: 'postgres' });
      await c.connect();
      clients.push(c);
      return c;
    };
    const weave = await connect(coordinator.address.host, coordinator.address.port);
    const plain = await connect(pgAddr.host, pgAddr.port);
    const [w1, w2] = created.config.workers;
    for (const w of created.config.workers) await weave.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
    const rows = Math.round((o.mb * 2 * 2 ** 20) / 170);
    await weave.query('CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL, payload text)');
    await weave.query("SELECT create_distributed_table('items', 'id', shard_count => 2)");
    const shards = await weave.query('SELECT shardid, nodeport FROM pg_dist_shard JOIN pg_dist_shard_placement USING (shardid) ORDER BY shardid');
    const moving = shards.rows.find((r) => Number(r.nodeport) === w1!.port)!;
    console.log(`loading ${rows.toLocaleString('en-US')} rows (~${o.mb * 2} MB) …`);
    const worker1 = await connect(w1!.host, w1!.port);
    const worker2 = await connect(w2!.host, w2!.port);
    // Loaded on the workers directly (fast); the rows are where their hash says, as through pgweave.
    for (const [c, id] of [[worker1, moving.shardid], [worker2, shards.rows.find((r) => r !== moving)!.shardid]] as const) {
      const range = await weave.query('SELECT shardminvalue::int AS lo, shardmaxvalue::int AS hi FROM pg_dist_shard WHERE shardid = $1', [id]);
      await c.query(
        `INSERT INTO items_${id} SELECT g, 0, repeat(md5(g::text), 4) FROM generate_series(1, $1) g WHERE hashint8(g) BETWEEN $2 AND $3`,
        [rows, range.rows[0].lo, range.rows[0].hi],
      );
      await c.query(`VACUUM ANALYZE items_${id}`);
    }
    const size = Number((await worker1.query(`SELECT pg_total_relation_size('items_${moving.shardid}') AS s`)).rows[0].s);
    const shardRows = Number((await worker1.query(`SELECT count(*) AS n FROM items_${moving.shardid}`)).rows[0].n);

    const writer = new Writer(await connect(coordinator.address.host, coordinator.address.port), rows + 1);
    writer.start();
    await new Promise((r) => setTimeout(r, o.baselineSeconds * 1000));
    await writer.stop();
    const before = writer.inserts / o.baselineSeconds;
    const longestBefore = writer.longestMs;
    writer.inserts = 0;
    writer.longestMs = 0;

    writer.start();
    const t0 = performance.now();
    await weave.query('SELECT citus_move_shard_placement($1, $2, $3, $4, $5)', [moving.shardid, w1!.host, w1!.port, w2!.host, w2!.port]);
    const moveSeconds = (performance.now() - t0) / 1000;
    await writer.stop();
    const during = writer.inserts / moveSeconds;

    // Plain baseline: the same rows copied into a new table and indexed on one PostgreSQL.
    await plain.query('CREATE TABLE plain_items (id bigint, v int NOT NULL, payload text)');
    await plain.query(`INSERT INTO plain_items SELECT g, 0, repeat(md5(g::text), 4) FROM generate_series(1, $1) g`, [shardRows]);
    const p0 = performance.now();
    await plain.query('CREATE TABLE plain_copy AS SELECT * FROM plain_items');
    await plain.query('ALTER TABLE plain_copy ADD PRIMARY KEY (id)');
    const plainSeconds = (performance.now() - p0) / 1000;

    const mb = size / 2 ** 20;
    console.log(`moved shard group: ${mb.toFixed(0)} MB (${shardRows.toLocaleString('en-US')} rows, with its primary key)`);
    console.log(`move time:         ${moveSeconds.toFixed(2)} s (${(mb / moveSeconds).toFixed(1)} MB/s)`);
    console.log(`plain copy+index:  ${plainSeconds.toFixed(2)} s on one PostgreSQL (move/plain = ${(moveSeconds / plainSeconds).toFixed(2)})`);
    console.log(`writer before:     ${before.toFixed(0)} inserts/s (longest ${longestBefore.toFixed(0)} ms)`);
    console.log(`writer during:     ${during.toFixed(0)} inserts/s (during/before = ${(during / before).toFixed(2)}); longest write ${writer.longestMs.toFixed(0)} ms; errors ${writer.errors}`);
  } finally {
    for (const c of clients) await c.end().catch(() => {});
    await cluster.stop();
  }
}

export const rebalance: Benchmark = {
  description: 'a shard group moved over logical replication while a writer inserts: move time, writer throughput before/during',
  usage: USAGE,
  run: runRebalanceBench,
};
