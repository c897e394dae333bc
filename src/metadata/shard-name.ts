/**
 * Names of shard tables, shard indexes and shard constraints: `<name>_<shardid>`,
 * exactly as Citus's AppendShardIdToName builds them, so a Citus user finds the
 * same names on the workers (DESIGN.md decision 3).
 *
 * PostgreSQL truncates identifiers to NAMEDATALEN-1 = 63 bytes. When the name
 * plus the suffix would not fit, Citus clips the name (at a character
 * boundary) and inserts the 8-hex-digit hash_any of the full name, so two long
 * names sharing a prefix still get different shard names. The SQL function
 * pgweave.shard_name (catalog-schema.ts) implements the same rule for the
 * views; a test checks that they agree.
 */
import { hashBytes } from '../sql/hash-any.js';
import { PgError } from '../protocol/errors.js';

const NAMEDATALEN = 64;

/** Largest byte length ≤ limit that ends at a UTF-8 character boundary (pg_mbcliplen). */
function clipUtf8(bytes: Buffer, limit: number): number {
  let end = Math.min(limit, bytes.length);
  while (end > 0 && end < bytes.length && (bytes[end]! & 0xc0) === 0x80) end--;
  return end;
}

/** `name_shardid`, hashed and clipped as Citus does when it would exceed 63 bytes. */
export function shardName(name: string, shardId: number | bigint): string {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length >= NAMEDATALEN) {
    throw new PgError({ code: '42622', message: `identifier must be less than ${NAMEDATALEN} characters` });
  }
  const suffix = '_' + String(shardId);
  if (bytes.length < NAMEDATALEN - suffix.length) return name + suffix;
  const hash = (hashBytes(bytes) >>> 0).toString(16).padStart(8, '0');
  const clip = clipUtf8(bytes, NAMEDATALEN - suffix.length - 10);
  return bytes.toString('utf8', 0, clip) + '_' + hash + suffix;
}
