/** ParameterStatus ('S'): a run-time parameter's name and value. */
import { Backend } from '../constants.js';
import { MessageReader } from '../reader.js';
import type { MessageWriter } from '../writer.js';

export function writeParameterStatus(w: MessageWriter, name: string, value: string): void {
  w.begin(Backend.ParameterStatus).cstring(name).cstring(value).end();
}

export function readParameterStatus(buf: Buffer, start: number, end: number): [string, string] {
  const r = new MessageReader(buf, start + 5, end, 'ParameterStatus');
  const name = r.cstring();
  const value = r.cstring();
  return [name, value];
}
