// Text helpers for values kept beyond the life of the message they came in.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `text` trimmed and cut to at most `max` UTF-16 units (never splitting a surrogate pair), as a fresh
 * string. A slice of a parsed frame's string may keep the whole frame alive in V8; what is kept for the
 * life of a session (names, descriptions) must not pin megabytes.
 *
 * @example
 * ```ts
 * import { boundedCopy } from "./text.ts";
 * boundedCopy("  git server  ", 3); // "git"
 * ```
 */
export function boundedCopy(text: string, max: number): string {
  let cut = text.trim();
  if (cut.length > max) {
    const last = cut.charCodeAt(max - 1);
    cut = cut.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
  }
  return decoder.decode(encoder.encode(cut));
}

/**
 * `text` with control characters (C0, DEL, C1 and the Unicode line separators) written as escapes, so that
 * a value from a peer cannot start a new line in a text log or move the terminal's cursor.
 *
 * @example
 * ```ts
 * import { escapeControl } from "./text.ts";
 * escapeControl("a\nb"); // "a\\nb"
 * ```
 */
export function escapeControl(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      default:
        return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
    }
  });
}
