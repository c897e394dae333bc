/** RowDescription ('T') and DataRow ('D') for results the coordinator produces itself, and reading a RowDescription a backend sent. */
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

/** The fields of a whole RowDescription message (type byte and length included). */
export function readRowDescription(message: Buffer): FieldDescription[] {
  let pos = 7;
  const fields: FieldDescription[] = [];
  for (let i = message.readInt16BE(5); i > 0; i--) {
    const zero = message.indexOf(0, pos);
    const name = message.toString('utf8', pos, zero);
    pos = zero + 1;
    fields.push({
      name,
      tableOid: message.readInt32BE(pos),
      columnAttr: message.readInt16BE(pos + 4),
      typeOid: message.readInt32BE(pos + 6),
      typeSize: message.readInt16BE(pos + 10),
      typeModifier: message.readInt32BE(pos + 12),
      format: message.readInt16BE(pos + 16) as 0 | 1,
    });
    pos += 18;
  }
  return fields;
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
