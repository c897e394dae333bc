/**
 * Distributed objects (Citus's pg_dist_object): the types, collations,
 * extensions and functions every node holds. They are recorded in
 * pgweave.dist_object when they reach the workers — as dependencies of a
 * table being distributed (distribute-table.ts), when created through the
 * coordinator while workers exist (ddl/object-ddl.ts), or here — and a node
 * being added receives every recorded object (reference-replication.ts).
 *
 * ensureObjectsOnWorkers makes the workers hold objects that exist only on
 * the coordinator (created before any worker, or directly on its
 * PostgreSQL) before a statement needs them there: ALTER TABLE adding a
 * column of such a type, ALTER TYPE … ADD VALUE or GRANT … ON TYPE on one.
 * It runs as the internal role in a two-phase commit of its own, committed
 * before the statement's shard DDL: the shard DDL runs as the client on
 * other connections, which could not see objects created in an open
 * transaction. Objects the coordinator has committed are the same on every
 * node whatever the statement then does, so they stay when it rolls back
 * (as Citus creates dependencies on the workers).
 */
import type { InternalClient } from '../pool/internal-client.js';
import { forgetDroppedObjects, readDistributedObjects, readWorkerNodes, recordDistributedObjects, type DistributedObjectId, type NodeRow } from '../metadata/catalog-writes.js';
import { coordinatorPool } from './common.js';
import type { CommandContext } from './context.js';
import { withDistributedChange } from './distribute-table.js';
import { CLASS_OID, dependencyClosure, refOf, type ObjectRef } from './object-dependencies.js';
import { ensureObjectsOn, objectRoles, readObjectDefinitions, type ObjectDefinition } from './object-definitions.js';
import { ensureRoles } from './worker-objects.js';

type Query = Pick<InternalClient, 'query'>;

export function objectIds(refs: ObjectRef[]): DistributedObjectId[] {
  return refs.map((r) => ({ classId: CLASS_OID[r.kind], objectId: r.oid }));
}

/** Records `refs` as distributed. */
export async function recordObjects(client: Query, refs: ObjectRef[]): Promise<void> {
  await recordDistributedObjects(client, objectIds(refs));
}

/** Forgets the records of objects dropped since they were recorded. */
export async function forgetDroppedRecords(ctx: CommandContext): Promise<void> {
  await forgetDroppedObjects(coordinatorPool(ctx));
}

/** The recorded objects that still exist. */
export async function recordedObjects(client: Query): Promise<ObjectRef[]> {
  return (await readDistributedObjects(client)).map((o) => refOf(o.classId, o.objectId)).filter((r): r is ObjectRef => r !== null);
}

/**
 * Makes every active worker hold `roots` and everything they depend on, and
 * records them. Objects the internal role cannot see yet (created in the
 * client's open transaction) are left to that transaction's propagation.
 */
export async function ensureObjectsOnWorkers(ctx: CommandContext, roots: ObjectRef[]): Promise<void> {
  if (roots.length === 0) return;
  const pool = coordinatorPool(ctx);
  const { refs, defs, nodes } = await pool.withClient(async (c) => {
    // search_path = pg_catalog: PostgreSQL prints every name in a definition qualified.
    await c.query('BEGIN');
    try {
      await c.query('SET LOCAL search_path = pg_catalog');
      const refs = await dependencyClosure(c, roots);
      return { refs, defs: await readObjectDefinitions(c, refs), nodes: await readWorkerNodes(c) };
    } finally {
      await c.query('COMMIT');
    }
  });
  if (refs.length === 0) return;
  const { host, port } = ctx.config.coordinator;
  const lacking: NodeRow[] = [];
  for (const node of nodes.filter((n) => n.isActive && !(n.host === host && n.port === port))) {
    await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
    if (await lacksAny(ctx.pools.get(node.host, node.port, ctx.database), defs)) lacking.push(node);
  }
  if (lacking.length === 0) {
    await recordObjects(pool, refs);
    return;
  }
  await withDistributedChange(
    ctx,
    async (coordinator, workers) => {
      await recordObjects(coordinator, refs);
      for (const node of lacking) {
        await ensureRoles(pool, ctx.pools.get(node.host, node.port, ctx.database), objectRoles(defs));
        const { client } = await workers.open(ctx, node);
        await ensureObjectsOn(client, defs);
      }
    },
    { notify: false },
  );
}

async function lacksAny(worker: Query, defs: ObjectDefinition[]): Promise<boolean> {
  for (const def of defs) if ((await worker.query(def.existsSql, def.existsParams)).rows.length === 0) return true;
  return false;
}
