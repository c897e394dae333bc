/**
 * Executes a repartition join's data movement (planner/repartition-planner.ts).
 *
 * Choice (`chooseRepartition`): never inside a transaction block (a worker
 * transaction that touched temporary tables cannot PREPARE, as for broadcast
 * joins), never with `citus.enable_repartition_joins` off. The tables' sizes
 * come from their shards; repartitioning moves every side once, worker to
 * worker (as many bytes as the plain pull, but in parallel on the workers and
 * past the coordinator), so it runs when the sides add up to at least
 * `pgweave.repartition_join_threshold` (below it the fixed cost of staging
 * dominates) and no broadcast candidate moves fewer bytes. Its bucket count
 * is `citus.repartition_join_bucket_count_per_node` × nodes. The join keys
 * are cast to one type before hashing (int and bigint both as bigint, …) so
 * equal values hash alike; keys of types that do not compare that way (or
 * with nondeterministic collations) leave the statement to the other
 * strategies.
 *
 * Movement (`shipRepartitionTables`), on the connections (and snapshots)
 * that then run the tasks: on every node, per side, a temporary table of the
 * needed columns LIST-partitioned by the bucket of its key (the bucket is
 * computed from the row, so a COPY into the parent lands each row in its
 * bucket's partition; NULL keys go with bucket 0), with one partition per
 * bucket of that node. Then, per (side, source node, target node), the
 * source's shards are read with the side's own filter and only that target's
 * buckets: same node, `INSERT INTO staging SELECT …`; other node, `COPY
 * (SELECT …) TO STDOUT` piped byte for byte into `COPY staging FROM STDIN`
 * (commands/copy/worker-repartition.ts `pipe`, with backpressure; binary
 * when the column types allow, commands/copy/binary-transfer.ts). A
 * connection runs one statement at a time, so the moves run in rounds that
 * use each node once. Last, ANALYZE; the shard tasks read the partitions.
 * The staging tables are dropped when the statement is done, failed or not
 * (and go with the snapshot transaction at the latest: ON COMMIT DROP).
 */
import { PgError, toPgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import type { WorkerNode } from '../metadata/types.js';
import type { RepartitionCandidate, RepartitionSide, Route } from '../planner/route.js';
import { bucketsOn } from '../planner/repartition-planner.js';
import { each, pipe, shardIndexSql } from '../commands/copy/worker-repartition.js';
import { columnDefinition, tableSizes, taskNodes } from './broadcast-tables.js';
import { copyFormat, copyOutExactly, sameEncoding } from '../commands/copy/binary-transfer.js';

type PullRoute = Extract<Route, { kind: 'pull' }>;
type LinkFor = (node: WorkerNode) => Promise<BackendLink>;

export interface RepartitionSettings {
  enabled: boolean;
  thresholdBytes: number;
  bucketsPerNode: number;
}

/** Below this many bytes of joined tables, staging costs more than it saves. */
const DEFAULT_THRESHOLD = 8 * 1024 * 1024;

/** The session's repartition settings, with their defaults. */
export function repartitionSettings(settings: ReadonlyMap<string, string>): RepartitionSettings {
  const enabled = settings.get('citus.enable_repartition_joins');
  const buckets = Number(unquote(settings.get('citus.repartition_join_bucket_count_per_node') ?? ''));
  return {
    enabled: enabled === undefined || !/^(off|false|no|0|f|n)$/i.test(unquote(enabled)),
    thresholdBytes: parseBytes(settings.get('pgweave.repartition_join_threshold')) ?? DEFAULT_THRESHOLD,
    bucketsPerNode: Number.isInteger(buckets) && buckets >= 1 && buckets <= 64 ? buckets : 4,
  };
}

function unquote(v: string): string {
  return v.trim().replace(/^'(.*)'$/, '$1').trim();
}

/** '0', '8MB', '512 kB', '1GB' → bytes (PostgreSQL's memory units; a bare number is bytes). */
export function parseBytes(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?$/i.exec(unquote(v));
  if (!m) return null;
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 }[(m[2] ?? 'b').toLowerCase()]!;
  return Number(m[1]) * unit;
}

/**
 * Decides whether the route repartitions; if so sets `repartition.chosen`,
 * the route's `partial` and `pulls`. Returns an error only when the sizes or
 * types cannot be read.
 */
export async function chooseRepartition(coordinator: BackendLink, route: PullRoute, linkFor: LinkFor, settings: RepartitionSettings): Promise<PgError | null> {
  const choice = route.repartition!;
  const not = (why: string) => {
    choice.notChosenBecause = why;
    return null;
  };
  if (coordinator.status !== 0x49) return not('inside a transaction block (a worker transaction with temporary tables cannot PREPARE)');
  if (!settings.enabled) return not('citus.enable_repartition_joins is off');
  const tables = route.pulls.map((p) => p.table).filter((t) => t.method === 'hash');
  const sizes = await tableSizes(tables, linkFor);
  if (sizes instanceof PgError) return sizes;
  const moved = choice.sides.reduce((n, s) => n + (sizes.get(s.table.relationId) ?? 0), 0);
  if (moved < settings.thresholdBytes) return not(`the tables (${moved} bytes) are below pgweave.repartition_join_threshold (${settings.thresholdBytes} bytes)`);
  const pullCost = tables.reduce((n, t) => n + (sizes.get(t.relationId) ?? 0), 0);
  if (moved > pullCost) return not('repartitioning would move more data than pulling every table');
  for (const c of route.broadcast?.candidates ?? []) {
    const cost = (1 + taskNodes(c).length) * c.tables.reduce((n, t) => n + (sizes.get(t.table.relationId) ?? 0), 0);
    if (cost < moved) return not('broadcasting would move less data');
  }
  const candidate = choice.plan(settings.bucketsPerNode);
  if (!candidate) return not('the query cannot run per bucket');
  const keyType = await commonKeyType(coordinator, candidate.sides);
  if (keyType instanceof PgError) return keyType;
  if (!keyType) return not('the join keys have types that do not hash alike');
  candidate.keyType = keyType;
  for (const t of candidate.pseudo) t.distributionColumnSqlType = keyType;
  choice.chosen = candidate;
  route.partial = candidate.route.partial;
  route.pulls = candidate.route.pulls;
  return null;
}

const INTEGERS = new Set(['int2', 'int4', 'int8']);
const NUMBERS = new Set([...INTEGERS, 'numeric']);
const FLOATS = new Set([...NUMBERS, 'float4', 'float8']);
const STRINGS = new Set(['text', 'varchar', 'bpchar']);

/**
 * The type all join keys are cast to before hashing — the one PostgreSQL's
 * `=` between them compares in — or null when there is none this module
 * knows (or a key has a nondeterministic collation: equal strings would hash
 * apart; or its type has no hash operator class, as money).
 */
async function commonKeyType(coordinator: BackendLink, sides: RepartitionSide[]): Promise<string | null | PgError> {
  const values = sides.map((s, i) => `(${s.table.relationId}::oid, ${quoteLiteral(s.key)}, ${i})`).join(', ');
  const r = await queryOnLink(coordinator,
    `SELECT n.nspname, t.typname, COALESCE((SELECT c.collisdeterministic FROM pg_catalog.pg_collation c WHERE c.oid = a.attcollation), true),
            EXISTS (SELECT 1 FROM pg_catalog.pg_opclass oc JOIN pg_catalog.pg_am am ON am.oid = oc.opcmethod
                     WHERE am.amname = 'hash' AND oc.opcdefault AND (oc.opcintype = t.oid OR (t.typtype = 'e' AND oc.opcintype = 'pg_catalog.anyenum'::pg_catalog.regtype)))
       FROM (VALUES ${values}) v(rel, col, i)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = v.rel AND a.attname = v.col
       JOIN pg_catalog.pg_type t0 ON t0.oid = a.atttypid
       JOIN pg_catalog.pg_type t ON t.oid = CASE WHEN t0.typtype = 'd' THEN t0.typbasetype ELSE t0.oid END
       JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      ORDER BY v.i`);
  if (r.error) return r.error;
  const rows = r.rows.map(decodeDataRow);
  if (rows.length !== sides.length || rows.some((x) => x[2] !== 't')) return null;
  const builtin = rows.every(([nsp]) => nsp === 'pg_catalog');
  const names = rows.map((x) => x[1]!);
  const within = (family: Set<string>) => builtin && names.every((n) => family.has(n));
  // varchar hashes through text's operator class; other types need a hash operator class of their own.
  if (!within(STRINGS) && rows.some((x) => x[3] !== 't')) return null;
  const types = new Set(rows.map(([nsp, name]) => quoteQualified(nsp!, name!)));
  if (types.size === 1 && !(builtin && names[0] === 'varchar')) return [...types][0];
  if (within(INTEGERS)) return 'pg_catalog.int8';
  if (within(NUMBERS)) return 'pg_catalog."numeric"';
  if (within(FLOATS)) return 'pg_catalog.float8';
  if (within(STRINGS)) return 'pg_catalog.text';
  return null;
}

interface Move {
  side: number;
  source: WorkerNode;
  shards: string[];
  target: WorkerNode;
}

/** Stages every side's rows in its buckets' partitions on the bucket nodes (see the module comment). */
export async function shipRepartitionTables(coordinator: BackendLink, c: RepartitionCandidate, linkFor: LinkFor): Promise<PgError | null> {
  try {
    const columns: string[][] = [];
    const bucketOf: string[] = [];
    const portable: boolean[] = [];
    for (const [j, s] of c.sides.entries()) {
      const cols = await columnDefinition(coordinator, { table: s.table, tempName: s.stagingName, refName: s.refName, neededColumns: s.neededColumns, filterSql: null, workerTable: { schema: 'pg_temp', name: s.stagingName } });
      if (cols instanceof PgError) return cols;
      s.definition = cols.definition;
      columns.push(cols.names);
      portable.push(cols.portable);
      bucketOf.push(shardIndexSql(c.pseudo[j], quoteIdent(s.key)));
    }
    await each(c.nodes, async (node) => {
      const mine = bucketsOn(c, node);
      const sql: string[] = [];
      for (const [j, s] of c.sides.entries()) {
        const parent = quoteIdent(s.stagingName);
        sql.push(`DROP TABLE IF EXISTS pg_temp.${parent}`, `CREATE TEMP TABLE ${parent} (${s.definition}) PARTITION BY LIST ((${bucketOf[j]})) ON COMMIT DROP`);
        for (const b of mine) sql.push(`CREATE TEMP TABLE ${quoteIdent(`${s.stagingName}_${b}`)} PARTITION OF pg_temp.${parent} FOR VALUES IN (${b === 0 ? '0, -1' : b})`);
      }
      await run(await linkFor(node), sql.join(';\n'));
    });
    const moves: Move[] = [];
    for (const [j, s] of c.sides.entries()) {
      const bySource = new Map<number, { node: WorkerNode; shards: string[] }>();
      for (const shard of s.table.shards) {
        const node = shard.placements[0].node;
        const g = bySource.get(node.nodeId) ?? { node, shards: [] };
        g.shards.push(shard.shardName);
        bySource.set(node.nodeId, g);
      }
      for (const g of bySource.values()) for (const target of c.nodes) moves.push({ side: j, source: g.node, shards: g.shards, target });
    }
    const selectFor = (m: Move): string => {
      const s = c.sides[m.side];
      const buckets = bucketsOn(c, m.target);
      if (buckets.includes(0)) buckets.push(-1);
      const where = `${s.filterSql ? `(${s.filterSql}) AND ` : ''}(${bucketOf[m.side]}) = ANY ('{${buckets.join(',')}}'::int4[])`;
      const list = columns[m.side].map(quoteIdent).join(', ');
      return m.shards.map((name) => `SELECT ${list} FROM ${quoteQualified(s.table.schema, name)} AS ${quoteIdent(s.refName)} WHERE ${where}`).join(' UNION ALL ');
    };
    while (moves.length > 0) {
      const busy = new Set<number>();
      const round: Move[] = [];
      for (let i = 0; i < moves.length;) {
        const m = moves[i];
        if (busy.has(m.source.nodeId) || busy.has(m.target.nodeId)) {
          i++;
          continue;
        }
        busy.add(m.source.nodeId).add(m.target.nodeId);
        round.push(m);
        moves.splice(i, 1);
      }
      await each(round, async (m) => {
        const staging = `pg_temp.${quoteIdent(c.sides[m.side].stagingName)} (${columns[m.side].map(quoteIdent).join(', ')})`;
        const source = await linkFor(m.source);
        if (m.source.nodeId === m.target.nodeId) return run(source, `INSERT INTO ${staging} ${selectFor(m)}`);
        const target = await linkFor(m.target);
        const binary = portable[m.side] && sameEncoding([source, target]);
        const err = await copyOutExactly(source, selectFor(m), binary, (out) => pipe(source, out, target, `COPY ${staging} FROM STDIN${copyFormat(binary)}`));
        if (err) throw err;
      });
    }
    await each(c.nodes, async (node) => run(await linkFor(node), c.sides.map((s) => `ANALYZE pg_temp.${quoteIdent(s.stagingName)}`).join(';\n')));
    return null;
  } catch (err) {
    return toPgError(err);
  }
}

/** Drops the staging tables on every bucket node once the shard tasks are done. */
export async function dropRepartitionTables(c: RepartitionCandidate, linkFor: LinkFor): Promise<void> {
  const sql = `DROP TABLE IF EXISTS ${c.sides.map((s) => 'pg_temp.' + quoteIdent(s.stagingName)).join(', ')}`;
  await Promise.all(c.nodes.map(async (n) => {
    const link = await linkFor(n).catch(() => null);
    if (link && !link.lost) await queryOnLink(link, sql);
  }));
}

async function run(link: BackendLink, sql: string): Promise<void> {
  const r = await queryOnLink(link, sql);
  if (r.error) throw r.error;
}
