/**
 * What every stream command starts from: the session's view of the streams
 * (`access`: catalog, coordinator pool, the links the client's role uses),
 * the topic by name, the read check, and the argument readers the commands
 * share.
 */
import { PgError } from '../../protocol/errors.js';
import type { StreamAccess } from '../../streams/access.js';
import { clientConnectionsFor } from '../../streams/client-connections.js';
import { queryOnSessionLink } from '../../streams/link-runner.js';
import { ensureCoordinatorSchema } from '../../streams/schema.js';
import { loadTopic, type Topic } from '../../streams/topics.js';
import { TYPE_OID } from '../command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseInt32 } from '../common.js';
import type { CommandContext } from '../context.js';

export const OID = { ...TYPE_OID, jsonb: 3802, timestamptz: 1184 } as const;
export const MAX_PARTITIONS = 4096;
export const MAINTENANCE_SCHEDULE = '10 seconds';

export async function access(ctx: CommandContext): Promise<StreamAccess> {
  await ensureDatabaseCatalog(ctx);
  const coordinator = coordinatorPool(ctx);
  await ensureCoordinatorSchema(coordinator, `${ctx.config.coordinator.host}:${ctx.config.coordinator.port}/${ctx.database}`);
  const linkFor = ctx.linkFor;
  const fallback = clientConnectionsFor(ctx.pools);
  return {
    database: ctx.database,
    user: ctx.user,
    coordinatorAddress: ctx.config.coordinator,
    internalDatabase: ctx.config.internalDatabase ?? 'postgres',
    coordinator,
    pools: ctx.pools,
    catalog: () => ctx.metadata.get(ctx.database),
    onNode: linkFor
      ? async (node, sql, params, write) => queryOnSessionLink(await linkFor(node, write ?? false), sql, params)
      : (node, sql, params) => fallback.query(node, ctx.database, ctx.user, ctx.credentials, sql, params),
    onNodeAutocommit: (node, sql, params) => fallback.query(node, ctx.database, ctx.user, ctx.credentials, sql, params),
    inTransactionBlock: ctx.inTransactionBlock ?? false,
  };
}

export async function topicFor(a: StreamAccess, name: string): Promise<Topic> {
  return loadTopic(a.pools, a.database, a.coordinator, await a.catalog(), name);
}

const readChecks = new WeakMap<object, Map<string, number>>();
const READ_CHECK_TTL_MS = 2000;

/**
 * The client may read the topic (SELECT on its table, as PostgreSQL
 * decides). A positive answer is remembered for a moment per role: polls
 * repeat it constantly, and the events themselves are read as the client
 * (so PostgreSQL checks every read anyway).
 */
export async function requireRead(ctx: CommandContext, topic: Topic): Promise<void> {
  let seen = readChecks.get(ctx.pools);
  if (!seen) readChecks.set(ctx.pools, (seen = new Map()));
  const key = `${ctx.database}\u0000${ctx.user}\u0000${topic.relid}`;
  if ((seen.get(key) ?? 0) > Date.now()) return;
  const r = await coordinatorPool(ctx).query('SELECT pg_catalog.has_table_privilege($1, $2::pg_catalog.oid, $3)', [ctx.user, String(topic.relid), 'SELECT']);
  if (r.rows[0]?.[0] !== 't') throw new PgError({ code: '42501', message: `permission denied for topic ${topic.name}` });
  seen.set(key, Date.now() + READ_CHECK_TTL_MS);
}

export function notInBlock(ctx: CommandContext, fn: string, hint?: string): void {
  if (ctx.inTransactionBlock) throw new PgError({ code: '25001', message: `${fn}() cannot run inside a transaction block`, hint });
}

export function intArg(args: Map<string, string | null>, name: string, min: number, max: number): number {
  const n = parseInt32(args.get(name)!, name);
  if (n < min || n > max) throw new PgError({ code: '22023', message: `${name} must be between ${min} and ${max}` });
  return n;
}

export function nullableInt(args: Map<string, string | null>, name: string, min: number, max: number): number | null {
  return args.get(name) == null ? null : intArg(args, name, min, max);
}

export function payloadOut(topic: Topic, payload: string | null): string | null {
  return payload !== null && topic.payloadType === 'bytea' ? JSON.stringify(payload) : payload;
}
