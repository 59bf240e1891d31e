// `deno task mutants`: applies each of a list of small deliberate bugs, one at a time, to a copy of the
// tree, runs only the tests that should catch it, and reports every bug that survived. A test suite that
// lets a mutant through does not guard the rule the mutant breaks. Exits 1 if any mutant survived or no
// longer applies (the code it targets moved: update the list).
//
//   deno task mutants              every mutant
//   deno task mutants replay       only mutants whose id contains "replay"

import { type Mutant, MUTANTS } from "./mutants/list.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** A mutant whose tests run longer than this is counted as killed by timeout (a hang is a failure). */
const TIMEOUT_MS = 120_000;

type Outcome = "killed" | "survived" | "not-applicable" | "timeout";

/** Copies what the tests need into a fresh directory; node_modules is linked, not copied. */
async function makeCopy(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "mcp-rproxy-mutants-" });
  for (const entry of ["main.ts", "deno.json", "deno.lock", "lib", "tests", "scripts", "docs"]) {
    const status = await new Deno.Command("cp", { args: ["-R", `${ROOT}${entry}`, dir] }).output();
    if (!status.success) throw new Error(`Cannot copy ${entry} to ${dir}`);
  }
  await Deno.symlink(`${ROOT}node_modules`, `${dir}/node_modules`);
  return dir;
}

/** Applies `mutant` to the copy; returns the original text to restore, or undefined if it does not apply. */
async function apply(dir: string, mutant: Mutant): Promise<string | undefined> {
  const path = `${dir}/${mutant.file}`;
  const original = await Deno.readTextFile(path);
  const count = original.split(mutant.find).length - 1;
  if (count !== 1) return undefined;
  await Deno.writeTextFile(path, original.replace(mutant.find, mutant.replace));
  return original;
}

async function runTests(dir: string, mutant: Mutant): Promise<"pass" | "fail" | "timeout"> {
  const args = ["test", "--allow-all", "--no-check", "--quiet", "--fail-fast"];
  if (mutant.filter !== undefined) args.push("--filter", mutant.filter);
  args.push(...mutant.tests);
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: dir,
    stdout: "null",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([child.status, timedOut]);
    if (result === "timeout") {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
      return "timeout";
    }
    return result.success ? "pass" : "fail";
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `items` through `work` on `jobs` workers, each with a copy of the tree of its own (a mutant is
 * written into its worker's copy, so two never meet).
 */
async function onWorkers<T>(
  jobs: number,
  items: T[],
  work: (dir: string, item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const dirs = await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, makeCopy));
  try {
    await Promise.all(dirs.map(async (dir) => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await work(dir, item);
      }
    }));
  } finally {
    await Promise.all(dirs.map((dir) => Deno.remove(dir, { recursive: true })));
  }
}

/**
 * Workers at once: four on two cores, as the tests of one mutant mostly wait on processes and sockets
 * (197 mutants: 466 s with two workers, 277 s with three; 216 mutants: 312 s with three, 274 s with
 * four; every one killed in each).
 */
const JOBS = 4;

async function main(args: string[]): Promise<number> {
  const only = args[0];
  const chosen = only === undefined ? MUTANTS : MUTANTS.filter((m) => m.id.includes(only));
  if (chosen.length === 0) {
    console.error(`No mutant id contains '${only}'`);
    return 2;
  }
  const started = performance.now();
  // Without a bug in place every chosen test must pass, or a "killed" would mean nothing.
  const baselines = new Map<string, Mutant>();
  for (const mutant of chosen) {
    baselines.set(`${mutant.tests.join(" ")}|${mutant.filter}`, mutant);
  }
  const broken: string[] = [];
  await onWorkers(JOBS, [...baselines.values()], async (dir, mutant) => {
    const run = await runTests(dir, mutant);
    if (run !== "pass") {
      broken.push(
        `The tests of ${mutant.id} (${mutant.tests.join(", ")}${
          mutant.filter ? `, filter '${mutant.filter}'` : ""
        }) ${run === "fail" ? "fail" : "time out"} without any bug in place: fix them first`,
      );
    }
  });
  if (broken.length > 0) {
    for (const line of broken) console.error(line);
    return 1;
  }
  console.log(`${baselines.size} test selections pass unmutated\n`);
  const results: { mutant: Mutant; outcome: Outcome; seconds: number }[] = [];
  await onWorkers(JOBS, chosen, async (dir, mutant) => {
    const start = performance.now();
    const original = await apply(dir, mutant);
    let outcome: Outcome;
    if (original === undefined) outcome = "not-applicable";
    else {
      try {
        const run = await runTests(dir, mutant);
        outcome = run === "pass" ? "survived" : run === "fail" ? "killed" : "timeout";
      } finally {
        await Deno.writeTextFile(`${dir}/${mutant.file}`, original);
      }
    }
    const seconds = (performance.now() - start) / 1000;
    results.push({ mutant, outcome, seconds });
    console.log(
      `${outcome.padEnd(14)} ${seconds.toFixed(1).padStart(5)} s  ${mutant.id}: ${mutant.rule}`,
    );
  });
  const bad = results.filter((r) => r.outcome === "survived" || r.outcome === "not-applicable");
  const total = ((performance.now() - started) / 1000).toFixed(0);
  console.log(
    `\n${results.length - bad.length} of ${results.length} mutants killed in ${total} s`,
  );
  for (const { mutant, outcome } of bad) {
    console.log(
      outcome === "survived"
        ? `SURVIVED ${mutant.id} (${mutant.file}): no test in ${
          mutant.tests.join(", ")
        } guards "${mutant.rule}"`
        : `NOT APPLICABLE ${mutant.id}: the text it changes is not found exactly once in ${mutant.file}`,
    );
  }
  return bad.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
