/**
 * Runs a command query (planner/command-query.ts) on the coordinator
 * PostgreSQL: each coordinator function's rows go into a fresh temporary
 * table (columns typed by the function's declared return types), the
 * rewritten statement runs over those tables on the session's coordinator
 * connection — as the client's role, like pulls — and the tables are dropped
 * afterwards, whether it succeeded or not.
 */
import { PgError } from '../protocol/errors.js';
import type { BackendLink } from '../executor/backend-link.js';
import { decodeDataRow, queryOnLink } from '../executor/link-query.js';
import { readRowDescription } from '../protocol/backend/row-description.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { CommandQueryCall } from '../planner/route.js';
import type { CommandOutput } from './replies.js';

const VOID_OID = 2278;

/** Creates and fills one call's temporary table from the rows the coordinator computed. */
async function loadTable(coordinator: BackendLink, tempName: string, out: CommandOutput): Promise<PgError | null> {
  // void has no column type: such a column holds only NULLs, as text.
  const oids = out.fields.map((f) => (f.typeOid === VOID_OID ? 25 : f.typeOid));
  const types = await queryOnLink(coordinator, `SELECT format_type(t, NULL) FROM unnest(ARRAY[${oids.join(', ') || 'NULL'}]::oid[]) WITH ORDINALITY u(t, i) ORDER BY i`);
  if (types.error) return types.error;
  const columns = out.fields.map((f, i) => `${quoteIdent(f.name)} ${decodeDataRow(types.rows[i])[0]}`).join(', ');
  const temp = `pg_temp.${quoteIdent(tempName)}`;
  const rows = out.rows.map((r) => `(${r.map((v) => (v === null ? 'NULL' : quoteLiteral(v))).join(', ')})`).join(', ');
  const fill = rows ? `; INSERT INTO ${temp} VALUES ${rows}` : '';
  const created = await queryOnLink(coordinator, `DROP TABLE IF EXISTS ${temp}; CREATE TEMP TABLE ${quoteIdent(tempName)} (${columns})${fill}`);
  return created.error;
}

export async function runCommandQuery(
  coordinator: BackendLink,
  query: { sql: string; calls: CommandQueryCall[] },
  runCall: (call: CommandQueryCall) => Promise<CommandOutput>,
): Promise<CommandOutput | PgError> {
  try {
    for (const call of query.calls) {
      const err = await loadTable(coordinator, call.tempName, await runCall(call));
      if (err) return err;
    }
    const r = await queryOnLink(coordinator, query.sql);
    if (r.error) return r.error;
    return { fields: r.rowDescription ? readRowDescription(r.rowDescription) : [], rows: r.rows.map(decodeDataRow), tag: r.tag };
  } finally {
    await queryOnLink(coordinator, `DROP TABLE IF EXISTS ${query.calls.map((c) => 'pg_temp.' + quoteIdent(c.tempName)).join(', ')}`);
  }
}
