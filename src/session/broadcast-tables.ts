/**
 * Executes a broadcast join's data movement (planner/broadcast-planner.ts).
 *
 * Choice: every table's size is read from its shards (`pg_relation_size`
 * on the workers); a candidate moves its broadcast tables to the
 * coordinator and on to each of the N task nodes, (1 + N) × their size; the
 * plain pull moves every table once. The cheapest runs.
 *
 * Inside a transaction block a worker transaction that touched a temporary
 * table could not PREPARE, and the block may later write there and need
 * two-phase commit: the block's candidates put their worker tables in the
 * staging schema instead (unlogged tables, `SessionServices.ensureStagingSchema`
 * creates the schema), on the block's own connections, so the tasks read
 * the block's uncommitted writes; the tables are created and dropped inside
 * the block's transaction — never visible to another transaction, gone with
 * a rollback, and the transaction can still PREPARE. Without that service
 * the block's statement is pulled.
 *
 * Shipping: a broadcast table's rows (its needed columns, its own filter
 * applied on the shards) are pulled into a temporary table on the
 * coordinator PostgreSQL, then copied from there (CopyData forwarded as
 * bytes, fanned out with backpressure; binary when the column types allow,
 * commands/copy/binary-transfer.ts) into a table of the same
 * columns on each task node's connection, and analyzed there — the very
 * connections, in the same snapshot transaction, that then run the shard
 * tasks. The worker tables go when the statement is done.
 */
import { PgError } from '../protocol/errors.js';
import { Frontend } from '../protocol/constants.js';
import { encodeMessage } from '../protocol/writer.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import type { BackendLink } from '../executor/backend-link.js';
import { collectOnLink, decodeDataRow, queryOnLink, streamCopyOut } from '../executor/link-query.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import type { DistributedTable, WorkerNode } from '../metadata/types.js';
import type { BroadcastCandidate, BroadcastTable, Route } from '../planner/route.js';
import { createWorkerTableSql, workerTableSql } from '../planner/broadcast-planner.js';
import { pullTables } from './pull-tables.js';
import { copyFormat, copyOutExactly, sameEncoding } from '../commands/copy/binary-transfer.js';
import { columnsDefinition, relationColumns } from './relation-columns.js';

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());
const COPY_FAIL = encodeMessage((w) => w.begin(Frontend.CopyFail).cstring('broadcast source failed').end());

type PullRoute = Extract<Route, { kind: 'pull' }>;
type LinkFor = (node: WorkerNode) => Promise<BackendLink>;

/** Nodes holding each table's shards (reference tables: their first placement). */
function shardsByNode(tables: DistributedTable[]): Map<number, { node: WorkerNode; shards: Array<{ table: DistributedTable; name: string }> }> {
  const out = new Map<number, { node: WorkerNode; shards: Array<{ table: DistributedTable; name: string }> }>();
  for (const t of tables) {
    for (const s of t.method === 'reference' ? t.shards.slice(0, 1) : t.shards) {
      const node = s.placements[0]?.node;
      if (!node) continue;
      const g = out.get(node.nodeId) ?? { node, shards: [] };
      g.shards.push({ table: t, name: s.shardName });
      out.set(node.nodeId, g);
    }
  }
  return out;
}

/** Bytes of each table's shards (relation id → bytes), summed over the nodes. */
export async function tableSizes(tables: DistributedTable[], linkFor: LinkFor): Promise<Map<number, number> | PgError> {
  const sizes = new Map<number, number>(tables.map((t) => [t.relationId, 0]));
  let failure: PgError | null = null;
  await Promise.all([...shardsByNode(tables).values()].map(async (g) => {
    const values = g.shards.map((s) => `(${quoteLiteral(s.table.schema)}, ${quoteLiteral(s.name)}, ${s.table.relationId})`).join(', ');
    const r = await queryOnLink(await linkFor(g.node),
      `SELECT v.id, pg_relation_size(c.oid) FROM (VALUES ${values}) v(nsp, rel, id) JOIN pg_namespace n ON n.nspname = v.nsp JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = v.rel`);
    if (r.error) failure ??= r.error;
    for (const row of r.rows) {
      const [id, bytes] = decodeDataRow(row);
      sizes.set(Number(id), (sizes.get(Number(id)) ?? 0) + Number(bytes));
    }
  }));
  return failure ?? sizes;
}

export function taskNodes(c: BroadcastCandidate): WorkerNode[] {
  const nodes = new Map<number, WorkerNode>();
  for (const t of c.route.partial.tasks) nodes.set(t.node.nodeId, t.node);
  return [...nodes.values()];
}

/**
 * Picks the candidate to run (or none) and sets the route up for it:
 * `partial`, `pulls` and `broadcast.chosen`. Returns an error only when the
 * sizes cannot be read.
 */
export async function chooseBroadcast(coordinator: BackendLink, route: PullRoute, linkFor: LinkFor, staging: StagingSchema | null): Promise<PgError | null> {
  const choice = route.broadcast!;
  let candidates = choice.candidates;
  if (coordinator.status !== 0x49) {
    // A block: worker tables in the staging schema (a worker transaction with temporary tables cannot PREPARE).
    if (!staging) {
      choice.pulledBecause = 'inside a transaction block (a worker transaction with temporary tables cannot PREPARE)';
      return null;
    }
    candidates = choice.blockCandidates();
  }
  const tables = route.pulls.map((p) => p.table).filter((t) => t.method === 'hash');
  const sizes = await tableSizes(tables, linkFor);
  if (sizes instanceof PgError) return sizes;
  const pullCost = tables.reduce((n, t) => n + (sizes.get(t.relationId) ?? 0), 0);
  let best: { c: BroadcastCandidate; cost: number } | null = null;
  for (const c of candidates) {
    const cost = (1 + taskNodes(c).length) * c.tables.reduce((n, t) => n + (sizes.get(t.table.relationId) ?? 0), 0);
    if (!best || cost < best.cost) best = { c, cost };
  }
  if (!best || best.cost > pullCost) {
    choice.pulledBecause = 'broadcasting would move more data than pulling every table';
    return null;
  }
  if (candidates !== choice.candidates) {
    try {
      await Promise.all(taskNodes(best.c).map((n) => staging!(n)));
    } catch (err) {
      return err instanceof PgError ? err : new PgError({ code: 'XX000', message: `could not create the staging schema: ${String(err)}` });
    }
  }
  choice.chosen = best.c;
  route.partial = best.c.route.partial;
  route.pulls = best.c.route.pulls;
  return null;
}

/** Makes sure a node's database has the staging schema (planner/broadcast-planner.ts STAGING_SCHEMA). */
export type StagingSchema = (node: WorkerNode) => Promise<void>;

/**
 * The temporary table's columns (`"a" integer COLLATE …, …`): the needed ones, at least one; `portable`:
 * whether they all may travel in binary (commands/copy/binary-transfer.ts).
 */
export async function columnDefinition(coordinator: BackendLink, t: BroadcastTable): Promise<{ definition: string; names: string[]; portable: boolean } | PgError> {
  const all = await relationColumns(coordinator, String(t.table.relationId));
  if (all instanceof PgError) return all;
  let cols = all.filter((c) => !t.neededColumns || t.neededColumns.has(c.name));
  if (cols.length === 0) cols = all.slice(0, 1);
  return { definition: columnsDefinition(cols), names: cols.map((c) => c.name), portable: cols.every((c) => c.portable) };
}

/**
 * The table's plain-column indexes whose columns were all shipped, rebuilt
 * on the temporary table (after the load: one sort each), so the workers
 * can probe the broadcast rows as they would the table's.
 */
async function indexSql(coordinator: BackendLink, t: BroadcastTable, shipped: string[]): Promise<string | PgError> {
  const r = await queryOnLink(coordinator,
    `SELECT (SELECT pg_catalog.array_to_json(pg_catalog.array_agg(a.attname ORDER BY k.n))::text
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.n <= i.indnkeyatts)
       FROM pg_index i WHERE i.indrelid = ${t.table.relationId} AND i.indpred IS NULL AND i.indexprs IS NULL`);
  if (r.error) return r.error;
  let sql = '';
  for (const row of r.rows) {
    const names = JSON.parse(decodeDataRow(row)[0] ?? '[]') as string[];
    if (names.length > 0 && names.every((n) => shipped.includes(n))) sql += `CREATE INDEX ON ${workerTableSql(t)} (${names.map(quoteIdent).join(', ')}); `;
  }
  return sql;
}

/**
 * Streams `COPY … TO STDOUT` of one link into `COPY … FROM STDIN` of
 * several, CopyData forwarded as bytes; the source pauses while any sink's
 * socket is full.
 */
export async function fanOutCopy(source: BackendLink, sourceSql: string, sinks: BackendLink[], sinkSql: string): Promise<PgError | null> {
  const done = sinks.map((l) => collectOnLink(l, encodeQuery(sinkSql)));
  // The sinks whose socket is full, each with its one 'drain' listener: a
  // full socket refuses every further write until it drains, and the sinks
  // are pooled links, so a listener per refused write would pile up.
  const full = new Map<BackendLink, () => void>();
  const out = await streamCopyOut(source, sourceSql, (msg) => {
    for (const l of sinks) {
      if (l.conn.socket.write(msg) || full.has(l)) continue;
      if (full.size === 0) source.conn.socket.pause();
      const drained = () => {
        full.delete(l);
        if (full.size === 0) source.conn.socket.resume();
      };
      full.set(l, drained);
      l.conn.socket.once('drain', drained);
    }
  });
  for (const l of sinks) l.conn.socket.write(out.error ? COPY_FAIL : COPY_DONE);
  const results = await Promise.all(done);
  if (full.size > 0) {
    for (const [l, drained] of full) l.conn.socket.removeListener('drain', drained);
    full.clear();
    source.conn.socket.resume();
  }
  return out.error ?? results.find((r) => r.error)?.error ?? null;
}

/** Ships the chosen candidate's tables to its task nodes (see the module comment). */
export async function shipBroadcastTables(coordinator: BackendLink, c: BroadcastCandidate, linkFor: LinkFor): Promise<PgError | null> {
  const targets = await Promise.all(taskNodes(c).map(linkFor));
  for (const t of c.tables) {
    const cols = await columnDefinition(coordinator, t);
    if (cols instanceof PgError) return cols;
    t.definition = cols.definition;
    const temp = quoteIdent(t.tempName);
    const create = `DROP TABLE IF EXISTS pg_temp.${temp}; CREATE TEMP TABLE ${temp} (${cols.definition})`;
    const staged = await queryOnLink(coordinator, create);
    if (staged.error) return staged.error;
    const select = cols.names.map(quoteIdent).join(', ');
    const where = t.filterSql ? ` WHERE ${t.filterSql}` : '';
    const prepared = new Map(t.table.shards.map((s) => [s.shardName, `SELECT ${select} FROM ${quoteQualified(t.table.schema, s.shardName)} AS ${quoteIdent(t.refName)}${where}`]));
    let err = await pullTables(coordinator, [{ table: t.table, tempName: t.tempName, filterSql: null, refName: t.refName, prepared }], linkFor);
    if (!err) {
      const created = await Promise.all(targets.map((l) => queryOnLink(l, createWorkerTableSql(t, cols.definition))));
      err = created.find((r) => r.error)?.error ?? null;
    }
    const binary = cols.portable && sameEncoding([coordinator, ...targets]);
    if (!err) err = await copyOutExactly(coordinator, `SELECT * FROM pg_temp.${temp}`, binary, (out) => fanOutCopy(coordinator, out, targets, `COPY ${workerTableSql(t)} FROM STDIN${copyFormat(binary)}`));
    if (!err) {
      const indexes = await indexSql(coordinator, t, cols.names);
      if (indexes instanceof PgError) err = indexes;
      else {
        const analyzed = await Promise.all(targets.map((l) => queryOnLink(l, `${indexes}ANALYZE ${workerTableSql(t)}`)));
        err = analyzed.find((r) => r.error)?.error ?? null;
      }
    }
    await queryOnLink(coordinator, `DROP TABLE IF EXISTS pg_temp.${temp}`);
    if (err) return err;
  }
  return null;
}

/** Drops the broadcast tables on the task nodes once the shard tasks are done. */
export async function dropBroadcastTables(c: BroadcastCandidate, linkFor: LinkFor): Promise<void> {
  const sql = `DROP TABLE IF EXISTS ${c.tables.map(workerTableSql).join(', ')}`;
  await Promise.all(taskNodes(c).map(async (n) => {
    const link = await linkFor(n).catch(() => null);
    if (link && !link.lost) await queryOnLink(link, sql);
  }));
}
