/**
 * Shard groups: the shards of co-located tables that cover the same hash
 * range (index i of every table of a colocation group) live together and
 * are one unit for connection–shard affinity in a transaction block. A key
 * names one group's placement on one node. Keys are computed once per
 * catalog version.
 */
import type { Catalog } from '../metadata/types.js';

const keysByCatalog = new WeakMap<Catalog, Map<number, string>>();

/** The key of the shard group a shard belongs to, on a node. */
export function shardGroupKey(catalog: Catalog, nodeId: number, shardId: number): string {
  let keys = keysByCatalog.get(catalog);
  if (!keys) {
    keys = new Map();
    for (const t of catalog.tables.values()) {
      t.shards.forEach((s, i) => keys!.set(s.shardId, `${t.colocationId}:${i}`));
    }
    keysByCatalog.set(catalog, keys);
  }
  return `${nodeId}:${keys.get(shardId) ?? `shard ${shardId}`}`;
}
