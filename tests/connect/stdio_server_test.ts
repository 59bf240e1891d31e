// Tests of StdioServer with real child processes: line framing of stdout and stderr, writes to stdin, exit
// codes, and stopping a child (and everything it launched) that does not want to stop.

import assert from "node:assert/strict";
import { deadline } from "../../lib/util/delay.ts";
import { ServerStartError } from "../../lib/connect/errors.ts";
import type { Line, OversizedLine } from "../../lib/util/line_splitter.ts";
import { StdioServer, type StdioServerOptions } from "../../lib/connect/stdio_server.ts";
import { Collector } from "../fixtures/collector.ts";
import { groupGone, processAlive, processGroupMembers } from "../fixtures/proxy_process.ts";

const WAIT_MS = 10_000;

function sh(script: string): string[] {
  return ["sh", "-c", script];
}

/** Spawns with collectors for stdout and stderr lines; the caller stops it in finally. */
function spawn(
  command: string[],
  options: Partial<StdioServerOptions> = {},
): { server: StdioServer; lines: Collector<Line>; stderr: Collector<string> } {
  const lines = new Collector<Line>();
  const stderr = new Collector<string>();
  const server = StdioServer.spawn({
    command,
    onLine: lines.push,
    onStderr: stderr.push,
    ...options,
  });
  return { server, lines, stderr };
}

Deno.test("StdioServer.spawn() passes the child's stdout lines to onLine in order", async () => {
  const { server, lines } = spawn(sh("printf 'one\\ntwo\\n'; printf 'thr'; printf 'ee\\nfour'"));
  try {
    const exit = await deadline(server.exited, WAIT_MS, "child exit");
    assert.equal(exit.code, 0);
    assert.deepEqual(lines.items.map((l) => l.text), ["one", "two", "three", "four"]);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.spawn() passes many lines from a deno child in order", async () => {
  const count = 2000;
  const { server, lines } = spawn([
    Deno.execPath(),
    "eval",
    `for (let i = 0; i < ${count}; i++) console.log(JSON.stringify({ jsonrpc: "2.0", id: i, result: {} }));`,
  ]);
  try {
    await lines.waitForCount(count, WAIT_MS, `${count} lines`);
    assert.deepEqual(lines.items.map((l) => JSON.parse(l.text).id), [...Array(count).keys()]);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.spawn() passes the child's stderr lines to onStderr, not onLine", async () => {
  const { server, lines, stderr } = spawn(sh("printf 'warn 1\\nwarn 2\\n' >&2; echo out"));
  try {
    await deadline(server.exited, WAIT_MS, "child exit");
    assert.deepEqual(stderr.items, ["warn 1", "warn 2"]);
    assert.deepEqual(lines.items.map((l) => l.text), ["out"]);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.send() writes a line the child reads (cat echoes it back)", async () => {
  const { server, lines } = spawn(["cat"]);
  try {
    assert.equal(server.writable, true);
    assert.equal(await server.send('{"jsonrpc":"2.0","id":1,"method":"ping"}'), true);
    assert.equal(await server.send("second"), true);
    await lines.waitForCount(2, WAIT_MS, "echoed lines");
    assert.deepEqual(lines.items, [
      { text: '{"jsonrpc":"2.0","id":1,"method":"ping"}', bytes: 40 },
      { text: "second", bytes: 6 },
    ]);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.stop() lets a child that exits on stdin EOF leave by itself", async () => {
  const { server } = spawn(["cat"], { graceMs: 5000 });
  const exit = await deadline(server.stop(), WAIT_MS, "stop");
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(server.writable, false);
  assert.equal(await server.send("late"), false);
});

Deno.test("StdioServer.stop() SIGKILLs a child that ignores stdin EOF and SIGTERM graceMs after the stop began", async () => {
  const { server, lines } = spawn(sh('trap "" TERM; echo ready; sleep 100'), { graceMs: 600 });
  try {
    await lines.waitFor((l) => l.text === "ready", WAIT_MS, "ready line");
    const start = performance.now();
    const exit = await deadline(server.stop(), WAIT_MS, "stop");
    const elapsed = performance.now() - start;
    assert.equal(exit.signal, "SIGKILL");
    // Not before the grace period, and not much after it: the whole stop is bounded by graceMs.
    assert.ok(elapsed >= 590 && elapsed < 1500, `stopped after ${Math.round(elapsed)} ms`);
    await groupGone(server.pid, 2000);
  } finally {
    server.kill();
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.stop() kills the grandchildren in the child's process group", async () => {
  const { server, lines } = spawn(sh("sleep 101 & sleep 102 & echo ready; wait"), {
    graceMs: 2000,
  });
  try {
    await lines.waitFor((l) => l.text === "ready", WAIT_MS, "ready line");
    const before = processGroupMembers(server.pid);
    assert.equal(before.length, 3, `group members ${before}`);
    assert.ok(before.includes(server.pid));
    await deadline(server.stop(), WAIT_MS, "stop");
    await groupGone(server.pid, 2000);
    for (const pid of before) assert.equal(processAlive(pid), false, `pid ${pid} alive`);
  } finally {
    server.kill();
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.exited kills grandchildren left behind by a child that exited by itself", async () => {
  const { server, lines } = spawn(sh("sleep 103 & echo $!"));
  try {
    const line = await lines.waitFor(() => true, WAIT_MS, "grandchild pid");
    const grandchild = Number(line.text);
    const exit = await deadline(server.exited, WAIT_MS, "child exit");
    assert.equal(exit.code, 0);
    await groupGone(server.pid, 2000);
    assert.equal(processAlive(grandchild), false);
  } finally {
    server.kill();
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.exited resolves with the code of a child that dies on its own", async () => {
  const { server } = spawn(sh("exit 3"));
  try {
    const exit = await deadline(server.exited, WAIT_MS, "child exit");
    assert.deepEqual(exit, { code: 3, signal: null });
    assert.equal(server.writable, false);
    assert.equal(await server.send("anyone?"), false);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.stop() is idempotent", async () => {
  const { server } = spawn(["cat"]);
  const first = server.stop();
  const second = server.stop();
  assert.equal(first, second);
  await deadline(first, WAIT_MS, "stop");
});

Deno.test("StdioServer.spawn() throws ServerStartError naming a program that does not exist", () => {
  const program = "mcp-rproxy-no-such-program-4711";
  assert.throws(
    () => StdioServer.spawn({ command: [program, "--flag"], onLine: () => {} }),
    (error) => {
      assert.ok(error instanceof ServerStartError);
      assert.ok(error.message.includes(`'${program}'`), error.message);
      assert.match(error.message, /check the command and PATH/);
      assert.ok(error.cause instanceof Deno.errors.NotFound);
      return true;
    },
  );
});

Deno.test("StdioServer.spawn() throws ServerStartError for an empty command", () => {
  assert.throws(() => StdioServer.spawn({ command: [], onLine: () => {} }), {
    name: "ServerStartError",
    message: "Cannot start the local server: the command is empty",
  });
});

Deno.test("StdioServer.spawn() keeps reading after onLine throws", async () => {
  const seen: string[] = [];
  const server = StdioServer.spawn({
    command: sh("printf 'a\\nb\\nc\\n'"),
    onStderr: () => {},
    onLine: (line) => {
      seen.push(line.text);
      if (line.text === "b") throw new Error("routing failed");
    },
  });
  try {
    await deadline(server.exited, WAIT_MS, "child exit");
    assert.deepEqual(seen, ["a", "b", "c"]);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.spawn() waits for a promise from onLine before the next line", async () => {
  const events = new Collector<string>();
  const stderr = new Collector<string>();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const server = StdioServer.spawn({
    // Both lines are in the pipe before "written" shows up on stderr.
    command: sh("printf 'first\\nsecond\\n'; echo written >&2; read _"),
    onStderr: stderr.push,
    onLine: (line) => {
      events.push(`line ${line.text}`);
      if (line.text === "first") return gate.then(() => events.push("released"));
    },
  });
  try {
    await events.waitFor((e) => e === "line first", WAIT_MS, "first line");
    await stderr.waitFor((l) => l === "written", WAIT_MS, "stderr line");
    assert.deepEqual(events.items, ["line first"]);
    release();
    await events.waitFor((e) => e === "line second", WAIT_MS, "second line");
    assert.deepEqual(events.items, ["line first", "released", "line second"]);
  } finally {
    release();
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.spawn() reports a stdout line over maxLineBytes and passes the next", async () => {
  const oversized = new Collector<OversizedLine>();
  const { server, lines } = spawn(sh(`printf '%0300d\\nsmall\\n' 0`), {
    maxLineBytes: 100,
    onOversized: oversized.push,
  });
  try {
    await deadline(server.exited, WAIT_MS, "child exit");
    assert.deepEqual(lines.items.map((l) => l.text), ["small"]);
    assert.equal(oversized.items.length, 1);
    assert.equal(oversized.items[0]?.bytes, 300);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.stop() completes within graceMs while a write to a server that stopped reading is stuck", async () => {
  // The child never reads stdin and ignores SIGTERM: once the pipe is full, a write waits for ever.
  const { server, lines } = spawn(sh('trap "" TERM; echo ready; exec sleep 100'), {
    graceMs: 1000,
  });
  try {
    await lines.waitFor((l) => l.text === "ready", WAIT_MS, "ready line");
    const line = "x".repeat(64 * 1024);
    for (let i = 0; i < 16; i++) assert.equal(server.write(line).kind, "queued");
    // The pipe took what fits; the rest waits.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(server.queued.bytes > 0, "nothing left waiting: the test proves nothing");
    const start = performance.now();
    const exit = await deadline(server.stop(), WAIT_MS, "stop");
    const elapsed = performance.now() - start;
    assert.equal(exit.signal, "SIGKILL");
    assert.ok(elapsed < 1000 + 500, `stop took ${Math.round(elapsed)} ms with a grace of 1000 ms`);
    await groupGone(server.pid, 2000);
  } finally {
    server.kill();
    await deadline(server.stop(), WAIT_MS, "stop");
  }
});

Deno.test("StdioServer.write() refuses at once past the queue's bound, in bytes and in messages", async () => {
  const { server, lines } = spawn(sh("echo ready; exec sleep 100"), {
    queueLimits: { maxBytes: 256 * 1024, maxMessages: 1000 },
    graceMs: 200,
  });
  try {
    await lines.waitFor((l) => l.text === "ready", WAIT_MS, "ready line");
    const line = "y".repeat(1023); // 1 KiB with its newline
    let queued = 0;
    let refusal: ReturnType<StdioServer["write"]> | undefined;
    for (let i = 0; i < 2000 && refusal === undefined; i++) {
      const outcome = server.write(line);
      if (outcome.kind === "queued") queued++;
      else refusal = outcome;
    }
    assert.ok(refusal?.kind === "full", `never refused after ${queued} lines`);
    assert.equal(refusal.limit, "bytes");
    assert.ok(refusal.bytes <= 256 * 1024 && refusal.bytes > 256 * 1024 - 1024);
    // The pipe takes about 64 KiB before it blocks; the queue holds the bound and not a line more.
    assert.ok(queued <= 256 + 65, `accepted ${queued} lines`);
    assert.ok(server.queued.bytes <= 256 * 1024);
  } finally {
    await deadline(server.stop(), WAIT_MS, "stop");
  }
  const { server: counted, lines: ready } = spawn(sh("echo ready; exec sleep 100"), {
    queueLimits: { maxBytes: 64 * 1024 * 1024, maxMessages: 10 },
    graceMs: 200,
  });
  try {
    await ready.waitFor((l) => l.text === "ready", WAIT_MS, "ready line");
    const big = "z".repeat(128 * 1024); // more than the pipe takes at once: nothing leaves the queue
    const outcomes = Array.from({ length: 12 }, () => counted.write(big).kind);
    assert.ok(outcomes.includes("full"));
    const refused = counted.write(big);
    assert.equal(refused.kind, "full");
    assert.equal(refused.kind === "full" ? refused.limit : undefined, "messages");
  } finally {
    await deadline(counted.stop(), WAIT_MS, "stop");
  }
});
