// Reads a V8 `.cpuprofile` (`deno run --cpu-prof`, the bench's `--profile DIR`) and says where the busy
// samples went: by layer (our lib/, the npm packages, Deno's node compatibility layer, Deno's own runtime,
// GC, native) and by function, self time and time including callees.
// Usage: deno run -A scripts/bench/profile_summary.ts FILE.cpuprofile [--top N] [--match TEXT] [--exclude FN]
// --exclude drops the samples of a native function (e.g. `writev`: the V8 profiler samples wall time, so
// a syscall during which the thread was preempted shows as busy; `perf` gives the true CPU split).

import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

/** The parts of a `.cpuprofile` read here. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code comes from. */
export function layerOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "gc";
  if (functionName === "(program)") return "native (program)";
  if (functionName === "(idle)") return "idle";
  if (functionName === "(root)") return "root";
  if (url.includes("/lib/")) return "ours (lib/)";
  if (url.includes("/scripts/") || url.includes("/tests/")) return "ours (scripts, tests)";
  if (url.includes("node_modules") || url.includes("/npm/")) {
    const match = /node_modules\/(?:\.deno\/)?((?:@[^/]+\/)?[^/@]+)/.exec(url);
    return `npm ${match?.[1] ?? "?"}`;
  }
  if (url.startsWith("node:") || url.includes("ext:deno_node") || url.includes("/node/")) {
    return "Deno node compat (node:*)";
  }
  if (url.startsWith("ext:") || url.startsWith("deno:")) {
    return `Deno runtime (${url.split("/")[0]})`;
  }
  if (url === "") return "V8 builtins / native";
  return "other";
}

/** Self and inclusive busy time per function and per layer, in milliseconds. */
export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  layers: [string, number][];
  self: [string, number][];
  total: [string, number][];
}

function label(frame: CallFrame): string {
  const file = frame.url.replace(/^.*\/(lib|scripts|node_modules)\//, "$1/").replace(
    /^file:\/\//,
    "",
  );
  return `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
}

/**
 * Summarises a profile. `match` keeps, for the function lists, only labels containing it; samples whose
 * own frame is the function `exclude` are left out (counted as neither busy nor idle).
 */
export function summarize(profile: CpuProfile, match = "", exclude = ""): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    const delta = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    self.set(id, (self.get(id) ?? 0) + delta);
  });
  const layers = new Map<string, number>();
  const selfByLabel = new Map<string, number>();
  const totalByLabel = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    if (exclude !== "" && node.callFrame.functionName === exclude) continue;
    const layer = layerOf(node.callFrame);
    if (layer === "idle") {
      idleMs += ms;
      continue;
    }
    busyMs += ms;
    layers.set(layer, (layers.get(layer) ?? 0) + ms);
    const own = label(node.callFrame);
    selfByLabel.set(own, (selfByLabel.get(own) ?? 0) + ms);
    // Inclusive: each distinct function on the stack once.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = label(byId.get(at)!.callFrame);
      if (seen.has(name)) continue;
      seen.add(name);
      totalByLabel.set(name, (totalByLabel.get(name) ?? 0) + ms);
    }
  }
  const sorted = (map: Map<string, number>) =>
    [...map].filter(([name]) => name.includes(match)).sort((a, b) => b[1] - a[1]);
  return {
    busyMs,
    idleMs,
    layers: [...layers].sort((a, b) => b[1] - a[1]),
    self: sorted(selfByLabel),
    total: sorted(totalByLabel),
  };
}

function print(file: string, summary: ProfileSummary, top: number): void {
  const pct = (ms: number) => `${(100 * ms / summary.busyMs).toFixed(1).padStart(5)} %`;
  console.log(
    `${file}: busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`,
  );
  console.log("  by layer (self time):");
  for (const [name, ms] of summary.layers) console.log(`    ${pct(ms)}  ${name}`);
  console.log(`  top ${top} functions, self time:`);
  for (const [name, ms] of summary.self.slice(0, top)) console.log(`    ${pct(ms)}  ${name}`);
  console.log(`  top ${top} functions, including callees:`);
  for (const [name, ms] of summary.total.slice(0, top)) console.log(`    ${pct(ms)}  ${name}`);
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { top: { type: "string" }, match: { type: "string" }, exclude: { type: "string" } },
    allowPositionals: true,
  });
  const top = Number(values.top ?? 30);
  for (const file of positionals) {
    const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
    print(file, summarize(profile, values.match ?? "", values.exclude ?? ""), top);
  }
}
