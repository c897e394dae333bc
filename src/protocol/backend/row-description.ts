/** RowDescription ('T') and DataRow ('D') for results the coordinator produces itself. */
import { Backend } from '../constants.js';
import type { MessageWriter } from '../writer.js';

export interface FieldDescription {
  name: string;
  tableOid?: number;
  columnAttr?: number;
  typeOid: number;
  typeSize?: number;
  typeModifier?: number;
  format?: 0 | 1;
}

export function writeRowDescription(w: MessageWriter, fields: readonly FieldDescription[]): void {
  w.begin(Backend.RowDescription).int16(fields.length);
  for (const f of fields) {
    w.cstring(f.name)
      .int32(f.tableOid ?? 0)
      .int16(f.columnAttr ?? 0)
      .int32(f.typeOid)
      .int16(f.typeSize ?? -1)
      .int32(f.typeModifier ?? -1)
      .int16(f.format ?? 0);
  }
  w.end();
}

/** A row of text values; null is SQL NULL. */
export function writeDataRow(w: MessageWriter, values: ReadonlyArray<string | null>): void {
  w.begin(Backend.DataRow).int16(values.length);
  for (const v of values) {
    if (v === null) {
      w.int32(-1);
    } else {
      const b = Buffer.from(v, 'utf8');
      w.int32(b.length).bytes(b);
    }
  }
  w.end();
}
