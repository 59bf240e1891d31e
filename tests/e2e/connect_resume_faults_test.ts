// Faults of a resumable session that no real gateway produces on purpose, put in front of the real
// connect by a scripted gateway: a replayed duplicate, a sequence gap, a refused resume, and connect's own
// replay buffer overflowing. And the real serve refusing a resume whose ack it never sent (`bad-ack`).

import assert from "node:assert/strict";
import { type ScriptedPeer, startScriptedGateway } from "../fixtures/scripted_gateway.ts";
import { type ProxyProcess, startProxy } from "../fixtures/proxy_process.ts";
import { startTestGateway, TOKENS, TunnelClient } from "../fixtures/test_gateway.ts";
import type { WireFrame } from "../fixtures/wire.ts";
import { deadline } from "../../lib/util/delay.ts";

const FAULT_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("../fixtures/fault_server.ts", import.meta.url).pathname,
];
const WAIT_MS = 10_000;

function startConnect(url: string, flags: string[] = []): ProxyProcess {
  return startProxy([
    "connect",
    "--gateway",
    url,
    "--log-format",
    "json",
    "--reconnect-delay",
    "0.05",
    ...flags,
    "--",
    ...FAULT_SERVER,
  ]);
}

/** A `register_ack` of contract C with the resume extension. */
function resumeAck(
  sessionId: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: "register_ack",
    status: "success",
    sessionId,
    extensions: ["resume"],
    resume: { token: `rt-${sessionId}`, windowMs: 30_000 },
    ...extra,
  };
}

/** A sequenced request frame carrying an echo call. */
function echo(sessionId: string, seq: number, id: string): Record<string, unknown> {
  return {
    type: "request",
    sessionId,
    seq,
    ack: 0,
    payload: {
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "echo", arguments: { message: id } },
    },
  };
}

function responses(peer: ScriptedPeer): WireFrame[] {
  return peer.frames.items.filter((f) => f.type === "response");
}

function idOf(frame: WireFrame): unknown {
  return (frame.payload as { id?: unknown }).id;
}

Deno.test("a resumed session: a replayed duplicate is dropped, a sequence gap resumes the link, and what the gateway missed is replayed", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type !== "register") return;
      if (peer.index === 1) peer.send(resumeAck("s1"));
    },
  });
  await using proxy = startConnect(gateway.url);
  const first = await gateway.peers.waitFor(() => true, 20_000, "the first link");
  await first.frames.waitFor((f) => f.type === "register", 20_000, "register");
  await proxy.waitForEvent("registered", WAIT_MS);
  first.send(echo("s1", 1, "a"));
  first.send(echo("s1", 1, "a")); // replayed: already delivered
  first.send(echo("s1", 2, "b"));
  // In order: an answer to the duplicate would arrive before b's.
  await first.frames.waitFor((f) => f.type === "response" && idOf(f) === "b", WAIT_MS, "b");
  assert.deepEqual(responses(first).map(idOf), ["a", "b"], "the duplicate reached the server");
  assert.deepEqual(responses(first).map((f) => f.seq), [1, 2]);

  first.send(echo("s1", 4, "d")); // 3 is missing
  const closed = await deadline(first.closed, WAIT_MS, "the first link to close");
  assert.deepEqual(closed, { code: 1000, reason: "sequence gap" });
  const gap = await proxy.waitForEvent("sequence_gap", WAIT_MS);
  assert.equal(gap.seq, 4);
  assert.equal(gap.last, 2);

  const second = await gateway.peers.waitFor((p) => p.index === 2, WAIT_MS, "the second link");
  const register = await second.frames.waitFor((f) => f.type === "register", WAIT_MS, "register");
  assert.deepEqual(register.resume, {
    sessionId: "s1",
    token: "rt-s1",
    ack: 2,
    // The scripted gateway acknowledged none of connect's frames on the first link.
    acked: 0,
    overflowed: false,
  });
  // The gateway says it has connect's frames up to 1: connect replays b (its seq 2).
  second.send(resumeAck("s1", { resumed: true, ack: 1 }));
  second.send(echo("s1", 2, "b")); // a duplicate again, dropped
  second.send(echo("s1", 3, "c"));
  second.send(echo("s1", 4, "d"));
  await second.frames.waitFor((f) => f.type === "response" && idOf(f) === "d", WAIT_MS, "d");
  assert.deepEqual(responses(second).map(idOf), ["b", "c", "d"]);
  assert.deepEqual(responses(second).map((f) => f.seq), [2, 3, 4]);
  const resumed = await proxy.waitForEvent("resumed", WAIT_MS);
  assert.equal(resumed.count, 1);
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
});

Deno.test("a resume refused for a bad ack: connect says why, fails the lost call, and goes on as a new session", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type !== "register") return;
      if (peer.index === 1) peer.send(resumeAck("s1"));
      else peer.send(resumeAck("s2", { resumed: false, resumeError: "bad-ack" }));
    },
  });
  await using proxy = startConnect(gateway.url);
  const first = await gateway.peers.waitFor(() => true, 20_000, "the first link");
  await proxy.waitForEvent("registered", 20_000);
  first.send({
    type: "request",
    sessionId: "s1",
    seq: 1,
    ack: 0,
    payload: {
      jsonrpc: "2.0",
      id: "slow-1",
      method: "tools/call",
      params: { name: "slow", arguments: { ms: 3_000, message: "x" } },
    },
  });
  await proxy.waitForLine((l) => l.json?.line === 'call slow "slow-1"', WAIT_MS);
  first.close(4000, "dropped by the test");
  const refused = await proxy.waitForEvent("resume_refused", WAIT_MS);
  assert.equal(refused.why, "bad-ack");
  assert.equal(refused.session, "s1");
  const lost = await proxy.waitForEvent("calls_lost", WAIT_MS);
  assert.equal(lost.count, 1);
  const second = await gateway.peers.waitFor((p) => p.index === 2, WAIT_MS, "the second link");
  second.send(echo("s2", 1, "fresh"));
  await second.frames.waitFor((f) => f.type === "response", WAIT_MS, "an answer on s2");
  assert.deepEqual(responses(second).map(idOf), ["fresh"]);
  assert.equal(responses(second)[0]!.sessionId, "s2");
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
  assert.ok(
    !gateway.peers.items.some((p) => responses(p).some((f) => idOf(f) === "slow-1")),
    "the lost call's answer went to a new session",
  );
});

/**
 * The gateway acknowledges nothing while the server sends `count` notifications of `bytes` each: connect's
 * replay buffer overflows past its bound, it says so, and asks for a new session instead of resuming.
 */
async function replayOverflow(options: { count: number; bytes: number; flags: string[] }) {
  const { count, bytes, flags } = options;
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type !== "register") return;
      if (peer.index === 1) peer.send(resumeAck("s1"));
      else peer.send(resumeAck("s2", { resumed: false, resumeError: "overflowed" }));
    },
  });
  await using proxy = startConnect(gateway.url, flags);
  const first = await gateway.peers.waitFor(() => true, 20_000, "the first link");
  await proxy.waitForEvent("registered", 20_000);
  // The gateway never acknowledges: every frame connect sends stays in its replay buffer.
  first.send({
    type: "request",
    sessionId: "s1",
    seq: 1,
    ack: 0,
    payload: {
      jsonrpc: "2.0",
      id: "flood-1",
      method: "tools/call",
      params: { name: "flood", arguments: { count, bytes } },
    },
  });
  await first.frames.waitFor((f) => f.type === "response", 30_000, "the flood's answer");
  const overflow = await proxy.waitForEvent("replay_overflow", WAIT_MS);
  assert.equal(overflow.session, "s1");
  first.close(4000, "dropped by the test");
  const second = await gateway.peers.waitFor((p) => p.index === 2, WAIT_MS, "the second link");
  const register = await second.frames.waitFor((f) => f.type === "register", WAIT_MS, "register");
  assert.deepEqual(register.resume, {
    sessionId: "s1",
    token: "rt-s1",
    ack: 1,
    acked: 0,
    overflowed: true,
  });
  const impossible = await proxy.waitForEvent("resume_impossible", WAIT_MS);
  assert.equal(impossible.session, "s1");
  await proxy.waitForLine(
    (l) => l.json?.event === "registered" && l.json.session === "s2",
    WAIT_MS,
  );
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
}

Deno.test("connect's own replay buffer overflows: it says so, and asks the gateway to end the session instead of resuming", async () => {
  // Over the default of 10,000 frames kept for replay.
  await replayOverflow({ count: 10_050, bytes: 10, flags: [] });
});

Deno.test("--max-replay-frames and --max-replay-bytes bound connect's replay buffer", async () => {
  // 50 small frames: far below the defaults, over these bounds.
  await replayOverflow({ count: 50, bytes: 10, flags: ["--max-replay-frames", "40"] });
  await replayOverflow({ count: 50, bytes: 200, flags: ["--max-replay-bytes", "4KiB"] });
});

Deno.test("serve refuses a resume that acknowledges frames it never sent (bad-ack), and ends that session", async () => {
  const gateway = await startTestGateway({ resumeWindowMs: 30_000 });
  const links: TunnelClient[] = [];
  try {
    const first = await TunnelClient.open(gateway, TOKENS.alice);
    links.push(first);
    const ack = await first.register("resumable");
    const sessionId = String(ack.sessionId);
    const token = (ack.resume as { token: string }).token;
    assert.ok(token !== undefined && token !== "", "serve did not offer resume");
    // A heartbeat with `ack` says this client resumes (docs/resume.md, "Who speaks the extension").
    first.send({ type: "heartbeat", sessionId, ack: 0, keepaliveMs: 30_000 });
    // serve initializes the tunneled server before the session is up: answer as a server would.
    const init = await first.next(
      (f) => f.type === "request" && (f.payload as { method?: string }).method === "initialize",
      WAIT_MS,
      "initialize",
    );
    first.send({
      type: "response",
      sessionId,
      seq: 1,
      ack: Number(init.seq ?? 0),
      payload: {
        jsonrpc: "2.0",
        id: (init.payload as { id: unknown }).id,
        result: {
          protocolVersion: "2025-06-18",
          capabilities: {},
          serverInfo: { name: "resumable", version: "1" },
        },
      },
    });
    await first.next((f) => f.type === "heartbeat", WAIT_MS, "the heartbeat reply");
    await first.close(4000);
    const resume = (ackSeen: number) => ({
      type: "register",
      sessionId: "client-2",
      server: { name: "resumable", description: "", protocol: "mcp" },
      resume: { sessionId, token, ack: ackSeen },
    });
    const second = await TunnelClient.open(gateway, TOKENS.alice);
    links.push(second);
    // Nothing was ever sent on that session: an ack of 5 claims frames that do not exist.
    second.send(resume(5));
    const refused = await second.next((f) => f.type === "register_ack", WAIT_MS, "register_ack");
    assert.equal(refused.resumed, false);
    assert.equal(refused.resumeError, "bad-ack");
    assert.notEqual(refused.sessionId, sessionId, "registered afresh");
    // The session ended for good: a correct resume later cannot bring it back.
    const third = await TunnelClient.open(gateway, TOKENS.alice);
    links.push(third);
    third.send(resume(0));
    const late = await third.next((f) => f.type === "register_ack", WAIT_MS, "register_ack");
    assert.notEqual(late.resumed, true);
    assert.equal(late.resumeError, "bad-ack");
  } finally {
    for (const link of links) await link.close();
    await gateway.close();
  }
});

/** A sequenced request frame carrying a slow call (the server logs `call slow <id>` as it starts it). */
function slow(sessionId: string, seq: number, id: string, ms: number): Record<string, unknown> {
  return {
    type: "request",
    sessionId,
    seq,
    ack: 0,
    payload: {
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: { name: "slow", arguments: { ms, message: id } },
    },
  };
}

Deno.test("a cross-replica call sent again (a failover) runs once at the server: dropped while in flight, answered again with its answer once answered", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type === "register") peer.send(resumeAck("s1"));
    },
  });
  await using proxy = startConnect(gateway.url, ["--log-level", "debug"]);
  const link = await gateway.peers.waitFor(() => true, 20_000, "the link");
  await proxy.waitForEvent("registered", 20_000);
  // Ids as serve's replicas mint them (`<rid>.<n>`); new frames each (new seq), as a new holder sends them.
  const [first, later] = ["r3.1796152033101001", "r3.1796152033101002"];
  link.send(slow("s1", 1, first, 1_000));
  await proxy.waitForLine((l) => l.json?.line === `call slow "${first}"`, WAIT_MS);
  link.send(slow("s1", 2, first, 1_000)); // in flight at the server
  const answer = await link.frames.waitFor(
    (f) => f.type === "response" && idOf(f) === first,
    WAIT_MS,
    "its answer",
  );
  // Answered already: the holder that took the answer may have died with it, so it comes again.
  link.send(slow("s1", 3, first, 1_000));
  const again = await link.frames.waitFor(
    (f) => f.type === "response" && idOf(f) === first && f !== answer,
    WAIT_MS,
    "its answer again",
  );
  assert.deepEqual(again.payload, answer.payload, "the same answer");
  assert.ok(Number(again.seq) > Number(answer.seq), "in a fresh frame");
  link.send(slow("s1", 4, later, 1));
  // The server starts its calls in the order it reads them: a second run of the first would log before.
  await proxy.waitForLine((l) => l.json?.line === `call slow "${later}"`, WAIT_MS);
  await link.frames.waitFor((f) => f.type === "response" && idOf(f) === later, WAIT_MS, "later");
  const runs = proxy.lines.filter((l) => l.json?.line === `call slow "${first}"`).length;
  assert.equal(runs, 1, "the call ran again at the server");
  assert.deepEqual(responses(link).map(idOf), [first, first, later]);
  const repeats = proxy.lines.filter((l) => l.json?.event === "repeated_request");
  assert.deepEqual(repeats.map((l) => [l.json?.id, l.json?.outcome]), [
    [first, "dropped"],
    [first, "answered_again"],
  ]);
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
});

Deno.test("--max-repeat-answer-bytes: a repeated call whose answer is no longer kept gets an error naming the flag, at once", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type === "register") peer.send(resumeAck("s1"));
    },
  });
  await using proxy = startConnect(gateway.url, ["--max-repeat-answer-bytes", "1KiB"]);
  const link = await gateway.peers.waitFor(() => true, 20_000, "the link");
  await proxy.waitForEvent("registered", 20_000);
  const [big, small] = ["r3.1796152033102001", "r3.1796152033102002"];
  const call = (seq: number, id: string, message: string) => {
    const frame = echo("s1", seq, id);
    const payload = frame.payload as { params: { arguments: { message: string } } };
    payload.params.arguments.message = message;
    link.send(frame);
  };
  const answered = (id: string, what: string, after = 0) =>
    link.frames.waitFor(
      (f) => f.type === "response" && idOf(f) === id && Number(f.seq) > after,
      WAIT_MS,
      what,
    );
  // An answer over the whole bound is not kept; a small one is.
  call(1, big, "m".repeat(2_000));
  const bigAnswer = await answered(big, "the big answer");
  call(2, small, "s");
  const smallAnswer = await answered(small, "the small answer");
  call(3, big, "m".repeat(2_000));
  const lost = await answered(big, "an answer to the repeat", Number(smallAnswer.seq));
  const error = (lost.payload as { error?: { code: number; message: string } }).error;
  assert.equal(error?.code, -32001, JSON.stringify(lost.payload));
  assert.match(error.message, /ran once at the MCP server, but its answer was lost/);
  assert.match(error.message, /raise --max-repeat-answer-bytes \(now 1KiB\)/);
  call(4, small, "s");
  const again = await answered(small, "the small answer again", Number(lost.seq));
  assert.deepEqual(again.payload, smallAnswer.payload);
  assert.ok(!("error" in (bigAnswer.payload as object)), "the first answer was the server's");
  const warned = proxy.lines.filter((l) => l.json?.outcome === "answer_lost");
  assert.deepEqual(warned.map((l) => l.json?.id), [big]);
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
});

Deno.test("--max-repeat-ids: connect remembers that many answered calls; a repeat of an older one runs again", async () => {
  await using gateway = startScriptedGateway({
    onFrame(frame, peer) {
      if (frame.type === "register") peer.send(resumeAck("s1"));
    },
  });
  await using proxy = startConnect(gateway.url, ["--max-repeat-ids", "2"]);
  const link = await gateway.peers.waitFor(() => true, 20_000, "the link");
  await proxy.waitForEvent("registered", 20_000);
  const ids = ["r3.1796152033103001", "r3.1796152033103002", "r3.1796152033103003"];
  let seq = 0;
  const run = async (id: string) => {
    const after = responses(link).length;
    link.send(slow("s1", ++seq, id, 1));
    await link.frames.waitFor(() => responses(link).length > after, WAIT_MS, `an answer for ${id}`);
  };
  for (const id of ids) await run(id);
  await run(ids[2]!); // remembered: answered again
  await run(ids[0]!); // forgotten: a new call
  // The server logs its calls in order: once the last one's line is in, every earlier one is too.
  const last = "r3.1796152033103004";
  await run(last);
  await proxy.waitForLine((l) => l.json?.line === `call slow "${last}"`, WAIT_MS);
  const runs = (id: string) =>
    proxy.lines.filter((l) => l.json?.line === `call slow "${id}"`).length;
  assert.deepEqual(ids.map(runs), [2, 1, 1]);
  proxy.signal("SIGTERM");
  assert.equal(await proxy.exitCode(15_000), 0);
});
