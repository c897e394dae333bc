/**
 * Parse trees back to SQL text with pgsql-deparser (DESIGN.md decision 2),
 * with the clauses it gets wrong for queries written here.
 *
 * `FETCH FIRST n ROWS WITH TIES` comes out of the deparser as `LIMIT n`,
 * which returns fewer rows than PostgreSQL whenever the last row has ties;
 * a SELECT with WITH TIES is deparsed without its LIMIT/OFFSET and gets
 * `OFFSET (o) FETCH FIRST (n) ROWS WITH TIES` (PostgreSQL's grammar allows
 * the offset before the fetch) in front of its locking clause.
 *
 * `GROUP BY DISTINCT` (groupDistinct) comes out as plain `GROUP BY`, which
 * keeps the duplicate grouping sets that several ROLLUP/CUBE items expand
 * to: the first grouping item is written with `DISTINCT` in front.
 *
 * Window frames are written from PostgreSQL's FRAMEOPTION_* bits
 * (parsenodes.h); pgsql-deparser reads some of them at the wrong positions
 * (`ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING` came out as
 * `… AND CURRENT ROW`, `GROUPS BETWEEN 1 PRECEDING …` as `1 FOLLOWING`).
 *
 * A subscript or field of an expression that is not a plain column keeps
 * the expression in parentheses (`(ARRAY[…])[i]`; `ARRAY[…][i]` is a syntax
 * error); a recursive CTE keeps its SEARCH and CYCLE clauses; an INSERT
 * keeps OVERRIDING SYSTEM/USER VALUE. CTE and window names are quoted
 * (`WITH "Ab"` came out as `WITH Ab`, another name), and a window that
 * refers to another (`OVER (w)`, `OVER (w ORDER BY x)`) keeps the reference.
 */
import { Deparser } from 'pgsql-deparser';
import type { Node } from './parse.js';
import { quoteIdent } from './quote.js';

type Context = Parameters<Deparser['visit']>[1];

/** PostgreSQL's FRAMEOPTION_* bits of a window frame (src/include/nodes/parsenodes.h). */
const FRAME = {
  NONDEFAULT: 0x1,
  RANGE: 0x2,
  ROWS: 0x4,
  BETWEEN: 0x10,
  START_UNBOUNDED_PRECEDING: 0x20,
  END_UNBOUNDED_PRECEDING: 0x40,
  START_UNBOUNDED_FOLLOWING: 0x80,
  END_UNBOUNDED_FOLLOWING: 0x100,
  START_CURRENT_ROW: 0x200,
  END_CURRENT_ROW: 0x400,
  START_OFFSET_PRECEDING: 0x800,
  END_OFFSET_PRECEDING: 0x1000,
  EXCLUDE_CURRENT_ROW: 0x8000,
  EXCLUDE_GROUP: 0x10000,
  EXCLUDE_TIES: 0x20000,
} as const;
const START_BOUND = [FRAME.START_UNBOUNDED_PRECEDING, FRAME.START_UNBOUNDED_FOLLOWING, FRAME.START_CURRENT_ROW, FRAME.START_OFFSET_PRECEDING] as const;
const END_BOUND = [FRAME.END_UNBOUNDED_PRECEDING, FRAME.END_UNBOUNDED_FOLLOWING, FRAME.END_CURRENT_ROW, FRAME.END_OFFSET_PRECEDING] as const;

class FixedDeparser extends Deparser {
  override SelectStmt(node: Node, context: Context): string {
    if (node.groupDistinct && node.groupClause?.length) {
      const [first, ...rest] = node.groupClause as Node[];
      node = { ...node, groupDistinct: undefined, groupClause: [{ DistinctGroupingItem: { item: first } }, ...rest] };
    }
    if (node.limitOption !== 'LIMIT_OPTION_WITH_TIES' || !node.limitCount) return super.SelectStmt(node, context!);
    const head = super.SelectStmt({ ...node, limitCount: undefined, limitOffset: undefined, lockingClause: undefined, limitOption: 'LIMIT_OPTION_DEFAULT' }, context!);
    const out = [head];
    if (node.limitOffset) out.push(`OFFSET (${this.visit(node.limitOffset, context)})`);
    out.push(`FETCH FIRST (${this.visit(node.limitCount, context)}) ROWS WITH TIES`);
    if (node.lockingClause) out.push(((node.lockingClause as Node[]) ?? []).map((c) => this.visit(c, context)).join(' '));
    return out.join(' ');
  }

  override formatWindowFrame(node: Node, context: Context): string | null {
    const o = node.frameOptions as number | undefined;
    if (!o || !(o & FRAME.NONDEFAULT)) return null;
    const mode = o & FRAME.RANGE ? 'RANGE' : o & FRAME.ROWS ? 'ROWS' : 'GROUPS';
    const start = this.frameBound(o, START_BOUND, node.startOffset, context);
    const end = this.frameBound(o, END_BOUND, node.endOffset, context);
    const exclude =
      o & FRAME.EXCLUDE_CURRENT_ROW ? ' EXCLUDE CURRENT ROW' : o & FRAME.EXCLUDE_GROUP ? ' EXCLUDE GROUP' : o & FRAME.EXCLUDE_TIES ? ' EXCLUDE TIES' : '';
    return `${mode} ${o & FRAME.BETWEEN ? `BETWEEN ${start} AND ${end}` : start}${exclude}`;
  }

  /** A frame's start or end, read from that bound's flags (`offset FOLLOWING` where none of them is set). */
  private frameBound(o: number, flags: readonly [number, number, number, number], offset: Node, context: Context): string {
    const [unboundedPreceding, unboundedFollowing, currentRow, offsetPreceding] = flags;
    if (o & unboundedPreceding) return 'UNBOUNDED PRECEDING';
    if (o & unboundedFollowing) return 'UNBOUNDED FOLLOWING';
    if (o & currentRow) return 'CURRENT ROW';
    return `${this.visit(offset, context)} ${o & offsetPreceding ? 'PRECEDING' : 'FOLLOWING'}`;
  }

  override A_Indirection(node: Node, context: Context): string {
    if (node.arg?.ColumnRef || node.arg?.ParamRef) return super.A_Indirection(node, context!);
    return super.A_Indirection({ ...node, arg: { ParenthesizedExpr: { expr: node.arg } } }, context!);
  }

  /** An expression in parentheses (see A_Indirection). */
  ParenthesizedExpr(node: Node, context: Context): string {
    return `(${this.visit(node.expr, context)})`;
  }

  override CommonTableExpr(node: Node, context: Context): string {
    const out = [super.CommonTableExpr({ ...node, ctename: quoteIdent(node.ctename) }, context!)];
    const names = (list: Node[]) => list.map((c) => quoteIdent(c.String.sval)).join(', ');
    const search = node.search_clause;
    if (search) out.push(`SEARCH ${search.search_breadth_first ? 'BREADTH' : 'DEPTH'} FIRST BY ${names(search.search_col_list)} SET ${quoteIdent(search.search_seq_column)}`);
    const cycle = node.cycle_clause;
    if (cycle) {
      out.push(`CYCLE ${names(cycle.cycle_col_list)} SET ${quoteIdent(cycle.cycle_mark_column)}`);
      if (cycle.cycle_mark_value) out.push(`TO ${this.visit(cycle.cycle_mark_value, context)} DEFAULT ${this.visit(cycle.cycle_mark_default, context)}`);
      out.push(`USING ${quoteIdent(cycle.cycle_path_column)}`);
    }
    return out.join(' ');
  }

  override InsertStmt(node: Node, context: Context): string {
    if (!node.selectStmt || (node.override !== 'OVERRIDING_SYSTEM_VALUE' && node.override !== 'OVERRIDING_USER_VALUE')) return super.InsertStmt(node, context!);
    return super.InsertStmt({ ...node, selectStmt: { OverridingSource: { override: node.override, source: node.selectStmt } } }, context!);
  }

  /** An INSERT's source with its OVERRIDING clause (see InsertStmt). */
  OverridingSource(node: Node, context: Context): string {
    return `OVERRIDING ${node.override === 'OVERRIDING_SYSTEM_VALUE' ? 'SYSTEM' : 'USER'} VALUE ${this.visit(node.source, context)}`;
  }

  override WindowDef(node: Node, context: Context): string {
    const parts: string[] = [];
    if (node.refname) parts.push(quoteIdent(node.refname));
    const list = (l: Node) => ((l.List?.items ?? l) as Node[]).map((x) => this.visit(x, context)).join(', ');
    if (node.partitionClause) parts.push(`PARTITION BY ${list(node.partitionClause)}`);
    if (node.orderClause) parts.push(`ORDER BY ${list(node.orderClause)}`);
    const frame = this.formatWindowFrame(node, context);
    if (frame) parts.push(frame);
    return node.name ? `${quoteIdent(node.name)} AS (${parts.join(' ')})` : `(${parts.join(' ')})`;
  }

  override FuncCall(node: Node, context: Context): string {
    const over = node.over;
    if (!over) return super.FuncCall(node, context!);
    const call = super.FuncCall({ ...node, over: undefined }, context!);
    return `${call} OVER ${over.name ? quoteIdent(over.name) : this.WindowDef({ ...over, name: undefined }, context)}`;
  }

  /** The first item of a `GROUP BY DISTINCT` list (see SelectStmt); the deparser dispatches on the node's key. */
  DistinctGroupingItem(node: Node, context: Context): string {
    return `DISTINCT ${this.visit(node.item, context)}`;
  }
}

/** SQL for a node (a statement such as `{ SelectStmt: … }`, or an expression), on one line unless `pretty`. */
export function deparseSql(node: Node, opts: { pretty?: boolean } = {}): string {
  return new FixedDeparser(node, { pretty: opts.pretty ?? false }).deparseQuery();
}
