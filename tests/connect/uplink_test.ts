// Tests of Uplink's reconnect timing against a real WebSocket gateway: the drop of a healthy link is
// retried at once (within the 50 ms jitter), while a gateway that refuses, or takes links and drops them
// at once, is dialed with the normal, growing backoff (no hot loop).

import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { Uplink, type UplinkMember } from "../../lib/connect/uplink.ts";
import { TransportChoice } from "../../lib/connect/transport_choice.ts";
import { Tunnel } from "../../lib/connect/tunnel.ts";
import type { ConnectSettings } from "../../lib/connect/settings.ts";
import type { LinkChannel } from "../../lib/connect/link_channel.ts";
import { setupLogging, shutdownLogging } from "../../lib/util/log.ts";
import { deadline } from "../../lib/util/delay.ts";
import { type ScriptedPeer, startScriptedGateway } from "../fixtures/scripted_gateway.ts";

/** The top of what `Math.random` returns: the longest wait the jitter can draw. */
const TOP = 1 - Number.EPSILON;
const WAIT_MS = 10_000;

function settingsFor(url: string, reconnectDelay: number): ConnectSettings {
  return {
    servers: [],
    manyServers: false,
    gateway: url,
    gatewayUrl: new URL(`${url.replace(/^http/, "ws")}/reverse-proxy/ws`),
    reconnectDelay,
    maxRetries: 0,
    keepalive: 30,
    logLevel: "info",
    logFormat: "json",
  };
}

/** One uplink with one member, the reconnect waits it logged, and when each link opened at the gateway. */
async function withUplink(
  options: {
    reconnectDelay: number;
    random: () => number;
    healthyAfterMs?: number;
    healthyWithCallsAfterMs?: number;
    /** What the gateway does with each `register`; acks it by default. */
    onRegister?: (peer: ScriptedPeer) => void;
  },
  body: (rig: {
    attach(): Promise<LinkChannel>;
    peers: ScriptedPeer[];
    opened: number[];
    waits: () => number[];
    nextPeer(index: number): Promise<ScriptedPeer>;
  }) => Promise<void>,
): Promise<void> {
  const records: LogRecord[] = [];
  await setupLogging({ level: "info", format: "json", sink: (r) => records.push(r) });
  const opened: number[] = [];
  await using gateway = startScriptedGateway({
    onOpen: () => opened.push(performance.now()),
    onFrame(frame, peer) {
      if (frame.type !== "register") return;
      if (options.onRegister) return options.onRegister(peer);
      peer.send({ type: "register_ack", status: "success", sessionId: `gw-${peer.index}` });
    },
  });
  const stop = new AbortController();
  const settings = settingsFor(gateway.url, options.reconnectDelay);
  const uplink = new Uplink({
    settings,
    transport: new TransportChoice({ setting: "websocket", url: settings.gatewayUrl, retryMs: 1 }),
    signal: stop.signal,
    askChannels: false,
    clientSessionId: "uplink-test",
    random: options.random,
    ...(options.healthyAfterMs === undefined ? {} : { healthyAfterMs: options.healthyAfterMs }),
    ...(options.healthyWithCallsAfterMs === undefined
      ? {}
      : { healthyWithCallsAfterMs: options.healthyWithCallsAfterMs }),
  });
  const member: UplinkMember = {
    key: "",
    describe: () => ({ name: "uplink-test", description: "test" }),
    tunnel: new Tunnel({ signal: stop.signal }),
  };
  let current: LinkChannel | undefined;
  try {
    await body({
      attach: async () => current = await uplink.attach(member, stop.signal),
      peers: gateway.peers.items,
      opened,
      waits: () =>
        records.filter((r) => r.properties.event === "reconnect_scheduled").map((r) =>
          Number(r.properties.waitMs)
        ),
      nextPeer: (index) =>
        gateway.peers.waitFor((p) => p.index === index, WAIT_MS, `link ${index} at the gateway`),
    });
  } finally {
    stop.abort(new Error("test over"));
    uplink.close();
    if (current !== undefined) await deadline(current.ended, WAIT_MS, "the link to end");
    await shutdownLogging();
  }
}

Deno.test("Uplink dials again within 50 ms after a healthy link drops, even at the top of the jitter", async () => {
  await withUplink({ reconnectDelay: 1, random: () => TOP, healthyAfterMs: 0 }, async (rig) => {
    const first = await rig.attach();
    const closedAt = performance.now();
    rig.peers[0]!.close(1011, "gateway dropped the link");
    await deadline(first.ended, WAIT_MS, "the first link to end");
    await rig.attach();
    const tookMs = rig.opened[1]! - closedAt;
    assert.equal(rig.waits().length, 1);
    assert.ok(rig.waits()[0]! <= 50, `first attempt waited ${rig.waits()[0]} ms`);
    // The normal schedule would have waited 999 ms here.
    assert.ok(tookMs < 500, `re-registered ${tookMs.toFixed(0)} ms after the drop`);
  });
});

Deno.test("Uplink counts a link that carried a call as healthy once it was up healthyWithCallsAfterMs", async () => {
  await withUplink(
    { reconnectDelay: 1, random: () => TOP, healthyAfterMs: 60_000, healthyWithCallsAfterMs: 0 },
    async (rig) => {
      const first = await rig.attach();
      const peer = rig.peers[0]!;
      peer.send({
        type: "request",
        sessionId: "gw-1",
        payload: { jsonrpc: "2.0", id: 1, method: "tools/list" },
      });
      // Frames of one socket arrive in order: the call is routed before the close is seen.
      peer.close(1011, "gateway dropped the link");
      await deadline(first.ended, WAIT_MS, "the first link to end");
      await rig.attach();
      assert.ok(rig.waits()[0]! <= 50, `first attempt waited ${rig.waits()[0]} ms`);
    },
  );
});

Deno.test("Uplink backs off normally after a link that was up briefly and carried no call", async () => {
  await withUplink(
    { reconnectDelay: 0.2, random: () => TOP, healthyAfterMs: 60_000, healthyWithCallsAfterMs: 0 },
    async (rig) => {
      const first = await rig.attach();
      rig.peers[0]!.close(1011, "gateway dropped the link");
      await deadline(first.ended, WAIT_MS, "the first link to end");
      await rig.attach();
      assert.deepEqual(rig.waits(), [199], "the normal backoff's first step");
    },
  );
});

Deno.test("Uplink backs off with growing waits against a gateway that drops every link at once", async () => {
  // Registered, then dropped before it was healthy: each time it counts as a failure, not a fresh start.
  await withUplink(
    {
      reconnectDelay: 0.1,
      random: () => 0.5,
      onRegister(peer) {
        peer.send({ type: "register_ack", status: "success", sessionId: `gw-${peer.index}` });
        if (peer.index < 4) peer.close(1011, "dropped at once");
      },
    },
    async (rig) => {
      for (let index = 1; index < 4; index++) {
        const channel = await rig.attach();
        await deadline(channel.ended, WAIT_MS, `link ${index} to end`);
      }
      await rig.attach();
      assert.deepEqual(rig.waits(), [50, 100, 200]);
      const gaps = rig.opened.slice(1).map((at, i) => at - rig.opened[i]!);
      gaps.forEach((gap, i) => assert.ok(gap >= 45 * 2 ** i, `gap ${i + 1}: ${gap.toFixed(0)} ms`));
    },
  );
});

Deno.test("Uplink backs off with growing waits against a gateway that refuses every registration", async () => {
  // Never registered, so never healthy: the normal backoff from its first step, no quick schedule.
  await withUplink(
    {
      reconnectDelay: 0.1,
      random: () => 0.5,
      healthyAfterMs: 0,
      onRegister: (peer) => peer.close(1011, "refused"),
    },
    async (rig) => {
      const attached = rig.attach().catch((error: unknown) => error);
      await rig.nextPeer(4);
      assert.deepEqual(rig.waits(), [50, 100, 200]);
      const gaps = rig.opened.slice(1).map((at, i) => at - rig.opened[i]!);
      gaps.forEach((gap, i) => assert.ok(gap >= 45 * 2 ** i, `gap ${i + 1}: ${gap.toFixed(0)} ms`));
      void attached;
    },
  );
});
