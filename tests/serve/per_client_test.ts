// serve with a per-client server, driven over the wire: a raw tunnel client plays connect, raw HTTP plays
// two MCP clients. Each client's initialize goes through the tunnel as it was sent, naming its session;
// what an instance sends reaches its own client only (even while another has a call stream open, and with
// the same request id); a DELETE tells connect; a new registration lists the sessions still open.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import { openGetStream, postMcp, rpc } from "../fixtures/mcp_http.ts";
import { startTestGateway, TOKENS, TunnelClient, within } from "../fixtures/test_gateway.ts";
import type { WireFrame as Frame } from "../fixtures/wire.ts";

const NAME = "mine";

async function registerPerClient(tunnel: TunnelClient): Promise<Frame> {
  tunnel.send({
    type: "register",
    sessionId: "c1",
    server: { name: NAME, description: "per-client", protocol: "mcp", isolation: "per-client" },
    extensions: ["client-sessions"],
  });
  return await tunnel.next((f) => f.type === "register_ack", 5_000, "register_ack");
}

/** A log message's data, or the method of anything else. */
function dataOf(message: JsonObject): unknown {
  return (message.params as JsonObject | undefined)?.data ?? message.method;
}

function payloadOf(frame: Frame): JsonObject {
  return frame.payload as JsonObject;
}

/** POSTs an MCP client's initialize; answers it on the tunnel as its instance; returns the session. */
async function initialize(
  gateway: Awaited<ReturnType<typeof startTestGateway>>,
  tunnel: TunnelClient,
  client: { name: string; capabilities: JsonObject },
): Promise<string> {
  const params = {
    protocolVersion: "2025-11-25",
    capabilities: client.capabilities,
    clientInfo: { name: client.name, version: "1" },
  };
  const posted = postMcp(gateway, NAME, rpc(7, "initialize", params), {
    accept: "application/json",
  });
  const frame = await tunnel.next(
    (f) => f.type === "request" && payloadOf(f).method === "initialize",
    5_000,
    `${client.name}'s initialize`,
  );
  const clientSession = frame.clientSession as string;
  assert.ok(clientSession, "the instance's initialize names its client session");
  assert.deepEqual(payloadOf(frame).params, params, "exactly the client's parameters");
  tunnel.send({
    type: "response",
    sessionId: frame.sessionId,
    clientSession: frame.clientSession,
    payload: {
      jsonrpc: "2.0",
      id: payloadOf(frame).id,
      result: {
        protocolVersion: "2025-11-25",
        capabilities: { tools: {} },
        serverInfo: { name: `instance of ${client.name}`, version: "1" },
      },
    },
  });
  const response = await within(posted, 5_000, "the initialize answer");
  const body = await response.json() as JsonObject;
  assert.equal((body.result as JsonObject).serverInfo !== undefined, true);
  assert.deepEqual((body.result as JsonObject).serverInfo, {
    name: `instance of ${client.name}`,
    version: "1",
  });
  assert.equal(response.headers.get("mcp-session-id"), clientSession);
  return clientSession;
}

Deno.test("serve per-client: each initialize reaches the tunnel as sent; an instance's messages reach its own client only; DELETE and re-registration tell connect which sessions are open", async () => {
  const gateway = await startTestGateway({ callTimeoutMs: 10_000 });
  let tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  const streams: { close(): Promise<void> }[] = [];
  try {
    const ack = await registerPerClient(tunnel);
    assert.ok((ack.extensions as string[]).includes("client-sessions"));
    assert.deepEqual(ack.clientSessions, [], "no client session yet");
    const a = await initialize(gateway, tunnel, { name: "A", capabilities: { roots: {} } });
    const b = await initialize(gateway, tunnel, { name: "B", capabilities: { sampling: {} } });
    assert.notEqual(a, b);
    // Nothing initialized the server on the gateway's own behalf: only the clients' initializes came.
    assert.ok(
      !tunnel.frames.some((f) => f.type === "request" && payloadOf(f).method === "initialize"),
    );

    // A's `initialized` goes to its instance, not swallowed.
    await (await postMcp(gateway, NAME, { jsonrpc: "2.0", method: "notifications/initialized" }, {
      session: a,
    })).body?.cancel();
    const initialized = await tunnel.next(
      (f) => f.type === "request" && payloadOf(f).method === "notifications/initialized",
    );
    assert.equal(initialized.clientSession, a);

    // A notification of A's instance before A opened its GET stream is held for it; B never sees it.
    const sessionId = initialized.sessionId!;
    const send = (frame: JsonObject) => tunnel.send({ sessionId, ...frame });
    send({
      type: "notification",
      clientSession: a,
      payload: {
        jsonrpc: "2.0",
        method: "notifications/message",
        params: { level: "info", data: "for A" },
      },
    });
    const aStream = await openGetStream(gateway, NAME, a);
    const bStream = await openGetStream(gateway, NAME, b);
    streams.push(aStream, bStream);
    await aStream.messages.waitFor((m) => m.method === "notifications/message", 5_000, "A's log");

    // B has a call streaming (a shared server's request would go to it); A's instance asks for roots.
    const bCall = postMcp(
      gateway,
      NAME,
      rpc(1, "tools/call", { name: "slow", arguments: {}, _meta: { progressToken: "p" } }),
      { session: b },
    );
    const bRequest = await tunnel.next((f) =>
      f.type === "request" && payloadOf(f).method === "tools/call"
    );
    assert.equal(bRequest.clientSession, b);
    send({ type: "request", clientSession: a, payload: rpc(0, "roots/list") });
    const asked = await aStream.messages.waitFor(
      (m) => m.method === "roots/list",
      5_000,
      "A asked",
    );
    // The same id from B's instance while A's is unanswered: B did not declare roots, so it gets the
    // error at once; A's request stands (a request is known by its client session and its id).
    send({ type: "request", clientSession: b, payload: rpc(0, "roots/list") });
    const refused = await tunnel.next((f) => f.type === "response" && f.clientSession === b);
    assert.match(String((payloadOf(refused).error as JsonObject).message), /roots/);
    const answered = await postMcp(
      gateway,
      NAME,
      { jsonrpc: "2.0", id: asked.id as number, result: { roots: [] } },
      { session: a },
    );
    await answered.body?.cancel();
    const answer = await tunnel.next((f) => f.type === "response" && f.clientSession === a);
    assert.deepEqual(payloadOf(answer), { jsonrpc: "2.0", id: 0, result: { roots: [] } });
    // B's instance logs: B alone hears it.
    send({
      type: "notification",
      clientSession: b,
      payload: {
        jsonrpc: "2.0",
        method: "notifications/message",
        params: { level: "info", data: "for B" },
      },
    });
    await bStream.messages.waitFor((m) => m.method === "notifications/message", 5_000, "B's log");
    tunnel.send({
      type: "response",
      sessionId,
      clientSession: b,
      payload: { jsonrpc: "2.0", id: payloadOf(bRequest).id, result: { content: [] } },
    });
    await (await within(bCall, 5_000, "B's call")).body?.cancel();
    // A last message of A's instance: everything sent before it on A's one stream has arrived.
    send({
      type: "notification",
      clientSession: a,
      payload: { jsonrpc: "2.0", method: "notifications/message", params: { data: "last" } },
    });
    await aStream.messages.waitFor((m) => dataOf(m) === "last", 5_000, "A's last message");
    assert.deepEqual(
      aStream.messages.items.map(dataOf),
      ["for A", "roots/list", "last"],
      "A got its own instance's messages, and none of B's",
    );
    assert.deepEqual(bStream.messages.items.map(dataOf), ["for B"], "and B none of A's");
    assert.ok(!bStream.messages.items.some((m) => m.method === "roots/list"));

    // The sessions API shows the instances connect reports, and refuses direct calls.
    send({
      type: "client_instances",
      instances: [{ clientSession: a, pid: 4242, startedAt: 1 }, {
        clientSession: b,
        startedAt: 2,
      }],
    });
    const sessionInfo = async () =>
      await (await fetch(`${gateway.url}/reverse-proxy/sessions/${sessionId}`, {
        headers: { authorization: `Bearer ${TOKENS.alice}` },
      })).json() as JsonObject;
    let listed = await sessionInfo();
    for (let i = 0; i < 100 && (listed.instances as unknown[]).length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20)); // the frame is on its way
      listed = await sessionInfo();
    }
    assert.equal(listed.isolation, "per-client");
    assert.deepEqual((listed.instances as JsonObject[]).map((i) => [i.client_session, i.pid]), [
      [a, 4242],
      [b, undefined],
    ]);
    const direct = await fetch(`${gateway.url}/reverse-proxy/sessions/${sessionId}/request`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
      body: JSON.stringify(rpc(1, "tools/list")),
    });
    assert.equal(direct.status, 409);
    assert.match(((await direct.json()) as { error: string }).error, /isolation per-client/);

    // DELETE of A: connect is told to stop A's instance.
    const deleted = await fetch(`${gateway.url}/servers/${NAME}/mcp`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}`, "mcp-session-id": a },
    });
    assert.equal(deleted.status, 204);
    await deleted.body?.cancel();
    const end = await tunnel.next((f) => f.type === "client_session_end");
    assert.equal(end.clientSession, a);

    // A new registration (the link was lost, not resumed) lists the sessions still open: B alone.
    tunnel.send({ type: "unregister", sessionId });
    await tunnel.close(CloseCode.Normal);
    tunnel = await TunnelClient.open(gateway, TOKENS.alice);
    const again = await registerPerClient(tunnel);
    assert.deepEqual(again.clientSessions, [b]);
  } finally {
    await Promise.all(streams.map((s) => s.close()));
    await tunnel.close();
    await gateway.close();
  }
});
