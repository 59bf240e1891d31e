// RepeatedRequests and KeptAnswers: a cross-replica call sent again runs once; one answered is answered
// again with its kept answer, or with an error naming the flag once that answer is gone; the kept answers
// stay within their byte bound in total, and ids within their count.

import assert from "node:assert/strict";
import { RepeatedRequests } from "../../lib/connect/repeated_requests.ts";
import { KeptAnswers } from "../../lib/connect/kept_answers.ts";
import type { MessageFacts } from "../../lib/protocol/jsonrpc.ts";

function call(id: string): MessageFacts {
  return { kind: "request", id, method: "tools/call" };
}

function answerOf(id: string, text: string): string {
  return JSON.stringify({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text }] } });
}

/** RepeatedRequests whose answers sent again are recorded. */
function recorded(options: { limit?: number; answers?: KeptAnswers } = {}) {
  const again: { text: string; id: string; clientSession?: string | undefined }[] = [];
  const repeats: string[] = [];
  const seen = new RepeatedRequests({
    ...options,
    answerAgain: (text, about) => again.push({ text, ...about }),
    onRepeat: (id) => repeats.push(id),
  });
  return { seen, again, repeats };
}

Deno.test("RepeatedRequests drops a repeat in flight and answers a repeat of an answered call with the same text", () => {
  const { seen, again, repeats } = recorded();
  const answer = answerOf("r1.7", "ran once");
  assert.equal(seen.repeats(call("r1.7")), false, "the first runs");
  assert.equal(seen.repeats(call("r1.7")), true, "in flight: not run again");
  assert.equal(again.length, 0, "in flight: nothing sent, its answer will come");
  seen.answered("r1.7", answer);
  assert.equal(seen.repeats(call("r1.7"), "client-a"), true, "answered: not run again");
  assert.deepEqual([...again], [{ text: answer, id: "r1.7", clientSession: "client-a" }]);
  // Every later repeat gets it too (a second failover).
  assert.equal(seen.repeats(call("r1.7")), true);
  assert.equal(again.length, 2);
  assert.equal(again[1]!.text, answer);
  assert.deepEqual(repeats, ["r1.7", "r1.7", "r1.7"]);
});

Deno.test("RepeatedRequests looks only at cross-replica ids: other ids and notifications always pass", () => {
  const { seen, again } = recorded();
  for (const facts of [call("7"), call("a.b"), { kind: "notification", method: "x" } as const]) {
    assert.equal(seen.repeats(facts), false);
    assert.equal(seen.repeats(facts), false);
  }
  assert.equal(seen.repeats({ kind: "request", id: 7, method: "tools/call" }), false);
  assert.equal(seen.repeats("batch"), false);
  assert.deepEqual(again, []);
});

Deno.test("RepeatedRequests answers a repeat whose answer is no longer kept with a JSON-RPC error naming --max-repeat-answer-bytes", () => {
  const answers = new KeptAnswers({ maxBytes: 150 });
  const { seen, again } = recorded({ answers });
  seen.repeats(call("r1.1"));
  seen.answered("r1.1", answerOf("r1.1", "x".repeat(300))); // larger than the whole bound
  seen.repeats(call("r1.2"));
  seen.answered("r1.2", answerOf("r1.2", "a".repeat(50)));
  seen.repeats(call("r1.3"));
  seen.answered("r1.3", answerOf("r1.3", "b".repeat(50))); // evicts r1.2's
  assert.equal(seen.repeats(call("r1.3")), true);
  assert.equal(again.at(-1)!.text, answerOf("r1.3", "b".repeat(50)));
  for (const id of ["r1.1", "r1.2"]) {
    assert.equal(seen.repeats(call(id)), true, `${id} must not run again`);
    const error = JSON.parse(again.at(-1)!.text);
    assert.equal(error.id, id);
    assert.equal(error.error.code, -32001);
    assert.match(error.error.message, /'tools\/call' ran once/);
    assert.match(error.error.message, /answer was lost with the gateway replica/);
    assert.match(error.error.message, /--max-repeat-answer-bytes \(now 150\)/);
  }
});

Deno.test("RepeatedRequests remembers at most --max-repeat-ids answered ids: an older repeat runs again, and its kept answer goes with its id", () => {
  const answers = new KeptAnswers({ maxBytes: 1024 * 1024 });
  const { seen, again } = recorded({ limit: 3, answers });
  for (let n = 1; n <= 4; n++) {
    seen.repeats(call(`r1.${n}`));
    seen.answered(`r1.${n}`, answerOf(`r1.${n}`, "ok"));
  }
  assert.equal(answers.size, 3, "the forgotten id's answer is dropped with it");
  assert.equal(seen.repeats(call("r1.4")), true);
  assert.equal(seen.repeats(call("r1.2")), true);
  assert.equal(again.length, 2);
  // r1.1 was forgotten: it is a new call now.
  assert.equal(seen.repeats(call("r1.1")), false);
  // In flight, too, at most `limit` ids.
  for (let n = 10; n < 20; n++) seen.repeats(call(`r1.${n}`));
  assert.equal(seen.repeats(call("r1.10")), false, "the oldest in flight was forgotten");
});

Deno.test("KeptAnswers holds at most its byte bound in total across servers, oldest dropped first", () => {
  const answers = new KeptAnswers({ maxBytes: 1000 });
  const a = answers.space();
  const b = answers.space();
  for (let n = 0; n < 50; n++) {
    answers.keep(n % 2 === 0 ? a : b, `r1.${n}`, "é".repeat(50)); // 100 UTF-8 bytes each
    assert.ok(answers.bytes <= 1000, `${answers.bytes} bytes kept after ${n + 1}`);
  }
  assert.equal(answers.bytes, 1000);
  assert.equal(answers.size, 10);
  assert.equal(answers.get(b, "r1.49"), "é".repeat(50));
  assert.equal(answers.get(a, "r1.40"), "é".repeat(50));
  assert.equal(answers.get(a, "r1.38"), undefined, "older ones dropped");
  assert.equal(answers.get(b, "r1.40"), undefined, "one server's id is not another's");
  answers.keep(a, "r1.big", "x".repeat(1001));
  assert.equal(answers.get(a, "r1.big"), undefined, "larger than the bound: not kept");
  assert.equal(answers.size, 10, "and nothing dropped for it");
  answers.keep(a, "r1.wide", "é".repeat(501)); // 501 UTF-16 units, 1002 UTF-8 bytes
  assert.equal(answers.get(a, "r1.wide"), undefined, "bytes counted in UTF-8");
  assert.equal(answers.size, 10, "and nothing dropped for it");
  answers.forget(b, "r1.49");
  assert.equal(answers.bytes, 900);
  assert.throws(() => new KeptAnswers({ maxBytes: -1 }), RangeError);
});
