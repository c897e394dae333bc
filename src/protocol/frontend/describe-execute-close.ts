/** Describe ('D'), Close ('C') and Execute ('E'): the portal/statement verbs. */
import { ProtocolViolation } from '../errors.js';
import { MessageReader } from '../reader.js';

export interface TargetMessage {
  /** 'S' for a prepared statement, 'P' for a portal. */
  target: 'S' | 'P';
  name: string;
}

function readTarget(buf: Buffer, start: number, end: number, what: string): TargetMessage {
  const r = new MessageReader(buf, start + 5, end, what);
  const t = r.int8();
  if (t !== 0x53 && t !== 0x50) throw new ProtocolViolation(`invalid ${what} message subtype ${t}`);
  const name = r.cstring();
  r.done();
  return { target: t === 0x53 ? 'S' : 'P', name };
}

export function readDescribe(buf: Buffer, start: number, end: number): TargetMessage {
  return readTarget(buf, start, end, 'DESCRIBE');
}

export function readClose(buf: Buffer, start: number, end: number): TargetMessage {
  return readTarget(buf, start, end, 'CLOSE');
}

export function readExecute(buf: Buffer, start: number, end: number): { portal: string; maxRows: number } {
  const r = new MessageReader(buf, start + 5, end, 'Execute');
  const portal = r.cstring();
  const maxRows = r.int32();
  r.done();
  return { portal, maxRows };
}
