/**
 * The GRANT / REVOKE statements that make an object's privileges on a worker
 * equal to the coordinator's: entries the worker has but the coordinator
 * lacks are revoked (CASCADE, as the coordinator's REVOKE would have taken
 * dependent grants with it), missing ones and missing grant options are
 * granted. The object's owner is left out on both sides by the callers: its
 * implicit privileges follow ownership, not GRANT.
 */
import { quoteIdent } from '../../sql/quote.js';

export interface AclEntry {
  /** null = PUBLIC */
  grantee: string | null;
  privilege: string;
  grantable: boolean;
}

const granteeText = (e: AclEntry) => (e.grantee === null ? 'PUBLIC' : quoteIdent(e.grantee));

/** Adds an aclexplode row to `entries`, merging the grant option of a repeated (grantee, privilege). */
export function addAclEntry(entries: AclEntry[], grantee: string | null, privilege: string, grantable: boolean): void {
  const existing = entries.find((e) => e.grantee === grantee && e.privilege === privilege);
  if (existing) existing.grantable ||= grantable;
  else entries.push({ grantee, privilege, grantable });
}

/** Statements that turn `have` into `want` on `objectClause` (e.g. `SCHEMA "s"`, `ROUTINE s.f(pg_catalog.int4)`). */
export function aclStatements(objectClause: string, have: AclEntry[], want: AclEntry[]): string[] {
  const out: string[] = [];
  const find = (list: AclEntry[], e: AclEntry) => list.find((x) => x.grantee === e.grantee && x.privilege === e.privilege);
  for (const e of have) {
    const w = find(want, e);
    if (!w) out.push(`REVOKE ${e.privilege} ON ${objectClause} FROM ${granteeText(e)} CASCADE`);
    else if (e.grantable && !w.grantable) out.push(`REVOKE GRANT OPTION FOR ${e.privilege} ON ${objectClause} FROM ${granteeText(e)} CASCADE`);
  }
  for (const e of want) {
    const h = find(have, e);
    if (!h || (e.grantable && !h.grantable)) out.push(`GRANT ${e.privilege} ON ${objectClause} TO ${granteeText(e)}${e.grantable ? ' WITH GRANT OPTION' : ''}`);
  }
  return out;
}
