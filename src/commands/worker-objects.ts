/**
 * Objects a shard's definition depends on that must exist on a worker before
 * the shard: roles (owner, grantees, policy roles) and the worker database.
 *
 * Roles are copied from the coordinator PostgreSQL with their attributes and
 * their SCRAM verifier, so the client can log in to the worker as itself with
 * the keys recovered at its coordinator login (DESIGN.md decision 9). Role
 * creation runs outside the shard transaction (roles are cluster-wide; two
 * coordinators creating the same role concurrently is tolerated).
 */
import type { InternalPool } from '../pool/internal-pool.js';
import { PgError } from '../protocol/errors.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';

function textArrayLiteral(values: string[]): string {
  return '{' + values.map((v) => '"' + v.replace(/["\\]/g, '\\$&') + '"').join(',') + '}';
}

/** Creates on the worker every role in `roles` it lacks, as it is on the coordinator. */
export async function ensureRoles(coordinator: InternalPool, worker: InternalPool, roles: string[]): Promise<void> {
  if (roles.length === 0) return;
  const present = await worker.query('SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[])', [textArrayLiteral(roles)]);
  const have = new Set(present.rows.map((r) => r[0]!));
  const missing = roles.filter((r) => !have.has(r));
  if (missing.length === 0) return;
  const defs = await coordinator.query(
    `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
            rolconnlimit, rolpassword, rolvaliduntil
     FROM pg_catalog.pg_authid WHERE rolname = ANY($1::text[])`,
    [textArrayLiteral(missing)],
  );
  for (const r of defs.rows) {
    const flag = (on: string | null, yes: string) => (on === 't' ? yes : 'NO' + yes);
    const options = [
      flag(r[1]!, 'SUPERUSER'),
      flag(r[2]!, 'INHERIT'),
      flag(r[3]!, 'CREATEROLE'),
      flag(r[4]!, 'CREATEDB'),
      flag(r[5]!, 'LOGIN'),
      flag(r[6]!, 'REPLICATION'),
      flag(r[7]!, 'BYPASSRLS'),
      `CONNECTION LIMIT ${Number(r[8])}`,
    ];
    if (r[9] !== null) options.push(`PASSWORD ${quoteLiteral(r[9])}`);
    if (r[10] !== null) options.push(`VALID UNTIL ${quoteLiteral(r[10])}`);
    try {
      await worker.query(`CREATE ROLE ${quoteIdent(r[0]!)} WITH ${options.join(' ')}`);
    } catch (err) {
      // 42710 duplicate_object, 23505 a concurrent creation won the race.
      if (!(err instanceof PgError) || (err.code !== '42710' && err.code !== '23505')) throw err;
    }
  }
}
