// The RSS baseline: a bare Deno program holding one WebSocket and one child process with piped stdio
// (what `connect` holds, without any of its code), idling until the socket closes.
// Usage: deno run -A scripts/bench/baseline_ws_child.ts ws://127.0.0.1:PORT/ -- CMD ARGS...

const url = Deno.args[0];
const dashes = Deno.args.indexOf("--");
const [program, ...args] = dashes < 0 ? [] : Deno.args.slice(dashes + 1);
if (url === undefined || program === undefined) {
  throw new TypeError("Usage: baseline_ws_child.ts WS_URL -- CMD ARGS...");
}

const child = new Deno.Command(program, {
  args,
  stdin: "piped",
  stdout: "piped",
  stderr: "null",
  detached: true,
}).spawn();
const drained = child.stdout.pipeTo(new WritableStream());
const socket = new WebSocket(url);
socket.onopen = () => socket.send("ready");
const closed = new Promise<void>((resolve) => socket.onclose = () => resolve());

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
await closed;
stop();
await child.stdin.close().catch(() => {});
await drained.catch(() => {});
await child.status;
