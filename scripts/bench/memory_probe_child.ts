// A bare Deno program that loads one layer of what connect or serve load, then idles: its VmHWM is what
// that layer costs in resident memory. Modes: empty, npm (LogTape, connect's only npm package after
// start-up), node-http (a node:http server listening), node-http-ws (node:http + the npm ws server, what
// serve listens with).
// Usage: deno run -A scripts/bench/memory_probe_child.ts MODE

const mode = Deno.args[0];
let stop = () => {};
switch (mode) {
  case "empty":
    break;
  case "npm": {
    const { getLogger } = await import("@logtape/logtape");
    getLogger("probe");
    break;
  }
  case "node-http":
  case "node-http-ws": {
    const http = await import("node:http");
    const server = http.createServer((_req, res) => res.end("ok"));
    if (mode === "node-http-ws") {
      const { WebSocketServer } = await import("ws");
      const wss = new WebSocketServer({ noServer: true });
      server.on("upgrade", (req, socket, head) => wss.handleUpgrade(req, socket, head, () => {}));
    }
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    stop = () => server.close();
    break;
  }
  default:
    throw new TypeError(
      `Usage: memory_probe_child.ts empty|npm|node-http|node-http-ws (got ${mode})`,
    );
}
console.error(JSON.stringify({ event: "ready", mode }));
const done = Promise.withResolvers<void>();
Deno.addSignalListener("SIGTERM", () => done.resolve());
await done.promise;
stop();
