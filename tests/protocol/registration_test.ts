// Unit tests of the registration envelopes: register, register_ack, register_complete, resume requests.

import assert from "node:assert/strict";
import { parseFrame } from "../../lib/protocol/frames.ts";
import {
  encodeRegister,
  encodeRegisterAck,
  MAX_DESCRIPTION_LENGTH,
  MAX_LISTED_CLIENT_SESSIONS,
  readRegister,
  readRegisterAck,
  readResumeRequest,
} from "../../lib/protocol/registration.ts";

function frameOf(value: unknown) {
  const frame = parseFrame(JSON.stringify(value));
  if (frame instanceof Error) throw frame;
  return frame;
}

Deno.test("readResumeRequest() takes a well-formed request and ignores anything else", () => {
  assert.deepEqual(readResumeRequest({ sessionId: "s", token: "t", ack: 0 }), {
    sessionId: "s",
    token: "t",
    ack: 0,
    overflowed: false,
  });
  assert.equal(
    readResumeRequest({ sessionId: "s", token: "t", ack: 2, overflowed: true })?.overflowed,
    true,
  );
  for (
    const bad of [
      undefined,
      null,
      "s",
      [],
      { sessionId: "", token: "t", ack: 0 },
      { sessionId: "s", ack: 0 },
      { sessionId: "s", token: "t", ack: -1 },
      { sessionId: "s", token: "t", ack: 1.5 },
      { sessionId: "s", token: "t" },
    ]
  ) {
    assert.equal(readResumeRequest(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("readRegister() trims and bounds the name and description it keeps", () => {
  const padded = " ".repeat(1_000_000);
  const register = readRegister(frameOf({
    type: "register",
    sessionId: "c1",
    server: {
      name: `${padded}git${padded}`,
      description: `${padded}${"d".repeat(5000)}`,
      protocol: "mcp",
    },
  }));
  assert.ok(!(register instanceof Error));
  assert.equal(register.server.name, "git");
  assert.equal(register.server.description.length, MAX_DESCRIPTION_LENGTH);
  assert.equal(register.server.protocol, "mcp");
});

Deno.test("readRegister() refuses a missing, empty or too long name with a message", () => {
  const cases: [unknown, RegExp][] = [
    [{}, /string 'name'/],
    [{ name: 7 }, /string 'name'/],
    [{ name: "   " }, /empty/],
    [{ name: "x".repeat(129) }, /129 characters/],
    [{ name: "ok", isolation: "nope" }, /isolation/],
  ];
  for (const [server, message] of cases) {
    const register = readRegister(frameOf({ type: "register", server }));
    assert.ok(register instanceof Error, JSON.stringify(server));
    assert.match(register.message, message);
  }
});

Deno.test("encodeRegister() and readRegister() agree, extensions and resume included", () => {
  const text = encodeRegister({
    sessionId: "c1",
    channel: "git",
    server: { name: "git", description: "d", protocol: "mcp", isolation: "per-client" },
    resume: { sessionId: "s", token: "t", ack: 4, overflowed: false },
    extensions: new Set(["channels"]),
  });
  const register = readRegister(frameOf(JSON.parse(text)));
  assert.ok(!(register instanceof Error));
  assert.equal(register.channel, "git");
  assert.equal(register.server.isolation, "per-client");
  assert.deepEqual(register.resume, { sessionId: "s", token: "t", ack: 4, overflowed: false });
  // A per-client server asks for the extension it cannot run without.
  assert.deepEqual([...register.extensions], ["channels", "client-sessions"]);
});

Deno.test("readRegisterAck(): the open client sessions are read whole or not at all, never cut short", () => {
  const ackListing = (clientSessions: unknown[]) =>
    readRegisterAck(
      frameOf({ type: "register_ack", status: "success", sessionId: "gw", clientSessions }),
      "mine",
    ).clientSessions;
  const ids = (count: number) => Array.from({ length: count }, (_, i) => `s${i}`);
  assert.deepEqual(ackListing([]), [], "none open: every instance may stop");
  assert.deepEqual(ackListing(ids(MAX_LISTED_CLIENT_SESSIONS)), ids(MAX_LISTED_CLIENT_SESSIONS));
  // Cut to its first entries, a longer list would make connect stop the instances of the others.
  assert.equal(ackListing(ids(MAX_LISTED_CLIENT_SESSIONS + 1)), undefined);
  // An id connect could never hold is not one of its instances.
  assert.deepEqual(ackListing(["a", 7, "x".repeat(257), "b"]), ["a", "b"]);
});

Deno.test("encodeRegisterAck() and readRegisterAck() agree; a missing session id falls back", () => {
  const text = encodeRegisterAck({
    sessionId: "gw-1",
    status: "success",
    name: "git-2",
    mcpUrl: "http://x/servers/git-2/mcp",
    extensions: new Set(["resume", "large-frames"]),
    maxFrameBytes: 1000,
    resume: { token: "secret", windowMs: 60_000 },
  });
  const ack = readRegisterAck(frameOf(JSON.parse(text)), "mine");
  assert.equal(ack.sessionId, "gw-1");
  assert.equal(ack.name, "git-2");
  assert.deepEqual([...ack.extensions].sort(), ["large-frames", "resume"]);
  assert.deepEqual(ack.resume, { token: "secret", windowMs: 60_000 });
  assert.equal(
    readRegisterAck(frameOf({ type: "register_ack", status: "success" }), "mine").sessionId,
    "mine",
  );
});
