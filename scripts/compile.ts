// `deno task compile`: single executables for every release target into dist/, permissions baked in,
// and a smoke test of the one this machine can run. Skips (exit 0) where the Deno runtime cannot be
// downloaded, unless REQUIRE_COMPILE=1.

import { parseArgs } from "node:util";
import { COMPILE_PERMISSIONS } from "./permissions.ts";

/** The release targets. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

const ROOT = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

/** The file name of the executable for `target`. */
export function outputName(target: string): string {
  return `dist/mcp-rproxy-${target}${target.includes("windows") ? ".exe" : ""}`;
}

/**
 * True when `deno compile` failed because it could not fetch its runtime (`denort`), which it downloads
 * for every target; any other failure is a real one.
 */
export function isRuntimeDownloadFailure(stderr: string): boolean {
  return /Setting up base binary/.test(stderr) &&
    /error sending request|dns error|\(Connect\)|timed out|status code|proxy/i.test(stderr);
}

type Outcome = { target: string; status: "built" | "skipped" | "failed"; detail: string };

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(args[0] as string, {
    args: args.slice(1),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function compile(target: string): Promise<Outcome> {
  const result = await run([
    Deno.execPath(),
    "compile",
    "--no-check", // checked once in main()
    "--no-prompt",
    ...COMPILE_PERMISSIONS,
    "--target",
    target,
    "--output",
    outputName(target),
    "main.ts",
  ]);
  if (result.code === 0) return { target, status: "built", detail: outputName(target) };
  // deno colours some diagnostics even with NO_COLOR.
  // deno-lint-ignore no-control-regex
  const plain = result.stderr.replace(/\x1b\[[0-9;]*m/g, "");
  const lastLines = plain.trim().split("\n").slice(-15).join("\n");
  return {
    target,
    status: isRuntimeDownloadFailure(plain) ? "skipped" : "failed",
    detail: lastLines,
  };
}

async function smokeTest(file: string): Promise<string[]> {
  const problems: string[] = [];
  for (const flag of ["--version", "--help"]) {
    const result = await run([`${ROOT}${file}`, flag]);
    if (result.code !== 0 || result.stdout.trim() === "") {
      problems.push(
        `${file} ${flag} exited ${result.code}: ${result.stderr.trim() || "no output"}`,
      );
    } else {
      console.log(`smoke test: ${file} ${flag} -> ${result.stdout.trim().split("\n")[0]}`);
    }
  }
  return problems;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { target: { type: "string", multiple: true } },
  });
  const host = Deno.build.target;
  const targets = (values.target ?? [...TARGETS]).map((t) => t === "host" ? host : t);
  for (const target of targets) {
    if (!TARGETS.includes(target)) {
      console.error(`Unknown target '${target}': choose from ${TARGETS.join(", ")} or host`);
      return 2;
    }
  }
  const required = Deno.env.get("REQUIRE_COMPILE") === "1";
  await Deno.mkdir(`${ROOT}dist`, { recursive: true });

  const check = await run([Deno.execPath(), "check", "main.ts"]);
  if (check.code !== 0) {
    console.error(`deno check main.ts failed:\n${check.stderr}`);
    return 1;
  }

  const outcomes: Outcome[] = [];
  for (const target of targets) {
    const outcome = await compile(target);
    outcomes.push(outcome);
    console.log(
      `${outcome.status.padEnd(7)} ${target}${
        outcome.status === "built" ? ` -> ${outcome.detail}` : ""
      }`,
    );
  }

  const failed = outcomes.filter((o) => o.status === "failed");
  const skipped = outcomes.filter((o) => o.status === "skipped");
  for (const o of failed) console.error(`compile failed for ${o.target}:\n${o.detail}`);
  if (skipped.length > 0) {
    const first = skipped[0] as Outcome;
    console.error(
      `Skipped ${skipped.length} of ${targets.length} targets: deno compile could not download the Deno runtime (denort) ` +
        `for them, as on machines without internet access. Run on a machine that reaches dl.deno.land, or point ` +
        `DENORT_BIN at a denort binary of the target. Set REQUIRE_COMPILE=1 to make this an error.\n` +
        `First error (${first.target}):\n${first.detail}`,
    );
  }

  const hostBuilt = outcomes.find((o) => o.target === host && o.status === "built");
  const problems = hostBuilt ? await smokeTest(outputName(host)) : [];
  for (const problem of problems) console.error(`smoke test failed: ${problem}`);
  if (!hostBuilt && targets.includes(host)) {
    console.log(`smoke test skipped: ${host} was not built`);
  }

  if (failed.length > 0 || problems.length > 0) return 1;
  if (skipped.length > 0 && required) {
    console.error("REQUIRE_COMPILE=1: failing because targets were skipped");
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
