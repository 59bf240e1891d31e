// Drives the contract gateway fixture with a raw WebSocket client, so e2e tests can trust what it enforces.

import assert from "node:assert/strict";
import { deadline } from "../../lib/util/delay.ts";
import type { WireFrame as Frame } from "../fixtures/wire.ts";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";
import { startContractGateway } from "../fixtures/contract_gateway.ts";

const T = 5_000;

interface RawClient {
  ws: WebSocket;
  /** Resolves with the next frame from the gateway. */
  next(timeoutMs?: number): Promise<Frame>;
  send(frame: JsonObject | string): void;
  closed: Promise<CloseEvent>;
  close(): Promise<void>;
}

function dial(
  url: string,
  token?: string,
  headers: Record<string, string> = {},
): Promise<RawClient> {
  const allHeaders = { ...headers };
  if (token !== undefined) allHeaders.Authorization = `Bearer ${token}`;
  const ws = new WebSocket(url, { headers: allHeaders });
  const queue: Frame[] = [];
  const waiting: ((frame: Frame) => void)[] = [];
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data as string) as Frame;
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(frame);
    else queue.push(frame);
  };
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  const client: RawClient = {
    ws,
    next: (timeoutMs = T) => {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      let waiter: ((frame: Frame) => void) | undefined;
      const frame = new Promise<Frame>((resolve) => {
        waiter = resolve;
        waiting.push(resolve);
      });
      return deadline(frame, timeoutMs, "next frame").finally(() => {
        const i = waiting.indexOf(waiter!);
        if (i >= 0) waiting.splice(i, 1);
      });
    },
    send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    closed,
    close: async () => {
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
      await deadline(closed, T, "client close");
    },
  };
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(client);
    ws.onerror = (event) => {
      if (ws.readyState === WebSocket.OPEN) return;
      const message = (event as ErrorEvent).message;
      deadline(closed, T, "refused close").then(() => reject(new Error(message)), reject);
    };
  });
}

/** Dials and expects the upgrade to be refused; returns the error message (it holds the status). */
async function refusal(url: string, token?: string): Promise<string> {
  const error = await dial(url, token).then(async (client) => {
    await client.close();
    throw new Error("upgrade was accepted");
  }, (error: Error) => error);
  return error.message;
}

/** Answers B's discovery on `client` with the given tools (in two pages). */
async function answerDiscovery(client: RawClient, sessionId: string): Promise<string[]> {
  const methods: string[] = [];
  for (;;) {
    const frame = await client.next();
    if (frame.type === "register_complete") {
      assert.equal(frame.status, "success");
      return methods;
    }
    assert.equal(frame.type, "request");
    const payload = frame.payload as JsonObject;
    methods.push(String(payload.method));
    if (!("id" in payload)) continue;
    const reply = (result: unknown) =>
      client.send({
        type: "response",
        sessionId,
        payload: { jsonrpc: "2.0", id: payload.id, result },
      });
    const params = (payload.params ?? {}) as JsonObject;
    switch (payload.method) {
      case "initialize":
        reply({
          protocolVersion: "2025-11-25",
          capabilities: { tools: {} },
          serverInfo: { name: "raw", version: "1" },
        });
        break;
      case "tools/list":
        reply(
          params.cursor === undefined
            ? { tools: [{ name: "one", inputSchema: { type: "object" } }], nextCursor: "p2" }
            : { tools: [{ name: "two", inputSchema: { type: "object" } }] },
        );
        break;
      case "resources/list":
        client.send({
          type: "response",
          sessionId,
          payload: {
            jsonrpc: "2.0",
            id: payload.id,
            error: { code: -32601, message: "Method not found" },
          },
        });
        break;
      default:
        reply({ prompts: [] });
    }
  }
}

async function registerB(client: RawClient): Promise<{ sessionId: string; methods: string[] }> {
  client.send({
    type: "register",
    sessionId: "client-chosen",
    server: { name: "raw", description: "a raw client", protocol: "mcp" },
  });
  const ack = await client.next();
  assert.equal(ack.type, "register_ack");
  assert.equal(ack.status, "processing");
  const sessionId = ack.sessionId!;
  return { sessionId, methods: await answerDiscovery(client, sessionId) };
}

Deno.test("startContractGateway() A acks register with its own session id and answers each heartbeat once", async () => {
  const gateway = await startContractGateway({ contract: "A", tokens: ["good"] });
  const client = await dial(gateway.wsUrl, "good", { "X-Session-ID": "aaaa" });
  try {
    client.send({ type: "register", sessionId: "aaaa", server: { name: "x", protocol: "stdio" } });
    const ack = await client.next();
    assert.equal(ack.type, "register_ack");
    assert.equal(ack.status, "success");
    assert.ok(typeof ack.sessionId === "string" && ack.sessionId !== "aaaa");
    assert.equal(await gateway.waitForRegistered(T), ack.sessionId);
    assert.equal(gateway.admissions[0]?.sessionIdHeader, "aaaa");
    assert.equal(gateway.admissions[0]?.authorization, "Bearer good");

    client.send({ type: "heartbeat", sessionId: ack.sessionId! });
    const beat = await client.next();
    assert.equal(beat.type, "heartbeat");
    assert.equal(beat.sessionId, ack.sessionId);
    assert.equal(typeof beat.timestamp, "string");
    // Exactly one reply: the next frame after a second heartbeat is its own reply, and no error in between.
    client.send({ type: "heartbeat", sessionId: ack.sessionId! });
    assert.equal((await client.next()).type, "heartbeat");
    assert.equal(gateway.heartbeatsReceived, 2);
    assert.equal(gateway.frames.filter((f) => f.frame?.type === "heartbeat").length, 4);
    assert.deepEqual(gateway.violations, []);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() A sends an error frame per bad frame and keeps the link", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  const client = await dial(gateway.wsUrl);
  try {
    client.send("not json");
    assert.equal((await client.next()).type, "error");
    client.send({ type: "bogus" });
    const error = await client.next();
    assert.equal(error.type, "error");
    assert.match(String(error.message), /bogus/);
    assert.equal(client.ws.readyState, WebSocket.OPEN);
    assert.equal(gateway.violations.length, 2);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() A routes a large response to request() and refuses with 403", async () => {
  const gateway = await startContractGateway({ contract: "A", tokens: ["good"] });
  const client = await dial(gateway.wsUrl, "good");
  try {
    client.send({ type: "register", sessionId: "s", server: { name: "x", protocol: "stdio" } });
    const { sessionId } = await client.next();
    const reply = gateway.request({ jsonrpc: "2.0", id: 7, method: "tools/call" });
    const request = await client.next();
    assert.equal(request.type, "request");
    assert.equal(request.authentication, undefined);
    const text = "x".repeat(2 * 1024 * 1024);
    client.send({
      type: "response",
      sessionId: sessionId!,
      payload: { jsonrpc: "2.0", id: 7, result: { text } },
    });
    const response = await reply;
    assert.equal((response.result as JsonObject).text, text);

    assert.match(await refusal(gateway.wsUrl, "bad"), /403/);
    assert.match(await refusal(gateway.wsUrl), /403/);
    assert.match(await refusal(`${gateway.wsUrl}?token=good`, "good"), /403/);
    assert.ok(gateway.violations.some((v) => v.includes("query string")));
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() B acks processing, runs discovery through the tunnel, then completes", async () => {
  const gateway = await startContractGateway({ contract: "B", tokens: ["good"] });
  const client = await dial(gateway.wsUrl, "good");
  try {
    const { sessionId, methods } = await registerB(client);
    assert.deepEqual(methods, [
      "initialize",
      "notifications/initialized",
      "tools/list",
      "tools/list",
      "resources/list",
      "prompts/list",
    ]);
    assert.equal(await gateway.waitForRegistered(T), sessionId);
    const init = gateway.frames.find((f) =>
      f.direction === "out" && (f.frame?.payload as JsonObject | undefined)?.method === "initialize"
    );
    assert.deepEqual((init?.frame?.payload as JsonObject).params, {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "contract-gateway-b", version: "0.0.0" },
    });
    const discovery = gateway.sessions[0]?.discovery;
    assert.deepEqual(discovery?.tools.map((t) => (t as JsonObject).name), ["one", "two"]);

    const reply = gateway.request({ jsonrpc: "2.0", id: "r1", method: "tools/call" }, {
      authentication: { Authorization: "Bearer downstream" },
    });
    const request = await client.next();
    assert.deepEqual(request.authentication, { Authorization: "Bearer downstream" });
    client.send({ type: "response", sessionId, payload: { jsonrpc: "2.0", id: "r1", result: {} } });
    assert.deepEqual(await reply, { jsonrpc: "2.0", id: "r1", result: {} });

    client.send({ type: "heartbeat", sessionId });
    assert.equal((await client.next()).type, "heartbeat");
    assert.deepEqual(gateway.violations, []);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() B refuses with 401 for a missing, unknown or query token and 403 when forbidden", async () => {
  const gateway = await startContractGateway({
    contract: "B",
    tokens: ["good"],
    forbiddenTokens: ["weak"],
  });
  try {
    assert.match(await refusal(gateway.wsUrl), /401/);
    assert.match(await refusal(gateway.wsUrl, "bad"), /401/);
    assert.match(await refusal(gateway.wsUrl, "weak"), /403/);
    assert.match(await refusal(`${gateway.wsUrl}?access_token=good`), /401/);
    assert.deepEqual(gateway.admissions.map((a) => a.status), [401, 401, 403, 401]);
    assert.equal(gateway.connections, 0);
  } finally {
    await gateway.close();
  }
});

Deno.test("startContractGateway() B closes with 1009 on a frame over 1 MiB of UTF-8", async () => {
  const gateway = await startContractGateway({ contract: "B" });
  const client = await dial(gateway.wsUrl);
  try {
    const { sessionId } = await registerB(client);
    // 600 000 UTF-16 units but 1.2 MB of UTF-8: the limit is in bytes.
    const text = "é".repeat(600_000);
    client.send({
      type: "notification",
      sessionId,
      payload: { jsonrpc: "2.0", method: "x", params: { text } },
    });
    const closed = await deadline(client.closed, T, "close");
    assert.equal(closed.code, 1009);
    await gateway.waitUntil(() => gateway.closures.length === 1, T, "gateway-side close");
    assert.equal(gateway.closures[0]?.code, 1009);
    assert.equal(gateway.closures[0]?.byGateway, true);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() B closes with 1008 on a duplicate register", async () => {
  const gateway = await startContractGateway({ contract: "B" });
  const client = await dial(gateway.wsUrl);
  try {
    const { sessionId } = await registerB(client);
    client.send({ type: "register", sessionId, server: { name: "raw", protocol: "mcp" } });
    assert.equal((await deadline(client.closed, T, "close")).code, 1008);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() B rejects a response payload with extra fields", async () => {
  const gateway = await startContractGateway({ contract: "B" });
  const client = await dial(gateway.wsUrl);
  try {
    const { sessionId } = await registerB(client);
    const reply = gateway.request({ jsonrpc: "2.0", id: 1, method: "ping" }, { timeoutMs: 300 });
    await client.next();
    client.send({
      type: "response",
      sessionId,
      payload: { jsonrpc: "2.0", id: 1, result: {}, extra: true },
    });
    assert.equal((await client.next()).type, "error");
    await assert.rejects(reply, { name: "TimeoutError" });
    client.send({
      type: "notification",
      sessionId,
      payload: { jsonrpc: "2.0", method: "notifications/message", params: "text" },
    });
    assert.equal((await client.next()).type, "error");
    assert.equal(gateway.violations.length, 2);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() B fails registration with 1008 when discovery times out", async () => {
  const gateway = await startContractGateway({ contract: "B", discoveryTimeoutMs: 200 });
  const client = await dial(gateway.wsUrl);
  try {
    client.send({ type: "register", sessionId: "s", server: { name: "raw", protocol: "mcp" } });
    assert.equal((await client.next()).status, "processing");
    assert.equal((await client.next()).type, "request"); // initialize, left unanswered
    const complete = await client.next();
    assert.equal(complete.type, "register_complete");
    assert.equal(complete.status, "error");
    assert.equal((await deadline(client.closed, T, "close")).code, 1008);
    assert.equal(gateway.registrations, 0);
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() keeps the URL prefix and 404s the bare path", async () => {
  const gateway = await startContractGateway({ contract: "B", prefix: "/gw/" });
  try {
    assert.equal(gateway.url, `http://127.0.0.1:${gateway.port}/gw`);
    assert.equal(gateway.wsUrl, `ws://127.0.0.1:${gateway.port}/gw/reverse-proxy/ws`);
    assert.match(await refusal(`ws://127.0.0.1:${gateway.port}/reverse-proxy/ws`), /404/);
    const client = await dial(gateway.wsUrl);
    await client.close();
  } finally {
    await gateway.close();
  }
});

Deno.test("startContractGateway() DELETE of a session closes its socket", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  const client = await dial(gateway.wsUrl);
  try {
    client.send({ type: "register", sessionId: "s", server: { name: "x", protocol: "stdio" } });
    const { sessionId } = await client.next();
    const res = await fetch(`${gateway.url}/reverse-proxy/sessions/${sessionId}`, {
      method: "DELETE",
    });
    assert.deepEqual(await res.json(), { status: "disconnected", session_id: sessionId });
    assert.equal((await deadline(client.closed, T, "close")).code, 1000);
    await gateway.waitUntil(() => gateway.openConnections === 0, T, "gateway-side close");
    const missing = await fetch(`${gateway.url}/reverse-proxy/sessions/${sessionId}`, {
      method: "DELETE",
    });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await client.close();
    await gateway.close();
  }
});

Deno.test("startContractGateway() restart() closes tunnels with 1001 and listens again on the same port", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  const port = gateway.port;
  const first = await dial(gateway.wsUrl);
  let second: RawClient | undefined;
  try {
    first.send({ type: "register", sessionId: "s", server: { name: "x", protocol: "stdio" } });
    await first.next();
    await gateway.restart();
    assert.equal((await deadline(first.closed, T, "close")).code, 1001);
    assert.equal(gateway.port, port);
    assert.equal(gateway.openConnections, 0);
    second = await dial(gateway.wsUrl);
    const registrations = gateway.registrations;
    second.send({ type: "register", sessionId: "s", server: { name: "x", protocol: "stdio" } });
    const ack = await second.next();
    assert.equal(await gateway.waitForRegistered(T, { after: registrations }), ack.sessionId);
    assert.equal(gateway.connections, 2);
  } finally {
    await first.close();
    await second?.close();
    await gateway.close();
  }
});
