// The state the gateway shares between requests, and between instances when it is Redis:
// sliding-window rate-limit counters, one-time claims (callback nonces, login codes) and small
// values with a lifetime (login sessions). One interface, two implementations (memory, redis),
// one contract test suite run against both.
import { GatewayError } from '../errors.js';

import type { RateBudget } from './sliding-window.js';

/** One rate-limit rule applied to one key, e.g. `rl:api:openid:oABC`. */
export interface RateRule {
  /** Logical key; the store adds its own prefix and hash tag. */
  readonly key: string;
  /** Checked when the policy was compiled (rateBudget): shared by every request of the rule. */
  readonly budget: RateBudget;
}

export interface RateResult {
  readonly allowed: boolean;
  readonly limit: number;
  /** Requests still admitted now (after counting this one when it was admitted). */
  readonly remaining: number;
  /** Milliseconds until the budget has at least one free slot again (0 when remaining > 0). */
  readonly retryAfterMs: number;
  /** Milliseconds until the budget is whole again (for RateLimit-Reset). */
  readonly resetMs: number;
}

export interface HitOptions {
  /**
   * The request goes through even when the store cannot answer (`on_unavailable: allow`). Then a
   * count the store makes after it gave up stays: it counts a request that really was admitted,
   * so the limit still holds for the ones that follow. Without it, a request the store could not
   * answer is refused, and any such count is taken back.
   */
  readonly admitsUnanswered?: boolean;
}

export interface Store {
  readonly kind: 'memory' | 'redis';
  /** Whether the store can answer now (memory: always; Redis: connected), for the up gauge. */
  readonly connected: boolean;
  /**
   * Decides every rule for one request. The request is admitted only when every rule admits it;
   * the guarantee per key: no span of `windowMs` ever admits more than `limit` requests.
   * Rejects with StoreUnavailableError when the store cannot decide within command_timeout of
   * sending the command (a busy event loop's lag not counted); such a request is not charged,
   * unless `opts.admitsUnanswered`.
   */
  hit(rules: readonly RateRule[], opts?: HitOptions): Promise<RateResult[]>;
  /**
   * hit() decided synchronously, on a store that answers in process (memory): the same decision
   * and count, without a promise. Absent on stores that must wait for an answer (Redis, a
   * worker's IPC store); callers then use hit().
   */
  hitNow?(rules: readonly RateRule[], opts?: HitOptions): RateResult[];
  /**
   * true the first time `key` is claimed within `ttlMs`; false while an earlier claim lives.
   * `holder` (default `1`) is what the claim holds, so that only its claimer can release it.
   */
  claim(key: string, ttlMs: number, holder?: string): Promise<boolean>;
  /** Gives a claim back: removes `key` only while `holder` still holds it (compare and delete). */
  release(key: string, holder: string): Promise<void>;
  put(key: string, value: string, ttlMs: number): Promise<void>;
  get(key: string): Promise<string | undefined>;
  close(): Promise<void>;
}

/**
 * The store could not answer (down, slow past command_timeout, not yet connected). It carries its
 * reason like every GatewayError; only the rate-limit guard may admit a request despite it
 * (`on_unavailable: allow`).
 */
export class StoreUnavailableError extends GatewayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_unavailable', message, options);
    this.name = 'StoreUnavailableError';
  }
}
