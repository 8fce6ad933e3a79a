// Sliding-window rate limiting with a fixed number of counters per key, shared by the memory
// store (typed arrays) and the Redis store (the Lua script in redis-store.ts mirrors these
// functions line for line; change both together).
//
// The window W (ms) is cut into n sub-buckets of b ms: b = ceil(W / MAX_BUCKETS), n = ceil(W / b),
// so n <= 10 and n*b >= W. Bucket j holds the requests admitted during [j*b, (j+1)*b). At time t,
// in bucket c = floor(t / b), a request is admitted when the buckets c-n .. c (n+1 of them: the
// current partial one, n-1 whole ones, and the oldest one that only partly overlaps [t-W, t]
// counted *whole*) together hold fewer than `limit` requests.
//
// Never over-admits: let z be the last request admitted in a closed span [s, s+W] and a any
// other admitted in it. Then t_a >= t_z - W >= t_z - n*b >= (c_z - n)*b, so a was in the sum
// that z was checked against, which was < limit; hence the span holds <= limit.
//
// How early it may refuse, precisely: a request admitted at t (bucket j) keeps its slot until
// (j+n+1)*b, i.e. for a time in (n*b, (n+1)*b] instead of exactly W. The excess is at most
// (n+1)*b - W <= b + min(b-1, 9) ms, with b = ceil(W/10); for W a multiple of 10 ms it is at most
// W/10 (one sub-bucket). So a refusal means `limit` requests were admitted in the last
// (n+1)*b ms (<= W + W/10 when W is a multiple of 10), never fewer; under sustained saturation
// the throughput is at least limit per (n+1)*b, about 91% of an exact sliding window.
//
// Why 10 buckets: the error is one bucket (10% of the window) for 11 counters per key (44 bytes
// in memory, at most 11 hash fields in Redis). 20 buckets would halve the error for twice the
// memory and twice the Lua work per decision; a rate-limit policy is not that precise anyway.
//
// Clocks that step backwards are clamped to the newest bucket already written (counting
// against the later bucket keeps requests longer: conservative). A key whose window changes
// (policy reload) keeps every live count, folded into its current bucket: conservative too.
import type { RateResult } from './store.js';

export const MAX_BUCKETS = 10;

export interface Layout {
  /** n: buckets covering the window; n + 1 are counted (the oldest partial one whole). */
  readonly buckets: number;
  /** b: the width of one bucket, ms. */
  readonly bucketMs: number;
}

/** Windows longer than this (about 49 days) do not fit the memory store's 32-bit fields. */
export const MAX_WINDOW_MS = 0xffffffff;

declare const checked: unique symbol;

/**
 * A rule's limit and window, checked once when the policy is compiled (rateBudget), with its
 * bucket layout worked out: the stores trust it and check nothing per request.
 */
export interface RateBudget {
  readonly limit: number;
  /** Whole milliseconds: a fractional window is rounded up. */
  readonly windowMs: number;
  readonly layout: Layout;
  readonly [checked]: true;
}

/** Throws RangeError for a budget no store can honour. */
export function rateBudget(limit: number, windowMs: number): RateBudget {
  if (!Number.isInteger(limit) || limit < 0) throw new RangeError(`rate limit must be an integer >= 0, got ${limit}`);
  if (!Number.isFinite(windowMs) || windowMs <= 0 || windowMs > MAX_WINDOW_MS) {
    throw new RangeError(`rate window must be in (0, ${MAX_WINDOW_MS}] ms, got ${windowMs}`);
  }
  const whole = Math.ceil(windowMs);
  return { limit, windowMs: whole, layout: layoutFor(whole) } as RateBudget;
}

/** A fractional window is rounded up: a longer window only ever admits less. */
export function layoutFor(windowMs: number): Layout {
  const w = Math.ceil(windowMs);
  const bucketMs = Math.ceil(w / MAX_BUCKETS);
  return { buckets: Math.ceil(w / bucketMs), bucketMs };
}

/** How long after its start bucket `j`'s counts stop being counted: (j + n + 1) * b. */
export function releaseAt(j: number, layout: Layout): number {
  return (j + layout.buckets + 1) * layout.bucketMs;
}

/** Bucket j's position in a ring of n + 1 counters. */
export function ringIndex(j: number, layout: Layout): number {
  return j % (layout.buckets + 1);
}

/**
 * Time until `used` (the counted total, this request included when admitted) drops below
 * `limit`: the oldest buckets leave one by one. `ring[base + ringIndex(j)]` is bucket j's count
 * for j in c-n .. c.
 */
export function retryAfterMs(
  ring: ArrayLike<number>,
  base: number,
  current: number,
  layout: Layout,
  used: number,
  limit: number,
  now: number,
): number {
  if (used < limit) return 0;
  let freed = 0;
  for (let j = current - layout.buckets; j <= current; j++) {
    freed += ring[base + ringIndex(j, layout)]!;
    if (used - freed < limit) return releaseAt(j, layout) - now;
  }
  // Only reached when `used` counts more than the ring holds (one key twice in one call).
  return releaseAt(current, layout) - now;
}

/** Time until every counted bucket has left the window (0 when none holds anything). */
export function resetMs(ring: ArrayLike<number>, base: number, current: number, layout: Layout, now: number): number {
  for (let j = current; j >= current - layout.buckets; j--) {
    if (ring[base + ringIndex(j, layout)]! > 0) return releaseAt(j, layout) - now;
  }
  return 0;
}

/**
 * A limit of 0 refuses everything and stores nothing; its budget is always whole. There is no
 * time at which a slot frees, so the window is given as the hint.
 */
export function refusedByZeroLimit(budget: RateBudget): RateResult {
  return { allowed: false, limit: 0, remaining: 0, retryAfterMs: budget.windowMs, resetMs: 0 };
}
