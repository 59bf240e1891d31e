// What the benchmark reads from /proc: the resident memory of a process (now and at its peak) and a
// description of the machine.

/** Resident set sizes of one process, in bytes. */
export interface Rss {
  /** VmRSS: resident now. */
  rss: number;
  /** VmHWM: the highest VmRSS since the process started. */
  hwm: number;
}

function kib(status: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/**
 * VmRSS and VmHWM of a running process.
 *
 * @throws {Error} when the process is gone or /proc does not report them
 */
export function readRss(pid: number): Rss {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rss = kib(status, "VmRSS");
  const hwm = kib(status, "VmHWM");
  if (rss === undefined || hwm === undefined) {
    throw new Error(`Cannot read VmRSS/VmHWM of process ${pid} from /proc/${pid}/status`);
  }
  return { rss, hwm };
}

/**
 * CPU time a process has used so far, all its threads, in nanoseconds (sum of /proc/<pid>/task/<tid>/schedstat;
 * threads that already ended are not counted).
 */
export function readCpuNs(pid: number): number {
  let total = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${entry.name}/schedstat`);
      total += Number(text.split(" ")[0]);
    } catch {
      // The thread ended between listing and reading.
    }
  }
  return total;
}

/**
 * Read and write syscalls a process has made so far (`syscr`, `syscw` of /proc/<pid>/io): how many
 * writes a call costs shows whether frames are coalesced.
 */
export function readSyscalls(pid: number): { reads: number; writes: number } {
  const io = Deno.readTextFileSync(`/proc/${pid}/io`);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(io)?.[1] ?? NaN);
  return { reads: field("syscr"), writes: field("syscw") };
}

/** The machine and software the figures were measured on. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryMiB: number;
  kernel: string;
  deno: string;
  v8: string;
  typescript: string;
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** Reads nproc, the CPU model and memory from /proc, and the Deno/V8 versions of this runtime. */
export function machineInfo(): MachineInfo {
  const cpuinfo = readText("/proc/cpuinfo");
  const meminfo = readText("/proc/meminfo");
  const total = /^MemTotal:\s+(\d+) kB/m.exec(meminfo);
  return {
    cpus: navigator.hardwareConcurrency,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryMiB: total ? Math.round(Number(total[1]) / 1024) : 0,
    kernel: readText("/proc/sys/kernel/osrelease").trim() || Deno.build.os,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
}
