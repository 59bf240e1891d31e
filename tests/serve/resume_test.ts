// Wire-level tests of the `resume` extension on the gateway: a raw WebSocket plays `connect`, numbering its
// frames and acknowledging the gateway's, drops the link and resumes it (docs/resume.md).

import assert from "node:assert/strict";
import { ErrorCode, type JsonObject } from "../../lib/protocol/jsonrpc.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";
import type { LogRecord } from "@logtape/logtape";
import { startTestGateway, TOKENS, TunnelClient, within } from "../fixtures/test_gateway.ts";
import {
  isRequest,
  payloadOf,
  RAW_INIT_RESULT,
  registerResumable,
  resumeAs,
  sessionInfo,
  until,
} from "../fixtures/resumable_tunnel.ts";

/** A call through the sessions API; resolves with the JSON-RPC response. */
async function callThroughApi(
  gateway: Gateway,
  sessionId: string,
  id: string,
): Promise<JsonObject> {
  const response = await fetch(`${gateway.url}/reverse-proxy/sessions/${sessionId}/request`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "echo", arguments: { id } },
    }),
  });
  return await response.json();
}

Deno.test("a dropped link resumes the same session: replay both ways, duplicates dropped, calls complete", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  try {
    const first = await registerResumable(gateway);
    tunnels.push(first.tunnel);
    assert.equal(first.token.length, 43, "256-bit secret, base64url");
    assert.equal(first.windowMs, 60_000);
    const answered = callThroughApi(gateway, first.sessionId, "c1");
    const call = await first.tunnel.next(isRequest("tools/call"), 5_000, "the call");
    assert.equal(call.seq, 3);
    assert.equal(call.ack, 1, "the gateway acknowledges what it received");
    // The link dies before the client could acknowledge the call.
    await first.tunnel.close();
    await until("the session to detach", async () => {
      return (await sessionInfo(gateway, first.sessionId))?.detached === true;
    });
    // Sent while detached: kept and delivered on resume, after the call.
    const second = callThroughApi(gateway, first.sessionId, "c2");
    await until("the second call to be buffered", async () => {
      return (await sessionInfo(gateway, first.sessionId))?.calls_in_flight === 2;
    });

    const { tunnel, ack } = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 2,
    });
    tunnels.push(tunnel);
    assert.equal(ack.status, "success");
    assert.equal(ack.resumed, true);
    assert.equal(ack.sessionId, first.sessionId);
    assert.equal(ack.name, first.name);
    assert.equal(ack.ack, 1, "the last seq the gateway received from the client");
    const replayed = await tunnel.next(isRequest("tools/call"), 5_000, "the replayed call");
    assert.equal(replayed.seq, 3);
    assert.equal(payloadOf(replayed).id, payloadOf(call).id);
    const buffered = await tunnel.next(isRequest("tools/call"), 5_000, "the buffered call");
    assert.equal(buffered.seq, 4);
    assert.ok(
      !tunnel.frames.some(isRequest("initialize")),
      "a resumed session is not initialized again",
    );
    // A replayed duplicate of seq 1 is dropped without a word; then the answers.
    tunnel.send({
      type: "response",
      sessionId: first.sessionId,
      seq: 1,
      ack: 4,
      payload: { jsonrpc: "2.0", id: 1, result: RAW_INIT_RESULT },
    });
    for (const [seq, frame] of [[2, replayed], [3, buffered]] as const) {
      tunnel.send({
        type: "response",
        sessionId: first.sessionId,
        seq,
        ack: 4,
        payload: { jsonrpc: "2.0", id: payloadOf(frame).id, result: { n: seq } },
      });
    }
    assert.deepEqual(await within(answered, 5_000, "c1"), {
      jsonrpc: "2.0",
      id: "c1",
      result: { n: 2 },
    });
    assert.deepEqual(await within(second, 5_000, "c2"), {
      jsonrpc: "2.0",
      id: "c2",
      result: { n: 3 },
    });
    assert.ok(!tunnel.frames.some((f) => f.type === "error"), "no error frame");
    tunnel.send({ type: "heartbeat", sessionId: first.sessionId, ack: 4 });
    const beat = await tunnel.next((f) => f.type === "heartbeat", 5_000, "heartbeat reply");
    assert.equal(beat.ack, 3, "heartbeat replies carry the gateway's ack");
    assert.equal((await sessionInfo(gateway, first.sessionId))?.detached, undefined);
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a stranger's token cannot resume someone else's session, nor a wrong secret; the session is unaffected", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  try {
    const alice = await registerResumable(gateway);
    tunnels.push(alice.tunnel);
    await alice.tunnel.close();
    await until("the session to detach", async () => {
      return (await sessionInfo(gateway, alice.sessionId))?.detached === true;
    });
    const bob = await resumeAs(gateway, TOKENS.bob, {
      sessionId: alice.sessionId,
      token: alice.token,
      ack: 2,
    });
    tunnels.push(bob.tunnel);
    assert.equal(bob.ack.status, "success", "bob registers afresh");
    assert.equal(bob.ack.resumed, false);
    assert.equal(bob.ack.resumeError, "wrong-owner");
    assert.notEqual(bob.ack.sessionId, alice.sessionId);
    const guess = await resumeAs(gateway, TOKENS.alice, {
      sessionId: alice.sessionId,
      token: alice.token.replace(/^./, (c) => (c === "A" ? "B" : "A")),
      ack: 2,
    }, "guess");
    tunnels.push(guess.tunnel);
    assert.equal(guess.ack.resumeError, "bad-token");
    assert.notEqual(guess.ack.sessionId, alice.sessionId);
    assert.equal((await sessionInfo(gateway, alice.sessionId))?.detached, true, "still waiting");
    const back = await resumeAs(gateway, TOKENS.alice, {
      sessionId: alice.sessionId,
      token: alice.token,
      ack: 2,
    });
    tunnels.push(back.tunnel);
    assert.equal(back.ack.resumed, true, "the owner still resumes");
    assert.equal(back.ack.name, "res");
    const unknown = await resumeAs(gateway, TOKENS.alice, {
      sessionId: crypto.randomUUID(),
      token: alice.token,
      ack: 0,
    }, "other");
    tunnels.push(unknown.tunnel);
    assert.equal(unknown.ack.resumeError, "unknown-session");
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a session not resumed within the window fails its calls with a JSON-RPC error; a late resume is told 'expired'", async () => {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  const gateway = await startTestGateway({ resumeWindowMs: 300 });
  const tunnels: TunnelClient[] = [];
  try {
    const first = await registerResumable(gateway);
    tunnels.push(first.tunnel);
    const answered = callThroughApi(gateway, first.sessionId, "late");
    await first.tunnel.next(isRequest("tools/call"), 5_000, "the call");
    await first.tunnel.close();
    const response = await within(answered, 5_000, "the call to fail");
    assert.equal((response.error as JsonObject).code, ErrorCode.TunnelUnavailable);
    assert.match(String((response.error as JsonObject).message), /not resumed within 0.3 s/);
    assert.equal(await sessionInfo(gateway, first.sessionId), undefined, "the session is gone");
    const late = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 3,
    });
    tunnels.push(late.tunnel);
    assert.equal(late.ack.resumed, false);
    assert.equal(late.ack.resumeError, "expired");
    assert.equal(late.ack.name, "res", "the name is free again");
    const text = records.map((r) => r.message.join("")).join("\n");
    assert.match(text, /was not resumed within 0.3 s: failing its 1 call\(s\) in flight/);
    assert.match(text, /Could not resume session .* \(expired\); registering afresh/);
    assert.ok(!text.includes(first.token), "the resume secret is never logged");
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
    await shutdownLogging();
  }
});

Deno.test("a replay buffer that overflows while detached ends the session at once; a resume is told 'overflowed'", async () => {
  const gateway = await startTestGateway({ replayFrames: 4 });
  const tunnels: TunnelClient[] = [];
  try {
    const first = await registerResumable(gateway);
    tunnels.push(first.tunnel);
    // Acknowledge initialize and initialized: the buffer is empty again.
    first.tunnel.send({ type: "ack", sessionId: first.sessionId, ack: 2 });
    await first.tunnel.close();
    await until("the session to detach", async () => {
      return (await sessionInfo(gateway, first.sessionId))?.detached === true;
    });
    const calls = Array.from(
      { length: 5 },
      (_, i) => callThroughApi(gateway, first.sessionId, `o${i}`),
    );
    const responses = await within(Promise.all(calls), 5_000, "the calls to fail");
    for (const response of responses) {
      assert.equal((response.error as JsonObject).code, ErrorCode.TunnelUnavailable);
      assert.match(String((response.error as JsonObject).message), /overflowed/);
    }
    const late = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 2,
    });
    tunnels.push(late.tunnel);
    assert.equal(late.ack.resumed, false);
    assert.equal(late.ack.resumeError, "overflowed");
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a client whose own buffer overflowed ends its old session: its calls fail and its name is free", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  try {
    const first = await registerResumable(gateway);
    tunnels.push(first.tunnel);
    const answered = callThroughApi(gateway, first.sessionId, "lost");
    await first.tunnel.next(isRequest("tools/call"), 5_000, "the call");
    await first.tunnel.close();
    const again = await resumeAs(gateway, TOKENS.alice, {
      sessionId: first.sessionId,
      token: first.token,
      ack: 3,
      overflowed: true,
    });
    tunnels.push(again.tunnel);
    assert.equal(again.ack.resumed, false);
    assert.equal(again.ack.resumeError, "overflowed");
    assert.equal(again.ack.name, "res");
    const response = await within(answered, 5_000, "the call to fail");
    assert.match(
      String((response.error as JsonObject).message),
      /client's replay buffer overflowed/,
    );
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a silent link is declared dead within three announced keepalives, and the session detaches", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  try {
    const first = await registerResumable(gateway);
    tunnels.push(first.tunnel);
    const sent = Date.now();
    first.tunnel.send({ type: "heartbeat", sessionId: first.sessionId, keepaliveMs: 100, ack: 2 });
    await first.tunnel.next((f) => f.type === "heartbeat", 5_000, "heartbeat reply");
    // Now silent, socket open: the gateway must give up on the link by itself.
    await within(first.tunnel.closed, 3_000, "the gateway to drop the silent link");
    assert.ok(Date.now() - sent < 300 + 1_000, "well within keepalive + deadline");
    assert.equal((await sessionInfo(gateway, first.sessionId))?.detached, true);
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});

Deno.test("a client that sends data frames without seq is not kept for resumption", async () => {
  const gateway = await startTestGateway();
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const ack = await tunnel.register("legacy");
    const sessionId = String(ack.sessionId);
    const init = await tunnel.next(isRequest("initialize"));
    tunnel.send({
      type: "response",
      sessionId,
      payload: { jsonrpc: "2.0", id: payloadOf(init).id, result: RAW_INIT_RESULT },
    });
    const initialized = await tunnel.next(isRequest("notifications/initialized"));
    assert.equal(initialized.seq, undefined, "no seq once the client showed it does not use them");
    const answered = callThroughApi(gateway, sessionId, "x");
    await tunnel.next(isRequest("tools/call"));
    await tunnel.close();
    const response = await within(answered, 5_000, "the call to fail at once");
    assert.match(String((response.error as JsonObject).message), /closed before it answered/);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("with a resume window of 0 the extension is not announced and frames carry no seq", async () => {
  const gateway = await startTestGateway({ resumeWindowMs: 0 });
  const tunnel = await TunnelClient.open(gateway, TOKENS.alice);
  try {
    const ack = await tunnel.register("off");
    assert.deepEqual(ack.extensions, [
      "server-requests",
      "large-frames",
      "evict-close",
      "channels",
      "client-sessions",
    ]);
    assert.equal(ack.resume, undefined);
    const init = await tunnel.next(isRequest("initialize"));
    assert.equal(init.seq, undefined);
  } finally {
    await tunnel.close();
    await gateway.close();
  }
});

Deno.test("an evicted session cannot come back: a resume with its credential is told 'evicted' and closed 4001", async () => {
  const gateway = await startTestGateway();
  const tunnels: TunnelClient[] = [];
  try {
    const alice = await registerResumable(gateway);
    tunnels.push(alice.tunnel);
    const evicted = await fetch(`${gateway.url}/reverse-proxy/sessions/${alice.sessionId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal(evicted.status, 200);
    await evicted.body?.cancel();
    assert.equal((await within(alice.tunnel.closed, 5_000, "the eviction close")).code, 4001);
    // As if the 4001 had been lost on the way: the client tries to resume with its credential.
    const again = await resumeAs(gateway, TOKENS.alice, {
      sessionId: alice.sessionId,
      token: alice.token,
      ack: 2,
    });
    tunnels.push(again.tunnel);
    assert.equal(again.ack.status, "evicted");
    assert.equal(again.ack.resumeError, "evicted");
    assert.equal((await within(again.tunnel.closed, 5_000, "the refusal close")).code, 4001);
    const listed = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal(
      ((await listed.json()) as { total: number }).total,
      0,
      "nothing registered afresh",
    );
  } finally {
    for (const tunnel of tunnels) await tunnel.close();
    await gateway.close();
  }
});
