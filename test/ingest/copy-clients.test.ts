/**
 * COPY as clients use it, against a plain PostgreSQL doing the same: psql's
 * `\copy … from` (text and CSV files, a file with a bad line) and `\copy … to`,
 * and COPY … TO STDOUT from distributed tables and from queries in text,
 * CSV and binary — the same bytes (ordered queries) or the same rows
 * (whole tables, whose row order is not defined).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import type { TestCluster } from '../helpers/cluster.js';
import type { TestPostgres } from '../helpers/postgres.js';
import type { RawConnection } from '../server/raw-protocol.js';
import { binaryTuples, rawQuery, runProgram, type SideBySide, startSideBySide, tableRows } from './support.js';

let cluster: TestCluster;
let plain: TestPostgres;
let weave: pg.Client;
let reference: pg.Client;
let weaveRaw: RawConnection;
let plainRaw: RawConnection;
let dir: string;

const SCHEMA = `
CREATE TABLE events (tenant_id int NOT NULL, id bigserial, kind text NOT NULL DEFAULT 'click', amount numeric(10,2), note text,
                     PRIMARY KEY (tenant_id, id));
CREATE TABLE tags (code text PRIMARY KEY, label text);
`;

let sides: SideBySide;

before(async () => {
  sides = await startSideBySide(SCHEMA, 4, [
    `SELECT create_distributed_table('events', 'tenant_id')`,
    `SELECT create_reference_table('tags')`,
  ]);
  ({ cluster, plain, weave, reference, weaveRaw, plainRaw } = sides);
  dir = mkdtempSync(join(tmpdir(), 'pgweave-ingest-'));
});

after(async () => {
  await sides?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function psql(url: string, command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return runProgram('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', command], { PGCONNECT_TIMEOUT: '10' });
}

/** Runs a psql command on both systems: same exit code, same output (errors included). */
async function bothPsql(command: string): Promise<string> {
  const expected = await psql(plain.url, command);
  const actual = await psql(cluster.url, command);
  assert.equal(actual.code, expected.code, `${command}\npgweave: ${actual.stderr}\nPostgreSQL: ${expected.stderr}`);
  assert.equal(actual.stdout, expected.stdout);
  assert.equal(actual.stderr.replace(/^psql:.*?ERROR/m, 'ERROR'), expected.stderr.replace(/^psql:.*?ERROR/m, 'ERROR'));
  return actual.stdout;
}

test("psql's \\copy from text and CSV files, and a file with a bad line", async () => {
  let text = '';
  let csv = 'tenant_id,kind,amount,note\n';
  for (let i = 0; i < 5000; i++) {
    text += `${i % 31}\t${i % 2 ? 'view' : 'click'}\t${(i / 4).toFixed(2)}\t${i % 9 === 0 ? '\\N' : `note\\t${i}`}\n`;
    csv += `${i % 29},${i % 3 ? 'view' : 'buy'},${i}.25,"csv ""${i}""${i % 50 === 0 ? '\nsecond line' : ''}"\n`;
  }
  writeFileSync(join(dir, 'events.tsv'), text);
  writeFileSync(join(dir, 'events.csv'), csv);
  assert.equal(await bothPsql(`\\copy events (tenant_id, kind, amount, note) from '${join(dir, 'events.tsv')}'`), 'COPY 5000\n');
  assert.equal(await bothPsql(`\\copy events (tenant_id, kind, amount, note) from '${join(dir, 'events.csv')}' with (format csv, header true)`), 'COPY 5000\n');
  assert.deepEqual(await tableRows(weave, 'events'), await tableRows(reference, 'events'));
  const bad = text.split('\n');
  bad[4321] = '7\tview\tnot-a-number\tx';
  writeFileSync(join(dir, 'bad.tsv'), bad.join('\n'));
  await bothPsql(`\\copy events (tenant_id, kind, amount, note) from '${join(dir, 'bad.tsv')}'`);
  assert.equal((await weave.query('SELECT count(*) FROM events')).rows[0].count, '10000');
  // reference table
  writeFileSync(join(dir, 'tags.csv'), 'a,Alpha\nb,"Be, ta"\nc,\n');
  await bothPsql(`\\copy tags from '${join(dir, 'tags.csv')}' csv`);
  assert.deepEqual(await tableRows(weave, 'tags'), await tableRows(reference, 'tags'));
});

test("psql's \\copy to a file: a table and a query", async () => {
  for (const [name, cmd] of [
    ['query.csv', `\\copy (SELECT tenant_id, kind, amount, note FROM events ORDER BY tenant_id, amount, note) to '%' with (format csv, header)`],
    ['table.tsv', `\\copy events (tenant_id, kind, amount, note) to '%'`],
  ] as const) {
    await bothPsql(cmd.replace('%', join(dir, `plain-${name}`)).replace(cluster.url, plain.url));
    const out = await psql(cluster.url, cmd.replace('%', join(dir, `weave-${name}`)));
    assert.equal(out.code, 0, out.stderr);
    const p = readFileSync(join(dir, `plain-${name}`), 'utf8');
    const w = readFileSync(join(dir, `weave-${name}`), 'utf8');
    if (name.startsWith('query')) assert.equal(w, p);
    else assert.deepEqual(w.split('\n').sort(), p.split('\n').sort());
  }
});

test('COPY … TO STDOUT in text, CSV and binary: the same output as PostgreSQL', async () => {
  for (const format of ['text', 'csv', 'binary']) {
    const opts = format === 'text' ? '' : ` WITH (FORMAT ${format}${format === 'csv' ? ', HEADER' : ''})`;
    const ordered = `COPY (SELECT tenant_id, kind, amount, note FROM events WHERE tenant_id < 10 ORDER BY tenant_id, amount, note) TO STDOUT${opts}`;
    const [p, w] = [await rawQuery(plainRaw, ordered), await rawQuery(weaveRaw, ordered)];
    assert.ok(w.ok, JSON.stringify(w.error));
    assert.equal(w.tag, p.tag);
    assert.equal(w.format, p.format);
    assert.equal(w.columns, p.columns);
    assert.ok(w.data.equals(p.data), `${format}: ordered output differs`);
    const whole = `COPY events (tenant_id, kind, amount, note) TO STDOUT${opts}`;
    const [pw, ww] = [await rawQuery(plainRaw, whole), await rawQuery(weaveRaw, whole)];
    assert.equal(ww.tag, pw.tag);
    if (format === 'binary') assert.deepEqual(binaryTuples(ww.data), binaryTuples(pw.data));
    else assert.deepEqual(ww.data.toString('utf8').split('\n').sort(), pw.data.toString('utf8').split('\n').sort());
    const ref = `COPY tags TO STDOUT${opts}`;
    const [pr, wr] = [await rawQuery(plainRaw, ref), await rawQuery(weaveRaw, ref)];
    assert.equal(wr.tag, pr.tag);
    if (format === 'binary') assert.deepEqual(binaryTuples(wr.data), binaryTuples(pr.data));
    else assert.deepEqual(wr.data.toString('utf8').split('\n').sort(), pr.data.toString('utf8').split('\n').sort());
  }
});
