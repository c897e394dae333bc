/** BackendKeyData ('K'): the process id and secret a client uses to cancel. */
import { Backend } from '../constants.js';
import { MessageReader } from '../reader.js';
import type { MessageWriter } from '../writer.js';

export interface BackendKey {
  processId: number;
  secretKey: number;
}

export function writeBackendKeyData(w: MessageWriter, key: BackendKey): void {
  w.begin(Backend.BackendKeyData).int32(key.processId).int32(key.secretKey).end();
}

export function readBackendKeyData(buf: Buffer, start: number, end: number): BackendKey {
  const r = new MessageReader(buf, start + 5, end, 'BackendKeyData');
  return { processId: r.int32(), secretKey: r.int32() };
}
