/**
 * Plans `COPY … TO STDOUT` over distributed and reference tables.
 *
 * - `COPY table [(cols)] TO STDOUT …`: a `copy-out` route — every shard's
 *   own `COPY shard TO STDOUT` streams to the client, one shard after the
 *   other (src/commands/copy/copy-out.ts); nothing is gathered on the
 *   coordinator. Simple and extended protocol alike.
 * - `COPY (SELECT …) TO STDOUT …` whose SELECT the router planner sends to
 *   one shard group: the whole COPY runs there, the shard names spliced into
 *   the SELECT's own text, the COPY's options as the client wrote them.
 * - `COPY (SELECT …)` whose SELECT concatenates per-shard results (the
 *   multi-shard planner's tasks: no merge step): a `copy-out` route with
 *   the tasks — each shard group's `COPY (<task>) TO STDOUT` streams to the
 *   client like a table's shards.
 * - any other SELECT (a merge step: ORDER BY, LIMIT, DISTINCT, aggregates
 *   across shards…): pulled to the coordinator, which runs the COPY over
 *   the pulled rows (pull-planner.ts), as before.
 */
import type { Node } from '../sql/parse.js';
import { parseSql } from '../sql/parse.js';
import { Tokens } from './insert-select-planner.js';
import { planPull } from './pull-planner.js';
import type { ResolvedRelation } from './router-planner.js';
import type { Route } from './route.js';

/** Byte offsets of the `( … )` query of `COPY ( … ) TO`, or null when the text has no such query. */
export function copyQuerySpan(text: Buffer): { start: number; end: number } | null {
  const tok = new Tokens(text, 0);
  const copy = tok.next();
  if (copy.kind !== 'word' || copy.word !== 'copy') return null;
  const open = tok.next();
  if (open.kind !== 'open') return null;
  let depth = 1;
  for (;;) {
    const t = tok.next();
    if (t.kind === 'end') return null;
    if (t.kind === 'open') depth++;
    else if (t.kind === 'close' && --depth === 0) return { start: open.start + 1, end: t.start };
  }
}

export function planCopyTo(copy: Node, text: Buffer, relations: ResolvedRelation[], planInner: (stmt: Node, text: Buffer) => Route): Route {
  const pull = (): Route => planPull(text, copy.query?.SelectStmt ?? null, relations, !copy.query);
  if (!copy.query) {
    const source = relations.find((r) => r.ref.node === copy.relation);
    if (!source) return pull();
    return { kind: 'copy-out', statement: text.toString('utf8'), stmt: copy, table: source.table };
  }
  const span = copy.query.SelectStmt ? copyQuerySpan(text) : null;
  if (!span) return pull();
  const innerText = text.subarray(span.start, span.end);
  let inner: Route;
  try {
    const parsed = parseSql(innerText.toString('utf8')).stmts;
    if (parsed.length !== 1) return pull();
    inner = planInner(parsed[0].stmt, innerText);
  } catch {
    return pull();
  }
  if (inner.kind === 'multi-shard' && !inner.isWrite && inner.tasks.length > 0 && !copy.query.SelectStmt.lockingClause) {
    const first = inner.tasks[0].shardIds[0];
    const owner = relations.find((r) => r.table.method === 'hash' && r.table.shards.some((s) => s.shardId === first));
    if (!owner) return pull();
    const tables = [...new Set(relations.map((r) => r.table))];
    return { kind: 'copy-out', statement: text.toString('utf8'), stmt: copy, table: owner.table, query: { tasks: inner.tasks, tables } };
  }
  if (inner.kind !== 'router') return pull();
  const sql = `${text.toString('utf8', 0, span.start)}${inner.task.sql}${text.toString('utf8', span.end)}`;
  // (No origin: the inner splice's positions count from the SELECT, and an error's position is left out.)
  return { kind: 'router', task: { node: inner.task.node, sql, shardIds: inner.task.shardIds }, isWrite: false, planner: inner.planner };
}
