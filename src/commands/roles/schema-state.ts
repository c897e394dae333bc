/**
 * Schemas as state, like roles (role-state.ts): after a client's CREATE
 * SCHEMA, ALTER SCHEMA … OWNER TO / RENAME TO or GRANT … ON SCHEMA ran on the
 * coordinator, its owner and privileges are read in the client's session and
 * every worker's same-named database is made to hold the same: the schema
 * created when missing (without the CREATE SCHEMA's elements: tables made
 * there are coordinator tables, like any CREATE TABLE), its owner and its
 * access privileges (grantee, privilege, grant option) made equal.
 */
import { quoteIdent } from '../../sql/quote.js';
import { aclStatements, addAclEntry, type AclEntry } from './acl-diff.js';
import { textArray, type Query } from './role-state.js';

export type SchemaGrant = AclEntry;

export interface SchemaState {
  owner: string;
  grants: SchemaGrant[];
}

const SCHEMAS_SQL = `SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner),
       CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_catalog.pg_namespace n
LEFT JOIN LATERAL pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a ON true
WHERE n.nspname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]::pg_catalog.name[])`;

/** The owner and privileges of the schemas `names` (those that exist), as `query`'s session sees them. */
export async function readSchemas(query: Query, names: Iterable<string>): Promise<Map<string, SchemaState>> {
  const r = await query(SCHEMAS_SQL, [textArray(new Set(names))]);
  const out = new Map<string, SchemaState>();
  for (const row of r.rows) {
    let s = out.get(row[0]!);
    if (!s) out.set(row[0]!, (s = { owner: row[1]!, grants: [] }));
    if (row[3] === null) continue;
    addAclEntry(s.grants, row[2], row[3]!, row[4] === 't');
  }
  return out;
}

/**
 * Makes the worker database behind `query` (internal role, in its
 * transaction) hold `desired` for each schema; renames first where the old
 * name exists there and the new one does not. Returns the statements run.
 */
export async function applySchemaTarget(
  query: Query,
  desired: Map<string, SchemaState>,
  renames: Array<{ from: string; to: string }> = [],
): Promise<string[]> {
  const ran: string[] = [];
  const run = async (sql: string) => {
    ran.push(sql);
    await query(sql);
  };
  if (renames.length > 0) {
    const present = await readSchemas(query, renames.flatMap((r) => [r.from, r.to]));
    for (const { from, to } of renames) {
      if (present.has(from) && !present.has(to)) await run(`ALTER SCHEMA ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
    }
  }
  let current = await readSchemas(query, desired.keys());
  for (const [name, want] of desired) {
    const have = current.get(name);
    if (!have) await run(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(name)} AUTHORIZATION ${quoteIdent(want.owner)}`);
    else if (have.owner !== want.owner) await run(`ALTER SCHEMA ${quoteIdent(name)} OWNER TO ${quoteIdent(want.owner)}`);
  }
  current = await readSchemas(query, desired.keys());
  for (const [name, want] of desired) {
    for (const sql of aclStatements(`SCHEMA ${quoteIdent(name)}`, current.get(name)?.grants ?? [], want.grants)) await run(sql);
  }
  return ran;
}
