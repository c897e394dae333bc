/**
 * Helpers of the shard-operation tests: a writer and a reader running through
 * the coordinator while shards move, placement checks by hash (every row on
 * the node its shard's catalog placement names, inside the shard's range),
 * and the leftover check (no slots, publications, subscriptions, or tables
 * the catalog does not know, on any node); the cluster every file starts.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import type { CommandContext } from '../../src/commands/context.js';
import { call, makeContext, onNode, type TestContext } from '../commands/command-context.js';

export interface OperationsCluster {
  cluster: TestCluster;
  /** A command context of the test's own, to call Citus functions and read the catalog. */
  t: TestContext;
  /** A client of the coordinator. */
  sql: pg.Client;
  stop(): Promise<void>;
}

/**
 * A cluster of `workers` workers, the first `registered` of them added
 * with citus_add_node (the others stay free for the test to add).
 */
export async function startOperationsCluster(workers: number, registered = workers): Promise<OperationsCluster> {
  const cluster = await startTestCluster({ workers });
  const t = await makeContext(cluster);
  for (const w of cluster.workers.slice(0, registered)) await call(t.ctx, 'citus_add_node', [w.host, String(w.port)]);
  const sql = new pg.Client({ connectionString: cluster.url });
  await sql.connect();
  return {
    cluster,
    t,
    sql,
    async stop() {
      await sql.end();
      t.close();
      await cluster.stop();
    },
  };
}

export interface WorkloadReport {
  inserts: number;
  updates: number;
  errors: string[];
  /** Longest single write, ms (includes any wait at a cutover). */
  longestWriteMs: number;
  reads: number;
  readErrors: string[];
}

/**
 * Inserts new rows and updates existing ones continuously through the
 * coordinator (one statement per write, autocommit), remembering what every
 * row must contain; a reader counts rows meanwhile and checks the count
 * never falls below what was committed when its query started.
 */
export class Workload {
  readonly expected = new Map<number, number>();
  readonly report: WorkloadReport = { inserts: 0, updates: 0, errors: [], longestWriteMs: 0, reads: 0, readErrors: [] };
  private stopping = false;
  private loops: Promise<void>[] = [];
  private writer!: pg.Client;
  private reader!: pg.Client;

  constructor(
    private readonly url: string,
    private readonly table: string,
    private nextId: number,
  ) {}

  async start(): Promise<void> {
    this.writer = new pg.Client({ connectionString: this.url });
    this.reader = new pg.Client({ connectionString: this.url });
    await this.writer.connect();
    await this.reader.connect();
    this.loops = [this.writeLoop(), this.readLoop()];
  }

  private async writeLoop(): Promise<void> {
    let i = 0;
    while (!this.stopping) {
      const t0 = Date.now();
      try {
        if (i++ % 3 === 2 && this.expected.size > 0) {
          const id = 1 + ((i * 7919) % (this.nextId - 1));
          if (!this.expected.has(id)) continue;
          await this.writer.query(`UPDATE ${this.table} SET v = v + 1 WHERE id = $1`, [id]);
          this.expected.set(id, this.expected.get(id)! + 1);
          this.report.updates++;
        } else {
          const id = this.nextId++;
          await this.writer.query(`INSERT INTO ${this.table} (id, v) VALUES ($1, 0)`, [id]);
          this.expected.set(id, 0);
          this.report.inserts++;
        }
      } catch (err) {
        this.report.errors.push((err as Error).message);
      }
      this.report.longestWriteMs = Math.max(this.report.longestWriteMs, Date.now() - t0);
    }
  }

  private async readLoop(): Promise<void> {
    while (!this.stopping) {
      const committed = this.expected.size;
      try {
        const r = await this.reader.query(`SELECT count(*)::int AS n FROM ${this.table}`);
        if (r.rows[0].n < committed) this.report.readErrors.push(`count ${r.rows[0].n} < ${committed} committed`);
        this.report.reads++;
      } catch (err) {
        this.report.readErrors.push((err as Error).message);
      }
    }
  }

  async stop(): Promise<WorkloadReport> {
    this.stopping = true;
    await Promise.all(this.loops);
    await this.writer.end();
    await this.reader.end();
    return this.report;
  }

  /** Every row the writer committed is there with its last value, and nothing else. */
  async verify(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url });
    await c.connect();
    try {
      const r = await c.query(`SELECT id::int, v FROM ${this.table} ORDER BY id`);
      const actual = new Map<number, number>(r.rows.map((row) => [row.id, row.v]));
      let missing = 0;
      let wrong = 0;
      for (const [id, v] of this.expected) {
        if (!actual.has(id)) missing++;
        else if (actual.get(id) !== v) wrong++;
      }
      assert.equal(missing, 0, 'rows lost');
      assert.equal(wrong, 0, 'updates lost');
      assert.equal(actual.size, this.expected.size, 'unexpected rows');
    } finally {
      await c.end();
    }
  }
}

/** Loads rows 1..n with v = 0 through the coordinator; returns the map a Workload starts from. */
export async function loadRows(url: string, table: string, n: number): Promise<Map<number, number>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`INSERT INTO ${table} (id, v) SELECT g, 0 FROM generate_series(1, ${n}) g`);
  } finally {
    await c.end();
  }
  return new Map(Array.from({ length: n }, (_, i) => [i + 1, 0]));
}

export interface Placement {
  shardId: number;
  table: string;
  min: number;
  max: number;
  host: string;
  port: number;
}

export async function placements(ctx: CommandContext, withReference = false): Promise<Placement[]> {
  const r = await ctx.runAsClient(
    `SELECT s.shardid, s.logicalrelid::regclass::text, s.shardminvalue, s.shardmaxvalue, p.nodename, p.nodeport
     FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid) WHERE ${withReference ? 'true' : 's.shardminvalue IS NOT NULL'} ORDER BY s.shardid`,
  );
  return r.rows.map((row) => ({ shardId: Number(row[0]), table: row[1]!, min: Number(row[2]), max: Number(row[3]), host: row[4]!, port: Number(row[5]) }));
}

/**
 * Every shard is where the catalog says, and every row of it hashes into the
 * shard's range (`hashfn` of the distribution column `column`); returns the total row count of `table`.
 */
export async function checkRowsByHash(ctx: CommandContext, table: string, column = 'id', hashfn = 'hashint8'): Promise<number> {
  let total = 0;
  for (const p of await placements(ctx)) {
    if (p.table !== table) continue;
    const r = await onNode(ctx, { host: p.host, port: p.port }, `SELECT count(*), count(*) FILTER (WHERE ${hashfn}(${column}) NOT BETWEEN ${p.min} AND ${p.max}) FROM ${table}_${p.shardId}`);
    assert.equal(r.rows[0]![1], '0', `rows of shard ${p.shardId} outside its hash range`);
    total += Number(r.rows[0]![0]);
  }
  return total;
}

/**
 * No replication slot, publication or subscription on any node, and every
 * shard table on a node is one the catalog places there.
 */
export async function checkNoLeftovers(ctx: CommandContext, cluster: TestCluster): Promise<void> {
  const placed = new Set((await placements(ctx, true)).map((p) => `${p.port}:${p.table}_${p.shardId}`));
  for (const w of cluster.workers) {
    const slots = await onNode(ctx, w, 'SELECT slot_name FROM pg_replication_slots');
    assert.deepEqual(slots.rows, [], `replication slots left on ${w.port}`);
    const pubs = await onNode(ctx, w, 'SELECT pubname FROM pg_publication');
    assert.deepEqual(pubs.rows, [], `publications left on ${w.port}`);
    const subs = await onNode(ctx, w, 'SELECT subname FROM pg_subscription');
    assert.deepEqual(subs.rows, [], `subscriptions left on ${w.port}`);
    const tables = await onNode(ctx, w, `SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '_[0-9]+$' AND relnamespace = 'public'::regnamespace`);
    for (const [name] of tables.rows) assert.ok(placed.has(`${w.port}:${name}`), `orphan table ${name} on ${w.port}`);
  }
  const records = await ctx.runAsClient('SELECT count(*) FROM pgweave.cleanup');
  assert.deepEqual(records.rows, [['0']], 'cleanup records left');
}
