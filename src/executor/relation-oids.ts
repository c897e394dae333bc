/**
 * Worker relations → the coordinator's tables, for the table OID and column
 * number of each RowDescription field (what JDBC's ResultSetMetaData and
 * npgsql's GetSchemaTable look up in the pg_class and pg_attribute of the
 * server they talk to: the coordinator). A worker reports its shard's OID
 * and attnum; the client must see the distributed table's coordinator OID
 * and the coordinator attnum of the column with the same name (they differ
 * where the coordinator's table had columns dropped before its shards were
 * made). A relation that is no shard of a coordinator table (a worker's
 * temporary or staging table, a table made only on the worker) maps to
 * 0/0, as PostgreSQL sends for a computed column: never an OID that could
 * name another relation on the coordinator. TypeOidMap (type-oids.ts)
 * holds the result and rewrites the messages; the SQL here runs as the
 * internal role.
 */
/** FirstNormalObjectId: OIDs below it are built into every PostgreSQL server alike. */
export const FIRST_NORMAL_OID = 16384;

/** A worker relation's coordinator table (0: none) and `attnums[worker attnum]` → coordinator attnum (0: none). */
export interface RelationColumns {
  table: number;
  attnums: Int16Array;
}

/** What every relation the coordinator does not know maps to: table 0, column 0. */
export const NO_RELATION: RelationColumns = { table: 0, attnums: new Int16Array(0) };

/**
 * The worker's relations with their live columns, one row per column
 * (oid, schema, name, attnum, attname): every user relation when `oids`
 * is null (the first load of a catalog version), else just those.
 */
export function workerRelationsSql(oids: readonly number[] | null): string {
  const which = oids === null ? `c.oid >= ${FIRST_NORMAL_OID}` : `c.oid = ANY('{${oids.map((o) => o >>> 0).join(',')}}'::pg_catalog.oid[])`;
  return `SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE ${which} AND c.relkind IN ('r', 'p', 'f', 'v', 'm')`;
}

/** The live columns (attrelid, attname, attnum) of coordinator tables. */
export function coordinatorColumnsSql(tables: readonly number[]): string {
  return `SELECT a.attrelid, a.attname, a.attnum FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = ANY('{${tables.map((o) => o >>> 0).join(',')}}'::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped`;
}

type Rows = ReadonlyArray<ReadonlyArray<string | null>>;

interface WorkerRelation {
  table: number;
  columns: Array<[number, string]>;
}

/**
 * Worker relations (rows of `workerRelationsSql`) whose name is a shard of
 * a coordinator table: `tableOfShard(schema, name)` → that table's
 * coordinator OID, else null. Returns them by worker OID, and the tables
 * whose columns `relationColumns` needs.
 */
export function shardRelations(rows: Rows, tableOfShard: (schema: string, name: string) => number | null): { relations: Map<number, WorkerRelation>; tables: number[] } {
  const relations = new Map<number, WorkerRelation>();
  const tables = new Set<number>();
  for (const r of rows) {
    const oid = Number(r[0]);
    let rel = relations.get(oid);
    if (rel === undefined) {
      const table = tableOfShard(r[1]!, r[2]!) ?? 0;
      relations.set(oid, (rel = { table, columns: [] }));
      if (table !== 0) tables.add(table);
    }
    if (rel.table !== 0) rel.columns.push([Number(r[3]), r[4]!]);
  }
  return { relations, tables: [...tables] };
}

/** Each worker relation with the coordinator attnums of its columns by name (rows of `coordinatorColumnsSql`). */
export function relationColumns(relations: ReadonlyMap<number, WorkerRelation>, coordinatorRows: Rows): Array<[number, RelationColumns]> {
  const attnums = new Map<string, number>();
  for (const r of coordinatorRows) attnums.set(r[0] + '\0' + r[1], Number(r[2]));
  const out: Array<[number, RelationColumns]> = [];
  for (const [oid, rel] of relations) {
    out.push([oid, relationOf(rel.table, rel.columns.map(([n, name]) => [n, attnums.get(rel.table + '\0' + name) ?? 0]))]);
  }
  return out;
}

/** `table` with its column numbers: (this relation's attnum, the table's) pairs; 0 table: NO_RELATION. */
export function relationOf(table: number, pairs: ReadonlyArray<readonly [number, number]>): RelationColumns {
  if (table === 0) return NO_RELATION;
  let size = 1;
  for (const [n] of pairs) if (n >= size) size = n + 1;
  const attnums = new Int16Array(size);
  for (const [n, to] of pairs) attnums[n] = to;
  return { table, attnums };
}

/**
 * The coordinator column number of a RowDescription field's worker column
 * number `column` (as sent: unsigned 16 bits) in `rel`: a system column
 * (attnum < 0: ctid…) keeps its number, a user column takes the
 * coordinator's; 0 when there is none (the field then gets table 0 too).
 */
export function coordinatorColumn(rel: RelationColumns, column: number): number {
  if (rel.table === 0) return 0;
  if (column & 0x8000) return column;
  return column < rel.attnums.length ? rel.attnums[column]! : 0;
}

/**
 * What the coordinator link knows of a pulled statement's staging tables
 * (session/staged-relations.ts): each staging table as its source
 * (NO_RELATION: 0/0), and, where the coordinator described the client's
 * own statement, each field's (table OID, column number) as PostgreSQL
 * gives them for it — the answer a plain PostgreSQL sends.
 */
export interface StagedTables {
  relations: ReadonlyMap<number, RelationColumns>;
  /** Per field: table OID, column number; null when not described. */
  origins: Uint32Array | null;
}

/**
 * Rewrites, in place, the table OIDs and column numbers of a
 * RowDescription at buf[start, end): every field's from `staged.origins`
 * when they describe as many fields, else those whose table is a staging
 * table from `staged.relations` (other fields stay as they are).
 */
export function mapRelationsInPlace(buf: Buffer, start: number, end: number, staged: StagedTables): void {
  const count = buf.readUInt16BE(start + 5);
  const origins = staged.origins !== null && staged.origins.length === count * 2 ? staged.origins : null;
  let pos = start + 7;
  for (let i = 0; i < count && pos < end; i++) {
    while (pos < end && buf[pos] !== 0) pos++;
    const at = pos + 1;
    if (at + 18 > end) break;
    if (origins !== null) {
      buf.writeUInt32BE(origins[2 * i]!, at);
      buf.writeUInt16BE(origins[2 * i + 1]!, at + 4);
    } else {
      const rel = staged.relations.get(buf.readUInt32BE(at));
      if (rel !== undefined) {
        const column = coordinatorColumn(rel, buf.readUInt16BE(at + 4));
        buf.writeUInt32BE(column === 0 ? 0 : rel.table, at);
        buf.writeUInt16BE(column, at + 4);
      }
    }
    pos = at + 18;
  }
}
