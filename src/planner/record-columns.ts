/**
 * Anonymous records in the output of a query whose rows are staged in a
 * temporary table (pushdown partial results, intermediate results): a table
 * cannot hold a column of type `record` (42P16 "has pseudo-type record").
 *
 * Two shapes are recognised from the parse tree alone: a row constructor
 * (`ROW(a, b)`, `(a, b)`, nested) and a whole-row reference to a FROM
 * subquery (`SELECT s FROM (SELECT a, b FROM t) s`). Their fields become
 * columns of their own (`splitRecord`), and the coordinator's query builds
 * `ROW(<the columns>)` again: the same field types, so the same record
 * value, text and ordering (record comparison is field by field). The
 * field names of a subquery's whole row are not kept, which only the
 * coordinator's final query could see, and it only outputs, orders and
 * de-duplicates these values (the client sees no field names: the column
 * is `record`, its text and binary forms carry the values only); functions
 * reading the names (row_to_json(s), to_jsonb(s), json_agg(s), (s).a) are
 * not split and run where the subquery's names are known. Other expressions of type record (functions
 * returning record, COALESCE of rows…) are found by the executor when the
 * table is created (session/partial-results.ts).
 */
import type { Node } from '../sql/parse.js';
import { outputNames } from './output-names.js';

/** A record expression split into fields: `leaves` are staged as columns, `build` makes the record of their column references. */
export interface RecordSplit {
  leaves: Node[];
  build(columns: Node[]): Node;
}

/** Output column names of each FROM subquery by alias (through joins); null when not all are known and distinct. */
function subqueryColumns(select: Node): Map<string, string[] | null> {
  const out = new Map<string, string[] | null>();
  const visit = (n: Node): void => {
    if (n?.JoinExpr) {
      visit(n.JoinExpr.larg);
      visit(n.JoinExpr.rarg);
      return;
    }
    const r = n?.RangeSubselect;
    if (!r?.alias?.aliasname) return;
    const names = outputNames(r.subquery?.SelectStmt, r.alias.colnames);
    const known = names !== null && names.length > 0 && names.every((x) => x !== null) && new Set(names).size === names.length;
    out.set(r.alias.aliasname, known ? (names as string[]) : null);
  };
  ((select.fromClause ?? []) as Node[]).forEach(visit);
  return out;
}

/** The FROM subquery a single-name column reference reads as a whole row (no input column has that name), or undefined. */
function wholeRowOf(n: Node, select: Node, inputColumn: (name: string) => boolean): string | undefined {
  const fields = (n?.ColumnRef?.fields ?? []) as Node[];
  if (fields.length !== 1 || !fields[0].String) return undefined;
  const name = fields[0].String.sval as string;
  if (inputColumn(name) || !subqueryColumns(select).has(name)) return undefined;
  return name;
}

/**
 * The fields of an anonymous record expression, or null when `n` is not a
 * row constructor or a whole-row reference to a FROM subquery whose
 * columns are known.
 */
export function splitRecord(n: Node, select: Node, inputColumn: (name: string) => boolean): RecordSplit | null {
  if (n?.RowExpr) {
    const parts = ((n.RowExpr.args ?? []) as Node[]).map((a) => splitRecord(a, select, inputColumn));
    const leaves: Node[] = [];
    ((n.RowExpr.args ?? []) as Node[]).forEach((a, i) => leaves.push(...(parts[i]?.leaves ?? [a])));
    return {
      leaves,
      build(columns) {
        let at = 0;
        const args = parts.map((p) => {
          if (!p) return columns[at++];
          const mine = columns.slice(at, at + p.leaves.length);
          at += p.leaves.length;
          return p.build(mine);
        });
        return { RowExpr: { args, row_format: 'COERCE_EXPLICIT_CALL' } };
      },
    };
  }
  const alias = wholeRowOf(n, select, inputColumn);
  const columns = alias === undefined ? null : subqueryColumns(select).get(alias);
  if (!columns) return null;
  return {
    leaves: columns.map((c) => ({ ColumnRef: { fields: [{ String: { sval: alias } }, { String: { sval: c } }] } })),
    build: (refs) => ({ RowExpr: { args: refs, row_format: 'COERCE_EXPLICIT_CALL' } }),
  };
}

/** Whether `n` is an anonymous record this module recognises (split or not): a table cannot hold it. */
export function isRecordExpression(n: Node, select: Node, inputColumn: (name: string) => boolean): boolean {
  return !!n?.RowExpr || wholeRowOf(n, select, inputColumn) !== undefined;
}

/** CREATE TABLE's refusal of a column of type record or record[] (42P16 "column … has pseudo-type record"). */
export function isRecordColumnError(err: { code: string; message: string }): boolean {
  return err.code === '42P16' && /pseudo-type record/.test(err.message);
}
