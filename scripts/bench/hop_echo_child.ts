// The far end of the hop floor: a bare Deno process that dials the driver over WebSocket (as `connect`
// does), echoes every text message as is, and answers `big:<id>:<bytes>` with a JSON-RPC result of that
// many bytes built the way an MCP server builds it.
// Usage: deno run -A scripts/bench/hop_echo_child.ts ws://127.0.0.1:PORT/

const url = Deno.args[0];
if (url === undefined) throw new TypeError("Usage: hop_echo_child.ts WS_URL");

const socket = new WebSocket(url);
socket.onopen = () => socket.send("ready");
socket.onmessage = (event) => {
  const text = event.data as string;
  if (text.startsWith("big:")) {
    const [, id, bytes] = text.split(":");
    socket.send(JSON.stringify({
      jsonrpc: "2.0",
      id: Number(id),
      result: { content: [{ type: "text", text: "x".repeat(Number(bytes)) }] },
    }));
    return;
  }
  socket.send(text);
};
const closed = new Promise<void>((resolve) => socket.onclose = () => resolve());
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
await closed;
