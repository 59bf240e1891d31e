// Ctrl-C read as a key from a terminal in raw mode, instead of the SIGINT the terminal would send to every
// process of the foreground group. Wrappers in that group (`npx`'s `sh -c`, dash in particular) would
// otherwise die by the signal after their child exited 0, and report 130 for a clean stop.

/** The terminal side of stdin that {@link readInterruptKeys} needs (`Deno.stdin` has it). */
export interface TerminalInput {
  isTerminal(): boolean;
  setRaw(mode: boolean): void;
  readonly readable: ReadableStream<Uint8Array>;
}

/** Options of {@link readInterruptKeys}. */
export interface InterruptKeysOptions {
  /** Called once per Ctrl-C typed. */
  onInterrupt: () => void;
  /**
   * False when this process is not in the terminal's foreground group: changing the terminal's mode from
   * the background would stop the process (SIGTTOU). Default: {@link inForeground}.
   */
  foreground?: () => boolean;
}

/** ETX, what the Ctrl-C key sends. */
const CTRL_C = 0x03;

/**
 * True unless /proc says this process is in the background of its terminal (Linux). Elsewhere, or when
 * /proc cannot be read, assumes the foreground.
 */
export function inForeground(): boolean {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    // Fields after the parenthesized command: state ppid pgrp session tty_nr tpgid …
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[2] === fields[5];
  } catch {
    return true;
  }
}

/**
 * When `input` is a terminal and this process is in its foreground, puts it in raw mode and calls
 * `onInterrupt` for each Ctrl-C typed: no SIGINT is generated, so no other process of the group sees
 * one. Returns the function that restores the terminal's mode (call it on every exit path, before
 * `Deno.exit` too); it does nothing when raw mode was not entered.
 *
 * @example
 * ```ts
 * import { readInterruptKeys } from "./interrupt_keys.ts";
 * const restore = readInterruptKeys(Deno.stdin, { onInterrupt: () => console.log("stopping") });
 * restore();
 * ```
 */
export function readInterruptKeys(input: TerminalInput, options: InterruptKeysOptions): () => void {
  const { onInterrupt, foreground = inForeground } = options;
  if (!input.isTerminal() || !foreground()) return () => {};
  input.setRaw(true);
  let raw = true;
  const reader = input.readable.getReader();
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const byte of value) if (byte === CTRL_C) onInterrupt();
    }
  })().catch(() => {}); // stdin closed under us: nothing more to read
  return () => {
    if (!raw) return;
    raw = false;
    input.setRaw(false);
    // A pending read of a terminal cannot be interrupted; the process exits right after this anyway.
    reader.releaseLock();
  };
}
