/**
 * Parameters of a pushdown (DESIGN.md decision 8: planned once, run with
 * each Bind's values). The worker query of a pushdown runs on the shards
 * inside `COPY (…) TO STDOUT`, and its shape inside `CREATE TEMP TABLE … AS
 * … WITH NO DATA` on the coordinator: neither statement takes Bind
 * parameters. So per execution, every `$n` of those texts is replaced by a
 * typed literal of its value — `('<value>'::<type>)`, the value quoted by
 * quoteLiteral and the type the one PostgreSQL inferred for the parameter,
 * which the type's input function reads exactly as it reads a text-format
 * parameter (the type written as `schema."name"`, which implies no length:
 * `::bit` would mean bit(1)). The splice happens at the parse tree's byte locations of the
 * `$n` tokens (as shard names do, shard-rewrite.ts), never by searching the
 * text. The coordinator's final query keeps its `$n` and runs with the
 * client's own Bind.
 */
import { parseSql, type Node } from '../sql/parse.js';
import { quoteLiteral } from '../sql/quote.js';
import { walkTree } from '../sql/tree-walk.js';
import { spliceText, type TextEdit } from '../sql/text-splice.js';
import type { Route, Task } from './route.js';

/** A typed SQL literal of a parameter value (its text form, or null), for a type's qualified, quoted name. */
export function typedLiteral(value: string | null, typeName: string): string {
  return value === null ? `(NULL::${typeName})` : `(${quoteLiteral(value).trim()}::${typeName})`;
}

/** Byte locations of the `$n` tokens of a statement, with their numbers. */
function paramRefs(tree: Node): Array<{ number: number; location: number }> {
  const out: Array<{ number: number; location: number }> = [];
  walkTree(tree, (o) => {
    if (o.ParamRef) out.push({ number: o.ParamRef.number, location: o.ParamRef.location });
  });
  return out.sort((a, b) => a.location - b.location);
}

/** Whether a statement text mentions any `$n`. */
export function hasParamRefs(sql: string): boolean {
  return paramRefs(parseSql(sql).stmts.map((s) => s.stmt)).length > 0;
}

/**
 * The statement with every `$n` replaced by `literals[n - 1]`; throws when a
 * parameter has no literal (the client bound fewer values than it uses).
 */
export function spliceParamLiterals(sql: string, literals: readonly string[]): string {
  const text = Buffer.from(sql, 'utf8');
  const refs = paramRefs(parseSql(sql).stmts.map((s) => s.stmt));
  if (refs.length === 0) return sql;
  const edits = refs.map((r): TextEdit => {
    const literal = literals[r.number - 1];
    if (literal === undefined) throw new Error(`there is no parameter $${r.number}`);
    let end = r.location + 1;
    while (end < text.length && text[end]! >= 0x30 && text[end]! <= 0x39) end++;
    return { at: r.location, len: end - r.location, sql: literal };
  });
  return spliceText(text, edits).sql;
}

/**
 * Whether a pull route runs worker queries (a pushdown, broadcast or
 * repartition candidates) whose text holds `$n`. A repartition candidate is
 * planned only when the executor chooses it, so a route that may repartition
 * always counts (binding a text without `$n` leaves it as it is).
 */
export function pushdownHasParams(route: Extract<Route, { kind: 'pull' }>): boolean {
  const partials = route.broadcast ? route.broadcast.candidates.map((c) => c.route.partial) : route.partial ? [route.partial] : [];
  return partials.some((p) => hasParamRefs(p.shapeSql)) || route.repartition !== undefined;
}

/**
 * Gives this execution's pushdown (and every broadcast and repartition
 * candidate, those of a transaction block included) worker queries with the values in place of
 * `$n`. Only the route's own objects change: the tasks and shard queries
 * are new arrays and maps, the plan's cached ones stay as they are for the
 * next Bind.
 */
export function bindPushdownParams(route: Extract<Route, { kind: 'pull' }>, literals: readonly string[]): void {
  const repartition = route.repartition;
  if (repartition) {
    // Candidates are planned at execution (per bucket count): each gets the values as it is made.
    const plan = repartition.plan;
    repartition.plan = (perNode) => {
      const c = plan(perNode);
      if (c) bindRoute(c.route, literals);
      return c;
    };
  }
  const choice = route.broadcast;
  if (!choice) {
    bindRoute(route, literals);
    return;
  }
  for (const c of choice.candidates) bindRoute(c.route, literals);
  const blockCandidates = choice.blockCandidates;
  choice.blockCandidates = () => {
    const candidates = blockCandidates();
    for (const c of candidates) bindRoute(c.route, literals);
    return candidates;
  };
}

function bindRoute(r: Extract<Route, { kind: 'pull' }>, literals: readonly string[]): void {
  const partial = r.partial;
  if (!partial) return;
  // The partial object is this route's own (pushdown-query.ts builds one per route): its fields may change.
  partial.tasks = partial.tasks.map((t): Task => ({ node: t.node, sql: spliceParamLiterals(t.sql, literals), shardIds: t.shardIds }));
  partial.shapeSql = spliceParamLiterals(partial.shapeSql, literals);
  const entry = r.pulls[0];
  if (entry?.prepared && entry.tempName === partial.tempName) {
    const prepared = new Map<string, string>();
    for (const [shard, sql] of entry.prepared) prepared.set(shard, spliceParamLiterals(sql, literals));
    r.pulls = [{ ...entry, prepared }, ...r.pulls.slice(1)];
  }
}
