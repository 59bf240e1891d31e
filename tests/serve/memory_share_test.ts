// The memory budget on the wire: a frame being received is charged from its header, so an owner cannot
// hold more than its share in half-received frames, and another owner is not affected; a replay buffer
// past the share stops being kept (the session can no longer resume) instead of growing; a call that
// would take the owner's queue past its share is refused instead of waiting; so is a server's request that
// would take its owner past its share while it waits for an MCP client's answer.

import assert from "node:assert/strict";
import { frameHeader, Opcode, RawWebSocket } from "../fixtures/raw_websocket.ts";
import {
  serveTestServer,
  startTestGateway,
  TOKENS,
  TunnelClient,
  within,
} from "../fixtures/test_gateway.ts";
import { initializeMcp, postMcp, rpc } from "../fixtures/mcp_http.ts";
import {
  isRequest,
  payloadOf,
  RAW_INIT_RESULT,
  registerResumable,
  resumeAs,
  sessionInfo,
  until,
} from "../fixtures/resumable_tunnel.ts";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { JsonObject } from "../../lib/protocol/jsonrpc.ts";

const MIB = 1024 * 1024;

/** Polls a condition the test's own event handlers change, every 5 ms until `ms` passed. */
async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("frames being received count against their owner's share from the header: the next is refused 1013, another owner's passes", async () => {
  const gateway = await startTestGateway({
    maxFrameBytes: 8 * MIB,
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 5 * MIB,
  });
  const open: RawWebSocket[] = [];
  try {
    // Alice announces a 3 MiB frame and sends only a little of it: 3 MiB of her share are taken.
    const first = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
    open.push(first);
    await first.write(frameHeader(Opcode.Text, 3 * MIB));
    await first.write(new Uint8Array(1024).fill(0x20));
    // Her second link announces another 3 MiB: past the 5 MiB share, refused at the header.
    const second = await RawWebSocket.open(gateway.port, { token: TOKENS.alice });
    open.push(second);
    await second.write(frameHeader(Opcode.Text, 3 * MIB));
    const refused = await second.readClose();
    assert.equal(refused?.code, 1013);
    assert.match(refused?.reason ?? "", /memory share/);
    // Bob's share is his own: the same frame passes the header check and is read.
    const bob = await RawWebSocket.open(gateway.port, { token: TOKENS.bob });
    open.push(bob);
    await bob.write(frameHeader(Opcode.Text, 3 * MIB));
    await bob.write(new Uint8Array(3 * MIB).fill(0x20)); // a frame of spaces: not JSON, a bad frame
    const answer = await bob.readFrame();
    assert.ok(answer !== undefined, "bob's frame was read and answered");
    assert.equal(answer.opcode, Opcode.Text, "an error frame, not a close");
  } finally {
    for (const socket of open) socket.close();
    await gateway.close();
  }
});

Deno.test("a replay buffer past its owner's share stops being kept: the session cannot resume", async () => {
  const gateway = await startTestGateway({
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 1 * MIB,
    callTimeoutMs: 30_000,
  });
  const first = await registerResumable(gateway);
  const pending: Promise<unknown>[] = [];
  let resumed: Awaited<ReturnType<typeof resumeAs>> | undefined;
  try {
    // Calls the tunnel never acknowledges: ~1.6 MiB of requests kept for replay, past the 1 MiB share.
    const big = "x".repeat(200 * 1024);
    for (let id = 1; id <= 8; id++) {
      pending.push(
        fetch(`${gateway.url}/reverse-proxy/sessions/${first.sessionId}/request`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { big } }),
        }).then((r) => r.body?.cancel(), () => {}),
      );
      await first.tunnel.next(
        (f) => f.type === "request" && f.seq !== undefined,
        5_000,
        `call ${id}`,
      );
    }
    await first.tunnel.close();
    // Without a whole replay buffer the session ends instead of waiting to be resumed.
    await until(
      "the session to end",
      async () => (await sessionInfo(gateway, first.sessionId)) === undefined,
    );
    resumed = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 2,
    });
    assert.equal(resumed.ack.resumed, false);
    assert.equal(resumed.ack.resumeError, "overflowed");
  } finally {
    await resumed?.tunnel.close();
    await gateway.close();
    await Promise.all(pending);
  }
});

Deno.test("calls waiting for a slot count against their owner's share: one that does not fit is refused naming --memory-per-owner, a small one waits", async () => {
  const gateway = await startTestGateway({
    maxInflight: 1,
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 256 * 1024,
  });
  const served = await serveTestServer(gateway, "queue");
  const leaving = new AbortController();
  let slow: Promise<unknown> | undefined;
  let small: Promise<Response> | undefined;
  try {
    const session = await initializeMcp(gateway, "queue");
    const post = (id: number, args: Record<string, unknown>, signal?: AbortSignal) =>
      postMcp(gateway, "queue", rpc(id, "tools/call", { name: "echo", arguments: args }), {
        session,
        accept: "application/json",
        ...(signal === undefined ? {} : { signal }),
      });
    // The one slot is taken by a call that runs until its client leaves.
    slow = post(1, { text: "slot", delayMs: 60_000 }, leaving.signal).catch(() => undefined);
    const until = performance.now() + 5_000;
    while (!served.log.calls.includes("echo")) {
      assert.ok(performance.now() < until, "the first call did not reach the server");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // 300 KiB of arguments cannot wait in a queue whose owner may hold 256 KiB: refused at once.
    const big = await within(post(2, { text: "x".repeat(300 * 1024) }), 5_000, "the refusal");
    const refused = await big.json();
    assert.match(refused.error?.message ?? "", /cannot wait for a slot.*--memory-per-owner/);
    // A small call waits for the slot, and gets it once the first call's client has left.
    small = post(3, { text: "small" });
    leaving.abort();
    const answer = await (await within(small, 10_000, "the small call")).json();
    assert.equal(answer.result?.content?.[0]?.text, "small");
  } finally {
    leaving.abort();
    await slow;
    await small?.then((r) => r.bodyUsed ? undefined : r.body?.cancel(), () => {});
    await served.close();
    await gateway.close();
  }
});

Deno.test("server requests waiting for an MCP client's answer count against their owner's share: past it they are answered at once naming --memory-per-owner", async () => {
  const gateway = await startTestGateway({
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 4 * MIB,
    sseReplayBytes: 64 * 1024,
    callTimeoutMs: 60_000,
  });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  const client = new Client({ name: "never-answers", version: "1" }, {
    capabilities: { sampling: {} },
  });
  const asked: unknown[] = [];
  // The client reads every request and answers none (until the test ends).
  client.setRequestHandler(
    CreateMessageRequestSchema,
    (request: { params: { maxTokens: number } }) => {
      asked.push(request.params.maxTokens);
      return new Promise(() => {});
    },
  );
  try {
    const ack = await tunnel.register("sampler");
    const sessionId = String(ack.sessionId);
    const init = await tunnel.next(isRequest("initialize"), 5_000, "initialize");
    tunnel.send({
      type: "response",
      sessionId,
      payload: { jsonrpc: "2.0", id: payloadOf(init).id, result: RAW_INIT_RESULT },
    });
    await within(
      client.connect(
        new StreamableHTTPClientTransport(new URL(`${gateway.url}/servers/sampler/mcp`), {
          requestInit: { headers: { Authorization: `Bearer ${TOKENS.alice}` } },
        }),
      ),
      10_000,
      "the MCP client to connect",
    );
    const ask = (id: number, pad: string) =>
      tunnel.send({
        type: "request",
        sessionId,
        payload: {
          jsonrpc: "2.0",
          id,
          method: "sampling/createMessage",
          params: { messages: [], maxTokens: id, metadata: { pad } },
        },
      });
    const answered = (id: number) =>
      tunnel.frames.find((f) => f.type === "response" && payloadOf(f).id === id);
    // Once the client's stream is open, 1 MiB requests one after another, each after the last arrived.
    // The SDK opens its GET stream after connecting: ask (small) until a request reaches the client.
    let probe = 1000;
    await waitFor(
      () => {
        if (asked.length > 0) return true;
        if (probe === 1000 || answered(probe) !== undefined) ask(++probe, "");
        return false;
      },
      5_000,
      "the client's GET stream",
    );
    // 5,000 small requests that the client reads and never answers: about 1 KiB each held while they
    // wait, more than the 4 MiB share holds. Those past it are answered at once (the share's refusal, or,
    // once the client's stream was cut to make room, that no client can answer).
    const count = 5_000;
    for (let id = 1; id <= count; id++) ask(id, "");
    const refusals = () =>
      tunnel.frames.filter((f) => f.type === "response" && Number(payloadOf(f).id) <= count);
    await waitFor(() => refusals().length >= 1_000, 4_000, "requests past the share answered");
    for (const frame of refusals()) {
      assert.match(
        String((payloadOf(frame).error as JsonObject | undefined)?.message),
        /cannot wait for an MCP client's answer.*--memory-per-owner|declared the 'sampling' capability/,
      );
    }
  } finally {
    await client.close();
    await tunnel.close();
    await gateway.close();
  }
});

/** Registers `name` on a raw link and answers the gateway's `initialize` with `instructions` of `bytes`. */
async function registerWithInstructions(
  tunnel: TunnelClient,
  name: string,
  bytes: number,
): Promise<void> {
  const ack = await tunnel.register(name);
  const init = await tunnel.next(isRequest("initialize"), 5_000, `initialize of ${name}`);
  tunnel.send({
    type: "response",
    sessionId: ack.sessionId,
    payload: {
      jsonrpc: "2.0",
      id: payloadOf(init).id,
      result: { ...RAW_INIT_RESULT, instructions: "i".repeat(bytes) },
    },
  });
}

Deno.test("a server's held initialize result counts against its owner's share until its session ends: another that does not fit is refused (1013)", async () => {
  const gateway = await startTestGateway({
    memoryBudgetBytes: 64 * MIB,
    memoryPerOwnerBytes: 1 * MIB,
  });
  const tunnels: TunnelClient[] = [];
  const open = async () => {
    const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
    tunnels.push(tunnel);
    return tunnel;
  };
  try {
    const first = await open();
    await registerWithInstructions(first, "first", 600 * 1024);
    await first.next(isRequest("notifications/initialized"), 5_000, "the first result held");
    // 600 KiB more cannot come in while the first server's 600 KiB are held in a 1 MiB share.
    const second = await open();
    await registerWithInstructions(second, "second", 600 * 1024);
    const closed = await within(second.closed, 2_000, "the second link to close");
    assert.equal(closed.code, 1013);
    // Once the first session ended, its result no longer counts.
    await first.close();
    await until("the first session to end", async () => {
      const listed = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
        headers: { authorization: `Bearer ${TOKENS.alice}` },
      });
      return (await listed.json()).total === 0;
    });
    const third = await open();
    await registerWithInstructions(third, "third", 600 * 1024);
    await third.next(isRequest("notifications/initialized"), 5_000, "the third result held");
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});
