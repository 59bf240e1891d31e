// Attack: one client token holds GET streams on as many of its owner's sessions as it can open. It gets
// --max-streams-per-token of them and 429 for the rest, while another token of the same owner still opens
// a session and a stream and is served, another owner is served throughout, and the slots come back.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { SESSIONS, STREAMS_PER_TOKEN, streamsPerToken } from "./scenarios/streams_per_token.ts";

Deno.test("one token asking for GET streams on 1,024 sessions gets 16 and 429s; the owner's other token still gets its stream", async () => {
  const run = await runAttack(streamsPerToken);
  assert.deepEqual(brokenBounds(run), []);
  const { statuses, refusal, other } = run.observed;
  assert.deepEqual(statuses, {
    "HTTP/1.1 200 OK": STREAMS_PER_TOKEN,
    "HTTP/1.1 429 Too Many Requests": SESSIONS - STREAMS_PER_TOKEN,
  });
  assert.match(refusal, /^429 .*limit 16, --max-streams-per-token/);
  assert.deepEqual(other, { stream: "HTTP/1.1 200 OK", echo: "Echo: other client" });
});
