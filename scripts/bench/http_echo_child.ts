// The far end of the HTTP hop floor: a bare Deno.serve on 127.0.0.1 that answers each POST with its body
// (JSON), or `big:<id>:<bytes>` with a JSON-RPC result of that many bytes. Context for serve + connect,
// whose clients pay an HTTP round trip before the tunnel's WebSocket hop.
// Usage: deno run -A scripts/bench/http_echo_child.ts PORT

const port = Number(Deno.args[0]);
if (!Number.isInteger(port)) throw new TypeError("Usage: http_echo_child.ts PORT");

const headers = { "content-type": "application/json" };
const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (request) => {
  if (request.method !== "POST") return new Response("ok");
  const text = await request.text();
  if (text.startsWith("big:")) {
    const [, id, bytes] = text.split(":");
    return new Response(
      JSON.stringify({
        jsonrpc: "2.0",
        id: Number(id),
        result: { content: [{ type: "text", text: "x".repeat(Number(bytes)) }] },
      }),
      { headers },
    );
  }
  return new Response(text, { headers });
});
Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
