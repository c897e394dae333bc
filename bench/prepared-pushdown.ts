/**
 * `npm run bench -- prepared-pushdown`: prepared statements (extended
 * protocol, parameters bound per execution) over a distributed events table
 * (2 workers, 8 shards) against one PostgreSQL holding the same rows, same
 * run: partial aggregates with a parameter in WHERE, the same statement
 * pulled (a volatile call keeps it from the shards, as every statement with
 * parameters was before pushdown took parameters), variance/stddev, and
 * ROLLUP. Median of the runs after a warm-up; the ratio pgweave/PostgreSQL.
 */
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../test/helpers/cluster.js';
import { startTestPostgres, type TestPostgres } from '../test/helpers/postgres.js';
import { machineSummary } from './support.js';
import type { Benchmark } from './run.js';

const USAGE = 'prepared-pushdown [--rows N=1000000] [--reps N=3]';

const CASES: Array<[string, string, unknown[]]> = [
  ['count/sum by category, ts > $1', 'SELECT category, count(*), sum(value) FROM events WHERE ts > $1 GROUP BY category ORDER BY category', ['2024-01-03']],
  ['the same, pulled (random() >= 0 added)', 'SELECT category, count(*), sum(value) FROM events WHERE ts > $1 AND random() >= 0 GROUP BY category ORDER BY category', ['2024-01-03']],
  ['stddev/var_pop by category', 'SELECT category, stddev(value), var_pop(device_id) FROM events WHERE device_id < $1 GROUP BY category ORDER BY category', [5000]],
  ['ROLLUP (category, device_id % 3)', 'SELECT category, device_id % 3 AS m, count(*) FROM events WHERE ts > $1 GROUP BY ROLLUP (category, device_id % 3) ORDER BY GROUPING(category, device_id % 3), 1, 2', ['2024-01-03']],
];

async function median(c: pg.Client, name: string, sql: string, values: unknown[], reps: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i <= reps; i++) {
    const started = performance.now();
    await c.query({ name, text: sql, values });
    if (i > 0) times.push(performance.now() - started); // the first run prepares and warms up
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

async function run(args: string[]): Promise<void> {
  let rows = 1_000_000;
  let reps = 3;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rows') rows = Number(args[++i]);
    else if (args[i] === '--reps') reps = Number(args[++i]);
    else throw new Error(`usage: ${USAGE}`);
  }
  console.log(`prepared-pushdown: ${rows} events; pgweave (2 workers, 8 shards) vs one PostgreSQL; median of ${reps} runs; ${machineSummary()}`);
  let cluster: TestCluster | undefined;
  let plain: TestPostgres | undefined;
  const clients: pg.Client[] = [];
  try {
    [cluster, plain] = await Promise.all([startTestCluster({ workers: 2 }), startTestPostgres()]);
    const [weave, reference] = [new pg.Client({ connectionString: cluster.url }), new pg.Client({ connectionString: plain.url })];
    clients.push(weave, reference);
    await Promise.all(clients.map((c) => c.connect()));
    for (const n of cluster.workers) await weave.query(`SELECT citus_add_node('${n.host}', ${n.port})`);
    const create = `CREATE TABLE events (device_id int, category text, ts timestamptz, value numeric(10,2))`;
    const fill = `INSERT INTO events SELECT g % 10000, (ARRAY['a','b','c','d','e'])[1 + g % 5], timestamptz '2024-01-01' + g * interval '1 second', (g % 1000) / 10.0
                  FROM generate_series(1, ${rows}) g`;
    await reference.query(create);
    await weave.query(create);
    await weave.query(`SELECT create_distributed_table('events', 'device_id', shard_count => 8)`);
    for (const c of clients) {
      await c.query(fill);
      await c.query('ANALYZE');
    }
    console.log('| statement | pgweave | PostgreSQL | ratio |\n|---|---:|---:|---:|');
    for (const [i, [label, sql, values]] of CASES.entries()) {
      const a = await median(weave, `q${i}`, sql, values, reps);
      const b = await median(reference, `q${i}`, sql, values, reps);
      console.log(`| ${label} | ${a.toFixed(0)} ms | ${b.toFixed(0)} ms | ${(a / b).toFixed(2)} |`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await Promise.all([cluster?.stop(), plain?.stop()]);
  }
}

export const preparedPushdown: Benchmark = {
  description: 'prepared statements pushed down with their parameters vs one PostgreSQL',
  usage: USAGE,
  run,
};
