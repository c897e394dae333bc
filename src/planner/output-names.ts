/**
 * The name PostgreSQL gives an output column written without AS
 * (FigureColname in parse_target.c). A rewritten query computes a column by
 * another expression (`sum(partial)` for `count(*)`), so it names the column
 * explicitly with the name the original expression would have had. The
 * result is exact for the expressions handled here; null means "unknown" and
 * the caller keeps the statement on a path that does not rename columns.
 */
import type { Node } from '../sql/parse.js';
import { someNode } from '../sql/tree-walk.js';

const UNNAMED = '?column?';

/** Type names as FigureColname reports them for `x::int` etc. (the catalog's name). */
const TYPE_ALIASES: Record<string, string> = {
  int: 'int4', integer: 'int4', smallint: 'int2', bigint: 'int8', real: 'float4', float: 'float8',
  boolean: 'bool', decimal: 'numeric', 'double precision': 'float8',
};

const SQL_VALUE_NAMES: Record<string, string> = {
  SVFOP_CURRENT_DATE: 'current_date', SVFOP_CURRENT_TIME: 'current_time', SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp', SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp',
  SVFOP_LOCALTIME: 'localtime', SVFOP_LOCALTIME_N: 'localtime', SVFOP_LOCALTIMESTAMP: 'localtimestamp',
  SVFOP_LOCALTIMESTAMP_N: 'localtimestamp', SVFOP_CURRENT_ROLE: 'current_role', SVFOP_CURRENT_USER: 'current_user',
  SVFOP_USER: 'user', SVFOP_SESSION_USER: 'session_user', SVFOP_CURRENT_CATALOG: 'current_catalog',
  SVFOP_CURRENT_SCHEMA: 'current_schema',
};

/** [name, strength] as FigureColnameInternal: 0 none, 1 weak (type or CASE), 2 strong; undefined: not known here. */
function figure(n: Node): [string | null, number] | undefined {
  if (!n || typeof n !== 'object') return [null, 0];
  if (n.ColumnRef) {
    const fields = n.ColumnRef.fields as Node[];
    const last = fields[fields.length - 1];
    if (last?.String) return [last.String.sval, 2];
    return [null, 0];
  }
  if (n.FuncCall) {
    const names = n.FuncCall.funcname as Node[];
    return [names[names.length - 1].String.sval, 2];
  }
  if (n.TypeCast) {
    const inner = figure(n.TypeCast.arg);
    if (inner === undefined) return undefined;
    if (inner[1] > 0) return inner;
    const names = (n.TypeCast.typeName?.names ?? []) as Node[];
    const t = names[names.length - 1]?.String?.sval;
    if (!t || (n.TypeCast.typeName.arrayBounds ?? []).length > 0) return undefined;
    return [TYPE_ALIASES[t] ?? t, 1];
  }
  if (n.CollateClause) return figure(n.CollateClause.arg);
  if (n.A_Expr) return n.A_Expr.kind === 'AEXPR_NULLIF' ? ['nullif', 2] : [null, 0];
  if (n.CaseExpr) {
    const d = figure(n.CaseExpr.defresult);
    if (d === undefined) return undefined;
    return d[1] <= 1 ? ['case', 1] : d;
  }
  if (n.CoalesceExpr) return ['coalesce', 2];
  if (n.MinMaxExpr) return [n.MinMaxExpr.op === 'IS_GREATEST' ? 'greatest' : 'least', 2];
  if (n.A_ArrayExpr) return ['array', 2];
  if (n.RowExpr) return ['row', 2];
  if (n.GroupingFunc) return ['grouping', 2];
  if (n.SQLValueFunction) {
    const name = SQL_VALUE_NAMES[n.SQLValueFunction.op];
    return name ? [name, 2] : undefined;
  }
  if (n.SubLink) {
    // EXISTS and ARRAY name themselves; a scalar subquery takes its one column's name; ANY/ALL have none.
    const kind = n.SubLink.subLinkType;
    if (kind === 'EXISTS_SUBLINK') return ['exists', 2];
    if (kind === 'ARRAY_SUBLINK') return ['array', 2];
    if (kind !== 'EXPR_SUBLINK') return [null, 0];
    const s = leftmostSelect(n.SubLink.subselect?.SelectStmt);
    const first = (s?.targetList ?? [])[0];
    const name = first && !first.ResTarget?.val?.ColumnRef?.fields?.some((f: Node) => f.A_Star) ? outputName(first) : null;
    return name === null ? undefined : [name, 2];
  }
  if (n.A_Const || n.BoolExpr || n.NullTest || n.BooleanTest || n.ParamRef) return [null, 0];
  return undefined;
}

/** The output name of a target list entry, or null when this module cannot tell. */
export function outputName(target: Node): string | null {
  const rt = target.ResTarget;
  if (!rt) return null;
  if (rt.name) return rt.name;
  const f = figure(rt.val);
  if (f === undefined) return null;
  return f[0] ?? UNNAMED;
}

/** The SELECT that names a set operation's columns: its leftmost branch (the SELECT itself otherwise). */
export function leftmostSelect(s: Node): Node {
  while (s && s.op && s.op !== 'SETOP_NONE') s = s.larg;
  return s;
}

/**
 * The output column names of a SELECT (a set operation's: its leftmost
 * branch's), each of `aliases` (a FROM subquery's or CTE's column list)
 * before the name the column has; null entries where this module cannot
 * tell, and null for the whole list when a `*` appears in the target list
 * (how many columns it stands for only the catalog knows).
 */
export function outputNames(select: Node, aliases: Node[] | undefined): Array<string | null> | null {
  const s = leftmostSelect(select);
  const targets = (s?.targetList ?? []) as Node[];
  if (someNode(targets, (o) => !!o.A_Star)) return null;
  const renamed = ((aliases ?? []) as Node[]).map((c) => c.String?.sval as string);
  return targets.map((t, i) => renamed[i] ?? outputName(t));
}
