/**
 * The session settings work done on a worker for the client must share:
 * DDL propagation and run_command_on_* open their own connections to the
 * workers (pool/node-pools.ts `connectAsClient`), which start with the
 * worker's defaults. A statement there must read as it did on the
 * coordinator — a timestamptz literal in a column default in the client's
 * TimeZone, a date in its DateStyle, floats printed with its
 * extra_float_digits — so those connections get every setting the client
 * made: in its StartupMessage (source `client`: PGTZ, JDBC's TimeZone and
 * DateStyle, `options=-c …`) or with SET / set_config (source `session`),
 * read from the client's own coordinator session as it is right now, and
 * its search_path. Left out: what names the connection or the role
 * (application_name, session_authorization, role — run_command_on_* sets
 * the caller's role itself), the client's encoding (pgweave's connections
 * read UTF-8), transaction characteristics, and settings no session may
 * change.
 */
import type { InternalClient } from '../pool/internal-client.js';
import { quoteLiteral } from '../sql/quote.js';
import type { CommandContext } from './context.js';

const NOT_CARRIED = ['application_name', 'client_encoding', 'session_authorization', 'role', 'is_superuser',
  'transaction_isolation', 'transaction_read_only', 'transaction_deferrable'];

const SETTINGS_SQL = `SELECT name, setting FROM pg_catalog.pg_settings
  WHERE (source IN ('client', 'session') AND context IN ('user', 'superuser') AND name NOT IN (${NOT_CARRIED.map(quoteLiteral).join(', ')}))
     OR name = 'search_path'
  ORDER BY name`;

/** The client session's settings as a worker connection must get them: [name, value] pairs. */
export async function clientSettings(ctx: Pick<CommandContext, 'runAsClient'>): Promise<Array<[string, string]>> {
  const r = await ctx.runAsClient(SETTINGS_SQL);
  return r.rows.map((row) => [row[0]!, row[1] ?? '']);
}

/**
 * One statement setting them (`local`: for the open transaction only). A
 * setting the worker does not know (another PostgreSQL version) is left
 * out; custom ones (a dot in the name) are placeholders anywhere.
 */
export function applySettingsSql(settings: ReadonlyArray<[string, string]>, local: boolean): string {
  if (settings.length === 0) return 'SELECT 1';
  const values = settings.map(([name, value]) => `(${quoteLiteral(name)}, ${quoteLiteral(value)})`).join(', ');
  return `SELECT pg_catalog.count(pg_catalog.set_config(s.name, s.value, ${local})) FROM (VALUES ${values}) AS s(name, value) ` +
    `WHERE s.name IN (SELECT name FROM pg_catalog.pg_settings) OR pg_catalog.strpos(s.name, '.') > 0`;
}

/** Applies the client's settings on a connection opened for it. */
export async function applyClientSettings(client: InternalClient, settings: ReadonlyArray<[string, string]>, local = false): Promise<void> {
  if (settings.length > 0) await client.query(applySettingsSql(settings, local));
}
