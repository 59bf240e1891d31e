// Re-registration after a drop, as the gateway sees it: connect carries calls on a healthy link, the
// gateway in this process drops the link (and, once, stops listening for a while), and the time until
// connect's next `register` is acknowledged is read on the gateway's own clock.

import { HEALTHY_WITH_CALLS_AFTER_MS } from "../../lib/connect/reconnect_schedule.ts";
import { ContractAClient, WsAcceptor } from "./clients.ts";
import { DenoProcess } from "./children.ts";
import type { ProgramOptions } from "./paths.ts";
import { connectArgs, ids, INITIALIZE, INITIALIZED, START_TIMEOUT_MS } from "./servers.ts";
import { median } from "./stats.ts";
import { mcpMessages } from "./workload.ts";

/** What one repetition measured, in milliseconds. */
export interface ReconnectFigures {
  /** Each drop of a healthy link (gateway up) → the next registration acknowledged. */
  droppedSamples: number[];
  /** Their median. */
  droppedMs: number;
  /** The gateway listening again after `downMs` → the next registration acknowledged. */
  restartMs: number;
  downMs: number;
}

/** Options of {@link runReconnect}. */
export interface ReconnectOptions {
  /** Drops of a healthy link with the gateway up. */
  drops: number;
  /** How long the gateway stays down before it listens again. */
  downMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Makes the link healthy as connect defines it: it carries calls and stays up past the threshold. */
async function healthy(link: ContractAClient, nextId: () => number): Promise<void> {
  const echo = mcpMessages(false).echo;
  for (let i = 0; i < 20; i++) {
    const id = nextId();
    const answer = await link.call(id, echo(id));
    if (answer.error !== undefined) throw new Error(`echo: ${JSON.stringify(answer.error)}`);
  }
  const upMs = performance.now() - link.registeredAt;
  await sleep(Math.max(0, HEALTHY_WITH_CALLS_AFTER_MS + 100 - upMs));
}

/** One connect with the demo server; `drops` drops with the gateway up, then one outage of `downMs`. */
export async function runReconnect(
  programOptions: ProgramOptions,
  options: ReconnectOptions,
): Promise<ReconnectFigures> {
  let acceptor = new WsAcceptor();
  const port = acceptor.port;
  const connect = new DenoProcess(programOptions.script, connectArgs(acceptor.url, "demo"), {
    denoFlags: programOptions.denoFlags,
  });
  const nextId = ids();
  try {
    let link = await ContractAClient.accept(acceptor, START_TIMEOUT_MS);
    const init = await link.call(0, INITIALIZE);
    if (init.error !== undefined) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
    link.notify(INITIALIZED);
    const droppedSamples: number[] = [];
    for (let drop = 0; drop < options.drops; drop++) {
      await healthy(link, nextId);
      const droppedAt = performance.now();
      link.drop(1011, "bench: the gateway dropped the link");
      link = await ContractAClient.accept(acceptor, START_TIMEOUT_MS);
      droppedSamples.push(link.registeredAt - droppedAt);
    }
    await healthy(link, nextId);
    await acceptor.close();
    await sleep(options.downMs);
    acceptor = new WsAcceptor(port);
    const listeningAt = performance.now();
    link = await ContractAClient.accept(acceptor, START_TIMEOUT_MS);
    const restartMs = link.registeredAt - listeningAt;
    await healthy(link, nextId);
    return {
      droppedSamples,
      droppedMs: median(droppedSamples) ?? NaN,
      restartMs,
      downMs: options.downMs,
    };
  } finally {
    await connect.stop();
    await acceptor.close();
  }
}
