// Large messages with serve's defaults: a 40 MiB tool result reaches the MCP client as JSON and on an
// SSE stream after progress, and a result over the frame limit fails with an error naming the limit, the
// size and the flag.

import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { C_DEFAULT_MAX_FRAME_BYTES } from "../../lib/protocol/frames.ts";
import {
  connectClient,
  serveTestServer,
  startTestGateway,
  TOKENS,
  within,
} from "../fixtures/test_gateway.ts";

const MIB = 1024 * 1024;

function textOf(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]!.text;
}

Deno.test("a 40 MiB tool result reaches an SDK client with serve's defaults, as JSON and on an SSE stream after progress", async () => {
  const gateway = await startTestGateway();
  const served = await serveTestServer(gateway, "large");
  let client: Client | undefined;
  try {
    client = await connectClient(gateway, "large", TOKENS.alice);
    const plain = await within(
      client.callTool({ name: "big", arguments: { bytes: 40 * MIB } }, undefined, {
        timeout: 60_000,
      }),
      60_000,
      "40 MiB as JSON",
    );
    assert.equal(textOf(plain).length, 40 * MIB);
    const progress: number[] = [];
    const streamed = await within(
      client.callTool({ name: "big", arguments: { bytes: 40 * MIB, progress: 3 } }, undefined, {
        timeout: 60_000,
        onprogress: (p: { progress: number }) => progress.push(p.progress),
      }),
      60_000,
      "40 MiB on SSE",
    );
    assert.deepEqual(progress, [1, 2, 3]);
    assert.equal(textOf(streamed).length, 40 * MIB);
  } finally {
    await client?.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("a result over --max-frame-bytes fails with an error naming the limit, the size and the flag", async () => {
  const gateway = await startTestGateway({ maxFrameBytes: 1 * MIB });
  const served = await serveTestServer(gateway, "over");
  let client: Client | undefined;
  try {
    assert.equal(served.ack.maxFrameBytes, MIB);
    client = await connectClient(gateway, "over", TOKENS.alice);
    const error: Error | undefined = await within(
      client.callTool({ name: "big", arguments: { bytes: 2 * MIB } }).then(
        (): Error | undefined => undefined,
        (e: Error) => e,
      ),
      10_000,
      "the refused result",
    );
    assert.ok(error, "the call failed");
    assert.match(
      String(error?.message),
      /frame of \d{7} bytes exceeds the limit of 1048576 \(serve --max-frame-bytes\)/,
    );
  } finally {
    await client?.close();
    await served.close();
    await gateway.close();
  }
});

Deno.test("serve's default frame limit is 48 MiB", () => {
  assert.equal(C_DEFAULT_MAX_FRAME_BYTES, 48 * MIB);
});
