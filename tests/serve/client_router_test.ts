// ClientRouter on its own: which client session of a per-client server can be asked a server request now.
// Across replicas, a replica claims such a request only when the client is connected there; a stream held
// for a client that has not opened it (the replica that opened its session) is the holder's last resort.

import assert from "node:assert/strict";
import { ClientRouter } from "../../lib/serve/client_router.ts";
import { McpClientSessions } from "../../lib/serve/mcp_client_session.ts";
import { SseStream } from "../../lib/serve/sse_stream.ts";

Deno.test("ClientRouter.canAnswer() for a per-client session: only with a client connection open, not a stream held for it", async () => {
  const sessions = new McpClientSessions({ ttlMs: 60_000, now: Date.now });
  const router = new ClientRouter(sessions, 10_000);
  const server = { owner: "alice", name: "every" };
  const connection = new SseStream();
  try {
    const session = sessions.open({
      owner: server.owner,
      serverName: server.name,
      capabilities: { sampling: {} },
      protocolVersion: "2025-11-25",
      perClient: true,
    })!;
    assert.ok(session.getStream !== undefined, "its GET stream is held for the client");
    assert.equal(router.canAnswer(server, "sampling/createMessage", session.id), false);
    session.streams.standalone.attach(connection);
    assert.equal(router.canAnswer(server, "sampling/createMessage", session.id), true);
    assert.equal(
      router.canAnswer(server, "elicitation/create", session.id),
      false,
      "a capability it did not declare",
    );
    assert.equal(router.canAnswer(server, "sampling/createMessage", "another"), false);
  } finally {
    connection.close();
    await connection.readable.cancel().catch(() => {});
    sessions.close("test over");
  }
});
