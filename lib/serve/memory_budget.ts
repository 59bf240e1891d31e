// The memory serve holds on behalf of others, bounded in total and per owner: frames being received,
// replay buffers, SSE buffers, queued calls. Every holder keeps a Charge whose size it updates; past an
// owner's share that owner's new work is refused and its oldest unread streams are cut, while other
// owners are unaffected.

/** Options of {@link MemoryBudget}. */
export interface MemoryBudgetOptions {
  /** Bytes held for all owners together, at most. */
  totalBytes: number;
  /** Bytes held for one owner, at most. */
  perOwnerBytes: number;
  /** Told how many bytes were given back whenever a holder shrinks (to collect garbage when idle). */
  onRelease?: (bytes: number) => void;
}

/** How a holder's memory may be reclaimed when its owner needs room. */
export interface ChargeOptions {
  /** What holds the memory, for logs and refusals ("SSE stream", "replay buffer", …). */
  what: string;
  /**
   * Called when the owner needs room and this holder is among its oldest evictable ones: it must give
   * its memory up (cut the stream) and release the charge. Only holders that can be cut pass it.
   */
  evict?: () => void;
}

/**
 * One holder's share of the budget. Sizes only change through {@link Charge.resize} (which may refuse)
 * and {@link Charge.release}.
 */
export class Charge {
  readonly owner: string;
  readonly what: string;
  /** Order of creation, oldest first: eviction goes by it. */
  readonly serial: number;
  #bytes = 0;
  #released = false;
  #budget: MemoryBudget;
  readonly #evict: (() => void) | undefined;

  /** @internal Use {@link MemoryBudget.charge}. */
  constructor(budget: MemoryBudget, owner: string, serial: number, options: ChargeOptions) {
    this.#budget = budget;
    this.owner = owner;
    this.serial = serial;
    this.what = options.what;
    this.#evict = options.evict;
  }

  /** Bytes charged now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True once released. */
  get released(): boolean {
    return this.#released;
  }

  /** True if the holder can be cut to make room. */
  get evictable(): boolean {
    return this.#evict !== undefined;
  }

  /**
   * Sets the bytes this holder keeps. Growing may cut the owner's oldest evictable holders to make room;
   * when that is not enough, the size is left as it was and false is returned: the holder must refuse
   * what it was about to keep. Shrinking always succeeds.
   */
  resize(bytes: number): boolean {
    if (this.#released) return bytes === 0;
    const delta = bytes - this.#bytes;
    if (delta > 0 && !this.#budget.make(this, delta)) return false;
    this.#budget.apply(this, delta);
    this.#bytes = bytes;
    return true;
  }

  /** Gives all of it back; the charge is done. */
  release(): void {
    if (this.#released) return;
    this.#budget.apply(this, -this.#bytes);
    this.#bytes = 0;
    this.#released = true;
    this.#budget.forget(this);
  }

  /** @internal Called by the budget when it needs this holder's room. */
  evict(): void {
    this.#evict?.();
    this.release();
  }
}

/**
 * The budget.
 *
 * @example
 * ```ts
 * import { MemoryBudget } from "./memory_budget.ts";
 * const budget = new MemoryBudget({ totalBytes: 1000, perOwnerBytes: 600 });
 * const charge = budget.charge("alice", { what: "replay buffer" });
 * charge.resize(500); // true
 * charge.resize(700); // false: past alice's share
 * charge.release();
 * ```
 */
export class MemoryBudget {
  readonly totalBytes: number;
  readonly perOwnerBytes: number;
  #used = 0;
  #byOwner = new Map<string, number>();
  /** Live charges per owner, oldest first. */
  #charges = new Map<string, Set<Charge>>();
  #serial = 0;
  #onRelease: ((bytes: number) => void) | undefined;

  constructor(options: MemoryBudgetOptions) {
    const { totalBytes, perOwnerBytes } = options;
    if (!(totalBytes > 0) || !(perOwnerBytes > 0) || perOwnerBytes > totalBytes) {
      throw new RangeError(
        `Cannot create a memory budget as it needs 0 < perOwnerBytes <= totalBytes: current values are ${perOwnerBytes} and ${totalBytes}`,
      );
    }
    this.totalBytes = totalBytes;
    this.perOwnerBytes = perOwnerBytes;
    this.#onRelease = options.onRelease;
  }

  /** Bytes held for everyone. */
  get used(): number {
    return this.#used;
  }

  /** Bytes held for `owner`. */
  usedBy(owner: string): number {
    return this.#byOwner.get(owner) ?? 0;
  }

  /** Owners holding anything. */
  get owners(): number {
    return this.#byOwner.size;
  }

  /** A new holder's charge, at 0 bytes. */
  charge(owner: string, options: ChargeOptions): Charge {
    const charge = new Charge(this, owner, ++this.#serial, options);
    let set = this.#charges.get(owner);
    if (set === undefined) this.#charges.set(owner, set = new Set());
    set.add(charge);
    return charge;
  }

  /** @internal Makes room for `delta` more bytes of `charge`; false if it cannot. */
  make(charge: Charge, delta: number): boolean {
    const owner = charge.owner;
    if (delta > this.perOwnerBytes || delta > this.totalBytes) return false;
    const fits = () =>
      this.usedBy(owner) + delta <= this.perOwnerBytes && this.#used + delta <= this.totalBytes;
    if (fits()) return true;
    // Room comes out of the same owner only: another owner's streams are never cut for this one.
    const victims = [...(this.#charges.get(owner) ?? [])]
      .filter((c) => c !== charge && c.evictable && c.bytes > 0)
      .sort((a, b) => a.serial - b.serial);
    for (const victim of victims) {
      if (fits()) break;
      victim.evict();
    }
    return fits();
  }

  /** @internal */
  apply(charge: Charge, delta: number): void {
    if (delta === 0) return;
    if (delta < 0) this.#onRelease?.(-delta);
    this.#used += delta;
    const left = this.usedBy(charge.owner) + delta;
    if (left > 0) this.#byOwner.set(charge.owner, left);
    else this.#byOwner.delete(charge.owner);
  }

  /** @internal */
  forget(charge: Charge): void {
    const set = this.#charges.get(charge.owner);
    set?.delete(charge);
    if (set?.size === 0) this.#charges.delete(charge.owner);
  }
}
