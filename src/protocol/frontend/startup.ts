/**
 * The untyped packets of the startup phase: StartupMessage, SSLRequest,
 * GSSENCRequest and CancelRequest. They share one framing (int32 length, int32
 * code) and are told apart by the code.
 */
import { StartupCode } from '../constants.js';
import { ProtocolViolation } from '../errors.js';
import { MessageReader } from '../reader.js';

/** PostgreSQL rejects startup packets larger than this (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10000;

export type StartupPacket =
  | { kind: 'startup'; majorVersion: number; minorVersion: number; params: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number };

/** Length of the startup packet at the front of buf, or -1 if more bytes are needed. */
export function startupPacketLength(buf: Buffer): number {
  if (buf.length < 4) return -1;
  const len = buf.readInt32BE(0);
  if (len < 8 || len > MAX_STARTUP_PACKET) throw new ProtocolViolation('invalid length of startup packet');
  return buf.length >= len ? len : -1;
}

export function readStartupPacket(buf: Buffer, len: number): StartupPacket {
  const r = new MessageReader(buf, 4, len, 'startup');
  const code = r.int32();
  if (code === StartupCode.SSLRequest) return { kind: 'ssl' };
  if (code === StartupCode.GSSENCRequest) return { kind: 'gssenc' };
  if (code === StartupCode.CancelRequest) {
    const processId = r.int32();
    const secretKey = r.int32();
    return { kind: 'cancel', processId, secretKey };
  }
  const majorVersion = code >>> 16;
  const minorVersion = code & 0xffff;
  if (majorVersion !== 3) {
    throw new ProtocolViolation(
      `unsupported frontend protocol ${majorVersion}.${minorVersion}: server supports 3.0 to 3.0`,
    );
  }
  const params = new Map<string, string>();
  for (;;) {
    if (r.remaining() === 0) throw new ProtocolViolation('invalid startup packet layout: expected terminator as last byte');
    if (r.buf[r.pos] === 0) {
      r.pos++;
      break;
    }
    const name = r.cstring();
    const value = r.cstring();
    params.set(name, value);
  }
  r.done();
  if (!params.get('user')) {
    throw new ProtocolViolation('no PostgreSQL user name specified in startup packet');
  }
  return { kind: 'startup', majorVersion, minorVersion, params };
}
