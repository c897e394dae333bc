/**
 * Shared setup of the DDL tests: a 2-worker cluster with both workers
 * registered, a client connection through the coordinator, internal-role
 * connections to every worker (to look at shards directly) and to the
 * coordinator PostgreSQL, and a way to run a utility statement through
 * runDistributedUtility in a real client session on the coordinator
 * PostgreSQL, for statement kinds the planner does not route yet.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { makeContext, type TestContext } from '../commands/command-context.js';
import { runDistributedUtility } from '../../src/commands/ddl/run-utility.js';
import { initParser, parseSql } from '../../src/sql/parse.js';

export interface DdlCluster {
  cluster: TestCluster;
  /** A client of the coordinator (the cluster's client superuser). */
  client: pg.Client;
  /** Internal-role connections to each worker's "postgres" database. */
  workers: pg.Client[];
  /** Internal-role connection to the coordinator PostgreSQL. */
  coordinatorPg: pg.Client;
  direct: TestContext;
  stop(): Promise<void>;
}

/** `workers` PostgreSQL servers (2 by default), the first `registered` of them (all by default) added with citus_add_node. */
export async function startDdlCluster(opts: { workers?: number; registered?: number } = {}): Promise<DdlCluster> {
  const cluster = await startTestCluster({ workers: opts.workers ?? 2 });
  const { user, password } = cluster.config.internal;
  const client = new pg.Client({ connectionString: cluster.url });
  await client.connect();
  client.on('error', () => {});
  for (const w of cluster.workers.slice(0, opts.registered ?? cluster.workers.length)) await client.query('SELECT citus_add_node($1, $2)', [w.host, w.port]);
  const workers = await Promise.all(
    cluster.workers.map(async (w) => {
      const c = new pg.Client({ host: w.host, port: w.port, user, password, database: 'postgres' });
      await c.connect();
      return c;
    }),
  );
  const coordinatorPg = new pg.Client({ host: cluster.coordinatorPg.host, port: cluster.coordinatorPg.port, user, password, database: 'postgres' });
  await coordinatorPg.connect();
  const direct = await makeContext(cluster);
  await initParser();
  return {
    cluster,
    client,
    workers,
    coordinatorPg,
    direct,
    async stop() {
      await Promise.allSettled([client.end(), coordinatorPg.end(), ...workers.map((w) => w.end())]);
      direct.close();
      await cluster.stop();
    },
  };
}

export interface ShardInfo {
  shardId: number;
  /** `<table>_<shardid>`, unquoted */
  name: string;
  worker: pg.Client;
}

/** Every shard placement of a table, with a connection to the worker holding it. */
export async function shardsOf(c: DdlCluster, table: string): Promise<ShardInfo[]> {
  const r = await c.client.query(
    `SELECT s.shardid, n.nodeport, c.relname FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
     JOIN pg_dist_node n USING (groupid) JOIN pg_class c ON c.oid = s.logicalrelid
     WHERE s.logicalrelid = ${c.client.escapeLiteral(table)}::regclass ORDER BY s.shardminvalue::int NULLS FIRST, n.nodeport`,
  );
  return r.rows.map((row) => ({
    shardId: Number(row.shardid),
    name: `${row.relname}_${row.shardid}`,
    worker: c.workers[c.cluster.workers.findIndex((w) => w.port === Number(row.nodeport))]!,
  }));
}

/** Runs `sql` (with $1 = the shard's qualified name as regclass text) on every shard; returns one result per shard. */
export async function onShards(c: DdlCluster, table: string, sql: string, schema = 'public'): Promise<Array<{ shard: ShardInfo; rows: any[] }>> {
  const out = [];
  for (const shard of await shardsOf(c, table)) {
    const r = await shard.worker.query(sql, [`"${schema}"."${shard.name}"`]);
    out.push({ shard, rows: r.rows });
  }
  return out;
}

/** No prepared transaction is left on any node. */
export async function assertNoPreparedTransactions(c: DdlCluster): Promise<void> {
  for (const node of [c.coordinatorPg, ...c.workers]) {
    const r = await node.query('SELECT gid FROM pg_prepared_xacts');
    assert.deepEqual(r.rows, [], 'prepared transactions left behind');
  }
}

/** Runs a utility statement through runDistributedUtility in a client session on the coordinator PostgreSQL. */
export async function runUtilityDirect(c: DdlCluster, sql: string): Promise<string> {
  const catalog = await c.direct.ctx.metadata.get('postgres');
  const stmt = parseSql(sql).stmts[0]!.stmt;
  const tables = [...catalog.tables.values()];
  return runDistributedUtility({ ...c.direct.ctx, inTransactionBlock: false }, sql, stmt, tables);
}

/** An assert.rejects matcher for a PostgreSQL error (from pg or a PgError). */
export function pgError(code: string, message?: RegExp, detail?: RegExp) {
  return (err: any) => {
    assert.equal(err?.code, code, `expected ${code}, got ${err?.code}: ${err?.message}`);
    if (message) assert.match(err.message, message);
    if (detail) assert.match(err.detail ?? err.fields?.detail ?? '', detail);
    return true;
  };
}
