/**
 * How a DDL statement on distributed tables is applied everywhere, all or
 * nothing (issue 3, DESIGN.md decisions 6 and 9).
 *
 * Transactional DDL (most statements):
 *
 *   internal BEGIN on the coordinator PostgreSQL (commit records, catalog rows, NOTIFY)
 *   client BEGIN; the statement itself, in the client's own session ── PostgreSQL checks
 *        │                                       ownership and privileges as the client
 *   per worker holding shards: connect AS THE CLIENT, BEGIN, the shard statements
 *        │
 *   commitTwoPhase(internal, [client session, worker 1, worker 2, …])
 *
 * The internal transaction is opened after the statement ran (before it,
 * when it takes the catalog lock), so the handler may use the internal pool
 * meanwhile (distributed-objects.ts).
 *
 * The client's coordinator transaction is itself a two-phase participant: it
 * is PREPAREd like the workers' and committed by COMMIT PREPARED after the
 * commit record is durable, so the coordinator table and the shards change
 * together or not at all, and an error anywhere rolls every node back.
 *
 * Inside the client's transaction block the shard statements run on the
 * session's own worker connections instead and commit with the block
 * (in-block.ts).
 *
 * Statements PostgreSQL refuses to run in a transaction (VACUUM, CREATE /
 * DROP INDEX CONCURRENTLY) run as one autocommit statement per shard, as
 * Citus runs them, and are not atomic across shards.
 *
 * Shard statements run as the client's role, never behind SET ROLE on a
 * privileged connection: the roles they need are created on the workers
 * first, and the client's search_path is carried over, so names in
 * expressions resolve as they did on the coordinator.
 */
import type { BackendLink } from '../../executor/backend-link.js';
import type { InternalClient } from '../../pool/internal-client.js';
import { connectAsClient } from '../../pool/node-pools.js';
import { PgError } from '../../protocol/errors.js';
import type { WorkerNode } from '../../metadata/types.js';
import { abortAll, commitTwoPhase, ensureLiveness, type Participant } from '../../transaction/two-phase-commit.js';
import { beginCatalogTransaction, coordinatorPool } from '../common.js';
import type { CommandContext } from '../context.js';
import { ensureRoles } from '../worker-objects.js';
import { applyClientSettings, clientSettings } from '../client-settings.js';
import { runDdlInBlock } from './in-block.js';

export interface UtilityContext extends CommandContext {
  /** Whether the client is inside a transaction block. */
  inTransactionBlock: boolean;
  /** The session's connection to a worker, joined to the client's block (DDL inside BEGIN … COMMIT: in-block.ts). */
  linkFor?(node: WorkerNode, isWrite: boolean): Promise<BackendLink>;
  /** Runs `hook` once the client's open block commits. */
  afterCommit?(hook: () => Promise<void>): void;
}

/** The statements for each node holding shards, in the order they must run there. */
export class ShardTasks {
  private readonly byNode = new Map<number, { node: WorkerNode; statements: string[]; guards: Guard[] }>();
  /** Roles the statements name (grantees, new owners): created on the workers first. */
  readonly roles = new Set<string>();

  private entry(node: WorkerNode) {
    let e = this.byNode.get(node.nodeId);
    if (!e) this.byNode.set(node.nodeId, (e = { node, statements: [], guards: [] }));
    return e;
  }

  add(node: WorkerNode, sql: string): void {
    this.entry(node).statements.push(sql);
  }

  /** A query run on `node` before its statements; if it returns a row, the DDL fails with `error`. */
  guard(node: WorkerNode, sql: string, error: PgError): void {
    this.entry(node).guards.push({ sql, error });
  }

  nodes() {
    return [...this.byNode.values()];
  }
}

interface Guard {
  sql: string;
  error: PgError;
}

/** What the coordinator side of a transactional DDL produces. */
export interface AppliedDdl {
  /** The command tag PostgreSQL returned on the coordinator. */
  tag: string;
  tasks: ShardTasks;
  /** Catalog changes, in the internal coordinator transaction that also holds the commit records. */
  catalog?: (internal: InternalClient) => Promise<void>;
}

export interface TransactionalDdl {
  /** The statement's name for messages ("ALTER TABLE"). */
  what: string;
  /** Takes the catalog lock (the statement changes catalog rows). */
  catalogLock?: boolean;
  /** Other coordinators must reload their cached catalog (names, columns or tables changed). */
  notify?: boolean;
  /** Runs the statement in the client's transaction on the coordinator and returns the shard work. */
  apply(): Promise<AppliedDdl>;
}

export function refuseInTransactionBlock(ctx: UtilityContext, what: string): void {
  if (!ctx.inTransactionBlock) return;
  throw new PgError({
    code: '0A000',
    message: `${what} on a distributed table cannot run inside a transaction block yet`,
    hint: 'Run the statement on its own, outside BEGIN ... COMMIT: pgweave applies it to every shard atomically.',
  });
}

/** Runs a statement that concerns no distributed table as the client, unchanged. */
export async function runLocally(ctx: UtilityContext, statement: string): Promise<string> {
  return (await ctx.runAsClient(statement)).command;
}

/** The client's session on the coordinator as a two-phase commit participant. */
function clientParticipant(ctx: UtilityContext): Participant {
  const client = {
    get closed() {
      return false;
    },
    query: (sql: string) => ctx.runAsClient(sql),
  } as unknown as InternalClient;
  return { client, groupId: 0, label: 'the coordinator' };
}

/** A connection to `node` as the client, with the roles it needs present and the client's settings (client-settings.ts). */
async function connectWorker(ctx: UtilityContext, node: WorkerNode, roles: Iterable<string>, settings: ReadonlyArray<[string, string]>, local: boolean): Promise<InternalClient> {
  await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
  await ensureRoles(coordinatorPool(ctx), ctx.pools.get(node.host, node.port, ctx.database), [...new Set([ctx.user, ...roles])]);
  const client = await connectAsClient(node.host, node.port, ctx.database, ctx.user, ctx.credentials);
  try {
    if (local) await client.query('BEGIN');
    await applyClientSettings(client, settings, local);
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** Settles every promise, then throws the first failure (so every node is done before a rollback). */
async function allOrFirstError(work: Promise<unknown>[]): Promise<void> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
}

/** Applies a DDL statement to the coordinator table and every shard atomically; returns the command tag. */
export async function runTransactionalDdl(ctx: UtilityContext, ddl: TransactionalDdl): Promise<string> {
  if (ctx.inTransactionBlock && ctx.linkFor && ctx.afterCommit) {
    return runDdlInBlock({ ...ctx, linkFor: ctx.linkFor, afterCommit: ctx.afterCommit }, ddl, await clientSettings(ctx));
  }
  refuseInTransactionBlock(ctx, ddl.what);
  await ensureLiveness(ctx.pools, ctx.config.coordinator, ctx.config.internalDatabase ?? 'postgres');
  const settings = await clientSettings(ctx);
  const change = ddl.notify ? await ctx.metadata.beginChange(ctx.database) : null;
  const pool = coordinatorPool(ctx);
  // The internal transaction is opened after apply() unless it must lock the catalog first: apply() may
  // need connections of the same pool itself (objects a new column depends on, distributed-objects.ts).
  let internal: InternalClient | null = null;
  const openInternal = async (): Promise<InternalClient> => {
    internal = await pool.acquire();
    if (ddl.catalogLock) await beginCatalogTransaction(internal);
    else await internal.query('BEGIN');
    return internal;
  };
  const participants: Participant[] = [clientParticipant(ctx)];
  const workers: InternalClient[] = [];
  let committed = false;
  let tag: string;
  try {
    if (ddl.catalogLock) await openInternal();
    await ctx.runAsClient('BEGIN');
    const applied = await ddl.apply();
    tag = applied.tag;
    const coordinator = internal ?? (await openInternal());
    await applied.catalog?.(coordinator);
    await allOrFirstError(
      applied.tasks.nodes().map(async ({ node, statements, guards }) => {
        const client = await connectWorker(ctx, node, applied.tasks.roles, settings, true);
        workers.push(client);
        participants.push({ client, groupId: node.groupId, label: `${node.host}:${node.port}` });
        for (const g of guards) if ((await client.query(g.sql)).rows.length > 0) throw g.error;
        if (statements.length > 0) await client.query(statements.join(';\n'));
      }),
    );
    if (change) await coordinator.query(change.notifySql);
    await commitTwoPhase(coordinator, participants);
    committed = true;
  } catch (err) {
    if (!committed) {
      await abortAll(internal, participants);
      change?.cancel();
    }
    throw err;
  } finally {
    for (const w of workers) w.close();
    if (internal) pool.release(internal);
    if (change) ctx.metadata.invalidate(ctx.database);
  }
  await change?.wait();
  return tag;
}

/**
 * Runs each node's statements one by one outside any transaction (VACUUM,
 * CONCURRENTLY), nodes in parallel. Returns the first error, if any, after
 * every node has finished.
 */
export async function runWithoutTransaction(ctx: UtilityContext, tasks: ShardTasks): Promise<void> {
  const settings = await clientSettings(ctx);
  await allOrFirstError(
    tasks.nodes().map(async ({ node, statements }) => {
      const client = await connectWorker(ctx, node, tasks.roles, settings, false);
      try {
        for (const sql of statements) await client.query(sql);
      } finally {
        client.close();
      }
    }),
  );
}
