/**
 * SELECTs over coordinator functions (citus_get_active_worker_nodes(),
 * run_command_on_workers(…)…) that do more than list their rows: WHERE,
 * ORDER BY, GROUP BY, LIMIT, expressions, joins of several calls. The
 * coordinator answers each call itself; the session loads its rows into a
 * temporary table on the coordinator PostgreSQL, and the statement — with
 * each call's RangeFunction replaced by its table, under the same alias and
 * column aliases — runs there, so PostgreSQL does the filtering and sorting.
 */
import { deparseSql } from '../sql/deparse.js';
import { PgError } from '../protocol/errors.js';
import type { Node } from '../sql/parse.js';
import { someNode } from '../sql/tree-walk.js';
import { constantText } from './restrictions.js';
import type { ArgValue, CommandQueryCall, Route } from './route.js';

const FUNCTION_SCHEMAS = ['pg_catalog', 'pgweave', 'citus', 'public'];

export function argValue(n: Node): ArgValue | null {
  if (n?.ParamRef) return { param: n.ParamRef.number };
  if (n?.TypeCast?.arg?.ParamRef) return { param: n.TypeCast.arg.ParamRef.number };
  if (n?.A_Const?.isnull) return { text: null };
  const t = constantText(n);
  return t === null ? null : { text: t };
}

export function notConstant(name: string): Route {
  return { kind: 'error', error: new PgError({ code: '0A000', message: `the arguments of ${name}() must be constants or parameters` }) };
}

/** The coordinator function a FuncCall names, or null when it is not one. */
export function commandName(call: Node, isCommand: (name: string) => boolean): string | null {
  const names = ((call?.funcname ?? []) as Node[]).map((n) => n.String?.sval as string);
  const name = names[names.length - 1];
  if (!name || (names.length > 1 && !FUNCTION_SCHEMAS.includes(names[0]))) return null;
  return isCommand(name) ? name : null;
}

/** The call's arguments as constants or parameters; an error route when one is neither. */
export function callArgs(call: Node, name: string): { positional: ArgValue[]; named: Map<string, ArgValue> } | Route {
  const positional: ArgValue[] = [];
  const named = new Map<string, ArgValue>();
  for (const a of (call.args ?? []) as Node[]) {
    const v = argValue(a.NamedArgExpr ? a.NamedArgExpr.arg : a);
    if (!v) return notConstant(name);
    if (a.NamedArgExpr) named.set(a.NamedArgExpr.name, v);
    else positional.push(v);
  }
  return { positional, named };
}

function rangeCall(rf: Node): Node {
  const fns = rf.functions as Node[];
  return fns?.length === 1 ? fns[0].List?.items?.[0]?.FuncCall ?? null : null;
}

function containsParam(n: unknown): boolean {
  return someNode(n, (o) => 'ParamRef' in o);
}

/**
 * The command route of a SELECT whose FROM list (joins included) calls
 * coordinator functions; null when it calls none. `readsDistributed` tells
 * whether the rewritten statement still reads distributed tables, which the
 * coordinator PostgreSQL does not hold.
 */
export function planCommandQuery(select: Node, isCommand: (name: string) => boolean, readsDistributed: (stmt: Node) => boolean): Route | null {
  const callsAny = (item: Node): boolean => item?.JoinExpr ? callsAny(item.JoinExpr.larg) || callsAny(item.JoinExpr.rarg)
    : !!item?.RangeFunction && !!commandName(rangeCall(item.RangeFunction), isCommand);
  // Most statements call none: only those pay for the copy and the rewrite.
  if (!((select.fromClause ?? []) as Node[]).some(callsAny)) return null;
  const copy = structuredClone(select) as Node;
  const calls: CommandQueryCall[] = [];
  let failure: Route | null = null;
  const replace = (item: Node): Node => {
    if (item?.JoinExpr) {
      item.JoinExpr.larg = replace(item.JoinExpr.larg);
      item.JoinExpr.rarg = replace(item.JoinExpr.rarg);
      return item;
    }
    const rf = item?.RangeFunction;
    const call = rf ? rangeCall(rf) : null;
    const name = call ? commandName(call, isCommand) : null;
    if (!name) return item;
    if (rf.ordinality || rf.coldeflist || rf.lateral) {
      failure ??= { kind: 'error', error: new PgError({ code: '0A000', message: `WITH ORDINALITY, LATERAL or a column definition list over ${name}() is not supported` }) };
      return item;
    }
    const args = callArgs(call, name);
    if ('kind' in args) {
      failure ??= args;
      return item;
    }
    const tempName = `pgweave_fn_${calls.length}_${name}`;
    calls.push({ name, ...args, tempName });
    // PostgreSQL names a function's range entry after the function: keep that name as the alias.
    const alias = rf.alias ?? { aliasname: name };
    return { RangeVar: { schemaname: 'pg_temp', relname: tempName, inh: true, relpersistence: 'p', alias } };
  };
  copy.fromClause = ((copy.fromClause ?? []) as Node[]).map(replace);
  if (failure) return failure;
  if (calls.length === 0) return null;
  const first = calls[0].name;
  // The call arguments were taken out: a parameter left elsewhere has no value where the statement runs.
  if (containsParam(copy)) {
    return { kind: 'error', error: new PgError({ code: '0A000', message: `parameters outside the arguments of ${first}() are not supported` }) };
  }
  const stmt = { SelectStmt: copy };
  if (readsDistributed(stmt)) {
    return { kind: 'error', error: new PgError({ code: '0A000', message: `combining ${first}() with distributed tables is not supported` }) };
  }
  const sql = deparseSql(stmt, { pretty: false });
  return { kind: 'command', name: first, positional: calls[0].positional, named: calls[0].named, alias: null, columns: null, query: { sql, calls } };
}
