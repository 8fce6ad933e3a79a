// One contract, two stores: the memory store on a fake clock, the Redis store on a real
// redis-server, which times windows by its own clock. What depends on time passing precisely
// (a slot freeing neither early nor late) is tested on the fake clock; the Redis store runs the
// same arithmetic (sliding-window.ts mirrors its script) and is held to what no amount of
// slowness can change: long windows for what must still be refused, and for what must have
// expired, a wait that only a slower machine makes longer.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { layoutFor, rateBudget, releaseAt } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError, type RateRule, type Store } from '../../gateway/store/store.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

interface Fixture {
  /** A store; stores opened with different prefixes must not see each other's keys. */
  open(prefix: string): Promise<Store>;
  /** Lets at least `ms` pass for the store (a real clock may let more pass). */
  advance(ms: number): Promise<void>;
  /** The time as the store sees it, to within the round trip for a real clock. */
  now(): number;
  /** Redis: time passes by itself, so only assertions that slowness cannot break are made. */
  realClock: boolean;
  /** The memory store counts a request on every rule only when all admit; Redis cannot. */
  allOrNothing: boolean;
}

/** The span of time during which one admission may hold its slot: (n+1)*b. */
const held = (windowMs: number): number => {
  const layout = layoutFor(windowMs);
  return (layout.buckets + 1) * layout.bucketMs;
};

/** Deterministic, so a failure replays. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function rule(key: string, limit: number, windowMs: number): RateRule {
  return { key, budget: rateBudget(limit, windowMs) };
}

async function hitOne(store: Store, rule: RateRule) {
  const [result] = await store.hit([rule]);
  return result!;
}

interface Decision {
  /** Just before the call and just after it: the store decided somewhere in between. */
  sent: number;
  answered: number;
  allowed: boolean;
}

/**
 * Checks both sides of the documented bound on decisions whose times are known to within
 * [sent, answered]: no closed span of `windowMs` can hold more than `limit` admissions, and every
 * refusal had at least `limit` admissions that may lie in the (n+1)*b ms before it.
 */
function checkDecisions(decisions: Decision[], limit: number, windowMs: number): void {
  const admitted = decisions.filter((d) => d.allowed).sort((a, b) => a.sent - b.sent);
  for (let i = 0; i + limit < admitted.length; i++) {
    const group = admitted.slice(i, i + limit + 1);
    const latest = Math.max(...group.map((d) => d.answered));
    assert.ok(latest - group[0]!.sent > windowMs, `${limit + 1} admissions within ${windowMs} ms, from ${group[0]!.sent} to ${latest}`);
  }
  const span = held(windowMs);
  for (const refused of decisions.filter((d) => !d.allowed)) {
    const candidates = admitted.filter((a) => a.answered > refused.sent - span && a.sent <= refused.answered).length;
    assert.ok(candidates >= limit, `refused at ${refused.sent} with only ${candidates} admissions in the ${span} ms before`);
  }
}

function storeContract(name: string, setup: () => Promise<Fixture>, teardown: () => Promise<void>): void {
  describe(`store contract: ${name}`, () => {
    let fx: Fixture;
    const opened: Store[] = [];
    const open = async (prefix = `t${randomBytes(4).toString('hex')}:`): Promise<Store> => {
      const store = await fx.open(prefix);
      opened.push(store);
      return store;
    };
    const key = (label: string): string => `rl:${label}:openid:o${randomBytes(6).toString('hex')}`;
    /** Longer than any stall of a loaded machine: what it holds is still held at the next call. */
    const LONG = 60_000;

    before(async () => {
      fx = await setup();
    });
    after(async () => {
      await Promise.all(opened.map((s) => s.close()));
      await teardown();
    });

    test('admits up to the limit, then refuses with the time until a slot frees and until the budget is whole', async () => {
      const store = await open();
      const r = rule(key('api'), 3, LONG);
      const first = fx.now();
      const admitted = [await hitOne(store, r), await hitOne(store, r), await hitOne(store, r)];
      assert.deepEqual(
        admitted.map((a) => [a.allowed, a.limit, a.remaining]),
        [
          [true, 3, 2],
          [true, 3, 1],
          [true, 3, 0],
        ],
      );
      assert.equal(admitted[0]!.retryAfterMs, 0);
      assert.equal(admitted[1]!.retryAfterMs, 0);
      const refused = await hitOne(store, r);
      const elapsed = fx.now() - first;
      assert.equal(refused.allowed, false);
      assert.equal(refused.remaining, 0);
      // The first admission's slot frees between W and (n+1)*b after it; all of them by then too.
      for (const ms of [admitted[2]!.retryAfterMs, refused.retryAfterMs, refused.resetMs, admitted[2]!.resetMs]) {
        assert.ok(ms > LONG - elapsed - 1 && ms <= held(LONG), `${ms} ms outside (${LONG - elapsed}, ${held(LONG)}]`);
      }
      assert.ok(refused.retryAfterMs <= refused.resetMs);
    });

    test('a refused key is admitted again once the time it was told has passed', async () => {
      const store = await open();
      const r = rule(key('again'), 1, 100);
      const sent = fx.now();
      assert.equal((await hitOne(store, r)).allowed, true);
      const second = await hitOne(store, r);
      if (second.allowed) {
        // Only a machine that stalled for the whole window between the two calls gets here.
        assert.ok(fx.now() - sent >= 100, 'admitted twice within the window');
        return;
      }
      assert.ok(second.retryAfterMs > 0 && second.retryAfterMs <= held(100), `retryAfterMs ${second.retryAfterMs}`);
      // A millisecond more: the store's clock is read to the millisecond, rounded down.
      await fx.advance(second.retryAfterMs + 1);
      assert.equal((await hitOne(store, r)).allowed, true);
    });

    test('no span of the window ever admits more than the limit, and refusals stay within the bound (random times)', async () => {
      const store = await open();
      const random = prng(0x5eed);
      // Fewer, slower events on a real clock, whose decisions are bounded by when each call was
      // sent and answered; the memory store gets thousands of decisions.
      const cases = fx.realClock
        ? [{ limit: 4, windowMs: 200, events: 70, maxGap: 30 }]
        : [
            { limit: 1, windowMs: 1000, events: 1500, maxGap: 400 },
            { limit: 5, windowMs: 333, events: 2000, maxGap: 60 },
            { limit: 20, windowMs: 60_000, events: 3000, maxGap: 2000 },
            { limit: 3, windowMs: 7, events: 1500, maxGap: 3 },
          ];
      for (const { limit, windowMs, events, maxGap } of cases) {
        const r = rule(key(`prop${windowMs}`), limit, windowMs);
        const decisions: Decision[] = [];
        for (let e = 0; e < events; e++) {
          await fx.advance(Math.floor(random() * maxGap));
          const burst = 1 + Math.floor(random() * 3);
          const sent = fx.now();
          const results = await Promise.all(Array.from({ length: burst }, () => hitOne(store, r)));
          const answered = fx.now();
          for (const res of results) decisions.push({ sent, answered, allowed: res.allowed });
        }
        const admittedCount = decisions.filter((d) => d.allowed).length;
        assert.ok(admittedCount >= limit, 'the test must exercise the limit');
        assert.ok(decisions.length - admittedCount >= limit, 'the test must exercise refusals');
        checkDecisions(decisions, limit, windowMs);
      }
    });

    test('a concurrent burst of 500 hits on one key admits exactly the limit', async () => {
      const store = await open();
      const r = rule(key('burst'), 50, LONG);
      const results = await Promise.all(Array.from({ length: 500 }, () => hitOne(store, r)));
      const admitted = results.filter((res) => res.allowed);
      assert.equal(admitted.length, 50);
      assert.deepEqual(
        admitted.map((res) => res.remaining).sort((a, b) => a - b),
        Array.from({ length: 50 }, (_, i) => i),
      );
      assert.ok(results.filter((res) => !res.allowed).every((res) => res.remaining === 0 && res.retryAfterMs > 0));
    });

    test('a request is admitted only when every rule admits it', async () => {
      const store = await open();
      const tight = rule(key('route'), 2, LONG);
      const loose = rule(key('global'), 4, LONG);
      const verdicts: boolean[] = [];
      for (let i = 0; i < 4; i++) {
        const results = await store.hit([tight, loose]);
        assert.equal(results.length, 2);
        verdicts.push(results.every((r) => r.allowed));
        if (i >= 2) assert.deepEqual(results.map((r) => r.allowed), [false, true]);
      }
      assert.deepEqual(verdicts, [true, true, false, false]);
      // What the loose rule still admits: all that the refused requests did not take from it in
      // memory; Redis may have charged it (never more than that).
      let more = 0;
      while ((await hitOne(store, loose)).allowed) more++;
      if (fx.allOrNothing) assert.equal(more, 2);
      else assert.ok(more <= 2);
      const zero = await store.hit([rule(key('zero'), 0, 1000), rule(key('other'), 5, 1000)]);
      assert.equal(zero[0]!.allowed, false);
      assert.equal(zero[0]!.remaining, 0);
    });

    test('a store that answers decides and counts alike whether or not the request would go through without it', async () => {
      const store = await open();
      const r = rule(key('unanswered'), 3, LONG);
      const verdicts: boolean[] = [];
      for (let i = 0; i < 4; i++) verdicts.push((await store.hit([r], { admitsUnanswered: i % 2 === 0 }))[0]!.allowed);
      assert.deepEqual(verdicts, [true, true, true, false]);
      assert.equal((await hitOne(store, r)).allowed, false);
    });

    test('a key whose window changes (policy reload) keeps what it counted, for the new window', async () => {
      const store = await open();
      const k = key('reload');
      for (let i = 0; i < 3; i++) assert.equal((await hitOne(store, rule(k, 3, LONG))).allowed, true);
      await fx.advance(50);
      const shorter = await hitOne(store, rule(k, 3, LONG / 2));
      assert.equal(shorter.allowed, false);
      // Folded into the current bucket: the whole new window from now, give or take a bucket.
      assert.ok(shorter.resetMs > LONG / 2 - 10 && shorter.resetMs <= held(LONG / 2), `resetMs ${shorter.resetMs}`);
    });

    test('a claim succeeds once while it lives, and again once it has expired', async () => {
      const store = await open();
      const nonce = `nonce:${randomBytes(6).toString('hex')}`;
      assert.equal(await store.claim(nonce, LONG), true);
      assert.equal(await store.claim(nonce, LONG), false);
      assert.equal(await store.claim(`${nonce}:other`, LONG), true);
      const concurrent = await Promise.all(Array.from({ length: 50 }, () => store.claim(`${nonce}:race`, LONG)));
      assert.equal(concurrent.filter(Boolean).length, 1);
      assert.equal(await store.claim(`${nonce}:short`, 100), true);
      await fx.advance(150);
      assert.equal(await store.claim(`${nonce}:short`, 100), true);
      await assert.rejects(store.claim('c', 0), RangeError);
    });

    test('put/get: a value is visible until its ttl, overwritten by a later put, then gone', async () => {
      const store = await open();
      const k = `session:${randomBytes(6).toString('hex')}`;
      assert.equal(await store.get(k), undefined);
      await store.put(k, 'v1', LONG);
      assert.equal(await store.get(k), 'v1');
      await store.put(k, 'v2 ✓ with spaces', 100);
      assert.equal(await store.get(k), 'v2 ✓ with spaces', 'read back at once: shorter-lived, still alive on any machine');
      await fx.advance(150);
      assert.equal(await store.get(k), undefined);
    });

    test('stores with different prefixes share no keys', async () => {
      const a = await open('wxgw-a:');
      const b = await open('wxgw-b:');
      const r = rule(key('shared'), 1, LONG);
      assert.equal((await hitOne(a, r)).allowed, true);
      assert.equal((await hitOne(b, r)).allowed, true);
      assert.equal((await hitOne(a, r)).allowed, false);
      await a.put('same', 'from a', LONG);
      assert.equal(await b.get('same'), undefined);
      assert.equal(await b.claim('same', LONG), true);
    });
  });
}

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
    allOrNothing: true,
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
      allOrNothing: true,
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
