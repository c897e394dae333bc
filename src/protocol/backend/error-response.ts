/** ErrorResponse ('E') and NoticeResponse ('N'): the same field list, both directions. */
import { Backend } from '../constants.js';
import { ERROR_FIELD_CODES, PgError, type ErrorFields } from '../errors.js';
import { MessageReader } from '../reader.js';
import type { MessageWriter } from '../writer.js';

function writeFields(w: MessageWriter, type: number, fields: ErrorFields, defaultSeverity: string): void {
  w.begin(type);
  for (const [code, key] of ERROR_FIELD_CODES) {
    const value = key === 'severity' ? (fields.severity ?? defaultSeverity) : fields[key];
    if (value === undefined) continue;
    w.int8(code).cstring(value);
    // PostgreSQL ≥ 9.6 also sends the untranslated severity as 'V'.
    if (key === 'severity') w.int8(0x56).cstring(value);
  }
  w.int8(0).end();
}

export function writeErrorResponse(w: MessageWriter, fields: ErrorFields): void {
  writeFields(w, Backend.ErrorResponse, fields, 'ERROR');
}

export function writeNoticeResponse(w: MessageWriter, fields: ErrorFields): void {
  writeFields(w, Backend.NoticeResponse, fields, 'NOTICE');
}

export function readErrorFields(buf: Buffer, start: number, end: number): ErrorFields {
  const r = new MessageReader(buf, start + 5, end, 'ErrorResponse');
  const fields: Partial<ErrorFields> & Record<string, string> = {};
  for (;;) {
    const code = r.int8();
    if (code === 0) break;
    const value = r.cstring();
    const entry = ERROR_FIELD_CODES.find(([c]) => c === code);
    if (entry) (fields as Record<string, string>)[entry[1]] = value;
  }
  return { code: 'XX000', message: '', ...fields } as ErrorFields;
}

export function readErrorResponse(buf: Buffer, start: number, end: number): PgError {
  return new PgError(readErrorFields(buf, start, end));
}
