/**
 * A CommandContext for tests that call commands directly, as the session
 * would: the client is `postgres` on the coordinator PostgreSQL (runAsClient
 * runs in that one connection), internal work goes through fresh NodePools and
 * a MetadataCache of this test process.
 */
import { connectBackend } from '../../src/pool/backend-connection.js';
import { InternalClient } from '../../src/pool/internal-client.js';
import { NodePools } from '../../src/pool/node-pools.js';
import { MetadataCache } from '../../src/metadata/metadata-cache.js';
import { COMMANDS, resolveCommandArgs, type Rows } from '../../src/commands/registry.js';
import type { CommandContext } from '../../src/commands/context.js';
import type { TestCluster } from '../helpers/cluster.js';

export interface TestContext {
  ctx: CommandContext;
  /** The client's own connection to the coordinator PostgreSQL. */
  client: InternalClient;
  close(): void;
}

export async function makeContext(cluster: TestCluster, opts: { database?: string; user?: string; password?: string } = {}): Promise<TestContext> {
  const database = opts.database ?? 'postgres';
  const user = opts.user ?? 'postgres';
  const credentials = { password: opts.password ?? cluster.password };
  const pools = new NodePools(cluster.config.internal);
  const metadata = new MetadataCache(pools, cluster.coordinatorPg);
  const client = new InternalClient(
    await connectBackend({ host: cluster.coordinatorPg.host, port: cluster.coordinatorPg.port, user, database, credentials }),
  );
  const ctx: CommandContext = {
    database,
    user,
    credentials,
    config: cluster.config,
    pools,
    metadata,
    settings: new Map(),
    runAsClient: (sql, params) => client.query(sql, params),
  };
  return {
    ctx,
    client,
    close() {
      client.close();
      metadata.close();
      pools.close();
    },
  };
}

/** Calls a registered command with positional and named text arguments. */
export async function call(ctx: CommandContext, name: string, positional: Array<string | null>, named: Record<string, string | null> = {}): Promise<Rows> {
  const def = COMMANDS.get(name);
  if (!def) throw new Error(`no command ${name}`);
  return def.run(resolveCommandArgs(def, positional, new Map(Object.entries(named))), ctx);
}

/** Runs SQL on a node as the internal role. */
export function onNode(ctx: CommandContext, node: { host: string; port: number }, sql: string, params?: Array<string | null>) {
  return ctx.pools.get(node.host, node.port, ctx.database).query(sql, params);
}
