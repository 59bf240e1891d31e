// Typed access to npm:parse-prometheus-text-format (which ships no types) for the metrics tests.

import parsePrometheusTextFormatUntyped from "parse-prometheus-text-format";

/** One sample as the parser returns it (values stay strings, as in prom2json). */
export interface ParsedSample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

/** One metric family. */
export interface ParsedFamily {
  name: string;
  help: string;
  type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
  metrics: ParsedSample[];
}

/** Parses text exposition format; throws on an invalid line. */
export const parsePrometheus = parsePrometheusTextFormatUntyped as unknown as (
  text: string,
) => ParsedFamily[];

/** The family named `name`; throws if it is missing. */
export function family(families: ParsedFamily[], name: string): ParsedFamily {
  const found = families.find((f) => f.name === name);
  if (!found) {
    throw new Error(`No family ${name} in: ${families.map((f) => f.name).join(", ")}`);
  }
  return found;
}

/** The numeric value of the sample of `name` whose labels include `labels`; throws if missing. */
export function sampleValue(
  families: ParsedFamily[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const sample = family(families, name).metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  if (sample?.value === undefined) {
    throw new Error(`No sample of ${name} with labels ${JSON.stringify(labels)}`);
  }
  return Number(sample.value);
}
