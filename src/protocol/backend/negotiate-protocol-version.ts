/**
 * NegotiateProtocolVersion ('v'): tells a client asking for a newer 3.x minor
 * version, or for `_pq_.` protocol options, that the coordinator speaks 3.0.
 */
import { Backend } from '../constants.js';
import type { MessageWriter } from '../writer.js';

export function writeNegotiateProtocolVersion(w: MessageWriter, newestMinor: number, unrecognized: string[]): void {
  w.begin(Backend.NegotiateProtocolVersion).int32(newestMinor).int32(unrecognized.length);
  for (const o of unrecognized) w.cstring(o);
  w.end();
}
