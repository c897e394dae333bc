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
 * `GROUP BY DISTINCT` loses its DISTINCT, which keeps duplicate grouping
 * sets (`GROUP BY DISTINCT ROLLUP (a), ROLLUP (a)` returns rows twice): a
 * SELECT with it is deparsed with a marker for its GROUP BY items, which
 * then becomes `DISTINCT` and the items.
 */
import { Deparser } from 'pgsql-deparser';
import type { Node } from './parse.js';

type Context = Parameters<Deparser['visit']>[1];

/** Stands for a SELECT's GROUP BY items while the deparser writes the rest (`GROUP BY DISTINCT`). */
const GROUP_DISTINCT_MARKER = 'pgweave_group_distinct_items';

class FixedDeparser extends Deparser {
  override SelectStmt(node: Node, context: Context): string {
    if (node.groupDistinct && Array.isArray(node.groupClause) && node.groupClause.length > 0) {
      const rest = this.SelectStmt({ ...node, groupDistinct: false, groupClause: [{ ColumnRef: { fields: [{ String: { sval: GROUP_DISTINCT_MARKER } }] } }] }, context);
      const items = (node.groupClause as Node[]).map((g) => this.visit(g, context)).join(', ');
      return rest.replace(GROUP_DISTINCT_MARKER, `DISTINCT ${items}`);
    }
    if (node.limitOption !== 'LIMIT_OPTION_WITH_TIES' || !node.limitCount) return super.SelectStmt(node, context!);
    const head = super.SelectStmt({ ...node, limitCount: undefined, limitOffset: undefined, lockingClause: undefined, limitOption: 'LIMIT_OPTION_DEFAULT' }, context!);
    const out = [head];
    if (node.limitOffset) out.push(`OFFSET (${this.visit(node.limitOffset, context)})`);
    out.push(`FETCH FIRST (${this.visit(node.limitCount, context)}) ROWS WITH TIES`);
    if (node.lockingClause) out.push(((node.lockingClause as Node[]) ?? []).map((c) => this.visit(c, context)).join(' '));
    return out.join(' ');
  }
}

/** SQL for a node (a statement such as `{ SelectStmt: … }`, or an expression), on one line unless `pretty`. */
export function deparseSql(node: Node, opts: { pretty?: boolean } = {}): string {
  return new FixedDeparser(node, { pretty: opts.pretty ?? false }).deparseQuery();
}
