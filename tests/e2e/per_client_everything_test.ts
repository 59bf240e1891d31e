// End to end: server-everything from npm in `per-client` mode behind a real serve, with official SDK
// clients. Each client has its own instance, initialized with its own capabilities: tools follow them,
// log levels and subscriptions are its own, and sampling and elicitation reach the calling client only.

import assert from "node:assert/strict";
import { EVERYTHING_SERVER } from "../fixtures/proxy_process.ts";
import { startTestGateway, within } from "../fixtures/test_gateway.ts";
import {
  type RecordingClient,
  recordingClient,
  startPerClient,
  textOf,
} from "../fixtures/per_client.ts";

const ALL = { roots: { listChanged: true }, sampling: {}, elicitation: {} };

Deno.test("server-everything per-client: tools follow each client's capabilities; log levels, subscriptions, sampling and elicitation stay with their client", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 30_000 });
  const clients: RecordingClient[] = [];
  try {
    await using _proxy = await startPerClient(gateway, {
      name: "every",
      command: EVERYTHING_SERVER,
    });
    const a = await recordingClient(gateway, "every", { label: "A", capabilities: ALL });
    clients.push(a);
    const b = await recordingClient(gateway, "every", { label: "B", capabilities: ALL });
    clients.push(b);
    const bare = await recordingClient(gateway, "every", { label: "bare", capabilities: {} });
    clients.push(bare);

    // What the server offers matches what each client declared.
    const toolsOf = async (c: RecordingClient) => {
      const { tools }: { tools: { name: string }[] } = await within(
        c.client.listTools(),
        15_000,
        "tools/list",
      );
      return tools.map((t) => t.name);
    };
    const aTools = await toolsOf(a);
    const bareTools = await toolsOf(bare);
    for (
      const tool of ["get-roots-list", "trigger-sampling-request", "trigger-elicitation-request"]
    ) {
      assert.ok(aTools.includes(tool), `A declared the capability: ${tool} is offered`);
      assert.ok(!bareTools.includes(tool), `the bare client declared none: ${tool} is not offered`);
    }
    assert.ok(bareTools.includes("echo"));

    // Log levels are each client's own: A wants errors and worse, B everything. The instances asked
    // their clients for roots after initialization and logged it (at info, before any level was set).
    for (const c of [a, b]) await c.waitFor("its roots synced", (m) => m === "log:info");
    const aLogsBefore = a.received.logs.length;
    await within(a.client.setLoggingLevel("error"), 10_000, "A setLevel");
    await within(b.client.setLoggingLevel("debug"), 10_000, "B setLevel");
    // Subscribing logs at info to the subscriber's own instance; B gets it, A (at error) does not.
    await within(
      a.client.subscribeResource({ uri: "demo://resource/static/document/architecture.md" }),
      10_000,
      "A subscribe",
    );
    await within(
      b.client.subscribeResource({ uri: "demo://resource/static/document/features.md" }),
      10_000,
      "B subscribe",
    );
    await b.waitFor("B's info log", (m) => m === "log:info");
    // A's subscription: its update comes after the info log it did not get (one stream, in order).
    const aUpdates = a.received.notifications.length;
    await within(
      a.client.callTool({ name: "toggle-subscriber-updates", arguments: {} }),
      10_000,
      "A toggle",
    );
    await a.waitFor("A's resource update", (m, i) => i >= aUpdates && m === "resources/updated");
    assert.deepEqual(
      a.received.logs.slice(aLogsBefore).filter((l) => l.level === "info" || l.level === "debug"),
      [],
      "A set its level to error: no info or debug message reaches it",
    );
    assert.deepEqual(a.received.updates, ["demo://resource/static/document/architecture.md"]);
    // B's barrier: a log at a level it takes, after A's update had every chance to leak to it.
    const bMark = b.received.notifications.length;
    await within(
      b.client.callTool({ name: "toggle-simulated-logging", arguments: {} }),
      10_000,
      "B logging",
    );
    await b.waitFor("B's simulated log", (m, i) => i >= bMark && m.startsWith("log:"));
    assert.deepEqual(b.received.updates, [], "A's subscription updates never reach B");
    assert.ok(!bare.received.notifications.includes("resources/updated"));

    // Sampling and elicitation go to the calling client, even while B has a streamed call in flight
    // (a shared server's request would go to the client with a call stream open).
    const slow = b.client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 3, steps: 6 } },
      undefined,
      { onprogress: () => {}, timeout: 30_000 },
    );
    const sampled = await within(
      a.client.callTool({
        name: "trigger-sampling-request",
        arguments: { prompt: "hi", maxTokens: 5 },
      }),
      20_000,
      "A sampling",
    );
    assert.match(textOf(sampled), /sampled by A/);
    await within(
      a.client.callTool({ name: "trigger-elicitation-request", arguments: {} }),
      20_000,
      "A elicitation",
    );
    await within(slow, 30_000, "B's long call");
    assert.deepEqual(
      { aSampling: a.received.sampling, aElicitation: a.received.elicitation },
      { aSampling: 1, aElicitation: 1 },
    );
    assert.deepEqual(
      { bSampling: b.received.sampling, bElicitation: b.received.elicitation },
      { bSampling: 0, bElicitation: 0 },
      "B was never asked on A's behalf",
    );
  } finally {
    await Promise.all(clients.map((c) => c.client.close().catch(() => {})));
    await gateway.close();
  }
});
