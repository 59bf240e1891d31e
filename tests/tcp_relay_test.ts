// Checks the TCP relay fixture against a real echo server: cut, blackhole (bytes held, sockets open), restore.

import assert from "node:assert/strict";
import { deadline } from "../lib/delay.ts";
import { startContractGateway } from "./fixtures/contract_gateway.ts";
import { startTcpRelay } from "./fixtures/tcp_relay.ts";

const T = 5_000;
/** Window in which bytes must NOT arrive while blackholed (a negative check needs some window). */
const SILENCE_MS = 300;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface EchoServer {
  port: number;
  close(): Promise<void>;
}

function startEchoServer(): EchoServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const serve = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        let offset = 0;
        while (offset < n) offset += await conn.write(buffer.subarray(offset, n));
      }
    } catch {
      // Reset by the relay's cut.
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const loop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      conns.add(conn);
      tasks.push(serve(conn));
    }
  })();
  return {
    port: listener.addr.port,
    close: async () => {
      listener.close();
      for (const conn of conns) conn.close();
      await deadline(Promise.all([loop, ...tasks]), T, "echo server close");
    },
  };
}

async function roundTrip(conn: Deno.Conn, text: string): Promise<string> {
  await conn.write(encoder.encode(text));
  const buffer = new Uint8Array(1024);
  const n = await deadline(conn.read(buffer), T, "echo");
  assert.notEqual(n, null);
  return decoder.decode(buffer.subarray(0, n!));
}

Deno.test("startTcpRelay() relays bytes and cut() closes every connection on both sides", async () => {
  const echo = startEchoServer();
  const relay = await startTcpRelay({ targetPort: echo.port });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
  let second: Deno.Conn | undefined;
  try {
    assert.equal(await roundTrip(client, "hello"), "hello");
    assert.equal(relay.connections, 1);
    relay.cut();
    assert.equal(relay.connections, 0);
    const n = await deadline(client.read(new Uint8Array(16)), T, "EOF after cut").catch(() => null);
    assert.equal(n, null);
    // The relay still accepts new connections after a cut.
    second = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
    assert.equal(await roundTrip(second, "again"), "again");
    assert.equal(relay.accepted, 2);
  } finally {
    client.close();
    second?.close();
    await relay.close();
    await echo.close();
  }
});

Deno.test("startTcpRelay() blackhole() holds bytes with the socket open and restore() delivers them", async () => {
  const echo = startEchoServer();
  const relay = await startTcpRelay({ targetPort: echo.port });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
  try {
    assert.equal(await roundTrip(client, "a"), "a");
    relay.blackhole();
    assert.equal(relay.blackholed, true);
    await client.write(encoder.encode("b"));
    const buffer = new Uint8Array(16);
    const read = client.read(buffer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silent = await Promise.race([
      read.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), SILENCE_MS)),
    ]);
    clearTimeout(timer);
    assert.equal(silent, true, "bytes passed a blackholed relay");
    assert.equal(relay.connections, 1, "the blackhole closed the link");
    relay.restore();
    const n = await deadline(read, T, "held bytes");
    assert.equal(decoder.decode(buffer.subarray(0, n!)), "b");
    assert.equal(await roundTrip(client, "c"), "c");
  } finally {
    client.close();
    await relay.close();
    await echo.close();
  }
});

Deno.test("startTcpRelay() cut() ends blackholed connections without leaking", async () => {
  const echo = startEchoServer();
  const relay = await startTcpRelay({ targetPort: echo.port });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
  try {
    await relay.waitForConnections(1, T);
    relay.blackhole();
    await client.write(encoder.encode("held"));
    relay.cut();
    assert.equal(relay.connections, 0);
    const n = await deadline(client.read(new Uint8Array(16)), T, "EOF after cut").catch(() => null);
    assert.equal(n, null);
  } finally {
    client.close();
    await relay.close();
    await echo.close();
  }
});

Deno.test("startTcpRelay() rejects a bad target port", async () => {
  await assert.rejects(startTcpRelay({ targetPort: 0 }), RangeError);
});

Deno.test("startTcpRelay() blackhole() silences a WebSocket tunnel that stays open", async () => {
  const gateway = await startContractGateway({ contract: "A" });
  const relay = await startTcpRelay({ targetPort: gateway.port });
  const ws = new WebSocket(`ws://127.0.0.1:${relay.port}/reverse-proxy/ws`);
  const closed = new Promise<void>((resolve) => ws.onclose = () => resolve());
  const frames: string[] = [];
  ws.onmessage = (event) => frames.push(event.data as string);
  try {
    await deadline(new Promise((resolve) => ws.onopen = resolve), T, "open");
    ws.send(JSON.stringify({ type: "register", sessionId: "s", server: { name: "x" } }));
    const sessionId = await gateway.waitForRegistered(T);
    relay.blackhole();
    ws.send(JSON.stringify({ type: "heartbeat", sessionId }));
    await assert.rejects(
      gateway.waitUntil(() => gateway.heartbeatsReceived > 0, SILENCE_MS),
      { name: "TimeoutError" },
    );
    assert.equal(ws.readyState, WebSocket.OPEN);
    relay.restore();
    await gateway.waitUntil(() => gateway.heartbeatsReceived === 1, T, "held heartbeat");
  } finally {
    ws.close();
    await deadline(closed, T, "client close");
    await relay.close();
    await gateway.close();
  }
});
