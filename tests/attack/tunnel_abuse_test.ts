// Attacks from a token holder's own tunnels: resumable sessions that never acknowledge while their
// replay buffers are fed megabytes of non-Latin text, registrations carrying 20 MiB of description, and a
// flood of answers for ids never asked. Each against a real serve, with another owner's calls going on.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { neverAck, paddedRegister, unknownIds } from "./scenarios/tunnel_abuse.ts";

Deno.test("resumable sessions that never ack, fed 1 MiB notifications of non-Latin text: serve stays within the owner's share", async () => {
  const run = await runAttack(neverAck);
  assert.deepEqual(brokenBounds(run), []);
  assert.ok(
    run.observed.overflows.length > 0,
    `no replay buffer hit the share (${run.observed.accepted} accepted)`,
  );
});

Deno.test("register with a 20 MiB description or a name padded with 20 MiB of spaces keeps 1 KiB, and the sessions API answer stays small", async () => {
  const run = await runAttack(paddedRegister);
  assert.deepEqual(brokenBounds(run), []);
  const { acks, sessionsBodyChars, names } = run.observed;
  assert.deepEqual(acks, ["success", "success", "success", "success"]);
  assert.ok(
    sessionsBodyChars < 20_000,
    `the sessions API answered ${sessionsBodyChars} characters`,
  );
  assert.deepEqual(names, ["named-1", "named-3", "padded-0", "padded-2"]);
  assert.ok(run.observed.whileRegistered.ok, "serve kept the padding while the sessions stood");
});

Deno.test("20,000 answers for ids never asked close the link for bad frames, with a bounded number of log lines", async () => {
  const run = await runAttack(unknownIds);
  assert.deepEqual(brokenBounds(run), []);
  assert.equal(run.observed.close.code, 1008);
  const lines = run.observed.warnings.length;
  assert.ok(lines <= 2, `${lines} warning lines for unknown answers`);
});
