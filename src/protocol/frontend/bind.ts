/**
 * Bind ('B'): binds parameter values to a prepared statement, making a portal.
 * Values stay as views into the message buffer (null for SQL NULL) so routing
 * can hash a distribution-key parameter without copying the rest.
 */
import { MessageReader } from '../reader.js';

export interface BindMessage {
  portal: string;
  statement: string;
  paramFormats: number[];
  params: Array<Buffer | null>;
  resultFormats: number[];
}

export function readBind(buf: Buffer, start: number, end: number): BindMessage {
  const r = new MessageReader(buf, start + 5, end, 'Bind');
  const portal = r.cstring();
  const statement = r.cstring();
  const nf = r.int16();
  const paramFormats: number[] = new Array(nf);
  for (let i = 0; i < nf; i++) paramFormats[i] = r.int16();
  const np = r.int16();
  const params: Array<Buffer | null> = new Array(np);
  for (let i = 0; i < np; i++) {
    const len = r.int32();
    params[i] = len === -1 ? null : r.bytes(len);
  }
  const nr = r.int16();
  const resultFormats: number[] = new Array(nr);
  for (let i = 0; i < nr; i++) resultFormats[i] = r.int16();
  r.done();
  return { portal, statement, paramFormats, params, resultFormats };
}

/** The format code of parameter i: one code applies to all, none means text. */
export function paramFormat(b: BindMessage, i: number): number {
  if (b.paramFormats.length === 0) return 0;
  if (b.paramFormats.length === 1) return b.paramFormats[0];
  return b.paramFormats[i] ?? 0;
}
