// Order statistics for the benchmark: percentiles of latency samples and medians across repetitions.

/**
 * The p-th percentile (0..100) of the samples, nearest-rank on a sorted copy.
 *
 * @throws {RangeError} when there are no samples or p is outside 0..100
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) {
    throw new RangeError("Cannot take a percentile as 'samples' is empty");
  }
  if (!(p >= 0 && p <= 100)) {
    throw new RangeError(
      `Cannot take a percentile as 'p' must be in 0..100: current value is ${p}`,
    );
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** The median of the values that are numbers; undefined when there are none. */
export function median(values: readonly (number | undefined)[]): number | undefined {
  const present = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (present.length === 0) return undefined;
  const sorted = [...present].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
