/**
 * COPY … TO STDOUT streamed from the shards, against a plain PostgreSQL
 * running the same statements on the same data: text, CSV (HEADER once,
 * QUOTE, ESCAPE, FORCE_QUOTE, NULL, DELIMITER) and binary (one header, one
 * trailer), column lists, reference tables, errors, a transaction's own
 * writes, column privileges and row-level security; the CopyOutResponse
 * byte for byte. `COPY (SELECT …)` of one shard
 * group runs on its worker; of a SELECT without a merge step (filters,
 * projections, co-located and reference joins), on every shard group,
 * streamed like a table. And the stream is a stream: a client that stops
 * reading leaves the worker waiting to write (ClientWrite) while nothing of
 * the table is gathered on the coordinator.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { frontend, rawLogin, type RawConnection } from '../server/raw-protocol.js';
import { binaryTuples, clusterEndpoint, plainEndpoint, rawConnect, type SideBySide, startSideBySide } from './support.js';

const SCHEMA = `
CREATE TABLE ev (tenant_id int NOT NULL, id bigint NOT NULL, kind text, amount numeric(10,2), note text, PRIMARY KEY (tenant_id, id));
CREATE TABLE tags (code text PRIMARY KEY, label text);
CREATE TABLE big (id bigint PRIMARY KEY, pad text);
`;
const DATA = `
INSERT INTO ev SELECT i % 37, i, (ARRAY['click', 'view', NULL, ''])[1 + i % 4], CASE WHEN i % 5 = 0 THEN NULL ELSE i * 1.25 END,
  (ARRAY['plain', 'with,comma', 'with "quote"', E'tab\\there', E'back\\\\slash', 'semi;colon', 'NULL', ''])[1 + i % 8]
  FROM generate_series(1, 3000) i;
INSERT INTO tags VALUES ('a', 'Alpha'), ('b', NULL), ('c', 'with,comma'), ('d', '');
`;

let sides: SideBySide;

before(async () => {
  sides = await startSideBySide(SCHEMA, 4, [
    `SELECT create_distributed_table('ev', 'tenant_id')`,
    `SELECT create_reference_table('tags')`,
    `SELECT create_distributed_table('big', 'id')`,
  ]);
  await sides.weave.query(DATA);
  await sides.reference.query(DATA);
});

after(async () => {
  await sides?.stop();
});

interface CopyOut {
  response: string | null;
  data: Buffer;
  tag: string | null;
  error: string | null;
}

/** Runs a COPY … TO STDOUT and keeps the CopyOutResponse body, the data, the tag and the error. */
async function copyOut(conn: RawConnection, sql: string): Promise<CopyOut> {
  conn.write(frontend.query(sql));
  const out: CopyOut = { response: null, data: Buffer.alloc(0), tag: null, error: null };
  const data: Buffer[] = [];
  for (;;) {
    const m = await conn.next(60_000);
    if (!m) throw new Error('connection closed or timed out before ReadyForQuery');
    if (m.type === 'H') out.response = m.body.toString('hex');
    else if (m.type === 'd') data.push(Buffer.from(m.body));
    else if (m.type === 'C') out.tag = m.body.toString('utf8', 0, m.body.length - 1);
    else if (m.type === 'E') {
      const f = new Map<string, string>();
      let pos = 0;
      while (m.body[pos] !== 0) {
        const end = m.body.indexOf(0, pos + 1);
        f.set(String.fromCharCode(m.body[pos]!), m.body.toString('utf8', pos + 1, end));
        pos = end + 1;
      }
      out.error ??= `${f.get('C')}: ${f.get('M')}`;
    } else if (m.type === 'Z') {
      out.data = Buffer.concat(data);
      return out;
    }
  }
}

/** Text/CSV output as its header line (when asked for) and its sorted lines. */
function textLines(data: Buffer, header: boolean): { header: string | null; lines: string[] } {
  const lines = data.toString('utf8').split('\n');
  assert.equal(lines.pop(), '', 'output ends with a newline');
  const first = header ? lines.shift()! : null;
  return { header: first, lines: lines.sort() };
}

async function compare(sql: string): Promise<void> {
  const [p, w] = [await copyOut(sides.plainRaw, sql), await copyOut(sides.weaveRaw, sql)];
  assert.equal(w.error, p.error, sql);
  assert.equal(w.tag, p.tag, sql);
  assert.equal(w.response, p.response, `${sql}: CopyOutResponse`);
  if (p.error) return;
  if (/binary/i.test(sql)) {
    assert.ok(w.data.subarray(0, 19).equals(p.data.subarray(0, 19)), `${sql}: binary header`);
    assert.deepEqual(binaryTuples(w.data), binaryTuples(p.data), sql);
  } else {
    const header = /header/i.test(sql);
    assert.deepEqual(textLines(w.data, header), textLines(p.data, header), sql);
  }
}

test('COPY table TO STDOUT streamed from the shards: text, CSV and binary with their options, as PostgreSQL writes them', async () => {
  const options = [
    '',
    ` WITH (FORMAT text, DELIMITER '|', NULL '<null>')`,
    ' WITH (FORMAT csv)',
    ' WITH (FORMAT csv, HEADER)',
    ` WITH (FORMAT csv, HEADER true, QUOTE '''', ESCAPE '\\', FORCE_QUOTE (kind, note), NULL 'NULL', DELIMITER ';')`,
    ' WITH (FORMAT csv, FORCE_QUOTE *)',
    ' CSV HEADER',
    ' (FORMAT binary)',
    ' BINARY',
  ];
  for (const opts of options) {
    for (const target of ['ev', 'ev (note, tenant_id, amount)', 'tags', 'tags (label)']) await compare(`COPY ${target} TO STDOUT${opts}`);
  }
});

test('COPY TO errors are PostgreSQL\'s, with the client\'s names; an empty table still has its binary header and trailer', async () => {
  await compare('COPY ev (nope) TO STDOUT');
  await compare('COPY ev TO STDOUT (FORCE_QUOTE (kind))');
  await compare('COPY ev TO STDOUT (FORMAT csv, HEADER match)');
  await compare(`COPY ev TO STDOUT (FORMAT csv, DELIMITER ',', QUOTE ',')`);
  for (const c of [sides.weave, sides.reference]) await c.query('CREATE TABLE empty_one (a int, b text)');
  await sides.weave.query(`SELECT create_distributed_table('empty_one', 'a')`);
  await compare('COPY empty_one TO STDOUT (FORMAT binary)');
  await compare('COPY empty_one TO STDOUT (FORMAT csv, HEADER)');
});

test('COPY TO runs as the client: column privileges and row-level security hold on the shards', async () => {
  const setup = `CREATE ROLE copy_reader LOGIN PASSWORD 'reader-secret';
    GRANT SELECT (tenant_id, id, note) ON ev TO copy_reader;
    GRANT SELECT ON tags TO copy_reader;
    ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
    CREATE POLICY tags_a ON tags FOR SELECT TO copy_reader USING (code IN ('a', 'c'))`;
  for (const c of [sides.weave, sides.reference]) await c.query(setup);
  const [p, w] = await Promise.all([plainEndpoint(sides.plain), clusterEndpoint(sides.cluster)].map((e) => rawLogin({ host: e.host, port: e.port }, 'copy_reader', 'reader-secret')));
  try {
    for (const sql of ['COPY ev (tenant_id, id, note) TO STDOUT (FORMAT csv)', 'COPY ev TO STDOUT', 'COPY ev (kind) TO STDOUT (FORMAT binary)', 'COPY tags TO STDOUT', 'COPY tags (label) TO STDOUT (FORMAT csv, HEADER)']) {
      const [po, wo] = [await copyOut(p!, sql), await copyOut(w!, sql)];
      assert.equal(wo.error, po.error, sql);
      assert.equal(wo.tag, po.tag, sql);
      assert.equal(wo.response, po.response, sql);
      if (!po.error && !/binary/i.test(sql)) assert.deepEqual(textLines(wo.data, /header/i.test(sql)), textLines(po.data, /header/i.test(sql)), sql);
    }
  } finally {
    p!.destroy();
    w!.destroy();
    for (const c of [sides.weave, sides.reference]) await c.query('DROP POLICY tags_a ON tags; ALTER TABLE tags DISABLE ROW LEVEL SECURITY');
  }
});

test('COPY TO inside a transaction block sees the block\'s own writes', async () => {
  for (const conn of [sides.plainRaw, sides.weaveRaw]) {
    await copyOut(conn, 'BEGIN');
    await copyOut(conn, `INSERT INTO ev VALUES (5, 100001, 'mine', 1.5, 'uncommitted'), (6, 100002, 'mine', 2.5, NULL)`);
    await copyOut(conn, 'DELETE FROM ev WHERE tenant_id = 7');
  }
  await compare('COPY ev TO STDOUT (FORMAT csv)');
  await compare('COPY ev (id, note) TO STDOUT (FORMAT binary)');
  for (const conn of [sides.plainRaw, sides.weaveRaw]) await copyOut(conn, 'ROLLBACK');
  await compare('COPY ev TO STDOUT');
});

test('COPY (SELECT …) TO STDOUT of one shard group runs on its worker; other queries still work', async () => {
  const ports = new Set(sides.cluster.workers.map((w) => String(w.port)));
  const w = await copyOut(sides.weaveRaw, 'COPY (SELECT current_setting(\'port\'), id FROM ev WHERE tenant_id = 3 ORDER BY id LIMIT 2) TO STDOUT');
  assert.equal(w.error, null);
  const served = w.data.toString('utf8').trim().split('\n').map((l) => l.split('\t')[0]);
  assert.equal(served.length, 2);
  for (const port of served) assert.ok(ports.has(port!), `ran on ${port}, not on a worker`);
  await compare(`COPY (SELECT tenant_id, id, kind, note FROM ev WHERE tenant_id = 3 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER, FORCE_QUOTE *)`);
  await compare(`COPY (SELECT e.id, t.label FROM ev e JOIN tags t ON t.code = 'c' WHERE e.tenant_id = 4 ORDER BY 1) TO STDOUT (FORMAT binary)`);
  await compare(`COPY (SELECT kind, count(*) FROM ev GROUP BY kind ORDER BY kind) TO STDOUT (FORMAT csv, HEADER)`);
});

/** Worker ports seen by `current_setting('port')` (inet_server_port() is NULL over the nodes' Unix-domain sockets) in the first column of text COPY output. */
function servedBy(data: Buffer): Set<string> {
  return new Set(data.toString('utf8').trim().split('\n').map((l) => l.split('\t')[0]!));
}

test('COPY (SELECT …) TO STDOUT of a SELECT without a merge step streams from every shard group: text, CSV and binary, as PostgreSQL writes them', async () => {
  const ports = new Set(sides.cluster.workers.map((w) => String(w.port)));
  const w = await copyOut(sides.weaveRaw, 'COPY (SELECT current_setting(\'port\'), id FROM ev WHERE id % 50 = 0) TO STDOUT');
  assert.equal(w.error, null);
  assert.equal(w.tag, 'COPY 60');
  const served = servedBy(w.data);
  for (const port of served) assert.ok(ports.has(port), `ran on ${port}, not on a worker`);
  assert.ok(served.size > 1, 'several workers answered');
  const queries = [
    'SELECT tenant_id, id, kind, amount, note FROM ev WHERE amount > 100',
    `SELECT id * 2 AS twice, upper(kind), note || '!' AS shout, amount::text FROM ev -- a trailing comment\n`,
    'SELECT e.id, e.note, t.label FROM ev e JOIN tags t ON t.code = left(e.kind, 1)',
    'SELECT a.id, b.id AS next_id, b.note FROM ev a JOIN ev b ON a.tenant_id = b.tenant_id AND b.id = a.id + 37',
    'SELECT id, note FROM ev WHERE id < 0',
  ];
  const options = ['', ` (DELIMITER '|', NULL '<null>')`, ' (FORMAT csv, HEADER)', ` WITH (FORMAT csv, HEADER true, FORCE_QUOTE *, NULL 'NULL')`, ' (FORMAT binary)'];
  for (const q of queries) for (const opts of options) await compare(`COPY (${q}) TO STDOUT${opts}`);
});

test('COPY (SELECT …) TO STDOUT streamed: PostgreSQL\'s errors, the client\'s names, a block\'s own writes', async () => {
  await compare('COPY (SELECT nope FROM ev) TO STDOUT');
  await compare('COPY (SELECT id FROM ev) TO STDOUT (FORMAT csv, FORCE_QUOTE (nope))');
  await compare('COPY (SELECT id / (id - 1500) FROM ev) TO STDOUT');
  await compare('COPY (SELECT id::int2 * 100::int2 FROM ev WHERE tenant_id <> 3) TO STDOUT (FORMAT csv)');
  for (const conn of [sides.plainRaw, sides.weaveRaw]) {
    await copyOut(conn, 'BEGIN');
    await copyOut(conn, `INSERT INTO ev VALUES (5, 100001, 'mine', 1.5, 'uncommitted'), (6, 100002, 'mine', 2.5, NULL)`);
    await copyOut(conn, 'DELETE FROM ev WHERE tenant_id = 7');
  }
  await compare(`COPY (SELECT tenant_id, id, note FROM ev WHERE kind = 'mine' OR tenant_id IN (7, 8)) TO STDOUT (FORMAT csv, HEADER)`);
  await compare('COPY (SELECT id, note FROM ev WHERE amount < 10) TO STDOUT (FORMAT binary)');
  for (const conn of [sides.plainRaw, sides.weaveRaw]) await copyOut(conn, 'ROLLBACK');
});

/**
 * Starts `sql` on a client that then stops reading: some worker must wait in
 * ClientWrite on a COPY matching `workerQuery` while the coordinator holds no
 * temporary table; then the client reads the rest.
 */
async function pausedRead(sql: string, workerQuery: string, rowsExpected: number): Promise<void> {
  const coordinatorPg = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(sides.cluster.password)}@${sides.cluster.coordinatorPg.host}:${sides.cluster.coordinatorPg.port}/postgres` });
  const workers = sides.cluster.workers.map((w) => new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(sides.cluster.password)}@${w.host}:${w.port}/postgres` }));
  const slow = await rawConnect(clusterEndpoint(sides.cluster));
  try {
    await coordinatorPg.connect();
    for (const w of workers) await w.connect();
    slow.write(frontend.query(sql));
    const first = await slow.next(60_000);
    assert.equal(first?.type, 'H');
    slow.socket.pause();
    // The worker fills the coordinator's socket, the coordinator stops reading it, the worker waits.
    let blocked = false;
    for (let i = 0; i < 600 && !blocked; i++) {
      for (const w of workers) {
        const r = await w.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE $1 AND wait_event = 'ClientWrite'`, [workerQuery]);
        if (r.rows[0].n > 0) blocked = true;
      }
      if (!blocked) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(blocked, 'a worker waits for the coordinator to read');
    const temps = await coordinatorPg.query(`SELECT relname FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'`);
    assert.deepEqual(temps.rows, [], 'no temporary table on the coordinator');
    slow.socket.resume();
    let rows = 0;
    let tag = '';
    for (;;) {
      const m = await slow.next(60_000);
      if (!m) throw new Error('stream ended early');
      if (m.type === 'd') rows++;
      else if (m.type === 'C') tag = m.body.toString('utf8', 0, m.body.length - 1);
      else if (m.type === 'E') throw new Error(m.body.toString('utf8'));
      else if (m.type === 'Z') break;
    }
    assert.equal(tag, `COPY ${rowsExpected}`);
    assert.equal(rows, rowsExpected);
  } finally {
    slow.destroy();
    await coordinatorPg.end().catch(() => {});
    for (const w of workers) await w.end().catch(() => {});
  }
}

test('a client that stops reading holds the worker, not the coordinator: nothing is gathered there', async () => {
  await sides.weave.query(`INSERT INTO big SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 200000) i`);
  await pausedRead('COPY big TO STDOUT', 'COPY %big_% TO STDOUT%', 200000);
});

test('COPY (SELECT …) of a SELECT without a merge step is a stream too: a paused client holds the worker, no temporary table on the coordinator', async () => {
  // Rows four times as wide as the table's: more than the sockets between worker, coordinator and client hold.
  await pausedRead(`COPY (SELECT id, repeat(upper(pad), 4) FROM big WHERE id % 4 <> 0) TO STDOUT (FORMAT csv)`, 'COPY (SELECT id, repeat(upper(pad), 4) FROM %big_%', 150000);
});
