// End to end: `@modelcontextprotocol/server-filesystem` from npm in `per-client` mode behind a real
// serve, with two official SDK clients declaring different roots. The server replaces its allowed
// directories with its client's roots: with an instance each, each client reads only under its own roots,
// and one client changing its roots never changes what the other may read.

import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import { startTestGateway, within } from "../fixtures/test_gateway.ts";
import {
  type RecordingClient,
  recordingClient,
  startPerClient,
  textOf,
} from "../fixtures/per_client.ts";

const FILESYSTEM_SERVER = [
  Deno.execPath(),
  "run",
  "-A",
  "npm:@modelcontextprotocol/server-filesystem@2026.8.31",
];

/** The directories the client's instance allows now. */
async function allowed(client: RecordingClient): Promise<string> {
  return textOf(
    await within(
      client.client.callTool({ name: "list_allowed_directories", arguments: {} }),
      10_000,
      "list_allowed_directories",
    ),
  );
}

/** Waits (bounded) until the instance took the client's roots: it asks for them after initializing. */
async function waitAllowed(client: RecordingClient, dir: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = "";
  while (Date.now() < deadline) {
    last = await allowed(client);
    if (last.includes(dir)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`the instance never allowed ${dir}; it allows: ${last}`);
}

/** The file's text, or the error the server answered with. */
async function read(client: RecordingClient, path: string): Promise<string> {
  try {
    const result = await within(
      client.client.callTool({ name: "read_text_file", arguments: { path } }),
      10_000,
      `read ${path}`,
    ) as { isError?: boolean };
    return `${result.isError ? "error: " : ""}${textOf(result)}`;
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

Deno.test("server-filesystem per-client: each client reads only under its own roots, and a roots change by one never affects the other", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "per_client_fs_" }));
  const gateway = await startTestGateway({ callTimeoutMs: 30_000 });
  const clients: RecordingClient[] = [];
  try {
    for (const sub of ["a", "b", "c", "none"]) {
      await Deno.mkdir(`${dir}/${sub}`);
      await Deno.writeTextFile(`${dir}/${sub}/file.txt`, `text of ${sub}`);
    }
    const roots = { roots: { listChanged: true } };
    // Started with a directory of neither client: until roots arrive, neither reads a or b.
    await using _proxy = await startPerClient(gateway, {
      name: "fs",
      command: [...FILESYSTEM_SERVER, `${dir}/none`],
    });
    const f1 = await recordingClient(gateway, "fs", {
      label: "F1",
      capabilities: roots,
      roots: [pathToFileURL(`${dir}/a`).href],
    });
    clients.push(f1);
    const f2 = await recordingClient(gateway, "fs", {
      label: "F2",
      capabilities: roots,
      roots: [pathToFileURL(`${dir}/b`).href],
    });
    clients.push(f2);
    await waitAllowed(f1, `${dir}/a`);
    await waitAllowed(f2, `${dir}/b`);

    assert.equal(await read(f1, `${dir}/a/file.txt`), "text of a");
    assert.match(await read(f1, `${dir}/b/file.txt`), /^error: .*denied/i);
    assert.equal(await read(f2, `${dir}/b/file.txt`), "text of b");
    assert.match(await read(f2, `${dir}/a/file.txt`), /^error: .*denied/i);

    // F2 moves its roots to c: its instance asks it again; F1's instance is not told anything.
    const f1Asked = f1.received.rootsAsked;
    f2.roots.splice(0, f2.roots.length, { uri: pathToFileURL(`${dir}/c`).href, name: "c" });
    await within(f2.client.sendRootsListChanged(), 10_000, "F2 roots/list_changed");
    await waitAllowed(f2, `${dir}/c`);
    assert.equal(await read(f2, `${dir}/c/file.txt`), "text of c");
    assert.match(await read(f2, `${dir}/b/file.txt`), /^error: .*denied/i);
    assert.equal(await read(f1, `${dir}/a/file.txt`), "text of a", "F1 still reads its own root");
    assert.match(await read(f1, `${dir}/c/file.txt`), /^error: .*denied/i, "F2's root is not F1's");
    assert.doesNotMatch(await allowed(f1), /\/[bc]\b|\/none/);
    assert.equal(f1.received.rootsAsked, f1Asked, "F1 was not asked for roots on F2's change");
  } finally {
    await Promise.all(clients.map((c) => c.client.close().catch(() => {})));
    await gateway.close();
    await Deno.remove(dir, { recursive: true });
  }
});
