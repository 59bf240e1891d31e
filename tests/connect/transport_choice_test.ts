// The rules of `--transport auto`, one dial outcome at a time (dials stand in for Link.open; the
// end-to-end tests run them through a real proxy), and the WebSocket probe against a real gateway.

import assert from "node:assert/strict";
import type { Link } from "../../lib/connect/link.ts";
import { DialError } from "../../lib/connect/link_outcome.ts";
import { type Dial, TransportChoice } from "../../lib/connect/transport_choice.ts";
import type { LinkTransport } from "../../lib/protocol/frames.ts";
import { startTestGateway, TOKENS, within, wsUrl } from "../fixtures/test_gateway.ts";

const URL_WS = new URL("ws://127.0.0.1:9/reverse-proxy/ws");

/** What one dial of a transport does: registers (with a contract) or fails. */
type Outcome = { contract: "A" | "B" | "C" } | DialError;

/** Runs `choice.dial` once with scripted outcomes per transport; returns the transports dialed. */
async function dialOnce(
  choice: TransportChoice,
  script: Partial<Record<LinkTransport, Outcome>>,
): Promise<{ dialed: LinkTransport[]; result: Link | unknown }> {
  const dialed: LinkTransport[] = [];
  const open = (dial: Dial): Promise<Link> => {
    dialed.push(dial.transport);
    assert.ok(
      dial.url.pathname.endsWith(
        dial.transport === "sse" ? "/reverse-proxy/sse" : "/reverse-proxy/ws",
      ),
    );
    const outcome = script[dial.transport];
    if (outcome === undefined) throw new Error(`no outcome scripted for ${dial.transport}`);
    if (outcome instanceof DialError) return Promise.reject(outcome);
    return Promise.resolve({ contract: outcome.contract } as Link);
  };
  const result = await choice.dial(open).catch((error: unknown) => error);
  return { dialed, result };
}

function auto(): TransportChoice {
  return new TransportChoice({ setting: "auto", url: URL_WS, retryMs: 60_000 });
}

const status = (code: number) =>
  new DialError(code === 401 || code === 403 ? "auth" : "http-status", `HTTP ${code}`, {
    status: code,
  });
const reset = () => new DialError("unreachable", "reset", { failure: "reset" });
const refused = () => new DialError("unreachable", "refused", { failure: "refused" });

Deno.test("TransportChoice auto: an upgrade answered 200, 400, 426, 502 or 503 tries SSE at once and moves there when it registers", async () => {
  for (const code of [200, 400, 426, 502, 503]) {
    const choice = auto();
    const { dialed, result } = await dialOnce(choice, {
      websocket: status(code),
      sse: { contract: "C" },
    });
    assert.deepEqual(dialed, ["websocket", "sse"], `HTTP ${code}`);
    assert.equal((result as Link).contract, "C");
    assert.equal(choice.current, "sse");
    // The next dial (after a drop) stays on SSE.
    assert.deepEqual((await dialOnce(choice, { sse: { contract: "C" } })).dialed, ["sse"]);
  }
});

Deno.test("TransportChoice auto: never on 401, 403 or 404, nor on a refused connection or one reset", async () => {
  for (const error of [status(401), status(403), status(404), refused(), reset()]) {
    const choice = auto();
    const { dialed, result } = await dialOnce(choice, { websocket: error, sse: { contract: "C" } });
    assert.deepEqual(dialed, ["websocket"], error.message);
    assert.equal(result, error);
    assert.equal(choice.current, "websocket");
  }
});

Deno.test("TransportChoice auto: two resets in a row try SSE; anything between starts the count again", async () => {
  const choice = auto();
  assert.deepEqual((await dialOnce(choice, { websocket: reset() })).dialed, ["websocket"]);
  assert.deepEqual((await dialOnce(choice, { websocket: refused() })).dialed, ["websocket"]);
  assert.deepEqual((await dialOnce(choice, { websocket: reset() })).dialed, ["websocket"]);
  const { dialed } = await dialOnce(choice, { websocket: reset(), sse: { contract: "C" } });
  assert.deepEqual(dialed, ["websocket", "sse"]);
  assert.equal(choice.current, "sse");
});

Deno.test("TransportChoice auto: stays on WebSocket when SSE fails too (the gateway is down), throwing the WebSocket's error", async () => {
  const choice = auto();
  const wsError = status(502);
  const { dialed, result } = await dialOnce(choice, { websocket: wsError, sse: status(502) });
  assert.deepEqual(dialed, ["websocket", "sse"]);
  assert.equal(result, wsError);
  assert.equal(choice.current, "websocket");
});

Deno.test("TransportChoice auto: an auth refusal of the SSE link is thrown (it is the token's)", async () => {
  const choice = auto();
  const sseError = status(401);
  const { result } = await dialOnce(choice, { websocket: status(426), sse: sseError });
  assert.equal(result, sseError);
  assert.equal(choice.current, "websocket");
});

Deno.test("TransportChoice auto: a gateway without an SSE link (404, or contract A or B) is not asked again", async () => {
  const missing = auto();
  await dialOnce(missing, { websocket: status(200), sse: status(404) });
  assert.deepEqual((await dialOnce(missing, { websocket: status(200) })).dialed, ["websocket"]);
  const contractA = auto();
  await dialOnce(contractA, { websocket: { contract: "A" } });
  assert.deepEqual((await dialOnce(contractA, { websocket: status(200) })).dialed, ["websocket"]);
  // On SSE, a 404 of the stream sends auto back to WebSocket.
  const moved = auto();
  await dialOnce(moved, { websocket: status(426), sse: { contract: "C" } });
  await dialOnce(moved, { sse: status(404) });
  assert.equal(moved.current, "websocket");
});

Deno.test("TransportChoice websocket and sse: use only that transport, whatever fails", async () => {
  const websocket = new TransportChoice({ setting: "websocket", url: URL_WS, retryMs: 1 });
  assert.deepEqual((await dialOnce(websocket, { websocket: status(426) })).dialed, ["websocket"]);
  const sse = new TransportChoice({ setting: "sse", url: URL_WS, retryMs: 1 });
  assert.deepEqual((await dialOnce(sse, { sse: status(404) })).dialed, ["sse"]);
  assert.equal(sse.current, "sse");
  const signal = AbortSignal.timeout(50);
  assert.equal(await sse.websocketPasses(signal), false, "no probing unless auto");
});

Deno.test("TransportChoice.websocketPasses() probes every retry interval and moves back once an upgrade passes", async () => {
  const gateway = await startTestGateway();
  const stop = new AbortController();
  const moves: LinkTransport[] = [];
  try {
    const headers = { Authorization: `Bearer ${TOKENS.alice}` };
    // A path nothing serves: every probe fails (404), and auto stays on SSE.
    const blocked = new TransportChoice({
      setting: "auto",
      url: new URL(`${gateway.url.replace("http", "ws")}/nothing/reverse-proxy/ws`),
      retryMs: 20,
      probeHeaders: headers,
    });
    await dialOnce(blocked, { websocket: status(426), sse: { contract: "C" } });
    const timeout = AbortSignal.timeout(300);
    assert.equal(await blocked.websocketPasses(timeout), false);
    assert.equal(blocked.current, "sse");

    const open = new TransportChoice({
      setting: "auto",
      url: new URL(wsUrl(gateway)),
      retryMs: 20,
      probeHeaders: headers,
      onTransport: (transport) => moves.push(transport),
    });
    await dialOnce(open, { websocket: status(426), sse: { contract: "C" } });
    assert.equal(await within(open.websocketPasses(stop.signal), 5_000, "the probe"), true);
    assert.equal(open.current, "websocket");
    assert.deepEqual(moves, ["websocket", "sse", "websocket"]);
  } finally {
    stop.abort();
    await gateway.close();
  }
});
