import assert from "node:assert/strict";
import { closest, editDistance } from "../../lib/util/did_you_mean.ts";

Deno.test("editDistance() counts insertions, deletions and substitutions", () => {
  assert.equal(editDistance("", ""), 0);
  assert.equal(editDistance("abc", "abc"), 0);
  assert.equal(editDistance("abc", ""), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("gatway", "gateway"), 1);
});

Deno.test("closest() suggests a near name ignoring case, - and _, and nothing when far", () => {
  const flags = ["--gateway", "--max-retries", "--token", "--token-file"];
  assert.equal(closest("--gatway", flags), "--gateway");
  assert.equal(closest("--MAX_RETRY", flags), "--max-retries");
  assert.equal(closest("--tokn", flags), "--token");
  assert.equal(closest("--zzzzzzzzzz", flags), undefined);
  assert.equal(closest("serv", ["connect", "serve", "demo"]), "serve");
  assert.equal(closest("x", []), undefined);
});
