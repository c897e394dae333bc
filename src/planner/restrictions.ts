/**
 * Distribution-key restrictions: which values a statement pins each
 * distributed relation's distribution column to — scope by scope.
 *
 * Every query level (a SELECT, each arm of a set operation, each subquery
 * and CTE body, the target of UPDATE/DELETE) has its own equivalence classes
 * (union–find over `level|relation.column` keys), built from the top-level
 * AND conjuncts of its WHERE and of its inner JOIN … ON clauses, and its
 * JOIN … USING columns. Columns resolve as PostgreSQL resolves them: to the
 * nearest level that has a relation with that column. A level starts from a
 * copy of its parent's classes, so a value pinned outside flows into a
 * correlated subquery (`t2.k = t1.k` with `t1.k = 5` pins t2), but nothing
 * flows outward: a condition inside a subquery, NOT EXISTS or a scalar
 * subquery never pins an outer table. Outer-join ON clauses contribute
 * column equalities only, never constants (they do not filter the preserved
 * side). OR, NOT and anything else contribute nothing: the router then
 * declines and a broader planner runs.
 */
import type { Node } from '../sql/parse.js';
import { SKIP, walkTree } from '../sql/tree-walk.js';
import type { RelationRef } from './relations.js';

export type PinnedValue = { text: string } | { param: number };

class UnionFind {
  readonly parent: Map<string, string>;
  constructor(from?: UnionFind) {
    this.parent = new Map(from?.parent);
  }
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

class Level {
  readonly uf: UnionFind;
  readonly values: Map<string, PinnedValue[]>;
  readonly inLists: Set<string>;
  readonly rels: RelationRef[] = [];
  /** JOIN … USING columns of this level: an unqualified reference means the merged column. */
  readonly usingKeys = new Map<string, string>();
  constructor(
    readonly id: number,
    readonly parent: Level | null,
  ) {
    this.uf = new UnionFind(parent?.uf);
    this.values = new Map(parent ? [...parent.values].map(([k, v]) => [k, [...v]]) : []);
    this.inLists = new Set(parent?.inLists);
  }
  isWithin(other: Level): boolean {
    for (let l: Level | null = this; l; l = l.parent) if (l === other) return true;
    return false;
  }
}

export class Restrictions {
  private readonly levelOf = new Map<RelationRef, Level>();
  private levelCount = 0;

  /**
   * @param distColumnOf the distribution column of a relation (null when not distributed)
   * @param columnsOf all column names of a relation when known, to resolve unqualified columns
   */
  constructor(
    stmt: Node,
    private readonly relations: RelationRef[],
    private readonly distColumnOf: (r: RelationRef) => string | null,
    private readonly columnsOf: (r: RelationRef) => string[] | null | undefined = () => null,
  ) {
    this.analyze(stmt, null);
  }

  private relationFor(rangeVar: Node): RelationRef | undefined {
    return this.relations.find((r) => r.node === rangeVar);
  }

  private hasColumn(r: RelationRef, col: string): boolean {
    const cols = this.columnsOf(r);
    if (cols) return cols.includes(col);
    return this.distColumnOf(r) === col;
  }

  /** `level|ref.col` for a column reference, resolved to the nearest level defining it. */
  private resolve(n: Node, level: Level): string | null {
    const fields = n?.ColumnRef?.fields as Node[] | undefined;
    if (!fields || fields.some((f) => !f.String)) return null;
    const names = fields.map((f) => f.String.sval as string);
    const col = names[names.length - 1];
    for (let l: Level | null = level; l; l = l.parent) {
      if (names.length === 1) {
        const merged = l.usingKeys.get(col);
        if (merged) return merged;
        const owners = l.rels.filter((r) => this.hasColumn(r, col));
        if (owners.length > 1) return null; // ambiguous: PostgreSQL would refuse it
        if (owners.length === 1) return `${l.id}|${owners[0].refName}.${col}`;
      } else {
        const relName = names[names.length - 2];
        if (l.rels.some((r) => r.refName === relName)) return `${l.id}|${relName}.${col}`;
      }
    }
    return null;
  }

  private addValues(level: Level, key: string, vs: PinnedValue[], fromIn: boolean): void {
    const list = level.values.get(key) ?? [];
    list.push(...vs);
    level.values.set(key, list);
    if (fromIn && vs.length > 1) level.inLists.add(key);
  }

  private applyQual(q: Node, level: Level, constantsAllowed: boolean): void {
    const e = q.A_Expr;
    if (!e) return;
    if (isEquals(e)) {
      const l = this.resolve(e.lexpr, level);
      const r = this.resolve(e.rexpr, level);
      if (l && r) level.uf.union(l, r);
      else if (!constantsAllowed) return;
      else if (l) {
        const v = valueOf(e.rexpr);
        if (v) this.addValues(level, l, [v], false);
      } else if (r) {
        const v = valueOf(e.lexpr);
        if (v) this.addValues(level, r, [v], false);
      }
    } else if (constantsAllowed && e.kind === 'AEXPR_IN' && e.name?.[0]?.String?.sval === '=') {
      const l = this.resolve(e.lexpr, level);
      const items = (e.rexpr?.List?.items ?? []) as Node[];
      if (l && items.length > 0) {
        const vs = items.map(valueOf);
        if (vs.every((v) => v !== null)) this.addValues(level, l, vs as PinnedValue[], true);
      }
    }
  }

  /** Walks one query level (and, from it, the levels nested in it). */
  private analyze(node: Node, parent: Level | null): void {
    if (!node || typeof node !== 'object') return;
    const q = node.SelectStmt ?? node.UpdateStmt ?? node.DeleteStmt ?? node.InsertStmt ?? node;
    if (q.op && q.op !== 'SETOP_NONE') {
      for (const cte of (q.withClause?.ctes ?? []) as Node[]) this.analyze(cte.CommonTableExpr?.ctequery, parent);
      this.analyze(q.larg, parent);
      this.analyze(q.rarg, parent);
      return;
    }
    const level = new Level(++this.levelCount, parent);
    const quals: Array<{ qual: Node; constants: boolean }> = [];
    const nested: Node[] = [];
    const usings: Array<{ cols: string[]; left: RelationRef[]; right: RelationRef[] }> = [];

    const fromItem = (f: Node, into: RelationRef[]): void => {
      if (!f) return;
      if (f.RangeVar) {
        const rel = this.relationFor(f.RangeVar);
        if (rel) {
          level.rels.push(rel);
          into.push(rel);
          this.levelOf.set(rel, level);
        }
      } else if (f.JoinExpr) {
        const j = f.JoinExpr;
        const left: RelationRef[] = [];
        const right: RelationRef[] = [];
        fromItem(j.larg, left);
        fromItem(j.rarg, right);
        into.push(...left, ...right);
        const inner = !j.jointype || j.jointype === 'JOIN_INNER';
        const parts: Node[] = [];
        conjuncts(j.quals, parts);
        for (const p of parts) quals.push({ qual: p, constants: inner });
        if (j.usingClause) usings.push({ cols: (j.usingClause as Node[]).map((u) => u.String?.sval).filter(Boolean), left, right });
      } else if (f.RangeSubselect) {
        nested.push(f.RangeSubselect.subquery);
      } else {
        nested.push(f); // functions and the like: look for subqueries inside
      }
    };
    // UPDATE/DELETE/INSERT targets belong to this level.
    if (q.relation) {
      const rel = this.relationFor(q.relation);
      if (rel) {
        level.rels.push(rel);
        this.levelOf.set(rel, level);
      }
    }
    for (const f of (q.fromClause ?? []) as Node[]) fromItem(f, []);
    for (const f of (q.usingClause ?? []) as Node[]) fromItem(f, []);
    const where: Node[] = [];
    conjuncts(q.whereClause, where);
    for (const w of where) quals.push({ qual: w, constants: true });
    for (const u of usings) {
      for (const col of u.cols) {
        const keys = [...u.left, ...u.right].filter((r) => this.hasColumn(r, col)).map((r) => `${level.id}|${r.refName}.${col}`);
        for (let i = 1; i < keys.length; i++) level.uf.union(keys[0], keys[i]);
        if (keys.length > 0) level.usingKeys.set(col, keys[0]);
      }
    }
    for (const { qual, constants } of quals) this.applyQual(qual, level, constants);

    // Nested levels: CTE bodies, subqueries anywhere in this level's expressions.
    for (const cte of (q.withClause?.ctes ?? []) as Node[]) nested.push(cte.CommonTableExpr?.ctequery);
    const findNested = (o: Node): typeof SKIP | void => {
      if (!o.SubLink) return;
      nested.push(o.SubLink.subselect);
      walkTree(o.SubLink.testexpr, findNested);
      return SKIP;
    };
    for (const key of ['targetList', 'whereClause', 'havingClause', 'returningList', 'valuesLists', 'sortClause', 'groupClause']) walkTree(q[key], findNested);
    for (const f of (q.fromClause ?? []) as Node[]) if (f.JoinExpr) walkTree(f.JoinExpr.quals, findNested);
    if (q.selectStmt) nested.push(q.selectStmt);
    for (const n of nested) this.analyze(n, level);
  }

  private key(ref: RelationRef, column: string): { level: Level; key: string } | null {
    const level = this.levelOf.get(ref);
    return level ? { level, key: `${level.id}|${ref.refName}.${column}` } : null;
  }

  /** The values pinning a relation's column: several when an IN list applies; null when unpinned. */
  pinnedValuesOf(ref: RelationRef, column: string): PinnedValue[] | null {
    const k = this.key(ref, column);
    if (!k) return null;
    const { level } = k;
    const root = level.uf.find(k.key);
    let out: PinnedValue[] | null = null;
    for (const [key, vs] of level.values) {
      if (level.uf.find(key) !== root) continue;
      // Several equalities in one class must all hold: any one of them pins the class.
      if (out === null || (!level.inLists.has(key) && vs.length < out.length)) out = vs;
    }
    return out;
  }

  /** True when the two columns are equated, directly or through others, in a scope that sees both. */
  sameClassOf(a: RelationRef, colA: string, b: RelationRef, colB: string): boolean {
    const ka = this.key(a, colA);
    const kb = this.key(b, colB);
    if (!ka || !kb) return false;
    const inner = kb.level.isWithin(ka.level) ? kb.level : ka.level.isWithin(kb.level) ? ka.level : null;
    if (!inner) return false;
    return inner.uf.find(ka.key) === inner.uf.find(kb.key);
  }

  private byRefName(refName: string): RelationRef | undefined {
    // The outermost relation of that name: levels are numbered outside in.
    let best: RelationRef | undefined;
    for (const r of this.relations) {
      if (r.refName !== refName) continue;
      const l = this.levelOf.get(r);
      if (l && (!best || l.id < this.levelOf.get(best)!.id)) best = r;
    }
    return best;
  }

  /** By reference name (the outermost relation so named). */
  sameClass(refA: string, colA: string, refB: string, colB: string): boolean {
    const a = this.byRefName(refA);
    const b = this.byRefName(refB);
    return !!a && !!b && this.sameClassOf(a, colA, b, colB);
  }

  /** By reference name (the outermost relation so named). */
  pinnedValues(refName: string, column: string): PinnedValue[] | null {
    const r = this.byRefName(refName);
    return r ? this.pinnedValuesOf(r, column) : null;
  }
}
