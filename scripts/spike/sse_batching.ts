// Measures the SSE link's client → gateway direction two ways, one frame per POST and a batch of what
// queued while the previous POST was in flight, beside the WebSocket link, direct and through Debian's
// tinyproxy: the figures behind the batching decision in docs/serve.md#the-sse-link.
//
//   deno run -A scripts/spike/sse_batching.ts [--frames 4000] [--rounds 300]
//
// Heartbeats are the probe: the gateway answers each with exactly one heartbeat, and nothing else runs.

import { parseArgs } from "node:util";
import { openWebSocket } from "../../lib/connect/link_socket.ts";
import type {
  LinkSocket,
  LinkSocketEvents,
  LinkSocketOptions,
} from "../../lib/connect/link_socket.ts";
import { openSseSocket, type SseLinkSocket } from "../../lib/connect/sse_link_socket.ts";
import { startGateway } from "../../lib/serve/gateway.ts";
import { createTokenStore } from "../../lib/serve/token_store.ts";
import { startTinyproxy } from "../../tests/fixtures/forward_proxy.ts";

const TOKEN = "tok-spike-0123456789";
const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "4000" },
    rounds: { type: "string", default: "300" },
    gateway: { type: "string" },
    via: { type: "string", default: "direct" },
  },
});
const FRAMES = Number(values.frames);
const ROUNDS = Number(values.rounds);

interface Variant {
  name: string;
  open: (options: LinkSocketOptions, events: LinkSocketEvents) => LinkSocket;
  path: string;
}

const variants: Variant[] = [
  { name: "websocket", open: openWebSocket, path: "ws" },
  {
    name: "sse, 1 frame per POST",
    open: (o, e) => openSseSocket({ ...o, maxBatchFrames: 1 }, e),
    path: "sse",
  },
  { name: "sse, batched", open: openSseSocket, path: "sse" },
];

function heartbeat(): string {
  return JSON.stringify({ type: "heartbeat", sessionId: "spike" });
}

/** Opens a registered link; `onFrame` sees every frame after the registration answer. */
async function openLink(base: string, variant: Variant) {
  let onFrame: (text: string) => void = () => {};
  const registered = Promise.withResolvers<void>();
  const ended = Promise.withResolvers<void>();
  const url = new URL(
    `${base.replace(/^http/, variant.path === "ws" ? "ws" : "http")}/reverse-proxy/${variant.path}`,
  );
  const socket = variant.open({ url, headers: { authorization: `Bearer ${TOKEN}` } }, {
    onOpen: () =>
      socket.send(JSON.stringify({
        type: "register",
        sessionId: "spike",
        server: {
          name: `spike-${crypto.randomUUID().slice(0, 8)}`,
          description: "spike",
          protocol: "mcp",
        },
      })),
    onMessage: (data) => {
      if (typeof data !== "string") return;
      if (data.includes('"register_ack"')) registered.resolve();
      else onFrame(data);
    },
    onEnd: (end) => {
      registered.reject(new Error(JSON.stringify(end)));
      ended.resolve();
    },
  });
  await registered.promise;
  return {
    socket,
    setOnFrame: (f: (text: string) => void) => onFrame = f,
    async close() {
      socket.close(1000, "done");
      await (socket as Partial<SseLinkSocket>).settled;
      await Promise.race([ended.promise, new Promise((r) => setTimeout(r, 500))]);
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(base: string, variant: Variant) {
  const link = await openLink(base, variant);
  try {
    // Latency: one heartbeat at a time.
    const rtts: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const answered = Promise.withResolvers<void>();
      link.setOnFrame((text) => text.includes('"heartbeat"') && answered.resolve());
      const start = performance.now();
      link.socket.send(heartbeat());
      await answered.promise;
      rtts.push(performance.now() - start);
    }
    rtts.sort((a, b) => a - b);
    // Throughput: FRAMES heartbeats at once, until every answer is back.
    let answers = 0;
    const all = Promise.withResolvers<void>();
    link.setOnFrame((text) => {
      if (text.includes('"heartbeat"') && ++answers === FRAMES) all.resolve();
    });
    const start = performance.now();
    for (let i = 0; i < FRAMES; i++) link.socket.send(heartbeat());
    await all.promise;
    const seconds = (performance.now() - start) / 1000;
    return { p50: percentile(rtts, 0.5), p99: percentile(rtts, 0.99), perSecond: FRAMES / seconds };
  } finally {
    await link.close();
  }
}

if (values.gateway !== undefined) {
  // A child: one path, as its environment sets it (Deno reads HTTP_PROXY once, for its first client).
  for (const variant of variants) {
    if (values.via === "tinyproxy" && variant.path === "ws") continue; // it cannot pass
    const r = await measure(values.gateway, variant);
    console.log(
      `| ${values.via} | ${variant.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${
        Math.round(r.perSecond)
      } |`,
    );
  }
} else {
  const gateway = await startGateway({
    tokens: await createTokenStore({ tokensFile: `${TOKEN}: spike\n` }),
    hostname: "127.0.0.1",
    port: 0,
    maxSessionsPerOwner: 100,
  });
  const tinyproxy = await startTinyproxy({ logLevel: "Connect" });
  try {
    console.log(
      `${ROUNDS} sequential round trips, then ${FRAMES} frames at once; Deno ${Deno.version.deno}`,
    );
    console.log("| path | variant | p50 ms | p99 ms | frames/s |");
    console.log("| --- | --- | --- | --- | --- |");
    for (const via of ["direct", "tinyproxy"]) {
      const env: Record<string, string> = via === "tinyproxy"
        ? { HTTP_PROXY: tinyproxy.url, NO_PROXY: "", DENO_NO_UPDATE_CHECK: "1" }
        : { NO_PROXY: "*" };
      const { code } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          import.meta.filename!,
          "--gateway",
          gateway.url,
          "--via",
          via,
          "--frames",
          String(FRAMES),
          "--rounds",
          String(ROUNDS),
        ],
        env,
        stdout: "inherit",
        stderr: "inherit",
      }).output();
      if (code !== 0) throw new Error(`The ${via} leg failed with exit code ${code}`);
    }
    // The proxied leg must really have gone through the proxy (its log keeps the last 64 KiB).
    if (!/Request .*POST/.test(tinyproxy.output())) {
      throw new Error("No POST went through tinyproxy");
    }
  } finally {
    await tinyproxy.stop();
    await gateway.close();
  }
}
