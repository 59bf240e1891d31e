// The container entrypoint's signal handling: the bundle, with its production permissions, runs as PID 1
// of a fresh PID namespace (what `docker run` does without --init) and must stop on SIGTERM with exit 0.
// Deno ignores SIGTERM as PID 1 unless a listener is installed, so this fails if main.ts loses its.

import assert from "node:assert/strict";
import { LineSplitter } from "../../lib/util/line_splitter.ts";
import { startContractGateway } from "../fixtures/contract_gateway.ts";
import { DEMO_SERVER } from "../fixtures/proxy_process.ts";
import { buildBundle } from "../fixtures/bundle.ts";
import {
  connectPermissions,
  gatewayNetTarget,
  servePermissions,
} from "../../scripts/permissions.ts";

const UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"];

/** Why PID-namespace tests cannot run here, or undefined when they can. */
async function unshareProblem(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "PID namespaces are Linux-only";
  try {
    const output = await new Deno.Command(UNSHARE[0] as string, {
      args: [...UNSHARE.slice(1), "true"],
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(10_000),
    }).output();
    if (output.success) return undefined;
    return `'${UNSHARE.join(" ")} true' failed: ${new TextDecoder().decode(output.stderr).trim()}`;
  } catch (error: unknown) {
    return `'unshare' cannot run: ${error instanceof Error ? error.message : String(error)}`;
  }
}

const problem = await unshareProblem();
if (problem) {
  console.error(
    `SKIP tests/pid1_test.ts: ${problem} (needs util-linux unshare and root or CAP_SYS_ADMIN)`,
  );
}

/** Builds the bundle into a temporary directory for `fn`, and removes it after. */
async function withBundle(fn: (bundle: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-pid1-" });
  try {
    await fn(await buildBundle(`${dir}/mcp-rproxy`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Parent pid of `pid` from /proc, or undefined if it is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** The pid (in our namespace) of the process that `unshare --fork` started as PID 1. */
function namespaceInit(unsharePid: number): number {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (parentOf(pid) !== unsharePid) continue;
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
    assert.equal(nspid?.at(-1), "1", `pid ${pid} is PID 1 in its namespace: NSpid ${nspid}`);
    return pid;
  }
  throw new Error(`No child of unshare (pid ${unsharePid}) found`);
}

/** Runs `unshare … deno run <flags> <bundle> <args>` and collects stderr lines. */
function startAsPid1(bundle: string, flags: string[], args: string[]) {
  const child = new Deno.Command(UNSHARE[0] as string, {
    args: [
      ...UNSHARE.slice(1),
      Deno.execPath(),
      "run",
      "--quiet",
      "--no-prompt",
      ...flags,
      bundle,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const line of stream.pipeThrough(new LineSplitter())) {
      lines.push(line.text);
      for (const waiter of waiters) waiter();
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status.then(async (s) => {
    await pumps;
    ended = true;
    for (const waiter of waiters) waiter();
    return s;
  });
  /** Resolves once a line contains `text`. */
  const waitForText = (text: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const output = () => lines.join("\n");
      const check = () => {
        if (lines.some((line) => line.includes(text))) done(resolve);
        else if (ended) done(() => reject(new Error(`Exited before '${text}':\n${output()}`)));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`No '${text}' within ${timeoutMs} ms:\n${output()}`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });
  const exitWithin = async (timeoutMs: number): Promise<Deno.CommandStatus | "timeout"> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        status,
        new Promise<"timeout">((resolve) =>
          timer = setTimeout(() => resolve("timeout"), timeoutMs)
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    pid: child.pid,
    lines,
    waitForText,
    exitWithin,
    async [Symbol.asyncDispose]() {
      // Killing unshare does not reach PID 1 of the namespace; SIGKILL it directly.
      try {
        Deno.kill(namespaceInit(child.pid), "SIGKILL");
      } catch {
        // Already gone.
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await status;
    },
  };
}

Deno.test({
  name: "connect as PID 1 of a fresh PID namespace stops on SIGTERM with exit 0",
  ignore: problem !== undefined,
  fn: () =>
    withBundle(async (bundle) => {
      const gateway = await startContractGateway({ contract: "A" });
      try {
        const flags = connectPermissions({
          command: DEMO_SERVER[0] as string,
          gatewayHost: gatewayNetTarget(gateway.url),
        });
        await using proxy = startAsPid1(bundle, flags, [
          "connect",
          "--gateway",
          gateway.url,
          "--log-format",
          "json",
          "--",
          ...DEMO_SERVER,
        ]);
        await proxy.waitForText('"event":"registered"', 20_000);
        await assertStopsOnSigterm(proxy);
        assert.ok(proxy.lines.some((line) => line.includes('"event":"unregistered"')));
      } finally {
        await gateway.close();
      }
    }),
});

Deno.test({
  name: "serve as PID 1 of a fresh PID namespace stops on SIGTERM with exit 0",
  ignore: problem !== undefined,
  fn: () =>
    withBundle(async (bundle) => {
      const tokensFile = `${bundle}.tokens`;
      await Deno.writeTextFile(tokensFile, "pid1-test-token alice\n");
      const listen = "127.0.0.1:0";
      // As in the container: a state directory, read and written with exactly that permission.
      const stateDir = `${bundle}.state`;
      const flags = servePermissions({ listen, tokensFile, stateDir });
      await using proxy = startAsPid1(bundle, flags, [
        "serve",
        "--listen",
        listen,
        "--tokens-file",
        tokensFile,
        "--state-dir",
        stateDir,
        "--log-format",
        "json",
      ]);
      await proxy.waitForText("Gateway listening", 20_000);
      await assertStopsOnSigterm(proxy);
      assert.ok((await Deno.stat(`${stateDir}/serve.sqlite`)).isFile, "the state file was written");
    }),
});

/** Sends SIGTERM to the namespace's PID 1 and asserts that it exits 0 in time. */
async function assertStopsOnSigterm(proxy: ReturnType<typeof startAsPid1>): Promise<void> {
  Deno.kill(namespaceInit(proxy.pid), "SIGTERM");
  const status = await proxy.exitWithin(15_000);
  const output = proxy.lines.join("\n");
  assert.notEqual(status, "timeout", `PID 1 ignored SIGTERM:\n${output}`);
  assert.equal(status !== "timeout" && status.code, 0, output);
  assert.ok(proxy.lines.some((line) => /"event":"shutdown"/.test(line)), output);
}
