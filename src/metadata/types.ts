/**
 * The in-memory shape of one database's distributed catalog, as the planner
 * and executor read it. Loaded from the `pgweave` schema of the coordinator
 * PostgreSQL (see catalog-schema.ts) and cached per database.
 */

export interface WorkerNode {
  nodeId: number;
  groupId: number;
  host: string;
  port: number;
  isActive: boolean;
  shouldHaveShards: boolean;
}

export interface ShardPlacement {
  placementId: number;
  shardId: number;
  groupId: number;
  node: WorkerNode;
}

export interface Shard {
  shardId: number;
  /** Inclusive int32 hash range; reference tables use the full range. */
  minValue: number;
  maxValue: number;
  /** Name of the shard table on its node: `<table>_<shardid>`, in the table's schema. */
  shardName: string;
  placements: ShardPlacement[];
}

export type DistributionMethod = 'hash' | 'reference';

export interface DistributedTable {
  /** pg_class oid on the coordinator PostgreSQL. */
  relationId: number;
  schema: string;
  name: string;
  method: DistributionMethod;
  /** Distribution column (null for reference tables). */
  distributionColumn: string | null;
  /** Canonical type name of the distribution column, e.g. "int4", "text" (the base type of a domain). */
  distributionColumnType: string | null;
  /**
   * The distribution column's (base) type as format_type prints it, with its
   * modifiers: "integer", "numeric(10,2)", "character varying(20)". Pass this
   * to hashDistributionValue: modifiers change how input is rounded, so the hash.
   */
  distributionColumnSqlType: string | null;
  /**
   * The schema-qualified, quoted hash function of the distribution column's
   * default hash opclass, e.g. `"pg_catalog"."hashint4"`, for hashing in SQL
   * (workers repartitioning, values hashDistributionValue cannot parse).
   */
  hashFunction: string | null;
  colocationId: number;
  /** Column names in attribute order (for INSERT without a column list); null when not loaded. */
  columns?: string[] | null;
  /**
   * Columns whose default calls a function (nextval, now()…) and identity
   * columns: an INSERT leaving them out is evaluated on the coordinator, so
   * shards need no sequence and agree on the value. Constant defaults live
   * on the shards too. Generated columns are not defaults: the shards
   * compute them.
   */
  evaluatedDefaults?: string[];
  /** GENERATED ALWAYS AS (…) STORED columns: an INSERT never names them (the shard computes them). */
  generatedColumns?: string[];
  /** Sorted by minValue; for hash tables they cover the whole int32 range. */
  shards: Shard[];
}

export interface Catalog {
  /** Increases with every change, so plans made with an older catalog can be dropped. */
  version: number;
  nodes: WorkerNode[];
  /** Keyed by `schema.name` (unquoted, as stored in pg_class/pg_namespace). */
  tables: Map<string, DistributedTable>;
  tablesById: Map<number, DistributedTable>;
}

export function tableKey(schema: string, name: string): string {
  return schema + '.' + name;
}

/** Where a PostgreSQL node listens (structurally the same as server/config's NodeAddress). */
export interface NodeAddress {
  host: string;
  port: number;
}
