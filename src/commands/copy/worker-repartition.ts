/**
 * INSERT … SELECT repartitioned on the workers: the rows go from the source
 * shards to the target shards without passing through the coordinator
 * PostgreSQL, and the coordinator never parses a row.
 *
 * 1. Each target node gets a staging table (in the target's schema, created
 *    inside the statement's transaction) typed like the SELECT's output plus
 *    the target shard index of each row, list-partitioned by that index into
 *    one UNLOGGED partition per target shard of the node.
 * 2. For every (source shard group task, target node) pair, the task's
 *    SELECT runs on its node with the target shard index computed there —
 *    PostgreSQL's hash of the distribution value (src/sql/hash.ts
 *    hashCallSql, the same function the catalog records for the target) and
 *    the target's shard ranges (`width_bucket` over the shards' lower
 *    bounds, DESIGN.md decision 3) — keeping the rows of that node's shards.
 *    Same node: `INSERT INTO staging SELECT …` on it. Other node:
 *    `COPY (SELECT …) TO STDOUT` on the source, its CopyData forwarded byte
 *    for byte into `COPY staging FROM STDIN` on the target (binary when
 *    the types allow, binary-transfer.ts), the source
 *    paused whenever the target's socket is backed up. A connection serves
 *    one statement at a time, so the pairs run in rounds that use each node
 *    once; the SELECT runs once per target node.
 * 3. Per target shard, on its node: `INSERT INTO shard AS alias (cols)
 *    SELECT … FROM staging WHERE shard index = k` followed by the client's
 *    own ON CONFLICT / RETURNING text — PostgreSQL's INSERT semantics
 *    (assignment casts, defaults, untyped literals typed by their column).
 *    Then the staging tables are dropped.
 *
 * Everything runs on the session's connections: inside the client's block
 * it is part of the block; outside one, in a transaction of its own on every
 * node, committed by one-phase commit (one node) or the session's
 * two-phase commit, so the statement is atomic. A NULL distribution value
 * fails the statement as Citus does.
 */
import { PgError, toPgError } from '../../protocol/errors.js';
import { Frontend } from '../../protocol/constants.js';
import { encodeMessage } from '../../protocol/writer.js';
import { encodeQuery } from '../../pool/frontend-encoders.js';
import type { BackendLink } from '../../executor/backend-link.js';
import { collectOnLink, queryOnLink, streamCopyOut, tagCount, type CollectedResult } from '../../executor/link-query.js';
import type { DistributedTable, WorkerNode } from '../../metadata/types.js';
import type { InsertSelectPlan } from '../../planner/insert-select-planner.js';
import type { Task } from '../../planner/route.js';
import { hashCallSql } from '../../sql/hash.js';
import { quoteIdent, quoteQualified } from '../../sql/quote.js';
import type { RoutingAccess } from './routing-config.js';
import { lostError } from './link-pipeline.js';
import { copyFormat, copyOutExactly, sameEncoding } from './binary-transfer.js';

const COPY_DONE = encodeMessage((w) => w.begin(Frontend.CopyDone).end());
const SHARD_COLUMN = 'pgweave_shard';

export interface WorkerRepartition {
  plan: InsertSelectPlan;
  /** The SELECT's output column types (format_type), in order. */
  types: string[];
  /** The target columns the SELECT's columns go into, in order. */
  targetColumns: string[];
  /** Index among the SELECT's columns of the one feeding the target's distribution column. */
  distIndex: number;
  /** Whether every output type may travel in binary (binary-transfer.ts). */
  portable: boolean;
}

/** The target shard index of q.c<distIndex>, as SQL that runs on any node (-1 for NULL). */
export function shardIndexSql(target: DistributedTable, valueSql: string): string {
  const type = target.distributionColumnSqlType ?? target.distributionColumnType!;
  const hash = hashCallSql(target.hashFunction!, `(${valueSql})::${type}`);
  const bounds = target.shards.slice(1).map((s) => s.minValue);
  if (bounds.length === 0) return `(CASE WHEN (${valueSql}) IS NULL THEN -1 ELSE 0 END)`;
  return `COALESCE(pg_catalog.width_bucket(${hash}, '{${bounds.join(',')}}'::int4[]), -1)`;
}

interface Move {
  task: Task;
  target: WorkerNode;
  shardIndexes: number[];
}

export async function runWorkerRepartition(r: WorkerRepartition, access: RoutingAccess): Promise<CollectedResult> {
  const p = r.plan;
  const target = p.target;
  const staging = `pgweave_repartition_${target.relationId}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
  const stagingName = quoteQualified(target.schema, staging);
  const byNode = new Map<number, { node: WorkerNode; shards: number[] }>();
  target.shards.forEach((s, i) => {
    const node = s.placements[0].node;
    const g = byNode.get(node.nodeId) ?? { node, shards: [] };
    g.shards.push(i);
    byNode.set(node.nodeId, g);
  });
  const nodes = new Map<number, WorkerNode>();
  for (const t of p.tasks) nodes.set(t.node.nodeId, t.node);
  for (const g of byNode.values()) nodes.set(g.node.nodeId, g.node);
  const ownBlock = !access.inTransactionBlock;
  const links = new Map<number, BackendLink>();
  try {
    for (const n of nodes.values()) {
      const link = await access.linkFor(n, true);
      links.set(n.nodeId, link);
      if (ownBlock) {
        const b = await queryOnLink(link, 'BEGIN');
        if (b.error) throw b.error;
      }
    }
    const linkOf = (n: WorkerNode) => links.get(n.nodeId)!;
    const columns = r.types.map((t, i) => `c${i} ${t}`).join(', ');
    // One partition per target shard: each shard's INSERT reads only its own rows.
    const first = [...byNode.values()][0].node.nodeId;
    await each([...byNode.values()], async (g) => {
      const parts = (g.node.nodeId === first ? [-1, ...g.shards] : g.shards).map((k) =>
        `CREATE UNLOGGED TABLE ${quoteQualified(target.schema, `${staging}_${k < 0 ? 'null' : k}`)} PARTITION OF ${stagingName} FOR VALUES IN (${k})`);
      const c = await queryOnLink(linkOf(g.node), [`CREATE TABLE ${stagingName} (${columns}, ${SHARD_COLUMN} int4) PARTITION BY LIST (${SHARD_COLUMN})`, ...parts].join(';\n'));
      if (c.error) throw c.error;
    });

    // Rows to the target nodes.
    const moves: Move[] = [];
    for (const task of p.tasks) {
      for (const g of byNode.values()) moves.push({ task, target: g.node, shardIndexes: g.node.nodeId === first ? [-1, ...g.shards] : g.shards });
    }
    const names = r.types.map((_, i) => `c${i}`).join(', ');
    const selectFor = (m: Move) =>
      `SELECT pgweave_rows.* FROM (SELECT q.*, ${shardIndexSql(target, `q.c${r.distIndex}`)} AS ${SHARD_COLUMN} FROM (${m.task.sql}) AS q(${names})) AS pgweave_rows ` +
      `WHERE pgweave_rows.${SHARD_COLUMN} = ANY ('{${m.shardIndexes.join(',')}}'::int4[])`;
    while (moves.length > 0) {
      const busy = new Set<number>();
      const round: Move[] = [];
      for (let i = 0; i < moves.length; ) {
        const m = moves[i];
        if (busy.has(m.task.node.nodeId) || busy.has(m.target.nodeId)) {
          i++;
          continue;
        }
        busy.add(m.task.node.nodeId);
        busy.add(m.target.nodeId);
        round.push(m);
        moves.splice(i, 1);
      }
      await each(round, async (m) => {
        const source = linkOf(m.task.node);
        if (m.task.node.nodeId === m.target.nodeId) {
          const ins = await queryOnLink(source, `INSERT INTO ${stagingName} ${selectFor(m)}`);
          if (ins.error) throw ins.error;
          return;
        }
        const binary = r.portable && sameEncoding([source, linkOf(m.target)]);
        const err = await copyOutExactly(source, selectFor(m), binary, (out) => pipe(source, out, linkOf(m.target), `COPY ${stagingName} FROM STDIN${copyFormat(binary)}`));
        if (err) throw err;
      });
    }

    // Staging rows into the target shards.
    const alias = quoteIdent(p.insert.relation.alias?.aliasname ?? target.name);
    const cols = r.targetColumns.map(quoteIdent).join(', ');
    const exprs = r.types.map((_, i) => p.literals[i] ?? `pgweave_rows.c${i}`).join(', ');
    const override = p.insert.override === 'OVERRIDING_SYSTEM_VALUE' ? ' OVERRIDING SYSTEM VALUE' : p.insert.override === 'OVERRIDING_USER_VALUE' ? ' OVERRIDING USER VALUE' : '';
    let count = 0;
    let rowDescription: Buffer | null = null;
    const returned: Buffer[] = [];
    await each([...byNode.values()], async (g) => {
      const link = linkOf(g.node);
      if (g.node.nodeId === first) {
        const nulls = await queryOnLink(link, `SELECT 1 FROM ${stagingName} WHERE ${SHARD_COLUMN} = -1 LIMIT 1`);
        if (nulls.error) throw nulls.error;
        if (nulls.rows.length > 0) throw new PgError({ code: '23502', message: 'cannot perform an INSERT with NULL in the partition column' });
      }
      for (const k of g.shards) {
        const shard = quoteQualified(target.schema, target.shards[k].shardName);
        const sql = `INSERT INTO ${shard} AS ${alias} (${cols})${override} SELECT ${exprs} FROM ${stagingName} AS pgweave_rows WHERE pgweave_rows.${SHARD_COLUMN} = ${k} ${p.tailSql}`;
        const res = await collectOnLink(link, encodeQuery(sql));
        if (res.error) throw res.error;
        count += tagCount(res.tag);
        if (res.rowDescription) rowDescription ??= Buffer.from(res.rowDescription);
        for (const row of res.rows) returned.push(Buffer.from(row));
      }
      const drop = await queryOnLink(link, `DROP TABLE ${stagingName}`);
      if (drop.error) throw drop.error;
    });

    if (ownBlock) await commit([...byNode.values()].map((g) => linkOf(g.node)), [...links.values()].filter((l) => ![...byNode.keys()].includes(l.nodeId)), access);
    return { rowDescription, rows: returned, tag: `INSERT 0 ${count}`, error: null };
  } catch (err) {
    const error = toPgError(err);
    if (ownBlock) {
      await Promise.all([...links.values()].filter((l) => !l.lost).map((l) => queryOnLink(l, 'ROLLBACK')));
    } else {
      // An error inside a block fails the block, as in PostgreSQL; the client's ROLLBACK undoes the staging tables.
      await access.runAsClient(`DO $pgweave$BEGIN RAISE EXCEPTION 'INSERT … SELECT failed'; END$pgweave$`).catch(() => {});
    }
    return { rowDescription: null, rows: [], tag: '', error };
  }
}

/** Runs `work` on every item in parallel; the first failure is thrown once all have settled. */
export async function each<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  const results = await Promise.allSettled(items.map(work));
  const failed = results.find((x) => x.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
}

/** `COPY … TO STDOUT` on `source` streamed into `COPY … FROM STDIN` on `sink`: CopyData forwarded unchanged. */
export async function pipe(source: BackendLink, copyOut: string, sink: BackendLink, copyIn: string): Promise<PgError | null> {
  const into = collectOnLink(sink, encodeQuery(copyIn));
  const socket = sink.conn.socket;
  let waiting = false;
  const resume = () => {
    waiting = false;
    source.conn.socket.resume();
  };
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  const out = await streamCopyOut(source, copyOut, (msg) => {
    // One CopyData per row: written together at the end of the tick.
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    if (!socket.write(msg) && !waiting) {
      waiting = true;
      source.conn.socket.pause();
      socket.once('drain', resume);
    }
  });
  if (waiting) {
    socket.removeListener('drain', resume);
    source.conn.socket.resume();
  }
  socket.write(out.error ? encodeMessage((w) => w.begin(Frontend.CopyFail).cstring('the source shard failed').end()) : COPY_DONE);
  const done = await into;
  return out.error ?? done.error;
}

async function commit(written: BackendLink[], readOnly: BackendLink[], access: RoutingAccess): Promise<void> {
  if (written.length + readOnly.length === 1) {
    const link = written[0] ?? readOnly[0];
    if (link.lost || link.conn.socket.destroyed) throw lostError(link);
    const r = await queryOnLink(link, 'COMMIT');
    if (r.error) throw r.error;
    if (r.tag !== 'COMMIT') throw new PgError({ code: '40000', message: 'the transaction was rolled back' });
    return;
  }
  await access.commitMultiNode(written, readOnly);
}
