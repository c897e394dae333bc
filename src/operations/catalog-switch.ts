/**
 * The one catalog transaction that ends a move or a split: on the
 * coordinator PostgreSQL, under the catalog lock, `work` rewrites placements
 * (and shards) and the operation's cleanup records, the change is notified,
 * and this process's metadata cache is invalidated before writes are let
 * through again — so a write that waited at the barrier plans with the new
 * catalog — and the notification is awaited (other caches reload too).
 */
import type { InternalClient } from '../pool/internal-client.js';
import { CATALOG_LOCK_KEY } from '../metadata/catalog-schema.js';
import { coordinatorPool, type OperationContext } from './context.js';

export async function switchCatalog(ctx: OperationContext, work: (c: InternalClient) => Promise<void>): Promise<void> {
  const change = await ctx.metadata.beginChange(ctx.database);
  const pool = coordinatorPool(ctx);
  const c = await pool.acquire();
  let committed = false;
  try {
    await c.query('BEGIN');
    await c.query("SET LOCAL lock_timeout = '30s'");
    await c.query(`SELECT pg_catalog.pg_advisory_xact_lock(${CATALOG_LOCK_KEY}, 1)`);
    await work(c);
    await c.query(change.notifySql);
    await c.query('COMMIT');
    committed = true;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    change.cancel();
    throw err;
  } finally {
    pool.release(c);
    ctx.metadata.invalidate(ctx.database);
  }
  // Writes stay blocked until every coordinator's listener acknowledged the change,
  // so their writes plan with the new placements instead of meeting the old shards'
  // triggers (40001). Bounded: a hung coordinator only delays the unblocking, the
  // triggers keep its writes safe.
  if (committed) await change.wait(2000).catch(() => {});
}
