/**
 * Node management with Citus's names and signatures: citus_add_node (and
 * master_add_node), citus_remove_node (master_remove_node),
 * citus_get_active_worker_nodes, citus_set_coordinator_host,
 * citus_set_node_property (master_set_node_property). Superusers only, as in
 * Citus.
 *
 * Adding a node checks what pgweave needs of it — reachable as the internal
 * role, PostgreSQL ≥ 15, max_prepared_transactions > 0 (2PC), wal_level =
 * logical (shard moves) — and says exactly what to change; it creates the
 * database on the node and copies every reference table there, in the same
 * distributed change that registers the node.
 */
import { PgError } from '../protocol/errors.js';
import { readNode, readWorkerNodes, type NodeRow } from '../metadata/catalog-writes.js';
import { TYPE_OID, voidResult, type CommandDefinition } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseBool, parseInt32, requireSuperuser } from './common.js';
import type { CommandContext } from './context.js';
import { withDistributedChange } from './distribute-table.js';
import { ensureTableDependenciesOn, replicateReferenceTables } from './reference-replication.js';
import { dropShardStatement } from './shard-ddl.js';
import { syncRolesToNode } from './roles/sync-node.js';

/** Checks a prospective node and throws one error listing everything to fix. */
export async function checkNodeRequirements(ctx: CommandContext, host: string, port: number): Promise<void> {
  let settings: (string | null)[];
  try {
    const r = await ctx.pools
      .get(host, port, ctx.config.internalDatabase ?? 'postgres')
      .query(
        `SELECT current_setting('server_version_num')::int, current_setting('max_prepared_transactions')::int,
                current_setting('wal_level'), current_setting('max_connections')::int`,
      );
    settings = r.rows[0]!;
  } catch (err) {
    throw new PgError({
      code: '08001',
      message: `connection to the remote node ${host}:${port} failed with the following error: ${(err as Error).message}`,
      hint: `Check that PostgreSQL runs on ${host}:${port} and accepts the internal role "${ctx.pools.internal.user}" with the cluster's password.`,
    });
  }
  const [version, maxPrepared, walLevel, maxConnections] = [Number(settings[0]), Number(settings[1]), settings[2], Number(settings[3])];
  const fixes: string[] = [];
  if (version < 150000) fixes.push(`upgrade PostgreSQL on ${host}:${port} to version 15 or later (it runs ${Math.floor(version / 10000)})`);
  if (maxPrepared <= 0) {
    fixes.push(`set max_prepared_transactions to at least ${maxConnections} in postgresql.conf on ${host}:${port} and restart`);
  }
  if (walLevel !== 'logical') fixes.push(`set wal_level = logical in postgresql.conf on ${host}:${port} and restart`);
  if (fixes.length > 0) {
    throw new PgError({
      code: '55000',
      message: `cannot add node ${host}:${port}: ${fixes.join('; ')}`,
      detail: 'pgweave needs PostgreSQL 15 or later, prepared transactions (two-phase commit) and logical WAL (shard moves) on every node.',
    });
  }
}

function nodeMissing(host: string, port: number): PgError {
  return new PgError({ code: '22023', message: `node at "${host}:${port}" does not exist` });
}

async function addNode(args: Map<string, string | null>, ctx: CommandContext, fn: string) {
  await requireSuperuser(ctx, fn);
  await ensureDatabaseCatalog(ctx);
  const host = args.get('nodename')!;
  const port = parseInt32(args.get('nodeport')!, 'nodeport');
  const requestedGroup = parseInt32(args.get('groupid')!, 'groupid');
  if (args.get('noderole') !== 'primary') throw new PgError({ code: '0A000', message: 'pgweave supports only primary nodes' });
  const existing = await readNode(coordinatorPool(ctx), host, port);
  if (existing) return [[String(existing.nodeId)]];
  await checkNodeRequirements(ctx, host, port);
  await ctx.pools.ensureDatabase(host, port, ctx.database);
  await syncRolesToNode(ctx, { host, port });
  let nodeId = 0;
  await withDistributedChange(ctx, async (coordinator, workers) => {
    const inserted = await coordinator.query(
      `INSERT INTO pgweave.node (groupid, nodename, nodeport, nodecluster, hasmetadata, metadatasynced)
       VALUES (CASE WHEN $1::int = -1 THEN nextval('pgweave.groupid_seq')::int ELSE $1::int END, $2, $3, $4, false, false)
       RETURNING nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards`,
      [String(requestedGroup), host, String(port), args.get('nodecluster')!],
    );
    const r = inserted.rows[0]!;
    nodeId = Number(r[0]);
    const node: NodeRow = { nodeId, groupId: Number(r[1]), host, port, isActive: true, shouldHaveShards: true };
    await ensureTableDependenciesOn(ctx, coordinator, workers, node);
    await replicateReferenceTables(ctx, coordinator, workers, node);
  });
  return [[String(nodeId)]];
}

const addNodeParams = [
  { name: 'nodename', type: 'text' },
  { name: 'nodeport', type: 'integer' },
  { name: 'groupid', type: 'integer', default: '-1' },
  { name: 'noderole', type: 'noderole', default: 'primary' },
  { name: 'nodecluster', type: 'name', default: 'default' },
];

const citusAddNode: CommandDefinition = {
  name: 'citus_add_node',
  params: addNodeParams,
  returns: [{ name: 'citus_add_node', typeOid: TYPE_OID.int4 }],
  setReturning: false,
  run: (args, ctx) => addNode(args, ctx, 'citus_add_node'),
};

const masterAddNode: CommandDefinition = {
  ...citusAddNode,
  name: 'master_add_node',
  returns: [{ name: 'master_add_node', typeOid: TYPE_OID.int4 }],
  run: (args, ctx) => addNode(args, ctx, 'master_add_node'),
};

async function removeNode(args: Map<string, string | null>, ctx: CommandContext, fn: string) {
  await requireSuperuser(ctx, fn);
  await ensureDatabaseCatalog(ctx);
  const host = args.get('nodename')!;
  const port = parseInt32(args.get('nodeport')!, 'nodeport');
  const dropped: Array<{ schema: string; name: string; shardId: number }> = [];
  let removed: NodeRow | null = null;
  await withDistributedChange(ctx, async (coordinator) => {
    const node = await readNode(coordinator, host, port);
    if (!node) throw nodeMissing(host, port);
    removed = node;
    const placements = await coordinator.query(
      `SELECT pl.placementid, pl.shardid, n.nspname, c.relname,
              EXISTS (SELECT 1 FROM pgweave.placement o WHERE o.shardid = pl.shardid AND o.groupid <> pl.groupid AND o.shardstate = 1)
       FROM pgweave.placement pl JOIN pgweave.shard s ON s.shardid = pl.shardid
       JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE pl.groupid = $1 ORDER BY pl.shardid`,
      [String(node.groupId)],
    );
    const only = placements.rows.find((r) => r[4] !== 't');
    if (only) {
      throw new PgError({
        code: 'XX000',
        message: `cannot remove or disable the node ${host}:${port} because because it contains the only shard placement for shard ${only[1]}`,
        detail: `One of the table(s) that prevents the operation complete successfully is ${only[2]}.${only[3]}`,
        hint: 'To proceed, either drop the tables or use undistribute_table() function to convert them to local tables',
      });
    }
    for (const r of placements.rows) dropped.push({ schema: r[2]!, name: r[3]!, shardId: Number(r[1]) });
    await coordinator.query('DELETE FROM pgweave.placement WHERE groupid = $1', [String(node.groupId)]);
    await coordinator.query('DELETE FROM pgweave.node WHERE nodeid = $1', [String(node.nodeId)]);
  });
  // The node's copies of reference tables are no longer used; dropping them is best effort.
  const gone = removed as NodeRow | null;
  if (gone && dropped.length > 0) {
    await ctx.pools
      .get(gone.host, gone.port, ctx.database)
      .query(dropped.map((d) => dropShardStatement(d.schema, d.name, d.shardId)).join(';\n'))
      .catch(() => {});
  }
  return voidResult();
}

const removeParams = [
  { name: 'nodename', type: 'text' },
  { name: 'nodeport', type: 'integer' },
];

const citusRemoveNode: CommandDefinition = {
  name: 'citus_remove_node',
  params: removeParams,
  returns: [{ name: 'citus_remove_node', typeOid: TYPE_OID.void }],
  setReturning: false,
  run: (args, ctx) => removeNode(args, ctx, 'citus_remove_node'),
};

const masterRemoveNode: CommandDefinition = {
  ...citusRemoveNode,
  name: 'master_remove_node',
  returns: [{ name: 'master_remove_node', typeOid: TYPE_OID.void }],
  run: (args, ctx) => removeNode(args, ctx, 'master_remove_node'),
};

const citusGetActiveWorkerNodes: CommandDefinition = {
  name: 'citus_get_active_worker_nodes',
  params: [],
  returns: [
    { name: 'node_name', typeOid: TYPE_OID.text },
    { name: 'node_port', typeOid: TYPE_OID.int8 },
  ],
  setReturning: true,
  async run(_args, ctx) {
    await ensureDatabaseCatalog(ctx);
    const nodes = await readWorkerNodes(coordinatorPool(ctx));
    return nodes.filter((n) => n.isActive).map((n) => [n.host, String(n.port)]);
  },
};

const citusSetCoordinatorHost: CommandDefinition = {
  name: 'citus_set_coordinator_host',
  params: [
    { name: 'host', type: 'text' },
    { name: 'port', type: 'integer', default: null },
    { name: 'node_role', type: 'noderole', default: 'primary' },
    { name: 'node_cluster', type: 'name', default: 'default' },
  ],
  returns: [{ name: 'citus_set_coordinator_host', typeOid: TYPE_OID.void }],
  setReturning: false,
  async run(args, ctx) {
    await requireSuperuser(ctx, 'citus_set_coordinator_host');
    await ensureDatabaseCatalog(ctx);
    const host = args.get('host')!;
    const portText = args.get('port');
    const port = portText === null || portText === undefined ? ctx.config.coordinator.port : parseInt32(portText, 'port');
    await withDistributedChange(ctx, async (coordinator) => {
      const updated = await coordinator.query('UPDATE pgweave.node SET nodename = $1, nodeport = $2 WHERE groupid = 0', [host, String(port)]);
      if (updated.command === 'UPDATE 0') {
        await coordinator.query(
          `INSERT INTO pgweave.node (groupid, nodename, nodeport, nodecluster, hasmetadata, metadatasynced, shouldhaveshards)
           VALUES (0, $1, $2, $3, true, true, false)`,
          [host, String(port), args.get('node_cluster')!],
        );
      }
    });
    return voidResult();
  },
};

async function setNodeProperty(args: Map<string, string | null>, ctx: CommandContext, fn: string) {
  await requireSuperuser(ctx, fn);
  await ensureDatabaseCatalog(ctx);
  const host = args.get('nodename')!;
  const port = parseInt32(args.get('nodeport')!, 'nodeport');
  if (args.get('property') !== 'shouldhaveshards') {
    throw new PgError({ code: '22023', message: "only the 'shouldhaveshards' property can be set using this function" });
  }
  const value = parseBool(args.get('value')!, 'value');
  await withDistributedChange(ctx, async (coordinator) => {
    const r = await coordinator.query('UPDATE pgweave.node SET shouldhaveshards = $1 WHERE nodename = $2 AND nodeport = $3', [
      String(value),
      host,
      String(port),
    ]);
    if (r.command === 'UPDATE 0') throw nodeMissing(host, port);
  });
  return voidResult();
}

const nodePropertyParams = [
  { name: 'nodename', type: 'text' },
  { name: 'nodeport', type: 'integer' },
  { name: 'property', type: 'text' },
  { name: 'value', type: 'boolean' },
];

const citusSetNodeProperty: CommandDefinition = {
  name: 'citus_set_node_property',
  params: nodePropertyParams,
  returns: [{ name: 'citus_set_node_property', typeOid: TYPE_OID.void }],
  setReturning: false,
  run: (args, ctx) => setNodeProperty(args, ctx, 'citus_set_node_property'),
};

const masterSetNodeProperty: CommandDefinition = {
  ...citusSetNodeProperty,
  name: 'master_set_node_property',
  returns: [{ name: 'master_set_node_property', typeOid: TYPE_OID.void }],
  run: (args, ctx) => setNodeProperty(args, ctx, 'master_set_node_property'),
};

export const NODE_COMMANDS: CommandDefinition[] = [
  citusAddNode,
  masterAddNode,
  citusRemoveNode,
  masterRemoveNode,
  citusGetActiveWorkerNodes,
  citusSetCoordinatorHost,
  citusSetNodeProperty,
  masterSetNodeProperty,
];
