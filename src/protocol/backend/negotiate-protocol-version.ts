/**
 * NegotiateProtocolVersion ('v'): tells a client asking for a newer 3.x minor
 * version, or for `_pq_.` protocol options, that the coordinator speaks 3.0.
 */
import { Backend } from '../constants.js';
import type { MessageWriter } from '../writer.js';

/**
 * The version field carries the whole protocol code (3 << 16 | minor), as
 * PostgreSQL sends it (PG_PROTOCOL_LATEST) and libpq reads it: a bare minor
 * number would read as "version 0.0", which libpq ≥ 18 rejects.
 */
export function writeNegotiateProtocolVersion(w: MessageWriter, newestMinor: number, unrecognized: string[]): void {
  w.begin(Backend.NegotiateProtocolVersion).int32((3 << 16) | newestMinor).int32(unrecognized.length);
  for (const o of unrecognized) w.cstring(o);
  w.end();
}
