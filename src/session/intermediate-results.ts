/**
 * Executes a statement planned recursively (planner/recursive-planner.ts):
 * each intermediate result's own route runs first — a pull, a pushdown, a
 * broadcast join, a router or multi-shard query, or recursive again — and
 * its rows fill `pg_temp.pgweave_intermediate_<id>` on the coordinator
 * PostgreSQL (analyzed, so the coordinator plans over real statistics);
 * whatever that route pulled is dropped at once. Then the rest:
 *   - pushed down (the route's partial results or broadcast join): every
 *     intermediate table is copied from the coordinator into a temporary
 *     table of the same columns on each task node's connection — the very
 *     connections, in the same snapshot, that then run the shard tasks
 *     (CopyData forwarded as bytes, broadcast-tables.ts `fanOutCopy`, in
 *     binary when the types allow: commands/copy/binary-transfer.ts) — and
 *     dropped there when the tasks are done;
 *   - inside a transaction block (a worker transaction that touched a
 *     temporary table cannot PREPARE) or when nothing pushes down: the
 *     coordinator runs the rest over its tables (`fallback`, a plain pull).
 * Every step runs on the links of the statement's snapshot (consistent-
 * pull.ts over `intermediate.snapshot`), so the subqueries and the rest read
 * one consistent state. Once done, the intermediate tables are listed in
 * the route's `pulls`, so they are dropped with the pulled ones after the
 * final query.
 */
import { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { DistributedTable, WorkerNode } from '../metadata/types.js';
import type { IntermediateResult, PullTable, Route, Task } from '../planner/route.js';
import type { CopyCounters } from '../commands/copy/copy-progress.js';
import { pullTables } from './pull-tables.js';
import { pullPartialResults } from './partial-results.js';
import { isRecordColumnError } from '../planner/record-columns.js';
import { fanOutCopy, type StagingSchema } from './broadcast-tables.js';
import { parseBytes } from './repartition-tables.js';
import { copyFormat, copyOutExactly, sameEncoding } from '../commands/copy/binary-transfer.js';
import { columnsDefinition, relationColumns } from './relation-columns.js';

type PullRoute = Extract<Route, { kind: 'pull' }>;
type LinkFor = (node: WorkerNode) => Promise<BackendLink>;

/** Runs the data movement of any pull route: intermediate results, partial results or broadcast joins, plain pulls. */
export async function runPullRoute(
  coordinator: BackendLink,
  route: PullRoute,
  linkFor: LinkFor,
  progress: CopyCounters | null = null,
  settings: ReadonlyMap<string, string> = new Map(),
  staging: StagingSchema | null = null,
): Promise<PgError | null> {
  if (route.intermediate) return runIntermediate(coordinator, route, linkFor, settings);
  if (route.partial || route.broadcast || route.repartition) return pullPartialResults(coordinator, route, linkFor, settings, staging);
  return pullTables(coordinator, route.pulls, linkFor, progress);
}

function dropSql(names: string[]): string {
  return `DROP TABLE IF EXISTS ${names.map((n) => `pg_temp.${quoteIdent(n)}`).join(', ')}`;
}

/** Default of `pgweave.local_table_ship_threshold`: local tables larger than this stay on the coordinator. */
const DEFAULT_LOCAL_SHIP_THRESHOLD = 4 * 1024 * 1024;

async function runIntermediate(coordinator: BackendLink, route: PullRoute, linkFor: LinkFor, settings: ReadonlyMap<string, string>): Promise<PgError | null> {
  const plan = route.intermediate!;
  const names = plan.results.map((r) => r.tempName);
  const fail = async (err: PgError): Promise<PgError> => {
    await queryOnLink(coordinator, dropSql(names));
    return err;
  };
  for (const r of plan.results) {
    const err = await materialize(coordinator, r, linkFor);
    if (err) return fail(err);
  }
  const tooLarge = await largeLocalTable(coordinator, plan.results, parseBytes(settings.get('pgweave.local_table_ship_threshold')) ?? DEFAULT_LOCAL_SHIP_THRESHOLD);
  if (tooLarge && (route.partial || route.broadcast)) {
    plan.keptBecause = tooLarge;
    route.partial = undefined;
    route.broadcast = undefined;
    route.pulls = plan.fallback.pulls;
  }
  if ((route.partial || route.broadcast) && coordinator.status !== 0x49) {
    plan.keptBecause = 'inside a transaction block (a worker transaction with temporary tables cannot PREPARE)';
    route.partial = undefined;
    route.broadcast = undefined;
    route.pulls = plan.fallback.pulls;
  }
  let err: PgError | null;
  if (!route.partial && !route.broadcast) {
    err = await pullTables(coordinator, route.pulls, linkFor);
  } else {
    const nodes = taskNodes(route);
    plan.shippedNodes = nodes.length;
    const targets = await Promise.all(nodes.map(linkFor));
    const shipped = [...names, ...plan.reads];
    try {
      err = (await ship(coordinator, plan.results, shipped, targets)) ?? (await pullPartialResults(coordinator, route, linkFor));
    } finally {
      await Promise.all(targets.map(async (l) => {
        if (!l.lost) await queryOnLink(l, dropSql(shipped));
      }));
    }
  }
  if (err) return fail(err);
  route.pulls = [...route.pulls, ...names.map((n): PullTable => ({ table: { schema: 'pg_temp', name: n } as DistributedTable, tempName: n, filterSql: null, refName: n, intermediate: true }))];
  return null;
}

/**
 * Why a local table's result is too large to ship (its bytes above the
 * threshold), or null. Measured once materialized: the coordinator then
 * runs the rest over it, moving the distributed tables instead.
 */
async function largeLocalTable(coordinator: BackendLink, results: IntermediateResult[], threshold: number): Promise<string | null> {
  for (const r of results.filter((x) => x.localTable)) {
    const size = await queryOnLink(coordinator, `SELECT pg_catalog.pg_total_relation_size(${quoteLiteral(`pg_temp.${quoteIdent(r.tempName)}`)}::pg_catalog.regclass)`);
    const bytes = size.error ? NaN : Number(decodeDataRow(size.rows[0])[0]);
    if (!(bytes <= threshold)) return `local table of subplan ${r.id} (${bytes} bytes) above pgweave.local_table_ship_threshold (${threshold} bytes)`;
  }
  return null;
}

/** Computes one intermediate result into its temporary table on the coordinator. */
async function materialize(coordinator: BackendLink, r: IntermediateResult, linkFor: LinkFor): Promise<PgError | null> {
  const temp = quoteIdent(r.tempName);
  const columns = r.columns ? ` (${r.columns.map(quoteIdent).join(', ')})` : '';
  const create = `DROP TABLE IF EXISTS pg_temp.${temp}; CREATE TEMP TABLE ${temp}${columns} AS `;
  const route = r.route;
  let err: PgError | null = null;
  switch (route.kind) {
    case 'pull': {
      err = await runPullRoute(coordinator, route, linkFor);
      if (!err) err = (await queryOnLink(coordinator, create + route.sql)).error;
      const pulled = route.pulls.map((p) => p.tempName).filter((n) => n);
      if (pulled.length) await queryOnLink(coordinator, dropSql(pulled));
      break;
    }
    case 'local': {
      const sql = r.localTable ? await localTableSql(coordinator, r.localTable) : r.sql;
      err = sql instanceof PgError ? sql : (await queryOnLink(coordinator, create + sql)).error;
      break;
    }
    case 'router':
    case 'multi-shard': {
      if (route.isWrite) return new PgError({ code: '0A000', message: 'a subquery that writes cannot be planned on its own' });
      err = (await queryOnLink(coordinator, `${create}${r.sql} WITH NO DATA`)).error;
      if (!err) err = await pullTasks(coordinator, r.tempName, route.kind === 'router' ? [route.task] : route.tasks, linkFor);
      break;
    }
    case 'error':
      return route.error;
    default:
      return new PgError({ code: '0A000', message: `a subquery planned as "${route.kind}" cannot be an intermediate result` });
  }
  // A record the planner could not see (recursive-planner.ts declines the ones it can): refused, not a wrong error.
  if (err && isRecordColumnError(err)) {
    return new PgError({ code: '0A000', message: `subquery ${r.id} returns an anonymous record column, which cannot be an intermediate result (${err.message})`, hint: 'Cast the record to a composite type or to text.' });
  }
  if (err) return err;
  return (await queryOnLink(coordinator, `ANALYZE pg_temp.${temp}`)).error;
}

/** Streams the rows of router or multi-shard tasks into an existing temporary table (pull-tables.ts, one "shard" per task). */
function pullTasks(coordinator: BackendLink, tempName: string, tasks: Task[], linkFor: LinkFor): Promise<PgError | null> {
  const shards = tasks.map((t, i) => ({ shardId: -(i + 1), minValue: 0, maxValue: 0, shardName: `task_${i}`, placements: [{ placementId: 0, shardId: -(i + 1), groupId: t.node.groupId, node: t.node }] }));
  const table = { relationId: 0, schema: 'pg_temp', name: tempName, method: 'hash', shards } as unknown as DistributedTable;
  const prepared = new Map(tasks.map((t, i) => [`task_${i}`, t.sql]));
  return pullTables(coordinator, [{ table, tempName, filterSql: null, refName: tempName, prepared }], linkFor);
}

/** Nodes that may run the rest's tasks: the pushdown's, or every broadcast candidate's. */
function taskNodes(route: PullRoute): WorkerNode[] {
  const nodes = new Map<number, WorkerNode>();
  const tasks = [...(route.partial?.tasks ?? []), ...(route.broadcast?.candidates.flatMap((c) => c.route.partial.tasks) ?? [])];
  for (const t of tasks) nodes.set(t.node.nodeId, t.node);
  return [...nodes.values()];
}

/** Copies each intermediate table (by name) to the task nodes' connections, with statistics; notes the definitions of `results`. */
async function ship(coordinator: BackendLink, results: IntermediateResult[], names: string[], targets: BackendLink[]): Promise<PgError | null> {
  for (const name of names) {
    const temp = quoteIdent(name);
    const cols = await relationColumns(coordinator, `${quoteLiteral(`pg_temp.${temp}`)}::pg_catalog.regclass`);
    if (cols instanceof PgError) return cols;
    const definition = columnsDefinition(cols);
    const own = results.find((r) => r.tempName === name);
    if (own) own.definition = definition;
    const create = `DROP TABLE IF EXISTS pg_temp.${temp}; CREATE TEMP TABLE ${temp} (${definition})`;
    const created = await Promise.all(targets.map((l) => queryOnLink(l, create)));
    let err = created.find((c) => c.error)?.error ?? null;
    const binary = cols.every((c) => c.portable) && sameEncoding([coordinator, ...targets]);
    if (!err) err = await copyOutExactly(coordinator, `SELECT * FROM pg_temp.${temp}`, binary, (out) => fanOutCopy(coordinator, out, targets, `COPY pg_temp.${temp} FROM STDIN${copyFormat(binary)}`));
    if (!err) err = (await Promise.all(targets.map((l) => queryOnLink(l, `ANALYZE pg_temp.${temp}`)))).find((c) => c.error)?.error ?? null;
    if (err) return err;
  }
  return null;
}

/**
 * The copy of a local table: the columns the statement mentions that the
 * table has (all of them when it reads every column), so a role with
 * column privileges only needs the ones PostgreSQL would check.
 */
async function localTableSql(coordinator: BackendLink, t: NonNullable<IntermediateResult['localTable']>): Promise<string | PgError> {
  if (!t.neededColumns) return `SELECT * FROM ${t.name}`;
  const r = await queryOnLink(coordinator,
    `SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = ${quoteLiteral(t.name)}::pg_catalog.regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
  if (r.error) return r.error;
  const wanted = new Set(t.neededColumns);
  const columns = r.rows.map((row) => decodeDataRow(row)[0] as string).filter((c) => wanted.has(c));
  return `SELECT ${columns.map(quoteIdent).join(', ')} FROM ${t.name}`;
}
