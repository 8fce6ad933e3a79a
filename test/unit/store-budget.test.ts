// The Redis store's time budget and what it charges when it gives up. The budget runs from the
// command's send to the first moment its answer can be read, so an event loop blocked past it
// (here: a synchronous busy wait, as a burst of handshakes or a GC pause would) does not turn an
// answer already in the socket into store_unavailable. A hit the store gave up on is not
// charged (unless the request went through anyway: on_unavailable allow).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { compileGuardChain, type GuardInput } from '../../gateway/guards/chain.js';
import { compileIpAllow } from '../../gateway/guards/ip-allow.js';
import { compileRateLimits } from '../../gateway/guards/rate-limit.js';
import { CommandTimeoutError, withinBudget } from '../../gateway/store/command-budget.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { rateBudget } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError, type RateRule } from '../../gateway/store/store.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const rule = (key: string, limit: number): RateRule => ({ key, budget: rateBudget(limit, 60_000) });

/** Counts the store holds for a rate-limit key, read straight from Redis. */
async function counted(raw: Redis, key: string): Promise<number> {
  const fields = await raw.hgetall(key);
  return Object.entries(fields).reduce((sum, [f, v]) => (f === 's' ? sum : sum + Number(v)), 0);
}

/**
 * Blocks this process's event loop (no timer, no socket read runs) until `ms` have passed and
 * `ready()` is true: as long as a loaded gateway may be stalled, however slow the machine.
 */
function blockLoop(ms: number, ready: () => boolean): void {
  const until = performance.now() + ms;
  while (performance.now() < until || !ready()) {
    // Busy: that is the point.
  }
}

/** Asked synchronously from inside a blocked loop: whether Redis holds `key` yet. */
function existsNow(port: number, key: string): boolean {
  return execFileSync('redis-cli', ['-p', String(port), '--raw', 'EXISTS', key], { encoding: 'utf8' }).trim() === '1';
}

describe('withinBudget', () => {
  test('an answer there when the expired timer runs is taken; none is CommandTimeoutError', async () => {
    let answer!: (v: string) => void;
    const sent = new Promise<string>((r) => (answer = r));
    const pending = withinBudget(sent, 5);
    // The answer comes in the same loop turn as the expired timer, after it: still in time.
    setTimeout(() => answer('late but read'), 5);
    assert.equal(await pending, 'late but read');
    await assert.rejects(withinBudget(new Promise<never>(() => undefined), 5), CommandTimeoutError);
  });

  test('a failure is passed on as it is', async () => {
    const boom = new Error('boom');
    await assert.rejects(withinBudget(Promise.reject(boom), 1000), (err) => err === boom);
  });
});

describe('redis store: the budget counts from the send, and what it gave up on is not charged', () => {
  let redis: TestRedis;
  let raw: Redis;
  const stores: RedisStore[] = [];
  const BUDGET_MS = 50;
  const open = async (prefix: string, commandTimeoutMs = BUDGET_MS): Promise<RedisStore> => {
    const store = new RedisStore({ url: redis.url, keyPrefix: prefix, commandTimeoutMs, logger: pino({ level: 'silent' }) });
    stores.push(store);
    assert.equal(await store.connect(), true);
    return store;
  };
  const fresh = (label: string): string => `rl:${label}:${randomBytes(4).toString('hex')}`;

  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
  });
  after(async () => {
    redis.resume();
    await Promise.all(stores.map((s) => s.close()));
    raw.disconnect();
    await redis.stop();
  });

  test('an event loop blocked past the budget, the answer already in the socket: the real answer', async () => {
    const store = await open('b-block:');
    const key = fresh('block');
    const pending = [store.hit([rule(key, 2)]), store.hit([rule(key, 2)]), store.hit([rule(key, 2)])];
    // Redis answers at once; this process cannot read it for three budgets.
    blockLoop(3 * BUDGET_MS, () => existsNow(redis.port, `b-block:{${key}}`));
    const results = await Promise.all(pending);
    assert.deepEqual(
      results.map(([r]) => [r!.allowed, r!.remaining]),
      [
        [true, 1],
        [true, 0],
        [false, 0],
      ],
    );
  });

  test('a Redis that answers after the timer was due, while the loop was busy: the real answer, not store_unavailable', async () => {
    const store = await open('b-late:');
    const key = fresh('late');
    redis.pause();
    const pending = store.hit([rule(key, 5)]);
    // The timer falls due while Redis is stopped; Redis answers only after that, while the
    // gateway is still busy, so the answer is in the socket the first time it can look.
    blockLoop(2 * BUDGET_MS, () => true);
    redis.resume();
    blockLoop(BUDGET_MS, () => existsNow(redis.port, `b-late:{${key}}`));
    const [result] = await pending;
    assert.deepEqual([result!.allowed, result!.remaining], [true, 4]);
    assert.equal(await counted(raw, `b-late:{${key}}`), 1);
  });

  test('a Redis that does not answer within the budget: store_unavailable, and the count it made later is taken back', async () => {
    const store = await open('b-undo:');
    const key = fresh('undo');
    redis.pause();
    try {
      await assert.rejects(store.hit([rule(key, 5)]), (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError, String(err));
        assert.match(err.message, /timed out/);
        return true;
      });
    } finally {
      redis.resume();
    }
    await store.settled();
    // The script ran once Redis went on (the key holds its layout), and its count was undone.
    assert.equal(await raw.exists(`b-undo:{${key}}`), 1);
    assert.equal(await counted(raw, `b-undo:{${key}}`), 0);
    // The budget is whole again: five more are admitted, the sixth is not.
    const after = [];
    for (let i = 0; i < 6; i++) after.push((await store.hit([rule(key, 5)]))[0]!.allowed);
    assert.deepEqual(after, [true, true, true, true, true, false]);
  });

  test('a Redis that does not answer within the budget, on_unavailable allow: the late count stays, the request went through', async () => {
    const store = await open('b-keep:');
    const key = fresh('keep');
    redis.pause();
    try {
      await assert.rejects(store.hit([rule(key, 5)], { admitsUnanswered: true }), StoreUnavailableError);
    } finally {
      redis.resume();
    }
    await store.settled();
    assert.equal(await counted(raw, `b-keep:{${key}}`), 1);
  });

  test('a Redis that does not answer within the budget, under deny: only the hits that counted are taken back, each once', async () => {
    const store = await open('b-many:');
    const key = fresh('many');
    redis.pause();
    let outcomes;
    try {
      // Eight hits against a limit of 3: the script admits three and refuses five, all too late.
      outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => store.hit([rule(key, 3)])));
    } finally {
      redis.resume();
    }
    assert.ok(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof StoreUnavailableError));
    await store.settled();
    assert.equal(await counted(raw, `b-many:{${key}}`), 0);
    assert.equal((await store.hit([rule(key, 3)]))[0]!.remaining, 2);
  });

  test('one rule of a request fails: one server decides all rules in one script, which counts none of them', async () => {
    const store = await open('b-rules:');
    const good = fresh('good');
    const broken = fresh('broken');
    // Not a hash: the script fails on it (WRONGTYPE) before it counts anything. (In a cluster,
    // where each key has its own script, the other rules take their counts back:
    // test/integration/redis-cluster.test.ts.)
    await raw.set(`b-rules:{${broken}}`, 'not a hash');
    for (const admitsUnanswered of [false, true]) {
      await assert.rejects(store.hit([rule(good, 5), rule(broken, 5)], { admitsUnanswered }), (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError, String(err));
        assert.doesNotMatch(err.message, /timed out/);
        return true;
      });
      await store.settled();
      assert.equal(await counted(raw, `b-rules:{${good}}`), 0);
    }
    assert.equal((await store.hit([rule(good, 5)]))[0]!.remaining, 4);
  });

  test('through the guard chain: deny refuses and is not charged; allow goes through and stays counted', async () => {
    const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'routes[0]' };
    const request: GuardInput = { method: 'GET', url: '/r', headers: {}, client: '203.0.113.7', preflight: false, readBody: async () => Buffer.alloc(0) };
    const outcomes: Record<string, { verdict: string; counted: number }> = {};
    for (const failOpen of [false, true]) {
      const prefix = `b-chain-${failOpen ? 'allow' : 'deny'}:`;
      const store = await open(prefix);
      const route = fresh('route').replaceAll(':', '-');
      const chain = compileGuardChain({
        ipAllow: compileIpAllow({ any: true }, []),
        cors: undefined,
        callback: undefined,
        identity: undefined,
        identityRequired: false,
        rateLimit: compileRateLimits(route, [{ key: 'ip', limit: 5, window: 60_000, scope: 'route', ipv6_prefix: 64, pos }]),
        store,
        storeFailOpen: failOpen,
      });
      redis.pause();
      let verdict;
      try {
        verdict = await chain.run(request);
      } finally {
        redis.resume();
      }
      await store.settled();
      const [key] = await raw.keys(`${prefix}*`);
      assert.ok(key !== undefined, 'the script ran once Redis went on');
      const v = verdict.kind === 'refuse' ? verdict.reason : `${verdict.kind}${verdict.kind === 'continue' && verdict.storeBypassed ? ' (bypassed)' : ''}`;
      outcomes[failOpen ? 'allow' : 'deny'] = { verdict: v, counted: await counted(raw, key) };
    }
    assert.deepEqual(outcomes, {
      deny: { verdict: 'store_unavailable', counted: 0 },
      allow: { verdict: 'continue (bypassed)', counted: 1 },
    });
  });

  test('close() sends the undos still owed before it quits', async () => {
    // A budget a loaded machine's late answer fits in after SIGCONT, so close() does not give up on it.
    const store = await open('b-close:', 2000);
    const key = fresh('close');
    redis.pause();
    try {
      await assert.rejects(store.hit([rule(key, 5)]), StoreUnavailableError);
    } finally {
      redis.resume();
    }
    await store.close();
    assert.equal(await raw.exists(`b-close:{${key}}`), 1);
    assert.equal(await counted(raw, `b-close:{${key}}`), 0);
  });
});
