// Attack: authenticated links, never registered, each sending one 60 MiB frame (text or binary) against
// serve's 48 MiB default limit. Each is refused at its header (1009 / 1003 on the wire), serve's RSS rises
// by far less than one frame, and another owner's calls through a real tunnel go on meanwhile.

import assert from "node:assert/strict";
import { CloseCode } from "../../lib/protocol/frames.ts";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { bigFrames, LINKS_PER_KIND } from "./scenarios/big_frame.ts";

Deno.test("60 MiB text and binary frames are refused at their header; serve's RSS barely moves and another owner is served", async () => {
  const run = await runAttack(bigFrames);
  assert.deepEqual(brokenBounds(run), []);
  for (const close of run.observed.textCloses) {
    assert.equal(close?.code, CloseCode.TooBig);
    assert.match(
      close.reason,
      /frame of 62914560 bytes exceeds the limit of 50331648 \(serve --max-frame-bytes\)/,
    );
  }
  for (const close of run.observed.binaryCloses) {
    assert.equal(close?.code, CloseCode.UnsupportedData);
  }
  assert.equal(run.observed.refusals.length, 2 * LINKS_PER_KIND);
});
