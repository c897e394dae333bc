/**
 * Executes the data movement of a pushdown route (planner/pushdown-query.ts):
 * creates the temporary table of partial results from the worker query over
 * the coordinator's own tables (`WITH NO DATA`: exact column types), reads
 * those types back, asks the plan for its final SQL, then streams every
 * shard group's worker rows into the table through the pull machinery
 * (pull-tables.ts). When the plan declines for these types (float sums),
 * the table is dropped and the statement's tables are pulled instead, so
 * the route's `sql` is the plain pull query again.
 *
 * A broadcast join (route.broadcast) first picks its candidate or the plain
 * pull, and ships the broadcast tables to the task nodes
 * (broadcast-tables.ts) on the connections that then run the tasks. A
 * repartition join (route.repartition) is considered first: when chosen,
 * every side is re-hashed into buckets on the workers (repartition-tables.ts).
 */
import { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { quoteIdent } from '../sql/quote.js';
import { partialTableSql } from '../planner/pushdown-query.js';
import { isRecordColumnError } from '../planner/record-columns.js';
import type { WorkerNode } from '../metadata/types.js';
import type { Route } from '../planner/route.js';
import { pullTables } from './pull-tables.js';
import { chooseBroadcast, dropBroadcastTables, shipBroadcastTables, type StagingSchema } from './broadcast-tables.js';
import { chooseRepartition, dropRepartitionTables, repartitionSettings, shipRepartitionTables } from './repartition-tables.js';

export async function pullPartialResults(
  coordinator: BackendLink,
  route: Extract<Route, { kind: 'pull' }>,
  linkFor: (node: WorkerNode) => Promise<BackendLink>,
  settings: ReadonlyMap<string, string> = new Map(),
  /** Creates the staging schema on a node (broadcast joins in transaction blocks); null: blocks pull instead. */
  staging: StagingSchema | null = null,
): Promise<PgError | null> {
  if (route.repartition) {
    const err = await chooseRepartition(coordinator, route, linkFor, repartitionSettings(settings));
    if (err) return err;
    const chosen = route.repartition.chosen;
    if (chosen) {
      try {
        return (await shipRepartitionTables(coordinator, chosen, linkFor)) ?? (await pullPartial(coordinator, route, linkFor));
      } finally {
        await dropRepartitionTables(chosen, linkFor);
      }
    }
  }
  const choice = route.broadcast;
  if (!choice) return route.partial ? pullPartial(coordinator, route, linkFor) : pullTables(coordinator, route.pulls, linkFor);
  const chosenErr = await chooseBroadcast(coordinator, route, linkFor, staging);
  if (chosenErr) return chosenErr;
  const chosen = choice.chosen;
  if (!chosen) return pullTables(coordinator, route.pulls, linkFor);
  try {
    return (await shipBroadcastTables(coordinator, chosen, linkFor)) ?? (await pullPartial(coordinator, route, linkFor));
  } finally {
    await dropBroadcastTables(chosen, linkFor);
  }
}

async function pullPartial(
  coordinator: BackendLink,
  route: Extract<Route, { kind: 'pull' }>,
  linkFor: (node: WorkerNode) => Promise<BackendLink>,
): Promise<PgError | null> {
  const partial = route.partial!;
  const [entry, ...fallback] = route.pulls;
  const temp = quoteIdent(partial.tempName);
  const created = await queryOnLink(coordinator, partialTableSql(partial));
  if (created.error && isRecordColumnError(created.error)) {
    // A record the planner could not see (a function returning record…): outside a block the coordinator
    // runs the statement over the pulled tables instead; inside one the failed CREATE has aborted the block.
    if (coordinator.status !== 0x49) return recordColumnRefusal(created.error);
    return pullTables(coordinator, fallback, linkFor);
  }
  if (created.error) return created.error;
  const types = created.rows.map((r) => decodeDataRow(r)[0] ?? '');
  partial.finalSql = partial.combine(types);
  if (partial.finalSql === null) {
    const dropped = await queryOnLink(coordinator, `DROP TABLE pg_temp.${temp}`);
    if (dropped.error) return dropped.error;
    return pullTables(coordinator, fallback, linkFor);
  }
  return pullTables(coordinator, [entry], linkFor);
}

/** The refusal a client sees when an anonymous record cannot be staged in a temporary table. */
export function recordColumnRefusal(err: PgError): PgError {
  return new PgError({
    code: '0A000',
    message: `an anonymous record column cannot be staged in a temporary table inside a transaction block (${err.message})`,
    hint: 'Cast the record to a composite type or to text, or run the statement outside the transaction block.',
  });
}
