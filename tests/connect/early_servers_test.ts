// The early start: which servers it spawns, that each process is handed out once, and that a process
// nobody took is killed with its group.

import assert from "node:assert/strict";
import { EarlyServers } from "../../lib/connect/early_servers.ts";
import type { ServerSpec } from "../../lib/connect/settings.ts";
import { processAlive } from "../fixtures/proxy_process.ts";

function stdio(command: string[], isolation?: "per-client"): ServerSpec {
  return {
    transport: { kind: "stdio", command, commandText: command.join(" ") },
    ...(isolation === undefined ? {} : { isolation }),
  } as ServerSpec;
}

/** Resolves as `promise` does, or rejects after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`still running after ${ms} ms`)), ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

async function release(child: Deno.ChildProcess): Promise<void> {
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    // gone already
  }
  await Promise.allSettled([
    child.stdin.close(),
    child.stdout.cancel(),
    child.stderr.cancel(),
    child.status,
  ]);
}

Deno.test("the early start spawns shared stdio servers only, and hands each process out once", async () => {
  const shared = stdio(["sleep", "30"]);
  const perClient = stdio(["sleep", "30"], "per-client");
  const missing = stdio(["/nonexistent/mcp-rproxy-test-server"]);
  const http = {
    transport: { kind: "http", url: new URL("http://127.0.0.1:9/mcp"), headers: [] },
  } as unknown as ServerSpec;
  const early = EarlyServers.spawn([shared, perClient, missing, http]);
  const child = early.take(shared);
  try {
    assert.ok(child !== undefined, "the shared stdio server was spawned");
    assert.equal(early.take(shared), undefined, "a process is handed out once");
    assert.equal(early.take(perClient), undefined, "a per-client server starts with its clients");
    assert.equal(
      early.take(missing),
      undefined,
      "a program that cannot start is left to its start",
    );
    assert.equal(early.take(http), undefined, "an upstream has no process");
    assert.equal(early.take(stdio(["sleep", "30"])), undefined, "only the same spec takes it");
  } finally {
    if (child !== undefined) await release(child);
    await early.killUntaken();
  }
});

Deno.test("a process of the early start that nobody took is killed with its group", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-early-" });
  try {
    // The server starts a program of its own (as npx does), then waits: both must go.
    const spec = stdio([
      "sh",
      "-c",
      `sleep 30 & echo $! > '${dir}/grandchild'; echo $$ > '${dir}/pid'; wait`,
    ]);
    const early = EarlyServers.spawn([spec]);
    // The pid file is written by another process: no event says when, so look (bounded).
    const pids = { server: "", grandchild: "" };
    const deadline = Date.now() + 5_000;
    while (pids.server === "" && Date.now() < deadline) {
      pids.server = (await Deno.readTextFile(`${dir}/pid`).catch(() => "")).trim();
      if (pids.server === "") await new Promise((resolve) => setTimeout(resolve, 20));
    }
    pids.grandchild = (await Deno.readTextFile(`${dir}/grandchild`)).trim();
    assert.notEqual(pids.server, "", "the server was spawned");
    await within(early.killUntaken(), 5_000);
    assert.equal(processAlive(Number(pids.server)), false, "the server outlived killUntaken");
    // SIGKILL reached the group; the kernel finishes the orphan a moment later.
    const gone = Date.now() + 2_000;
    while (processAlive(Number(pids.grandchild)) && Date.now() < gone) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(
      processAlive(Number(pids.grandchild)),
      false,
      "what the server started outlived it",
    );
    assert.equal(early.take(spec), undefined, "nothing is left to take");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
