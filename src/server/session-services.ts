/**
 * Builds the SessionServices of one client session from the coordinator's
 * shared state: metadata cache, node pools, the command registry, and
 * two-phase commit for transactions that wrote on several nodes.
 */
import { PgError } from '../protocol/errors.js';
import { connectBackend, type BackendCredentials } from '../pool/backend-connection.js';
import type { InternalClient, QueryResult } from '../pool/internal-client.js';
import type { NodePools } from '../pool/node-pools.js';
import { connectionKey, type IdleConnectionPool } from '../pool/idle-connection-pool.js';
import type { MetadataCache } from '../metadata/metadata-cache.js';
import type { WorkerNode } from '../metadata/types.js';
import { queryOnLink } from '../executor/link-query.js';
import type { BackendLink } from '../executor/backend-link.js';
import type { ChannelRegistry } from '../executor/channel-group.js';
import { TypeOidMap, USER_TYPES_SQL, matchWorkerTypes, userTypesOf } from '../executor/type-oids.js';
import { coordinatorColumnsSql, relationColumns, shardRelations, workerRelationsSql } from '../executor/relation-oids.js';
import { shardTableNamed } from '../metadata/shard-tables.js';
import { commitTwoPhase, ensureLiveness, type Participant } from '../transaction/two-phase-commit.js';
import { commitGateFor } from '../transaction/commit-gate.js';
import { COMMANDS, resolveCommandArgs } from '../commands/registry.js';
import type { CommandContext } from '../commands/context.js';
import { runDistributedUtility, type UtilityContext } from '../commands/ddl/run-utility.js';
import { beginCopyIn as beginDistributedCopyIn } from '../commands/copy/copy-in.js';
import { linkCommitter } from '../commands/copy/commit-links.js';
import { progressBoardFor } from '../commands/copy/copy-progress.js';
import { runGlobalUtility, type GlobalUtilityContext } from '../commands/roles/global-utility.js';
import { RoleFunctionNames, settleRoles, watchRoles, type WatchContext } from '../commands/roles/watch.js';
import type { SessionServices } from '../session/services.js';
import { STAGING_SCHEMA } from '../planner/broadcast-planner.js';
import { SUPPORT_FUNCTIONS_SQL } from '../planner/aggregate-combines.js';
import { quoteIdent } from '../sql/quote.js';
import type { CoordinatorConfig } from './config.js';
import type { StartupSettings } from './startup-settings.js';

export interface SharedState {
  config: CoordinatorConfig;
  pools: NodePools;
  metadata: MetadataCache;
  /** Optional hook run before statements reading citus_shards/citus_tables. */
  refreshShardSizes?: (ctx: CommandContext) => Promise<void>;
  /** Idle worker connections shared by sessions between transactions. */
  idleConnections?: IdleConnectionPool;
  /** Pipelined channels to workers for autocommit router statements (absent: off). */
  pipelines?: ChannelRegistry;
  /** Told of every database a session uses (the recovery loop watches it). */
  onDatabase?: (database: string) => void;
}

/** Per coordinator and database: names of functions that may change roles (watch.ts). */
const roleFunctionCaches = new WeakMap<SharedState, Map<string, RoleFunctionNames>>();

function roleFunctionsOf(shared: SharedState, database: string): RoleFunctionNames {
  let byDatabase = roleFunctionCaches.get(shared);
  if (!byDatabase) roleFunctionCaches.set(shared, (byDatabase = new Map()));
  let names = byDatabase.get(database);
  if (!names) byDatabase.set(database, (names = new RoleFunctionNames()));
  return names;
}

/** Per node and database: the staging schema exists (or is being created). */
const stagingSchemas = new Map<string, Promise<void>>();

/**
 * Creates the staging schema of broadcast joins in transaction blocks on a
 * worker database, as the internal role: every role may create tables in it
 * (the session's own role creates and drops its tables inside its block's
 * transaction, so no other role ever sees them — never committed, named
 * with a random token, created without IF NOT EXISTS: server/README.md);
 * nothing else is granted.
 */
function ensureStagingSchema(pools: NodePools, node: WorkerNode, database: string): Promise<void> {
  return oncePerKey(stagingSchemas, `${node.host}:${node.port}/${database}`, async () => {
    const schema = quoteIdent(STAGING_SCHEMA);
    const pool = pools.get(node.host, node.port, database);
    const found = await pool.query('SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1', [STAGING_SCHEMA]);
    if (found.rows.length > 0) return;
    try {
      await pool.query(`CREATE SCHEMA ${schema}; REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC; GRANT USAGE, CREATE ON SCHEMA ${schema} TO PUBLIC`);
    } catch (err) {
      // 42P06 duplicate_schema, 23505 a concurrent creation won the race.
      if (!(err instanceof PgError) || (err.code !== '42P06' && err.code !== '23505')) throw err;
    }
  });
}

/** Runs `create` once per key; a failure is forgotten (the next call tries again) and reaches every caller that waited. */
function oncePerKey(done: Map<string, Promise<void>>, key: string, create: () => Promise<void>): Promise<void> {
  let pending = done.get(key);
  if (!pending) {
    pending = create();
    pending.catch(() => done.delete(key));
    done.set(key, pending);
  }
  return pending;
}

/** Per node (or the coordinator) and database: the aggregate support functions exist (or are being created). */
const supportFunctions = new Map<string, Promise<void>>();

/**
 * Creates the pg_catalog.pgweave_* functions of split aggregates
 * (planner/aggregate-combines.ts) in one database of one PostgreSQL server,
 * as the internal role, once per coordinator process. A failure is
 * forgotten (tried again next time) and not raised: a statement that needs
 * the functions then fails with PostgreSQL's own error.
 */
function ensureSupportFunctions(pools: NodePools, host: string, port: number, database: string, id: string): Promise<void> {
  return oncePerKey(supportFunctions, `${id}/${host}:${port}/${database}`, async () => {
    await pools.get(host, port, database).query(SUPPORT_FUNCTIONS_SQL);
  }).catch(() => {});
}

/** Per coordinator, worker server and database: its type OIDs mapped to the coordinator's. */
const typeOidMaps = new WeakMap<SharedState, Map<string, TypeOidMap>>();

/**
 * The type OID map of one worker database (executor/type-oids.ts): filled
 * by reading pg_type on the worker and on the coordinator as the internal
 * role, shard row types named after their distributed tables by the
 * catalog; and its relations (executor/relation-oids.ts): pg_class and
 * pg_attribute of the worker, shards named after their tables by the
 * catalog, those tables' columns from the coordinator's pg_attribute.
 * Emptied when the catalog version changes.
 */
function typeOidMapOf(shared: SharedState, node: WorkerNode, database: string): TypeOidMap {
  let maps = typeOidMaps.get(shared);
  if (!maps) typeOidMaps.set(shared, (maps = new Map()));
  const key = `${node.host}:${node.port}/${database}`;
  let map = maps.get(key);
  if (map) return map;
  const { pools, config, metadata } = shared;
  map = new TypeOidMap(async () => {
    const [worker, coordinator, catalog] = await Promise.all([
      pools.get(node.host, node.port, database).query(USER_TYPES_SQL),
      pools.get(config.coordinator.host, config.coordinator.port, database).query(USER_TYPES_SQL),
      metadata.get(database),
    ]);
    return matchWorkerTypes(userTypesOf(worker.rows), userTypesOf(coordinator.rows), (schema, name) => {
      const s = shardTableNamed(catalog, name);
      return s !== undefined && s.table.schema === schema ? s.table.name : null;
    });
  }, () => metadata.peek(database)?.version ?? null, async (oids) => {
    const [worker, catalog] = await Promise.all([pools.get(node.host, node.port, database).query(workerRelationsSql(oids)), metadata.get(database)]);
    const { relations, tables } = shardRelations(worker.rows, (schema, name) => {
      const s = shardTableNamed(catalog, name);
      return s !== undefined && s.table.schema === schema ? s.table.relationId : null;
    });
    const coordinator = tables.length === 0 ? [] : (await pools.get(config.coordinator.host, config.coordinator.port, database).query(coordinatorColumnsSql(tables))).rows;
    return relationColumns(relations, coordinator);
  });
  maps.set(key, map);
  return map;
}

/** An InternalClient-shaped view of a session link, for the two-phase commit code. */
function linkAsClient(link: BackendLink): InternalClient {
  return {
    get closed() {
      return link.lost;
    },
    async query(sql: string): Promise<QueryResult> {
      const r = await queryOnLink(link, sql);
      if (r.error) throw r.error;
      return { fields: [], rows: [], command: r.tag };
    },
  } as unknown as InternalClient;
}

export function makeSessionServices(
  shared: SharedState,
  database: string,
  user: string,
  credentials: BackendCredentials,
  startup: StartupSettings | null = null,
): SessionServices {
  const { config, pools, metadata } = shared;
  shared.onDatabase?.(database);
  // Worker connections carry the client's startup settings; they are shared (idle pool, pipelined
  // channels) only between sessions with the same ones. No settings: the plain (node, database, role) key.
  const signature = startup?.signature ?? '';
  const workerParams: Array<[string, string]> = [['application_name', 'pgweave'], ...(startup?.workerParams ?? [])];
  const suffix = signature === '' ? '' : '\u0000' + signature;
  const nodeKey = (node: WorkerNode) => connectionKey(node.host, node.port, database, user) + suffix;
  const services: SessionServices = {
    database,
    user,
    startupSettings: startup?.settings,
    catalog: () => metadata.peek(database),
    loadCatalog: () => metadata.get(database),
    async connectNode(node: WorkerNode) {
      const pooled = shared.idleConnections?.take(nodeKey(node));
      if (pooled) return { conn: pooled.conn, prepared: pooled.prepared };
      const conn = await connectBackend({
        host: node.host,
        port: node.port,
        user,
        database,
        credentials,
        params: workerParams,
      });
      return { conn, prepared: new Set<string>() };
    },
    pipelineFor(node: WorkerNode) {
      if (!shared.pipelines) return null;
      return shared.pipelines.group(nodeKey(node), node.nodeId, async () => (await services.connectNode(node)).conn);
    },
    typeOids: (node) => typeOidMapOf(shared, node, database),
    releaseNode(node, conn, prepared) {
      if (shared.idleConnections) shared.idleConnections.give(nodeKey(node), conn, prepared);
      else conn.socket.destroy();
    },
    parkNode: (node, conn, prepared, claim) => shared.idleConnections?.park(nodeKey(node), conn, prepared, claim) ?? null,
    unparkNode: (node, parked) => shared.idleConnections?.withdraw(nodeKey(node), parked) ?? false,
    isCommand: (name) => COMMANDS.has(name),
    ensureStagingSchema: (node) => ensureStagingSchema(pools, node, database),
    async ensureSupportFunctions(nodes) {
      await Promise.all([
        ensureSupportFunctions(pools, config.coordinator.host, config.coordinator.port, database, 'coordinator'),
        ...nodes.map((n) => ensureSupportFunctions(pools, n.host, n.port, database, String(n.nodeId))),
      ]);
    },
    async runCommand(call, access) {
      const def = COMMANDS.get(call.name);
      if (!def) throw new PgError({ code: '42883', message: `function ${call.name} does not exist` });
      const args = resolveCommandArgs(def, call.positional, call.named);
      const ctx: CommandContext = {
        database,
        user,
        credentials,
        config,
        pools,
        metadata,
        settings: new Map(access.settings),
        runAsClient: access.runAsClient,
        inTransactionBlock: access.inTransactionBlock,
        linkFor: access.linkFor,
      };
      const rows = await def.run(args, ctx);
      const fields = def.returns.map((r) => ({ name: def.setReturning || def.returns.length > 1 ? r.name : def.name, typeOid: r.typeOid }));
      return { fields, rows };
    },
    async runUtility(statement, stmt, tables, access) {
      const ctx: UtilityContext = {
        database,
        user,
        credentials,
        config,
        pools,
        metadata,
        settings: new Map(access.settings),
        runAsClient: access.runAsClient,
        inTransactionBlock: access.inTransactionBlock,
        linkFor: access.linkFor,
        afterCommit: access.afterCommit,
      };
      return runDistributedUtility(ctx, statement, stmt, tables);
    },
    async beginCopyIn(statement, stmt, table, access) {
      return beginDistributedCopyIn(statement, stmt, table, {
        runAsClient: access.runAsClient,
        settings: access.settings,
        inTransactionBlock: access.inTransactionBlock,
        linkFor: access.linkFor,
        commitMultiNode: linkCommitter(services.commitGate ?? null, services.catalog, access.settings, (w, r) => services.commitMultiNode(w, r)),
        openProgress: (relid, shardIds) => services.openCopyProgress!(access.sessionPid, relid, 'COPY FROM', shardIds),
      });
    },
    async runGlobalUtility(statement, stmt, access) {
      // Roles, memberships, schemas, default privileges: on the coordinator as the client, then on every worker.
      const ctx: GlobalUtilityContext = {
        database,
        user,
        credentials,
        config,
        pools,
        metadata,
        settings: new Map(access.settings),
        runAsClient: access.runAsClient,
        inTransactionBlock: access.inTransactionBlock,
        linkFor: access.linkFor,
      };
      return runGlobalUtility(ctx, statement, stmt);
    },
    roleFunctionsNow: (catalog) => roleFunctionsOf(shared, database).now(catalog.version),
    loadRoleFunctions(catalog) {
      const pool = pools.get(config.coordinator.host, config.coordinator.port, database);
      return roleFunctionsOf(shared, database).load(catalog.version, (sql, params) => pool.query(sql, params));
    },
    async watchRoles(statement, access) {
      const context = (a: typeof access): WatchContext => ({
        database, user, credentials, config, pools, metadata,
        settings: new Map(a.settings),
        runAsClient: a.runAsClient,
        inTransactionBlock: a.inTransactionBlock,
        linkFor: a.linkFor,
      });
      const before = await watchRoles(context(access), statement);
      return { wrapped: before.wrapped, settle: (a) => settleRoles(context(a), before) };
    },
    async commitMultiNode(written, readOnly) {
      await ensureLiveness(pools, config.coordinator, config.internalDatabase ?? 'postgres');
      const catalog = await metadata.get(database);
      const groupOf = (link: BackendLink) => catalog.nodes.find((n) => n.nodeId === link.nodeId)?.groupId ?? 0;
      const participants: Participant[] = written.map((l) => ({ client: linkAsClient(l), groupId: groupOf(l), label: `${l.conn.host}:${l.conn.port}` }));
      for (const l of readOnly) {
        const r = await queryOnLink(l, 'COMMIT');
        if (r.error) throw r.error;
      }
      const pool = pools.get(config.coordinator.host, config.coordinator.port, database);
      await pool.withClient(async (coordinatorTxn) => {
        await coordinatorTxn.query('BEGIN');
        await commitTwoPhase(coordinatorTxn, participants);
      });
    },
    commitGate: commitGateFor(pools, config.coordinator, database),
    openCopyProgress(pid, relid, command, shardIds) {
      const pool = pools.get(config.coordinator.host, config.coordinator.port, database);
      return progressBoardFor(pool, (sql, params) => pool.query(sql, params)).open({ pid, relid, command, shardIds });
    },
    async beforeCatalogViewRead() {
      if (!shared.refreshShardSizes) return;
      await shared.refreshShardSizes({
        database, user, credentials, config, pools, metadata, settings: new Map(),
        runAsClient: () => Promise.reject(new Error('not available')),
      });
    },
  };
  return services;
}
