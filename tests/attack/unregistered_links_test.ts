// Attack: authenticated links that never register but keep sending heartbeats. Each is closed with 4008
// "register timeout" within --register-timeout whatever it sends, and until then it holds a place under
// its owner's --max-sessions-per-owner (the one past the limit is refused with 4029), while another
// owner's calls through a real tunnel go on.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { deadline } from "../../lib/util/delay.ts";
import { ATTACK_TOKENS, type ServeUnderAttack, startServe, startVictim } from "./harness.ts";

const REGISTER_TIMEOUT_S = 2;
const HEARTBEAT_EVERY_MS = 200;

interface Squatter {
  socket: WebSocket;
  opened: Promise<void>;
  closed: Promise<{ code: number; reason: string; afterMs: number }>;
  replies: number;
  stop(): void;
}

/** A link with the attacker's token that sends a heartbeat every 200 ms and never registers. */
function squat(serve: ServeUnderAttack): Squatter {
  const socket = new WebSocket(serve.wsUrl, {
    headers: { Authorization: `Bearer ${ATTACK_TOKENS.attacker}` },
  });
  let timer: ReturnType<typeof setInterval> | undefined;
  const squatter: Squatter = {
    socket,
    replies: 0,
    opened: new Promise((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error("the link was not accepted")), {
        once: true,
      });
    }),
    closed: new Promise((resolve) => {
      let openedAt = 0;
      socket.addEventListener("open", () => {
        openedAt = Date.now();
        timer = setInterval(() => {
          if (socket.readyState === WebSocket.OPEN) {
            socket.send(JSON.stringify({ type: "heartbeat", sessionId: "" }));
          }
        }, HEARTBEAT_EVERY_MS);
      });
      socket.addEventListener("message", () => squatter.replies++);
      socket.addEventListener("close", (event) => {
        clearInterval(timer);
        resolve({ code: event.code, reason: event.reason, afterMs: Date.now() - openedAt });
      });
    }),
    stop() {
      clearInterval(timer);
      if (socket.readyState !== WebSocket.CLOSED) socket.close();
    },
  };
  squatter.opened.catch(() => {});
  return squatter;
}

Deno.test("500 links that only send heartbeats are closed 4008 within --register-timeout; another owner is served", async () => {
  await using serve = await startServe([
    "--register-timeout",
    String(REGISTER_TIMEOUT_S),
    "--max-sessions-per-owner",
    "1000",
  ]);
  await using victim = await startVictim(serve);
  await victim.start();
  const squatters = Array.from({ length: 500 }, () => squat(serve));
  try {
    await deadline(Promise.all(squatters.map((s) => s.opened)), 10_000, "500 links to open");
    const closes = await deadline(
      Promise.all(squatters.map((s) => s.closed)),
      REGISTER_TIMEOUT_S * 1000 + 5_000,
      "the register timeout",
    );
    for (const close of closes) {
      assert.equal(close.code, CloseCode.RegisterTimeout);
      assert.equal(close.reason, "register timeout");
      // Within the timeout, plus a little for the close to travel (500 at once on 2 cores).
      assert.ok(close.afterMs < REGISTER_TIMEOUT_S * 1000 + 1_500, `closed after ${close.afterMs}`);
    }
    // Their heartbeats were answered, and still did not keep them alive.
    const answered = squatters.filter((s) => s.replies >= 3).length;
    assert.ok(answered >= 450, `${answered} of 500 links had heartbeat replies`);
    const report = await victim.stop();
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
    assert.ok(report.ok > 10);
  } finally {
    for (const squatter of squatters) squatter.stop();
  }
});

Deno.test("an owner's unregistered links count against its limit: the 33rd is refused with 4029", async () => {
  await using serve = await startServe(["--register-timeout", "5"]);
  await using victim = await startVictim(serve);
  await victim.start();
  const squatters = Array.from({ length: 32 }, () => squat(serve));
  let extra: Squatter | undefined;
  try {
    await deadline(Promise.all(squatters.map((s) => s.opened)), 10_000, "32 links to open");
    extra = squat(serve);
    const refused = await deadline(extra.closed, 5_000, "the 33rd link's refusal");
    assert.equal(refused.code, CloseCode.TooManySessions);
    assert.equal(refused.reason, "too many sessions for this owner");
    // The 32 are still up (until their register timeout), and the victim's owner was never counted.
    assert.ok(squatters.every((s) => s.socket.readyState === WebSocket.OPEN));
    const report = await victim.stop();
    assert.equal(report.failed, 0, `victim errors: ${report.errors.join("; ")}`);
  } finally {
    extra?.stop();
    for (const squatter of squatters) squatter.stop();
  }
});
