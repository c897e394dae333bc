/**
 * Which distributed table a shard table belongs to, by the shard table's
 * name (`users_102008`): for what workers report in their own names — the
 * row types of shard tables (executor/type-oids.ts, through the server's
 * loader) and the table names in their errors (session/shard-error-names.ts).
 * A shard name carries its shard id, so it names one shard of one table
 * whatever the schema. Built once per catalog version, on first need.
 */
import type { Catalog, DistributedTable, Shard } from './types.js';

export interface ShardTable {
  shard: Shard;
  table: DistributedTable;
}

const byCatalog = new WeakMap<Catalog, Map<string, ShardTable>>();

/** The shard whose table is named `name` (unqualified, as stored), with its distributed table; undefined when none is. */
export function shardTableNamed(catalog: Catalog, name: string): ShardTable | undefined {
  let m = byCatalog.get(catalog);
  if (m === undefined) {
    m = new Map();
    for (const table of catalog.tables.values()) for (const shard of table.shards) m.set(shard.shardName, { shard, table });
    byCatalog.set(catalog, m);
  }
  return m.get(name);
}
