/**
 * InternalPool under a node crash: a query waiting for a pooled connection
 * settles — with a fresh connection when the node is back, with a class-08
 * error when it is not, also behind a connection attempt that failed — and
 * the pool's close rejects whoever still waits.
 * (A waiter dropped on a failed reconnect hung the 2PC recovery round, and
 * with it every reader waiting for recovery, in the fault tests.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, stopPostgres } from '../../src/cluster/postgres-server.js';
import { InternalPool } from '../../src/pool/internal-pool.js';
import type { PgError } from '../../src/protocol/errors.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

let pg: TestPostgres;

before(async () => {
  pg = await startTestPostgres();
});

after(async () => {
  await pg?.stop();
});

function pool(maxSize: number): InternalPool {
  return new InternalPool(
    { host: pg.host, port: pg.port, database: 'postgres', user: pg.user, credentials: { password: pg.password }, connectTimeoutMs: 5000 },
    maxSize,
  );
}

/** Bounds a wait that must end: a hang fails with what was awaited instead of the test's timeout. */
function settled<T>(p: Promise<T>, what: string, ms = 30_000): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} neither resolved nor rejected within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Starts the server again (nothing when it runs). */
function restart(): Promise<void> {
  return startPostgres({ dataDir: pg.dataDir, port: pg.port, superuserPassword: pg.password, fast: true });
}

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(cond(), what);
}

test('a query waiting for a connection lost in a crash gets 08006 while the node is down, a connection once it is back', async () => {
  const p = pool(1);
  try {
    const held = await p.acquire();
    const waiting = p.query('SELECT 1');
    await stopPostgres(pg.dataDir, 'immediate');
    await waitUntil(() => held.closed, 'the held connection notices the crash');
    p.release(held);
    const down = await settled(waiting, 'a query waiting for the lost connection (node down)');
    assert.equal((down.error as PgError | undefined)?.code, '08006', `08006 expected, got ${String(down.error ?? JSON.stringify(down.value))}`);

    await restart();
    const held2 = await p.acquire();
    const waiting2 = p.query('SELECT 2');
    held2.close();
    p.release(held2);
    const up = await settled(waiting2, 'a query waiting for a closed connection (node up)');
    assert.equal(up.error, undefined);
    assert.deepEqual(up.value?.rows, [['2']]);
  } finally {
    p.close();
    await restart(); // the next test needs the server, whatever happened here
  }
});

test('queries waiting behind connection attempts that fail (the node is down) get the error too', async () => {
  const p = pool(1);
  try {
    await stopPostgres(pg.dataDir, 'immediate');
    const first = p.query('SELECT 1'); // takes the only slot, its connection attempt fails
    const second = p.query('SELECT 2'); // waits for that slot
    for (const [q, what] of [[first, 'the query whose connection attempt failed'], [second, 'a query waiting behind it']] as const) {
      const r = await settled(q, what);
      assert.equal((r.error as PgError | undefined)?.code, '08006', `${what}: 08006 expected, got ${String(r.error ?? JSON.stringify(r.value))}`);
    }
  } finally {
    p.close();
    await restart();
  }
});

test('closing the pool rejects the queries still waiting for a connection', async () => {
  const p = pool(1);
  const held = await p.acquire();
  const waiting = p.query('SELECT 1');
  p.close();
  const r = await settled(waiting, 'a query waiting when the pool closed');
  assert.equal((r.error as PgError | undefined)?.code, '57P01');
  held.close();
  p.release(held);
});
