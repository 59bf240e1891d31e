// `deno task install` puts a working `mcp-rproxy` on the PATH: it answers --version and `serve --help`,
// and runs the demo, which one SIGINT to its process group (a terminal's Ctrl-C) stops with exit 0.

import assert from "node:assert/strict";
import { installShim } from "../fixtures/install.ts";
import { descendants } from "../fixtures/terminal.ts";
import { processAlive } from "../fixtures/proxy_process.ts";
import { delay } from "../../lib/util/delay.ts";
import { VERSION } from "../../lib/util/version.ts";

const MAIN_URL = new URL("../../main.ts", import.meta.url).href;

const installed = await installShim();
/** Commands run from elsewhere than the checkout, as a user's would. */
const elsewhere = await Deno.makeTempDir({ prefix: "mcp-rproxy-cwd-" });
addEventListener("unload", () => {
  for (const dir of [installed.root, elsewhere]) Deno.removeSync(dir, { recursive: true });
});

/** `mcp-rproxy ARGS…` found through the PATH, as a shell finds it (`exec`: no shell stays in between). */
function viaPath(args: string[]): { command: string; args: string[] } {
  return { command: "sh", args: ["-c", 'exec mcp-rproxy "$@"', "sh", ...args] };
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { command, args: words } = viaPath(args);
  const output = await new Deno.Command(command, {
    args: words,
    cwd: elsewhere,
    env: installed.env(),
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("deno task install writes one mcp-rproxy shim with all permissions, on this checkout's main.ts", async () => {
  assert.match(installed.stdout, new RegExp(`Installed ${installed.bin}/mcp-rproxy`));
  assert.match(installed.stdout, /export PATH=/, "says how to put it on the PATH");
  const shim = await Deno.readTextFile(`${installed.bin}/mcp-rproxy`);
  assert.match(
    shim,
    /deno run --allow-all --quiet --unstable-lazy-dynamic-imports --config \S+ '?file:\/\/\S+main\.ts'? "\$@"/,
    "serve and the demo load only when they run (docs/performance.md)",
  );
  assert.ok(shim.includes(MAIN_URL), `the shim runs ${MAIN_URL}:\n${shim}`);
});

Deno.test("the installed mcp-rproxy answers --version and serve --help with exit 0", async () => {
  const version = await run(["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout, `${VERSION}\n`);
  assert.equal(version.stderr, "", "nothing but the version");
  const help = await run(["serve", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: mcp-rproxy serve/m);
});

Deno.test("the installed mcp-rproxy runs the demo: URL and token lines, then exit 0 on SIGINT to its process group", async () => {
  const { command, args } = viaPath(["demo"]);
  const child = new Deno.Command(command, {
    args,
    cwd: elsewhere,
    env: installed.env(),
    detached: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => Deno.kill(-child.pid, "SIGKILL"), 60_000);
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    while (!text.includes("Press Ctrl-C")) {
      const { value, done } = await reader.read();
      if (done) assert.fail(`exited before 'Press Ctrl-C':\n${text}${await stderr}`);
      text += value;
    }
    assert.match(text, /^ {2}URL {5}http:\/\/127\.0\.0\.1:\d+\/servers\/mcp-rproxy-demo\/mcp$/m);
    assert.match(text, /^ {2}Header {2}Authorization: Bearer [0-9a-f]{64}$/m);
    const started = descendants(child.pid);
    Deno.kill(-child.pid, "SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const errors = await stderr;
    assert.equal((await child.status).code, 0, `${text}${errors}`);
    assert.match(text, /demo stopped\n$/);
    assert.equal(errors, "", "the demo printed nothing on stderr");
    for (let i = 0; i < 500 && started.some(processAlive); i++) await delay(20);
    assert.deepEqual(started.filter(processAlive), [], "processes outlived the demo");
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone: the normal case.
    }
    await child.status;
    await stderr.catch(() => "");
  }
});
