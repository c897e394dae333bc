/**
 * Walks libpg-query's JSON parse trees. A tree is plain objects and arrays;
 * every object in it (the `{ SelectStmt: … }` wrapper and the statement body
 * alike) is a node a visitor sees, arrays are gone through transparently, and
 * strings, numbers and booleans are leaves nobody visits. Pre-order, in key
 * order, one recursion without closures or arrays built per node: planning
 * walks trees many times.
 */
import type { Node } from './parse.js';

/** Returned by a visitor: do not descend into this node's children (its siblings are still visited). */
export const SKIP = 1;
/** Returned by a visitor: end the whole walk now (`walkTree` then returns true). */
export const STOP = 2;

/**
 * Called for every object of a tree with where it sits: `parent[key]` is the
 * node (an array's index for an array element; null for the root), so a
 * visitor may replace it there — returning SKIP, as the walk does not go
 * into the replacement.
 */
export type TreeVisitor = (node: Node, key: string | number | null, parent: Node | null) => typeof SKIP | typeof STOP | void;

/** Visits every object of `tree` (pre-order); returns whether a visitor returned STOP. */
export function walkTree(tree: Node, visit: TreeVisitor): boolean {
  return walkValue(tree, null, null, visit);
}

function walkValue(v: Node, key: string | number | null, parent: Node | null, visit: TreeVisitor): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (walkValue(v[i], i, v, visit)) return true;
    return false;
  }
  const r = visit(v, key, parent);
  if (r === STOP) return true;
  if (r === SKIP) return false;
  for (const k in v) {
    const c = v[k];
    if (c !== null && typeof c === 'object' && walkValue(c, k, v, visit)) return true;
  }
  return false;
}

/** Whether any object of `tree` satisfies `pred` (pre-order; stops at the first). */
export function someNode(tree: Node, pred: (node: Node) => boolean): boolean {
  return walkTree(tree, (n) => (pred(n) ? STOP : undefined));
}
