// TunnelCalls' queue on its own: deadlines of calls that wait for a slot, cancellation while waiting, and
// what is left when the tunnel closes. A recording channel stands in for the link (the wire-level queue
// tests are in tunnel_session_test.ts).

import assert from "node:assert/strict";
import { ErrorCode, type JsonObject, type JsonRpcResponse } from "../../lib/protocol/jsonrpc.ts";
import { Payload } from "../../lib/protocol/payload.ts";
import type { RawResponse } from "../../lib/serve/call_table.ts";
import type { CallChannel } from "../../lib/serve/call_contract.ts";
import { TunnelCalls } from "../../lib/serve/tunnel_calls.ts";
import { within } from "../fixtures/test_gateway.ts";

class RecordingChannel implements CallChannel {
  readonly name = "rec";
  registered = true;
  readonly sent: JsonObject[] = [];
  sendData(_type: "request" | "response", payload: JsonObject): boolean {
    this.sent.push(payload);
    return true;
  }
  badFrame(): void {}
}

function calls(channel: RecordingChannel, limits: { maxInflight: number; maxQueued?: number }) {
  return new TunnelCalls(channel, {
    limits: { callTimeoutMs: 10_000, ...limits },
    sink: {
      serverNotification: () => {},
      serverRequest: () => Promise.reject(new Error("unused")),
    },
  });
}

function list(id: number): { jsonrpc: "2.0"; id: number; method: string } {
  return { jsonrpc: "2.0", id, method: "tools/list" };
}

type Answer = JsonRpcResponse | RawResponse | undefined;

Deno.test("TunnelCalls.call() times a queued call out at its own deadline, never sending it", async () => {
  const channel = new RecordingChannel();
  const tunnel = calls(channel, { maxInflight: 1 });
  try {
    const first = tunnel.call(list(1), { timeoutMs: 10_000 });
    const second: Answer = await within(
      tunnel.call(list(2), { timeoutMs: 100 }),
      5_000,
      "the queued call's deadline",
    );
    assert.equal(second?.error?.code, ErrorCode.Timeout);
    assert.match(
      String(second?.error?.message),
      /^Call 'tools\/list' to server 'rec' timed out after 0\.1 s waiting for a slot \(1 calls in flight, limit --max-inflight 1\)$/,
    );
    assert.equal(tunnel.queued, 0);
    assert.deepEqual(channel.sent.map((m) => m.method), ["tools/list"], "only call 1 went out");
    tunnel.failAll("test over");
    assert.equal((await first)?.error?.code, ErrorCode.TunnelUnavailable);
  } finally {
    tunnel.failAll("test over");
  }
});

Deno.test("TunnelCalls.call() drops a call cancelled while queued: nothing is sent, its place goes to the next", async () => {
  const channel = new RecordingChannel();
  const tunnel = calls(channel, { maxInflight: 1 });
  try {
    const first = tunnel.call(list(1));
    const controller = new AbortController();
    const second = tunnel.call(list(2), { signal: controller.signal });
    const third = tunnel.call(list(3));
    assert.equal(tunnel.queued, 2);
    assert.ok(tunnel.queuedBytes > 0);
    controller.abort("changed my mind");
    assert.equal(await second, undefined);
    assert.equal(tunnel.queued, 1);
    const sentId = channel.sent[0]!.id as number;
    tunnel.onPayload("response", Payload.fromValue({ jsonrpc: "2.0", id: sentId, result: {} }));
    assert.deepEqual(await first, { jsonrpc: "2.0", id: 1, result: {} });
    assert.equal(channel.sent.length, 2);
    assert.equal(channel.sent[1]!.method, "tools/list");
    assert.equal(tunnel.queued, 0);
    assert.equal(tunnel.queuedBytes, 0);
    tunnel.failAll("test over");
    assert.equal((await third)?.error?.code, ErrorCode.TunnelUnavailable);
    assert.equal(channel.sent.filter((m) => m.method === "notifications/cancelled").length, 0);
  } finally {
    tunnel.failAll("test over");
  }
});

Deno.test("TunnelCalls.failAll() answers queued calls with -32001 saying they were never sent", async () => {
  const channel = new RecordingChannel();
  const tunnel = calls(channel, { maxInflight: 1, maxQueued: 5 });
  const first = tunnel.call(list(1));
  const queued = tunnel.call(list(2));
  tunnel.failAll("link lost");
  const answer = await queued;
  assert.equal(answer?.error?.code, ErrorCode.TunnelUnavailable);
  assert.match(String(answer?.error?.message), /closed before the call was sent: link lost/);
  assert.equal((await first)?.error?.code, ErrorCode.TunnelUnavailable);
  assert.equal(channel.sent.length, 1);
});
