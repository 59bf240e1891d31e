// Chaos on 3 replicas behind HAProxy: while 4 SDK clients make their calls, the replica holding the tunnel
// is SIGKILLed and started again, twice, and Redis restarts once (empty). Every call settles: an answer
// (its own, never another's), a JSON-RPC error, or, for a request HAProxy had sent to the killed replica,
// an HTTP error; none hangs, none is answered twice. After each kill connect resumes its one session on
// another replica, and no call fails with a JSON-RPC error until Redis restarts. The server behind connect
// is never restarted.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { EVERYTHING_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { clusterClient, holderIndex, startServeCluster } from "../fixtures/serve_cluster.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";

/** Calls per client: 4 × CALLS in all, the 4 × 1,000. */
const CALLS = 1000;

type Outcome = "answered" | "rpc-error" | "http-error";

Deno.test("chaos: the holder SIGKILLed twice and Redis restarted during 4 × N calls; every call settles once, the server keeps its PID", async () => {
  const cluster = await startServeCluster({ serveArgs: ["--call-timeout", "30"] });
  const clients: Client[] = [];
  try {
    await using connect = startProxy([
      "connect",
      "--gateway",
      cluster.url,
      "--server-name",
      "everything",
      "--reconnect-delay",
      "0.1",
      "--log-format",
      "json",
      "--",
      ...EVERYTHING_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const count = (event: string) => connect.lines.filter((l) => l.json?.event === event).length;
    await connect.waitForEvent("registered", 60_000);
    for (let i = 0; i < 4; i++) {
      clients.push(await clusterClient(cluster.url, { reconnect: false }));
    }

    const outcomes: Outcome[][] = clients.map(() => []);
    const errors = new Map<string, number>();
    /** JSON-RPC errors before Redis restarts: while only replicas die, calls survive through resume. */
    let earlyRpcErrors = 0;
    let redisRestarting = false;
    let done = 0;
    const started = performance.now();
    const runs = clients.map(async (client, c) => {
      for (let n = 0; n < CALLS; n++) {
        const message = `c${c}-n${n}`;
        try {
          const result = await client.callTool(
            { name: "echo", arguments: { message } },
            undefined,
            {
              timeout: 45_000,
            },
          );
          const text = (result as { content: { text: string }[] }).content[0]!.text;
          assert.equal(text, `Echo: ${message}`, "each call gets its own answer");
          outcomes[c]!.push("answered");
        } catch (error: unknown) {
          if (error instanceof assert.AssertionError) throw error;
          const { message: why = "" } = error as { message?: string };
          // The SDK's own timeout would mean a call that hung: the one outcome not allowed.
          if (/Request timed out/.test(why)) {
            throw new Error(`call ${message} hung until the client's own timeout`);
          }
          // A JSON-RPC error from the gateway, or an HTTP error (HAProxy's 502 for the killed replica).
          outcomes[c]!.push(error instanceof McpError ? "rpc-error" : "http-error");
          if (error instanceof McpError && !redisRestarting) earlyRpcErrors++;
          const kind = why.replace(/[0-9a-f-]{36}|\b\d+(\.\d+)?\b/g, "#").slice(0, 160);
          errors.set(kind, (errors.get(kind) ?? 0) + 1);
        }
        done++;
      }
    });

    const firstPid = connect.lines.find((l) => l.json?.event === "server_started")?.json?.pid;
    const chaos = (async () => {
      const waitCalls = async (count: number) => {
        while (done < count) await new Promise((resolve) => setTimeout(resolve, 20));
      };
      for (const round of [1, 2]) {
        await waitCalls(round * CALLS);
        const holder = await holderIndex(cluster);
        const before = count("resumed");
        await cluster.kill(holder);
        // connect comes back through HAProxy on another replica and resumes its session there.
        await connect.waitForLine(
          (l) => l.json?.event === "resumed" && count("resumed") > before,
          30_000,
        );
        await cluster.restart(holder);
      }
      await waitCalls(3 * CALLS);
      redisRestarting = true;
      await cluster.redis.restart();
      for (let i = 0; i < cluster.replicas.length; i++) await cluster.ready(i);
    })();
    await within(Promise.all([...runs, chaos]), 85_000, "the calls and the faults");
    const seconds = (performance.now() - started) / 1000;

    const all = outcomes.flat();
    assert.equal(all.length, 4 * CALLS, "every call settled once");
    const outcome = (o: Outcome) => all.filter((x) => x === o).length;
    console.log(
      `chaos: ${4 * CALLS} calls in ${seconds.toFixed(1)} s: ${outcome("answered")} answered, ${
        outcome("rpc-error")
      } JSON-RPC errors, ${outcome("http-error")} HTTP errors (requests on a killed replica)`,
    );
    for (const [kind, n] of errors) console.log(`  ${n} × ${kind}`);
    let resent = 0;
    for (const { healthPort } of cluster.replicas) {
      const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      resent += Number(/^mcp_rproxy_cross_replica_calls_resent_total (\d+)/m.exec(text)?.[1] ?? 0);
    }
    console.log(
      `  ${resent} call(s) sent again to a new holder (by the replicas alive at the end)`,
    );
    // Each error says what happened: Redis was down (fail closed), the tunnel's replica died with the
    // call, or the server was not in the directory (between an empty Redis coming back and its holder
    // re-asserting it, at most a beat); never a silent loss, never an unexplained failure. Never a
    // timeout either: a call the killed holder wrote to its link just before SIGKILL, which never reached
    // connect, is sent again by its origin to the replica the tunnel resumed on (docs/scaling.md).
    for (const kind of errors.keys()) {
      assert.match(
        kind,
        /Redis|ended before answering|holding (it|its tunnel) is gone|may or may not have run|is not connected|Bad Gateway|fetch failed|HTTP 50\d/,
      );
    }
    assert.ok(outcome("answered") > 2 * CALLS, "most calls were answered");
    // A call waiting on the killed holder follows its tunnel to the replica it resumed on; one sent to the
    // killed holder's inbox is refused by the restarted replica (same id) and sent there too.
    assert.equal(
      earlyRpcErrors,
      0,
      "no call failed with a JSON-RPC error while only replicas died",
    );
    // Each kill is a resume on another replica, never a fresh registration: one session throughout.
    assert.equal(count("resumed"), 2, "connect resumed after each kill");
    const sessions = connect.lines.filter((l) => l.json?.event === "registered")
      .map((l) => l.json?.session);
    assert.equal(new Set(sessions).size, 1, `one tunnel session throughout: ${sessions}`);
    assert.equal(count("resume_refused"), 0);
    const pids = new Set(
      connect.lines.filter((l) => l.json?.event === "server_started").map((l) => l.json?.pid),
    );
    assert.deepEqual([...pids], [firstPid], "the server behind connect was never restarted");
    assert.ok(!connect.lines.some((l) => l.json?.event === "server_exited"));
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    await cluster.close();
  }
});
