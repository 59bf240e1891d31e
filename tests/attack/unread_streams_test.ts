// Attack: GET streams that are never read while the server behind them floods notifications. Each stream
// is bounded by --max-client-buffer, a token by --max-streams-per-token, and the owner by its memory share:
// past it the owner's oldest unread streams are cut. serve stays within its budget, another owner is
// served meanwhile, and the memory comes back afterwards.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { mib } from "./harness.ts";
import { UNREAD_STREAMS_SHARE, unreadStreams } from "./scenarios/unread_streams.ts";

Deno.test("unread GET streams under a notification flood: serve stays within its budget, cuts the owner's streams, serves the victim, gives the memory back", async () => {
  const run = await runAttack(unreadStreams);
  assert.deepEqual(brokenBounds(run), []);
  // What serve counted as held for the attacker stayed within its share, and the share was enforced by
  // cutting its oldest unread streams.
  assert.ok(
    run.peakHeld <= UNREAD_STREAMS_SHARE,
    `serve held ${mib(run.peakHeld)} for the attacker`,
  );
  assert.ok(run.observed.cut.length > 0, "no unread stream was cut for the owner's share");
});
