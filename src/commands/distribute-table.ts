/**
 * create_distributed_table and create_reference_table: turn a coordinator
 * table into shards on the workers, all or nothing.
 *
 * One transaction on the coordinator PostgreSQL (catalog lock, table lock,
 * catalog rows, the move's snapshot of the rows, emptying the table, the
 * cache notification) and one per worker (schema, shards, rows, foreign
 * keys) commit together through two-phase commit. Until the coordinator
 * commits, nothing is visible anywhere; any failure rolls every node back.
 *
 *   resolve table (as the client) → lock, validate → plan shards → catalog rows
 *   → per worker: BEGIN, objects the table depends on (types, collations,
 *   extensions, functions: object-definitions.ts), schema, shard tables → copy rows (hash-routed by
 *   PostgreSQL's own hash function, computed in the COPY-out query) → foreign
 *   keys → empty the coordinator table → NOTIFY → 2PC → wait for the listener
 */
import type { InternalClient } from '../pool/internal-client.js';
import type { InternalPool } from '../pool/internal-pool.js';
import { PgError } from '../protocol/errors.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { hashCallSql } from '../sql/hash.js';
import { insertTableMetadata, readPartition, readWorkerNodes, type NodeRow } from '../metadata/catalog-writes.js';
import { abortAll, commitTwoPhase, ensureLiveness, type Participant } from '../transaction/two-phase-commit.js';
import { beginCatalogTransaction, coordinatorPool, ensureDatabaseCatalog, parseInt32, requireTableOwner, resolveRelation, type RelationInfo } from './common.js';
import type { CommandContext } from './context.js';
import { RowBuffer, forEachBatch, insertFromArraysSql } from './data-movement.js';
import { createShardStatements, foreignKeyStatements, prepareShardDdl, qualifiedShardName, rolesNeeded, schemaStatements } from './shard-ddl.js';
import { planForeignKeys, planHashShards, planReferenceShard, type ShardPlan } from './shard-plan.js';
import { checkUniquenessIncludesDistributionColumn, copiedColumns, describeTable, type TableDefinition } from './table-definition.js';
import { ensureObjectsOn, objectRoles, tableDependencyDefinitions } from './object-definitions.js';
import { ensureRoles } from './worker-objects.js';

export interface DistributeRequest {
  table: string;
  method: 'hash' | 'reference';
  distributionColumn?: string;
  colocateWith?: string;
  shardCount?: number | null;
}

/** Worker transactions of one operation, by group id. */
export class WorkerTransactions {
  readonly participants = new Map<number, Participant>();
  private readonly held: Array<{ pool: InternalPool; client: InternalClient }> = [];

  async open(ctx: CommandContext, node: NodeRow): Promise<Participant> {
    const existing = this.participants.get(node.groupId);
    if (existing) return existing;
    await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
    const pool = ctx.pools.get(node.host, node.port, ctx.database);
    const client = await pool.acquire();
    this.held.push({ pool, client });
    await client.query("BEGIN; SET LOCAL search_path = pg_catalog; SET LOCAL lock_timeout = '30s'");
    const participant = { client, groupId: node.groupId, label: `${node.host}:${node.port}` };
    this.participants.set(node.groupId, participant);
    return participant;
  }

  list(): Participant[] {
    return [...this.participants.values()];
  }

  release(): void {
    for (const { pool, client } of this.held) pool.release(client);
    this.held.length = 0;
  }
}

/**
 * Runs `work` inside a coordinator catalog transaction plus worker
 * transactions, and commits them together (or rolls all back).
 */
export async function withDistributedChange(
  ctx: CommandContext,
  work: (coordinator: InternalClient, workers: WorkerTransactions) => Promise<void>,
): Promise<void> {
  await ensureLiveness(ctx.pools, ctx.config.coordinator, ctx.config.internalDatabase ?? 'postgres');
  const change = await ctx.metadata.beginChange(ctx.database);
  const pool = coordinatorPool(ctx);
  const coordinator = await pool.acquire();
  const workers = new WorkerTransactions();
  let committed = false;
  try {
    await beginCatalogTransaction(coordinator);
    await work(coordinator, workers);
    await coordinator.query(change.notifySql);
    await commitTwoPhase(coordinator, workers.list());
    committed = true;
  } catch (err) {
    if (!committed) {
      await abortAll(coordinator, workers.list());
      change.cancel();
    }
    throw err;
  } finally {
    workers.release();
    pool.release(coordinator);
    ctx.metadata.invalidate(ctx.database);
  }
  await change.wait();
}

export async function distributeTable(ctx: CommandContext, req: DistributeRequest): Promise<void> {
  await ensureDatabaseCatalog(ctx);
  await prepareShardDdl();
  const rel = await resolveRelation(ctx, req.table);
  const colocate = req.colocateWith ?? 'default';
  const colocateWith: 'default' | 'none' | RelationInfo =
    colocate.toLowerCase() === 'default' ? 'default' : colocate.toLowerCase() === 'none' ? 'none' : await resolveRelation(ctx, colocate);

  await withDistributedChange(ctx, async (coordinator, workers) => {
    await validateTable(coordinator, ctx, rel);
    await coordinator.query(`LOCK TABLE ${quoteQualified(rel.schema, rel.name)} IN EXCLUSIVE MODE`);
    const def = await describeTable(coordinator, rel.oid);

    let plan: ShardPlan;
    let distAttnum: number | null = null;
    let hashFunction: string | null = null;
    if (req.method === 'hash') {
      const column = def.columns.find((c) => c.name === req.distributionColumn);
      if (!column) throw new PgError({ code: '42703', message: `column "${req.distributionColumn}" of relation "${rel.name}" does not exist` });
      distAttnum = column.attnum;
      const info = await coordinator.query(
        'SELECT pgweave.hash_function(a.atttypid), a.attcollation FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum = $2',
        [String(rel.oid), String(distAttnum)],
      );
      hashFunction = info.rows[0]![0];
      if (!hashFunction) {
        throw new PgError({
          code: '42883',
          message: `could not identify a hash function for type ${column.sqlType}`,
          detail: 'Partition column types must have a hash function defined to use hash partitioning.',
        });
      }
      checkUniquenessIncludesDistributionColumn(def, distAttnum);
      const setting = ctx.settings.get('citus.shard_count');
      const shardCount = req.shardCount ?? (setting === undefined ? 32 : parseInt32(setting, 'citus.shard_count'));
      plan = await planHashShards(coordinator, rel, {
        method: 'hash',
        distAttnum,
        typeOid: column.typeOid,
        collation: Number(info.rows[0]![1]),
        colocateWith,
        shardCount,
        shardCountGiven: req.shardCount != null,
      });
    } else {
      plan = await planReferenceShard(coordinator);
    }
    const foreignKeyTargets = await planForeignKeys(coordinator, def, req.method, distAttnum, plan);
    await insertTableMetadata(coordinator, { relationId: rel.oid, method: req.method === 'hash' ? 'h' : 'n', distAttnum, colocationId: plan.colocationId }, plan.shards);

    // Worker transactions with the schema and the empty shards.
    const nodes = new Map((await readWorkerNodes(coordinator)).map((n) => [n.groupId, n]));
    const coordinatorInternal = coordinatorPool(ctx);
    const dependencies = await tableDependencyDefinitions(coordinator, [rel.oid]);
    for (const groupId of new Set(plan.shards.flatMap((s) => s.groupIds))) {
      const node = nodes.get(groupId);
      if (!node) throw new PgError({ code: 'XX000', message: `no node for group ${groupId}` });
      await ctx.pools.ensureDatabase(node.host, node.port, ctx.database);
      await ensureRoles(coordinatorInternal, ctx.pools.get(node.host, node.port, ctx.database), [...rolesNeeded(def), ...objectRoles(dependencies)]);
      const { client } = await workers.open(ctx, node);
      await ensureObjectsOn(client, dependencies);
      await client.query(schemaStatements(def).join(';\n'));
    }
    await Promise.all(
      [...workers.participants].map(async ([groupId, p]) => {
        const statements = plan.shards.filter((s) => s.groupIds.includes(groupId)).flatMap((s) => createShardStatements(def, s.shardId));
        if (statements.length > 0) await p.client.query(statements.join(';\n'));
      }),
    );

    await copyRowsIntoShards(coordinator, workers, def, plan, hashFunction, distAttnum);

    await Promise.all(
      [...workers.participants].map(async ([groupId, p]) => {
        const statements = plan.shards.flatMap((s, i) =>
          s.groupIds.includes(groupId) ? foreignKeyStatements(def, s.shardId, foreignKeyTargets(i)) : [],
        );
        if (statements.length > 0) await p.client.query(statements.join(';\n'));
      }),
    );
    await emptyCoordinatorTable(coordinator, rel);
  });
}

async function validateTable(client: InternalClient, ctx: CommandContext, rel: RelationInfo): Promise<void> {
  await requireTableOwner(client, ctx, rel);
  if (rel.persistence === 't') throw new PgError({ code: '0A000', message: 'cannot distribute a temporary table' });
  if (rel.relkind === 'p') throw new PgError({ code: '0A000', message: `distributing partitioned table "${rel.name}" is not supported yet` });
  if (rel.relkind !== 'r') {
    throw new PgError({ code: '42809', message: `cannot distribute relation "${rel.name}"`, detail: 'Distributed relations must be regular tables.' });
  }
  const inherits = await client.query('SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = $1 OR inhparent = $1 LIMIT 1', [String(rel.oid)]);
  if (inherits.rows.length > 0) {
    throw new PgError({ code: '0A000', message: `cannot distribute relation "${rel.name}" which takes part in table inheritance` });
  }
  if (await readPartition(client, rel.oid)) throw new PgError({ code: 'XX000', message: `table "${rel.name}" is already distributed` });
}

/**
 * Streams the coordinator table's rows into the shards. For hash tables the
 * COPY-out query computes PostgreSQL's own hash of the distribution column;
 * the row goes to the shard whose range holds it.
 */
async function copyRowsIntoShards(
  coordinator: InternalClient,
  workers: WorkerTransactions,
  def: TableDefinition,
  plan: ShardPlan,
  hashFunction: string | null,
  distAttnum: number | null,
): Promise<void> {
  const columns = copiedColumns(def);
  const names = columns.map((c) => quoteIdent(c.name)).join(', ');
  const source = quoteQualified(def.schema, def.name);
  const clientsOf = (groupIds: number[]) => groupIds.map((g) => workers.participants.get(g)!.client);
  const buffers = plan.shards.map((s) => new RowBuffer(columns.length, insertFromArraysSql(qualifiedShardName(def.schema, def.name, s.shardId), columns)));

  if (hashFunction === null) {
    const targets = clientsOf(plan.shards[0]!.groupIds);
    const buffer = buffers[0]!;
    await forEachBatch(coordinator, `SELECT ${names || 'NULL'} FROM ONLY ${source}`, async (rows) => {
      for (const row of rows) {
        buffer.add(row, 0);
        if (buffer.full) await buffer.flush(targets);
      }
    });
    await buffer.flush(targets);
    return;
  }

  const distColumn = def.columns.find((c) => c.attnum === distAttnum)!;
  const hashExpr = hashCallSql(hashFunction, quoteIdent(distColumn.name));
  const mins = plan.shards.map((s) => s.minValue!);
  const targets = plan.shards.map((s) => clientsOf(s.groupIds));
  await forEachBatch(coordinator, `SELECT ${hashExpr}${names ? ', ' + names : ''} FROM ONLY ${source}`, async (rows) => {
    const flushes: Promise<void>[] = [];
    let nullKey = false;
    for (const row of rows) {
      if (row[0] === null) {
        nullKey = true;
        break;
      }
      const index = shardIndexFor(mins, Number(row[0]));
      const buffer = buffers[index]!;
      buffer.add(row, 1);
      if (buffer.full) flushes.push(buffer.flush(targets[index]!));
    }
    const settled = await Promise.allSettled(flushes);
    if (nullKey) throw new PgError({ code: '22004', message: `the partition column of table ${def.name} cannot be NULL` });
    const failed = settled.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
  });
  const settled = await Promise.allSettled(buffers.map((b, i) => b.flush(targets[i]!)));
  const failed = settled.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
}

/** Index of the last shard whose minValue ≤ hash (shards sorted by range). */
export function shardIndexFor(mins: number[], hash: number): number {
  let lo = 0;
  let hi = mins.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (mins[mid]! <= hash) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** TRUNCATE, or DELETE when other tables' foreign keys reference the table (TRUNCATE would refuse). */
async function emptyCoordinatorTable(client: InternalClient, rel: RelationInfo): Promise<void> {
  const referenced = await client.query('SELECT 1 FROM pg_catalog.pg_constraint WHERE confrelid = $1 AND conrelid <> $1 LIMIT 1', [String(rel.oid)]);
  const table = quoteQualified(rel.schema, rel.name);
  if (referenced.rows.length === 0) {
    await client.query(`TRUNCATE ONLY ${table}`);
    return;
  }
  try {
    await client.query(`DELETE FROM ONLY ${table}`);
  } catch (err) {
    if (!(err instanceof PgError) || err.code !== '23503') throw err;
    throw new PgError({
      code: '0A000',
      message: `cannot distribute table "${rel.name}" because rows of table "${err.fields.table ?? '?'}" reference it through foreign key "${err.fields.constraint ?? '?'}"`,
      detail: 'Its rows move to the workers, where a local table\'s foreign key cannot follow them.',
      hint: 'Drop the foreign key (or empty the referencing table), distribute both tables, then add the foreign key again.',
    });
  }
}
