/**
 * SCRAM-SHA-256 verifiers computed by the coordinator, so a client's password
 * text never reaches any PostgreSQL server: CREATE/ALTER ROLE … PASSWORD 'text'
 * is rewritten to carry the verifier (PostgreSQL stores a given SCRAM
 * verifier as it is), the same verifier goes to every worker, and the
 * password appears in no server log, not even with log_statement = 'all'.
 *
 * The verifier is the one PostgreSQL would compute (RFC 5802/7677; 4096
 * iterations, 16-byte random salt, the password prepared with SASLprep as
 * PostgreSQL's pg_saslprep does: ASCII as it is, otherwise RFC 4013 mapping
 * and NFKC, falling back to the raw bytes when the result holds a prohibited
 * character). Unicode tables are approximated with the runtime's Unicode
 * properties; for every password PostgreSQL itself accepts in practice the
 * outcome is the same.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

export const SCRAM_ITERATIONS = 4096;

const SCRAM_VERIFIER = /^SCRAM-SHA-256\$\d+:[^$]+\$[^:]+:.+$/;
const MD5_HASH = /^md5[0-9a-f]{32}$/;

/** Whether PostgreSQL would store `password` as it is (an md5 hash or a SCRAM verifier). */
export function isPreEncrypted(password: string): boolean {
  return SCRAM_VERIFIER.test(password) || MD5_HASH.test(password);
}

// RFC 3454 tables RFC 4013 uses (non-ASCII spaces, mapped to nothing, prohibited output).
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/u;
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/u;
const PROHIBITED = new RegExp(
  [
    '[\\u0000-\\u001F\\u007F-\\u009F]', // C.2.1, C.2.2 controls
    '[\\u06DD\\u070F\\u180E\\u200C-\\u200F\\u2028-\\u202E\\u2060-\\u2063\\u206A-\\u206F\\uFEFF\\uFFF9-\\uFFFD]',
    '[\\u{1D173}-\\u{1D17A}\\u{E0001}\\u{E0020}-\\u{E007F}]',
    '[\\u0340\\u0341\\u2FF0-\\u2FFB]', // C.7, C.8
    '\\p{Co}', // C.3 private use
    '\\p{Cs}', // C.5 surrogates
    '\\p{Noncharacter_Code_Point}', // C.4
    '\\p{Cn}', // A.1 unassigned (approximated with the runtime's Unicode version)
  ].join('|'),
  'u',
);
const RAND_AL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
const L_CAT = /\p{L}/u;

/**
 * The bytes PostgreSQL hashes for `password`: SASLprep'ed when that succeeds,
 * else the password's own UTF-8 bytes (what pg_saslprep's callers do).
 */
export function saslPrep(password: string): Buffer {
  const raw = Buffer.from(password, 'utf8');
  if (/^[\x00-\x7F]*$/.test(password)) return raw;
  let mapped = '';
  for (const ch of password) {
    if (NON_ASCII_SPACE.test(ch)) mapped += ' ';
    else if (!MAPPED_TO_NOTHING.test(ch)) mapped += ch;
  }
  const normalized = mapped.normalize('NFKC');
  if (normalized.length === 0) return raw;
  const chars = [...normalized];
  if (chars.some((c) => PROHIBITED.test(c))) return raw;
  if (chars.some((c) => RAND_AL.test(c))) {
    const isRandAl = (c: string) => RAND_AL.test(c) && L_CAT.test(c);
    if (chars.some((c) => L_CAT.test(c) && !RAND_AL.test(c))) return raw;
    if (!isRandAl(chars[0]!) || !isRandAl(chars[chars.length - 1]!)) return raw;
  }
  return Buffer.from(normalized, 'utf8');
}

/** A SCRAM-SHA-256 verifier for `password`, in pg_authid.rolpassword's format. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = SCRAM_ITERATIONS): string {
  const salted = pbkdf2Sync(saslPrep(password), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/**
 * What a PASSWORD option's value becomes: an md5 hash or a SCRAM verifier is
 * kept (PostgreSQL stores those as given), the empty string too (PostgreSQL
 * clears the password for it); anything else is a password, replaced by its
 * verifier.
 */
export function storedPasswordFor(value: string): string {
  if (value === '' || isPreEncrypted(value)) return value;
  return scramVerifier(value);
}
