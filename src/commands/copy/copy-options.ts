/**
 * The options of a `COPY … FROM STDIN` as the rows must be read: format,
 * delimiter, NULL string, CSV quote and escape, HEADER, FORCE_NOT_NULL /
 * FORCE_NULL — taken from the CopyStmt parse tree (the parser already turns
 * the old syntax, `CSV HEADER`, `DELIMITER AS ','`, into the same option
 * list). PostgreSQL itself validates the options first (the coordinator runs
 * the statement and abandons it, copy-in.ts), so this module only reads them.
 *
 * `shardOptions` is the option list the shards' COPYs get: the same options
 * minus HEADER (the coordinator consumes the header line) and FREEZE (a hint
 * a shard created long ago cannot honour).
 */
import type { Node } from '../../sql/parse.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';

export type CopyFormat = 'text' | 'csv' | 'binary';

export interface CopyOptions {
  format: CopyFormat;
  /** Field delimiter byte. */
  delimiter: number;
  /** The NULL marker as bytes (text: `\N`, CSV: empty). */
  nullString: Buffer;
  header: boolean;
  /** HEADER MATCH: the header's names must equal the column names. */
  headerMatch: boolean;
  /** CSV quote and escape bytes. */
  quote: number;
  escape: number;
  /** Columns whose unquoted NULL marker is read as an empty string ('*' = all). */
  forceNotNull: string[] | '*';
  /** Columns whose quoted NULL marker is read as NULL ('*' = all). */
  forceNull: string[] | '*';
  encoding: string | null;
  /**
   * Turns field bytes into text, from the data's encoding (ENCODING, else the
   * session's client_encoding): distribution values are hashed as the
   * server-side text they become. null: an encoding pgweave cannot decode.
   */
  decode: TextDecode | null;
  /** The option list for the shards' COPY statements, `WITH (…)` included, or ''. */
  shardOptions: string;
  /** An option COPY FROM does not take (PostgreSQL's validation names it). */
  invalid: boolean;
  /** The client's options (HEADER included, FREEZE left out), to have PostgreSQL validate them. */
  validationOptions: string;
}

export type TextDecode = (buf: Buffer, start: number, end: number) => string;

const UTF8: TextDecode = (buf, start, end) => buf.toString('utf8', start, end);
const LATIN1: TextDecode = (buf, start, end) => buf.toString('latin1', start, end);

/** PostgreSQL encoding names → WHATWG labels TextDecoder knows (same mapping on the bytes PostgreSQL accepts). */
const WHATWG_LABELS: Record<string, string> = {
  LATIN2: 'iso-8859-2', LATIN3: 'iso-8859-3', LATIN4: 'iso-8859-4', LATIN5: 'windows-1254', LATIN6: 'iso-8859-10',
  LATIN7: 'iso-8859-13', LATIN8: 'iso-8859-14', LATIN9: 'iso-8859-15', LATIN10: 'iso-8859-16',
  ISO_8859_5: 'iso-8859-5', ISO_8859_6: 'iso-8859-6', ISO_8859_7: 'iso-8859-7', ISO_8859_8: 'iso-8859-8',
  WIN866: 'ibm866', WIN874: 'windows-874', WIN1250: 'windows-1250', WIN1251: 'windows-1251', WIN1252: 'windows-1252',
  WIN1253: 'windows-1253', WIN1254: 'windows-1254', WIN1255: 'windows-1255', WIN1256: 'windows-1256',
  WIN1257: 'windows-1257', WIN1258: 'windows-1258', KOI8R: 'koi8-r', KOI8U: 'koi8-u',
  EUC_JP: 'euc-jp', SJIS: 'shift_jis', EUC_KR: 'euc-kr', BIG5: 'big5', GBK: 'gbk', GB18030: 'gb18030',
};

/** The decoder of a PostgreSQL encoding name (as ENCODING or client_encoding spell it); null when unknown. */
export function textDecodeFor(encoding: string | null | undefined): TextDecode | null {
  if (!encoding) return UTF8;
  const name = encoding.toUpperCase().replace(/-/g, '_').replace(/^ISO_?8859_?1$|^ISO88591$/, 'LATIN1');
  if (name === 'UTF8' || name === 'UTF_8' || name === 'UNICODE' || name === 'SQL_ASCII') return UTF8;
  if (name === 'LATIN1') return LATIN1;
  const label = WHATWG_LABELS[name.replace(/^WINDOWS_?/, 'WIN').replace(/^ALT$/, 'WIN866')];
  if (!label) return null;
  try {
    const decoder = new TextDecoder(label);
    return (buf, start, end) => decoder.decode(buf.subarray(start, end));
  } catch {
    return null; // a Node.js built without that encoding
  }
}

function stringArg(d: Node): string | null {
  const a = d.arg;
  if (!a) return null;
  if (a.String) return a.String.sval ?? '';
  if (a.Integer) return String(a.Integer.ival ?? 0);
  if (a.Boolean) return a.Boolean.boolval ? 'true' : 'false';
  if (a.Float) return a.Float.fval;
  return null;
}

function columnList(d: Node): string[] | '*' {
  const a = d.arg;
  if (a?.A_Star) return '*';
  return ((a?.List?.items ?? []) as Node[]).map((i) => i.String?.sval as string);
}

function boolOption(d: Node): boolean | 'match' {
  const v = stringArg(d);
  if (v === null) return true;
  const s = v.toLowerCase();
  if (s === 'match') return 'match';
  return ['true', 'on', '1', 'yes'].includes(s);
}

function singleByte(value: string, _what: string): number {
  const b = Buffer.from(value, 'utf8');
  return b.length === 1 ? b[0] : -1;
}

export function readCopyOptions(stmt: Node): CopyOptions {
  const defs = ((stmt.options ?? []) as Node[]).map((o) => o.DefElem).filter(Boolean);
  let format: CopyFormat = 'text';
  for (const d of defs) if (d.defname === 'format') format = (stringArg(d) ?? 'text').toLowerCase() as CopyFormat;
  const o: CopyOptions = {
    format,
    delimiter: format === 'csv' ? 0x2c : 0x09,
    nullString: Buffer.from(format === 'csv' ? '' : '\\N'),
    header: false,
    headerMatch: false,
    quote: 0x22,
    escape: -1,
    forceNotNull: [],
    forceNull: [],
    encoding: null,
    decode: UTF8,
    shardOptions: '',
    validationOptions: '',
    invalid: false,
  };
  const forwarded: string[] = [];
  const validation: string[] = [];
  for (const d of defs) {
    const name: string = d.defname;
    switch (name) {
      case 'format':
        forwarded.push(`FORMAT ${format}`);
        break;
      case 'delimiter':
        o.delimiter = singleByte(stringArg(d) ?? '', 'delimiter');
        forwarded.push(`DELIMITER ${quoteLiteral(stringArg(d) ?? '')}`);
        break;
      case 'null':
        o.nullString = Buffer.from(stringArg(d) ?? '', 'utf8');
        forwarded.push(`NULL ${quoteLiteral(stringArg(d) ?? '')}`);
        break;
      case 'header': {
        const v = boolOption(d);
        o.header = v !== false;
        o.headerMatch = v === 'match';
        validation.push(`HEADER ${v === 'match' ? 'MATCH' : v ? 'true' : 'false'}`);
        break;
      }
      case 'quote':
        o.quote = singleByte(stringArg(d) ?? '', 'quote');
        forwarded.push(`QUOTE ${quoteLiteral(stringArg(d) ?? '')}`);
        break;
      case 'escape':
        o.escape = singleByte(stringArg(d) ?? '', 'escape');
        forwarded.push(`ESCAPE ${quoteLiteral(stringArg(d) ?? '')}`);
        break;
      case 'force_not_null':
        o.forceNotNull = columnList(d);
        forwarded.push(`FORCE_NOT_NULL ${o.forceNotNull === '*' ? '*' : `(${o.forceNotNull.map(quoteIdent).join(', ')})`}`);
        break;
      case 'force_null':
        o.forceNull = columnList(d);
        forwarded.push(`FORCE_NULL ${o.forceNull === '*' ? '*' : `(${o.forceNull.map(quoteIdent).join(', ')})`}`);
        break;
      case 'encoding':
        o.encoding = stringArg(d);
        o.decode = textDecodeFor(o.encoding);
        forwarded.push(`ENCODING ${quoteLiteral(o.encoding ?? '')}`);
        break;
      case 'freeze':
        break;
      default: {
        // Not one a COPY FROM takes: PostgreSQL's validation reports it (copy-in.ts).
        const arg = d.arg?.List || d.arg?.A_Star ? columnList(d) : stringArg(d);
        const text = arg === null ? '' : arg === '*' ? ' *' : Array.isArray(arg) ? ` (${arg.map(quoteIdent).join(', ')})` : ` ${quoteLiteral(arg)}`;
        validation.push(`${quoteIdent(name)}${text}`);
        o.invalid = true;
      }
    }
  }
  if (o.escape < 0) o.escape = o.quote;
  o.shardOptions = forwarded.length > 0 ? ` WITH (${forwarded.join(', ')})` : '';
  validation.push(...forwarded);
  o.validationOptions = validation.length > 0 ? ` WITH (${validation.join(', ')})` : '';
  return o;
}

/** Whether column `name` is in a FORCE_NOT_NULL / FORCE_NULL list. */
export function listed(list: string[] | '*', name: string): boolean {
  return list === '*' || list.includes(name);
}
