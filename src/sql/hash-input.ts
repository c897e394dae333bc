/**
 * Shared pieces of the text-input parsers behind the hash functions.
 *
 * The router hashes a distribution value given in PostgreSQL's text form (a
 * SQL literal or a text-format Bind parameter). Our parsers accept only forms
 * whose meaning we reproduce exactly; anything else throws
 * UnsupportedHashInputError so the caller can ask PostgreSQL instead. A wrong
 * hash would route a row to the wrong shard, which is far worse than one extra
 * round trip. Inputs PostgreSQL itself rejects also throw this error: asking
 * PostgreSQL then yields its own error message and SQLSTATE.
 */

/** The text form of a value that our parsers do not handle (or PostgreSQL rejects). */
export class UnsupportedHashInputError extends Error {
  override readonly name = 'UnsupportedHashInputError';
  constructor(
    readonly typeName: string,
    readonly input: string,
    readonly reason: string,
  ) {
    super(`cannot hash ${typeName} input ${JSON.stringify(input.length > 80 ? input.slice(0, 80) + '…' : input)}: ${reason}`);
  }
}

/** C's isspace() in the "C" locale, which PostgreSQL's input functions use. */
export function isPgSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}

/** Index of the first non-space character at or after `from`. */
export function skipSpaces(text: string, from: number): number {
  let i = from;
  while (i < text.length && isPgSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Index just past the last non-space character (text.length when none trail). */
export function trimmedEnd(text: string): number {
  let end = text.length;
  while (end > 0 && isPgSpace(text.charCodeAt(end - 1))) end--;
  return end;
}

export function isDigitCode(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** Whether text[at .. at+word.length) equals `word` ignoring ASCII case; `word` is lower case. */
export function matchesWordAt(text: string, at: number, word: string): boolean {
  if (at + word.length > text.length) return false;
  for (let j = 0; j < word.length; j++) {
    let c = text.charCodeAt(at + j);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== word.charCodeAt(j)) return false;
  }
  return true;
}

/** Whether text[from, to) equals `word` (lower case) ignoring ASCII case. */
export function rangeEqualsWord(text: string, from: number, to: number, word: string): boolean {
  return to - from === word.length && matchesWordAt(text, from, word);
}
