// "Did you mean …?": the known name nearest to a mistyped one, by edit distance.

/**
 * The candidate nearest to `name`, ignoring case and `-`/`_`, when it is near enough to be a typo
 * (at most 2 edits, or 40 % of the name's length for longer names); otherwise undefined.
 *
 * @example
 * ```ts
 * import { closest } from "./did_you_mean.ts";
 * closest("--max-retry", ["--max-retries", "--keepalive"]); // "--max-retries"
 * closest("--zzzzzzzz", ["--max-retries", "--keepalive"]); // undefined
 * ```
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const flat = (text: string) => text.toLowerCase().replaceAll(/[-_]/g, "");
  const target = flat(name);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(target, flat(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.ceil(target.length * 0.4)) ? best : undefined;
}

/**
 * Levenshtein distance: the fewest single-character insertions, deletions and substitutions that
 * turn `a` into `b`.
 *
 * @example
 * ```ts
 * import { editDistance } from "./did_you_mean.ts";
 * editDistance("kitten", "sitting"); // 3
 * ```
 */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
    }
    previous = current;
  }
  return previous[b.length]!;
}
