// ResumableStream and SessionStreams on their own: event ids, the priming event, replay after an id,
// the bounds of the replay buffer (done streams first, then the oldest events), and the resume window.

import assert from "node:assert/strict";
import { parseEventId, type StreamSettings } from "../../lib/serve/resumable_stream.ts";
import { SessionStreams } from "../../lib/serve/session_streams.ts";
import { SseStream } from "../../lib/serve/sse_stream.ts";
import { parseSse, type SseEvent } from "../fixtures/mcp_http.ts";
import { within } from "../fixtures/test_gateway.ts";

const SETTINGS: StreamSettings = {
  replayBytes: 64 * 1024,
  replayEvents: 100,
  resumeWindowMs: 60_000,
  retryMs: 250,
};

function note(n: number, pad = 0): Record<string, unknown> {
  return { jsonrpc: "2.0", method: "notifications/progress", params: { n, pad: "x".repeat(pad) } };
}

/** What a connection carried once it ends (closed here if still open). */
async function carried(connection: SseStream): Promise<SseEvent[]> {
  connection.close();
  return parseSse(await new Response(connection.readable).text());
}

function numbers(events: SseEvent[]): number[] {
  return events.filter((e) => e.data !== "").map((e) => JSON.parse(e.data).params.n as number);
}

Deno.test("parseEventId() reads STREAM:EVENT and REPLICA.STREAM:EVENT and refuses anything else", () => {
  assert.deepEqual(parseEventId("3:17"), { stream: "3", seq: 17 });
  assert.deepEqual(parseEventId(" 03:0 "), { stream: "3", seq: 0 });
  assert.deepEqual(parseEventId("gw-1_a.3:17"), { replica: "gw-1_a", stream: "3", seq: 17 });
  const bads = [
    "",
    "3",
    "3:",
    ":1",
    "a:1",
    "1:2:3",
    "1:-1",
    "9999999999999999:1",
    ".3:1",
    "a.b.3:1",
  ];
  for (const bad of [...bads, `${"r".repeat(65)}.3:1`]) {
    assert.equal(parseEventId(bad), undefined, bad);
  }
});

Deno.test("ResumableStream numbers its events per stream, primes each connection and replays after an id", async () => {
  const streams = new SessionStreams(SETTINGS);
  try {
    const stream = streams.open();
    assert.equal(stream.id, "1");
    assert.equal(streams.open().id, "2");
    const first = new SseStream();
    stream.attach(first);
    for (let n = 1; n <= 3; n++) assert.equal(stream.send(note(n)), true);
    const seen = await carried(first);
    assert.deepEqual(seen.map((e) => e.id), ["1:0", "1:1", "1:2", "1:3"]);
    assert.deepEqual(seen[0], { id: "1:0", retry: "250", data: "" }, "the priming event");
    assert.deepEqual(numbers(seen), [1, 2, 3]);
    // Sent while no connection is on it: kept.
    stream.send(note(4));
    const second = new SseStream();
    assert.equal(stream.attach(second, 2), true);
    stream.send(note(5));
    stream.finish();
    const resumed = parseSse(await new Response(second.readable).text());
    assert.deepEqual(resumed.map((e) => e.id), ["1:2", "1:3", "1:4", "1:5"]);
    assert.deepEqual(numbers(resumed), [3, 4, 5], "what followed event 2, then the rest, once");
    assert.equal(stream.send(note(6)), false, "a finished stream takes nothing more");
    // A done stream replays and ends at once.
    const third = new SseStream();
    stream.attach(third, 4);
    assert.deepEqual(numbers(parseSse(await new Response(third.readable).text())), [5]);
  } finally {
    streams.end();
  }
});

Deno.test("ResumableStream.attach() closes the connection it was on, which then changes nothing", async () => {
  const streams = new SessionStreams(SETTINGS);
  try {
    const stream = streams.open();
    const old = new SseStream();
    stream.attach(old);
    stream.send(note(1));
    const fresh = new SseStream();
    stream.attach(fresh, 1);
    assert.equal(old.closed, true);
    stream.send(note(2));
    assert.deepEqual(numbers(parseSse(await new Response(old.readable).text())), [1]);
    assert.deepEqual(numbers(await carried(fresh)), [2]);
  } finally {
    streams.end();
  }
});

Deno.test("SessionStreams keeps at most replayEvents and replayBytes, dropping done streams first", () => {
  const streams = new SessionStreams({ ...SETTINGS, replayEvents: 10 });
  try {
    const done = streams.open();
    for (let n = 1; n <= 4; n++) done.send(note(n));
    done.finish();
    const live = streams.open();
    for (let n = 1; n <= 6; n++) live.send(note(n));
    assert.equal(streams.events, 10);
    live.send(note(7));
    assert.equal(streams.events, 7, "the done stream went whole");
    assert.equal(done.gone, true);
    assert.equal(live.keptEvents, 7);
    for (let n = 8; n <= 13; n++) live.send(note(n));
    assert.equal(streams.events, 10, "then the oldest events of the oldest stream");
    assert.equal(live.keptEvents, 10);
    const resumed = new SseStream();
    assert.equal(live.attach(resumed, 1), false, "events 2 and 3 are gone: a gap");
    const ok = new SseStream();
    assert.equal(live.attach(ok, 3), true);
    resumed.close();
    ok.close();
  } finally {
    streams.end();
  }
  const bytes = new SessionStreams({ ...SETTINGS, replayBytes: 4096 });
  try {
    const stream = bytes.open();
    for (let n = 1; n <= 10; n++) stream.send(note(n, 1000));
    assert.ok(bytes.bytes <= 4096 && bytes.bytes > 3000, String(bytes.bytes));
    // "é" is two bytes in UTF-8: the count is of bytes, not characters.
    const wide = bytes.open();
    wide.send({ jsonrpc: "2.0", method: "m", params: { text: "é".repeat(1500) } });
    assert.ok(bytes.bytes <= 4096, String(bytes.bytes));
    assert.ok(wide.keptEvents === 1 && bytes.bytes > 3000, String(bytes.bytes));
    // An event larger than the whole buffer is not kept, nor is what came before it on its stream.
    wide.send({ jsonrpc: "2.0", method: "m", params: { text: "x".repeat(5000) } });
    assert.equal(wide.keptEvents, 0);
    assert.equal(wide.attach(new SseStream(), 0), false);
  } finally {
    bytes.end();
  }
});

Deno.test("a stream without a connection is given up after the window; a done one is forgotten; the GET stream goes idle", async () => {
  const streams = new SessionStreams({ ...SETTINGS, resumeWindowMs: 50 });
  try {
    const open = streams.open();
    const expired = new Promise<void>((resolve) => open.onExpired = resolve);
    const connection = new SseStream();
    open.attach(connection);
    open.send(note(1));
    void connection.readable.cancel(); // the client went away
    const done = streams.open();
    done.send(note(1));
    done.finish();
    streams.standalone.attach(new SseStream());
    streams.standalone.send(note(1));
    void streams.standalone.attach(new SseStream()); // replaced: still attached
    const getConnection = new SseStream();
    streams.standalone.attach(getConnection);
    void getConnection.readable.cancel();
    assert.equal(streams.standalone.open, true, "within the window the GET stream keeps events");
    assert.equal(streams.standalone.send(note(2)), true);
    await within(expired, 5_000, "the window to pass");
    assert.equal(open.gone, true);
    assert.equal(streams.get(open.id), undefined);
    // Each of these has its own window timer, started when its own cancel was processed: wait for each.
    const settled = (what: string, holds: () => boolean) =>
      within(
        new Promise<void>((resolve) => {
          const check = () => (holds() ? resolve() : setTimeout(check, 10));
          check();
        }),
        5_000,
        what,
      );
    await settled("the done stream to be forgotten", () => done.gone);
    await settled("the GET stream to go idle", () => !streams.standalone.open);
    assert.equal(streams.standalone.gone, false);
    assert.equal(streams.standalone.open, false, "idle: nobody listens");
    assert.equal(streams.standalone.send(note(3)), false);
    assert.equal(streams.events, 0);
  } finally {
    streams.end();
  }
});
