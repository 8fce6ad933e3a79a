// Times every operation of a store for the latency histogram, failures included (a Redis command
// that times out shows as a slow one), without the store itself knowing about metrics.
import type { HitOptions, RateResult, RateRule, Store } from './store.js';

export type StoreTimer = (operation: 'hit' | 'claim' | 'release' | 'put' | 'get', seconds: number) => void;

export function timedStore(store: Store, observe: StoreTimer): Store {
  const timed = <T>(operation: Parameters<StoreTimer>[0], run: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    return run().finally(() => observe(operation, (performance.now() - t0) / 1000));
  };
  return {
    get kind() {
      return store.kind;
    },
    get connected() {
      return store.connected;
    },
    hit: (rules: readonly RateRule[], opts?: HitOptions): Promise<RateResult[]> => timed('hit', () => store.hit(rules, opts)),
    claim: (key, ttlMs, holder) => timed('claim', () => store.claim(key, ttlMs, holder)),
    release: (key, holder) => timed('release', () => store.release(key, holder)),
    put: (key, value, ttlMs) => timed('put', () => store.put(key, value, ttlMs)),
    get: (key) => timed('get', () => store.get(key)),
    close: () => store.close(),
  };
}
