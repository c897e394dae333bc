/**
 * fanOutCopy (src/session/broadcast-tables.ts) streams one link's COPY TO
 * STDOUT into COPY FROM STDIN on several links, pausing the source while a
 * sink's socket is full. A full socket refuses every write until it drains,
 * so the fan-out must arm one 'drain' listener per full sink — not one per
 * refused row, which piles up listeners on pooled connections (Node.js warns
 * past ten) — and must leave none behind. Real PostgreSQL connections; the
 * sinks' backends are stopped (SIGSTOP) until their sockets refuse a write,
 * so the sockets fill however fast the host drains them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { connectBackend } from '../../src/pool/backend-connection.js';
import { BackendLink } from '../../src/executor/backend-link.js';
import { queryOnLink } from '../../src/executor/link-query.js';
import { fanOutCopy } from '../../src/session/broadcast-tables.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

let plain: TestPostgres | undefined;
const links: BackendLink[] = [];

async function link(): Promise<BackendLink> {
  const conn = await connectBackend({ host: plain!.host, port: plain!.port, user: plain!.user, database: 'postgres', credentials: { password: plain!.password }, tls: null });
  const l = new BackendLink(conn, new PassThrough(), 0);
  links.push(l);
  return l;
}

before(async () => {
  plain = await startTestPostgres();
});

after(async () => {
  for (const l of links) l.conn.socket.destroy();
  await plain?.stop();
});

test('a fan-out into sinks whose sockets fill keeps one drain listener per sink and leaves none', async () => {
  const [source, ...sinks] = await Promise.all([link(), link(), link()]);
  let refused = 0;
  let mostListeners = 0;
  for (const s of sinks) {
    assert.equal((await queryOnLink(s, 'CREATE TEMP TABLE sink (n int, t text)')).error, null);
    const socket = s.conn.socket;
    const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
    socket.write = ((chunk: Buffer) => {
      const ok = write(chunk);
      if (!ok) refused++;
      mostListeners = Math.max(mostListeners, socket.listenerCount('drain'));
      return ok;
    }) as typeof socket.write;
  }
  // The sinks' backends stop reading until their sockets have refused a write: they fill whatever the host's load.
  const pids = await Promise.all(sinks.map(async (s) => Number((await queryOnLink(s, 'SELECT pg_backend_pid()')).rows[0]!.toString('latin1').match(/\d+/)![0])));
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  let err;
  try {
    const copying = fanOutCopy(source, `COPY (SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 20000) g) TO STDOUT`, sinks, 'COPY sink FROM STDIN');
    for (let waited = 0; refused === 0 && waited < 30_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    for (const pid of pids) process.kill(pid, 'SIGCONT');
    err = await copying;
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  }
  assert.equal(err, null);
  for (const s of sinks) {
    const r = await queryOnLink(s, 'SELECT count(*), sum(n) FROM sink');
    assert.equal(r.error, null);
    assert.equal(r.rows.length, 1);
    assert.match(r.rows[0]!.toString('latin1'), /20000.*200010000/, 'every row reached every sink');
    assert.equal(s.conn.socket.listenerCount('drain'), 0, 'no drain listener is left on the pooled connection');
  }
  assert.ok(refused > 0, 'the sinks\' sockets filled (else this test shows nothing)');
  assert.ok(mostListeners <= 1, `at most one drain listener per sink, saw ${mostListeners}`);
});
