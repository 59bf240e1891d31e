// Ctrl-C read as a key in raw mode, so that the terminal signals no wrapper process.

import assert from "node:assert/strict";
import { readInterruptKeys, type TerminalInput } from "../../lib/util/interrupt_keys.ts";

function fakeTerminal(isTerminal: boolean) {
  const modes: boolean[] = [];
  let push!: (bytes: Uint8Array) => void;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (bytes) => controller.enqueue(bytes);
    },
  });
  const input: TerminalInput = {
    isTerminal: () => isTerminal,
    setRaw: (mode) => void modes.push(mode),
    readable,
  };
  return { input, modes, type: (...bytes: number[]) => push(new Uint8Array(bytes)) };
}

/** Lets the reading loop take what was typed. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("readInterruptKeys() puts a terminal in raw mode and calls onInterrupt once per Ctrl-C", async () => {
  const { input, modes, type } = fakeTerminal(true);
  let interrupts = 0;
  const restore = readInterruptKeys(input, {
    onInterrupt: () => interrupts++,
    foreground: () => true,
  });
  assert.deepEqual(modes, [true]);
  type(0x61, 0x03, 0x0d);
  await settle();
  assert.equal(interrupts, 1);
  type(0x03, 0x03);
  await settle();
  assert.equal(interrupts, 3, "each typed Ctrl-C counts: none is a duplicate");
  restore();
  restore();
  assert.deepEqual(modes, [true, false], "restored once");
});

Deno.test("readInterruptKeys() leaves stdin alone when it is no terminal or the process is in the background", () => {
  for (const [isTerminal, foreground] of [[false, true], [true, false]] as const) {
    const { input, modes } = fakeTerminal(isTerminal);
    const restore = readInterruptKeys(input, {
      onInterrupt: () => {},
      foreground: () => foreground,
    });
    restore();
    assert.deepEqual(modes, [], `isTerminal ${isTerminal}, foreground ${foreground}`);
    assert.equal(input.readable.locked, false, "stdin was not read");
  }
});
