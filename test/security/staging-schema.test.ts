/**
 * The staging schema of broadcast joins in transaction blocks
 * (`pgweave_staging` on the workers, CREATE granted to PUBLIC): a second,
 * unprivileged role attacking a first role's staging table while it is in
 * use — straight on the worker, the strongest position a role can have.
 * The table is created inside the first role's open worker transaction, so
 * it is invisible to every other transaction: the attacker cannot list,
 * read or drop it, cannot learn its name (pg_stat_activity hides another
 * role's query text), and a table it creates under that name anyway
 * captures no row: the session creates its tables with CREATE TABLE, never
 * IF NOT EXISTS, so it never writes into a table it did not create.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let admin: pg.Client;

const ALICE = 'Alice-staging-7f3a1c';
const MALLORY = 'Mallory-staging-2b9e4d';
/** The join waits in `wait_gate` on each sales row while a superuser holds the gate (advisory lock 4242 on the workers). */
const JOIN = `SELECT c.region, sum(s.qty) AS q, count(*) AS n FROM sales s JOIN customers c ON c.cid = s.cust WHERE wait_gate(s.qty) GROUP BY 1 ORDER BY 1`;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  for (const w of cluster.workers) await admin.query(`SELECT citus_add_node('${w.host}', ${w.port})`);
  await admin.query(`CREATE ROLE alice LOGIN PASSWORD '${ALICE}'; CREATE ROLE mallory LOGIN PASSWORD '${MALLORY}'`);
  await admin.query(`
    CREATE TABLE sales (id int8 PRIMARY KEY, cust int, qty int);
    INSERT INTO sales SELECT g, g % 200, 1 + g % 9 FROM generate_series(1, 20000) g;
    CREATE TABLE customers (cid int PRIMARY KEY, region text);
    INSERT INTO customers SELECT g, (ARRAY['north','south','east'])[1 + g % 3] FROM generate_series(0, 199) g;`);
  await admin.query(`SELECT create_distributed_table('sales', 'id', shard_count => 4)`);
  await admin.query(`SELECT create_distributed_table('customers', 'cid', shard_count => 4, colocate_with => 'none')`);
  await admin.query('GRANT SELECT ON sales, customers TO alice');
  await admin.query(`CREATE FUNCTION wait_gate(int) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_catalog.pg_advisory_lock_shared(4242); PERFORM pg_catalog.pg_advisory_unlock_shared(4242); RETURN true; END $$`);
});

after(async () => {
  await admin?.end().catch(() => {});
  await cluster?.stop();
});

function workerClient(i: number, user: string, password: string): pg.Client {
  const w = cluster.workers[i]!;
  return new pg.Client({ host: w.host, port: w.port, user, password, database: 'postgres' });
}

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

test('another role can neither see, read, drop nor capture a staging table in use', { timeout: 120_000 }, async () => {
  const alice = new pg.Client({ host: cluster.config.listen.host, port: cluster.config.listen.port, user: 'alice', password: ALICE, database: 'postgres' });
  await alice.connect();
  const supers = cluster.workers.map((_, i) => workerClient(i, 'postgres', cluster.password));
  const mallories = cluster.workers.map((_, i) => workerClient(i, 'mallory', MALLORY));
  for (const c of [...supers, ...mallories]) await c.connect();
  try {
    const expected = (await admin.query(JOIN)).rows;
    // Alice's tasks on the sales shards wait at the gate: her staging tables exist meanwhile.
    for (const c of supers) await c.query('SELECT pg_advisory_lock(4242)');
    await alice.query('BEGIN');
    const running = alice.query(JOIN);
    running.catch(() => {});
    // The staging table's name, as only a superuser can see it (alice's waiting task names it).
    const found = { worker: -1, name: '' };
    for (let tries = 0; tries < 400 && found.worker < 0; tries++) {
      for (const [i, s] of supers.entries()) {
        const r = await s.query(`SELECT query FROM pg_stat_activity WHERE usename = 'alice' AND wait_event_type = 'Lock' AND query LIKE '%pgweave_staging%'`);
        const m = /"pgweave_staging"\."([^"]+)"/.exec(r.rows[0]?.query ?? '');
        if (m) Object.assign(found, { worker: i, name: m[1]! });
      }
      if (found.worker < 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(found.worker >= 0, 'alice\'s broadcast join runs over a staging table');
    const mallory = mallories[found.worker]!;
    const table = `pgweave_staging."${found.name}"`;
    // Mallory cannot learn the name: another role's query text is hidden.
    const seen = await mallory.query(`SELECT query FROM pg_stat_activity WHERE usename = 'alice'`);
    assert.ok(seen.rows.length > 0 && seen.rows.every((r) => !String(r.query).includes('pgweave_staging')));
    // Nor list, read or drop the table: it is not committed.
    const listed = await mallory.query(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgweave_staging'`);
    assert.equal(listed.rows[0].n, 0);
    assert.equal(await errorCode(mallory.query(`SELECT * FROM ${table}`)), '42P01');
    assert.equal(await errorCode(mallory.query(`DROP TABLE ${table}`)), '42P01');
    // Creating the same name waits for alice's transaction (PostgreSQL's unique name check), and gives up here.
    assert.equal(await errorCode(mallory.query(`SET statement_timeout = '300ms'; CREATE TABLE ${table} (cid int, region text)`)), '57014');
    await mallory.query('RESET statement_timeout');
    for (const c of supers) await c.query('SELECT pg_advisory_unlock(4242)');
    assert.deepEqual((await running).rows, expected);
    await alice.query('COMMIT');

    // Worst case: mallory knows a name the session will use again, and creates the table first.
    await mallory.query(`CREATE TABLE ${table} (cid int, region text); GRANT ALL ON ${table} TO PUBLIC`);
    await alice.query('BEGIN');
    const again = await errorCode(alice.query(JOIN));
    await alice.query('ROLLBACK');
    assert.ok(again === 'ok' || again === '42P07', `alice's join: ${again}`);
    assert.equal((await mallory.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n, 0, 'no row captured');
    await mallory.query(`DROP TABLE ${table}`);
  } finally {
    for (const c of [alice, ...supers, ...mallories]) await c.end().catch(() => {});
  }
});
