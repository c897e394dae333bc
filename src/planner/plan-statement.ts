/**
 * The planner cascade for one parsed statement (DESIGN.md decision 7):
 * transaction control and Citus functions first, then statements that touch
 * no distributed table (the coordinator PostgreSQL runs them unchanged), then
 * INSERT ... VALUES, fast path / router, multi-shard statements, pushdown
 * with a merge on the coordinator, and pulling the tables. Each
 * stage either returns a plan or declines with a reason; the last reason is
 * what the client sees (0A000).
 *
 * The result is a StatementPlan: built once per statement text or prepared
 * statement, asked for a Route per execution with the parameter values.
 */
import { PgError } from '../protocol/errors.js';
import type { Node } from '../sql/parse.js';
import { someNode } from '../sql/tree-walk.js';
import { isClusterObjectStatement } from '../sql/object-statements.js';
import { tableKey, type Catalog, type DistributedTable } from '../metadata/types.js';
import { analyzeShape, coordinatorTable, hasModifyingCte, modifiedRelation } from './relations.js';
import { InsertPlan } from './insert-planner.js';
import { NotRoutable, RouterPlan, checkDistributionColumnNotUpdated, type ParamValues, type ResolvedRelation } from './router-planner.js';
import { planMultiShard } from './multi-shard-planner.js';
import { planPull } from './pull-planner.js';
import { PushdownPlanner } from './pushdown-planner.js';
import { BroadcastPlanner } from './broadcast-planner.js';
import { RepartitionPlanner } from './repartition-planner.js';
import { RecursivePlanner } from './recursive-planner.js';
import { decorrelate } from './decorrelate.js';
import { deparse } from './pushdown-query.js';
import { parseSql } from '../sql/parse.js';
import { planInsertSelect, planInsertSelectIntoLocal } from './insert-select-planner.js';
import { ExplainPlan, planExplain } from './explain.js';
import { planCopyTo } from './copy-planner.js';
import { callArgs, commandName, planCommandQuery } from './command-query.js';
import { isPlainPull, type ArgValue, type Route, type Task, type TransactionVerb } from './route.js';
import { readsOnly } from './reads-only.js';

export interface PlanContext {
  catalog: Catalog;
  /** Schemas of the session's search_path, in order. */
  searchPath: readonly string[];
  /** Whether a function name is one the coordinator implements itself. */
  isCommand(name: string): boolean;
  /** Names of functions whose source may change roles (src/commands/roles/watch.ts): a local statement calling one is watched. */
  roleFunctions?: ReadonlySet<string>;
  /** Id prefix of intermediate results while planning a subquery on its own (recursive-planner.ts). */
  intermediatePrefix?: string;
}

/** Whether `node` calls a function named in `names` anywhere. */
function callsAny(node: Node, names: ReadonlySet<string>): boolean {
  return someNode(node, (n) => {
    const parts = (n.FuncCall?.funcname ?? []) as Node[];
    return !!n.FuncCall && names.has(parts[parts.length - 1]?.String?.sval);
  });
}

export interface StatementPlan {
  readonly catalogVersion: number;
  readonly needsParams: boolean;
  /** `rowHashes`: an evaluated INSERT's distribution value hashes from PostgreSQL (route 'evaluate-insert'). */
  route(params: ParamValues, rowHashes?: ReadonlyArray<number | null> | null): Route;
  /** A task valid for describing the statement (its shape does not depend on the shard). */
  describeTask(): Task | null;
}

const LOCAL: Route = { kind: 'local' };
const WATCH_ROLES: Route = { kind: 'local', watchRoles: true };

class FixedPlan implements StatementPlan {
  readonly needsParams = false;
  constructor(readonly catalogVersion: number, private readonly fixed: Route) {}
  route(): Route {
    return this.fixed;
  }
  describeTask(): Task | null {
    return null;
  }
}

export function resolveTable(ctx: PlanContext, schema: string | null, name: string): DistributedTable | undefined {
  if (schema !== null) return ctx.catalog.tables.get(tableKey(schema, name));
  for (const s of ctx.searchPath) {
    const t = ctx.catalog.tables.get(tableKey(s, name));
    if (t) return t;
  }
  return undefined;
}

/** Statements on objects that exist on every node (DESIGN.md decision 9: roles are everywhere). */
const GLOBAL_STATEMENTS = new Set([
  'CreateRoleStmt', 'AlterRoleStmt', 'AlterRoleSetStmt', 'DropRoleStmt', 'GrantRoleStmt', 'RenameStmt',
  'CreateSchemaStmt', 'AlterDefaultPrivilegesStmt', 'AlterOwnerStmt', 'GrantStmt', 'DropOwnedStmt', 'ReassignOwnedStmt',
]);

/** Objects whose privileges every node holds: schemas, and functions where a worker has them too. */
const GLOBAL_GRANT_OBJECTS = new Set(['OBJECT_SCHEMA', 'OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE']);

function isGlobalObject(stmt: Node): boolean {
  if (stmt.RenameStmt) return stmt.RenameStmt.renameType === 'OBJECT_ROLE' || stmt.RenameStmt.renameType === 'OBJECT_SCHEMA';
  if (stmt.AlterOwnerStmt) return stmt.AlterOwnerStmt.objectType === 'OBJECT_SCHEMA';
  if (stmt.GrantStmt) return GLOBAL_GRANT_OBJECTS.has(stmt.GrantStmt.objtype);
  return true;
}

const TRANSACTION_VERBS: Record<string, TransactionVerb> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'begin',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback_to',
  TRANS_STMT_PREPARE: 'prepare',
  TRANS_STMT_COMMIT_PREPARED: 'commit_prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback_prepared',
};

/** `SELECT f(args)` or `SELECT * FROM f(args)` where f is a coordinator function. */
function commandCall(select: Node, ctx: PlanContext): Route | null {
  let call: Node = null;
  let alias: string | null = null;
  let columns: Array<{ name: string; as: string }> | null | undefined = null;
  const from = (select.fromClause ?? []) as Node[];
  const targets = (select.targetList ?? []) as Node[];
  if (from.length === 0 && targets.length === 1 && targets[0].ResTarget?.val?.FuncCall) {
    call = targets[0].ResTarget.val.FuncCall;
    alias = targets[0].ResTarget.name ?? null;
  } else if (from.length === 1 && from[0].RangeFunction) {
    const fns = from[0].RangeFunction.functions as Node[];
    if (fns?.length === 1) call = fns[0].List?.items?.[0]?.FuncCall;
    columns = projection(targets);
  }
  const general = () => planCommandQuery(select, ctx.isCommand, (stmt) => analyzeShape(stmt).relations.some((r) => !!resolveTable(ctx, r.schema, r.name)));
  if (!call) return from.length > 0 ? general() : null;
  const name = commandName(call, ctx.isCommand);
  if (!name) return from.length > 0 ? general() : null;
  // Anything beyond listing the rows: PostgreSQL runs the statement over a temporary table of them.
  const simple = !select.whereClause && !select.groupClause && !select.havingClause && !select.sortClause && !select.limitCount && !select.limitOffset
    && !select.distinctClause && !select.withClause && columns !== undefined;
  if (from.length > 0 && !simple) return general();
  if (!simple) {
    return { kind: 'error', error: new PgError({ code: '0A000', message: `${name}() in the select list is only supported alone; use SELECT … FROM ${name}(…)` }) };
  }
  const args = callArgs(call, name);
  if ('kind' in args) return args;
  const { positional, named } = args;
  return { kind: 'command', name, positional, named, alias, columns };
}

/** `SELECT *` → null (all columns); `SELECT a, b AS c` → the names; anything else → undefined. */
function projection(targets: Node[]): Array<{ name: string; as: string }> | null | undefined {
  if (targets.length === 1 && targets[0].ResTarget?.val?.ColumnRef?.fields?.[0]?.A_Star) return null;
  const out: Array<{ name: string; as: string }> = [];
  for (const t of targets) {
    const fields = (t.ResTarget?.val?.ColumnRef?.fields ?? []) as Node[];
    const last = fields[fields.length - 1]?.String?.sval;
    if (!last) return undefined;
    out.push({ name: last, as: t.ResTarget.name ?? last });
  }
  return out;
}

class DistributedPlan implements StatementPlan {
  private pushdown: PushdownPlanner | null = null;
  private broadcast: BroadcastPlanner | null = null;
  private repartition: RepartitionPlanner | null = null;
  constructor(
    readonly catalogVersion: number,
    private readonly text: Buffer,
    private readonly stmt: Node,
    private readonly kind: 'select' | 'update' | 'delete',
    private readonly relations: ResolvedRelation[],
    private readonly functions: Set<string>,
    private readonly router: RouterPlan | null,
    private readonly declined: string | null,
    private readonly recursive: RecursivePlanner | null = null,
    private readonly decorrelated: (() => Decorrelated | null) | null = null,
    /** A coordinator table (plain, temporary, view) the statement reads beside distributed ones, or null. */
    private readonly localTable: string | null = null,
  ) {}

  private decorrelatedPlan: Decorrelated | null | undefined;

  private selectParams: boolean | undefined;

  get needsParams(): boolean {
    if (this.router?.needsParams) return true;
    // A SELECT with `$n` may be pushed down: EXPLAIN of it runs the worker queries with the values.
    this.selectParams ??= this.kind === 'select' && JSON.stringify(this.stmt).includes('"ParamRef"');
    return this.selectParams;
  }

  route(params: ParamValues): Route {
    // A coordinator table exists on no worker: the statement runs where it is (intermediate results shipped, or a pull).
    if (this.localTable !== null) {
      if (this.kind !== 'select' || this.stmt.lockingClause || hasModifyingCte(this.stmt)) {
        return unsupported(`a write or locking read that reads coordinator table ${this.localTable} along with distributed tables`);
      }
      const recursive = this.recursive?.route();
      if (recursive) return recursive;
      return planPull(this.text, this.stmt, this.relations);
    }
    if (this.router) {
      const r = this.router.route(params);
      if (!(r instanceof NotRoutable)) return r;
    }
    // Writes in WITH would run on pulled copies (lost) or per shard outside one transaction.
    if (this.kind === 'select' && hasModifyingCte(this.stmt)) return unsupported('a data-modifying WITH that is not routed to one shard group');
    const multi = planMultiShard(this.text, this.stmt, this.kind, this.relations, this.functions);
    if (multi.kind === 'error' && this.kind === 'select' && !this.stmt.lockingClause) {
      const pull = planPull(this.text, this.stmt, this.relations);
      if (pull.kind !== 'pull') return pull;
      this.pushdown ??= new PushdownPlanner(this.stmt, this.relations);
      const pushed = this.pushdown.route(pull);
      if (pushed) return pushed;
      // Correlated scalar-aggregate subqueries joined as grouped derived tables (decorrelate.ts), planned again as a whole.
      // Only [NOT] EXISTS rewritten: a broadcast join of the statement as written runs them as semi/anti joins per shard already.
      this.decorrelatedPlan ??= this.decorrelated?.() ?? null;
      this.broadcast ??= new BroadcastPlanner(this.stmt, this.relations);
      const d = this.decorrelatedPlan;
      if (d && (d.scalar > 0 || !this.broadcast.route(pull))) {
        const joined = d.plan.route(params);
        // A rewrite that still pulls every table gains nothing: the coordinator then plans the statement as
        // written, as PostgreSQL would (its semi joins and short-circuits can beat the joined form by far).
        if (joined.kind !== 'error' && !isPlainPull(joined)) return joined;
      }
      // CTEs and subqueries planned on their own, the rest pushed down over their results (or run here).
      const recursive = this.recursive?.route();
      if (recursive) return recursive;
      this.broadcast ??= new BroadcastPlanner(this.stmt, this.relations);
      this.repartition ??= new RepartitionPlanner(this.stmt, this.relations);
      return this.repartition.attach(this.broadcast.route(pull) ?? pull, pull);
    }
    return multi;
  }

  describeTask(): Task | null {
    const multi = planMultiShard(this.text, this.stmt, 'update', this.relations, new Set());
    return multi.kind === 'multi-shard' ? multi.tasks[0] : null;
  }
}

class InsertStatementPlan implements StatementPlan {
  constructor(readonly catalogVersion: number, private readonly plan: InsertPlan) {}
  get needsParams(): boolean {
    return this.plan.needsParams;
  }
  route(params: ParamValues, rowHashes: ReadonlyArray<number | null> | null = null): Route {
    const r = this.plan.route(params, rowHashes);
    if (r instanceof NotRoutable) return { kind: 'error', error: new PgError({ code: '0A000', message: r.reason }) };
    return r;
  }
  describeTask(): Task | null {
    return null;
  }
}

/** Plans one statement; `text` is that statement's own source text as UTF-8 bytes. */
export function planStatement(stmt: Node, text: Buffer, ctx: PlanContext): StatementPlan {
  const version = ctx.catalog.version;
  const fixed = (r: Route) => new FixedPlan(version, r);
  if (stmt.TransactionStmt) {
    const verb = TRANSACTION_VERBS[stmt.TransactionStmt.kind];
    return fixed(verb ? { kind: 'transaction', verb, statement: text.toString('utf8') } : LOCAL);
  }
  if (stmt.SelectStmt) {
    const cmd = commandCall(stmt.SelectStmt, ctx);
    if (cmd) return fixed(cmd);
  }
  const globalKind = Object.keys(stmt)[0];
  if (GLOBAL_STATEMENTS.has(globalKind) && isGlobalObject(stmt)) {
    return fixed({ kind: 'global-utility', statement: text.toString('utf8'), stmt });
  }
  // Types, collations, extensions, functions: every node holds them (DDL propagation replays them).
  if (isClusterObjectStatement(stmt) && ctx.catalog.nodes.some((n) => n.isActive && n.groupId !== 0)) {
    return fixed({ kind: 'utility', statement: text.toString('utf8'), stmt, tables: [] });
  }
  // DO and CALL run functions that may change roles (CREATE ROLE in plpgsql): the session watches them.
  if ((stmt.DoStmt || stmt.CallStmt) && ctx.catalog.nodes.some((n) => n.isActive && n.groupId !== 0)) return fixed(WATCH_ROLES);
  // A new table is local, even when its constraints reference distributed tables
  // (create_distributed_table turns those into shard-to-shard keys later).
  if (stmt.CreateStmt) return fixed(LOCAL);
  const named = namedObjectUtility(stmt, text, ctx);
  if (named) return fixed(named);
  const shape = analyzeShape(stmt);
  const relations: ResolvedRelation[] = [];
  for (const ref of shape.relations) {
    const table = resolveTable(ctx, ref.schema, ref.name);
    if (table) relations.push({ ref, table });
  }
  if (relations.length === 0) {
    // A query or DML on local tables that calls a function which may change roles (SELECT f()): watched like DO and CALL.
    const dml = stmt.SelectStmt || stmt.InsertStmt || stmt.UpdateStmt || stmt.DeleteStmt;
    const watch = dml && ctx.roleFunctions && ctx.roleFunctions.size > 0 && callsAny(stmt, ctx.roleFunctions);
    return fixed(watch && ctx.catalog.nodes.some((n) => n.isActive && n.groupId !== 0) ? WATCH_ROLES : LOCAL);
  }
  if (stmt.ExplainStmt) {
    const explain = planExplain(stmt.ExplainStmt, text, (inner, innerText) => planStatement(inner, innerText, ctx));
    return explain instanceof ExplainPlan ? explain : fixed(explain);
  }

  if (stmt.CopyStmt) {
    const copy = stmt.CopyStmt;
    if (copy.filename || copy.is_program) {
      return fixed({ kind: 'error', error: new PgError({ code: '0A000', message: 'COPY of a distributed table to or from a file or program is not supported; use COPY … FROM STDIN / TO STDOUT (psql \\copy)' }) });
    }
    if (copy.is_from) {
      const target = relations.find((r) => r.ref.node === copy.relation);
      if (!target) return fixed(LOCAL);
      return fixed({ kind: 'copy-in', statement: text.toString('utf8'), stmt, table: target.table });
    }
    // COPY … TO STDOUT: streamed from the shards, routed to one shard group, or pulled (copy-planner.ts).
    return fixed(planCopyTo(copy, text, relations, (inner, innerText) => planStatement(inner, innerText, ctx).route(null)));
  }
  try {
    if (stmt.InsertStmt) {
      const target = relations.find((r) => r.ref.node === stmt.InsertStmt.relation);
      // Both INSERT … SELECT paths run the WITH on the coordinator, over pulled copies: a write there would be lost.
      const writtenInWith = ((stmt.InsertStmt.withClause?.ctes ?? []) as Node[]).map((c) => modifiedRelation(c.CommonTableExpr?.ctequery));
      const lost = relations.find((r) => writtenInWith.includes(r.ref.node));
      if (lost) return fixed(unsupported(`a data-modifying WITH on ${lost.table.method === 'reference' ? 'reference' : 'distributed'} table "${lost.table.name}" feeding an INSERT … SELECT`));
      if (!target) return fixed(planInsertSelectIntoLocal(text, stmt.InsertStmt, relations));
      const fromSelect = !!stmt.InsertStmt.selectStmt?.SelectStmt && !stmt.InsertStmt.selectStmt.SelectStmt.valuesLists;
      if (target.table.method === 'reference' && fromSelect && relations.some((r) => r.table.method === 'hash')) {
        return fixed(planInsertSelect(text, stmt.InsertStmt, target, relations));
      }
      if (target.table.method === 'reference') {
        const refused = referenceWriteReadingDistributed([target], relations);
        if (refused) return fixed(refused);
        return new DistributedPlan(version, text, stmt.InsertStmt, 'update', relations, shape.functions, new RouterPlan(text, stmt.InsertStmt, relations, true), null);
      }
      if (relations.length > 1 || fromSelect) return fixed(planInsertSelect(text, stmt.InsertStmt, target, relations));
      return new InsertStatementPlan(version, new InsertPlan(text, stmt.InsertStmt, target));
    }
    let kind: 'select' | 'update' | 'delete';
    let inner: Node;
    if (stmt.SelectStmt) {
      kind = 'select';
      inner = stmt.SelectStmt;
      if (inner.intoClause) return fixed(unsupported('SELECT INTO from distributed tables'));
      if (hasModifyingCte(inner)) {
        const targets = ((inner.withClause.ctes ?? []) as Node[]).map((c) => modifiedRelation(c.CommonTableExpr?.ctequery));
        const refused = referenceWriteReadingDistributed(relations.filter((r) => targets.includes(r.ref.node)), relations);
        if (refused) return fixed(refused);
      }
    } else if (stmt.UpdateStmt) {
      kind = 'update';
      inner = stmt.UpdateStmt;
      const target = relations.find((r) => r.ref.node === inner.relation);
      if (target?.table.method === 'hash') {
        const err = checkDistributionColumnNotUpdated(inner, target.table);
        if (err) return fixed({ kind: 'error', error: err });
      }
    } else if (stmt.DeleteStmt) {
      kind = 'delete';
      inner = stmt.DeleteStmt;
    } else {
      return fixed(utilityOnDistributed(stmt, text, relations));
    }
    let router: RouterPlan | null = null;
    let declined: string | null = null;
    const localTable = coordinatorTable(shape.relations, (r) => relations.some((x) => x.ref === r));
    if (kind !== 'select') {
      const refused = referenceWriteReadingDistributed(relations.filter((r) => r.ref.node === inner.relation), relations);
      if (refused) return fixed(refused);
    }
    const isWrite = kind !== 'select' || !!inner.lockingClause || hasModifyingCte(inner);
    try {
      if (localTable === null) router = new RouterPlan(text, inner, relations, isWrite, !isWrite && kind === 'select' && readsOnly(inner));
    } catch (err) {
      if (!(err instanceof NotRoutable)) throw err;
      declined = err.reason;
    }
    const recursive = kind === 'select' ? new RecursivePlanner(inner, {
      resolve: (schema, name) => resolveTable(ctx, schema, name),
      planSubquery: (sql, prefix) => {
        const plan = planStatement(parseSql(sql).stmts[0].stmt, Buffer.from(sql, 'utf8'), { ...ctx, intermediatePrefix: prefix });
        return { route: () => plan.route(null) };
      },
      prefix: ctx.intermediatePrefix ?? '',
    }) : null;
    return new DistributedPlan(version, text, inner, kind, relations, shape.functions, router, declined, recursive,
      kind === 'select' ? () => planDecorrelated(inner, ctx) : null, localTable);
  } catch (err) {
    if (err instanceof PgError) return fixed({ kind: 'error', error: err });
    if (err instanceof NotRoutable) return fixed(unsupported(err.reason));
    throw err;
  }
}

/**
 * The SELECT with its correlated scalar-aggregate subqueries rewritten as
 * joins to grouped derived tables, planned through the whole cascade; null
 * when nothing was rewritten. Statements with parameters keep their form
 * (their plan's parameter types and locations belong to the client's text).
 */
interface Decorrelated {
  plan: StatementPlan;
  /** How many scalar subqueries were rewritten (the others were [NOT] EXISTS). */
  scalar: number;
}

function planDecorrelated(select: Node, ctx: PlanContext): Decorrelated | null {
  if (JSON.stringify(select).includes('"ParamRef"')) return null;
  const rewritten = decorrelate(select, {
    columnsOf: (schema, name) => resolveTable(ctx, schema, name)?.columns ?? null,
    distribution: (schema, name) => {
      const t = resolveTable(ctx, schema, name);
      return t?.method === 'hash' && t.distributionColumn ? { column: t.distributionColumn, colocation: t.colocationId } : null;
    },
  });
  if (!rewritten) return null;
  const sql = deparse({ SelectStmt: rewritten.select });
  return { plan: planStatement(parseSql(sql).stmts[0].stmt, Buffer.from(sql, 'utf8'), ctx), scalar: rewritten.scalar };
}


/**
 * Citus's error for a write to a reference table that also reads a
 * distributed table: it would run on the replica of one node only.
 */
function referenceWriteReadingDistributed(targets: ResolvedRelation[], relations: ResolvedRelation[]): Route | null {
  if (!targets.some((t) => t.table.method === 'reference') || !relations.some((r) => r.table.method === 'hash')) return null;
  return { kind: 'error', error: new PgError({ code: '0A000', message: 'cannot perform select on a distributed table and modify a reference table' }) };
}

/** Qualified name parts of a `List` of `String` nodes (DROP/COMMENT name their objects this way). */
function nameParts(list: Node): string[] {
  return ((list?.List?.items ?? []) as Node[]).map((i) => i.String?.sval as string).filter((x) => typeof x === 'string');
}

function resolveParts(ctx: PlanContext, parts: string[]): DistributedTable | undefined {
  if (parts.length === 1) return resolveTable(ctx, null, parts[0]);
  if (parts.length === 2) return resolveTable(ctx, parts[0], parts[1]);
  return undefined;
}

/**
 * DROP TABLE/INDEX/POLICY and COMMENT ON TABLE/COLUMN name their objects as name
 * lists, not RangeVars: resolve those names here so the statements reach DDL
 * propagation. Every DROP INDEX goes there once the catalog has tables (the
 * catalog cannot tell an index's table; the handler runs others unchanged).
 */
function namedObjectUtility(stmt: Node, text: Buffer, ctx: PlanContext): Route | null {
  const statement = text.toString('utf8');
  if (stmt.DropStmt) {
    const d = stmt.DropStmt;
    if (d.removeType === 'OBJECT_TABLE') {
      const tables = ((d.objects ?? []) as Node[]).map((o) => resolveParts(ctx, nameParts(o))).filter((t): t is DistributedTable => !!t);
      if (tables.length > 0) return { kind: 'utility', statement, stmt, tables: [...new Set(tables)] };
    } else if (d.removeType === 'OBJECT_POLICY') {
      // DROP POLICY p ON t names the table in front of the policy's name.
      const tables = ((d.objects ?? []) as Node[]).map((o) => resolveParts(ctx, nameParts(o).slice(0, -1))).filter((t): t is DistributedTable => !!t);
      if (tables.length > 0) return { kind: 'utility', statement, stmt, tables };
    } else if (d.removeType === 'OBJECT_INDEX' && ctx.catalog.tables.size > 0) {
      return { kind: 'utility', statement, stmt, tables: [] };
    }
    return null;
  }
  // Index names do not say their table, nor does ALL TABLES IN SCHEMA: the handlers resolve them.
  const hasTables = ctx.catalog.tables.size > 0;
  if (hasTables && (stmt.AlterTableStmt?.objtype === 'OBJECT_INDEX' || stmt.RenameStmt?.renameType === 'OBJECT_INDEX' || stmt.CommentStmt?.objtype === 'OBJECT_INDEX')) {
    return { kind: 'utility', statement, stmt, tables: [] };
  }
  if (hasTables && stmt.GrantStmt?.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' && stmt.GrantStmt.objtype === 'OBJECT_TABLE') {
    return { kind: 'utility', statement, stmt, tables: [] };
  }
  if (stmt.CommentStmt) {
    const c = stmt.CommentStmt;
    let parts = c.object?.List ? nameParts(c.object) : [];
    if (c.objtype === 'OBJECT_COLUMN') parts = parts.slice(0, -1);
    else if (c.objtype !== 'OBJECT_TABLE') return null;
    const table = resolveParts(ctx, parts);
    return table ? { kind: 'utility', statement, stmt, tables: [table] } : null;
  }
  return null;
}

function unsupported(what: string): Route {
  return { kind: 'error', error: new PgError({ code: '0A000', message: `${what} is not supported yet` }) };
}

function utilityOnDistributed(stmt: Node, text: Buffer, relations: ResolvedRelation[]): Route {
  const tables = [...new Set(relations.map((r) => r.table))];
  return { kind: 'utility', statement: text.toString('utf8'), stmt, tables };
}
