// Attacks by peers that stop reading: MCP clients that never read their 40 MiB JSON answers, and a link
// that reads nothing while its owner's clients send it 40 MiB calls. What waits for them is charged to the
// owner's share: past it answers are refused (503) and the link is closed (1013); serve's RSS holds and
// another owner is served.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { deafLink, unreadJsonAnswers } from "./scenarios/unread_answers.ts";

Deno.test("JSON answers their clients never read are charged to the owner: past its share they are refused, and serve's RSS holds", async () => {
  const run = await runAttack(unreadJsonAnswers);
  assert.deepEqual(brokenBounds(run), []);
  // 48 MiB hold one 40 MiB answer: most of the eight are refused.
  assert.ok(run.observed.refused >= 1, `${run.observed.refused} answers refused`);
});

Deno.test("a link that stops reading is closed 1013 once what it has not taken fills its owner's share, and serve's RSS holds", async () => {
  const run = await runAttack(deafLink);
  assert.deepEqual(brokenBounds(run), []);
  assert.equal(run.observed.closed.owner, "mallory");
});
