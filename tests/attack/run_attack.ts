// One attack run, the same for the tests (tests/attack/*_test.ts) and the report (`deno task attacks`):
// a fresh serve and victim, the victim's baseline latency, the attack with serve's RSS sampled and the
// victim calling throughout, the attack's end, and serve's recovery.

import {
  mib,
  percentile,
  type Recovery,
  sampleRss,
  type ServeUnderAttack,
  startServe,
  waitForRecovery,
} from "./harness.ts";
import { startVictim, type Victim, type VictimReport } from "./victim.ts";

const MIB = 1024 * 1024;

/**
 * Polls serve's `mcp_rproxy_memory_held_bytes` (what its memory budget counts) until stopped; the peak.
 * The gauge changes without any event this process could wait on, hence the polling.
 */
function sampleHeld(serve: ServeUnderAttack, everyMs = 100): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        peak = Math.max(peak, await serve.metric("mcp_rproxy_memory_held_bytes"));
      } catch {
        // A reading lost under load; the next one counts.
      }
      if (running) await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** Victim calls measured before the attack, for its baseline latency. */
export const BASELINE_CALLS = 40;
/**
 * Victim calls measured at least while the attacker holds what it opened: a short attack (a burst of
 * frames, a refused link) still gets a latency figure of more than one call.
 */
export const MIN_ATTACK_CALLS = 10;

/** What an attack works with. */
export interface AttackContext {
  readonly serve: ServeUnderAttack;
  readonly victim: Victim;
  /**
   * What the attacker holds (sockets, tunnels, processes): disposed when the attack ends, before serve's
   * recovery is measured, and on every failure path.
   */
  readonly held: AsyncDisposableStack;
}

/** One attack scenario. */
export interface AttackScenario<T> {
  /** Short name, for the report. */
  readonly name: string;
  /** serve's flags for this attack. */
  readonly flags?: readonly string[];
  /** How much serve's RSS may rise over its baseline during the attack, in bytes. */
  readonly rssBound: number;
  /** How long serve may take to come back within 64 MiB of its baseline, in milliseconds (20 s). */
  readonly recoveryMs?: number;
  /** Runs the attack while the victim calls, and returns what the attacker saw. */
  attack(context: AttackContext): Promise<T>;
  /** Runs once the attack ended and serve recovered: what a client sees of serve then. */
  afterwards?(context: AttackContext, observed: T): Promise<void>;
}

/** What one run measured. */
export interface AttackRun<T> {
  name: string;
  /** What the attack returned. */
  observed: T;
  /** serve's RSS just before the attack, in bytes. */
  baselineRss: number;
  /** serve's highest RSS during the attack, in bytes. */
  peakRss: number;
  /** The most serve's memory budget counted as held during the attack, in bytes (sampled). */
  peakHeld: number;
  /** The bound on the rise, in bytes. */
  rssBound: number;
  /** serve's memory after the attack ended. */
  recovery: Recovery;
  /** The victim's calls before the attack, and during it. */
  victimBaseline: VictimReport;
  victimDuring: VictimReport;
  /** Duration of the attack, in milliseconds. */
  attackMs: number;
}

/**
 * Runs `scenario` against a fresh serve with a victim owner; everything started is stopped before it
 * returns or throws. Throws only when the attack itself could not be carried out; whether the bounds held
 * is for the caller to judge from the run.
 */
export async function runAttack<T>(scenario: AttackScenario<T>): Promise<AttackRun<T>> {
  await using serve = await startServe(scenario.flags);
  await using victim = await startVictim(serve);
  await using attackerHeld = new AsyncDisposableStack();
  const context: AttackContext = { serve, victim, held: attackerHeld };
  await victim.start();
  victim.split(); // The first call warms the client's connection up: not part of the baseline.
  await victim.waitForCalls(BASELINE_CALLS, 30_000);
  const victimBaseline = victim.split();
  const baselineRss = serve.memory().rss;
  const sampler = sampleRss(serve.process.pid);
  const held = sampleHeld(serve);
  const started = performance.now();
  let observed: T;
  let peakRss: number;
  let peakHeld: number;
  let attackMs: number;
  try {
    observed = await scenario.attack(context);
    attackMs = performance.now() - started;
    await victim.waitForCalls(MIN_ATTACK_CALLS, 30_000);
  } finally {
    peakRss = sampler.stop();
    peakHeld = await held.stop();
  }
  const victimDuring = await victim.stop();
  await attackerHeld.disposeAsync();
  const recovery = await waitForRecovery(serve, baselineRss, {
    ms: scenario.recoveryMs ?? 20_000,
  });
  if (recovery.ok) await scenario.afterwards?.(context, observed);
  return {
    name: scenario.name,
    observed,
    baselineRss,
    peakRss,
    peakHeld,
    rssBound: scenario.rssBound,
    recovery,
    victimBaseline,
    victimDuring,
    attackMs,
  };
}

/**
 * The bounds every attack must hold, as messages (empty when all held): serve's RSS rose by less than the
 * scenario's bound, every victim call succeeded, and serve's RSS came back within 64 MiB of its baseline.
 */
export function brokenBounds(run: AttackRun<unknown>): string[] {
  const broken: string[] = [];
  const rise = run.peakRss - run.baselineRss;
  if (rise >= run.rssBound) {
    broken.push(
      `serve's RSS rose by ${mib(rise)} (from ${mib(run.baselineRss)}), bound ${mib(run.rssBound)}`,
    );
  }
  for (const [phase, report] of [["before", run.victimBaseline], ["during", run.victimDuring]]) {
    const { ok, failed, errors } = report as VictimReport;
    if (failed > 0) broken.push(`${failed} victim calls failed ${phase} the attack: ${errors}`);
    if (ok === 0) broken.push(`no victim call succeeded ${phase} the attack`);
  }
  if (!run.recovery.ok) {
    broken.push(
      `serve's RSS stayed ${mib(run.recovery.rss - run.baselineRss)} above its baseline for ${
        (run.recovery.ms / 1000).toFixed(0)
      } s (slack ${mib(64 * MIB)})`,
    );
  }
  return broken;
}

/** p50 and p99 of a victim's latencies, in milliseconds. */
export function latency(report: VictimReport): { p50: number; p99: number } {
  return { p50: percentile(report.latenciesMs, 50), p99: percentile(report.latenciesMs, 99) };
}
