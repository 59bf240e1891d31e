// Byte length of text in UTF-8, counted without encoding it.

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * Byte length of a string in UTF-8, without allocating.
 *
 * @example
 * ```ts
 * import { utf8Length } from "./utf8.ts";
 * utf8Length("é"); // 2
 * ```
 */
export function utf8Length(text: string): number {
  // Every UTF-16 unit encodes to at most 3 bytes; a short string cannot exceed any limit we check.
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3; // A lone surrogate is encoded as U+FFFD, 3 bytes.
  }
  return bytes;
}
