/**
 * What the streams code needs from the layer that calls it (the SQL
 * commands): the database, internal pools, the catalog, and a way to run SQL
 * on a worker AS THE CLIENT — in the client's own session and transaction
 * when the session lends its worker links, so `pgweave.publish()` inside
 * BEGIN … COMMIT commits or rolls back with the rest of the transaction
 * (DESIGN.md decision 9: client work runs as the client's role).
 */
import type { InternalPool } from '../pool/internal-pool.js';
import type { NodePools } from '../pool/node-pools.js';
import type { Catalog, NodeAddress, WorkerNode } from '../metadata/types.js';

export type Row = Array<string | null>;

export interface Rowset {
  fields: string[];
  rows: Row[];
  command: string;
}

export interface StreamAccess {
  database: string;
  /** The client's role. */
  user: string;
  /** The coordinator PostgreSQL (for LISTEN connections). */
  coordinatorAddress: NodeAddress;
  /** Database of the coordinator's own internal connections (two-phase-commit liveness). */
  internalDatabase: string;
  /** Internal-role pool on this database of the coordinator PostgreSQL. */
  coordinator: InternalPool;
  /** Internal-role pools on every node (maintenance, counters, dead-lettering). */
  pools: NodePools;
  catalog(): Promise<Catalog>;
  /**
   * Runs SQL on a worker as the client; joined to the client's transaction
   * block if there is one (`write` marks the node as written in it).
   */
  onNode(node: WorkerNode, sql: string, params?: ReadonlyArray<string | null>, write?: boolean): Promise<Rowset>;
  /**
   * Runs SQL on a worker as the client on a connection shared by the
   * client's role (autocommit, outside any session's transaction): what
   * publishes outside a transaction block use, so that publishes of many
   * sessions can commit together.
   */
  onNodeAutocommit?(node: WorkerNode, sql: string, params?: ReadonlyArray<string | null>): Promise<Rowset>;
  /** Whether the client is inside a transaction block (publishes then commit with it). */
  inTransactionBlock: boolean;
}

/** A PostgreSQL array literal of text values (NULLs allowed), for `$n::text[]` parameters. */
export function textArray(values: ReadonlyArray<string | null>): string {
  return '{' + values.map((v) => (v === null ? 'NULL' : '"' + v.replace(/["\\]/g, '\\$&') + '"')).join(',') + '}';
}

/** Runs `fn` for each group of items sharing a node: groups in parallel, items of one group in order. */
export async function perNode<T, R>(items: T[], nodeOf: (t: T) => WorkerNode, fn: (node: WorkerNode, items: T[]) => Promise<R[]>): Promise<R[]> {
  const groups = new Map<number, { node: WorkerNode; items: T[] }>();
  for (const item of items) {
    const node = nodeOf(item);
    const g = groups.get(node.nodeId) ?? { node, items: [] };
    g.items.push(item);
    groups.set(node.nodeId, g);
  }
  const settled = await Promise.allSettled([...groups.values()].map((g) => fn(g.node, g.items)));
  const out: R[] = [];
  for (const s of settled) {
    if (s.status === 'rejected') throw s.reason;
    out.push(...s.value);
  }
  return out;
}
