// Attack: requests without a token and with malformed targets (bad percent-escapes, huge paths, a huge
// Origin on a preflight). Each gets a 4xx, never a 500, and serve writes nothing above debug for them,
// every logged value bounded; another owner's calls through a real tunnel go on.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { malformedUrls } from "./scenarios/malformed_url.ts";

/** Longest string field a debug record about an unauthenticated request may hold (200 + an ellipsis). */
const MAX_FIELD = 220;

Deno.test("malformed URLs without a token get 400 (431 past the header limit), never 500, and log nothing above debug", async () => {
  const run = await runAttack(malformedUrls);
  assert.deepEqual(brokenBounds(run), []);
  const { cases, burst, records } = run.observed;
  for (const { head, expected, got } of cases) assert.equal(got, expected, head.slice(0, 80));
  assert.ok(burst.every((status) => !/^HTTP\/1\.1 5/.test(status)), burst.join(", "));
  assert.ok(records.length > 0, "the refusals were logged at debug");
  assert.deepEqual(records.filter((r) => r.level !== "debug"), []);
  for (const record of records) {
    for (const [key, value] of Object.entries(record)) {
      if (key === "message" || typeof value !== "string") continue;
      assert.ok(value.length <= MAX_FIELD, `${key} holds ${value.length} characters`);
    }
    assert.ok(String(record.message).length <= 2 * MAX_FIELD + 200, "a bounded message");
  }
});
