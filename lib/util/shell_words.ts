// Splits a command line into words the way a POSIX shell quotes them, and joins words back, with
// no shell involved: no expansion, no globbing, no comments, no operators.

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
/** Characters a backslash escapes inside double quotes (POSIX); before any other it stays literal. */
const DOUBLE_QUOTE_ESCAPES = new Set(["$", "`", '"', "\\", "\n"]);
/** Words made only of these need no quoting. */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Splits a command string into program and arguments like a POSIX shell would, without running one.
 *
 * Rules: runs of spaces, tabs and newlines separate words; `'…'` keeps everything literally; `"…"` keeps
 * everything except that a backslash escapes `$`, `` ` ``, `"`, `\` and newline; outside quotes a
 * backslash makes the next character literal and a backslash-newline is removed. `''` and `""` give
 * an empty argument. `$VAR`, `~`, `*` and `#` are ordinary characters (like Python's `shlex.split`).
 *
 * @throws {SyntaxError} On an unclosed quote (naming the quote and its 1-based character position), a
 * trailing backslash, or a command with no words.
 *
 * @example
 * ```ts
 * import { splitCommand } from "./shell_words.ts";
 * splitCommand(`npx -y "@scope/server" --root '/my files'`);
 * // ["npx", "-y", "@scope/server", "--root", "/my files"]
 * ```
 */
export function splitCommand(text: string): string[] {
  const chars = Array.from(text); // code points, so positions count what people see
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < chars.length) {
    const c = chars[i]!;
    if (WHITESPACE.has(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "'") {
      const close = chars.indexOf("'", i + 1);
      if (close === -1) {
        throw new SyntaxError(
          `Unclosed single quote at character ${
            i + 1
          } of the command: add the closing ' or escape it as \\'`,
        );
      }
      word += chars.slice(i + 1, close).join("");
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      const open = i;
      i++;
      for (;;) {
        if (i >= chars.length) {
          throw new SyntaxError(
            `Unclosed double quote at character ${
              open + 1
            } of the command: add the closing " or escape it as \\"`,
          );
        }
        const d = chars[i]!;
        if (d === '"') break;
        if (d === "\\" && i + 1 < chars.length && DOUBLE_QUOTE_ESCAPES.has(chars[i + 1]!)) {
          if (chars[i + 1] !== "\n") word += chars[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === "\\") {
      if (i + 1 >= chars.length) {
        throw new SyntaxError(
          `Trailing backslash at character ${
            i + 1
          } of the command: remove it or write \\\\ for a literal backslash`,
        );
      }
      const next = chars[i + 1]!;
      if (next !== "\n") {
        word += next;
        inWord = true;
      }
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  if (words.length === 0) {
    throw new SyntaxError(
      'Command is empty: give a program to run, for example "npx -y my-server"',
    );
  }
  return words;
}

/**
 * Quotes one word so that {@link splitCommand} (and a POSIX shell) reads it back unchanged.
 *
 * @example
 * ```ts
 * import { quoteWord } from "./shell_words.ts";
 * quoteWord("/my files"); // "'/my files'"
 * quoteWord("it's"); // "'it'\"'\"'s'"
 * ```
 */
export function quoteWord(word: string): string {
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Joins words into one command string, quoting those that need it; the inverse of {@link splitCommand}.
 *
 * @example
 * ```ts
 * import { joinCommand } from "./shell_words.ts";
 * joinCommand(["python", "-c", "print('hi')"]); // "python -c 'print('\"'\"'hi'\"'\"')'"
 * ```
 */
export function joinCommand(words: readonly string[]): string {
  return words.map(quoteWord).join(" ");
}
