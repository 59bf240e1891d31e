// A small dependency-free Prometheus registry (text exposition format 0.0.4). Updates are a field write:
// label strings are rendered once, at creation.

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Default histogram buckets in seconds, for network round trips and handshakes. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

/** Formats a sample value: integers without a fraction, `+Inf`, `-Inf`, `NaN`. */
function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

/** Escapes a label value: backslash, double quote and line feed. */
function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Escapes HELP text: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** `{a="x",b="y"}`, or "" without labels. */
function renderLabels(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((name, i) => `${name}="${escapeLabelValue(values[i] ?? "")}"`).join(",")}}`;
}

/** One sample source in a family; `render` appends its lines. */
interface Collectable {
  collect(lines: string[]): void;
}

/** A value that only goes up. */
export class Counter implements Collectable {
  #value = 0;
  readonly #series: string;

  /** @internal Use {@link MetricsRegistry.counter} or {@link CounterVec.labels}. */
  constructor(series: string) {
    this.#series = series;
  }

  /** Adds `amount` (default 1). Throws a `RangeError` if it is negative or not a number. */
  inc(amount = 1): void {
    if (!(amount >= 0)) {
      throw new RangeError(
        `Cannot increase counter as 'amount' must be >= 0: current value is ${amount}`,
      );
    }
    this.#value += amount;
  }

  /** The current value. */
  get value(): number {
    return this.#value;
  }

  /** @internal */
  collect(lines: string[]): void {
    lines.push(`${this.#series} ${formatValue(this.#value)}`);
  }
}

/** A value that goes up and down, or is read from a function at render time. */
export class Gauge implements Collectable {
  #value = 0;
  #read: (() => number) | undefined;
  readonly #series: string;

  /** @internal Use {@link MetricsRegistry.gauge} or {@link GaugeVec.labels}. */
  constructor(series: string) {
    this.#series = series;
  }

  /** Sets the value. */
  set(value: number): void {
    this.#value = value;
  }

  /** Adds `amount` (default 1). */
  inc(amount = 1): void {
    this.#value += amount;
  }

  /** Subtracts `amount` (default 1). */
  dec(amount = 1): void {
    this.#value -= amount;
  }

  /** Reads the value from `read` at every render instead (for sizes of maps the owner keeps anyway). */
  track(read: () => number): void {
    this.#read = read;
  }

  /** The current value. */
  get value(): number {
    return this.#read ? this.#read() : this.#value;
  }

  /** @internal */
  collect(lines: string[]): void {
    lines.push(`${this.#series} ${formatValue(this.value)}`);
  }
}

/** Observations counted into fixed cumulative buckets, with their sum and count. */
export class Histogram implements Collectable {
  readonly #bounds: readonly number[];
  readonly #counts: Float64Array;
  readonly #bucketSeries: readonly string[];
  readonly #name: string;
  #sum = 0;
  #count = 0;

  /** @internal Use {@link MetricsRegistry.histogram}. */
  constructor(name: string, bounds: readonly number[]) {
    this.#name = name;
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
    this.#bucketSeries = [...bounds.map(formatValue), "+Inf"].map((le) =>
      `${name}_bucket{le="${le}"}`
    );
  }

  /** Records one observation. */
  observe(value: number): void {
    let i = 0;
    while (i < this.#bounds.length && value > (this.#bounds[i] as number)) i++;
    this.#counts[i] = (this.#counts[i] as number) + 1;
    this.#sum += value;
    this.#count++;
  }

  /** Number of observations. */
  get count(): number {
    return this.#count;
  }

  /** Sum of all observations. */
  get sum(): number {
    return this.#sum;
  }

  /** @internal */
  collect(lines: string[]): void {
    let cumulative = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      cumulative += this.#counts[i] as number;
      lines.push(`${this.#bucketSeries[i]} ${formatValue(cumulative)}`);
    }
    lines.push(`${this.#name}_sum ${formatValue(this.#sum)}`);
    lines.push(`${this.#name}_count ${formatValue(this.#count)}`);
  }
}

/** A family of series that differ by label values; children are created once and kept. */
abstract class MetricVec<T extends Collectable> implements Collectable {
  readonly #name: string;
  readonly #labelNames: readonly string[];
  readonly #children = new Map<string, T>();

  constructor(name: string, labelNames: readonly string[]) {
    this.#name = name;
    this.#labelNames = labelNames;
  }

  protected abstract create(series: string): T;

  /**
   * The child for these label values, in the order of the label names. Bind it once where the value is
   * known; a lookup with one label is a map access, with several it builds a key.
   */
  labels(...values: string[]): T {
    if (values.length !== this.#labelNames.length) {
      throw new TypeError(
        `Cannot select series of ${this.#name} as it has labels (${
          this.#labelNames.join(", ")
        }): got ${values.length} values`,
      );
    }
    const key = values.length === 1 ? values[0] as string : JSON.stringify(values);
    let child = this.#children.get(key);
    if (child === undefined) {
      child = this.create(`${this.#name}${renderLabels(this.#labelNames, values)}`);
      this.#children.set(key, child);
    }
    return child;
  }

  /** @internal */
  collect(lines: string[]): void {
    for (const child of this.#children.values()) child.collect(lines);
  }
}

/** Counters by label values. */
export class CounterVec extends MetricVec<Counter> {
  protected create(series: string): Counter {
    return new Counter(series);
  }
}

/** Gauges by label values. */
export class GaugeVec extends MetricVec<Gauge> {
  protected create(series: string): Gauge {
    return new Gauge(series);
  }
}

/** Name and help of a metric. */
export interface MetricOptions {
  /** Metric name; counters must end in `_total`. */
  name: string;
  /** One line on what it counts, for the HELP line. */
  help: string;
}

/** Options of a labelled metric. */
export interface VecOptions extends MetricOptions {
  /** Label names, in the order {@link MetricVec.labels} takes values. */
  labelNames: readonly string[];
  /** Label values to create up front, so that their series show 0 before the first event. */
  initial?: readonly (readonly string[])[];
}

/** Options of {@link MetricsRegistry.histogram}. */
export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, ascending; {@link DURATION_BUCKETS} when omitted. `+Inf` is implied. */
  buckets?: readonly number[];
}

interface Family {
  header: string;
  source: Collectable;
}

/**
 * A set of metrics rendered together in the Prometheus text exposition format 0.0.4.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./prometheus.ts";
 * const registry = new MetricsRegistry();
 * const frames = registry.counterVec({
 *   name: "demo_frames_total",
 *   help: "Frames by direction.",
 *   labelNames: ["direction"],
 * });
 * const framesIn = frames.labels("in");
 * framesIn.inc();
 * registry.render(); // "# HELP demo_frames_total Frames by direction.\n# TYPE …"
 * ```
 */
export class MetricsRegistry {
  readonly #families: Family[] = [];
  readonly #names = new Set<string>();

  #register(options: MetricOptions, type: string, source: Collectable): void {
    const { name, help } = options;
    if (!METRIC_NAME.test(name)) {
      throw new TypeError(
        `Cannot register metric as its name is not valid: current value is "${name}"`,
      );
    }
    if (type === "counter" && !name.endsWith("_total")) {
      throw new TypeError(
        `Cannot register counter as its name must end in _total: current value is "${name}"`,
      );
    }
    if (this.#names.has(name)) {
      throw new TypeError(`Cannot register metric as the name is taken: "${name}"`);
    }
    this.#names.add(name);
    this.#families.push({
      header: `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}`,
      source,
    });
  }

  #checkLabels(options: VecOptions): void {
    for (const label of options.labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__")) {
        throw new TypeError(
          `Cannot register ${options.name} as label name is not valid: current value is "${label}"`,
        );
      }
    }
  }

  /** Registers an unlabelled counter. */
  counter(options: MetricOptions): Counter {
    const counter = new Counter(options.name);
    this.#register(options, "counter", counter);
    return counter;
  }

  /** Registers a labelled counter. */
  counterVec(options: VecOptions): CounterVec {
    this.#checkLabels(options);
    const vec = new CounterVec(options.name, options.labelNames);
    this.#register(options, "counter", vec);
    for (const values of options.initial ?? []) vec.labels(...values);
    return vec;
  }

  /** Registers an unlabelled gauge. */
  gauge(options: MetricOptions): Gauge {
    const gauge = new Gauge(options.name);
    this.#register(options, "gauge", gauge);
    return gauge;
  }

  /** Registers a labelled gauge. */
  gaugeVec(options: VecOptions): GaugeVec {
    this.#checkLabels(options);
    const vec = new GaugeVec(options.name, options.labelNames);
    this.#register(options, "gauge", vec);
    for (const values of options.initial ?? []) vec.labels(...values);
    return vec;
  }

  /** Registers an unlabelled histogram. */
  histogram(options: HistogramOptions): Histogram {
    const { buckets = DURATION_BUCKETS } = options;
    for (let i = 0; i < buckets.length; i++) {
      const bound = buckets[i] as number;
      if (!Number.isFinite(bound) || (i > 0 && bound <= (buckets[i - 1] as number))) {
        throw new RangeError(
          `Cannot register ${options.name} as buckets must be finite and ascending: current value is [${
            buckets.join(", ")
          }]`,
        );
      }
    }
    const histogram = new Histogram(options.name, [...buckets]);
    this.#register(options, "histogram", histogram);
    return histogram;
  }

  /** All metrics in the text exposition format 0.0.4, ending in a line feed. */
  render(): string {
    const lines: string[] = [];
    for (const family of this.#families) {
      lines.push(family.header);
      family.source.collect(lines);
    }
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }
}
