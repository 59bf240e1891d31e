// The relay floor: the least a Deno program must do to carry MCP between a contract-A gateway and a stdio
// server, with none of connect's duties (no id tracking, no validation, no limits, no heartbeats, no
// reconnects, no logging). It registers, writes each request frame's payload to the server's stdin (one
// write per burst, as connect does), and wraps each stdout line in a `response` frame without parsing it.
// It shows how much of connect's cost is Deno's I/O and how much is connect's own work.
// Usage: deno run -A scripts/bench/bare_relay_child.ts ws://127.0.0.1:PORT/ -- CMD ARGS...

const url = Deno.args[0];
const dashes = Deno.args.indexOf("--");
const [program, ...args] = dashes < 0 ? [] : Deno.args.slice(dashes + 1);
if (url === undefined || program === undefined) {
  throw new TypeError("Usage: bare_relay_child.ts WS_URL -- CMD ARGS...");
}

const encoder = new TextEncoder();
const child = new Deno.Command(program, {
  args,
  stdin: "piped",
  stdout: "piped",
  stderr: "null",
  detached: true,
}).spawn();
const stdin = child.stdin.getWriter();
const socket = new WebSocket(url, { headers: { "X-Session-ID": "bare-relay" } });
let prefix = "";

let queue: string[] = [];
let flushing = false;
async function flush(): Promise<void> {
  flushing = true;
  while (queue.length > 0) {
    const batch = queue.join("\n") + "\n";
    queue = [];
    await stdin.write(encoder.encode(batch));
  }
  flushing = false;
}

socket.onopen = () => {
  socket.send(JSON.stringify({
    type: "register",
    sessionId: "bare-relay",
    server: { name: "bare-relay", description: "bench relay floor", protocol: "mcp" },
  }));
};
socket.onmessage = (event) => {
  const frame = JSON.parse(event.data as string);
  if (frame.type === "register_ack") {
    prefix = `{"type":"response","sessionId":${JSON.stringify(frame.sessionId)},"payload":`;
    console.error(JSON.stringify({ event: "registered" }));
  } else if (frame.type === "request") {
    queue.push(JSON.stringify(frame.payload));
    if (!flushing) void flush();
  }
};

async function relayStdout(): Promise<void> {
  const reader = child.stdout.getReader({ mode: "byob" });
  const decoder = new TextDecoder();
  let buffer = new ArrayBuffer(64 * 1024);
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read(new Uint8Array(buffer));
    if (done || value === undefined) return;
    buffer = value.buffer as ArrayBuffer;
    let start = 0;
    for (let newline = value.indexOf(10); newline !== -1; newline = value.indexOf(10, start)) {
      const line = pending + decoder.decode(value.subarray(start, newline));
      pending = "";
      start = newline + 1;
      if (line !== "") socket.send(prefix + line + "}");
    }
    pending += decoder.decode(value.subarray(start), { stream: true });
  }
}

function stop(): void {
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
Deno.addSignalListener("SIGTERM", () => {
  stop();
  Deno.exit(0);
});
const closed = new Promise<void>((resolve) => socket.onclose = () => resolve());
await Promise.race([closed, relayStdout()]);
stop();
await child.status;
