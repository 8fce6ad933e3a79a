// The store for a single gateway instance. Rate-limit state lives in typed arrays, not in one
// object per key: a key costs one Map entry, its (flattened) key string, one slot->key pointer and
// 56 bytes of counters, about 160 bytes for a 42-char key (bench/store-memory.bench.ts), and the
// garbage collector has almost nothing to trace.
import {
  MAX_BUCKETS,
  layoutFor,
  refusedByZeroLimit,
  releaseAt,
  resetMs,
  retryAfterMs,
  ringIndex,
  type Layout,
} from './sliding-window.js';
import { StoreUnavailableError, type RateResult, type RateRule, type Store } from './store.js';

const RING = MAX_BUCKETS + 1;
/** Slots are allocated a page at a time, so growing never copies what exists (no pause). */
const PAGE_BITS = 14;
const PAGE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE - 1;
const SWEEP_EVERY_MS = 1000;
/** Per sweep tick: enough that a million keys are all visited every ~16 s, small enough to
 *  keep one tick around a millisecond. */
const SWEEP_SLOTS = 65536;
const SWEEP_VALUES = 16384;
/** When full, a new key first looks this far ahead of the sweep for an idle entry to reuse. */
const RECLAIM_SCAN = 256;

interface Page {
  /** RING counters per slot; bucket j of a slot sits at ringIndex(j). */
  readonly counts: Uint32Array;
  /** The newest bucket index the slot has been advanced to. */
  readonly head: Float64Array;
  /** The slot's window in ms; 0 marks a free slot. */
  readonly windowMs: Uint32Array;
}

interface Value {
  value: string;
  expiresAt: number;
}

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly connected = true;
  private readonly now: () => number;
  private readonly maxKeys: number;
  private readonly slotOf = new Map<string, number>();
  /** Slot to key, to drop the Map entry when a slot is swept. */
  private readonly keyOf: (string | undefined)[] = [];
  private readonly pages: Page[] = [];
  private readonly free: number[] = [];
  private slotCount = 0;
  private sweepCursor = 0;
  private readonly values = new Map<string, Value>();
  private valueCursor: Iterator<[string, Value]> | undefined;
  private readonly timer: NodeJS.Timeout;
  /** Layouts by window: one object per distinct window, not one per call. */
  private readonly layouts = new Map<number, Layout>();
  /** hitNow()'s working arrays, per rule of one call. */
  private readonly scratch = { slots: [] as number[], currents: [] as number[], used: [] as number[], layouts: [] as Layout[] };

  constructor(opts: { now?: () => number; maxKeys?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.maxKeys = opts.maxKeys ?? 1_000_000;
    this.timer = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
    this.timer.unref();
  }

  async hit(rules: readonly RateRule[]): Promise<RateResult[]> {
    return this.hitNow(rules);
  }

  /**
   * hit() decided on the spot: the memory store answers in process, so the rate-limit guard
   * takes the result without a promise (a request's limit then costs no turn of the event loop).
   */
  hitNow(rules: readonly RateRule[]): RateResult[] {
    const now = this.now();
    const count = rules.length;
    // Scratch space shared by every call: the decision is synchronous, so calls never overlap.
    const { slots, currents, used, layouts } = this.scratch;
    let admit = true;
    for (let i = 0; i < count; i++) {
      const { key, budget } = rules[i]!;
      if (budget.limit === 0) {
        admit = false;
        slots[i] = -1;
        continue;
      }
      const slot = this.slotFor(key, budget.windowMs, now);
      const layout = budget.layout;
      layouts[i] = layout;
      const current = this.advance(slot, layout, now);
      let sum = 0;
      const page = this.pages[slot >>> PAGE_BITS]!;
      const base = (slot & PAGE_MASK) * RING;
      for (let k = 0; k <= layout.buckets; k++) sum += page.counts[base + k]!;
      // One key named twice in a call: the earlier rule's pending count is counted too.
      for (let e = 0; e < i; e++) if (slots[e] === slot) sum++;
      slots[i] = slot;
      currents[i] = current;
      used[i] = sum;
      if (sum >= budget.limit) admit = false;
    }
    if (admit) {
      for (let i = 0; i < count; i++) {
        const slot = slots[i]!;
        const page = this.pages[slot >>> PAGE_BITS]!;
        const at = slot & PAGE_MASK;
        // The slot's own head and window, not the rule's: a later rule in this call may have
        // named the same key with another window and reshaped it.
        page.counts[at * RING + ringIndex(page.head[at]!, this.layout(page.windowMs[at]!))]!++;
        used[i]!++;
      }
    }
    const results = new Array<RateResult>(count);
    for (let i = 0; i < count; i++) {
      const { budget } = rules[i]!;
      const slot = slots[i]!;
      if (slot < 0) {
        results[i] = refusedByZeroLimit(budget);
        continue;
      }
      const layout = layouts[i]!;
      const page = this.pages[slot >>> PAGE_BITS]!;
      const base = (slot & PAGE_MASK) * RING;
      const current = currents[i]!;
      const u = used[i]!;
      // Without `admit`, a rule that had room reports its own verdict and was not charged.
      const allowed = admit || u < budget.limit;
      results[i] = {
        allowed,
        limit: budget.limit,
        remaining: Math.max(0, budget.limit - u),
        retryAfterMs: retryAfterMs(page.counts, base, current, layout, u, budget.limit, now),
        resetMs: resetMs(page.counts, base, current, layout, now),
      };
    }
    return results;
  }

  async claim(key: string, ttlMs: number, holder = '1'): Promise<boolean> {
    const now = this.now();
    const held = this.values.get(key);
    if (held !== undefined && held.expiresAt > now) return false;
    this.setValue(key, holder, ttlMs, now, held);
    return true;
  }

  async release(key: string, holder: string): Promise<void> {
    if (this.values.get(key)?.value === holder) this.values.delete(key);
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    const now = this.now();
    this.setValue(key, value, ttlMs, now, this.values.get(key));
  }

  async get(key: string): Promise<string | undefined> {
    const held = this.values.get(key);
    if (held === undefined) return undefined;
    if (held.expiresAt <= this.now()) {
      this.values.delete(key);
      return undefined;
    }
    return held.value;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }

  private setValue(key: string, value: string, ttlMs: number, now: number, held: Value | undefined): void {
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw new RangeError(`ttl for ${key} must be a positive number of ms, got ${ttlMs}`);
    if (held !== undefined) {
      held.value = value;
      held.expiresAt = now + ttlMs;
      return;
    }
    if (this.values.size >= this.maxKeys) this.sweepValues(now, RECLAIM_SCAN);
    if (this.values.size >= this.maxKeys) {
      throw new StoreUnavailableError(`memory store holds ${this.maxKeys} values, its maximum`);
    }
    this.values.set(key, { value, expiresAt: now + ttlMs });
  }

  private layout(windowMs: number): Layout {
    let layout = this.layouts.get(windowMs);
    if (layout === undefined) {
      layout = layoutFor(windowMs);
      this.layouts.set(windowMs, layout);
    }
    return layout;
  }

  private slotFor(key: string, windowMs: number, now: number): number {
    const found = this.slotOf.get(key);
    if (found !== undefined) {
      const page = this.pages[found >>> PAGE_BITS]!;
      const at = found & PAGE_MASK;
      if (page.windowMs[at] !== windowMs) this.reshape(page, at, windowMs, now);
      return found;
    }
    const slot = this.allocate(now);
    // A key built by concatenation is, in V8, a tree of its parts: about 270 bytes for a 42-char
    // key instead of 64. Reading a character flattens it in place, and the next GC drops the
    // parts. Measured by bench/store-memory.bench.ts.
    key.charCodeAt(0);
    const page = this.pages[slot >>> PAGE_BITS]!;
    const at = slot & PAGE_MASK;
    page.windowMs[at] = windowMs;
    page.head[at] = 0;
    page.counts.fill(0, at * RING, at * RING + RING);
    this.slotOf.set(key, slot);
    this.keyOf[slot] = key;
    return slot;
  }

  /**
   * The window of a key changed (policy reload): everything it still counts moves into its
   * newest bucket, so those requests are counted at least as long as before.
   */
  private reshape(page: Page, at: number, windowMs: number, now: number): void {
    const base = at * RING;
    let sum = 0;
    for (let k = 0; k < RING; k++) sum += page.counts[base + k]!;
    page.counts.fill(0, base, base + RING);
    const layout = this.layout(windowMs);
    const current = Math.floor(now / layout.bucketMs);
    page.head[at] = current;
    page.counts[base + ringIndex(current, layout)] = sum;
    page.windowMs[at] = windowMs;
  }

  /** Moves the slot's ring to the current bucket, zeroing the buckets that left the window. */
  private advance(slot: number, layout: Layout, now: number): number {
    const page = this.pages[slot >>> PAGE_BITS]!;
    const at = slot & PAGE_MASK;
    const head = page.head[at]!;
    const current = Math.max(Math.floor(now / layout.bucketMs), head);
    if (current === head) return current;
    const base = at * RING;
    if (current - head > layout.buckets) {
      page.counts.fill(0, base, base + RING);
    } else {
      for (let j = head + 1; j <= current; j++) page.counts[base + ringIndex(j, layout)] = 0;
    }
    page.head[at] = current;
    return current;
  }

  private allocate(now: number): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.slotOf.size >= this.maxKeys) {
      this.sweepSlots(now, RECLAIM_SCAN);
      const reclaimed = this.free.pop();
      if (reclaimed !== undefined) return reclaimed;
      throw new StoreUnavailableError(`memory store holds ${this.maxKeys} rate-limit keys, its maximum`);
    }
    const slot = this.slotCount++;
    if (slot >>> PAGE_BITS === this.pages.length) {
      this.pages.push({
        counts: new Uint32Array(PAGE * RING),
        head: new Float64Array(PAGE),
        windowMs: new Uint32Array(PAGE),
      });
    }
    return slot;
  }

  private sweep(): void {
    const now = this.now();
    this.sweepSlots(now, SWEEP_SLOTS);
    this.sweepValues(now, SWEEP_VALUES);
  }

  /** Frees the slots, among the next `budget`, whose every bucket has left the window. */
  private sweepSlots(now: number, budget: number): void {
    const total = this.slotCount;
    if (total === 0) return;
    for (let n = Math.min(budget, total); n > 0; n--) {
      const slot = this.sweepCursor;
      this.sweepCursor = slot + 1 === total ? 0 : slot + 1;
      const page = this.pages[slot >>> PAGE_BITS]!;
      const at = slot & PAGE_MASK;
      const windowMs = page.windowMs[at]!;
      if (windowMs === 0) continue;
      const layout = this.layout(windowMs);
      if (now < releaseAt(page.head[at]!, layout)) continue;
      page.windowMs[at] = 0;
      this.slotOf.delete(this.keyOf[slot]!);
      this.keyOf[slot] = undefined;
      this.free.push(slot);
    }
  }

  /** Drops the expired values among the next `budget`. */
  private sweepValues(now: number, budget: number): void {
    for (let n = budget; n > 0; n--) {
      this.valueCursor ??= this.values.entries();
      const next = this.valueCursor.next();
      if (next.done === true) {
        this.valueCursor = undefined;
        return;
      }
      if (next.value[1].expiresAt <= now) this.values.delete(next.value[0]);
    }
  }
}
