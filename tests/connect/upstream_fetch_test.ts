// UpstreamFetch against real listeners: a redirect on the upstream's own origin is followed with its
// headers; one to another origin is refused before anything goes there, since fetch would send it every
// configured header but Authorization (an X-Api-Key, say).

import assert from "node:assert/strict";
import { UpstreamFetch, UpstreamRequestFailed } from "../../lib/connect/upstream_fetch.ts";

Deno.test("UpstreamFetch follows a redirect on its origin with its headers, and refuses one to another origin", async () => {
  const elsewhere: string[] = [];
  const other = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    elsewhere.push(request.headers.get("x-api-key") ?? "");
    return new Response("{}");
  });
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/mcp") {
        return new Response(null, { status: 307, headers: { location: "/mcp/" } });
      }
      if (path === "/mcp/") return new Response(request.headers.get("x-api-key") ?? "none");
      return new Response(null, {
        status: 307,
        headers: { location: `http://localhost:${other.addr.port}/mcp` },
      });
    },
  );
  const at = (path: string) =>
    new UpstreamFetch({
      url: new URL(`http://127.0.0.1:${upstream.addr.port}${path}`),
      headers: [{ name: "X-Api-Key", value: "upstream-secret", source: "test" }],
      timeoutMs: 5_000,
    });
  const same = at("/mcp");
  const cross = at("/moved");
  try {
    const response = await same.request({ method: "POST", body: "{}", headers: {} });
    assert.equal(await response.text(), "upstream-secret");
    await assert.rejects(
      cross.request({ method: "POST", body: "{}", headers: {} }),
      (error: Error) =>
        error instanceof UpstreamRequestFailed && /another origin/.test(error.message) &&
        !error.message.includes("upstream-secret"),
    );
    assert.deepEqual(elsewhere, [], "the header went to the other origin");
  } finally {
    same.close();
    cross.close();
    await upstream.shutdown();
    await other.shutdown();
  }
});
