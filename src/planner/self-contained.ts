/**
 * Whether a subquery stands alone (uncorrelated): every column it names
 * resolves inside it, so the recursive planner may compute it on its own as
 * an intermediate result and it means the same there.
 */
import type { Node } from '../sql/parse.js';
import { outputName, outputNames } from './output-names.js';
import { SKIP, STOP, walkTree } from '../sql/tree-walk.js';

interface Range {
  name: string;
  /** Column names, or null when unknown. */
  columns: Set<string> | null;
}

/**
 * Whether every column the SELECT names resolves inside it (PostgreSQL
 * resolves innermost first, so such a subquery means the same on its own).
 * Unknown column lists (local tables, functions, `*` in a subquery) count
 * as not self-contained.
 */
export function selfContained(select: Node, columnsOf: (rangeVar: Node) => string[] | null): boolean {
  const rangesOf = (from: Node[] | undefined, outer: Range[][], out: Range[]): boolean => {
    for (const item of from ?? []) {
      if (item.RangeVar) {
        const rv = item.RangeVar;
        const cols = columnsOf(rv);
        out.push({ name: rv.alias?.aliasname ?? rv.relname, columns: cols ? new Set(cols) : null });
        if (rv.alias?.colnames) return false;
      } else if (item.RangeSubselect) {
        const r = item.RangeSubselect;
        if (r.lateral || !check(r.subquery?.SelectStmt, outer)) return false;
        const names = outputNames(r.subquery.SelectStmt, r.alias?.colnames);
        out.push({ name: r.alias?.aliasname ?? '', columns: names === null || names.some((x) => x === null) ? null : new Set(names as string[]) });
      } else if (item.JoinExpr) {
        const j = item.JoinExpr;
        if (!rangesOf([j.larg, j.rarg], outer, out)) return false;
        if (j.alias) out.push({ name: j.alias.aliasname, columns: new Set() });
      } else {
        return false;
      }
    }
    return true;
  };
  const resolves = (fields: Node[], scopes: Range[][], targets: Set<string>): boolean => {
    if (fields.some((f) => !f.String && !f.A_Star)) return false;
    if (fields.length === 1 && fields[0].A_Star) return true;
    if (fields.length >= 2) {
      const qualifier = fields[fields.length - 2].String?.sval;
      return scopes.some((level) => level.some((r) => r.name === qualifier));
    }
    const name = fields[0].String.sval as string;
    for (let i = scopes.length - 1; i >= 0; i--) {
      const level = scopes[i];
      if (level.some((r) => r.columns?.has(name) || r.name === name)) return true;
      if (level.some((r) => r.columns === null)) return false;
    }
    return targets.has(name);
  };
  const check = (s: Node, outer: Range[][]): boolean => {
    if (!s) return false;
    if (s.op && s.op !== 'SETOP_NONE') return check(s.larg, outer) && check(s.rarg, outer);
    if (s.withClause) return false;
    const ranges: Range[] = [];
    if (!rangesOf(s.fromClause, outer, ranges)) return false;
    const scopes = [...outer, ranges];
    const targets = new Set(((s.targetList ?? []) as Node[]).map((t) => outputName(t)).filter((x): x is string => !!x));
    // STOP at the first reference that does not resolve.
    const unresolved = (n: Node): typeof SKIP | typeof STOP | void => {
      if (n.SubLink) return walkTree(n.SubLink.testexpr, unresolved) || !check(n.SubLink.subselect?.SelectStmt, scopes) ? STOP : SKIP;
      if (n.RangeSubselect || n.RangeVar || n.RangeFunction) return SKIP;
      if (n.ColumnRef && !resolves(n.ColumnRef.fields as Node[], scopes, targets)) return STOP;
    };
    const { fromClause, withClause, larg, rarg, ...rest } = s;
    let ok = !walkTree(rest, unresolved);
    // Join conditions see the ranges of their level (subqueries in FROM were checked on their own).
    const joins = (n: Node): void => {
      if (!ok || !n?.JoinExpr) return;
      ok = !walkTree(n.JoinExpr.quals, unresolved);
      joins(n.JoinExpr.larg);
      joins(n.JoinExpr.rarg);
    };
    ((fromClause ?? []) as Node[]).forEach(joins);
    return ok;
  };
  return check(select, []);
}
