/**
 * INSERT ... VALUES into a distributed table: each row goes to the shard its
 * distribution column value hashes to. Built once per statement (or prepared
 * statement); `route(params)` hashes the rows' values. All rows in one shard:
 * the original text with the shard name spliced in (router). Rows in several
 * shards: one INSERT per shard holding just its rows, deparsed from the
 * transformed tree, run as one distributed transaction.
 *
 * A value the TypeScript hash declines (UnsupportedHashInputError: a too-long
 * varchar(n), a time zone name, non-ASCII citext…) sends the INSERT through
 * the 'evaluate-insert' route: the coordinator PostgreSQL rejects invalid
 * input with its own error, and returns valid input in canonical form along
 * with its own hash of each row's distribution column, which routes the
 * rebuilt INSERT when its values still decline.
 *
 * Transaction-time functions (now(), CURRENT_TIMESTAMP…, transaction-time.ts)
 * need no evaluation of the INSERT: when nothing else does, the
 * 'evaluate-insert' route offers `atTransactionTime`, the router route with
 * the coordinator's transaction timestamp spliced in (a literal, or a
 * parameter appended to the client's for a prepared statement, so the
 * worker's prepared statement stays the same across transactions).
 */
import { deparseSql } from '../sql/deparse.js';
import { PgError } from '../protocol/errors.js';
import { hashCallSql, hashDistributionValue, UnsupportedHashInputError } from '../sql/hash.js';
import { parseSql, type Node } from '../sql/parse.js';
import { SKIP, walkTree } from '../sql/tree-walk.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { exactFloatsQuery } from '../sql/exact-floats.js';
import { findShardIndexIn } from '../metadata/shard-interval.js';
import type { DistributedTable } from '../metadata/types.js';
import { constantText } from './restrictions.js';
import { shardName } from '../metadata/shard-name.js';
import { constraintNameSpan, spliceShardText, type TextEdit } from './shard-rewrite.js';
import type { SplicedText } from '../sql/text-splice.js';
import { NotRoutable, type ParamValues, type ResolvedRelation } from './router-planner.js';
import type { Route, Task } from './route.js';
import { findTimeCalls, isTransactionTimeCall, spliceTimeCalls, timeCallSql, type TimeCall } from './transaction-time.js';

type RowKey = { text: string } | { param: number };

export class InsertPlan {
  private readonly table: DistributedTable;
  private readonly rowKeys: RowKey[];
  private readonly rows: Node[];
  private readonly textByShardIndex = new Map<number, SplicedText>();
  /** Values must be computed on the coordinator first (see Route 'evaluate-insert'). */
  private readonly evaluate: boolean;
  private evaluation: Route | null = null;
  /** Transaction-time calls anywhere in the statement (empty when `evaluate`: the evaluation computes them). */
  private readonly timeCalls: TimeCall[] = [];
  /** Highest $n the statement uses. */
  private readonly maxParam: number = 0;
  /** Per shard: the text with the shard name and the time calls as a parameter spliced in. */
  private readonly timedTextByShardIndex = new Map<number, SplicedText>();
  private timedEvaluation: Route | null = null;
  /** `ON CONFLICT ON CONSTRAINT name`: the name and its span in the text (each shard's constraint is `name_<shardid>`). */
  private readonly constraint: { name: string; at: number; len: number } | null = null;
  /** The distribution column's position in each VALUES row, and its type as a RETURNING ordinal's typed NULL needs it (null: no ordinal). */
  private readonly keyIndex: number = -1;
  private readonly keyType: string | null = null;

  constructor(
    private readonly text: Buffer,
    private readonly stmt: Node,
    private readonly target: ResolvedRelation,
  ) {
    this.table = target.table;
    const select = stmt.selectStmt?.SelectStmt;
    if (!select) {
      // DEFAULT VALUES: the coordinator computes the row (and PostgreSQL rejects a missing distribution value).
      this.rows = [];
      this.rowKeys = [];
      this.evaluate = true;
      return;
    }
    if (!select.valuesLists) throw new NotRoutable('INSERT ... SELECT into a distributed table');
    this.rows = select.valuesLists as Node[];
    const cols = (stmt.cols ?? []) as Node[];
    const names = cols.length > 0 ? cols.map((c) => c.ResTarget.name as string) : this.table.columns ?? null;
    if (!names) {
      throw new PgError({ code: '0A000', message: `INSERT into distributed table "${this.table.name}" needs a column list here`, hint: 'Name the columns: INSERT INTO t (a, b) VALUES ...' });
    }
    const keyIndex = names.indexOf(this.table.distributionColumn!);
    this.keyIndex = keyIndex;
    this.keyType = ordinalKeyType(this.table.distributionColumnType);
    // Left-out columns matter only when their default must be computed on the coordinator.
    const omitsColumns = this.table.columns
      ? this.table.columns.some((c) => !names.includes(c) && (this.table.evaluatedDefaults ?? [c]).includes(c))
      : false;
    // Transaction-time calls may stand for any value but the distribution column's (it must hash here).
    this.evaluate = keyIndex < 0 || omitsColumns ||
      this.rows.some((row) => (row.List.items as Node[]).some((v, i) => !isPlainValue(v, i !== keyIndex)));
    if (this.evaluate) {
      this.rowKeys = [];
      return;
    }
    const conname = stmt.onConflictClause?.infer?.conname as string | undefined;
    if (conname !== undefined) {
      const span = constraintNameSpan(text, stmt.onConflictClause.infer.location, conname);
      if (!span) throw new NotRoutable('an ON CONFLICT ON CONSTRAINT clause whose name the rewrite cannot find');
      this.constraint = { name: conname, ...span };
    }
    this.timeCalls = findTimeCalls(stmt, text);
    this.maxParam = maxParamNumber(stmt);
    this.rowKeys = this.rows.map((row) => {
      const item = row.List.items[keyIndex];
      if (item?.ParamRef) return { param: item.ParamRef.number };
      if (item?.TypeCast?.arg?.ParamRef) return { param: item.TypeCast.arg.ParamRef.number };
      if (item?.A_Const?.isnull) throw new PgError({ code: '23502', message: 'cannot perform an INSERT with NULL in the partition column' });
      const t = constantText(item);
      if (t === null) throw new PgError({ code: '0A000', message: 'the partition column value of an INSERT must be a constant or a parameter' });
      return { text: t };
    });
  }

  /** The evaluation route: INSERT … RETURNING * on the coordinator's table, to be rolled back. */
  private evaluationRoute(): Route {
    const evalStmt = structuredClone(this.stmt);
    delete evalStmt.onConflictClause;
    evalStmt.returningList = [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }];
    const keyColumn = this.table.distributionColumn!;
    // PostgreSQL's own hash of each row's distribution value, as the last column.
    const hashed = this.table.hashFunction !== null && this.table.hashFunction !== undefined;
    if (hashed) {
      const hashSql = hashCallSql(this.table.hashFunction!, quoteIdent(keyColumn));
      const hashTarget = parseSql(`SELECT ${hashSql}`).stmts[0].stmt.SelectStmt.targetList[0];
      evalStmt.returningList.push(hashTarget);
    }
    const evaluationSql = exactOutputSql(evalStmt);
    const template = this.stmt;
    const generated = this.table.generatedColumns ?? [];
    return {
      kind: 'evaluate-insert',
      evaluationSql,
      rebuild(allFields, allRows) {
        let fields = allFields;
        let rows = allRows;
        let rowHashes: Array<number | null> | null = null;
        if (hashed) {
          fields = allFields.slice(0, -1);
          rowHashes = allRows.map((r) => (r[r.length - 1] === null ? null : Number(r[r.length - 1])));
          rows = allRows.map((r) => r.slice(0, -1));
        }
        if (!fields.includes(keyColumn)) throw new PgError({ code: '23502', message: 'cannot perform an INSERT without a partition column value' });
        // Generated columns take no value: the shard computes them from the row it stores.
        const kept = fields.map((f, i) => (generated.includes(f) ? -1 : i)).filter((i) => i >= 0);
        if (kept.length < fields.length) {
          fields = kept.map((i) => fields[i]!);
          rows = rows.map((r) => kept.map((i) => r[i] ?? null));
        }
        const copy = structuredClone(template);
        copy.cols = fields.map((name) => ({ ResTarget: { name } }));
        copy.selectStmt = {
          SelectStmt: {
            valuesLists: rows.map((r) => ({ List: { items: r.map((v) => (v === null ? { A_Const: { isnull: true } } : { A_Const: { sval: { sval: v } } })) } })),
            limitOption: 'LIMIT_OPTION_DEFAULT',
            op: 'SETOP_NONE',
          },
        };
        return { sql: deparseSql({ InsertStmt: copy }), rowHashes };
      },
    };
  }

  get needsParams(): boolean {
    return !this.evaluate && this.timeCalls.length === 0 && this.rowKeys.some((k) => 'param' in k);
  }

  /**
   * The evaluation route, with `atTransactionTime`: the INSERT routed with
   * the coordinator's transaction timestamp in place of its time calls.
   */
  private timedRoute(): Route {
    const evaluation = this.evaluationRoute();
    if (evaluation.kind !== 'evaluate-insert') return evaluation;
    return {
      ...evaluation,
      atTransactionTime: (params, time, paramNumber) => {
        if (paramNumber !== null && paramNumber <= this.maxParam) return null;
        const r = this.routeRows(params, null, { time, paramNumber });
        return r instanceof NotRoutable || (r.kind !== 'router' && r.kind !== 'error') ? null : r;
      },
    };
  }

  /**
   * `rowHashes`: PostgreSQL's hash of each row's distribution value, when an
   * evaluation computed them (used for the values the TypeScript hash declines).
   */
  route(params: ParamValues, rowHashes: ReadonlyArray<number | null> | null = null): Route | NotRoutable {
    // The evaluation statement does not depend on the parameters: deparsed once per plan.
    if (this.evaluate) return (this.evaluation ??= this.evaluationRoute());
    if (this.timeCalls.length > 0) return (this.timedEvaluation ??= this.timedRoute());
    return this.routeRows(params, rowHashes, null);
  }

  /** Routes the rows by their distribution values; `timed`: the time calls' value (see atTransactionTime). */
  private routeRows(params: ParamValues, rowHashes: ReadonlyArray<number | null> | null, timed: { time: string; paramNumber: number | null } | null): Route | NotRoutable {
    const shardOfRow: number[] = new Array(this.rowKeys.length);
    let single = -1;
    let multi = false;
    for (let i = 0; i < this.rowKeys.length; i++) {
      const k = this.rowKeys[i];
      const text = 'param' in k ? (params ? params[k.param - 1] : undefined) : k.text;
      if (text === undefined) return new NotRoutable('parameter values are not known yet');
      if (text === null) return { kind: 'error', error: new PgError({ code: '23502', message: 'cannot perform an INSERT with NULL in the partition column' }) };
      let hash: number;
      try {
        hash = hashDistributionValue(this.table.distributionColumnSqlType ?? this.table.distributionColumnType!, text);
      } catch (err) {
        if (!(err instanceof UnsupportedHashInputError)) {
          return { kind: 'error', error: new PgError({ code: '22P02', message: `invalid input for the distribution column "${this.table.distributionColumn}": ${(err as Error).message}` }) };
        }
        const known = rowHashes?.[i];
        // PostgreSQL decides: it rejects invalid input with its own error, or hashes the value.
        if (known === undefined || known === null) return (this.evaluation ??= this.evaluationRoute());
        hash = known;
      }
      const index = findShardIndexIn(this.table.shards, hash);
      shardOfRow[i] = index;
      if (single === -1) single = index;
      else if (single !== index) multi = true;
    }
    if (!multi && timed) {
      const shard = this.table.shards[single];
      const origin = this.timedText(single, timed.time, timed.paramNumber);
      const task = { node: shard.placements[0].node, sql: origin.sql, shardIds: [shard.shardId], origin };
      const appendParams = timed.paramNumber === null ? undefined : [timed.time];
      return { kind: 'router', isWrite: true, planner: 'fast-path', task, appendParams };
    }
    // Rows of several shards with time calls: the evaluation computes them (rebuilt as constants).
    if (timed) return new NotRoutable('transaction-time functions in an INSERT whose rows go to several shards');
    if (!multi) {
      const shard = this.table.shards[single];
      let origin = this.textByShardIndex.get(single);
      if (origin === undefined) {
        origin = spliceShardText(this.text, [{ ref: this.target.ref, schema: this.table.schema, shardName: shard.shardName, edits: this.constraintEdits(shard.shardId, 0) }]);
        this.textByShardIndex.set(single, origin);
      }
      return { kind: 'router', isWrite: true, planner: 'fast-path', task: { node: shard.placements[0].node, sql: origin.sql, shardIds: [shard.shardId], origin } };
    }
    const tasks: Task[] = [];
    const byShard = new Map<number, Node[]>();
    const positions = new Map<number, number[]>();
    const returning = ((this.stmt.returningList ?? []) as Node[]).length > 0;
    const ordinal = returning && this.keyType !== null;
    shardOfRow.forEach((s, i) => {
      const list = byShard.get(s) ?? [];
      list.push(ordinal ? withRowOrdinal(this.rows[i], this.keyIndex, i, this.keyType!) : this.rows[i]);
      byShard.set(s, list);
      const at = positions.get(s) ?? [];
      at.push(i);
      positions.set(s, at);
    });
    for (const [index, rows] of byShard) {
      const shard = this.table.shards[index];
      const copy = structuredClone(this.stmt);
      copy.relation.relname = shard.shardName;
      copy.relation.schemaname = this.table.schema;
      if (!copy.relation.alias) {
        copy.relation.alias = { aliasname: this.target.ref.name };
        unqualifyColumns(copy, this.table.schema, this.target.ref.name);
      }
      copy.selectStmt.SelectStmt.valuesLists = ordinal ? rows : structuredClone(rows);
      if (ordinal) copy.returningList = [...copy.returningList, structuredClone(ordinalTemplate().target)];
      if (this.constraint) copy.onConflictClause.infer.conname = shardName(this.constraint.name, shard.shardId);
      // Each shard gets only some rows, so parameter numbers no longer match
      // one Bind: the values are written into the statement as literals.
      if (params) inlineParams(copy, params);
      tasks.push({ node: shard.placements[0].node, sql: deparseSql({ InsertStmt: copy }), shardIds: [shard.shardId] });
    }
    const rowOrder = returning && !ordinal ? [...positions.values()] : undefined;
    return { kind: 'multi-shard', tasks, isWrite: true, commandTag: 'INSERT', paramsInlined: params !== null, rowOrder, ordinal: ordinal || undefined, errorInTaskOrder: true };
  }

  /** The ON CONSTRAINT name of shard `shardId` in place of the client's (its span moved by `shift` bytes). */
  private constraintEdits(shardId: number, shift: number): TextEdit[] | undefined {
    if (!this.constraint) return undefined;
    return [{ at: this.constraint.at + shift, len: this.constraint.len, sql: quoteIdent(shardName(this.constraint.name, shardId)) }];
  }

  /**
   * The text for one shard with the time calls replaced by the timestamp:
   * `$paramNumber` (cached per shard), or the literal `time`.
   */
  private timedText(shardIndex: number, time: string, paramNumber: number | null): SplicedText {
    const cached = paramNumber === null ? undefined : this.timedTextByShardIndex.get(shardIndex);
    if (cached !== undefined) return cached;
    const value = paramNumber === null ? `${quoteLiteral(time)}::pg_catalog.timestamptz` : `$${paramNumber}::pg_catalog.timestamptz`;
    const text = spliceTimeCalls(this.text, this.timeCalls, value);
    // The relation's location moves by what the calls before it gained or lost (a CTE's now()).
    let shift = 0;
    for (const c of this.timeCalls) if (c.end <= this.target.ref.location) shift += Buffer.byteLength(timeCallSql(c, value)) - (c.end - c.start);
    const ref = { ...this.target.ref, location: this.target.ref.location + shift };
    let constraintShift = 0;
    if (this.constraint) for (const c of this.timeCalls) if (c.end <= this.constraint.at) constraintShift += Buffer.byteLength(timeCallSql(c, value)) - (c.end - c.start);
    const shard = this.table.shards[shardIndex];
    const spliced = spliceShardText(text, [{ ref, schema: this.table.schema, shardName: shard.shardName, edits: this.constraintEdits(shard.shardId, constraintShift) }]);
    if (paramNumber !== null) this.timedTextByShardIndex.set(shardIndex, spliced);
    return spliced;
  }
}

/**
 * The VALUES position of each row a multi-shard INSERT … RETURNING returns.
 * A shard returns its rows in the order of its VALUES rows, but ON CONFLICT
 * DO NOTHING, DO UPDATE … WHERE and BEFORE triggers skip rows, and which ones
 * only the shard knows. So each row's distribution value (evaluated when
 * its row is fetched, just before the row is inserted and its RETURNING
 * computed: ModifyTable takes one row at a time from the VALUES scan) also
 * sets a transaction-local setting to the row's position, and RETURNING
 * reads it back as one more column, which the session strips and sorts by
 * (session/multi-shard-run.ts). The distribution value stays what it was:
 * `CASE WHEN set_config(…) IS NULL THEN NULL::<type> ELSE <value> END` — an
 * untyped literal resolves against the typed NULL to the column's base type
 * (the column's modifiers then apply on assignment, as for the literal
 * itself), a typed value keeps its type against an untyped NULL.
 */
const ORDINAL_SETTING = 'pgweave.values_row';
/** `valueSql` that also sets the row's position to `ordinalSql` (text) as its row is fetched. */
export function ordinalValueSql(valueSql: string, ordinalSql: string): string {
  return `CASE WHEN pg_catalog.set_config('${ORDINAL_SETTING}', ${ordinalSql}, true) IS NULL THEN NULL ELSE ${valueSql} END`;
}
/** The RETURNING column that reads the position back (the last column: session strips it, executor/link-query.ts `byOrdinal`). */
export const ORDINAL_RETURNING_SQL = `pg_catalog.current_setting('${ORDINAL_SETTING}') AS pgweave_values_row`;
const ORDINAL_SQL = `SELECT ${ordinalValueSql('NULL', "'0'")}, ${ORDINAL_RETURNING_SQL}`;
/** The CASE and the RETURNING target, parsed once (the parser loads before any plan is made). */
let ordinalNodes: { caseExpr: Node; target: Node } | null = null;
function ordinalTemplate(): { caseExpr: Node; target: Node } {
  if (!ordinalNodes) {
    const list = parseSql(ORDINAL_SQL).stmts[0].stmt.SelectStmt.targetList as Node[];
    ordinalNodes = { caseExpr: list[0].ResTarget.val, target: list[1] };
  }
  return ordinalNodes;
}
/** Types of the TypeScript hash living in pg_catalog (citext may live anywhere: no ordinal, rows in shard order when some are skipped). */
const ORDINAL_KEY_TYPES = new Set(['int2', 'int4', 'int8', 'oid', 'bool', 'char', 'text', 'name', 'varchar', 'bpchar', 'uuid', 'numeric', 'date', 'timestamp', 'timestamptz']);

function ordinalKeyType(type: string | null): string | null {
  return type !== null && ORDINAL_KEY_TYPES.has(type) ? type : null;
}

/** A copy of VALUES row `row` whose distribution value (item `keyIndex`) also records the row's position `at`. */
function withRowOrdinal(row: Node, keyIndex: number, at: number, keyType: string): Node {
  const copy = structuredClone(row);
  const items = copy.List.items as Node[];
  const value = items[keyIndex]!;
  const expr = structuredClone(ordinalTemplate().caseExpr);
  expr.CaseExpr.args[0].CaseWhen.expr.NullTest.arg.FuncCall.args[1] = { A_Const: { sval: { sval: String(at) } } };
  const untyped = value.ParamRef !== undefined || value.A_Const?.sval !== undefined;
  const typedNull = { TypeCast: { arg: { A_Const: { isnull: true } }, typeName: { names: [{ String: { sval: 'pg_catalog' } }, { String: { sval: keyType } }], typemod: -1 } } };
  expr.CaseExpr.args[0].CaseWhen.result = untyped ? typedNull : { A_Const: { isnull: true } };
  expr.CaseExpr.defresult = value;
  items[keyIndex] = expr;
  return copy;
}

/**
 * The evaluation INSERT … RETURNING as a statement whose rows leave as exact
 * text whatever the session's extra_float_digits (sql/exact-floats.ts): the
 * values are read as text and spliced into the shard's INSERT. The session
 * runs the evaluation in a transaction or savepoint that it rolls back,
 * which restores the session's setting. The client's own WITH clause moves
 * to the top (a data-modifying CTE must stay at the top level).
 */
function exactOutputSql(insert: Node): string {
  const stmt = structuredClone(parseSql(exactFloatsQuery('pgweave_evaluated', 'INSERT INTO x VALUES (1) RETURNING *', true)).stmts[0].stmt);
  const select = stmt.SelectStmt;
  const own = select.withClause.ctes[0].CommonTableExpr;
  const clientWith = insert.withClause;
  delete insert.withClause;
  own.ctequery = { InsertStmt: insert };
  if (clientWith) {
    select.withClause.ctes = [...clientWith.ctes, ...select.withClause.ctes];
    if (clientWith.recursive) select.withClause.recursive = true;
  }
  return deparseSql(stmt);
}

/**
 * Replaces every $n by the text of its value (an untyped literal, as a
 * text-format parameter is; NULL as NULL), in place.
 */
function inlineParams(tree: Node, params: ReadonlyArray<string | null>): void {
  walkTree(tree, (o, key, parent) => {
    if (!o.ParamRef || parent === null) return;
    parent[key!] = literal(params[o.ParamRef.number - 1]);
    return SKIP;
  });
}

/**
 * Cuts column references qualified by the target's schema (`app.t.c`, in ON
 * CONFLICT or RETURNING) to `t.c`, in place: the shard carries `t` as its
 * alias, which the schema-qualified form would not resolve against.
 */
function unqualifyColumns(tree: Node, schema: string, name: string): void {
  walkTree(tree, (o) => {
    const fields = o.ColumnRef?.fields as Node[] | undefined;
    if (fields && fields.length >= 3 && fields[fields.length - 2]?.String?.sval === name && fields[fields.length - 3]?.String?.sval === schema) {
      o.ColumnRef.fields = fields.slice(-2);
    }
  });
}

function literal(v: string | null | undefined): Node {
  if (v === undefined) throw new PgError({ code: '0A000', message: 'binary-format parameters are not supported in an INSERT whose rows go to several shards' });
  return v === null ? { A_Const: { isnull: true } } : { A_Const: { sval: { sval: v } } };
}

/**
 * A value the shard can take as it is: a constant, a parameter, or a cast of
 * one; with `timeCalls`, also a transaction-time call (spliced in at routing).
 */
function isPlainValue(v: Node, timeCalls = false): boolean {
  if (v?.A_Const || v?.ParamRef) return true;
  if (v?.TypeCast) return isPlainValue(v.TypeCast.arg, timeCalls);
  return timeCalls && isTransactionTimeCall(v);
}

/** The highest parameter number in `tree` (0: none). */
function maxParamNumber(tree: Node): number {
  let max = 0;
  walkTree(tree, (o) => {
    if (o.ParamRef) max = Math.max(max, o.ParamRef.number);
  });
  return max;
}
