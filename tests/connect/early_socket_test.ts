// The early socket (lib/connect/early_socket.ts): what happened before a link took it reaches the link in
// order, after the link holds the socket; which dials may take it; and one nobody takes is closed.

import assert from "node:assert/strict";
import { EarlySocket } from "../../lib/connect/early_socket.ts";
import type {
  LinkSocket,
  LinkSocketEvents,
  LinkSocketOptions,
  SocketEnd,
} from "../../lib/connect/link_socket.ts";

const OPTIONS: LinkSocketOptions = {
  url: new URL("ws://127.0.0.1:9/reverse-proxy/ws"),
  headers: { "X-Session-ID": "abc", Authorization: "Bearer t" },
};

/** An opener whose socket events the test fires by hand, and that records closes. */
function opener() {
  const state: { events?: LinkSocketEvents; closes: number } = { closes: 0 };
  const socket: LinkSocket = {
    bufferedAmount: 0,
    isOpen: true,
    send: () => true,
    close: () => {
      state.closes++;
    },
    settled: Promise.resolve(),
  };
  const open = (_options: LinkSocketOptions, events: LinkSocketEvents) => {
    state.events = events;
    return socket;
  };
  return { open, socket, state };
}

Deno.test("an early socket replays what happened before it was taken, in order, once the link holds it", async () => {
  const { open, socket, state } = opener();
  const early = EarlySocket.open(open, OPTIONS)!;
  state.events!.onOpen();
  state.events!.onMessage("first");
  const seen: string[] = [];
  const link: { socket?: LinkSocket } = {};
  const events: LinkSocketEvents = {
    onOpen: () => seen.push(`open (link holds the socket: ${link.socket === socket})`),
    onMessage: (data) => seen.push(String(data)),
    onEnd: (end: SocketEnd) => seen.push(`end ${end.kind}`),
  };
  assert.ok(early.fits(OPTIONS));
  link.socket = early.take(events);
  assert.deepEqual(seen, [], "nothing is delivered inside take");
  state.events!.onMessage("second");
  await Promise.resolve();
  state.events!.onMessage("third");
  state.events!.onEnd({ kind: "closed", code: 1000, reason: "" });
  assert.deepEqual(seen, [
    "open (link holds the socket: true)",
    "first",
    "second",
    "third",
    "end closed",
  ]);
  assert.equal(early.fits(OPTIONS), false, "taken once");
  early.close();
  assert.equal(state.closes, 0, "a taken socket is the link's to close");
});

Deno.test("an early socket fits only the same dial, and only while it can still register", () => {
  const fresh = () => {
    const { open, state } = opener();
    return { early: EarlySocket.open(open, OPTIONS)!, state };
  };
  assert.equal(
    fresh().early.fits({ ...OPTIONS, url: new URL("ws://127.0.0.1:10/reverse-proxy/ws") }),
    false,
  );
  assert.equal(
    fresh().early.fits({ ...OPTIONS, headers: { ...OPTIONS.headers, Authorization: "Bearer u" } }),
    false,
  );
  const refused = fresh();
  refused.state.events!.onEnd({ kind: "http-status", status: 403 });
  assert.ok(
    refused.early.fits(OPTIONS),
    "a refused upgrade is the gateway's answer: not tried twice",
  );
  const unreachable = fresh();
  unreachable.state.events!.onEnd({ kind: "failed", cause: "refused", message: "refused" });
  assert.equal(unreachable.early.fits(OPTIONS), false, "a failed connection is tried again");
  const closed = fresh();
  closed.state.events!.onOpen();
  closed.state.events!.onEnd({ kind: "closed", code: 4008, reason: "register timeout" });
  assert.equal(closed.early.fits(OPTIONS), false, "a closed one is tried again");
});

Deno.test("an early socket nobody took is closed, and one that cannot start is none", () => {
  const { open, state } = opener();
  const early = EarlySocket.open(open, OPTIONS)!;
  early.close();
  assert.equal(state.closes, 1);
  assert.equal(early.fits(OPTIONS), false);
  const throwing = () => {
    throw new Deno.errors.NotCapable('Requires net access to "127.0.0.1:9"');
  };
  assert.equal(EarlySocket.open(throwing, OPTIONS), undefined);
});
