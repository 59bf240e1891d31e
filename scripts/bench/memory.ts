// What the layers under connect and serve cost in resident memory (issue 17, target 7): bare programs
// that load one layer each and idle, so that an RSS figure of connect or serve can be split into the
// runtime, the npm compatibility layer, node:http and ws, and our own code.

import { DenoProcess, PATHS } from "./children.ts";
import { readRss } from "./procfs.ts";
import { START_TIMEOUT_MS } from "./servers.ts";

/** The probes, in the order they add layers. */
export const MEMORY_PROBES = ["empty", "npm", "node-http", "node-http-ws"] as const;

/** VmHWM (bytes) of each probe once idle. */
export type MemoryProbes = Record<typeof MEMORY_PROBES[number], number>;

/** Starts each probe in turn and reads its VmHWM after it has idled for `settleMs`. */
export async function runMemoryProbes(settleMs = 300): Promise<MemoryProbes> {
  const out: Partial<MemoryProbes> = {};
  for (const mode of MEMORY_PROBES) {
    const probe = new DenoProcess(PATHS.memoryProbeChild, [mode]);
    try {
      await probe.waitForEvent("ready", START_TIMEOUT_MS);
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      out[mode] = readRss(probe.pid).hwm;
    } finally {
      await probe.stop();
    }
  }
  return out as MemoryProbes;
}
