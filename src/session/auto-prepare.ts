/**
 * Auto-prepared simple reads. A simple Query that reads one shard — pgbench
 * -S -M simple, an ORM that spells its values into the SQL — costs the
 * coordinator a parse and a plan of its text and the worker another parse
 * and plan, every time, because the text changes with every value. Here the
 * session turns the constants into parameters (sql/literal-params.ts): the
 * statement's shape is planned once, like an unnamed Parse of that text
 * (the session's plan cache), and runs on a pipelined channel as the
 * channel's prepared statement, bound to the values — the path of a
 * prepared Bind, with the reads' shared Syncs.
 *
 * What the client sees stays the simple protocol's: the ParseComplete and
 * BindComplete are the session's own and are not forwarded, the
 * RowDescription, rows and CommandComplete are the worker's, as for the
 * literal text. A constant becomes a parameter only where the parameter
 * resolves exactly as the constant would (`paramsAreComparedColumns`: one
 * side of a comparison with a column). Where the worker refuses the
 * prepared form at its Parse or Bind — a value that is not valid input for
 * the column's type, a column that does not exist — nothing has reached the
 * client, and the Query runs on the literal path, so the client gets
 * PostgreSQL's own error for its own text (with its position). Errors while
 * rows are produced come from the same plan either way and are forwarded.
 *
 * States of one Query: not eligible (a block, no constant, a shape known to
 * stay literal, not a one-shard read, no channel) → the literal path at
 * once; sent → answered (true) | refused at Parse/Bind → the literal path
 * (false). The pump waits for the answer, so a later message of the client
 * never overtakes the literal re-run.
 */
import { Completes, type Expectation } from '../executor/backend-link.js';
import type { ChannelTenant } from '../executor/pipelined-channel.js';
import type { Catalog } from '../metadata/types.js';
import type { Route } from '../planner/route.js';
import type { PgError } from '../protocol/errors.js';
import { parameterizeLiterals, paramsAreComparedColumns, type LiteralParams } from '../sql/literal-params.js';
import { parseSql } from '../sql/parse.js';
import { encodeTextBindRequest } from './extended-encoders.js';
import { channelStatement } from './lazy-prepare.js';
import { ExtendedProtocol } from './extended-protocol.js';
import { nextStatementId } from './prepared-statements.js';
import { E_DESCRIBE, E_EXECUTE, planCacheKey, type PlannedStatement } from './session-parts.js';

/** Counts since the process started, for tests and benchmarks: Queries answered auto-prepared, and ones sent so but run on the literal path after the worker refused them. */
export const autoPrepareStats = { answered: 0, refused: 0 };

/** Shapes remembered as staying literal, at most (then forgotten all at once). */
const MAX_LITERAL_SHAPES = 512;

export abstract class AutoPrepare extends ExtendedProtocol {
  /** Shapes (text with $n, parameter types) whose constants cannot all be parameters. */
  private readonly literalShapes = new Set<string>();

  /**
   * Runs the simple Query `sql` as an auto-prepared read when it is one:
   * null when it is not (nothing sent); else resolves true once answered,
   * false when it must run on the literal path after all (nothing reached
   * the client).
   */
  protected autoPrepared(sql: string): Promise<boolean> | null {
    if (this.statusByte() !== 0x49) return null;
    const lit = parameterizeLiterals(sql);
    if (lit === null) return null;
    const catalog = this.catalogNow();
    if (catalog === null || this.roleFunctionsLoad(catalog) !== null) return null;
    const key = planCacheKey(lit.text, lit.types);
    if (this.literalShapes.has(key)) return null;
    const stmt = this.cachedStatement(lit.text, lit.types, catalog) ?? this.planShape(lit, key, catalog);
    if (stmt === null) return null;
    let route: Route;
    try {
      route = stmt.plan.route(lit.values);
    } catch {
      return null;
    }
    if (route.kind !== 'router' || route.readsOnly !== true || route.appendParams) {
      // A comparison's parameters never make a shape's route one shard for some values and not others.
      this.rememberLiteral(key);
      return null;
    }
    const t = this.pipelineTenant(route.task.node, true);
    if (t === null) return null;
    return this.sendAutoPrepared(t, route, stmt, lit.values);
  }

  /** Plans a new shape, or remembers that it stays literal (null). */
  private planShape(lit: LiteralParams, key: string, catalog: Catalog): PlannedStatement | null {
    let stmt;
    try {
      const parsed = parseSql(lit.text).stmts;
      stmt = parsed.length === 1 && parsed[0].stmt.SelectStmt && paramsAreComparedColumns(parsed[0].stmt, lit.values.length) ? parsed[0].stmt : null;
    } catch {
      stmt = null;
    }
    const plan = stmt ? this.plan(stmt, lit.text, catalog) : null;
    if (plan === null) {
      this.rememberLiteral(key);
      return null;
    }
    const planned: PlannedStatement = { id: nextStatementId(), query: lit.text, plan, paramTypes: lit.types };
    this.rememberStatement(planned);
    return planned;
  }

  private rememberLiteral(key: string): void {
    if (this.literalShapes.size >= MAX_LITERAL_SHAPES) this.literalShapes.clear();
    this.literalShapes.add(key);
  }

  private async sendAutoPrepared(t: ChannelTenant, route: Extract<Route, { kind: 'router' }>, stmt: PlannedStatement, values: string[]): Promise<boolean> {
    if (this.needsSwitch(t)) {
      await this.switchTo(t);
      if (!this.stillAutocommit() || !t.channel.usable) return false;
    }
    this.active = t;
    return new Promise<boolean>((resolve) => {
      let literal = false;
      const ready: Expectation = {
        completes: Completes.Ready,
        forward: true,
        done: () => {
          if (literal) autoPrepareStats.refused++;
          else autoPrepareStats.answered++;
          resolve(!literal);
        },
      };
      // Refused before anything reached the client: the literal path answers instead. A lost connection is answered by the loss path.
      const refused = (err: PgError | null): void => {
        if (err === null || t.lost) return;
        literal = true;
        ready.forward = false;
      };
      const { name, parse } = channelStatement(t, route.task.sql, stmt, { forwardError: false, refused });
      const parts: Buffer[] = [];
      const expect: Expectation[] = [];
      if (parse) {
        parts.push(parse.bytes);
        expect.push(parse.expect);
      }
      parts.push(encodeTextBindRequest(name, values));
      expect.push({ completes: Completes.BindComplete, forward: false, done: refused }, E_DESCRIBE, E_EXECUTE, ready);
      t.sendRequest(parts, expect, !parse);
    });
  }
}
