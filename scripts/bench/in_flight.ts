// The throughput phase's load: `width` workers that each make the next call as soon as their last one
// answered, until `total` calls were started.

/**
 * Makes `total` calls of `call`, `width` at a time; resolves once all answered.
 *
 * @example
 * ```ts
 * import { callsInFlight } from "./in_flight.ts";
 * await callsInFlight(() => Promise.resolve(), { total: 100, width: 16 });
 * ```
 */
export async function callsInFlight(
  call: () => Promise<unknown>,
  load: { total: number; width: number },
): Promise<void> {
  let started = 0;
  const worker = async () => {
    while (started < load.total) {
      started++;
      await call();
    }
  };
  await Promise.all(Array.from({ length: load.width }, worker));
}
