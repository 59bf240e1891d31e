// One side of the cross-replica row's Redis floor: a bare Deno process with two ioredis connections (one
// for XADD, one blocked in XREAD), shaped as a replica's inbox is, without our code between. `echo` reads
// its stream and XADDs an answer-sized entry to the driver's for each entry; `driver` times the two-hop
// round trip (XADD → XREAD wakes at the echo → XADD back → XREAD wakes here), sequentially and with
// calls in flight, and prints its figures as one JSON line on stderr (event `redis_floor`).
// Usage: deno run -A scripts/bench/redis_floor_child.ts echo REDIS_URL
//        deno run -A scripts/bench/redis_floor_child.ts driver REDIS_URL CALLS WARMUP TOTAL INFLIGHT PIDS
// PIDS: the echo's and redis-server's, comma-separated: their CPU per round trip is reported with ours.

import { Redis } from "ioredis";
import { callsInFlight } from "./in_flight.ts";
import { readCpuNs } from "./procfs.ts";
import { percentile } from "./stats.ts";

/** The stream keys of the two sides. */
const KEYS = { echo: "bench-floor:echo", driver: "bench-floor:driver" };
/** XADD MAXLEN ~ as an inbox does (`--cluster-inbox-max`'s default). */
const MAX_ENTRIES = 10_000;
const BATCH = 8;
const BLOCK_MS = 1_000;

// Entries of the sizes a `call` and its `answer` envelope of the echo tool have (header, payload, MAC).
const HEADER = JSON.stringify({
  kind: "call",
  origin: "bench-2",
  target: "bench-1",
  deadline: 1764625000000,
  generation: 1,
  sid: crypto.randomUUID(),
  id: "bench-2.1764624000000001",
  nonce: "AAAAAAAAAAAAAAAAAAAAAA==",
  ts: 1764624000000,
});
const MAC = "A".repeat(44);
const CALL =
  `{"jsonrpc":"2.0","id":"bench-2.1764624000000001","method":"tools/call","params":{"name":"echo","arguments":{"message":"hello through the tunnel"}}}`;
const ANSWER =
  `14:39\n{"jsonrpc":"2.0","id":"\\u0000${crypto.randomUUID()}","result":{"content":[{` +
  `"type":"text","text":"Echo: hello through the tunnel"}]}}`;

function connect(url: string, name: string): Redis {
  // As a replica's connections are (lib/serve/cluster/redis_client.ts): no autopipelining, which on
  // this machine cost each round trip about 100 µs more here, and no per-command timer.
  return new Redis(url, {
    enableAutoPipelining: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    connectionName: `bench-floor-${name}`,
  });
}

function add(redis: Redis, key: string, payload: string): Promise<string | null> {
  return redis.xadd(key, "MAXLEN", "~", MAX_ENTRIES, "*", "h", HEADER, "p", payload, "m", MAC);
}

type StreamReply = [string, [string, string[]][]][] | null;

/** Reads `key` until `stop`, handing each entry's fields to `onEntry`. */
async function readLoop(
  redis: Redis,
  key: string,
  onEntry: (fields: string[]) => void,
  stop: AbortSignal,
): Promise<void> {
  let last = "0-0";
  while (!stop.aborted) {
    const reply = await redis.xread("COUNT", BATCH, "BLOCK", BLOCK_MS, "STREAMS", key, last)
      .catch(() => null) as StreamReply;
    for (const [id, fields] of reply?.[0]?.[1] ?? []) {
      last = id;
      onEntry(fields);
    }
  }
}

async function echo(url: string): Promise<void> {
  const commands = connect(url, "echo-commands");
  const reader = connect(url, "echo-reader");
  const stop = new AbortController();
  Deno.addSignalListener("SIGTERM", () => {
    stop.abort();
    reader.disconnect();
    commands.disconnect();
  });
  await commands.del(KEYS.echo);
  await commands.xadd(KEYS.echo, "MAXLEN", "0", "*", "x", "");
  console.error(JSON.stringify({ event: "ready" }));
  await readLoop(reader, KEYS.echo, () => void add(commands, KEYS.driver, ANSWER), stop.signal);
}

async function driver(url: string, args: string[]): Promise<void> {
  const [calls, warmup, total, inflight] = args.slice(0, 4).map(Number) as [
    number,
    number,
    number,
    number,
  ];
  const [echoPid, redisPid] = (args[4] ?? "").split(",").map(Number);
  const cpu = () => [Deno.pid, echoPid!, redisPid!].map(readCpuNs);
  const commands = connect(url, "driver-commands");
  const reader = connect(url, "driver-reader");
  const stop = new AbortController();
  await commands.del(KEYS.driver);
  await commands.xadd(KEYS.driver, "MAXLEN", "0", "*", "x", "");
  // Entries come back in the order they were sent (one stream each way, read in order): first in, first
  // answered.
  const waiting: (() => void)[] = [];
  const loop = readLoop(reader, KEYS.driver, () => waiting.shift()?.(), stop.signal);
  const cpuAtStart = cpu();
  const call = () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      void add(commands, KEYS.echo, CALL);
    });
  for (let i = 0; i < warmup; i++) await call();
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await call();
    samples.push((performance.now() - start) * 1000);
  }
  const inFlight = (n: number) => callsInFlight(call, { total: n, width: inflight });
  await inFlight(Math.min(500, Math.ceil(total / 10)));
  const t0 = performance.now();
  await inFlight(total);
  const callsPerSecond = total / ((performance.now() - t0) / 1000);
  const echoCalls = warmup + calls + total + Math.min(500, Math.ceil(total / 10));
  const [driverNs, echoNs, redisNs] = cpu().map((ns, i) =>
    (ns - cpuAtStart[i]!) / 1000 / echoCalls
  );
  console.error(JSON.stringify({
    event: "redis_floor",
    p50Us: percentile(samples, 50),
    p90Us: percentile(samples, 90),
    p99Us: percentile(samples, 99),
    meanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
    callsPerSecond,
    echoCalls,
    cpuUsPerCall: { driver: driverNs, echo: echoNs, redis: redisNs },
    envelopeBytes: { call: HEADER.length + CALL.length + MAC.length, answer: ANSWER.length },
  }));
  stop.abort();
  reader.disconnect();
  await loop;
  await commands.quit();
}

const [role, url, ...rest] = Deno.args;
if ((role !== "echo" && role !== "driver") || url === undefined) {
  throw new TypeError(
    "Usage: redis_floor_child.ts echo|driver REDIS_URL [CALLS WARMUP TOTAL INFLIGHT]",
  );
}
if (role === "echo") await echo(url);
else await driver(url, rest);
