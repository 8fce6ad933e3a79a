// The store contract: what every store (memory, one Redis, Redis Cluster, Sentinel-managed
// Redis) must do, as one suite that each test file runs against the store it sets up. The
// memory store runs on a fake clock, the Redis stores on their server's clock (read the header
// of test/unit/store-contract.test.ts for what a real clock lets the suite assert).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { layoutFor, rateBudget } from '../../gateway/store/sliding-window.js';
import type { RateRule, Store } from '../../gateway/store/store.js';

export interface Fixture {
  /** A store; stores opened with different prefixes must not see each other's keys. */
  open(prefix: string): Promise<Store>;
  /** Lets at least `ms` pass for the store (a real clock may let more pass). */
  advance(ms: number): Promise<void>;
  /** The time as the store sees it, to within the round trip for a real clock. */
  now(): number;
  /** Redis: time passes by itself, so only assertions that slowness cannot break are made. */
  realClock: boolean;
}

/** The span of time during which one admission may hold its slot: (n+1)*b. */
export const held = (windowMs: number): number => {
  const layout = layoutFor(windowMs);
  return (layout.buckets + 1) * layout.bucketMs;
};

/** Deterministic, so a failure replays. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function rule(key: string, limit: number, windowMs: number): RateRule {
  return { key, budget: rateBudget(limit, windowMs) };
}

export async function hitOne(store: Store, rule: RateRule) {
  const [result] = await store.hit([rule]);
  return result!;
}

export interface Decision {
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
export function checkDecisions(decisions: Decision[], limit: number, windowMs: number): void {
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

export function storeContract(name: string, setup: () => Promise<Fixture>, teardown: () => Promise<void>): void {
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
      // What the loose rule still admits: all that the refused requests did not take from it (a
      // cluster, which decides each key apart, has taken its counts back by the next command).
      let more = 0;
      while ((await hitOne(store, loose)).allowed) more++;
      assert.equal(more, 2);
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

