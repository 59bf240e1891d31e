// End to end: `max_instances` counts an instance until its process is gone. One that is still stopping
// (a server slow to exit, within --shutdown-grace) holds its slot, so that a client ending sessions and
// opening new ones cannot keep more processes running than the limit allows.

import assert from "node:assert/strict";
import { processAlive } from "../fixtures/proxy_process.ts";
import { startTestGateway, within } from "../fixtures/test_gateway.ts";
import {
  gone,
  instancesAt,
  type RecordingClient,
  recordingClient,
  startPerClient,
} from "../fixtures/per_client.ts";

/** The tiny server, slow to stop: it ignores SIGTERM, and lingers after its stdin closes. */
const SLOW_TO_STOP = [
  "sh",
  "-c",
  `trap '' TERM; sh ${
    new URL("../fixtures/tiny_mcp_server.sh", import.meta.url).pathname
  }; sleep 30`,
];

Deno.test("per-client max_instances counts an instance that is still stopping: no second process runs past a limit of 1", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 20_000 });
  const clients: RecordingClient[] = [];
  try {
    await using proxy = await startPerClient(gateway, {
      name: "slow",
      command: SLOW_TO_STOP,
      extra: ",max-instances=1",
      flags: ["--shutdown-grace", "4"],
    });
    const first = await recordingClient(gateway, "slow", { label: "a", capabilities: {} });
    clients.push(first);
    const [listed] = await instancesAt(gateway);
    const firstPid = listed!.pid!;
    await within(first.transport.terminateSession(), 5_000, "DELETE");
    // The first instance takes its grace to stop: a new session meanwhile is refused, not a second process.
    const second = await recordingClient(gateway, "slow", { label: "b", capabilities: {} }).then(
      (c) => (clients.push(c), "connected"),
      (error: Error) => error.message,
    );
    if (second === "connected") {
      assert.ok(!processAlive(firstPid), "a second instance started while the first still ran");
    } else {
      assert.match(second, /its limit \(max_instances 1\)/);
    }
    // Once it is gone the slot is free again: connect says so once it has seen the process end (the pid
    // can be gone a moment before connect has read the last of its pipes).
    await gone(firstPid, 10_000);
    await proxy.waitForEvent("instance_stopped", 10_000);
    clients.push(await recordingClient(gateway, "slow", { label: "c", capabilities: {} }));
  } finally {
    await Promise.all(clients.map((c) => c.client.close().catch(() => {})));
    await gateway.close();
  }
});
