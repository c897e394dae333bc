/**
 * EXPLAIN and EXPLAIN ANALYZE of statements on distributed tables: the
 * distributed plan, in the shape Citus users know from `Custom Scan (Citus
 * Adaptive)` — which planner of the cascade took the statement, how many
 * tasks it runs, one task's plan as its worker's PostgreSQL gives it
 * (`EXPLAIN <task sql>` on that worker), and for pull plans the tables
 * pulled (with the condition pushed into the shards' queries) and the plan
 * the coordinator PostgreSQL makes for the query over the pulled rows.
 *
 * The inner statement is planned by the normal cascade on its own text: the
 * bytes before it (EXPLAIN and its options) are blanked out, so the parse
 * tree's locations still address the same bytes and shard names splice in
 * as usual (DESIGN.md decision 2).
 *
 * Planning is here; running needs the session's connections, which are
 * passed down as an `ExplainAccess` (planner sits below session). EXPLAIN
 * ANALYZE runs the statement's tasks (SELECTs only: writes would commit
 * outside the distributed transaction) and pulls the rows for pull plans;
 * plain EXPLAIN runs nothing but EXPLAINs, and for pull plans creates the
 * (empty) temporary tables so the coordinator can plan over them.
 */
import { PgError } from '../protocol/errors.js';
import type { InsertSelectPlan } from './insert-select-planner.js';
import type { Node } from '../sql/parse.js';
import { scanWords } from '../sql/lexer.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import type { WorkerNode } from '../metadata/types.js';
import type { ParamValues } from './router-planner.js';
import { emptyStagingSql, repartitionLines } from './repartition-planner.js';
import type { BroadcastCandidate, IntermediatePlan, PartialResults, PullTable, Route, Task } from './route.js';
import { partialTableSql } from './pushdown-query.js';
import { createWorkerTableSql, workerTableSql } from './broadcast-planner.js';
import { bindPushdownParams, pushdownHasParams, spliceParamLiterals } from './pushdown-params.js';

/** What running an EXPLAIN needs from the session, as the client's role, in the session's transaction. */
export interface ExplainAccess {
  /** Runs SQL (with the statement's parameter values, if any) on the coordinator PostgreSQL; rows as text. Throws PgError. */
  coordinator(sql: string, params?: ReadonlyArray<string | null>): Promise<Array<Array<string | null>>>;
  /** Runs SQL (with the statement's parameter values, if any) on a worker; rows as text. Throws PgError. */
  worker(node: WorkerNode, sql: string, params?: ReadonlyArray<string | null>): Promise<Array<Array<string | null>>>;
  /** Pulls the tables into their temporary tables on the coordinator (as a pull route does). */
  pull(pulls: PullTable[]): Promise<PgError | null>;
  /** Runs a pushdown route's data movement (partial results, or the pull it falls back to). */
  pullPartial(route: Extract<Route, { kind: 'pull' }>): Promise<PgError | null>;
}

export interface ExplainOptions {
  analyze: boolean;
  verbose: boolean;
  costs: boolean;
  /** The options as written, FORMAT left out, for the EXPLAINs run on workers and the coordinator. */
  forwarded: string[];
}

/** The minimal planner surface EXPLAIN needs (plan-statement.ts passes itself down). */
export interface InnerPlan {
  readonly catalogVersion: number;
  readonly needsParams: boolean;
  route(params: ParamValues): Route;
}

const EXPLAINABLE = new Set(['select', 'with', 'values', 'table', 'insert', 'update', 'delete', 'merge', 'declare', 'create', 'execute']);

/**
 * The statement text with everything before the explained statement blanked
 * (same length in bytes, so parse-tree locations stay valid), or null.
 */
export function explainedText(text: Buffer): Buffer | null {
  const s = text.toString('utf8');
  let seenExplain = false;
  let start = -1;
  scanWords(s, (word, at, _end, quoted) => {
    if (start >= 0 || quoted) return;
    if (!seenExplain) {
      if (word === 'explain') seenExplain = true;
      return;
    }
    if (EXPLAINABLE.has(word)) start = at;
  });
  if (start < 0) return null;
  // Parentheses right before the keyword open the statement itself: EXPLAIN (SELECT …).
  let from = start;
  for (let j = start - 1; j >= 0; j--) {
    const ch = s[j]!;
    if (ch === '(') from = j;
    else if (!/\s/.test(ch)) break;
  }
  const out = Buffer.from(text);
  out.fill(0x20, 0, Buffer.byteLength(s.slice(0, from)));
  return out;
}

function optionValue(arg: Node): string | null {
  if (!arg) return null;
  if (arg.String) return String(arg.String.sval);
  if (arg.Boolean) return arg.Boolean.boolval ? 'true' : 'false';
  if (arg.Integer) return String(arg.Integer.ival ?? 0);
  if (arg.Float) return String(arg.Float.fval);
  if (arg.A_Const) {
    const c = arg.A_Const;
    if (c.sval) return String(c.sval.sval);
    if (c.boolval) return c.boolval.boolval ? 'true' : 'false';
    if (c.ival) return String(c.ival.ival ?? 0);
  }
  return null;
}

function isTrue(v: string | null): boolean {
  return v === null || ['true', 'on', '1', 'yes', 't'].includes(v.toLowerCase());
}

export function explainOptions(stmt: Node): ExplainOptions | PgError {
  const o: ExplainOptions = { analyze: false, verbose: false, costs: true, forwarded: [] };
  for (const item of (stmt.options ?? []) as Node[]) {
    const d = item.DefElem;
    if (!d) continue;
    const name = String(d.defname).toLowerCase();
    const value = optionValue(d.arg);
    if (name === 'format') {
      if ((value ?? 'text').toLowerCase() !== 'text') {
        return new PgError({ code: '0A000', message: `EXPLAIN (FORMAT ${(value ?? '').toUpperCase()}) of statements on distributed tables is not supported yet; use FORMAT TEXT` });
      }
      continue;
    }
    if (name === 'analyze') o.analyze = isTrue(value);
    if (name === 'verbose') o.verbose = isTrue(value);
    if (name === 'costs') o.costs = isTrue(value);
    o.forwarded.push(value === null ? name.toUpperCase() : `${name.toUpperCase()} ${/^[A-Za-z0-9_.]+$/.test(value) ? value : quoteIdent(value)}`);
  }
  return o;
}

/** An EXPLAIN statement over distributed tables, planned once; `route()` gives the explain route per execution. */
export class ExplainPlan {
  constructor(
    private readonly inner: InnerPlan,
    private readonly options: ExplainOptions,
    private readonly isSelect: boolean,
  ) {}

  get catalogVersion(): number {
    return this.inner.catalogVersion;
  }

  get needsParams(): boolean {
    return this.inner.needsParams;
  }

  route(params: ParamValues): Route {
    let inner = this.inner.route(params);
    // An INSERT with transaction-time functions (now()…) only: explained as the router statement it
    // runs as, with this moment as the time (nothing runs without ANALYZE, which writes refuse).
    if (inner.kind === 'evaluate-insert' && inner.atTransactionTime) {
      inner = inner.atTransactionTime(params, new Date().toISOString(), null) ?? inner;
    }
    switch (inner.kind) {
      case 'error':
      case 'local':
        return inner;
      case 'router':
      case 'multi-shard':
      case 'pull':
        if (this.options.analyze && (inner.kind === 'pull' ? false : inner.isWrite || !this.isSelect)) {
          return { kind: 'error', error: new PgError({ code: '0A000', message: 'EXPLAIN ANALYZE of INSERT, UPDATE and DELETE on distributed tables is not supported yet' }) };
        }
        if ((params as ReadonlyArray<unknown> | null)?.some((p) => p === undefined)) {
          return { kind: 'error', error: new PgError({ code: '0A000', message: 'EXPLAIN of statements on distributed tables with binary parameters is not supported yet' }) };
        }
        return { kind: 'explain', explain: new DistributedExplain(inner, this.options, params ?? null) };
      case 'insert-select':
        if (this.options.analyze) return { kind: 'error', error: new PgError({ code: '0A000', message: 'EXPLAIN ANALYZE of INSERT, UPDATE and DELETE on distributed tables is not supported yet' }) };
        return { kind: 'explain', explain: new DistributedExplain(inner, this.options, params ?? null) };
      default:
        return { kind: 'error', error: new PgError({ code: '0A000', message: `EXPLAIN of this statement on distributed tables is not supported yet (its plan is of kind "${inner.kind}")` }) };
    }
  }

  describeTask(): Task | null {
    return null;
  }
}

type ExplainedRoute = Extract<Route, { kind: 'router' | 'multi-shard' | 'pull' | 'insert-select' }>;

/** Indents a PostgreSQL text plan under a `->` marker, as EXPLAIN nests child plans. */
function nest(lines: string[], indent: number): string[] {
  const pad = ' '.repeat(indent);
  return lines.map((l, i) => (i === 0 ? `${pad}->  ${l}` : `${pad}    ${l}`));
}

function firstColumn(rows: Array<Array<string | null>>): string[] {
  return rows.map((r) => r[0] ?? '');
}

/** Top-level actual rows of an EXPLAIN ANALYZE text plan. */
function actualRows(plan: string[]): number {
  const m = /actual (?:time=[\d.]+\.\.[\d.]+ )?rows=(\d+) loops=(\d+)/.exec(plan[0] ?? '');
  return m ? Number(m[1]) * Number(m[2]) : 0;
}

function executionMs(plan: string[]): number {
  for (const l of plan) {
    const m = /^Execution Time: ([\d.]+) ms/.exec(l.trim());
    if (m) return Number(m[1]);
  }
  return 0;
}

function nodeLine(node: WorkerNode, database: string): string {
  return `Node: host=${node.host} port=${node.port} dbname=${database}`;
}

/** The pull task's query on one shard, as pull-tables.ts runs it (inside COPY … TO STDOUT). */
function pullTaskSql(p: PullTable, shardName: string): string {
  const where = p.filterSql ? ` WHERE ${p.filterSql}` : '';
  return `SELECT * FROM ${quoteQualified(p.table.schema, shardName)} AS ${quoteIdent(p.refName)}${where}`;
}

const PUSHDOWN_SHAPES: Record<PartialResults['planner'], string> = {
  'aggregate-pushdown': 'partial aggregates on the shards, combined on the coordinator',
  'grouped-pushdown': 'grouped by a distribution column: the whole query on the shards, merged on the coordinator',
  'order-limit-pushdown': 'rows on the shards with ORDER BY … LIMIT pushed down, merged on the coordinator',
};

/** How a broadcast join ran: the anchor's shards and the tables shipped to the task nodes. */
function broadcastLines(c: BroadcastCandidate): string[] {
  const out = [`  Join Strategy: broadcast (${c.tables.length === 1 ? 'one table' : `${c.tables.length} tables`} shipped to every task node; tasks on the shards of ${c.anchor.map((t) => quoteQualified(t.schema, t.name)).join(', ')})`];
  for (const t of c.tables) {
    out.push(`  ->  Broadcast ${quoteQualified(t.table.schema, t.table.name)} as ${t.workerTable.schema}.${t.workerTable.name}`);
    if (t.filterSql) out.push(`        Shard Filter: ${t.filterSql}`);
  }
  return out;
}

/** How a route runs, in a word or two (a subplan's `Planner:` line). */
function plannerName(r: Route): string {
  if (r.kind === 'pull') return r.partial ? (r.broadcast?.chosen ? `${r.partial.planner} with broadcast join` : r.partial.planner) : r.intermediate ? 'pull over intermediate results' : 'pull';
  if (r.kind === 'router') return r.planner;
  if (r.kind === 'local') return 'coordinator';
  return r.kind;
}

/**
 * The intermediate results of a recursively planned statement (Citus's
 * `Distributed Subplan` lines): where each went, how it ran, and its own
 * subplans below it.
 */
function subplanLines(plan: IntermediatePlan, verbose: boolean, indent: number): string[] {
  const pad = ' '.repeat(indent);
  const out: string[] = [];
  if (plan.keptBecause) out.push(`${pad}Intermediate Results Kept On Coordinator: ${plan.keptBecause}`);
  for (const i of plan.results) {
    out.push(`${pad}->  Distributed Subplan ${i.id}`);
    const where = plan.shippedNodes > 0 ? `shipped to ${plan.shippedNodes} node${plan.shippedNodes === 1 ? '' : 's'}` : 'kept on the coordinator';
    out.push(`${pad}      Intermediate Result: pg_temp.${i.tempName} (${where})`);
    out.push(`${pad}      Planner: ${plannerName(i.route)}`);
    if (verbose) out.push(`${pad}      Query: ${i.sql}`);
    if (i.route.kind === 'pull' && i.route.intermediate) out.push(...subplanLines(i.route.intermediate, verbose, indent + 6));
  }
  return out;
}

/** The distributed plan of one route, produced when run. */
export class DistributedExplain {
  constructor(readonly inner: ExplainedRoute, readonly options: ExplainOptions, readonly params: ParamValues) {}

  private get values(): ReadonlyArray<string | null> | undefined {
    return this.params && this.params.length > 0 ? this.params : undefined;
  }

  private literals(): string[] {
    return (this.values ?? []).map((v) => (v === null ? 'NULL' : quoteLiteral(v).trim()));
  }

  private explainPrefix(): string {
    return this.options.forwarded.length > 0 ? `EXPLAIN (${this.options.forwarded.join(', ')}) ` : 'EXPLAIN ';
  }

  private header(name: string, actual: { ms: number; rows: number } | null): string {
    let s = `Custom Scan (${name})`;
    if (this.options.costs) s += '  (cost=0.00..0.00 rows=0 width=0)';
    if (actual) s += ` (actual time=${actual.ms.toFixed(3)}..${actual.ms.toFixed(3)} rows=${actual.rows} loops=1)`;
    return s;
  }

  /** Runs the EXPLAIN; returns the lines of the QUERY PLAN column. */
  async run(access: ExplainAccess): Promise<string[]> {
    const database = firstColumn(await access.coordinator('SELECT current_database()'))[0] ?? '';
    const started = performance.now();
    const r = this.inner;
    // Worker queries of a pushdown hold `$n`: the values go in as literals (the coordinator types them in context).
    if (r.kind === 'pull' && this.values && pushdownHasParams(r)) bindPushdownParams(r, this.literals());
    if (r.kind === 'pull') return this.runPull(r, access, database, started);
    if (r.kind === 'insert-select') return this.runInsertSelect(r.plan, access, database);
    const tasks = r.kind === 'router' ? [r.task] : r.tasks;
    const planner = r.kind === 'router' ? (r.planner === 'fast-path' ? 'fast path router' : 'router') : 'multi-shard';
    let shown = 0;
    const plans: string[][] = [];
    if (this.options.analyze) {
      // Every task runs, in parallel across nodes; the slowest is shown.
      const byNode = new Map<number, number[]>();
      tasks.forEach((t, i) => byNode.set(t.node.nodeId, [...(byNode.get(t.node.nodeId) ?? []), i]));
      await Promise.all([...byNode.values()].map(async (indexes) => {
        for (const i of indexes) plans[i] = firstColumn(await access.worker(tasks[i]!.node, this.explainPrefix() + tasks[i]!.sql, this.values));
      }));
      for (let i = 1; i < plans.length; i++) if (executionMs(plans[i]!) > executionMs(plans[shown]!)) shown = i;
    } else {
      plans[0] = firstColumn(await access.worker(tasks[0]!.node, this.explainPrefix() + tasks[0]!.sql, this.values));
    }
    const elapsed = performance.now() - started;
    const rows = this.options.analyze ? plans.reduce((n, p) => n + actualRows(p), 0) : 0;
    const out = [this.header('Citus Adaptive', this.options.analyze ? { ms: elapsed, rows } : null)];
    out.push(`  Planner: ${planner}`);
    out.push(`  Task Count: ${tasks.length}`);
    out.push(`  Tasks Shown: ${tasks.length === 1 ? 'All' : this.options.analyze ? `One of ${tasks.length} (the slowest)` : `One of ${tasks.length}`}`);
    out.push(...this.taskBlock(tasks[shown]!, plans[shown]!, database));
    if (this.options.analyze) out.push(`Execution Time: ${elapsed.toFixed(3)} ms`);
    return out;
  }

  /**
   * INSERT … SELECT: the method as Citus names it (pushdown, repartition, pull
   * to coordinator), why, and one task's plan on its worker — the per-shard
   * INSERT … SELECT of a pushdown, the per-shard-group SELECT of a repartition.
   */
  private async runInsertSelect(plan: InsertSelectPlan, access: ExplainAccess, database: string): Promise<string[]> {
    const method = plan.mode === 'coordinator' ? 'pull to coordinator' : plan.mode;
    const out = [this.header('Citus INSERT ... SELECT', null), `  INSERT/SELECT method: ${method}`, `  Reason: ${plan.reason}`];
    const task = plan.tasks[0];
    if (!task) return out;
    out.push(`  Task Count: ${plan.tasks.length}`);
    out.push(`  Tasks Shown: ${plan.tasks.length === 1 ? 'All' : `One of ${plan.tasks.length}`}`);
    out.push(...this.taskBlock(task, firstColumn(await access.worker(task.node, this.explainPrefix() + task.sql, this.values)), database));
    return out;
  }

  private taskBlock(task: { node: WorkerNode; sql: string }, plan: string[], database: string): string[] {
    const out = ['  ->  Task'];
    if (this.options.verbose) out.push(`        Query: ${task.sql.trim()}`);
    out.push(`        ${nodeLine(task.node, database)}`);
    out.push(...nest(plan, 8));
    return out;
  }

  /**
   * A pushdown: the worker query's plan on one shard group and the final
   * query's plan on the coordinator (over the empty temporary table of
   * partial results, or, with ANALYZE, over the rows the shards sent).
   */
  private async runPushdown(r: Extract<Route, { kind: 'pull' }>, access: ExplainAccess, database: string, started: number, pulledAlready = false): Promise<string[]> {
    const partial = r.partial!;
    const analyze = this.options.analyze;
    if (pulledAlready) {
      // A broadcast join moved its data already (its choice needs the tables' sizes).
    } else if (analyze) {
      const err = await access.pullPartial(r);
      if (err) throw err;
    } else {
      partial.finalSql = partial.combine(firstColumn(await access.coordinator(partialTableSql(partial))));
    }
    const pulled = analyze ? performance.now() - started : 0;
    if (partial.finalSql === null) {
      // The plan declined for these column types: the statement is pulled, as its EXPLAIN shows.
      await access.coordinator(`DROP TABLE IF EXISTS pg_temp.${quoteIdent(partial.tempName)}`);
      return this.runPull({ kind: 'pull', pulls: r.pulls.slice(1), sql: r.sql }, access, database, started, analyze);
    }
    const task = partial.tasks[0]!;
    const shipped = r.intermediate?.shippedNodes ? r.intermediate.results.map((i) => ({ tempName: i.tempName, definition: i.definition, workerTable: { schema: 'pg_temp', name: i.tempName } })) : [];
    const broadcast = [...(r.broadcast?.chosen?.tables ?? []), ...shipped];
    // The task reads the broadcast tables: empty ones of the same columns let its worker plan it.
    for (const t of broadcast) await access.worker(task.node, createWorkerTableSql(t, t.definition!));
    const staging = r.repartition?.chosen ? emptyStagingSql(r.repartition.chosen, task.node) : null;
    if (staging) await access.worker(task.node, staging.create);
    const taskPlan = firstColumn(await access.worker(task.node, this.explainPrefix() + task.sql));
    if (broadcast.length) await access.worker(task.node, `DROP TABLE IF EXISTS ${broadcast.map(workerTableSql).join(', ')}`);
    if (staging?.drop) await access.worker(task.node, staging.drop);
    const finalSql = this.values ? spliceParamLiterals(partial.finalSql, this.literals()) : partial.finalSql;
    const coordinatorPlan = firstColumn(await access.coordinator(this.explainPrefix() + finalSql));
    const elapsed = performance.now() - started;
    await access.coordinator(`DROP TABLE IF EXISTS pg_temp.${quoteIdent(partial.tempName)}`);
    const out = [this.header('pgweave Pushdown', analyze ? { ms: elapsed, rows: actualRows(coordinatorPlan) } : null)];
    out.push(`  Planner: ${partial.planner} (${PUSHDOWN_SHAPES[partial.planner]})`);
    if (r.intermediate) out.push(...subplanLines(r.intermediate, this.options.verbose, 2));
    if (r.broadcast?.chosen) out.push(...broadcastLines(r.broadcast.chosen));
    if (r.repartition?.chosen) out.push(...repartitionLines(r.repartition.chosen));
    else if (r.repartition?.notChosenBecause) out.push(`  Not Repartitioned: ${r.repartition.notChosenBecause}`);
    if (analyze) out.push(`  Partial Results Time: ${pulled.toFixed(3)} ms`);
    out.push(`  Task Count: ${partial.tasks.length}`);
    out.push(`  Tasks Shown: ${partial.tasks.length === 1 ? 'All' : `One of ${partial.tasks.length}`}`);
    out.push(...this.taskBlock(task, taskPlan, database));
    out.push(analyze ? '  ->  Coordinator Plan' : '  ->  Coordinator Plan (estimated over the empty temporary table of partial results)');
    if (this.options.verbose) out.push(`        Query: ${partial.finalSql.trim()}`);
    out.push(...nest(coordinatorPlan, 8));
    if (analyze) out.push(`Execution Time: ${elapsed.toFixed(3)} ms`);
    return out;
  }

  private async runPull(r: Extract<Route, { kind: 'pull' }>, access: ExplainAccess, database: string, started: number, pulledAlready = false): Promise<string[]> {
    if (r.broadcast || r.repartition || r.intermediate) {
      // The choice needs the tables' sizes: the data moves as it would to run the statement.
      const err = await access.pullPartial(r);
      if (err) throw err;
      if (r.partial) return this.runPushdown(r, access, database, started, true);
      pulledAlready = true;
    }
    if (r.partial) return this.runPushdown(r, access, database, started);
    const analyze = this.options.analyze;
    let pullMs = 0;
    const pulledRows = new Map<string, number>();
    if (analyze) {
      const err = pulledAlready ? null : await access.pull(r.pulls);
      if (err) throw err;
      pullMs = performance.now() - started;
      for (const p of r.pulls) {
        const n = firstColumn(await access.coordinator(`SELECT count(*) FROM pg_temp.${quoteIdent(p.tempName)}`))[0];
        pulledRows.set(p.tempName, Number(n ?? 0));
      }
    } else {
      // Empty tables of the right shape: enough for the coordinator to plan the query.
      for (const p of r.pulls.filter((x) => !x.intermediate)) {
        await access.coordinator(`DROP TABLE IF EXISTS pg_temp.${quoteIdent(p.tempName)}; CREATE TEMP TABLE ${quoteIdent(p.tempName)} (LIKE ${quoteQualified(p.table.schema, p.table.name)} INCLUDING INDEXES)`);
      }
    }
    // One pull task: the first shard of the first pulled table.
    const pulls = r.pulls.filter((p) => !p.intermediate);
    const pullTasks = pulls.flatMap((p) => (p.table.method === 'reference' ? p.table.shards.slice(0, 1) : p.table.shards).map((s) => ({ p, s })));
    const first = pullTasks[0];
    let taskPlan: string[] = [];
    if (first) {
      taskPlan = firstColumn(await access.worker(first.s.placements[0]!.node, this.explainPrefix() + pullTaskSql(first.p, first.s.shardName)));
    }
    const coordinatorPlan = firstColumn(await access.coordinator(this.explainPrefix() + r.sql, this.values));
    const elapsed = performance.now() - started;
    // As after a pull route: the temporary tables go once the statement is done.
    await access.coordinator(`DROP TABLE IF EXISTS ${r.pulls.map((p) => `pg_temp.${quoteIdent(p.tempName)}`).join(', ')}`);
    const out = [this.header('pgweave Pull', analyze ? { ms: elapsed, rows: actualRows(coordinatorPlan) } : null)];
    out.push('  Planner: pull (rows copied from the shards into temporary tables; the coordinator runs the query over them)');
    if (r.broadcast?.pulledBecause) out.push(`  Not Broadcast: ${r.broadcast.pulledBecause}`);
    if (r.repartition?.notChosenBecause) out.push(`  Not Repartitioned: ${r.repartition.notChosenBecause}`);
    if (r.intermediate) out.push(...subplanLines(r.intermediate, this.options.verbose, 2));
    out.push(`  Pulled Tables: ${pulls.length}`);
    for (const p of pulls) {
      const shards = p.table.method === 'reference' ? 1 : p.table.shards.length;
      const nodes = new Set((p.table.method === 'reference' ? p.table.shards.slice(0, 1) : p.table.shards).map((s) => s.placements[0]?.node.nodeId)).size;
      out.push(`  ->  Pull ${quoteQualified(p.table.schema, p.table.name)} into pg_temp.${p.tempName}  (${p.table.method === 'reference' ? 'reference table, 1 placement' : `${shards} shards on ${nodes} node${nodes === 1 ? '' : 's'}`})`);
      if (p.filterSql) out.push(`        Shard Filter: ${p.filterSql}`);
      if (analyze) out.push(`        Rows Pulled: ${pulledRows.get(p.tempName) ?? 0}`);
    }
    if (analyze) out.push(`  Pull Time: ${pullMs.toFixed(3)} ms`);
    out.push(`  Task Count: ${pullTasks.length}`);
    if (first) {
      out.push(`  Tasks Shown: ${pullTasks.length === 1 ? 'All' : `One of ${pullTasks.length}`}`);
      out.push(...this.taskBlock({ node: first.s.placements[0]!.node, sql: pullTaskSql(first.p, first.s.shardName) }, taskPlan, database));
    }
    out.push(analyze ? '  ->  Coordinator Plan' : '  ->  Coordinator Plan (estimated over the empty temporary tables: EXPLAIN ANALYZE pulls the rows)');
    if (this.options.verbose) out.push(`        Query: ${r.sql.trim()}`);
    out.push(...nest(coordinatorPlan, 8));
    if (analyze) out.push(`Execution Time: ${elapsed.toFixed(3)} ms`);
    return out;
  }
}

/**
 * Plans `EXPLAIN <statement>` when the statement touches distributed tables:
 * the inner statement goes through the cascade (`planInner`), and its route
 * is explained. Null when the inner statement cannot be found in the text.
 */
export function planExplain(
  explain: Node,
  text: Buffer,
  planInner: (stmt: Node, text: Buffer) => InnerPlan,
): ExplainPlan | Route {
  const options = explainOptions(explain);
  if (options instanceof PgError) return { kind: 'error', error: options };
  const innerText = explainedText(text);
  if (!innerText || !explain.query) return { kind: 'error', error: new PgError({ code: '0A000', message: 'EXPLAIN of this statement on distributed tables is not supported yet' }) };
  const inner = planInner(explain.query, innerText);
  return new ExplainPlan(inner, options, !!explain.query.SelectStmt);
}
