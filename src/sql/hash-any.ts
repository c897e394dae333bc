/**
 * Bob Jenkins' lookup3 hash as PostgreSQL implements it (src/common/hashfn.c:
 * hash_bytes, alias hash_any, and hash_bytes_uint32, alias hash_uint32).
 *
 * Every default hash opclass support function that Citus-style hash
 * distribution uses ends in one of these two, so they must be bit-exact:
 * shard placement is decided by their output. PostgreSQL reads the key as
 * little-endian 32-bit words on the machines it runs on (x86-64, arm64), which
 * is what this file does; the aligned and unaligned paths in hashfn.c give the
 * same result on little-endian machines.
 *
 * All arithmetic is on int32 values (`| 0`, `>>>`), no allocation per call.
 * Results are signed int32, as PostgreSQL's SQL-level hash functions return them.
 */

/** Rotate left, 32-bit. */
function rot(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The constant hashfn.c seeds a, b and c with, plus the key length. */
const GOLDEN_RATIO_SEED = 0x9e3779b9 + 3923095;

/**
 * hash_any(k[start .. start+length)): the hash of a byte string.
 * `k` may be a Buffer or any Uint8Array; nothing is copied.
 */
export function hashBytes(k: Uint8Array, start = 0, length = k.length - start): number {
  let a = (GOLDEN_RATIO_SEED + length) | 0;
  let b = a;
  let c = a;
  let i = start;
  let len = length;

  while (len >= 12) {
    a = (a + (k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24))) | 0;
    b = (b + (k[i + 4]! | (k[i + 5]! << 8) | (k[i + 6]! << 16) | (k[i + 7]! << 24))) | 0;
    c = (c + (k[i + 8]! | (k[i + 9]! << 8) | (k[i + 10]! << 16) | (k[i + 11]! << 24))) | 0;
    // mix(a, b, c)
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0;
    i += 12;
    len -= 12;
  }

  // The last 0..11 bytes (hashfn.c's fall-through switch). The lowest byte of
  // c is never fed from the key: the length is in the seed instead.
  if (len >= 11) c = (c + (k[i + 10]! << 24)) | 0;
  if (len >= 10) c = (c + (k[i + 9]! << 16)) | 0;
  if (len >= 9) c = (c + (k[i + 8]! << 8)) | 0;
  if (len >= 8) b = (b + (k[i + 7]! << 24)) | 0;
  if (len >= 7) b = (b + (k[i + 6]! << 16)) | 0;
  if (len >= 6) b = (b + (k[i + 5]! << 8)) | 0;
  if (len >= 5) b = (b + k[i + 4]!) | 0;
  if (len >= 4) a = (a + (k[i + 3]! << 24)) | 0;
  if (len >= 3) a = (a + (k[i + 2]! << 16)) | 0;
  if (len >= 2) a = (a + (k[i + 1]! << 8)) | 0;
  if (len >= 1) a = (a + k[i]!) | 0;

  return finalMix(a, b, c);
}

/** hash_uint32(k): the hash of one 32-bit word (what hashint4, hashoid, hashchar use). */
export function hashUint32(k: number): number {
  const seed = (GOLDEN_RATIO_SEED + 4) | 0;
  return finalMix((seed + k) | 0, seed, seed);
}

/** lookup3's final(a, b, c); returns c as signed int32. */
function finalMix(a: number, b: number, c: number): number {
  c ^= b; c = (c - rot(b, 14)) | 0;
  a ^= c; a = (a - rot(c, 11)) | 0;
  b ^= a; b = (b - rot(a, 25)) | 0;
  c ^= b; c = (c - rot(b, 16)) | 0;
  a ^= c; a = (a - rot(c, 4)) | 0;
  b ^= a; b = (b - rot(a, 14)) | 0;
  c ^= b; c = (c - rot(b, 24)) | 0;
  return c;
}

/** Reused UTF-8 scratch buffer so hashing a JS string allocates nothing once warm. */
let utf8Scratch = new Uint8Array(1024);
const scratchResult = { bytes: utf8Scratch, length: 0 };

/**
 * Encodes `text` as UTF-8 into a shared scratch buffer and returns it with the
 * byte length; length is -1 when the text holds NUL or an unpaired surrogate,
 * which no PostgreSQL text value can. The buffer is overwritten by the next
 * call: use it at once. (A JS loop: short keys are the common case, and it is
 * cheaper than crossing into Buffer.write, and checks validity on the way.)
 */
export function encodeUtf8Scratch(text: string): { bytes: Uint8Array; length: number } {
  const n = text.length;
  // Each UTF-16 code unit encodes to at most 3 bytes.
  if (n * 3 > utf8Scratch.length) utf8Scratch = new Uint8Array(Math.max(n * 3, utf8Scratch.length * 2));
  const out = utf8Scratch;
  scratchResult.bytes = out;
  let o = 0;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) return invalidText();
      out[o++] = c;
    } else if (c < 0x800) {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      out[o++] = 0xe0 | (c >> 12);
      out[o++] = 0x80 | ((c >> 6) & 0x3f);
      out[o++] = 0x80 | (c & 0x3f);
    } else {
      const low = text.charCodeAt(i + 1); // NaN past the end
      if (c > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) return invalidText();
      c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
      i++;
      out[o++] = 0xf0 | (c >> 18);
      out[o++] = 0x80 | ((c >> 12) & 0x3f);
      out[o++] = 0x80 | ((c >> 6) & 0x3f);
      out[o++] = 0x80 | (c & 0x3f);
    }
  }
  scratchResult.length = o;
  return scratchResult;
}

function invalidText(): { bytes: Uint8Array; length: number } {
  scratchResult.length = -1;
  return scratchResult;
}
