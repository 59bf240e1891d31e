// Attack: connections that send half their headers, trickle a body, or sit idle after an answer, against
// a real serve with its timeouts set low. Each is closed within its bound plus ~1 s, serve's open fds go
// back down, and another owner's calls through a real tunnel go on meanwhile.

import assert from "node:assert/strict";
import { brokenBounds, runAttack } from "./run_attack.ts";
import { slowHttp } from "./scenarios/slow_http.ts";

Deno.test("slow headers, slow bodies and idle keep-alive connections are closed while another owner is served", async () => {
  const run = await runAttack(slowHttp);
  assert.deepEqual(brokenBounds(run), []);
  const { headers, bodies, idleAnswers, idles, fdsBefore, fdsAfter } = run.observed;
  for (const outcome of headers) {
    assert.equal(outcome.line, "HTTP/1.1 408 Request Timeout");
    assert.ok(outcome.afterMs >= 900 && outcome.afterMs < 2_600, `headers: ${outcome.afterMs}`);
  }
  for (const outcome of bodies) {
    assert.equal(outcome.line, "HTTP/1.1 408 Request Timeout");
    assert.ok(outcome.afterMs >= 900 && outcome.afterMs < 2_600, `body: ${outcome.afterMs} ms`);
  }
  assert.ok(idleAnswers.every((line) => line === "HTTP/1.1 200 OK"), idleAnswers.join(", "));
  for (const outcome of idles) {
    assert.equal(outcome.line, ""); // closed without a word
    assert.ok(outcome.afterMs >= 900 && outcome.afterMs < 2_600, `idle: ${outcome.afterMs} ms`);
  }
  assert.ok(run.victimDuring.ok > 10, `the victim made ${run.victimDuring.ok} calls`);
  // Serve let go of every connection (a few fds of slack for its own housekeeping).
  assert.ok(fdsAfter <= fdsBefore + 4, `serve's fds went from ${fdsBefore} to ${fdsAfter}`);
});
