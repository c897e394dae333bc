/**
 * Distribution-key restrictions: which values a statement pins each
 * distributed relation's distribution column to.
 *
 * Every top-level AND conjunct of every WHERE clause and JOIN ... ON (and
 * each JOIN ... USING) contributes equalities; columns joined by `=` fall
 * into one equivalence class (union–find), so `o.tenant_id = 5 AND
 * o.tenant_id = i.tenant_id` pins both tables. A class holding a constant or
 * a parameter pins every relation in it. OR, NOT and anything else simply
 * contributes nothing: the router then declines and a broader planner runs.
 */
import type { Node } from '../sql/parse.js';
import type { RelationRef } from './relations.js';

export type PinnedValue = { text: string } | { param: number };

class UnionFind {
  private readonly parent = new Map<string, string>();
  find(x: string): string {
    let root = x;
    for (;;) {
      const p = this.parent.get(root);
      if (p === undefined) {
        this.parent.set(root, root);
        break;
      }
      if (p === root) break;
      root = p;
    }
    // path compression
    while (x !== root) {
      const next: string = this.parent.get(x)!;
      this.parent.set(x, root);
      x = next;
    }
    return root;
  }
  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(ra, rb);
  }
}

/** The constant text of a literal (optionally cast), or null when it is not one. */
export function constantText(n: Node): string | null {
  if (!n) return null;
  if (n.A_Const) {
    const c = n.A_Const;
    if (c.isnull) return null;
    if (c.ival !== undefined) return String(c.ival.ival ?? 0);
    if (c.fval !== undefined) return String(c.fval.fval);
    if (c.sval !== undefined) return String(c.sval.sval ?? '');
    if (c.boolval !== undefined) return c.boolval.boolval ? 'true' : 'false';
    return null;
  }
  if (n.TypeCast) return constantText(n.TypeCast.arg);
  return null;
}

function valueOf(n: Node): PinnedValue | null {
  if (n?.ParamRef) return { param: n.ParamRef.number };
  if (n?.TypeCast?.arg?.ParamRef) return { param: n.TypeCast.arg.ParamRef.number };
  const t = constantText(n);
  return t === null ? null : { text: t };
}

function columnKey(n: Node): string | null {
  const fields = n?.ColumnRef?.fields as Node[] | undefined;
  if (!fields || fields.some((f) => !f.String)) return null;
  const names = fields.map((f) => f.String.sval as string);
  if (names.length === 1) return '?.' + names[0];
  return names[names.length - 2] + '.' + names[names.length - 1];
}

function conjuncts(n: Node, out: Node[]): void {
  if (!n) return;
  if (n.BoolExpr?.boolop === 'AND_EXPR') {
    for (const a of n.BoolExpr.args) conjuncts(a, out);
  } else {
    out.push(n);
  }
}

function isEquals(e: Node): boolean {
  const name = e.name as Node[] | undefined;
  return e.kind === 'AEXPR_OP' && name?.length === 1 && name[0].String?.sval === '=';
}

/** Relation refs (by refName) found under a join tree node. */
function refNamesUnder(n: Node, out: string[]): void {
  if (!n || typeof n !== 'object') return;
  if (Array.isArray(n)) {
    for (const x of n) refNamesUnder(x, out);
    return;
  }
  if (n.RangeVar) out.push(n.RangeVar.alias?.aliasname ?? n.RangeVar.relname);
  if (n.JoinExpr) {
    refNamesUnder(n.JoinExpr.larg, out);
    refNamesUnder(n.JoinExpr.rarg, out);
  }
}

export class Restrictions {
  private readonly uf = new UnionFind();
  private readonly values = new Map<string, PinnedValue[]>();

  /** Collects restrictions from the whole statement tree. */
  constructor(stmt: Node, relations: RelationRef[], distColumnOf: (r: RelationRef) => string | null) {
    const quals: Node[] = [];
    const visit = (o: Node): void => {
      if (o === null || typeof o !== 'object') return;
      if (Array.isArray(o)) {
        for (const x of o) visit(x);
        return;
      }
      if (o.whereClause) conjuncts(o.whereClause, quals);
      if (o.JoinExpr) {
        const j = o.JoinExpr;
        if (j.quals) conjuncts(j.quals, quals);
        if (j.usingClause) {
          const left: string[] = [];
          const right: string[] = [];
          refNamesUnder(j.larg, left);
          refNamesUnder(j.rarg, right);
          for (const u of j.usingClause as Node[]) {
            const col = u.String?.sval;
            if (!col) continue;
            for (const r of [...left, ...right]) this.uf.union('?.' + col, r + '.' + col);
          }
        }
      }
      for (const k in o) {
        const v = o[k];
        if (v !== null && typeof v === 'object') visit(v);
      }
    };
    visit(stmt);

    for (const q of quals) {
      const e = q.A_Expr;
      if (!e) continue;
      if (isEquals(e)) {
        const l = columnKey(e.lexpr);
        const r = columnKey(e.rexpr);
        if (l && r) this.uf.union(l, r);
        else if (l) this.addValue(l, valueOf(e.rexpr));
        else if (r) this.addValue(r, valueOf(e.lexpr));
      } else if (e.kind === 'AEXPR_IN' && e.name?.[0]?.String?.sval === '=') {
        const l = columnKey(e.lexpr);
        const items = (e.rexpr?.List?.items ?? []) as Node[];
        if (l && items.length > 0) {
          const vs = items.map(valueOf);
          if (vs.every((v) => v !== null)) this.addValues(l, vs as PinnedValue[], true);
        }
      }
    }

    // An unqualified column belongs to the one relation whose distribution column has that name.
    const byColumn = new Map<string, RelationRef[]>();
    for (const rel of relations) {
      const col = distColumnOf(rel);
      if (!col) continue;
      const list = byColumn.get(col) ?? [];
      list.push(rel);
      byColumn.set(col, list);
    }
    for (const [col, rels] of byColumn) {
      if (rels.length === 1 || new Set(rels.map((r) => r.refName)).size === 1) {
        this.uf.union('?.' + col, rels[0].refName + '.' + col);
      }
    }
  }

  private inLists = new Set<string>();

  private addValue(key: string, v: PinnedValue | null): void {
    if (v) this.addValues(key, [v], false);
  }

  private addValues(key: string, vs: PinnedValue[], fromIn: boolean): void {
    const list = this.values.get(key) ?? [];
    list.push(...vs);
    this.values.set(key, list);
    if (fromIn && vs.length > 1) this.inLists.add(key);
  }

  /** True when the two columns are equated, directly or through others. */
  sameClass(refA: string, colA: string, refB: string, colB: string): boolean {
    return this.uf.find(refA + '.' + colA) === this.uf.find(refB + '.' + colB);
  }

  /**
   * The values pinning `refName.column`: one entry per value of its class
   * (several when an IN list applies). Null when the column is not pinned.
   */
  pinnedValues(refName: string, column: string): PinnedValue[] | null {
    const root = this.uf.find(refName + '.' + column);
    let out: PinnedValue[] | null = null;
    for (const [key, vs] of this.values) {
      if (this.uf.find(key) !== root) continue;
      // Several equalities in one class must all hold: any one of them pins the class.
      if (out === null || (this.inLists.has(key) === false && vs.length < out.length)) out = vs;
    }
    return out;
  }
}
