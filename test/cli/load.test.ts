/**
 * `pgweave load TABLE FILE` through the real command (bin/pgweave.js, a
 * child process) against a test cluster: CSV with a header, text with
 * DELIMITER/NULL/column list, stdin, binary made by PostgreSQL itself; a bad
 * row fails with PostgreSQL's message and line and leaves nothing. The
 * progress display is checked on its own, as a terminal would receive it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { addWorkers, clusterEndpoint, rawConnect, rawQuery, textClient } from '../ingest/support.js';
import { ProgressDisplay } from '../../src/cli/progress-display.js';
import { copyFromStatement } from '../../src/client/copy-from.js';

const BIN = fileURLToPath(new URL('../../../bin/pgweave.js', import.meta.url));

let cluster: TestCluster;
let weave: pg.Client;
let dir: string;

before(async () => {
  cluster = await startTestCluster({ workers: 2 });
  weave = await textClient(cluster.url);
  await addWorkers(weave, cluster);
  await weave.query('SET citus.shard_count = 4');
  await weave.query('CREATE TABLE ev (tenant_id int NOT NULL, id bigint NOT NULL, body text, amount numeric(10,2))');
  await weave.query(`SELECT create_distributed_table('ev', 'tenant_id')`);
  dir = mkdtempSync(join(tmpdir(), 'pgweave-load-'));
});

after(async () => {
  await weave?.end().catch(() => {});
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real command, without a terminal (stderr is a pipe). */
function pgweave(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, 'load', '--url', cluster.url, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, DATABASE_URL: '' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

async function summary(): Promise<{ count: string; ids: string; amounts: string | null; nulls: string }> {
  const r = await weave.query('SELECT count(*) AS count, sum(id)::text AS ids, sum(amount)::text AS amounts, count(*) FILTER (WHERE body IS NULL) AS nulls FROM ev');
  return r.rows[0];
}

test('a CSV file with a header loads; counts and sums match', async () => {
  await weave.query('TRUNCATE ev');
  let csv = 'tenant_id,id,body,amount\n';
  let ids = 0;
  for (let i = 1; i <= 20_000; i++) {
    csv += `${i % 53},${i},"row ${i}, with ""quotes""${i % 1000 === 0 ? '\nand a second line' : ''}",${i % 100}.50\n`;
    ids += i;
  }
  const file = join(dir, 'ev.csv');
  writeFileSync(file, csv);
  const r = await pgweave(['ev', file, '--format', 'csv', '--header']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'COPY 20000\n');
  assert.match(r.stderr, /^loaded 100%  .* of .*  20,0\d\d rows/m);
  const s = await summary();
  assert.deepEqual(s, { count: '20000', ids: String(ids), amounts: String(20_000 * 0.5 + 200 * (99 * 100 / 2)) + '.00', nulls: '0' });
  const quoted = await weave.query(`SELECT body FROM ev WHERE id = 1000`);
  assert.equal(quoted.rows[0].body, 'row 1000, with "quotes"\nand a second line');
});

test('text with --delimiter, --null, --columns, from stdin', async () => {
  await weave.query('TRUNCATE ev');
  let text = '';
  for (let i = 1; i <= 5000; i++) text += `${i}|${i % 17}|${i % 3 === 0 ? 'NADA' : `b\\|${i}`}\n`;
  const r = await pgweave(['ev', '-', '--delimiter', '|', '--null', 'NADA', '--columns', 'id, tenant_id,body'], text);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'COPY 5000\n');
  const s = await summary();
  assert.equal(s.count, '5000');
  assert.equal(s.nulls, String(Math.floor(5000 / 3)));
  assert.equal(s.amounts, null);
  assert.equal((await weave.query('SELECT body, tenant_id FROM ev WHERE id = 4')).rows[0].body, 'b|4');
  assert.equal((await weave.query('SELECT tenant_id FROM ev WHERE id = 4')).rows[0].tenant_id, '4');
});

test('binary, as PostgreSQL writes it, loads back identically', async () => {
  await weave.query('TRUNCATE ev');
  await weave.query(`INSERT INTO ev SELECT g % 7, g, 'bin ' || g, g / 4.0 FROM generate_series(1, 3000) g`);
  const before = await summary();
  const raw = await rawConnect(clusterEndpoint(cluster));
  const out = await rawQuery(raw, 'COPY ev TO STDOUT (FORMAT binary)');
  raw.destroy();
  assert.ok(out.ok);
  const file = join(dir, 'ev.bin');
  writeFileSync(file, out.data);
  await weave.query('TRUNCATE ev');
  const r = await pgweave(['ev', file, '--format', 'binary', '--no-progress']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'COPY 3000\n');
  assert.equal(r.stderr, '');
  assert.deepEqual(await summary(), before);
});

test('a bad row in the middle: exit code 1, PostgreSQL\'s message with the line, nothing loaded', async () => {
  await weave.query('TRUNCATE ev');
  let text = '';
  for (let i = 1; i <= 30_000; i++) text += i === 17_001 ? `5\tnot-a-number\tbad\t1\n` : `${i % 41}\t${i}\tbody ${i}\t${i % 9}\n`;
  const file = join(dir, 'bad.tsv');
  writeFileSync(file, text);
  const r = await pgweave(['ev', file]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /ERROR: {2}invalid input syntax for type bigint: "not-a-number"/);
  assert.match(r.stderr, /CONTEXT: {2}COPY ev, line 17001, column id: "not-a-number"/);
  assert.equal((await summary()).count, '0');
  // a table that does not exist: PostgreSQL's error, exit code 1
  const missing = await pgweave(['no_such_table', file]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /relation "no_such_table" does not exist/);
});

test('the progress display: a bar redrawn in place on a terminal, plain lines elsewhere', () => {
  const collect = () => {
    let text = '';
    const w = new Writable({ write(chunk, _enc, cb) { text += chunk; cb(); } });
    return { w, text: () => text };
  };
  const tty = collect();
  const bar = new ProgressDisplay(tty.w, 1000, true);
  bar.update({ bytes: 500, rows: 50 });
  bar.finish({ bytes: 1000, rows: 100 }, true);
  assert.match(tty.text(), /^\r\[#{15}\.{15}\]  50%  500 B of 1000 B  .*  50 rows  .* rows\/s\x1b\[K\r\x1b\[Kloaded \[#{30}\] 100%/);
  const plain = collect();
  const lines = new ProgressDisplay(plain.w, null, false);
  lines.update({ bytes: 2048, rows: null });
  lines.finish({ bytes: 4096, rows: null }, false);
  assert.match(plain.text(), /^loading: 2\.0 kB  .*\/s\nfailed after 4\.0 kB in \d+\.\d s\n$/);
});

test('the COPY statement quotes names and values', () => {
  assert.equal(
    copyFromStatement('App."Events"', { format: 'csv', header: true, delimiter: ';', null: "it's", columns: ['Id', '"Body"'] }),
    `COPY "app"."Events" ("id", "Body") FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';', NULL 'it''s')`,
  );
  assert.equal(copyFromStatement('ev', { null: '\\N' }), `COPY "ev" FROM STDIN WITH (FORMAT text, NULL E'\\\\N')`);
  assert.throws(() => copyFromStatement('a.b"c'), /not a table or column name/);
});
