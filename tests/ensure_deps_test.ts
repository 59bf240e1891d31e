import { equal, ok } from "node:assert/strict";
import { findProgram } from "./fixtures/daemon.ts";

const SCRIPT = new URL("../scripts/ensure_deps.sh", import.meta.url).pathname;

async function runScript(): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const result = await new Deno.Command("bash", {
    args: [SCRIPT],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    stdout: decoder.decode(result.stdout),
    stderr: decoder.decode(result.stderr),
    ms: performance.now() - started,
  };
}

Deno.test("scripts/ensure_deps.sh leaves redis-server, haproxy and tinyproxy installed, and is quick and silent then", async () => {
  // The first run may install what is missing (the test command runs the script before the tests anyway).
  const first = await runScript();
  equal(first.code, 0, `ensure_deps.sh failed:\n${first.stdout}${first.stderr}`);
  for (const program of ["redis-server", "haproxy", "tinyproxy"]) findProgram(program);
  const second = await runScript();
  equal(second.code, 0, second.stderr);
  equal(second.stdout + second.stderr, "");
  ok(second.ms < 1_000, `ensure_deps.sh took ${second.ms.toFixed(0)} ms with everything present`);
});
