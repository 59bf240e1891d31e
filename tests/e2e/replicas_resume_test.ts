// Resume across replicas: connect (demo server) holds its tunnel on one of 3 replicas behind HAProxy, an SDK
// client on each other replica has a slow call in flight through it, and the holder is SIGKILLed. connect
// redials through HAProxy, lands on a live replica and RESUMES there from the session's record in Redis
// (not a fresh registration), and the calls complete with their real results, replayed by connect on the new
// link and routed back to each caller's replica by its id. The server is initialized once, never restarted.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { DEMO_SERVER, startProxy } from "../fixtures/proxy_process.ts";
import { clusterClient, holderIndex, startServeCluster } from "../fixtures/serve_cluster.ts";
import { textOf } from "../fixtures/per_client.ts";
import { TOKENS, within } from "../fixtures/test_gateway.ts";

Deno.test("replicas: the holder SIGKILLed, connect resumes on another replica through HAProxy, and the calls in flight from the other two complete", async () => {
  const cluster = await startServeCluster({ serveArgs: ["--resume-window", "30"] });
  const clients: Client[] = [];
  try {
    await using connect = startProxy([
      "connect",
      "--gateway",
      cluster.url,
      "--server-name",
      "demo",
      "--reconnect-delay",
      "0.1",
      "--log-format",
      "json",
      "--",
      ...DEMO_SERVER,
    ], { env: { REVERSE_PROXY_TOKEN: TOKENS.alice } });
    const first = await connect.waitForEvent("registered", 60_000);
    const holder = await holderIndex(cluster);
    // A caller on each of the other two replicas: whichever one connect resumes on, one call's answer comes
    // back on that replica and the other's crosses to its origin by envelope.
    const callers = [(holder + 1) % 3, (holder + 2) % 3];
    for (const i of callers) {
      clients.push(await clusterClient(cluster.replicas[i]!.url, { server: "demo" }));
    }

    // 80 steps of 100 ms: running at the server while its holder dies and connect resumes elsewhere, and
    // past the callers' next liveness beat (3 s), where a call waiting on a dead holder used to fail.
    const steps: number[][] = [[], []];
    const running: Promise<void>[] = [];
    const failures: unknown[] = [];
    const calls = clients.map((client, c) => {
      let progressed: () => void = () => {};
      running.push(new Promise<void>((resolve) => progressed = resolve));
      return client.callTool(
        { name: "long-running", arguments: { steps: 80, stepMs: 100 } },
        undefined,
        {
          timeout: 60_000,
          onprogress: (p: { progress: number }) => {
            steps[c]!.push(p.progress);
            progressed();
          },
        },
      ).catch((error: unknown) => {
        // Kept, not left dangling: a test that fails first closes the clients, which rejects these.
        failures.push(error);
        return { content: [{ text: `call ${c} failed: ${error}` }] };
      });
    });
    await within(Promise.all(running), 10_000, "the calls to run");
    const linesBefore = connect.lines.length;
    await cluster.kill(holder);

    const resumed = await connect.waitForEvent("resumed", 30_000, linesBefore);
    assert.equal(resumed.session, first.session, "the same tunnel session");
    const results = await within(Promise.all(calls), 30_000, "the calls in flight to complete");
    for (const [c, result] of results.entries()) {
      assert.equal(textOf(result), "Long running operation completed: 80 steps of 100 ms.");
      assert.equal(steps[c]!.at(-1), 80, "the progress of the last step reached the caller");
    }

    // The new holder took the session from the record in Redis.
    const next = await holderIndex(cluster, { except: holder });
    assert.notEqual(next, holder);
    const took = cluster.replicas[next]!.process.lines.find((l) =>
      l.json?.event === "session_resumed_elsewhere"
    );
    assert.ok(took, "the new holder says it resumed the session from the shared store");
    assert.equal(took.json?.session, resumed.session);

    // Resumed, never registered afresh: connect's "registered" lines all name its one session.
    const after = connect.lines.slice(linesBefore);
    assert.ok(
      !after.some((l) =>
        l.json?.event === "resume_refused" ||
        (l.json?.event === "registered" && l.json.session !== first.session)
      ),
      `connect resumed rather than registered afresh:\n${after.map((l) => l.raw).join("\n")}`,
    );
    // One server process, initialized once, before and after.
    const stats = JSON.parse(textOf(await clients[0]!.callTool({ name: "stats", arguments: {} })));
    assert.equal(stats.initializeCount, 1, "the server was initialized exactly once");
    const started = connect.lines.filter((l) => l.json?.event === "server_started");
    assert.equal(started.length, 1, "the server was started once");
    assert.ok(!connect.lines.some((l) => l.json?.event === "server_exited"));
    console.log(
      `resume across replicas: holder r${holder + 1} killed, resumed on r${next + 1} ` +
        `(replayed ${resumed.count}), calls from r${callers[0]! + 1} and r${
          callers[1]! + 1
        } answered`,
    );
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    await cluster.close();
  }
});
