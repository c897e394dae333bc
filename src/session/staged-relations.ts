/**
 * The coordinator's staging tables as a pulled statement's RowDescription
 * may show them: the final query of a `pull` route reads temporary tables
 * of pgweave's (`pgweave_pull_<relid>`, `pgweave_partial_…`,
 * `pgweave_intermediate_…`), and PostgreSQL names them as the columns'
 * tables. Their OIDs must not reach the client (a driver would find a
 * table it never made, or none once it is dropped).
 *
 * Outside a transaction block the coordinator also describes the client's
 * own statement (Parse and Describe of it, closed at once: its tables are
 * the distributed tables' coordinator definitions, so PostgreSQL names
 * each field's table and column exactly as a plain PostgreSQL would), and
 * the final query's fields take those. Inside a block (where a failed
 * Parse would abort it), or when the Parse fails: a pulled table, made
 * LIKE its distributed table, maps to that table and its column numbers
 * by name (certain: the same columns); every other staging table to 0/0,
 * as PostgreSQL sends for a computed column. One round trip per pulled
 * statement, after its tables are made, in the session's own backend
 * (which sees them inside an open block too); the coordinator link
 * applies the result to the RowDescriptions it forwards
 * (executor/backend-link.ts `stagedRelations`) until the final query's
 * ReadyForQuery.
 */
import { Backend } from '../protocol/constants.js';
import { encodeQuery } from '../pool/frontend-encoders.js';
import { Completes, type BackendLink } from '../executor/backend-link.js';
import { decodeDataRow } from '../executor/link-query.js';
import { relationOf, type RelationColumns } from '../executor/relation-oids.js';
import { PULL_TEMP_PREFIX } from '../planner/pull-planner.js';
import { encodeClose, encodeDescribe, encodeParse, encodeSync } from './extended-encoders.js';
import { RESERVED_PREFIX } from './worker-statements.js';

/** The client's statement as the session has it: its text and declared parameter types. */
export interface StatementSource {
  sql: string;
  paramTypes: readonly number[];
}

const PROBE = `${RESERVED_PREFIX}0`;

/** (staging table, its attnum, the source table or NULL, the source's attnum) of every pgweave_ table in the session's temporary schema. */
const STAGED_RELATIONS_SQL = `SELECT c.oid, a.attnum, s.attrelid, s.attnum
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_attribute s
    ON s.attrelid = CASE WHEN c.relname ~ '^${PULL_TEMP_PREFIX}[0-9]+$' THEN pg_catalog.substr(c.relname, ${PULL_TEMP_PREFIX.length + 1})::pg_catalog.oid END
   AND s.attname = a.attname AND s.attnum > 0 AND NOT s.attisdropped
  WHERE c.relnamespace = pg_catalog.pg_my_temp_schema() AND c.relname LIKE 'pgweave\\_%'`;

/**
 * Sets `coordinator.stagedRelations` for the final query of a pulled
 * statement; when the staging tables cannot be read, their OIDs go out as
 * PostgreSQL sends them.
 */
export function noteStagedRelations(coordinator: BackendLink, source: StatementSource | null): Promise<void> {
  const describe = source !== null && coordinator.status === 0x49;
  const rows: Buffer[] = [];
  let origins: Uint32Array | null = null;
  let failed = false;
  // 0: the staging tables' query, 1: the Describe of the client's statement.
  let phase = 0;
  coordinator.collector = (type, buf, start, end) => {
    if (type === Backend.ReadyForQuery) phase++;
    else if (phase === 0 && type === Backend.DataRow) rows.push(Buffer.from(buf.subarray(start, end)));
    else if (phase === 0 && type === Backend.ErrorResponse) failed = true;
    else if (phase === 1 && type === Backend.RowDescription) origins = originsOf(buf, start);
  };
  return new Promise((resolve) => {
    const done = () => {
      coordinator.collector = null;
      if (!failed) coordinator.stagedRelations = { relations: stagedRelationsOf(rows), origins };
      resolve();
    };
    const query = encodeQuery(STAGED_RELATIONS_SQL);
    if (!describe) {
      coordinator.send(query, [{ completes: Completes.Ready, forward: false, done }]);
      return;
    }
    coordinator.send(Buffer.concat([query, encodeParse(PROBE, source.sql, source.paramTypes), encodeDescribe('S', PROBE), encodeClose('S', PROBE), encodeSync()]), [
      { completes: Completes.Ready, forward: false },
      { completes: Completes.Ready, forward: false, done },
    ]);
  });
}

/** Rows of STAGED_RELATIONS_SQL as each staging table's source columns. */
function stagedRelationsOf(rows: readonly Buffer[]): Map<number, RelationColumns> {
  const columns = new Map<number, { table: number; pairs: Array<[number, number]> }>();
  for (const row of rows) {
    const [oid, attnum, source, sourceAttnum] = decodeDataRow(row);
    let c = columns.get(Number(oid));
    if (c === undefined) columns.set(Number(oid), (c = { table: 0, pairs: [] }));
    if (source === null) continue;
    c.table = Number(source);
    c.pairs.push([Number(attnum), Number(sourceAttnum)]);
  }
  const relations = new Map<number, RelationColumns>();
  for (const [oid, c] of columns) relations.set(oid, relationOf(c.table, c.pairs));
  return relations;
}

/** A RowDescription's (table OID, column number) per field. */
function originsOf(buf: Buffer, start: number): Uint32Array {
  const count = buf.readUInt16BE(start + 5);
  const out = new Uint32Array(count * 2);
  let pos = start + 7;
  for (let i = 0; i < count; i++) {
    pos = buf.indexOf(0, pos) + 1;
    out[2 * i] = buf.readUInt32BE(pos);
    out[2 * i + 1] = buf.readUInt16BE(pos + 4);
    pos += 18;
  }
  return out;
}
