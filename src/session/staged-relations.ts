/**
 * The coordinator's staging tables as a pulled statement's RowDescription
 * may show them: the final query of a `pull` route reads temporary tables
 * of pgweave's (`pgweave_pull_<relid>`, `pgweave_partial_…`,
 * `pgweave_intermediate_…`), and PostgreSQL names them as the columns'
 * tables. Their OIDs must not reach the client (a driver would find a
 * table it never made, or none once it is dropped): a pulled table, made
 * LIKE its distributed table, maps to that table and its column numbers by
 * name (certain: the same columns); every other staging table to 0/0, as
 * PostgreSQL sends for a computed column. Read once per pulled statement,
 * after its tables are made, in the session's own backend (which sees
 * them inside an open block too); the coordinator link applies the map to
 * the RowDescriptions it forwards (executor/backend-link.ts
 * `stagedRelations`) until the final query's ReadyForQuery.
 */
import type { BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { relationOf, type RelationColumns } from '../executor/relation-oids.js';
import { PULL_TEMP_PREFIX } from '../planner/pull-planner.js';

/** (staging table, its attnum, the source table or NULL, the source's attnum) of every pgweave_ table in the session's temporary schema. */
const STAGED_RELATIONS_SQL = `SELECT c.oid, a.attnum, s.attrelid, s.attnum
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_attribute s
    ON s.attrelid = CASE WHEN c.relname ~ '^${PULL_TEMP_PREFIX}[0-9]+$' THEN pg_catalog.substr(c.relname, ${PULL_TEMP_PREFIX.length + 1})::pg_catalog.oid END
   AND s.attname = a.attname AND s.attnum > 0 AND NOT s.attisdropped
  WHERE c.relnamespace = pg_catalog.pg_my_temp_schema() AND c.relname LIKE 'pgweave\\_%'`;

/** Sets `coordinator.stagedRelations` from its session's staging tables; on a failure to read them, every staging OID seen goes out as it is. */
export async function noteStagedRelations(coordinator: BackendLink): Promise<void> {
  const r = await queryOnLink(coordinator, STAGED_RELATIONS_SQL);
  if (r.error) return;
  const columns = new Map<number, { table: number; pairs: Array<[number, number]> }>();
  for (const row of r.rows) {
    const [oid, attnum, source, sourceAttnum] = decodeDataRow(row);
    let c = columns.get(Number(oid));
    if (c === undefined) columns.set(Number(oid), (c = { table: 0, pairs: [] }));
    if (source === null) continue;
    c.table = Number(source);
    c.pairs.push([Number(attnum), Number(sourceAttnum)]);
  }
  const relations = new Map<number, RelationColumns>();
  for (const [oid, c] of columns) relations.set(oid, relationOf(c.table, c.pairs));
  coordinator.stagedRelations = relations;
}
