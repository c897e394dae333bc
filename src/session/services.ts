/**
 * What a session needs from the layers that own shared state (the metadata
 * cache, the command registry, the node connections): passed in as an
 * interface, so the session does not reach upward.
 */
import type { Catalog, DistributedTable, WorkerNode } from '../metadata/types.js';
import type { BackendConnection } from '../pool/backend-connection.js';
import type { IdleConnection as ParkedConnection } from '../pool/idle-connection-pool.js';

export type { ParkedConnection };
import type { BackendLink } from '../executor/backend-link.js';
import type { ChannelGroup } from '../executor/channel-group.js';
import type { TypeOidMap } from '../executor/type-oids.js';
import type { CommandOutput } from './replies.js';
import type { PgError } from '../protocol/errors.js';
import type { CommitGate } from '../transaction/commit-gate.js';
import type { CopyProgressEntry } from '../commands/copy/copy-progress.js';

export interface ClientQueryResult {
  fields: string[];
  rows: Array<Array<string | null>>;
  command: string;
}

/** What a command may do inside the client's session. */
export interface SessionAccess {
  /** Runs SQL on the coordinator PostgreSQL in the client's own connection and transaction. */
  runAsClient(sql: string, params?: ReadonlyArray<string | null>): Promise<ClientQueryResult>;
  /** Session settings set with SET (e.g. citus.shard_count). */
  settings: ReadonlyMap<string, string>;
  /** Whether the client is inside a transaction block. */
  inTransactionBlock: boolean;
  /** The session's connection to a worker, joined to the client's transaction block if there is one. */
  linkFor?(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
  /** Runs `hook` once the client's open block commits (dropped if it rolls back). */
  afterCommit?(hook: () => Promise<void>): void;
}

export interface CommandCall {
  name: string;
  positional: Array<string | null>;
  named: Map<string, string | null>;
}

/** Receives the rows of a COPY … FROM STDIN into a distributed table, as they stream. */
export interface CopyInSink {
  /** Columns the client sends, and whether the format is binary (for CopyInResponse). */
  readonly columnCount: number;
  readonly binary: boolean;
  /** One CopyData payload (any slice of the stream); resolves when it may continue (flow control). */
  data(payload: Buffer): Promise<void>;
  /** CopyDone: finishes (commits unless inside the client's block); returns the command tag. */
  done(): Promise<string>;
  /** CopyFail or an error: nothing of this COPY remains. */
  abort(reason: PgError): Promise<void>;
}

export interface CopyAccess extends SessionAccess {
  /** The session's connection to a worker, joined to the client's transaction block if there is one. */
  linkFor(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
  /** The coordinator PostgreSQL backend serving this session (what the progress view shows as pid). */
  sessionPid: number;
}

export interface SessionServices {
  database: string;
  user: string;
  /**
   * Settings from the client's StartupMessage (lower-case name → value):
   * the session starts with them as if SET (search_path for the planner,
   * COPY's client_encoding…); worker connections come with them already.
   */
  startupSettings?: ReadonlyMap<string, string>;
  /** The cached catalog of this database, or null when it must be (re)loaded. */
  catalog(): Catalog | null;
  loadCatalog(): Promise<Catalog>;
  /** A connection to a worker as the client's own role: an idle pooled one, or a new one. */
  connectNode(node: WorkerNode): Promise<{ conn: BackendConnection; prepared: Set<string> }>;
  /**
   * The shared pipelined channels to a worker for this database and role
   * (executor/pipelined-channel.ts); null or absent: pipelining is off.
   */
  pipelineFor?(node: WorkerNode): ChannelGroup | null;
  /**
   * The worker's type OIDs mapped to the coordinator's (executor/type-oids.ts),
   * shared by every session of this database; absent: worker OIDs reach the client.
   */
  typeOids?(node: WorkerNode): TypeOidMap;
  /** Gives an idle connection (outside any transaction) back to the pool. */

  releaseNode(node: WorkerNode, conn: BackendConnection, prepared: Set<string>): void;
  /**
   * Offers a connection the session keeps to other sessions (pool/idle-connection-pool.ts
   * `park`): `claim` makes the session let go of it. Null or absent: no pool, release instead.
   */
  parkNode?(node: WorkerNode, conn: BackendConnection, prepared: Set<string>, claim: () => boolean): ParkedConnection | null;
  /** The session uses a parked connection again (false: another session claimed it). */
  unparkNode?(node: WorkerNode, parked: ParkedConnection): boolean;
  isCommand(name: string): boolean;
  runCommand(call: CommandCall, access: SessionAccess): Promise<CommandOutput>;
  /** Applies a utility statement on distributed/reference tables everywhere; returns the command tag. */
  runUtility(statement: string, stmt: unknown, tables: DistributedTable[], access: SessionAccess): Promise<string>;
  /** Applies a statement on roles/schemas/default privileges on the coordinator and every worker; returns the tag. */
  runGlobalUtility(statement: string, stmt: unknown, access: SessionAccess): Promise<string>;
  /**
   * Before a statement that may change roles inside a function (DO, CALL):
   * notes the role state and, outside a block, may open a coordinator
   * transaction for the statement (`wrapped`: the session rolls it back if the
   * statement fails). `settle`, after it succeeded, makes the workers hold the
   * coordinator's roles if it changed them and commits a wrapped transaction.
   * Absent: not watched (src/commands/roles/watch.ts).
   */
  watchRoles?(statement: string, access: SessionAccess): Promise<{ wrapped: boolean; settle(access: SessionAccess): Promise<void> }>;
  /** Names of functions that may change roles, for this catalog version; null until loaded (src/commands/roles/watch.ts). */
  roleFunctionsNow?(catalog: Catalog): ReadonlySet<string> | null;
  loadRoleFunctions?(catalog: Catalog): Promise<ReadonlySet<string>>;
  /** Starts a COPY … FROM STDIN into a distributed or reference table. */
  beginCopyIn(statement: string, stmt: unknown, table: DistributedTable, access: CopyAccess): Promise<CopyInSink>;
  /**
   * Commits a transaction that wrote on several nodes atomically (two-phase
   * commit with a durable commit record). The links are idle, inside their
   * transaction blocks; on return every one of them has left its block.
   */
  commitMultiNode(written: BackendLink[], readOnly: BackendLink[]): Promise<void>;
  /** The commit gate of this database (atomic visibility, two-phase commit records); absent: plain commitMultiNode. */
  commitGate?: CommitGate;
  /** Publishes a COPY's progress in pgweave_stat_progress_copy (pid: the session's coordinator backend); absent: none. */
  openCopyProgress?(pid: number, relid: number, command: 'COPY FROM' | 'COPY TO', shardIds: string[]): CopyProgressEntry | null;
  /**
   * Makes sure the node's database has the staging schema of broadcast
   * joins in transaction blocks (planner/broadcast-planner.ts
   * STAGING_SCHEMA), created by the internal role; absent: such joins are pulled.
   */
  ensureStagingSchema?(node: WorkerNode): Promise<void>;
  /**
   * Makes sure the coordinator's database and these nodes' have the
   * pg_catalog.pgweave_* functions split aggregates call
   * (planner/aggregate-combines.ts), created by the internal role once per
   * node and database; failures are left to the statement that needs them.
   */
  ensureSupportFunctions?(nodes: WorkerNode[]): Promise<void>;
  /** Statements that change what the catalog views show first refresh it (shard sizes). */
  beforeCatalogViewRead?(): Promise<void>;
}
