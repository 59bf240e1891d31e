// connect's SSE socket against our real gateway (and a few hand-made servers for what the gateway never
// does): it opens when the stream names its POST URL, carries frames both ways, ends typed, and sends what
// was queued before a close.

import assert from "node:assert/strict";
import type { SocketEnd } from "../../lib/connect/link_socket.ts";
import { openSseSocket, type SseLinkSocket } from "../../lib/connect/sse_link_socket.ts";
import type { Gateway } from "../../lib/serve/gateway.ts";
import { startTestGateway, TOKENS, within } from "../fixtures/test_gateway.ts";

/** An SSE socket and what it reported. */
interface Opened {
  socket: SseLinkSocket;
  opened: Promise<void>;
  ended: Promise<SocketEnd>;
  frames: Record<string, unknown>[];
  /** Resolves with the next frame of `type`. */
  frame(type: string): Promise<Record<string, unknown>>;
}

function open(url: string, token: string | undefined = TOKENS.alice): Opened {
  const opened = Promise.withResolvers<void>();
  const ended = Promise.withResolvers<SocketEnd>();
  const frames: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const socket = openSseSocket({
    url: new URL(url),
    headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
  }, {
    onOpen: () => opened.resolve(),
    onMessage: (data) => {
      frames.push(JSON.parse(data as string));
      for (const wake of waiters) wake();
    },
    onEnd: (end) => {
      opened.reject(new Error(`ended before opening: ${JSON.stringify(end)}`));
      ended.resolve(end);
    },
  });
  opened.promise.catch(() => {});
  return {
    socket,
    opened: opened.promise,
    ended: ended.promise,
    frames,
    frame: (type) =>
      within(
        new Promise((resolve) => {
          const check = () => {
            const index = frames.findIndex((f) => f.type === type);
            if (index < 0) return;
            waiters.delete(check);
            resolve(frames.splice(index, 1)[0]!);
          };
          waiters.add(check);
          check();
        }),
        5_000,
        `a '${type}' frame`,
      ),
  };
}

function sseUrl(gateway: Gateway): string {
  return `${gateway.url}/reverse-proxy/sse`;
}

function register(name: string): string {
  return JSON.stringify({
    type: "register",
    sessionId: "sock",
    server: { name, description: "socket test", protocol: "mcp" },
    extensions: ["resume"],
  });
}

async function sessions(gateway: Gateway): Promise<number> {
  const response = await fetch(`${gateway.url}/reverse-proxy/sessions`, {
    headers: { authorization: `Bearer ${TOKENS.alice}` },
  });
  return (await response.json()).total;
}

Deno.test("openSseSocket() opens on the endpoint event, registers, and a burst of frames queues and drains", async () => {
  const gateway = await startTestGateway();
  const link = open(sseUrl(gateway));
  try {
    await within(link.opened, 5_000, "open");
    assert.equal(link.socket.isOpen, true);
    assert.equal(link.socket.send(register("sock-one")), true);
    assert.equal((await link.frame("register_ack")).status, "success");
    for (let i = 0; i < 200; i++) {
      link.socket.send(JSON.stringify({ type: "heartbeat", sessionId: "sock" }));
    }
    assert.ok(link.socket.bufferedAmount > 0, "queued while the POSTs go out");
    for (let i = 0; i < 200; i++) await link.frame("heartbeat");
    assert.equal(link.socket.bufferedAmount, 0);
  } finally {
    link.socket.close(1000, "done");
    await within(link.socket.settled, 5_000, "the socket to settle");
    await gateway.close();
  }
});

Deno.test("openSseSocket() close() still sends what was queued: an unregister ends the session", async () => {
  const gateway = await startTestGateway({ resumeWindowMs: 60_000 });
  const link = open(sseUrl(gateway));
  try {
    await within(link.opened, 5_000, "open");
    link.socket.send(register("sock-two"));
    const ack = await link.frame("register_ack");
    assert.equal(await sessions(gateway), 1);
    link.socket.send(JSON.stringify({ type: "unregister", sessionId: ack.sessionId }));
    link.socket.close(1000, "shutting down");
    assert.deepEqual(await link.ended, { kind: "closed", code: 1000, reason: "shutting down" });
    await within(link.socket.settled, 5_000, "the socket to settle");
    // Without the unregister the session would wait for a resume for 60 s.
    assert.equal(await sessions(gateway), 0);
  } finally {
    await gateway.close();
  }
});

Deno.test("openSseSocket() ends typed: HTTP 401, refused connection, the gateway's close code", async () => {
  const gateway = await startTestGateway();
  try {
    const refused = open(sseUrl(gateway), "not-a-token");
    assert.deepEqual(await refused.ended, { kind: "http-status", status: 401 });
    await refused.socket.settled;

    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const nobody = open(`http://127.0.0.1:${port}/reverse-proxy/sse`);
    const end = await within(nobody.ended, 5_000, "refused");
    assert.equal(end.kind, "failed");
    assert.equal(end.kind === "failed" && end.cause, "refused");
    await nobody.socket.settled;

    const evicted = open(sseUrl(gateway));
    await within(evicted.opened, 5_000, "open");
    evicted.socket.send(register("sock-three"));
    const ack = await evicted.frame("register_ack");
    const response = await fetch(`${gateway.url}/reverse-proxy/sessions/${ack.sessionId}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    await response.body?.cancel();
    const closed = await within(evicted.ended, 5_000, "the eviction");
    assert.equal(closed.kind === "closed" && closed.code, 4001);
    await evicted.socket.settled;
  } finally {
    await gateway.close();
  }
});

Deno.test("openSseSocket() refuses a POST URL on another origin (the token would go there) and a non-SSE answer", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    if (new URL(request.url).pathname === "/html/reverse-proxy/sse") {
      return new Response("<html>sign in</html>", { headers: { "content-type": "text/html" } });
    }
    return new Response("event: endpoint\ndata: http://elsewhere.example/steal\n\n", {
      headers: { "content-type": "text/event-stream" },
    });
  });
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const offsite = open(`${base}/reverse-proxy/sse`);
    const end = await within(offsite.ended, 5_000, "the refusal");
    assert.equal(end.kind, "failed");
    assert.match(end.kind === "failed" ? end.message : "", /off the gateway's origin/);
    await offsite.socket.settled;
    const html = open(`${base}/html/reverse-proxy/sse`);
    const htmlEnd = await within(html.ended, 5_000, "the refusal");
    assert.match(htmlEnd.kind === "failed" ? htmlEnd.message : "", /not an event stream/);
    await html.socket.settled;
  } finally {
    await server.shutdown();
  }
});

Deno.test("openSseSocket() sends a POST cut by the network again under the same number", async () => {
  const http = await import("node:http");
  const seen: string[] = [];
  const waiters: (() => void)[] = [];
  /** Resolves once the server has seen `count` POSTs. */
  const posts = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => seen.length >= count ? resolve() : void waiters.push(check);
      check();
    });
  const server = http.createServer((req, res) => {
    if (req.method === "GET") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event: endpoint\ndata: sse/one\n\n");
      return;
    }
    let body = "";
    req.on("data", (chunk: Uint8Array) => body += new TextDecoder().decode(chunk));
    req.on("end", () => {
      const seq = String(req.headers["x-post-seq"]);
      seen.push(`${seq}:${body}`);
      for (const wake of waiters.splice(0)) wake();
      // The first POST reaches the server, but its answer never comes back.
      if (seen.length === 1) return req.socket.destroy();
      res.writeHead(202);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const link = open(`http://127.0.0.1:${port}/reverse-proxy/sse`);
  try {
    await within(link.opened, 5_000, "open");
    link.socket.send("a");
    await within(posts(2), 5_000, "the first POST and its retry");
    link.socket.send("b");
    await within(posts(3), 5_000, "the next POST");
    assert.deepEqual(seen, ["0:a", "0:a", "1:b"]);
    assert.equal(link.socket.isOpen, true);
  } finally {
    link.socket.close(1000, "done");
    await within(link.socket.settled, 5_000, "the socket to settle");
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
