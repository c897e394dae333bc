/**
 * Extended-protocol messages the session sends to workers: its own Parse of a
 * rewritten statement, and the client's Bind re-addressed to that statement
 * (parameter values and formats copied byte for byte, never decoded).
 */
import { Frontend } from '../protocol/constants.js';
import { encodeMessage } from '../protocol/writer.js';

export function encodeParse(name: string, sql: string, paramTypes: readonly number[]): Buffer {
  return encodeMessage((w) => {
    w.begin(Frontend.Parse).cstring(name).cstring(sql).int16(paramTypes.length);
    for (const t of paramTypes) w.int32(t);
    w.end();
  });
}

/**
 * The client's Bind (buf[start, end)) with portal and statement names
 * replaced, followed by buf[end, tailEnd) as it is (a pipelined request's
 * Describe/Execute/Sync): one buffer of the exact size, on every routed
 * statement's path.
 */
export function encodeBindFor(portal: string, statement: string, buf: Buffer, start: number, end: number, tailEnd = end): Buffer {
  const portalEnd = buf.indexOf(0, start + 5);
  const stmtEnd = buf.indexOf(0, portalEnd + 1);
  const portalLen = Buffer.byteLength(portal);
  const statementLen = Buffer.byteLength(statement);
  const restLen = end - (stmtEnd + 1);
  const bodyLen = 4 + portalLen + 1 + statementLen + 1 + restLen;
  const out = Buffer.allocUnsafe(1 + bodyLen + (tailEnd - end));
  out[0] = Frontend.Bind;
  out.writeInt32BE(bodyLen, 1);
  let pos = 5 + out.write(portal, 5, portalLen, 'utf8');
  out[pos++] = 0;
  pos += out.write(statement, pos, statementLen, 'utf8');
  out[pos++] = 0;
  buf.copy(out, pos, stmtEnd + 1, tailEnd);
  return out;
}

/**
 * The client's Bind re-addressed, with text values `extra` after its own
 * parameters (the format codes spelled out per parameter when the client's
 * single code is binary). Values stay byte for byte.
 */
export function encodeBindAppending(portal: string, statement: string, buf: Buffer, start: number, end: number, extra: readonly string[]): Buffer {
  const portalEnd = buf.indexOf(0, start + 5);
  let pos = buf.indexOf(0, portalEnd + 1) + 1;
  const nFormats = buf.readInt16BE(pos);
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++) formats.push(buf.readInt16BE(pos + 2 + 2 * i));
  pos += 2 + 2 * nFormats;
  const nParams = buf.readInt16BE(pos);
  const valuesStart = pos + 2;
  pos = valuesStart;
  for (let i = 0; i < nParams; i++) {
    const len = buf.readInt32BE(pos);
    pos += 4 + (len > 0 ? len : 0);
  }
  const values = buf.subarray(valuesStart, pos);
  const results = buf.subarray(pos, end);
  // No codes or one text code cover the extra (text) values; otherwise one code per parameter.
  const codes = formats.length === 0 || (formats.length === 1 && formats[0] === 0)
    ? formats
    : [...(formats.length === 1 ? new Array<number>(nParams).fill(formats[0]) : formats), ...extra.map(() => 0)];
  return encodeMessage((w) => {
    w.begin(Frontend.Bind).cstring(portal).cstring(statement).int16(codes.length);
    for (const c of codes) w.int16(c);
    w.int16(nParams + extra.length).bytes(values);
    for (const v of extra) {
      const b = Buffer.from(v, 'utf8');
      w.int32(b.length).bytes(b);
    }
    w.bytes(results).end();
  });
}

export function encodeDescribe(target: 'S' | 'P', name: string): Buffer {
  return encodeMessage((w) => w.begin(Frontend.Describe).int8(target.charCodeAt(0)).cstring(name).end());
}

export { encodeClose } from '../pool/frontend-encoders.js';

export function encodeExecute(portal: string, maxRows: number): Buffer {
  return encodeMessage((w) => w.begin(Frontend.Execute).cstring(portal).int32(maxRows).end());
}

const SYNC = encodeMessage((w) => w.begin(Frontend.Sync).end());
const FLUSH = encodeMessage((w) => w.begin(Frontend.Flush).end());

export const encodeSync = (): Buffer => SYNC;
export const encodeFlush = (): Buffer => FLUSH;

/** One task of a multi-shard statement with the client's parameters: unnamed statement and portal. */
export function encodeTaskWithParams(sql: string, clientBind: Buffer, paramTypes: readonly number[] = []): Buffer {
  return Buffer.concat([
    encodeParse('', sql, paramTypes),
    encodeBindFor('', '', clientBind, 0, clientBind.length),
    encodeDescribe('P', ''),
    encodeExecute('', 0),
    SYNC,
  ]);
}

/**
 * Bind of the unnamed portal to `statement` with text `values`, then
 * Describe of the portal, Execute of all rows and Sync: one request in one
 * buffer of the exact size (an auto-prepared simple Query, auto-prepare.ts).
 */
export function encodeTextBindRequest(statement: string, values: readonly string[]): Buffer {
  const statementLen = Buffer.byteLength(statement);
  let valuesLen = 0;
  for (const v of values) valuesLen += 4 + Buffer.byteLength(v);
  const bindLen = 4 + 1 + statementLen + 1 + 2 + 2 + valuesLen + 2;
  const out = Buffer.allocUnsafe(1 + bindLen + DESCRIBE_EXECUTE_SYNC.length);
  out[0] = Frontend.Bind;
  out.writeInt32BE(bindLen, 1);
  out[5] = 0; // the unnamed portal
  let pos = 6 + out.write(statement, 6, statementLen, 'utf8');
  out[pos++] = 0;
  pos = out.writeInt16BE(0, pos); // every parameter in text
  pos = out.writeInt16BE(values.length, pos);
  for (const v of values) {
    const len = out.write(v, pos + 4, 'utf8');
    out.writeInt32BE(len, pos);
    pos += 4 + len;
  }
  pos = out.writeInt16BE(0, pos); // every result column in text
  DESCRIBE_EXECUTE_SYNC.copy(out, pos);
  return out;
}

const DESCRIBE_EXECUTE_SYNC = Buffer.concat([encodeDescribe('P', ''), encodeExecute('', 0), SYNC]);
