// One contract, two stores: the memory store on a fake clock, the Redis store on a real
// redis-server, which times windows by its own clock. What depends on time passing precisely
// (a slot freeing neither early nor late) is tested on the fake clock; the Redis store runs the
// same arithmetic (sliding-window.ts mirrors its script) and is held to what no amount of
// slowness can change: long windows for what must still be refused, and for what must have
// expired, a wait that only a slower machine makes longer.
// The suite itself is test/helpers/store-contract.ts, which the cluster and sentinel tests run too.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { layoutFor, rateBudget, releaseAt } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError } from '../../gateway/store/store.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { held, hitOne, rule, storeContract } from '../helpers/store-contract.js';

let clock = 1_000_000;
storeContract(
  'memory',
  async () => ({
    open: async () => new MemoryStore({ now: () => clock }),
    advance: async (ms) => {
      clock += ms;
    },
    now: () => clock,
    realClock: false,
  }),
  async () => undefined,
);

let redis: TestRedis;
storeContract(
  'redis',
  async () => {
    redis = await startRedis();
    const logger = pino({ level: 'silent' });
    return {
      open: async (prefix) => {
        const store = new RedisStore({ url: redis.url, keyPrefix: prefix, commandTimeoutMs: 2000, logger });
        assert.equal(await store.connect(), true);
        return store;
      },
      // A timer never fires early: at least `ms` pass, on the clock Redis reads too.
      advance: (ms) => new Promise((r) => setTimeout(r, ms)),
      now: () => Date.now(),
      realClock: true,
    };
  },
  async () => redis.stop(),
);

describe('memory store only: time on a fake clock', () => {
  test('the window slides: each slot frees when its bucket leaves, never before the window has passed', async () => {
    let now = 3_000_000;
    const store = new MemoryStore({ now: () => now });
    const r = rule('rl:slide', 2, 300);
    assert.equal((await hitOne(store, r)).allowed, true);
    now += 150;
    assert.equal((await hitOne(store, r)).allowed, true);
    const refused = await hitOne(store, r);
    assert.equal(refused.allowed, false);
    // The first admission (150 ms ago, give or take a bucket) is the first to leave.
    assert.ok(refused.retryAfterMs > 100 && refused.retryAfterMs <= held(300) - 150, `retryAfterMs ${refused.retryAfterMs}`);
    assert.ok(refused.resetMs > 250 && refused.resetMs <= held(300), `resetMs ${refused.resetMs}`);
    now += refused.retryAfterMs - 1;
    assert.equal((await hitOne(store, r)).allowed, false, 'a slot freed before its time');
    now += 1;
    const again = await hitOne(store, r);
    assert.equal(again.allowed, true);
    assert.equal(again.remaining, 0);
    assert.equal((await hitOne(store, r)).allowed, false, 'the second admission still counts');
    now += again.resetMs;
    const whole = await hitOne(store, r);
    assert.deepEqual([whole.allowed, whole.remaining], [true, 1]);
    await store.close();
  });

  test('after a window change the counts leave with the new window, not the old one', async () => {
    let now = 4_000_000;
    const store = new MemoryStore({ now: () => now });
    for (let i = 0; i < 3; i++) assert.equal((await hitOne(store, rule('rl:reload', 3, 10_000))).allowed, true);
    now += 50;
    const shorter = await hitOne(store, rule('rl:reload', 3, 300));
    assert.equal(shorter.allowed, false);
    now += shorter.resetMs - 1;
    assert.equal((await hitOne(store, rule('rl:reload', 3, 300))).allowed, false, 'freed before the new window had passed');
    now += 1;
    assert.equal((await hitOne(store, rule('rl:reload', 3, 300))).allowed, true);
    await store.close();
  });

  test('a claim and a value live exactly their ttl', async () => {
    let now = 4_500_000;
    const store = new MemoryStore({ now: () => now });
    assert.equal(await store.claim('n', 200), true);
    await store.put('v', 'x', 200);
    now += 199;
    assert.equal(await store.claim('n', 200), false);
    assert.equal(await store.get('v'), 'x');
    now += 1;
    assert.equal(await store.claim('n', 200), true);
    assert.equal(await store.get('v'), undefined);
    await store.close();
  });
});

describe('rate budgets', () => {
  test('a budget no store can honour is refused when it is compiled, not on a request', () => {
    assert.throws(() => rateBudget(-1, 1000), RangeError);
    assert.throws(() => rateBudget(1, 0), RangeError);
    assert.throws(() => rateBudget(1.5, 1000), RangeError);
    assert.throws(() => rateBudget(1, Number.POSITIVE_INFINITY), RangeError);
    assert.throws(() => rateBudget(1, 2 ** 32), RangeError);
    assert.deepEqual({ ...rateBudget(5, 999.5) }, { limit: 5, windowMs: 1000, layout: layoutFor(1000) });
  });
});

describe('memory store only: bounded memory', () => {
  test('a full store refuses new keys as unavailable, and reuses the slots of idle keys', async () => {
    let now = 5_000_000;
    const store = new MemoryStore({ now: () => now, maxKeys: 2 });
    const r = (k: string) => rule(k, 1, 1000);
    await store.hit([r('a')]);
    await store.hit([r('b')]);
    await assert.rejects(store.hit([r('c')]), StoreUnavailableError);
    now += 999;
    await assert.rejects(store.hit([r('c')]), StoreUnavailableError, 'a live key was evicted');
    now += releaseAt(0, layoutFor(1000));
    const [c] = await store.hit([r('c')]);
    assert.equal(c!.allowed, true);
    // An idle key holds nothing: `a` starts over in a reclaimed slot, and the store is full again.
    const [a] = await store.hit([r('a')]);
    assert.equal(a!.allowed, true);
    await assert.rejects(store.hit([r('d')]), StoreUnavailableError);

    await store.put('v1', 'x', 100);
    await store.put('v2', 'x', 100);
    await assert.rejects(store.put('v3', 'x', 100), StoreUnavailableError);
    now += 100;
    await store.put('v3', 'x', 100);
    assert.equal(await store.get('v3'), 'x');
    await store.close();
  });
});
