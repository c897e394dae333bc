/** SASLInitialResponse and SASLResponse ('p' during SCRAM authentication). */
import { Frontend } from '../constants.js';
import { ProtocolViolation } from '../errors.js';
import { MessageReader } from '../reader.js';

export function readSASLInitialResponse(buf: Buffer, start: number, end: number): { mechanism: string; data: string } {
  if (buf[start] !== Frontend.Password) throw new ProtocolViolation('expected SASL response, got message type ' + JSON.stringify(String.fromCharCode(buf[start])));
  const r = new MessageReader(buf, start + 5, end, 'SASLInitialResponse');
  const mechanism = r.cstring();
  const len = r.int32();
  const data = len < 0 ? '' : r.bytes(len).toString('utf8');
  r.done();
  return { mechanism, data };
}

export function readSASLResponse(buf: Buffer, start: number, end: number): string {
  if (buf[start] !== Frontend.Password) throw new ProtocolViolation('expected SASL response, got message type ' + JSON.stringify(String.fromCharCode(buf[start])));
  return buf.toString('utf8', start + 5, end);
}
