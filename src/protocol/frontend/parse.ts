/** Parse ('P'): prepares a statement, optionally named, with parameter type oids. */
import { MessageReader } from '../reader.js';

export interface ParseMessage {
  name: string;
  query: string;
  paramTypes: number[];
}

export function readParse(buf: Buffer, start: number, end: number): ParseMessage {
  const r = new MessageReader(buf, start + 5, end, 'Parse');
  const name = r.cstring();
  const query = r.cstring();
  const n = r.int16();
  const paramTypes: number[] = new Array(n);
  for (let i = 0; i < n; i++) paramTypes[i] = r.int32() >>> 0;
  r.done();
  return { name, query, paramTypes };
}
