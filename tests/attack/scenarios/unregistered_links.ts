// Attack: authenticated links that never register but keep sending heartbeats: many at once against a
// short --register-timeout, and 33 against the owner's --max-sessions-per-owner of 32.

import { deadline } from "../../../lib/util/delay.ts";
import { ATTACK_TOKENS, type ServeUnderAttack } from "../harness.ts";
import type { AttackScenario } from "../run_attack.ts";

const MIB = 1024 * 1024;
export const REGISTER_TIMEOUT_S = 2;
export const SQUATTERS = 500;
const HEARTBEAT_EVERY_MS = 200;

/** How a squatter's link ended. */
export interface SquatterClose {
  code: number;
  reason: string;
  afterMs: number;
}

interface Squatter {
  socket: WebSocket;
  opened: Promise<void>;
  closed: Promise<SquatterClose>;
  replies: number;
  stop(): void;
}

/** A link with the attacker's token that sends a heartbeat every 200 ms and never registers. */
function squat(serve: ServeUnderAttack, held: AsyncDisposableStack): Squatter {
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
  held.defer(async () => {
    squatter.stop();
    await deadline(squatter.closed, 5_000, "a squatter's link to close").catch(() => {});
  });
  return squatter;
}

/** What the heartbeat squatters saw. */
export interface HeartbeatSquattersObserved {
  closes: SquatterClose[];
  /** Squatters whose heartbeats got at least 3 replies before their close. */
  answered: number;
}

/** 500 links that send a heartbeat every 200 ms and never register, against --register-timeout 2. */
export const heartbeatSquatters: AttackScenario<HeartbeatSquattersObserved> = {
  name: `${SQUATTERS} unregistered links that only send heartbeats`,
  flags: ["--register-timeout", String(REGISTER_TIMEOUT_S), "--max-sessions-per-owner", "1000"],
  rssBound: 64 * MIB,
  async attack({ serve, held }) {
    const squatters = Array.from({ length: SQUATTERS }, () => squat(serve, held));
    await deadline(Promise.all(squatters.map((s) => s.opened)), 10_000, "500 links to open");
    const closes = await deadline(
      Promise.all(squatters.map((s) => s.closed)),
      REGISTER_TIMEOUT_S * 1000 + 5_000,
      "the register timeout",
    );
    return { closes, answered: squatters.filter((s) => s.replies >= 3).length };
  },
};

/** What the 33rd squatter saw, and whether the 32 before it were still up. */
export interface SessionLimitObserved {
  refused: SquatterClose;
  othersOpen: boolean;
}

/** 32 unregistered links fill the owner's --max-sessions-per-owner; a 33rd is refused. */
export const sessionLimitSquatters: AttackScenario<SessionLimitObserved> = {
  name: "33 unregistered links against --max-sessions-per-owner 32",
  flags: ["--register-timeout", "5"],
  rssBound: 64 * MIB,
  async attack({ serve, held }) {
    const squatters = Array.from({ length: 32 }, () => squat(serve, held));
    await deadline(Promise.all(squatters.map((s) => s.opened)), 10_000, "32 links to open");
    const extra = squat(serve, held);
    const refused = await deadline(extra.closed, 5_000, "the 33rd link's refusal");
    return {
      refused,
      othersOpen: squatters.every((s) => s.socket.readyState === WebSocket.OPEN),
    };
  },
};
