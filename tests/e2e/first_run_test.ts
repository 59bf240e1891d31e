// A new user's first run, as they run it: the README's demo command on a fresh copy of the project with an
// empty Deno cache, in a real terminal, prints only the demo's own lines; one Ctrl-C stops it with exit 0
// whatever started it (npx, deno task, directly), a second Ctrl-C stops at once with 130, and nothing it
// started is left running.

import assert from "node:assert/strict";
import { delay } from "../../lib/util/delay.ts";
import { commands, readme, shellBlocks } from "../fixtures/readme.ts";
import { descendants, screenLines, startInTerminal } from "../fixtures/terminal.ts";
import { processAlive } from "../fixtures/proxy_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const DEMO_SERVER_MAIN = new URL("../fixtures/demo_server_main.ts", import.meta.url).pathname;

/** The lines the demo itself prints, in order; anything else on screen is noise a user did not ask for. */
const DEMO_LINES = [
  /^mcp-rproxy \S+ demo: everything below runs on this machine, over 127\.0\.0\.1$/,
  /^ {2}serve {5}gateway listening on http:\/\/127\.0\.0\.1:\d+$/,
  /^ {2}connect {3}tunneled 'mcp-rproxy demo-server \(built in\)' \(pid \d+\) as 'mcp-rproxy-demo'$/,
  /^ {2}client {4}initialize → mcp-rproxy-demo \S+ \(protocol [\d-]+\)$/,
  /^ {2}client {4}tools\/list → echo, /,
  /^ {2}client {4}tools\/call echo → Echo: hello through the tunnel$/,
  /^$/,
  /^Point any MCP client \(Streamable HTTP\) at:$/,
  /^ {2}URL {5}http:\/\/127\.0\.0\.1:\d+\/servers\/mcp-rproxy-demo\/mcp$/,
  /^ {2}Header {2}Authorization: Bearer [0-9a-f]{64}$/,
  /^$/,
  /^Press Ctrl-C to stop\.$/,
  /^demo stopped$/,
];

/** The environment of a user's shell (this one: it holds what reaching the npm registry needs). */
function userEnv(denoDir?: string): Record<string, string> {
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
  };
  if (denoDir !== undefined) env.DENO_DIR = denoDir;
  return env;
}

/** A copy of what a clone holds that the demo needs: no node_modules, nothing built. */
async function freshCopy(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-clone-" });
  const copy = await new Deno.Command("cp", {
    args: ["-R", "deno.json", "deno.lock", "main.ts", "lib", dir],
    cwd: ROOT,
  }).output();
  assert.ok(copy.success, new TextDecoder().decode(copy.stderr));
  return dir;
}

/** Waits until none of `pids` is alive (a killed process lingers a moment before it is reaped). */
async function allGone(pids: number[], ms = 10_000): Promise<void> {
  const until = performance.now() + ms;
  while (pids.some(processAlive)) {
    if (performance.now() > until) {
      throw new Error(`still running after ${ms} ms: ${pids.filter(processAlive).join(", ")}`);
    }
    await delay(20);
  }
}

Deno.test("the README's demo command, on a fresh copy with an empty Deno cache, prints only the demo's lines; one Ctrl-C in a terminal exits 0", async () => {
  const first = commands(shellBlocks(readme())[0]!)[0]!;
  assert.match(first, /^npx -y deno@2\.9\.6 task -q demo$/, "the README's first command");
  const dir = await freshCopy();
  const denoDir = await Deno.makeTempDir({ prefix: "mcp-rproxy-deno-dir-" });
  try {
    await using demo = startInTerminal(first, { cwd: dir, env: userEnv(denoDir) });
    await demo.waitFor(/Press Ctrl-C to stop\./, 180_000);
    const started = descendants(demo.pid);
    await demo.type("\x03");
    assert.equal(await demo.exitCode(20_000), 0, demo.output());
    await allGone(started);
    const shown = screenLines(demo.output());
    while (shown.at(-1) === "") shown.pop();
    assert.equal(shown.length, DEMO_LINES.length, `only the demo's lines:\n${shown.join("\n")}`);
    shown.forEach((line, i) => assert.match(line, DEMO_LINES[i]!));
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("deno task demo in a terminal: one Ctrl-C exits 0 and leaves nothing running", async () => {
  await using demo = startInTerminal("deno task demo", { cwd: ROOT, env: userEnv() });
  await demo.waitFor(/Press Ctrl-C to stop\./, 60_000);
  const started = descendants(demo.pid);
  assert.ok(started.length >= 3, `deno task, the demo and its server: ${started}`);
  await demo.type("\x03");
  assert.equal(await demo.exitCode(20_000), 0, demo.output());
  await allGone(started);
});

Deno.test("the demo in a terminal: a second Ctrl-C during a slow shutdown stops at once with 130", async () => {
  // A server that outlives its stdin closing and ignores SIGTERM: a graceful stop would wait 5 s for it.
  const server = `sh -c 'trap "" TERM; ${Deno.execPath()} run ${DEMO_SERVER_MAIN}; ` +
    `echo slow server lingers >&2; exec sleep 300'`;
  await using demo = startInTerminal(
    `${Deno.execPath()} run -q -A ${ROOT}main.ts demo --server "${server.replaceAll('"', '\\"')}"`,
    { cwd: ROOT, env: userEnv() },
  );
  await demo.waitFor(/Press Ctrl-C to stop\./, 60_000);
  const started = descendants(demo.pid);
  await demo.type("\x03");
  await demo.waitFor(/slow server lingers/, 10_000);
  const second = performance.now();
  await demo.type("\x03");
  assert.equal(await demo.exitCode(10_000), 130, demo.output());
  assert.ok(performance.now() - second < 3_000, "the second Ctrl-C did not stop at once");
  await allGone(started, 3_000);
});

Deno.test("deno task demo without a terminal: SIGINT to its whole process group exits 0 and leaves nothing running", async () => {
  const child = new Deno.Command("deno", {
    args: ["task", "demo"],
    cwd: ROOT,
    env: userEnv(),
    clearEnv: true,
    detached: true,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // Bounds every read below: a run that hangs is killed, which ends the output.
  const timer = setTimeout(() => Deno.kill(-child.pid, "SIGKILL"), 60_000);
  try {
    let text = "";
    while (!text.includes("Press Ctrl-C")) {
      const { value, done } = await lines.read();
      assert.ok(!done, `exited before 'Press Ctrl-C':\n${text}`);
      text += value;
    }
    const started = descendants(child.pid);
    // What a terminal's Ctrl-C does: SIGINT to every process of the foreground group.
    Deno.kill(-child.pid, "SIGINT");
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      text += value;
    }
    const status = await child.status;
    assert.equal(status.code, 0, text);
    assert.match(text, /demo stopped/);
    await allGone(started);
  } finally {
    clearTimeout(timer);
    await lines.cancel().catch(() => {});
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone: the normal case.
    }
    await child.status;
  }
});
