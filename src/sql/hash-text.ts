/**
 * Hashes of the byte-string and small fixed types: text/varchar (hashtext),
 * bpchar (hashbpchar), name (hashname), uuid (uuid_hash), bool and "char"
 * (hashchar), with the input syntax of uuid_in, boolin and charin.
 *
 * Text is hashed as its UTF-8 bytes: pgweave databases use the UTF8 server
 * encoding, and hashtext under a deterministic collation (the default) is
 * hash_any over the stored bytes. Columns with a nondeterministic ICU
 * collation hash differently in PostgreSQL; the caller must not use these
 * functions for them.
 */
import { encodeUtf8Scratch, hashBytes, hashUint32 } from './hash-any.js';
import { skipSpaces, trimmedEnd, UnsupportedHashInputError } from './hash-input.js';

/** NAMEDATALEN - 1: the most bytes a name holds. */
const NAME_MAX_BYTES = 63;

/** hashtext (also varchar's hash): hash_any over the UTF-8 bytes. */
export function hashText(value: Uint8Array | string): number {
  if (typeof value !== 'string') return hashBytes(value);
  const { bytes, length } = encodeText('text', value);
  return hashBytes(bytes, 0, length);
}

/** The UTF-8 bytes of a string in the shared scratch buffer, or UnsupportedHashInputError. */
function encodeText(typeName: string, text: string): { bytes: Uint8Array; length: number } {
  const encoded = encodeUtf8Scratch(text);
  if (encoded.length < 0) {
    throw new UnsupportedHashInputError(typeName, text, 'contains NUL or an unpaired surrogate, which PostgreSQL text cannot hold');
  }
  return encoded;
}

/** hashbpchar: like hashtext, but trailing blanks (U+0020) are not significant. */
export function hashBpchar(value: Uint8Array | string): number {
  let bytes: Uint8Array;
  let length: number;
  if (typeof value === 'string') {
    ({ bytes, length } = encodeText('bpchar', value));
  } else {
    bytes = value;
    length = value.length;
  }
  while (length > 0 && bytes[length - 1] === 32) length--;
  return hashBytes(bytes, 0, length);
}

/** hashname: hash_any over the name, which namein clips to 63 bytes on a character boundary. */
export function hashName(value: Uint8Array | string): number {
  let bytes: Uint8Array;
  let length: number;
  if (typeof value === 'string') {
    ({ bytes, length } = encodeText('name', value));
  } else {
    bytes = value;
    length = value.length;
  }
  if (length > NAME_MAX_BYTES) {
    length = NAME_MAX_BYTES;
    while (length > 0 && (bytes[length]! & 0xc0) === 0x80) length--; // don't split a UTF-8 sequence
  }
  return hashBytes(bytes, 0, length);
}

/** bool's hash (bool_ops uses hashchar): hash_uint32 of 1 or 0. */
export function hashBool(value: boolean): number {
  return hashUint32(value ? 1 : 0);
}

/**
 * hashchar of a "char" value given as its byte (0..127). hashchar widens a C
 * `char`, which is signed on x86-64 and unsigned on arm64, so bytes 128..255
 * hash differently by platform: those throw UnsupportedHashInputError.
 */
export function hashChar(byte: number): number {
  if (!Number.isInteger(byte) || byte < 0 || byte > 255) throw new RangeError(`hashChar: ${byte} is not a byte`);
  if (byte > 127) throw new UnsupportedHashInputError('char', String(byte), 'hashchar of a byte above 127 depends on the server platform');
  return hashUint32(byte);
}

let uuidScratch = new Uint8Array(16);

/** uuid_hash: hash_any over the 16 bytes. A string is parsed as uuid_in does. */
export function hashUuid(value: Uint8Array | string): number {
  if (typeof value === 'string') return hashBytes(parseUuidInto(value, uuidScratch), 0, 16);
  if (value.length !== 16) throw new RangeError(`hashUuid: a uuid has 16 bytes, got ${value.length}`);
  return hashBytes(value, 0, 16);
}

/** Parses a uuid into 16 new bytes. */
export function parseUuid(text: string): Uint8Array {
  return parseUuidInto(text, new Uint8Array(16));
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}

/**
 * uuid_in's syntax: 32 hex digits, optionally in braces, with an optional '-'
 * after any group of four digits (not after the last); no spaces.
 */
function parseUuidInto(text: string, out: Uint8Array): Uint8Array {
  const bad = (): never => {
    throw new UnsupportedHashInputError('uuid', text, 'invalid input syntax for type uuid');
  };
  let i = 0;
  const braces = text.charCodeAt(0) === 123; // '{'
  if (braces) i++;
  for (let byte = 0; byte < 16; byte++) {
    const high = hexValue(text.charCodeAt(i));
    const low = hexValue(text.charCodeAt(i + 1));
    if (high < 0 || low < 0) bad();
    out[byte] = (high << 4) | low;
    i += 2;
    if (text.charCodeAt(i) === 45 && byte % 2 === 1 && byte < 15) i++;
  }
  if (braces) {
    if (text.charCodeAt(i) !== 125) bad(); // '}'
    i++;
  }
  if (i !== text.length) bad();
  return out;
}

/**
 * boolin's syntax: surrounding spaces, then (any case) a prefix of 'true',
 * 'false', 'yes', 'no', at least 'on'/'of' of 'on'/'off', or '1'/'0'.
 */
export function parseBool(text: string): boolean {
  const start = skipSpaces(text, 0);
  const end = trimmedEnd(text);
  const len = end - start;
  if (len > 0) {
    const word = text.slice(start, end).toLowerCase();
    const first = word.charCodeAt(0);
    if (first === 116 /* t */ && 'true'.startsWith(word)) return true;
    if (first === 102 /* f */ && 'false'.startsWith(word)) return false;
    if (first === 121 /* y */ && 'yes'.startsWith(word)) return true;
    if (first === 110 /* n */ && 'no'.startsWith(word)) return false;
    if (first === 111 /* o */ && len >= 2) {
      if ('on'.startsWith(word)) return true;
      if ('off'.startsWith(word)) return false;
    }
    if (word === '1') return true;
    if (word === '0') return false;
  }
  throw new UnsupportedHashInputError('bool', text, 'invalid input syntax for type boolean');
}

/**
 * charin: a "char" is the first byte of the input ('' is byte 0), or a
 * backslash and three octal digits. Returns the byte.
 */
export function parseCharByte(text: string): number {
  if (text.length === 4 && text.charCodeAt(0) === 92) {
    let value = 0;
    let octal = true;
    for (let i = 1; i < 4; i++) {
      const digit = text.charCodeAt(i) - 48;
      if (digit < 0 || digit > 7) octal = false;
      value = value * 8 + digit;
    }
    if (octal) return value & 0xff; // charin truncates to a byte
  }
  if (text.length === 0) return 0;
  const first = text.charCodeAt(0);
  if (first > 127) throw new UnsupportedHashInputError('char', text, 'the first byte of a non-ASCII character hashes differently by server platform');
  return first;
}
