/**
 * What the COPY routing engine (distributed-copy.ts) is given: the table and
 * its COPY options, the columns rows carry and those the coordinator computes,
 * how to hash the distribution value, and what it needs of the client's
 * session (RoutingAccess). Shared by the engine's stages (shard-streams.ts,
 * coordinator-values.ts) and its callers (copy-in.ts, insert-select.ts,
 * worker-repartition.ts).
 */
import type { BackendLink } from '../../executor/backend-link.js';
import type { DistributedTable, WorkerNode } from '../../metadata/types.js';
import type { DistributionValueHasher } from '../../sql/hash.js';
import type { CopyOptions } from './copy-options.js';
import type { BinaryHasher } from './binary-values.js';
import type { CopyCounters } from './copy-progress.js';

/** What the engine needs of the client's session. */
export interface RoutingAccess {
  runAsClient(sql: string, params?: ReadonlyArray<string | null>): Promise<{ fields: string[]; rows: Array<Array<string | null>>; command: string }>;
  inTransactionBlock: boolean;
  linkFor(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
  commitMultiNode(written: BackendLink[], readOnly: BackendLink[]): Promise<void>;
}

/** A column whose value the coordinator computes per row (a sequence, or the distribution column's default). */
export interface EvaluatedColumn {
  name: string;
  /** SQL computing the value (cast to the column type). */
  expression: string;
  /** Binary COPY: the column type's send function, for the binary form. */
  sendFunction: string | null;
}

export interface RouterConfig {
  table: DistributedTable;
  opts: CopyOptions;
  /** Columns the incoming rows carry, in order. */
  columns: string[];
  /** Columns the coordinator appends to every row. */
  evaluated: EvaluatedColumn[];
  /** Index of the distribution column among columns + evaluated (-1 for reference tables). */
  distIndex: number;
  textHasher: DistributionValueHasher | null;
  binaryHasher: BinaryHasher | null;
  /** ` WHERE …` for the shards' COPYs, or ''. */
  whereSql: string;
  /** Line numbers count the header. */
  skipHeader: boolean;
  headerMatch: boolean;
  /**
   * Instead of COPY, each batch runs this statement for shard i with the
   * batch's column values as text[] parameters ($1 … $n, one per column):
   * INSERT … ON CONFLICT / RETURNING. Text format rows only.
   */
  insertSqlFor?: (shardIndex: number) => string;
  /** Line numbers in errors (COPY) or not (INSERT … SELECT). */
  reportLines: boolean;
  /**
   * Text rows carry one more, last field: the distribution column's hash,
   * computed by the coordinator PostgreSQL. It decides the shard and is cut
   * off before the row is forwarded.
   */
  hashColumn?: boolean;
  /** Counters read by the progress view (copy-progress.ts); incremented here, written elsewhere. */
  progress?: CopyCounters | null;
}

/** PostgreSQL's CONTEXT line for a COPY row (`COPY t, line n…`), when the caller reports lines. */
export function copyWhere(c: RouterConfig, line: number, more = ''): string | undefined {
  return c.reportLines ? `COPY ${c.table.name}, line ${line}${more}` : undefined;
}
