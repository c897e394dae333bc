/**
 * Errors as PostgreSQL reports them: a severity, a SQLSTATE and a message, plus
 * the optional fields of ErrorResponse. Every failure that reaches a client is
 * a PgError, so it always carries a SQLSTATE a driver can act on.
 */

export interface ErrorFields {
  severity?: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

export class PgError extends Error {
  readonly fields: ErrorFields;
  constructor(fields: ErrorFields) {
    super(fields.message);
    this.fields = { severity: 'ERROR', ...fields };
  }
  get code(): string {
    return this.fields.code;
  }
}

/** A broken frontend stream: the connection cannot continue (SQLSTATE 08P01). */
export class ProtocolViolation extends PgError {
  constructor(message: string) {
    super({ severity: 'FATAL', code: '08P01', message });
  }
}

/** ErrorResponse/NoticeResponse field codes, in the order PostgreSQL sends them. */
export const ERROR_FIELD_CODES: ReadonlyArray<[number, keyof ErrorFields]> = [
  [0x53, 'severity'], // S
  [0x43, 'code'], // C
  [0x4d, 'message'], // M
  [0x44, 'detail'], // D
  [0x48, 'hint'], // H
  [0x50, 'position'], // P
  [0x70, 'internalPosition'], // p
  [0x71, 'internalQuery'], // q
  [0x57, 'where'], // W
  [0x73, 'schema'], // s
  [0x74, 'table'], // t
  [0x63, 'column'], // c
  [0x64, 'dataType'], // d
  [0x6e, 'constraint'], // n
  [0x46, 'file'], // F
  [0x4c, 'line'], // L
  [0x52, 'routine'], // R
];

/** Turns anything thrown into a PgError, keeping PgErrors as they are. */
export function toPgError(err: unknown, code = 'XX000'): PgError {
  if (err instanceof PgError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PgError({ code, message });
}
