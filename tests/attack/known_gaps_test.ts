// Attacks serve does not withstand yet (docs/security.md, "Not bounded yet"), kept ready for the change
// that bounds them: each is ignored until then, and turns green when it is done.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { deafLink, unreadJsonAnswers } from "./scenarios/known_gaps.ts";

Deno.test({
  name: "JSON answers that their clients never read are bounded by the owner's share",
  ignore: true,
  async fn() {
    const run = await runAttack(unreadJsonAnswers);
    assert.deepEqual(brokenBounds(run), []);
  },
});

Deno.test({
  name: "calls sent to a link that stopped reading are bounded by the owner's share",
  ignore: true,
  async fn() {
    const run = await runAttack(deafLink);
    assert.deepEqual(brokenBounds(run), []);
  },
});
