/**
 * Frontend messages the coordinator sends to PostgreSQL nodes, built on
 * pg-protocol's serializer where it has them.
 */
import { serialize } from 'pg-protocol';
import { encodeMessage } from '../protocol/writer.js';
import { Frontend, StartupCode } from '../protocol/constants.js';

export function encodeStartup(params: ReadonlyArray<[string, string]>): Buffer {
  return encodeMessage((w) => {
    w.beginUntyped().int32(StartupCode.Protocol30);
    for (const [k, v] of params) w.cstring(k).cstring(v);
    w.int8(0).end();
  });
}

export const encodeSASLInitialResponse = (mechanism: string, data: string): Buffer =>
  serialize.sendSASLInitialResponseMessage(mechanism, data);

export const encodeSASLResponse = (data: string): Buffer => serialize.sendSCRAMClientFinalMessage(data);

export const encodeCancelRequest = (processId: number, secretKey: number): Buffer => serialize.cancel(processId, secretKey);

export const encodeQuery = (sql: string): Buffer => serialize.query(sql);

export const encodeTerminate = (): Buffer => serialize.end();

/** Close of a prepared statement ('S') or portal ('P'). */
export function encodeClose(target: 'S' | 'P', name: string): Buffer {
  return encodeMessage((w) => w.begin(Frontend.Close).int8(target.charCodeAt(0)).cstring(name).end());
}

/** Parse/Bind/Describe/Execute/Sync for one unnamed statement with text parameters. */
export function encodeExtendedQuery(sql: string, params: ReadonlyArray<string | null>): Buffer {
  return Buffer.concat([
    serialize.parse({ text: sql }),
    serialize.bind({ values: params as unknown[] }),
    serialize.describe({ type: 'P' }),
    serialize.execute({}),
    serialize.sync(),
  ]);
}
