/** CommandComplete ('C'), EmptyQueryResponse ('I') and the other bodiless replies. */
import { Backend } from '../constants.js';
import type { MessageWriter } from '../writer.js';

export function writeCommandComplete(w: MessageWriter, tag: string): void {
  w.begin(Backend.CommandComplete).cstring(tag).end();
}

export function writeEmptyQueryResponse(w: MessageWriter): void {
  w.begin(Backend.EmptyQueryResponse).end();
}
