/**
 * Privileges on functions and procedures as state (GRANT / REVOKE … ON
 * FUNCTION | PROCEDURE | ROUTINE, incl. ALL FUNCTIONS IN SCHEMA). Functions
 * live on the coordinator PostgreSQL; a worker has one only where it was
 * created there too (run_command_on_workers, an extension). Where it is, it
 * must grant EXECUTE to the same roles, or a pushed-down query would be
 * allowed on one node and refused on another.
 *
 *   snapshot: (oid, proacl) of every user function, in the client's transaction, before the statement
 *   the statement runs as the client
 *   changed:  the functions whose proacl differs now → their state (signature, grants)
 *   per worker: to_regprocedure(signature) exists → make its grants equal (acl-diff.ts)
 *
 * Signatures are written with schema-qualified argument types (never as
 * search_path would print them): the worker resolves them with search_path
 * set to pg_catalog only.
 */
import type { Node } from '../../sql/parse.js';
import type { CommandContext } from '../context.js';
import { aclStatements, addAclEntry, type AclEntry } from './acl-diff.js';
import { clientQuery, roleTarget, type Plan } from './global-plan.js';
import type { Query } from './role-state.js';
import { roleName, roleSpecs, type SessionRoles } from './statement-text.js';

export interface RoutineState {
  /** `"schema"."name"("argschema"."argtype", …)`, resolvable with any search_path. */
  signature: string;
  /** Grants to roles other than the owner. */
  grants: AclEntry[];
}

const USER_ROUTINES = `FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
WHERE n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
  AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp)'`;

/** (oid → proacl text) of every function outside the system schemas. */
export async function snapshotRoutineAcls(query: Query): Promise<Map<string, string | null>> {
  const r = await query(`SELECT p.oid, p.proacl::pg_catalog.text ${USER_ROUTINES}`);
  return new Map(r.rows.map((row) => [row[0]!, row[1]]));
}

const SIGNATURE = `pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname)
  OPERATOR(pg_catalog.||) '(' OPERATOR(pg_catalog.||) COALESCE((
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(tn.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t.typname), ', ' ORDER BY a.i)
    FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY a(typ, i)
    JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.typ
    JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) t.typnamespace), '') OPERATOR(pg_catalog.||) ')'`;

const GRANTS = `SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable
FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
WHERE p.oid OPERATOR(pg_catalog.=) $1 AND a.grantee OPERATOR(pg_catalog.<>) p.proowner`;

async function grantsOf(query: Query, oid: string): Promise<AclEntry[]> {
  const entries: AclEntry[] = [];
  for (const row of (await query(GRANTS, [oid])).rows) addAclEntry(entries, row[0], row[1]!, row[2] === 't');
  return entries;
}

/** The functions whose privileges differ from `before`, with their state now. */
export async function changedRoutines(query: Query, before: Map<string, string | null>): Promise<RoutineState[]> {
  const r = await query(`SELECT p.oid, p.proacl::pg_catalog.text, ${SIGNATURE} ${USER_ROUTINES}`);
  const out: RoutineState[] = [];
  for (const row of r.rows) {
    if (before.has(row[0]!) && before.get(row[0]!) === row[1]) continue;
    out.push({ signature: row[2]!, grants: await grantsOf(query, row[0]!) });
  }
  return out;
}

/** Grantees the states name (they must exist on the workers first). */
export function routineRoles(states: RoutineState[]): string[] {
  return [...new Set(states.flatMap((s) => s.grants.map((g) => g.grantee).filter((g): g is string => g !== null)))];
}

/** Makes each function that exists behind `query` (a worker, internal role) grant what `states` say. */
export async function applyRoutineStates(query: Query, states: RoutineState[]): Promise<void> {
  for (const state of states) {
    const found = await query('SELECT pg_catalog.to_regprocedure($1)::pg_catalog.oid', [state.signature]);
    const oid = found.rows[0]?.[0];
    if (oid == null) continue;
    for (const sql of aclStatements(`ROUTINE ${state.signature}`, await grantsOf(query, oid), state.grants)) await query(sql);
  }
}

/** GRANT / REVOKE … ON FUNCTION | PROCEDURE | ROUTINE (incl. ALL … IN SCHEMA): the changed functions' grants. */
export async function routineGrantPlan(ctx: CommandContext, statement: string, stmt: Node, who: () => Promise<SessionRoles>): Promise<Plan> {
  const roles = await who();
  let before = new Map<string, string | null>();
  return {
    text: statement,
    names: roleSpecs(stmt).map((r) => roleName(r, roles)).filter((n): n is string => n !== null),
    before: async () => {
      before = await snapshotRoutineAcls(clientQuery(ctx));
    },
    async workers() {
      const routines = await changedRoutines(clientQuery(ctx), before);
      return { roles: await roleTarget(ctx, routineRoles(routines), { memberships: false }), routines };
    },
  };
}
