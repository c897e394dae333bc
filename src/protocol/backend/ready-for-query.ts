/** ReadyForQuery ('Z'): the end of a request cycle and the transaction status byte. */
import { Backend, type TransactionStatus } from '../constants.js';
import type { MessageWriter } from '../writer.js';

export function writeReadyForQuery(w: MessageWriter, status: TransactionStatus): void {
  w.begin(Backend.ReadyForQuery).int8(status.charCodeAt(0)).end();
}
