/**
 * Replies the session produces itself (for statements it plans or runs
 * without forwarding a backend's answer): shared, pre-encoded where constant.
 */
import { Backend } from '../protocol/constants.js';
import { encodeMessage, type MessageWriter } from '../protocol/writer.js';
import { writeRowDescription, writeDataRow, type FieldDescription } from '../protocol/backend/row-description.js';
import { writeCommandComplete } from '../protocol/backend/command-complete.js';

export const PARSE_COMPLETE = encodeMessage((w) => w.begin(Backend.ParseComplete).end());
export const BIND_COMPLETE = encodeMessage((w) => w.begin(Backend.BindComplete).end());
export const CLOSE_COMPLETE = encodeMessage((w) => w.begin(Backend.CloseComplete).end());
export const NO_DATA = encodeMessage((w) => w.begin(Backend.NoData).end());

export function writeParameterDescription(w: MessageWriter, types: readonly number[]): void {
  w.begin(Backend.ParameterDescription).int16(types.length);
  for (const t of types) w.int32(t);
  w.end();
}

export interface CommandOutput {
  fields: FieldDescription[];
  rows: Array<Array<string | null>>;
  /** Command tag; defaults to "SELECT <rows>". */
  tag?: string;
}

export function writeCommandOutput(w: MessageWriter, out: CommandOutput, withDescription: boolean): void {
  if (withDescription && out.fields.length > 0) writeRowDescription(w, out.fields);
  for (const r of out.rows) writeDataRow(w, r);
  writeCommandComplete(w, out.tag ?? `SELECT ${out.rows.length}`);
}

export type { FieldDescription };
