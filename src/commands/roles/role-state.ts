/**
 * Roles as state: what the coordinator PostgreSQL holds for a set of roles
 * (attributes, connection limit, expiry, memberships), read after a client's
 * statement changed them, and the statements that make a worker hold the
 * same. Syncing state rather than replaying the client's statement keeps
 * workers right even where they drifted (a role a failed transaction left
 * behind, a node that missed a change), and never runs a client's text as
 * the internal role.
 *
 * The coordinator's state is read in the client's own session (`Query` =
 * runAsClient) when the change may not be committed yet — with search_path
 * pinned to pg_catalog and every operator qualified, so no object of the
 * client's can stand in for a catalog one and make the internal role apply
 * something PostgreSQL did not decide. Passwords travel only as SCRAM
 * verifiers; they are read from pg_authid by the internal role, or come from
 * the coordinator's own rewrite of the statement (scram-verifier.ts).
 */
import { PgError } from '../../protocol/errors.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';

export type Query = (sql: string, params?: ReadonlyArray<string | null>) => Promise<{ rows: Array<Array<string | null>> }>;

export interface RoleAttributes {
  superuser: boolean;
  inherit: boolean;
  createRole: boolean;
  createDb: boolean;
  login: boolean;
  replication: boolean;
  bypassRls: boolean;
  connectionLimit: number;
  /** 'YYYY-MM-DD HH:MI:SS.US+00', 'infinity', '-infinity' or null. */
  validUntil: string | null;
}

/** One membership: `member` is a member of `role`. */
export interface Membership {
  role: string;
  member: string;
  admin: boolean;
}

export interface RoleSnapshot {
  /** Attributes of each requested role that exists. */
  roles: Map<string, RoleAttributes>;
  /** Memberships in which a requested role is the role or the member. */
  memberships: Membership[];
}

/** Roles present on every node by construction, never created, altered or dropped by propagation. */
export function isBuiltinRole(name: string): boolean {
  return name.startsWith('pg_');
}

export function textArray(values: Iterable<string>): string {
  return '{' + [...values].map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
}

const VALID_UNTIL = `CASE WHEN r.rolvaliduntil IS NULL THEN NULL
  WHEN pg_catalog.isfinite(r.rolvaliduntil) THEN pg_catalog.to_char(pg_catalog.timezone('UTC', r.rolvaliduntil), 'YYYY-MM-DD HH24:MI:SS.US') OPERATOR(pg_catalog.||) '+00'
  ELSE r.rolvaliduntil::pg_catalog.text END`;

const ROLES_SQL = `SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication,
       r.rolbypassrls, r.rolconnlimit, ${VALID_UNTIL}
FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]::pg_catalog.name[])`;

const MEMBERSHIPS_SQL = `SELECT g.rolname, m.rolname, pg_catalog.bool_or(a.admin_option)
FROM pg_catalog.pg_auth_members a
JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid
JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) a.member
WHERE g.rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]::pg_catalog.name[])
   OR m.rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]::pg_catalog.name[])
GROUP BY 1, 2`;

/** Runs `fn` with the session's search_path pinned to pg_catalog, restoring it after. */
async function pinned<T>(query: Query, fn: () => Promise<T>): Promise<T> {
  const before = await query("SELECT pg_catalog.current_setting('search_path'), pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)");
  try {
    return await fn();
  } finally {
    await query('SELECT pg_catalog.set_config($1, $2, true)', ['search_path', before.rows[0]?.[0] ?? '']);
  }
}

function attributesOf(r: Array<string | null>): RoleAttributes {
  return {
    superuser: r[1] === 't',
    inherit: r[2] === 't',
    createRole: r[3] === 't',
    createDb: r[4] === 't',
    login: r[5] === 't',
    replication: r[6] === 't',
    bypassRls: r[7] === 't',
    connectionLimit: Number(r[8]),
    validUntil: r[9],
  };
}

/** Reads the roles `names` and their memberships as `query`'s session sees them. */
export async function readRoles(query: Query, names: Iterable<string>, pin = true): Promise<RoleSnapshot> {
  const wanted = new Set(names);
  const read = async (): Promise<RoleSnapshot> => {
    const members = await query(MEMBERSHIPS_SQL, [textArray(wanted)]);
    const memberships = members.rows.map((r) => ({ role: r[0]!, member: r[1]!, admin: r[2] === 't' }));
    // The other side of each membership too: a worker may need to create it first.
    const all = new Set(wanted);
    for (const m of memberships) all.add(m.role).add(m.member);
    const roles = await query(ROLES_SQL, [textArray(all)]);
    return { roles: new Map(roles.rows.map((r) => [r[0]!, attributesOf(r)])), memberships };
  };
  return pin ? pinned(query, read) : read();
}

/** The SCRAM verifiers (pg_authid.rolpassword) of committed roles, read as the internal role. */
export async function readVerifiers(internal: Query, names: Iterable<string>): Promise<Map<string, string | null>> {
  const r = await internal('SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolname = ANY ($1::text[])', [textArray(new Set(names))]);
  return new Map(r.rows.map((row) => [row[0]!, row[1]]));
}

function attributeClause(a: RoleAttributes, have?: RoleAttributes): string {
  const flag = (on: boolean, word: string) => (on ? word : 'NO' + word);
  const parts = [
    flag(a.superuser, 'SUPERUSER'),
    flag(a.inherit, 'INHERIT'),
    flag(a.createRole, 'CREATEROLE'),
    flag(a.createDb, 'CREATEDB'),
    flag(a.login, 'LOGIN'),
    flag(a.replication, 'REPLICATION'),
    flag(a.bypassRls, 'BYPASSRLS'),
    `CONNECTION LIMIT ${a.connectionLimit | 0}`,
  ];
  // No expiry is NULL; once a role has one, 'infinity' is the closest ALTER ROLE can set back.
  if (a.validUntil !== null || (have && have.validUntil !== null)) parts.push(`VALID UNTIL ${quoteLiteral(a.validUntil ?? 'infinity')}`);
  return parts.join(' ');
}

function sameAttributes(a: RoleAttributes, b: RoleAttributes): boolean {
  return (
    a.superuser === b.superuser &&
    a.inherit === b.inherit &&
    a.createRole === b.createRole &&
    a.createDb === b.createDb &&
    a.login === b.login &&
    a.replication === b.replication &&
    a.bypassRls === b.bypassRls &&
    a.connectionLimit === b.connectionLimit &&
    (a.validUntil ?? 'infinity') === (b.validUntil ?? 'infinity')
  );
}

export interface RoleTarget {
  /** The coordinator's state after the change. */
  desired: RoleSnapshot;
  /** Roles whose attributes are made equal to the coordinator's (created when missing). */
  sync: Set<string>;
  /** Roles to drop where they exist. */
  drop: Set<string>;
  /** Roles whose memberships (as role and as member) are made equal to the coordinator's. */
  membershipsOf: Set<string>;
  /** Verifiers to set: name → verifier (null clears the password). */
  passwords: Map<string, string | null>;
  /** Verifiers of committed roles, for roles a worker lacks and `passwords` does not cover. */
  committedVerifiers: Map<string, string | null>;
  /** Renames to apply first where the old name exists and the new one does not. */
  renames: Array<{ from: string; to: string }>;
}

export function emptyTarget(desired: RoleSnapshot): RoleTarget {
  return { desired, sync: new Set(), drop: new Set(), membershipsOf: new Set(), passwords: new Map(), committedVerifiers: new Map(), renames: [] };
}

/**
 * Makes the worker behind `query` (the internal role, inside the worker's
 * transaction) hold the target state. Returns the statements it ran.
 */
export async function applyRoleTarget(query: Query, target: RoleTarget, internalRole: string): Promise<string[]> {
  const ran: string[] = [];
  const run = async (sql: string) => {
    ran.push(sql);
    await query(sql);
  };
  const touched = new Set([...target.sync, ...target.drop, ...target.membershipsOf, ...target.renames.flatMap((r) => [r.from, r.to])]);
  for (const m of target.desired.memberships) touched.add(m.role).add(m.member);
  for (const name of touched) {
    if (name === internalRole) throw new PgError({ code: '42501', message: `role "${internalRole}" is reserved for the coordinator's internal use` });
  }
  let current = await readRoles(query, touched, false);

  for (const { from, to } of target.renames) {
    if (current.roles.has(from) && !current.roles.has(to)) await run(`ALTER ROLE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
  }
  if (target.renames.length > 0) current = await readRoles(query, touched, false);

  // Roles: created when missing, attributes and passwords made equal. Partners of memberships must exist too.
  const mustExist = new Set(target.sync);
  for (const m of target.desired.memberships) {
    if (target.membershipsOf.has(m.role) || target.membershipsOf.has(m.member)) mustExist.add(m.role).add(m.member);
  }
  const haveVerifiers = await readVerifiers(query, [...mustExist].filter((n) => current.roles.has(n)));
  for (const name of mustExist) {
    if (isBuiltinRole(name)) continue;
    const want = target.desired.roles.get(name);
    if (!want) continue;
    const have = current.roles.get(name);
    let password = target.passwords.has(name) ? target.passwords.get(name)! : have ? undefined : (target.committedVerifiers.get(name) ?? null);
    if (have && password !== undefined && (haveVerifiers.get(name) ?? null) === password) password = undefined;
    const passwordClause = password === undefined ? '' : password === null ? ' PASSWORD NULL' : ` PASSWORD ${quoteLiteral(password)}`;
    if (!have) await run(`CREATE ROLE ${quoteIdent(name)} WITH ${attributeClause(want)}${passwordClause}`);
    else if (!sameAttributes(want, have) || passwordClause) await run(`ALTER ROLE ${quoteIdent(name)} WITH ${attributeClause(want, have)}${passwordClause}`);
  }

  // Memberships of the roles concerned: exactly the coordinator's.
  if (target.membershipsOf.size > 0) {
    const concerns = (m: Membership) => target.membershipsOf.has(m.role) || target.membershipsOf.has(m.member);
    const key = (m: Membership) => `${m.role}\u0000${m.member}`;
    const want = new Map(target.desired.memberships.filter(concerns).map((m) => [key(m), m]));
    const have = new Map((await readRoles(query, target.membershipsOf, false)).memberships.filter(concerns).map((m) => [key(m), m]));
    for (const [k, m] of have) {
      const w = want.get(k);
      if (!w) await run(`REVOKE ${quoteIdent(m.role)} FROM ${quoteIdent(m.member)}`);
      else if (m.admin && !w.admin) await run(`REVOKE ADMIN OPTION FOR ${quoteIdent(m.role)} FROM ${quoteIdent(m.member)}`);
    }
    for (const [k, m] of want) {
      const h = have.get(k);
      if (!h || (m.admin && !h.admin)) await run(`GRANT ${quoteIdent(m.role)} TO ${quoteIdent(m.member)}${m.admin ? ' WITH ADMIN OPTION' : ''}`);
    }
  }

  for (const name of target.drop) {
    if (!isBuiltinRole(name) && current.roles.has(name)) await run(`DROP ROLE IF EXISTS ${quoteIdent(name)}`);
  }
  return ran;
}
