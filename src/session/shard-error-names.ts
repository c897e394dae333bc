/**
 * Shard names out of the errors workers raise. A worker reports a unique
 * violation on `users_102021` as `duplicate key value violates unique
 * constraint "users_pkey_102021"`, with the table_name and constraint_name
 * fields naming the shard's objects. The client wrote `users`: it gets the
 * names it knows — message, detail, hint and context with `"users"` and
 * `"users_pkey"`, and the fields that drivers and ORMs read to tell which
 * constraint failed (table_name, constraint_name) with them too. (Citus
 * leaves the shard names in; a client cannot act on them.)
 *
 Which shard an error is about comes from its table_name field, which
 * PostgreSQL sets on the errors that name a table's objects (unique, NOT
 * NULL, CHECK, foreign key and exclusion violations) and which must be
 * exactly a shard table's name. Errors without it are left alone: their
 * quoted text may be a value (`invalid input syntax for type integer:
 * "orders_102008"`). Then a quoted name that is exactly a shard table's
 * name becomes its table's (a foreign key's detail names the referenced
 * shard), and every other quoted name and the constraint_name that end in
 * the error's `_<shardid>` lose the suffix — where `shardName` of the
 * shortened name gives back the name exactly; a long name that Citus's rule
 * clipped and hashed stays as it is, since its original cannot be known.
 * Errors are rare: this runs only on them, never on the forwarding path of
 * results.
 */
import { PgError, type ErrorFields } from '../protocol/errors.js';
import type { Catalog } from '../metadata/types.js';
import { shardName } from '../metadata/shard-name.js';
import { shardTableNamed } from '../metadata/shard-tables.js';

/** The fields whose text may quote object names. */
const TEXT_FIELDS = ['message', 'detail', 'hint', 'where'] as const;
const QUOTED = /"([^"]+)"/g;

/** The error with its shard names replaced by the client's names; null when it names no shard. */
export function unshardErrorNames(err: PgError, catalog: Catalog | null): PgError | null {
  if (catalog === null || catalog.tables.size === 0 || err.fields.table === undefined) return null;
  const shardId = shardTableNamed(catalog, err.fields.table)?.shard.shardId;
  if (shardId === undefined) return null;
  const suffix = '_' + String(shardId);
  const unshard = (name: string): string => {
    const s = shardTableNamed(catalog, name);
    if (s !== undefined) return s.table.name;
    if (!name.endsWith(suffix)) return name;
    const base = name.slice(0, -suffix.length);
    return base.length > 0 && !looksClipped(base, suffix.length) && shardName(base, shardId) === name ? base : name;
  };
  const fields: ErrorFields = { ...err.fields };
  let changed = false;
  for (const f of TEXT_FIELDS) {
    const text = fields[f];
    if (text === undefined || !text.includes('"')) continue;
    const out = text.replace(QUOTED, (whole, inner: string) => `"${unshardQualified(inner, unshard)}"`);
    if (out !== text) {
      fields[f] = out;
      changed = true;
    }
  }
  for (const f of ['table', 'constraint'] as const) {
    const name = fields[f];
    if (name === undefined) continue;
    const out = unshard(name);
    if (out !== name) {
      fields[f] = out;
      changed = true;
    }
  }
  return changed ? new PgError(fields) : null;
}

/** A quoted name, maybe `schema.name`, with its last part unsharded. */
function unshardQualified(inner: string, unshard: (name: string) => string): string {
  const whole = unshard(inner);
  if (whole !== inner) return whole;
  const dot = inner.lastIndexOf('.');
  return dot < 0 ? inner : inner.slice(0, dot + 1) + unshard(inner.slice(dot + 1));
}

/**
 * Whether `base` (a shard object's name without its `_<shardid>`) is the
 * clipped-and-hashed form of a longer name: as long as that form gets (the
 * name clipped at a character boundary to fill NAMEDATALEN-1 bytes with the
 * suffix, then `_` and 8 hex digits), ending in the hash. A name the client
 * wrote that has both is taken for clipped too, and stays as it is.
 */
function looksClipped(base: string, suffixLength: number): boolean {
  return Buffer.byteLength(base) >= 63 - suffixLength - 3 && /_[0-9a-f]{8}$/.test(base);
}
