/**
 * The one value every planning path produces: where a statement runs and
 * with what text. The session executes Routes without knowing which planner
 * made them.
 */
import type { PgError } from '../protocol/errors.js';
import type { DistributedTable, WorkerNode } from '../metadata/types.js';
import type { InsertSelectPlan } from './insert-select-planner.js';
import type { DistributedExplain } from './explain.js';
import type { SplicedText } from '../sql/text-splice.js';

/** One statement for one node: shard names already spliced into the text. */
export interface Task {
  node: WorkerNode;
  sql: string;
  /** Shards the task reads or writes (for locks, 2PC participants and EXPLAIN). */
  shardIds: number[];
  /**
   * Where `sql` is the client's statement text with splices (shard names,
   * transaction-time values): how its positions map back to the client's text
   * (an error's position, session/error-positions.ts). Absent: `sql` is no
   * splice of the client's text (deparsed), and positions in it mean nothing to the client.
   */
  origin?: SplicedText;
}

export type TransactionVerb =
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollback_to'
  | 'prepare'
  | 'commit_prepared'
  | 'rollback_prepared';

export type Route =
  /**
   * Runs on the coordinator PostgreSQL unchanged: local tables, catalogs, everything else.
   * `watchRoles`: the statement may change roles inside a function (DO, CALL): the session
   * checks afterwards whether it did and makes the workers hold the same roles.
   */
  | { kind: 'local'; watchRoles?: boolean }
  /** A Citus-compatible function run by the coordinator itself. */
  | {
    kind: 'command'; name: string; positional: Array<ArgValue>; named: Map<string, ArgValue>; alias: string | null; columns?: Array<{ name: string; as: string }> | null;
    /**
     * The statement does more than list the function's rows (WHERE, ORDER BY, joins…): each call's rows
     * are loaded into its temporary table on the coordinator PostgreSQL, and `sql` (the statement with
     * the calls replaced by those tables) runs there. The route's own name/args are the first call's.
     */
    query?: { sql: string; calls: CommandQueryCall[] };
  }
  /** Transaction control, applied to every node the session has touched. */
  | { kind: 'transaction'; verb: TransactionVerb; statement: string }
  /**
   * All rows in one shard group: one task on one node (fast path or router).
   * `appendParams`: text values the task's SQL takes after the client's
   * parameters (an INSERT's transaction timestamp, insert-planner.ts).
   * `readsOnly`: a SELECT that changes nothing on the node (reads-only.ts),
   * which may share a transaction with other sessions' reads.
   */
  | { kind: 'router'; task: Task; isWrite: boolean; planner: 'fast-path' | 'router'; appendParams?: string[]; readsOnly?: boolean }
  /** Several tasks whose results concatenate (multi-shard UPDATE/DELETE, multi-row INSERT). */
  | {
      kind: 'multi-shard';
      tasks: Task[];
      isWrite: boolean;
      commandTag: string;
      paramsInlined?: boolean;
      /**
       * A multi-row INSERT … RETURNING: per task, the positions of its rows in
       * the client's VALUES list, so the returned rows are put back in that
       * order (PostgreSQL returns them in VALUES order).
       */
      rowOrder?: number[][];
      /**
       * A multi-row INSERT … RETURNING whose rows carry their position in the
       * client's VALUES list as one more, last column (insert-planner.ts
       * `withRowOrdinal`): the session strips it and returns the rows in that
       * order, also when ON CONFLICT or a trigger skipped some.
       */
      ordinal?: boolean;
      /**
       * A multi-row INSERT … VALUES, its tasks in the order of their first rows:
       * a failure answers with the first failing task's error, every task
       * answered (session/multi-shard-run.ts), as PostgreSQL reports the first
       * failing row's — not the first error to arrive.
       */
      errorInTaskOrder?: boolean;
    }
  /**
   * A utility statement (DDL, TRUNCATE, VACUUM, GRANT…) on distributed or
   * reference tables: applied to the coordinator's table and every shard.
   */
  | { kind: 'utility'; statement: string; stmt: unknown; tables: DistributedTable[] }
  /**
   * The rows of these tables are pulled into temporary tables on the
   * coordinator PostgreSQL, which then runs `sql` (the statement with the
   * temporary tables in place of the distributed ones).
   */
  | {
      kind: 'pull';
      pulls: PullTable[];
      sql: string;
      /** The splice `sql` was made as, while it is still that text (a pushdown's final query is deparsed): see `Task.origin`. */
      origin?: SplicedText;
      partial?: PartialResults;
      broadcast?: BroadcastChoice;
      repartition?: RepartitionChoice;
      intermediate?: IntermediatePlan;
    }
  /**
   * An INSERT whose values need the coordinator: defaults (sequences), DEFAULT,
   * function calls such as now(). The coordinator PostgreSQL computes the
   * complete rows (INSERT … RETURNING * into the coordinator's table, rolled
   * back), then `rebuild(rows)` gives the INSERT of constants that is routed —
   * so every shard sees the same values and no shard needs the sequence.
   */
  | {
      kind: 'evaluate-insert';
      evaluationSql: string;
      /**
       * The INSERT of the evaluated constants, and PostgreSQL's hash of each
       * row's distribution value (to route values the TypeScript hash declines).
       */
      rebuild(fields: string[], rows: Array<Array<string | null>>): { sql: string; rowHashes: Array<number | null> | null };
      /**
       * Present when the only values needing the coordinator are transaction-time
       * functions (now(), CURRENT_TIMESTAMP…, planner/transaction-time.ts): the
       * route with `time` (the coordinator's transaction timestamp, ISO 8601 with
       * its UTC offset) in their place — spliced as a literal, or, with
       * `paramNumber`, as that parameter (`appendParams`) after the client's.
       * Null: the INSERT needs the evaluation after all (rows in several shards,
       * a value the TypeScript hash declines, parameters the Bind does not match).
       */
      atTransactionTime?(params: ReadonlyArray<string | null> | null, time: string, paramNumber: number | null): Extract<Route, { kind: 'router' | 'error' }> | null;
    }
  /**
   * A statement about cluster-wide objects (roles, role memberships, schemas,
   * default privileges) that every node must apply.
   */
  | { kind: 'global-utility'; statement: string; stmt: unknown }
  /** COPY … FROM STDIN into a distributed or reference table: rows routed to shards as they stream. */
  | { kind: 'copy-in'; statement: string; stmt: unknown; table: DistributedTable }
  /**
   * COPY … TO STDOUT of a distributed or reference table: each shard's COPY
   * streamed to the client in turn (src/commands/copy/copy-out.ts).
   * Streamed from a simple Query and from Execute alike. With `query`: `COPY (SELECT …) TO STDOUT` of a
   * SELECT that concatenates — each shard group's `COPY (task SELECT) TO
   * STDOUT` streamed instead; `table` is then the table whose shards the
   * tasks follow (progress counts per shard of it).
   */
  | { kind: 'copy-out'; statement: string; stmt: unknown; table: DistributedTable; query?: CopyOutQuery }
  /** EXPLAIN of a statement on distributed tables: the distributed plan (explain.ts), run with the session's connections. */
  | { kind: 'explain'; explain: DistributedExplain }
  /**
   * INSERT … SELECT into a distributed or reference table (insert-select-planner.ts):
   * shard to shard, repartitioned through the coordinator, or computed on the
   * coordinator; run by src/commands/copy/insert-select.ts.
   */
  | { kind: 'insert-select'; plan: InsertSelectPlan }
  /** Cannot be planned: the reason reaches the client. */
  | { kind: 'error'; error: PgError };

/** A pull whose whole statement runs on the coordinator over pulled tables: nothing pushed down, no subplan. */
export function isPlainPull(route: Route): boolean {
  return route.kind === 'pull' && !route.partial && !route.broadcast && !route.repartition && !route.intermediate;
}

/** The per-shard-group SELECTs of a streamed `COPY (SELECT …) TO STDOUT`. */
export interface CopyOutQuery {
  /** One per shard group, shard names spliced in, in the shard order of the route's `table`. */
  tasks: Task[];
  /** The statement's distributed and reference tables (snapshots, shard names in errors). */
  tables: DistributedTable[];
}

export interface PullTable {
  table: DistributedTable;
  tempName: string;
  /** Condition pushed into the shards' queries (the table's alias qualifies it), or null. */
  filterSql: string | null;
  refName: string;
  /**
   * Partial results (pushdown-query.ts): the temporary table already exists
   * with the worker query's columns; each shard (by name) runs this query.
   */
  prepared?: Map<string, string>;
  /** An intermediate result's table (recursive-planner.ts), listed once computed so it is dropped with the rest. */
  intermediate?: boolean;
}

/** Name prefix of intermediate results' temporary tables (`pg_temp.pgweave_intermediate_<id>`). */
export const INTERMEDIATE_PREFIX = 'pgweave_intermediate_';

/** A CTE or subquery planned on its own (recursive-planner.ts); its rows fill `pg_temp.<tempName>` first. */
export interface IntermediateResult {
  /** "1", "2", "1_1" (a subplan of subplan 1)… as EXPLAIN's `Distributed Subplan` names it. */
  id: string;
  tempName: string;
  /** The subquery's own text (over the coordinator's tables). */
  sql: string;
  /** The temporary table's column names (a CTE's column list, c1… for a subquery expression), or null: the query's own. */
  columns: string[] | null;
  /** How the subquery itself runs. */
  route: Route;
  /** Set by the executor: the table's column list as shipped to the workers. */
  definition?: string;
  /**
   * A local table of the coordinator read in FROM: shipped only below
   * `pgweave.local_table_ship_threshold`. `name` is the relation as the
   * statement names it (SQL); `neededColumns` the column names the
   * statement mentions (null: it reads every column), so the copy holds
   * only the columns PostgreSQL would check the role's privileges on.
   */
  localTable?: { name: string; neededColumns: string[] | null };
}

/**
 * The intermediate results of a statement planned recursively: computed in
 * order on the coordinator, then shipped to the task nodes when the rest
 * (the route's own partial/broadcast) runs on the shards, or read there by
 * the coordinator when the rest is pulled (`fallback`).
 */
export interface IntermediatePlan {
  results: IntermediateResult[];
  /** Intermediate results of an enclosing plan this route also reads (a CTE reading earlier CTEs): shipped along, never dropped here. */
  reads: string[];
  /** Every distributed table the statement reads, subplans included: the nodes whose snapshots it runs in. */
  snapshot: PullTable[];
  /** The rest of the statement pulled: its tables and the coordinator's SQL. */
  fallback: { pulls: PullTable[]; sql: string };
  /** Set by the executor: how many nodes received the intermediate results (0: kept on the coordinator). */
  shippedNodes: number;
  /** Set by the executor when the rest ran on the coordinator although it could push down. */
  keptBecause: string | null;
}

/**
 * A pushdown plan's data movement (pushdown-query.ts): a worker query per
 * shard group whose rows fill one temporary table, and the final query the
 * coordinator PostgreSQL runs over it. `finalSql` is set by the executor once
 * the table's column types are known (`combine`); while it is null the route
 * is a plain pull (its `sql` and the other pulled tables).
 */
export interface PartialResults {
  planner: 'aggregate-pushdown' | 'grouped-pushdown' | 'order-limit-pushdown';
  tempName: string;
  /** The worker query over the coordinator's own tables: `CREATE TEMP TABLE … AS <shapeSql> WITH NO DATA`. */
  shapeSql: string;
  tasks: Task[];
  /** The final SQL for the temporary table's column types, or null when the statement is pulled instead. */
  combine(types: string[]): string | null;
  finalSql: string | null;
}

/**
 * A distributed table shipped whole (after its own filters, only the
 * columns the statement reads) to every worker that runs the shard tasks,
 * as a temporary table on the task's connection (broadcast-planner.ts).
 */
export interface BroadcastTable {
  table: DistributedTable;
  tempName: string;
  refName: string;
  /** Column names the statement may read (null: all of them). */
  neededColumns: Set<string> | null;
  /** Condition on this table alone, applied on its shards (the table's alias qualifies it), or null. */
  filterSql: string | null;
  /** The temporary table's column list (`"a" integer, …`), set by the executor once computed. */
  definition?: string;
  /**
   * The table the task nodes read, as the worker queries name it:
   * `pg_temp.<tempName>`, or — for a transaction block, whose worker
   * transactions must stay preparable — an unlogged table in the staging
   * schema, created and dropped inside the block's own transaction.
   */
  workerTable: { schema: string; name: string };
}

/**
 * One way to run a join of tables that are not co-located: the shards of
 * one co-located group (the anchor) run the statement, every other
 * distributed table is broadcast; `route` is a pushdown over the anchor.
 */
export interface BroadcastCandidate {
  anchor: DistributedTable[];
  tables: BroadcastTable[];
  route: Extract<Route, { kind: 'pull' }> & { partial: PartialResults };
}

/**
 * The candidates of a broadcast join; the executor estimates the tables'
 * sizes, picks one (or none: the plain pull) and sets `chosen`, `partial`
 * and `pulls` of the route it runs.
 */
export interface BroadcastChoice {
  candidates: BroadcastCandidate[];
  /** The same candidates with their worker tables in the staging schema, for a transaction block. */
  blockCandidates(): BroadcastCandidate[];
  chosen: BroadcastCandidate | null;
  /** Why the executor pulled instead (in a transaction block, broadcast larger than the pull…), for EXPLAIN. */
  pulledBecause: string | null;
}

/**
 * One distributed relation of a repartition join (repartition-planner.ts):
 * its rows (needed columns, own filter) re-hashed by `key` into buckets,
 * staged on the bucket's node as partition `<stagingName>_<bucket>` of the
 * temporary table `stagingName`.
 */
export interface RepartitionSide {
  table: DistributedTable;
  refName: string;
  key: string;
  stagingName: string;
  /** Column names the statement may read (null: all of them). */
  neededColumns: Set<string> | null;
  /** Condition on this relation alone, applied on its shards (its reference name qualifies it), or null. */
  filterSql: string | null;
  /** The staging table's column list, set by the executor once computed. */
  definition?: string;
}

/** A repartition join for one bucket count: the pushdown over the buckets as co-located pseudo shards. */
export interface RepartitionCandidate {
  sides: RepartitionSide[];
  /** Bucket b lives on nodes[b % nodes.length]. */
  nodes: WorkerNode[];
  buckets: number;
  /** Per side, the pseudo table whose shards are the buckets (its hash type filled in by the executor). */
  pseudo: DistributedTable[];
  route: Extract<Route, { kind: 'pull' }> & { partial: PartialResults };
  /** The type every key is cast to before hashing, set by the executor. */
  keyType?: string;
}

/**
 * Repartitioning every distributed relation of a join by one equivalence
 * class of columns; the executor decides by sizes and settings (and sets
 * `chosen`, the route's `partial` and `pulls`) or leaves the route to the
 * broadcast choice or the plain pull.
 */
export interface RepartitionChoice {
  sides: RepartitionSide[];
  /** The candidate with this many buckets per node (memoised), or null when the pushdown declines. */
  plan(bucketsPerNode: number): RepartitionCandidate | null;
  chosen: RepartitionCandidate | null;
  /** Why the executor did not repartition, for EXPLAIN. */
  notChosenBecause: string | null;
}

/** A function argument: a constant's text, a parameter reference, or SQL NULL. */
export type ArgValue = { text: string | null } | { param: number };

/** One coordinator function call of a command query, and the temporary table that holds its rows. */
export interface CommandQueryCall {
  name: string;
  positional: ArgValue[];
  named: Map<string, ArgValue>;
  tempName: string;
}

/** What a prepared statement resolves to once its parameters are known. */
export interface ParamResolver {
  (index: number): string | null;
}

export type { DistributedTable };
