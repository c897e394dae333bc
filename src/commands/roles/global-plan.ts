/**
 * The shape of a cluster-wide statement's propagation (global-utility.ts
 * runs it): what the coordinator runs as the client, and — worked out in the
 * client's transaction after it ran — the state every worker is made to
 * hold. Also the helpers the statement planners share for reading that
 * state as the client.
 */
import type { InternalClient } from '../../pool/internal-client.js';
import type { InternalPool } from '../../pool/internal-pool.js';
import { coordinatorPool } from '../common.js';
import type { CommandContext } from '../context.js';
import { emptyTarget, readRoles, readVerifiers, type Query, type RoleTarget } from './role-state.js';
import type { RoutineState } from './routine-state.js';
import type { SchemaState } from './schema-state.js';

/** What one statement does on each worker, worked out after it ran on the coordinator. */
export interface WorkerChange {
  roles?: RoleTarget;
  schemas?: { desired: Map<string, SchemaState>; renames: Array<{ from: string; to: string }> };
  /** Functions whose privileges changed, made equal where a worker has them. */
  routines?: RoutineState[];
  /** A statement replayed as it is (role names substituted), with a guard deciding per worker whether it applies. */
  replay?: { sql: string; applies?: (query: Query) => Promise<boolean> };
}

export interface Plan {
  /** The statement text the coordinator runs (passwords replaced by verifiers). */
  text: string;
  /** Role names the statement names, checked against the internal role before anything runs. */
  names: string[];
  /** Other coordinators must reload their catalog (schema names of distributed tables changed, tables dropped). */
  notify?: boolean;
  /** The statement changes catalog rows: the internal transaction takes the catalog lock. */
  catalogLock?: boolean;
  /** In the client's transaction, before the statement runs (e.g. a snapshot to compare with). */
  before?(): Promise<void>;
  /** After the coordinator ran the statement (in the client's session): the change for the workers. */
  workers(): Promise<WorkerChange>;
  /** Catalog changes, in the internal coordinator transaction that also holds the commit record. */
  catalog?(internal: InternalClient): Promise<void>;
}

export const clientQuery = (ctx: CommandContext): Query => (sql, params) => ctx.runAsClient(sql, params);
export const internalQuery = (pool: InternalPool | InternalClient): Query => (sql, params) => pool.query(sql, params);

/** A role target for `names` (attributes and memberships), read in the client's session. */
export async function roleTarget(ctx: CommandContext, sync: string[], opts: { memberships?: boolean } = {}): Promise<RoleTarget> {
  const desired = await readRoles(clientQuery(ctx), sync);
  const target = emptyTarget(desired);
  for (const n of sync) target.sync.add(n);
  if (opts.memberships !== false) for (const n of sync) target.membershipsOf.add(n);
  target.committedVerifiers = await readVerifiers(internalQuery(coordinatorPool(ctx)), desired.roles.keys());
  return target;
}
