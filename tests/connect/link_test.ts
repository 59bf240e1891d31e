// Tests of Link against a throwaway WebSocket gateway on 127.0.0.1: refusals at the upgrade and during
// registration, contracts A, B and C, handshake headers, and the heartbeat with its reply deadline.

import assert from "node:assert/strict";
import { deadline } from "../../lib/util/delay.ts";
import { tryParseWire as parseFrame, type WireFrame as Frame } from "../fixtures/wire.ts";
import { Link, type LinkOptions } from "../../lib/connect/link.ts";
import { DialError } from "../../lib/connect/link_outcome.ts";
import type { Frame as LinkFrame } from "../../lib/protocol/frames.ts";
import { Collector } from "../fixtures/collector.ts";
import { startTcpRelay } from "../fixtures/tcp_relay.ts";

const WAIT_MS = 10_000;
const SESSION = "client-session-1";
const TOKEN = "secret-token-123";

/** One accepted WebSocket connection, seen from the gateway. */
interface Peer {
  socket: WebSocket;
  headers: Headers;
  url: URL;
  frames: Collector<Frame>;
  /** Resolves with the close the gateway saw. */
  closed: Promise<{ code: number; reason: string }>;
  send(frame: Frame): void;
}

interface TestGateway {
  url: URL;
  peers: Collector<Peer>;
  close(): Promise<void>;
}

interface GatewayOptions {
  /** Refuse the upgrade with this HTTP status. */
  refuse?: number;
  /** Called for every frame the client sends. */
  onFrame?: (frame: Frame, peer: Peer) => void;
}

function startGateway(options: GatewayOptions = {}): TestGateway {
  const peers = new Collector<Peer>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (options.refuse !== undefined) {
      return new Response("refused", { status: options.refuse });
    }
    // Copied first: the request's headers are gone once the connection is upgraded.
    const headers = new Headers(req.headers);
    const { socket, response } = Deno.upgradeWebSocket(req);
    const frames = new Collector<Frame>();
    const peer: Peer = {
      socket,
      headers,
      url: new URL(req.url),
      frames,
      closed: new Promise((resolve) => {
        socket.onclose = (event) => resolve({ code: event.code, reason: event.reason });
      }),
      send: (frame) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
      },
    };
    socket.onmessage = (event) => {
      const frame = parseFrame(String(event.data));
      if (frame instanceof Error) throw frame;
      frames.push(frame);
      options.onFrame?.(frame, peer);
    };
    socket.onopen = () => peers.push(peer);
    return response;
  });
  return {
    url: new URL(`ws://127.0.0.1:${server.addr.port}/reverse-proxy/ws`),
    peers,
    async close() {
      for (const peer of peers.items) {
        if (peer.socket.readyState === WebSocket.OPEN) peer.socket.close(1001, "test over");
      }
      await deadline(
        Promise.all(peers.items.map((p) => p.closed)),
        WAIT_MS,
        "peer sockets closing",
      );
      await deadline(server.shutdown(), WAIT_MS, "gateway shutdown");
    },
  };
}

function options(gateway: TestGateway, extra: Partial<LinkOptions> = {}): LinkOptions {
  return {
    url: gateway.url,
    token: TOKEN,
    clientSessionId: SESSION,
    server: { name: "demo", description: "Demo server" },
    keepaliveMs: 30_000,
    openTimeoutMs: WAIT_MS,
    registerTimeoutMs: WAIT_MS,
    onFrame: () => {},
    ...extra,
  };
}

/** Answers `register` with a contract A `register_ack`. */
function contractA(frame: Frame, peer: Peer): void {
  if (frame.type === "register") {
    peer.send({ type: "register_ack", status: "success", sessionId: "gw-session-a" });
  }
}

/** Contract A, and answers each client heartbeat with one. */
function contractAWithHeartbeats(frame: Frame, peer: Peer): void {
  contractA(frame, peer);
  if (frame.type === "heartbeat") peer.send({ type: "heartbeat", sessionId: "gw-session-a" });
}

/** Opens a link and returns it, or the error open rejected with. */
async function openLink(linkOptions: LinkOptions): Promise<Link> {
  return await deadline(Link.open(linkOptions), WAIT_MS, "Link.open");
}

for (const status of [401, 403]) {
  Deno.test(`Link.open() rejects HTTP ${status} on the upgrade as an auth refusal`, async () => {
    const gateway = startGateway({ refuse: status });
    try {
      await assert.rejects(openLink(options(gateway)), (error) => {
        assert.ok(error instanceof DialError && error.kind === "auth", String(error));
        assert.equal(error.status, status);
        // Pins Deno's "Invalid status code: 401" error text, the only place the status shows up.
        assert.ok(
          error.message.startsWith(`Gateway refused the token: HTTP ${status} (`),
          error.message,
        );
        return true;
      });
    } finally {
      await gateway.close();
    }
  });
}

Deno.test("Link.open() rejects a close 1008 during registration as an auth refusal", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type === "register") peer.socket.close(1008, "server name not allowed");
    },
  });
  try {
    await assert.rejects(openLink(options(gateway)), (error) => {
      assert.ok(error instanceof DialError && error.kind === "auth", String(error));
      assert.equal(
        error.message,
        "Gateway refused the registration (close 1008: server name not allowed)",
      );
      return true;
    });
  } finally {
    await gateway.close();
  }
});

Deno.test("Link.open() rejects a close 4001 during registration as evicted", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type === "register") peer.socket.close(4001, "removed by operator");
    },
  });
  try {
    await assert.rejects(openLink(options(gateway)), (error) => {
      assert.ok(error instanceof DialError && error.kind === "evicted", String(error));
      assert.equal(error.message, "Gateway evicted this session: removed by operator");
      return true;
    });
  } finally {
    await gateway.close();
  }
});

Deno.test("Link.open() rejects a failed register_complete as an auth refusal", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type !== "register") return;
      peer.send({ type: "register_ack", status: "processing", sessionId: "b-1" });
      peer.send({ type: "register_complete", status: "failed", message: "discovery failed" });
    },
  });
  try {
    await assert.rejects(openLink(options(gateway)), (error) => {
      assert.ok(error instanceof DialError && error.kind === "auth", String(error));
      assert.equal(error.message, "Gateway rejected the registration: discovery failed");
      return true;
    });
  } finally {
    await gateway.close();
  }
});

Deno.test("Link.open() rejects an unreachable gateway with an error naming its address and the fix", async () => {
  // A port that was free a moment ago: nothing listens there now.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const url = new URL(`ws://127.0.0.1:${port}/reverse-proxy/ws`);
  await assert.rejects(
    openLink({ ...options({ url, peers: new Collector(), close: () => Promise.resolve() }) }),
    (error) => {
      assert.ok(error instanceof DialError && error.kind === "unreachable", String(error));
      assert.equal(error.failure, "refused");
      assert.match(
        (error as Error).message,
        new RegExp(
          `^Nothing accepts connections at 127\\.0\\.0\\.1:${port} \\(connection refused\\): start the gateway, or fix the host and port in --gateway`,
        ),
      );
      return true;
    },
  );
});

Deno.test("Link.open() rejects with the signal's reason when aborted during registration", async () => {
  const gateway = startGateway(); // Never answers register.
  const controller = new AbortController();
  const reason = new Error("shutting down");
  try {
    const opening = openLink(options(gateway, { signal: controller.signal }));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    await peer.frames.waitFor((f) => f.type === "register", WAIT_MS, "register frame");
    controller.abort(reason);
    await assert.rejects(opening, (error) => error === reason);
    const closed = await deadline(peer.closed, WAIT_MS, "close at the gateway");
    assert.equal(closed.code, 1000);
  } finally {
    await gateway.close();
  }
});

Deno.test("Link.open() sends the token and session id as headers, never in the query", async () => {
  const gateway = startGateway({ onFrame: contractA });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    assert.equal(peer.headers.get("authorization"), `Bearer ${TOKEN}`);
    assert.equal(peer.headers.get("x-session-id"), SESSION);
    assert.equal(peer.url.pathname, "/reverse-proxy/ws");
    assert.equal(peer.url.search, "");
    assert.ok(!peer.url.href.includes(TOKEN));
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() sends no Authorization header without a token", async () => {
  const gateway = startGateway({ onFrame: contractA });
  let link: Link | undefined;
  try {
    const { token: _, ...withoutToken } = options(gateway);
    link = await openLink(withoutToken);
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    assert.equal(peer.headers.get("authorization"), null);
    assert.equal(peer.headers.get("x-session-id"), SESSION);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() registers with contract A on a register_ack success", async () => {
  const gateway = startGateway({ onFrame: contractA });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    assert.deepEqual(peer.frames.items[0], {
      type: "register",
      sessionId: SESSION,
      server: { name: "demo", description: "Demo server", protocol: "mcp" },
    });
    assert.equal(link.registration.contract, "A");
    assert.equal(link.registration.sessionId, "gw-session-a");
    assert.equal(link.sessionId, "gw-session-a");
    assert.equal(link.registration.extensions.size, 0);
    assert.equal(link.registration.maxFrameBytes, 64 * 1024 * 1024 - 1);
    assert.equal(link.isOpen, true);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() registers with contract B, delivering discovery requests before it resolves", async () => {
  const events: string[] = [];
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type === "register") {
        peer.send({ type: "register_ack", status: "processing", sessionId: "b-session" });
        peer.send({
          type: "request",
          sessionId: "b-session",
          payload: { jsonrpc: "2.0", id: "discover-1", method: "tools/list" },
        });
      } else if (frame.type === "response") {
        peer.send({ type: "register_complete", status: "success", sessionId: "b-session" });
      }
    },
  });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, {
      onFrame: (frame, during) => {
        events.push(`frame ${frame.type}`);
        // The link is usable for replies while registration is pending, under B's session id.
        assert.equal(during.contract, "B");
        assert.equal(during.sessionId, "b-session");
        assert.equal(during.maxFrameBytes, 1048576);
        during.sendText(JSON.stringify({
          type: "response",
          sessionId: during.sessionId,
          payload: { jsonrpc: "2.0", id: "discover-1", result: { tools: [] } },
        }));
      },
    }));
    events.push("opened");
    assert.deepEqual(events, ["frame request", "opened"]);
    assert.equal(link.registration.contract, "B");
    assert.equal(link.registration.sessionId, "b-session");
    assert.equal(link.registration.maxFrameBytes, 1048576);
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    const response = peer.frames.items.find((f) => f.type === "response");
    assert.equal(response?.sessionId, "b-session");
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() registers with contract C when register_ack announces extensions", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type !== "register") return;
      peer.send({
        type: "register_ack",
        status: "success",
        sessionId: "c-session",
        extensions: ["server-requests", "large-frames"],
        maxFrameBytes: 8_000_000,
        mcpUrl: "http://127.0.0.1:1/servers/demo-2/mcp",
        name: "demo-2",
      });
    },
  });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway));
    assert.equal(link.registration.contract, "C");
    assert.equal(link.registration.sessionId, "c-session");
    assert.deepEqual([...link.registration.extensions], ["server-requests", "large-frames"]);
    assert.equal(link.hasExtension("server-requests"), true);
    assert.equal(link.hasExtension("evict-close"), false);
    assert.equal(link.registration.maxFrameBytes, 8_000_000);
    assert.equal(link.maxFrameBytes, 8_000_000);
    assert.equal(link.registration.mcpUrl, "http://127.0.0.1:1/servers/demo-2/mcp");
    assert.equal(link.registration.name, "demo-2");
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() passes frames other than registration and heartbeats to onFrame in order", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      contractA(frame, peer);
      if (frame.type !== "register") return;
      for (let i = 0; i < 5; i++) {
        peer.send({
          type: "request",
          sessionId: "gw-session-a",
          payload: { jsonrpc: "2.0", id: i, method: "ping" },
        });
      }
    },
  });
  const frames = new Collector<LinkFrame>();
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, { onFrame: frames.push }));
    await frames.waitForCount(5, WAIT_MS, "5 request frames");
    assert.deepEqual(
      frames.items.map((f) => (f.payload?.value as { id: number }).id),
      [0, 1, 2, 3, 4],
    );
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link heartbeats every keepaliveMs and measures the round trip", async () => {
  const keepaliveMs = 200;
  const arrivals: number[] = [];
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type === "heartbeat") arrivals.push(performance.now());
      contractAWithHeartbeats(frame, peer);
    },
  });
  const rtts = new Collector<number>();
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, { keepaliveMs, onHeartbeatRtt: rtts.push }));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    const intervals = 5;
    await peer.frames.waitFor(
      () => peer.frames.items.filter((f) => f.type === "heartbeat").length > intervals,
      WAIT_MS,
      `${intervals + 1} heartbeats`,
    );
    // The rate, from both sides: 5 intervals take 5 × keepalive plus the timer's tick (a quarter of it)
    // and some scheduling slack; half the interval or twice it lands well outside.
    const elapsed = arrivals[intervals]! - arrivals[0]!;
    assert.ok(
      elapsed >= intervals * keepaliveMs * 0.8 && elapsed <= intervals * keepaliveMs * 1.8,
      `${intervals} heartbeat intervals took ${
        Math.round(elapsed)
      } ms at keepalive ${keepaliveMs} ms`,
    );
    const heartbeat = peer.frames.items.find((f) => f.type === "heartbeat");
    assert.equal(heartbeat?.sessionId, "gw-session-a");
    await rtts.waitForCount(2, WAIT_MS, "2 round trips");
    assert.ok(rtts.items.every((ms) => ms >= 0 && ms < WAIT_MS), `rtts ${rtts.items}`);
    assert.equal(link.isOpen, true);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.ended resolves with cause heartbeat when the gateway goes silent", async () => {
  const keepaliveMs = 100;
  const heartbeatDeadlineMs = 200;
  const gateway = startGateway({ onFrame: contractA }); // Registers, then never sends again.
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, { keepaliveMs, heartbeatDeadlineMs }));
    const start = performance.now();
    const end = await deadline(
      link.ended,
      keepaliveMs + heartbeatDeadlineMs + 1000,
      "heartbeat end",
    );
    const elapsed = performance.now() - start;
    assert.equal(end.kind, "heartbeat");
    assert.ok(elapsed >= heartbeatDeadlineMs, `ended after ${Math.round(elapsed)} ms`);
    assert.equal(link.isOpen, false);
    assert.equal(link.sendText("{}"), false);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link counts any frame from the gateway as liveness, not only a heartbeat reply", async () => {
  const keepaliveMs = 100;
  const heartbeatDeadlineMs = 200;
  // Registers, never answers a heartbeat, but sends a request after each one it gets.
  const gateway = startGateway({
    onFrame(frame, peer) {
      contractA(frame, peer);
      if (frame.type === "heartbeat") {
        peer.send({
          type: "request",
          sessionId: "gw-session-a",
          payload: { jsonrpc: "2.0", method: "notifications/ping" },
        });
      }
    },
  });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, { keepaliveMs, heartbeatDeadlineMs }));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    // Several deadlines' worth of heartbeats, each answered by a frame that is not a heartbeat.
    await peer.frames.waitFor(
      () => peer.frames.items.filter((f) => f.type === "heartbeat").length >= 6,
      WAIT_MS,
      "6 heartbeats",
    );
    assert.equal(link.isOpen, true, "the link was declared dead while frames kept coming");
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.ended resolves with cause heartbeat on a half-open link that carries no bytes", async () => {
  const keepaliveMs = 100;
  const heartbeatDeadlineMs = 200;
  const gateway = startGateway({ onFrame: contractAWithHeartbeats });
  const relay = await startTcpRelay({ targetPort: Number(gateway.url.port) });
  let link: Link | undefined;
  try {
    const url = new URL(gateway.url);
    url.port = String(relay.port);
    link = await openLink({ ...options(gateway, { keepaliveMs, heartbeatDeadlineMs }), url });
    relay.blackhole();
    const start = performance.now();
    const end = await deadline(
      link.ended,
      keepaliveMs + heartbeatDeadlineMs + 1000,
      "heartbeat end",
    );
    assert.equal(end.kind, "heartbeat");
    assert.ok(performance.now() - start >= heartbeatDeadlineMs);
  } finally {
    link?.close();
    // The close frame is held by the blackhole: only cutting the TCP connection releases the socket.
    await relay.close();
    await gateway.close();
  }
});

Deno.test("Link never answers a gateway heartbeat with a heartbeat", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      contractA(frame, peer);
      if (frame.type !== "register") return;
      for (let i = 0; i < 50; i++) peer.send({ type: "heartbeat", sessionId: "gw-session-a" });
      // A marker after the heartbeats: once its answer is in, the client has handled all 50.
      peer.send({
        type: "request",
        sessionId: "gw-session-a",
        payload: { jsonrpc: "2.0", id: "marker", method: "ping" },
      });
    },
  });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, {
      keepaliveMs: 5000,
      onFrame: (frame, current) => {
        const id = (frame.payload?.value as { id?: unknown } | undefined)?.id;
        current.sendText(JSON.stringify({
          type: "response",
          sessionId: current.sessionId,
          payload: { jsonrpc: "2.0", id, result: {} },
        }));
      },
    }));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    await peer.frames.waitFor((f) => f.type === "response", WAIT_MS, "marker response");
    assert.deepEqual(peer.frames.items.map((f) => f.type), ["register", "response"]);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.ended resolves with cause remote, code and reason when the gateway closes", async () => {
  const gateway = startGateway({ onFrame: contractA });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    peer.socket.close(4000, "maintenance");
    const end = await deadline(link.ended, WAIT_MS, "link end");
    assert.deepEqual(end, { kind: "closed", code: 4000, reason: "maintenance" });
    assert.equal(link.isOpen, false);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.close() ends the link with cause local and the gateway sees the close", async () => {
  const gateway = startGateway({ onFrame: contractA });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    link.close(1000, "bye");
    const end = await deadline(link.ended, WAIT_MS, "link end");
    assert.deepEqual(end, { kind: "local", code: 1000, reason: "bye" });
    assert.equal(link.sendText('{"type":"heartbeat"}'), false);
    const closed = await deadline(peer.closed, WAIT_MS, "close at the gateway");
    assert.equal(closed.code, 1000);
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.close() with a code a client may not send (1002) still closes the socket, as 1000", async () => {
  const gateway = startGateway({ onFrame: contractA });
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    // A reason over the 123 bytes a close frame holds, in characters of 3 bytes.
    link.close(1002, "é".repeat(100));
    const closed = await deadline(peer.closed, WAIT_MS, "close at the gateway");
    assert.equal(closed.code, 1000);
    assert.equal(closed.reason, "é".repeat(61));
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() calls onRegistered before frames that follow register_ack reach onFrame", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type !== "register") return;
      // The ack and a request in one burst: Deno may deliver both before open() resolves.
      peer.send({
        type: "register_ack",
        status: "success",
        sessionId: "gw-c",
        extensions: ["resume"],
        resume: { token: "t", windowMs: 1000 },
      });
      peer.send({
        type: "request",
        sessionId: "gw-c",
        seq: 1,
        payload: { jsonrpc: "2.0", id: 1, method: "ping" },
      });
    },
  });
  const order: string[] = [];
  const requested = new Collector<LinkFrame>();
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, {
      onRegistered: () => order.push("registered"),
      onFrame: (frame) => {
        order.push(frame.type);
        requested.push(frame);
      },
    }));
    await requested.waitForCount(1, WAIT_MS, "the request frame");
    assert.deepEqual(order, ["registered", "request"]);
    assert.equal(link.registration.contract, "C");
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link ignores frames that arrive after it ended", async () => {
  const gateway = startGateway({ onFrame: contractA });
  const seen = new Collector<LinkFrame>();
  let link: Link | undefined;
  try {
    link = await openLink(options(gateway, { onFrame: (frame) => seen.push(frame) }));
    const peer = await gateway.peers.waitFor(() => true, WAIT_MS, "connection");
    link.close(1000, "done");
    peer.send({
      type: "request",
      sessionId: "gw-session-a",
      payload: { jsonrpc: "2.0", id: 2, method: "ping" },
    });
    await deadline(peer.closed, WAIT_MS, "the gateway seeing the close");
    assert.equal(seen.items.length, 0, "a frame reached onFrame after close()");
  } finally {
    link?.close();
    await gateway.close();
  }
});

Deno.test("Link.open() rejects as evicted when a resume is answered 'evicted'", async () => {
  const gateway = startGateway({
    onFrame: (frame, peer) => {
      if (frame.type === "register") {
        peer.send({
          type: "register_ack",
          sessionId: "old",
          status: "evicted",
          resumed: false,
          resumeError: "evicted",
        });
      }
    },
  });
  try {
    await assert.rejects(
      openLink(options(gateway, {
        resume: { sessionId: "old", token: "t", ack: 3, overflowed: false },
      })),
      (error) => error instanceof DialError && error.kind === "evicted",
    );
  } finally {
    await gateway.close();
  }
});
