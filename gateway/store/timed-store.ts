// Times every operation of a store for the latency histogram, failures included (a Redis command
// that times out shows as a slow one), without the store itself knowing about metrics.
import type { HitOptions, RateResult, RateRule, Store } from './store.js';

export type StoreTimer = (operation: 'hit' | 'claim' | 'release' | 'put' | 'get', seconds: number) => void;

export function timedStore(store: Store, observe: StoreTimer): Store {
  // One then() rather than finally(): finally() costs two more promises and turns per operation.
  const timed = <T>(operation: Parameters<StoreTimer>[0], run: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    return run().then(
      (value) => {
        observe(operation, (performance.now() - t0) / 1000);
        return value;
      },
      (err: unknown) => {
        observe(operation, (performance.now() - t0) / 1000);
        throw err;
      },
    );
  };
  const hitNow = store.hitNow?.bind(store);
  return {
    get kind() {
      return store.kind;
    },
    get connected() {
      return store.connected;
    },
    hit: (rules: readonly RateRule[], opts?: HitOptions): Promise<RateResult[]> => timed('hit', () => store.hit(rules, opts)),
    ...(hitNow && {
      hitNow: (rules: readonly RateRule[], opts?: HitOptions): RateResult[] => {
        const t0 = performance.now();
        try {
          return hitNow(rules, opts);
        } finally {
          observe('hit', (performance.now() - t0) / 1000);
        }
      },
    }),
    claim: (key, ttlMs, holder) => timed('claim', () => store.claim(key, ttlMs, holder)),
    release: (key, holder) => timed('release', () => store.release(key, holder)),
    put: (key, value, ttlMs) => timed('put', () => store.put(key, value, ttlMs)),
    get: (key) => timed('get', () => store.get(key)),
    close: () => store.close(),
  };
}
