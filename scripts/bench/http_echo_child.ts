// The far end of the HTTP hop floor: a trivial node:http server on 127.0.0.1 (the stack serve runs on,
// under the same Deno) that answers each POST with its body (JSON), or `big:<id>:<bytes>` with a JSON-RPC
// result of that many bytes. What serve + connect is held to: its clients pay this HTTP round trip before
// the tunnel's WebSocket hop.
// Usage: deno run -A scripts/bench/http_echo_child.ts PORT

import http from "node:http";
import { Buffer } from "node:buffer";

const port = Number(Deno.args[0]);
if (!Number.isInteger(port)) throw new TypeError("Usage: http_echo_child.ts PORT");

const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.method !== "POST") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    let body = Buffer.concat(chunks).toString("utf8");
    if (body.startsWith("big:")) {
      const [, id, bytes] = body.split(":");
      body = JSON.stringify({
        jsonrpc: "2.0",
        id: Number(id),
        result: { content: [{ type: "text", text: "x".repeat(Number(bytes)) }] },
      });
    }
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  });
});
server.listen(port, "127.0.0.1");
Deno.addSignalListener("SIGTERM", () => {
  server.closeAllConnections();
  server.close();
});
