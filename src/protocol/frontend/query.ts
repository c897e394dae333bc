/** Query ('Q'): a simple-protocol query string (possibly several statements). */
import { MessageReader } from '../reader.js';

export function readQuery(buf: Buffer, start: number, end: number): string {
  const r = new MessageReader(buf, start + 5, end, 'Query');
  const sql = r.cstring();
  r.done();
  return sql;
}
