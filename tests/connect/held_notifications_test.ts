// The gate that holds a new server process's notifications until its first registration.

import assert from "node:assert/strict";
import { HeldNotifications } from "../../lib/connect/held_notifications.ts";
import type { ServerMessage } from "../../lib/connect/local_session.ts";
import { createConnectMetrics } from "../../lib/connect/metrics.ts";

function notification(
  method: string,
  text = `{"jsonrpc":"2.0","method":"${method}"}`,
): ServerMessage {
  return { kind: "notification", method, text };
}

function gate(
  options: { deliverable?: () => boolean; maxFrames?: number; maxBytes?: number } = {},
) {
  const sent: ServerMessage[] = [];
  const metrics = createConnectMetrics();
  const held = new HeldNotifications({
    forward: (message) => void sent.push(message),
    deliverable: options.deliverable ?? (() => false),
    replayLimits: { maxFrames: options.maxFrames ?? 100, maxBytes: options.maxBytes ?? 1 << 20 },
    superseded: metrics.server("git").notificationsSuperseded,
    label: "git",
  });
  return { held, sent, metrics };
}

Deno.test("HeldNotifications holds notifications until registered(), then forwards them in order", () => {
  const { held, sent } = gate();
  held.fromServer(notification("notifications/message", "1"));
  held.fromServer(notification("notifications/resources/updated", "2"));
  assert.equal(sent.length, 0);
  assert.equal(held.registered(), 0);
  assert.deepEqual(sent.map((m) => m.text), ["1", "2"]);
  held.fromServer(notification("notifications/message", "3"));
  assert.deepEqual(sent.map((m) => m.text), ["1", "2", "3"], "after registration messages pass");
});

Deno.test("HeldNotifications counts list_changed from before the registration as superseded, never forwards them", () => {
  const { held, sent, metrics } = gate();
  for (const kind of ["tools", "tools", "resources", "prompts"]) {
    held.fromServer(notification(`notifications/${kind}/list_changed`));
  }
  held.registered();
  assert.equal(sent.length, 0);
  assert.equal(metrics.server("git").notificationsSuperseded.value, 4);
  assert.match(metrics.render(), /^mcp_rproxy_notifications_superseded_total\{server="git"\} 4$/m);
  // After the registration a list_changed is news: it passes.
  held.fromServer(notification("notifications/tools/list_changed"));
  assert.equal(sent.length, 1);
});

Deno.test("HeldNotifications passes responses and requests at once; only notifications wait", () => {
  const { held, sent } = gate();
  held.fromServer({ kind: "request", id: 1, method: "roots/list", text: "r" });
  held.fromServer({ kind: "response", id: 2, text: "a" });
  assert.deepEqual(sent.map((m) => m.text), ["r", "a"]);
});

Deno.test("HeldNotifications loses what exceeds its frame and byte bounds and says how many", () => {
  const frames = gate({ maxFrames: 2 });
  for (let i = 0; i < 5; i++) frames.held.fromServer(notification("notifications/message", `${i}`));
  assert.equal(frames.held.registered(), 3);
  assert.deepEqual(frames.sent.map((m) => m.text), ["0", "1"]);
  const bytes = gate({ maxBytes: 10 });
  bytes.held.fromServer(notification("notifications/message", "123456"));
  bytes.held.fromServer(notification("notifications/message", "7890ab"));
  assert.equal(bytes.held.registered(), 1);
  assert.deepEqual(bytes.sent.map((m) => m.text), ["123456"]);
});

Deno.test("HeldNotifications forwards what it held first once the link takes messages before registration (contract B)", () => {
  let deliverable = false;
  const { held, sent } = gate({ deliverable: () => deliverable });
  held.fromServer(notification("notifications/message", "early"));
  held.fromServer(notification("notifications/tools/list_changed", "moot"));
  deliverable = true;
  held.fromServer(notification("notifications/message", "during"));
  assert.deepEqual(sent.map((m) => m.text), ["early", "during"]);
});

Deno.test("HeldNotifications.discard() counts what a server that died unregistered leaves behind", () => {
  const { held, sent } = gate({ maxFrames: 1 });
  held.fromServer(notification("notifications/message", "a"));
  held.fromServer(notification("notifications/message", "b"));
  assert.equal(held.discard(), 2);
  assert.equal(sent.length, 0);
});
