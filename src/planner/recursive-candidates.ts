/**
 * What the recursive planner (recursive-planner.ts) may compute on its own
 * as an intermediate result, and the tree reading and rewriting its
 * choices need: FROM subqueries and subquery expressions that read a
 * distributed table and stand alone, CTEs a table can hold, whole-row and
 * EXISTS reads that keep a statement as it is, CTE references replaced by
 * their tables.
 */
import type { Node } from '../sql/parse.js';
import type { DistributedTable } from '../metadata/types.js';
import { analyzeShape } from './relations.js';
import { leftmostSelect, outputName } from './output-names.js';
import { isRecordExpression } from './record-columns.js';
import { hasAggregate, hasWindow } from './pushdown-query.js';
import { someNode } from '../sql/tree-walk.js';
import { INTERMEDIATE_PREFIX } from './route.js';
import { selfContained } from './self-contained.js';

/** A distributed or reference table by name, as the statement's search_path resolves it. */
export type ResolveTable = (schema: string | null, name: string) => DistributedTable | undefined;

export function readsDistributed(n: Node, resolve: ResolveTable): boolean {
  return analyzeShape(n).relations.some((r) => resolve(r.schema, r.name)?.method === 'hash');
}

function columnsOf(rv: Node, resolve: ResolveTable): string[] | null {
  return resolve(rv.schemaname ?? null, rv.relname)?.columns ?? null;
}

/** A FROM subquery that cannot run per shard, reads a distributed table and stands alone. */
export function fromCandidate(r: Node, root: Node, resolve: ResolveTable): boolean {
  const s = r.subquery?.SelectStmt;
  if (r.lateral || !s || !r.alias?.aliasname) return false;
  const perShard = s.op === 'SETOP_NONE' && !s.withClause && !s.groupClause && !s.havingClause && !s.distinctClause && !s.sortClause &&
    !s.limitCount && !s.limitOffset && !s.windowClause && !hasAggregate(s.targetList) && !hasWindow(s.targetList) && !someNode(s, (o) => !!o.SubLink);
  if (perShard || anonymousRecord(s) || duplicateNames(s, undefined) || !readsDistributed(s, resolve) || readsIntermediate(s) || wholeRow(root, r.alias.aliasname)) return false;
  return selfContained(s, (rv) => columnsOf(rv, resolve));
}

/** A scalar, IN or ALL subquery expression that reads a distributed table and stands alone. */
export function sublinkCandidate(l: Node, resolve: ResolveTable): boolean {
  const s = l.subselect?.SelectStmt;
  if (!s || !['EXPR_SUBLINK', 'ANY_SUBLINK', 'ALL_SUBLINK'].includes(l.subLinkType)) return false;
  if (targetWidth(s) === null || anonymousRecord(s) || !readsDistributed(s, resolve) || readsIntermediate(s)) return false;
  return selfContained(s, (rv) => columnsOf(rv, resolve));
}

export function readsIntermediate(n: Node): boolean {
  return someNode(n, (o) => o.RangeVar?.schemaname === 'pg_temp' && String(o.RangeVar.relname).startsWith(INTERMEDIATE_PREFIX));
}

/**
 * Whether an output column is a ROW(…) constructor or a whole-row reference
 * to a FROM subquery (record-columns.ts; a name that might be a column
 * counts): a table cannot hold an anonymous record column.
 */
export function anonymousRecord(select: Node): boolean {
  const s = leftmostSelect(select);
  return ((s?.targetList ?? []) as Node[]).some((t) => isRecordExpression(t.ResTarget?.val, s, () => false));
}

/** Whether every reference to the CTE `name` in `parts` lies inside an EXISTS subquery. */
export function readOnlyInExists(parts: Node[], name: string): boolean {
  let total = 0;
  let inExists = 0;
  const walk = (n: Node, inside: boolean): void => {
    if (n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) {
      for (const x of n) walk(x, inside);
      return;
    }
    if (n.RangeVar && !n.RangeVar.schemaname && n.RangeVar.relname === name) {
      total++;
      if (inside) inExists++;
    }
    const entering = inside || n.SubLink?.subLinkType === 'EXISTS_SUBLINK';
    for (const k of Object.keys(n)) walk(n[k], entering);
  };
  for (const p of parts) walk(p, false);
  return total > 0 && inExists === total;
}

/** Whether two output columns (after a CTE's column aliases) share a name: CREATE TABLE AS refuses that. */
export function duplicateNames(select: Node, aliases: Node[] | undefined): boolean {
  const s = leftmostSelect(select);
  const renamed = ((aliases ?? []) as Node[]).map((c) => c.String?.sval as string);
  const names = ((s?.targetList ?? []) as Node[]).map((t, i) => renamed[i] ?? outputName(t));
  const known = names.filter((n): n is string => n !== null && n !== '*');
  return new Set(known).size < known.length;
}

/** Output columns of a (set operation's leftmost) SELECT, or null after `*`. */
export function targetWidth(select: Node): number | null {
  const targets = (leftmostSelect(select)?.targetList ?? []) as Node[];
  if (targets.length === 0 || someNode(targets, (o) => !!o.A_Star)) return null;
  return targets.length;
}

/** Whether a WITH inside this tree defines the same name (references below it would mean that one). */
export function shadows(n: Node, name: string): boolean {
  return someNode(n, (o) => ((o.withClause?.ctes ?? []) as Node[]).some((c) => c.CommonTableExpr?.ctename === name));
}

/** Whether the tree reads `name` as a whole row (`name`, `name.*` or `f(name)`). */
export function wholeRow(n: Node, name: string): boolean {
  return someNode(n, (o) => {
    const fields = o.ColumnRef?.fields as Node[] | undefined;
    if (!fields) return false;
    return (fields.length === 1 && fields[0].String?.sval === name) || (fields.length === 2 && fields[0].String?.sval === name && !!fields[1].A_Star);
  });
}

export function replaceCteReferences(n: Node, name: string, tempName: string): void {
  someNode(n, (o) => {
    const rv = o.RangeVar;
    if (rv && !rv.schemaname && rv.relname === name) {
      rv.alias ??= { aliasname: name };
      rv.schemaname = 'pg_temp';
      rv.relname = tempName;
    }
    return false;
  });
}
