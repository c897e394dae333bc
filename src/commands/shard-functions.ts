/**
 * Shard lookups and statistics: get_shard_id_for_distribution_column (Citus's
 * signature), hashing with src/sql's bit-exact hash functions and asking
 * PostgreSQL only for inputs those cannot parse; and
 * refreshShardSizes, which fills the sizes citus_shards and citus_tables show
 * (the session calls it before answering queries on those views).
 */
import { PgError } from '../protocol/errors.js';
import { hashCallSql, hashDistributionValue, UnsupportedHashInputError } from '../sql/hash.js';
import type { DistributedTable } from '../metadata/types.js';
import { TYPE_OID, type CommandDefinition, type Rows } from './command-types.js';
import { coordinatorPool, ensureDatabaseCatalog, resolveRelation } from './common.js';
import type { CommandContext } from './context.js';
import { shardIndexFor } from './distribute-table.js';

/** PostgreSQL's hash of a distribution value given in text form, as the table's column type hashes it. */
export async function hashOfValue(ctx: CommandContext, table: DistributedTable, value: string): Promise<number> {
  try {
    return hashDistributionValue(table.distributionColumnSqlType!, value);
  } catch (err) {
    if (!(err instanceof UnsupportedHashInputError)) throw err;
  }
  // A type or input form we do not reproduce: PostgreSQL computes it, through the column's own type.
  const r = await coordinatorPool(ctx).query(
    `SELECT ${hashCallSql(table.hashFunction!, `CAST($1 AS ${table.distributionColumnSqlType})`)}`,
    [value],
  );
  return Number(r.rows[0]![0]);
}

/** The shard of `table` that holds rows whose distribution column equals `value`. */
export async function shardIdForValue(ctx: CommandContext, table: DistributedTable, value: string | null): Promise<number> {
  if (table.method === 'reference') return table.shards[0]!.shardId;
  if (value === null) {
    throw new PgError({ code: '22004', message: 'distribution value cannot be NULL for tables other than reference tables.' });
  }
  const hash = await hashOfValue(ctx, table, value);
  return table.shards[shardIndexFor(table.shards.map((s) => s.minValue), hash)]!.shardId;
}

const getShardIdForDistributionColumn: CommandDefinition = {
  name: 'get_shard_id_for_distribution_column',
  params: [
    { name: 'table_name', type: 'regclass' },
    { name: 'distribution_value', type: '"any"', default: null },
  ],
  returns: [{ name: 'get_shard_id_for_distribution_column', typeOid: TYPE_OID.int8 }],
  setReturning: false,
  async run(args, ctx): Promise<Rows> {
    await ensureDatabaseCatalog(ctx);
    const rel = await resolveRelation(ctx, args.get('table_name')!);
    const table = (await ctx.metadata.get(ctx.database)).tablesById.get(rel.oid);
    if (!table) throw new PgError({ code: '22023', message: `relation ${rel.name} is not distributed` });
    return [[String(await shardIdForValue(ctx, table, args.get('distribution_value') ?? null))]];
  },
};

/**
 * Measures every active placement's pg_total_relation_size on its worker and
 * stores it in the catalog (pg_dist_placement keeps shardlength 0, as Citus
 * does for hash tables; the size goes to the column citus_shards reads).
 * Unreachable nodes keep their previous sizes.
 */
export async function refreshShardSizes(ctx: CommandContext): Promise<void> {
  await ensureDatabaseCatalog(ctx);
  const catalog = await ctx.metadata.get(ctx.database);
  const byNode = new Map<string, { host: string; port: number; groupId: number; ids: number[]; names: string[] }>();
  for (const table of catalog.tables.values()) {
    for (const shard of table.shards) {
      for (const p of shard.placements) {
        const key = `${p.node.host}:${p.node.port}`;
        const entry = byNode.get(key) ?? { host: p.node.host, port: p.node.port, groupId: p.groupId, ids: [], names: [] };
        entry.ids.push(shard.shardId);
        entry.names.push(`"${table.schema.replace(/"/g, '""')}"."${shard.shardName.replace(/"/g, '""')}"`);
        byNode.set(key, entry);
      }
    }
  }
  const coordinator = coordinatorPool(ctx);
  await Promise.all(
    [...byNode.values()].map(async (n) => {
      const names = '{' + n.names.map((x) => '"' + x.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
      let sizes;
      try {
        sizes = await ctx.pools
          .get(n.host, n.port, ctx.database)
          .query(
            `SELECT u.id, pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(u.name))
             FROM unnest($1::bigint[], $2::text[]) AS u(id, name)`,
            ['{' + n.ids.join(',') + '}', names],
          );
      } catch {
        return;
      }
      await coordinator.query(
        `UPDATE pgweave.placement pl SET shardsize = u.size, sizerefreshed = pg_catalog.now()
         FROM unnest($1::bigint[], $2::bigint[]) AS u(id, size)
         WHERE pl.shardid = u.id AND pl.groupid = $3`,
        ['{' + sizes.rows.map((r) => r[0]).join(',') + '}', '{' + sizes.rows.map((r) => r[1] ?? 'NULL').join(',') + '}', String(n.groupId)],
      );
    }),
  );
}

export const SHARD_COMMANDS: CommandDefinition[] = [getShardIdForDistributionColumn];
