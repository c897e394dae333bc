/** Authentication ('R'): requests from server to client, both directions' codecs. */
import { AuthRequest, Backend } from '../constants.js';
import { MessageReader } from '../reader.js';
import type { MessageWriter } from '../writer.js';

export function writeAuthenticationOk(w: MessageWriter): void {
  w.begin(Backend.Authentication).int32(AuthRequest.Ok).end();
}

export function writeAuthenticationSASL(w: MessageWriter, mechanisms: string[]): void {
  w.begin(Backend.Authentication).int32(AuthRequest.SASL);
  for (const m of mechanisms) w.cstring(m);
  w.int8(0).end();
}

export function writeAuthenticationSASLContinue(w: MessageWriter, data: string): void {
  w.begin(Backend.Authentication).int32(AuthRequest.SASLContinue).bytes(Buffer.from(data, 'utf8')).end();
}

export function writeAuthenticationSASLFinal(w: MessageWriter, data: string): void {
  w.begin(Backend.Authentication).int32(AuthRequest.SASLFinal).bytes(Buffer.from(data, 'utf8')).end();
}

export type AuthenticationMessage =
  | { kind: 'ok' }
  | { kind: 'cleartext' }
  | { kind: 'md5'; salt: Buffer }
  | { kind: 'sasl'; mechanisms: string[] }
  | { kind: 'sasl-continue'; data: string }
  | { kind: 'sasl-final'; data: string }
  | { kind: 'other'; code: number };

export function readAuthentication(buf: Buffer, start: number, end: number): AuthenticationMessage {
  const r = new MessageReader(buf, start + 5, end, 'authentication');
  const code = r.int32();
  switch (code) {
    case AuthRequest.Ok:
      return { kind: 'ok' };
    case AuthRequest.CleartextPassword:
      return { kind: 'cleartext' };
    case 5:
      return { kind: 'md5', salt: Buffer.from(r.bytes(4)) };
    case AuthRequest.SASL: {
      const mechanisms: string[] = [];
      while (r.remaining() > 1) mechanisms.push(r.cstring());
      return { kind: 'sasl', mechanisms };
    }
    case AuthRequest.SASLContinue:
      return { kind: 'sasl-continue', data: r.bytes(r.remaining()).toString('utf8') };
    case AuthRequest.SASLFinal:
      return { kind: 'sasl-final', data: r.bytes(r.remaining()).toString('utf8') };
    default:
      return { kind: 'other', code };
  }
}
