/**
 * Citus's RPC functions, the dblink-style way to run SQL cluster-wide:
 * run_command_on_workers, run_command_on_shards (`%s` in the command becomes
 * the shard's name, via PostgreSQL's own format()), run_command_on_placements.
 *
 * Every command runs AS THE CALLER: a connection to the worker as the client's
 * role with the client's credentials, never the internal role (DESIGN.md
 * decision 9), so the worker's privilege checks apply. Results follow Citus's
 * rules: a command's tag, or the single value of a one-column, at most one-row
 * result; otherwise success = false and the reason (the first line of the
 * error, "ERROR:  …", or "failed to connect to host:port").
 */
import type { InternalClient, QueryResult } from '../pool/internal-client.js';
import { connectAsClient } from '../pool/node-pools.js';
import { PgError } from '../protocol/errors.js';
import { quoteIdent } from '../sql/quote.js';
import type { DistributedTable, WorkerNode } from '../metadata/types.js';
import { TYPE_OID, type CommandDefinition, type Rows } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, parseBool, resolveRelation } from './common.js';
import type { CommandContext } from './context.js';
import { applyClientSettings, clientSettings } from './client-settings.js';

interface Task {
  node: WorkerNode;
  command: string;
}

interface Outcome {
  success: boolean;
  result: string;
}

function evaluate(r: QueryResult): Outcome {
  if (r.fields.length === 0) return { success: true, result: r.command };
  if (r.fields.length !== 1) return { success: false, result: 'expected a single column in query target' };
  if (r.rows.length > 1) return { success: false, result: 'expected a single row in query result' };
  return { success: true, result: r.rows[0]?.[0] ?? '' };
}

function errorText(err: unknown): string {
  if (err instanceof PgError) return `${err.fields.severity ?? 'ERROR'}:  ${err.message.split('\n')[0]}`;
  return (err as Error)?.message ?? String(err);
}

/**
 * Runs each task on its node as the client. Tasks on one node share one
 * connection and run in order; nodes run at once when `parallel`.
 */
async function runTasks(ctx: CommandContext, tasks: Task[], parallel: boolean): Promise<Outcome[]> {
  const outcomes = new Array<Outcome>(tasks.length);
  // The caller is the role the client acts as now: its SET SESSION AUTHORIZATION / SET ROLE go along.
  const who = (await ctx.runAsClient('SELECT session_user, current_user')).rows[0] ?? [ctx.user, ctx.user];
  const becomeCaller = [
    who[0] !== ctx.user ? `SET SESSION AUTHORIZATION ${quoteIdent(who[0]!)}` : '',
    who[1] !== who[0] ? `SET ROLE ${quoteIdent(who[1]!)}` : '',
  ].filter(Boolean).join('; ');
  const byNode = new Map<string, number[]>();
  tasks.forEach((t, i) => {
    const key = `${t.node.host}:${t.node.port}`;
    byNode.set(key, [...(byNode.get(key) ?? []), i]);
  });
  // The client's TimeZone, DateStyle, search_path… (client-settings.ts): commands read as they would on the coordinator.
  const settings = await clientSettings(ctx);
  const runNode = async (indexes: number[]): Promise<void> => {
    const { host, port } = tasks[indexes[0]!]!.node;
    let client: InternalClient;
    try {
      await ctx.pools.ensureDatabase(host, port, ctx.database);
      client = await connectAsClient(host, port, ctx.database, ctx.user, ctx.credentials);
      await applyClientSettings(client, settings).then(() => (becomeCaller ? client.query(becomeCaller) : undefined)).catch((err) => (client.close(), Promise.reject(err)));
    } catch {
      for (const i of indexes) outcomes[i] = { success: false, result: `failed to connect to ${host}:${port}` };
      return;
    }
    try {
      for (const i of indexes) {
        try {
          outcomes[i] = evaluate(await client.query(tasks[i]!.command));
        } catch (err) {
          outcomes[i] = { success: false, result: client.closed ? 'connection lost' : errorText(err) };
        }
      }
    } finally {
      client.close();
    }
  };
  if (parallel) await Promise.all([...byNode.values()].map(runNode));
  else for (const indexes of byNode.values()) await runNode(indexes);
  return outcomes;
}

async function distributedTable(ctx: CommandContext, text: string): Promise<DistributedTable> {
  const rel = await resolveRelation(ctx, text);
  const table = (await ctx.metadata.get(ctx.database)).tablesById.get(rel.oid);
  if (!table) throw new PgError({ code: '22023', message: `relation ${rel.name} is not distributed` });
  return table;
}

/** format(command, shard_name(table, shardid)) for each shard id, computed by PostgreSQL with Citus's shard_name(). */
async function formatCommands(ctx: CommandContext, command: string, table: DistributedTable, shardIds: number[]): Promise<string[]> {
  if (shardIds.length === 0) return [];
  const r = await coordinatorPool(ctx).query(
    `SELECT pg_catalog.format($1, pg_catalog.shard_name($2::pg_catalog.oid::pg_catalog.regclass, u.id))
     FROM pg_catalog.unnest($3::bigint[]) WITH ORDINALITY AS u(id, i) ORDER BY u.i`,
    [command, String(table.relationId), '{' + shardIds.join(',') + '}'],
  );
  return r.rows.map((row) => row[0] ?? '');
}

const runOnWorkers: CommandDefinition = {
  name: 'run_command_on_workers',
  params: [
    { name: 'command', type: 'text' },
    { name: 'parallel', type: 'boolean', default: 'true' },
  ],
  returns: [
    { name: 'nodename', typeOid: TYPE_OID.text },
    { name: 'nodeport', typeOid: TYPE_OID.int4 },
    { name: 'success', typeOid: TYPE_OID.bool },
    { name: 'result', typeOid: TYPE_OID.text },
  ],
  setReturning: true,
  async run(args, ctx): Promise<Rows> {
    await ensureDatabaseCatalog(ctx);
    const nodes = (await ctx.metadata.get(ctx.database)).nodes.filter((n) => n.isActive);
    const tasks = nodes.map((node) => ({ node, command: args.get('command')! }));
    const outcomes = await runTasks(ctx, tasks, parseBool(args.get('parallel')!, 'parallel'));
    return tasks.map((t, i) => [t.node.host, String(t.node.port), outcomes[i]!.success ? 't' : 'f', outcomes[i]!.result]);
  },
};

const runOnShards: CommandDefinition = {
  name: 'run_command_on_shards',
  params: [
    { name: 'table_name', type: 'regclass' },
    { name: 'command', type: 'text' },
    { name: 'parallel', type: 'boolean', default: 'true' },
  ],
  returns: [
    { name: 'shardid', typeOid: TYPE_OID.int8 },
    { name: 'success', typeOid: TYPE_OID.bool },
    { name: 'result', typeOid: TYPE_OID.text },
  ],
  setReturning: true,
  async run(args, ctx): Promise<Rows> {
    await ensureDatabaseCatalog(ctx);
    const table = await distributedTable(ctx, args.get('table_name')!);
    const shards = table.shards.filter((s) => s.placements.length > 0);
    const commands = await formatCommands(ctx, args.get('command')!, table, shards.map((s) => s.shardId));
    const tasks = shards.map((s, i) => ({ node: s.placements[0]!.node, command: commands[i]! }));
    const outcomes = await runTasks(ctx, tasks, parseBool(args.get('parallel')!, 'parallel'));
    return shards.map((s, i) => [String(s.shardId), outcomes[i]!.success ? 't' : 'f', outcomes[i]!.result]);
  },
};

const runOnPlacements: CommandDefinition = {
  name: 'run_command_on_placements',
  params: runOnShards.params,
  returns: [
    { name: 'nodename', typeOid: TYPE_OID.text },
    { name: 'nodeport', typeOid: TYPE_OID.int4 },
    { name: 'shardid', typeOid: TYPE_OID.int8 },
    { name: 'success', typeOid: TYPE_OID.bool },
    { name: 'result', typeOid: TYPE_OID.text },
  ],
  setReturning: true,
  async run(args, ctx): Promise<Rows> {
    await ensureDatabaseCatalog(ctx);
    const table = await distributedTable(ctx, args.get('table_name')!);
    const placements = table.shards.flatMap((s) => s.placements);
    const commands = await formatCommands(ctx, args.get('command')!, table, placements.map((p) => p.shardId));
    const tasks = placements.map((p, i) => ({ node: p.node, command: commands[i]! }));
    const outcomes = await runTasks(ctx, tasks, parseBool(args.get('parallel')!, 'parallel'));
    return placements.map((p, i) => [p.node.host, String(p.node.port), String(p.shardId), outcomes[i]!.success ? 't' : 'f', outcomes[i]!.result]);
  },
};

export const RUN_COMMANDS: CommandDefinition[] = [runOnWorkers, runOnShards, runOnPlacements];
