// What only the Redis store has: the keys it leaves in Redis, its scripts, and outages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createStore } from '../../gateway/store/create.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { layoutFor, rateBudget } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError, type RateRule, type Store } from '../../gateway/store/store.js';
import type { Logger } from '../../gateway/observability/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const PASSWORD = 'pw-Zq8-never-logged';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rule = (key: string, limit: number, windowMs: number): RateRule => ({ key, budget: rateBudget(limit, windowMs) });

/** A logger whose lines the test reads back. */
function capturingLogger() {
  const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw.push(chunk.toString());
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines, raw };
}

/** Polls `hit` until it answers, as a gateway's next requests would; withinMs only bounds a hang. */
async function untilUp(store: Store, withinMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      await store.hit([rule('probe', 1_000_000, 1000)]);
      return;
    } catch (err) {
      assert.ok(err instanceof StoreUnavailableError, `not a StoreUnavailableError: ${String(err)}`);
      if (Date.now() - started > withinMs) throw new Error(`the store did not come back within ${withinMs} ms`);
      await sleep(50);
    }
  }
}

/**
 * Rejected as unavailable at once, without a connection: the store did not send the command
 * and wait for command_timeout (that error says "timed out").
 */
async function rejectsAtOnce(call: Promise<unknown>): Promise<void> {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError, String(err));
    assert.doesNotMatch(err.message, /timed out/i);
    return true;
  });
}

/** Rejected as unavailable because command_timeout ran out. */
async function rejectsTimedOut(call: Promise<unknown>): Promise<void> {
  await assert.rejects(call, (err: unknown) => {
    assert.ok(err instanceof StoreUnavailableError, String(err));
    assert.match(err.message, /timed out/i);
    return true;
  });
}

/** How long one admission keeps its slot, and an idle key its ttl: (n+1)*b. */
function held(windowMs: number): number {
  const { buckets, bucketMs } = layoutFor(windowMs);
  return (buckets + 1) * bucketMs;
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

describe('redis store', () => {
  let redis: TestRedis;
  let raw: Redis;
  const stores: Store[] = [];
  const open = async (prefix: string, opts: { commandTimeoutMs?: number; logger?: Logger } = {}) => {
    const store = new RedisStore({
      url: redis.url,
      keyPrefix: prefix,
      commandTimeoutMs: opts.commandTimeoutMs ?? 1000,
      logger: opts.logger ?? pino({ level: 'silent' }),
    });
    stores.push(store);
    return store;
  };

  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    redis = await startRedis({ password: PASSWORD });
    raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    // It reconnects by itself after the outages the tests cause; its errors meanwhile are noise.
    raw.on('error', () => undefined);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    raw.disconnect();
    await redis.stop();
    process.off('unhandledRejection', onUnhandled);
    assert.deepEqual(unhandled, [], 'unhandled rejections');
  });

  test('keys are <prefix>{<logical key>}, and every key carries a ttl', async () => {
    const store = await open('wxgw-ttl:');
    assert.equal(await store.connect(), true);
    const r = rule('rl:api:openid:oABC', 2, 5000);
    for (let i = 0; i < 3; i++) await store.hit([r]);
    assert.equal(await store.claim('nonce:n1', 3000), true);
    await store.put('session:s1', 'value', 4000);
    const keys = (await raw.keys('wxgw-ttl:*')).sort();
    assert.deepEqual(keys, ['wxgw-ttl:{nonce:n1}', 'wxgw-ttl:{rl:api:openid:oABC}', 'wxgw-ttl:{session:s1}']);
    assert.equal(await raw.type('wxgw-ttl:{rl:api:openid:oABC}'), 'hash');
    const { buckets, bucketMs } = layoutFor(5000);
    const limits: Record<string, number> = {
      'wxgw-ttl:{nonce:n1}': 3000,
      'wxgw-ttl:{rl:api:openid:oABC}': (buckets + 1) * bucketMs,
      'wxgw-ttl:{session:s1}': 4000,
    };
    for (const k of keys) {
      const pttl = await raw.pttl(k);
      assert.ok(pttl > 0 && pttl <= limits[k]!, `${k}: pttl ${pttl}`);
    }
    assert.equal(await raw.get('wxgw-ttl:{session:s1}'), 'value');
    const fields = await raw.hgetall('wxgw-ttl:{rl:api:openid:oABC}');
    assert.equal(fields.s, `${buckets}:${bucketMs}`);
    assert.equal(Object.entries(fields).reduce((sum, [f, v]) => (f === 's' ? sum : sum + Number(v)), 0), 2);

    // An idle key leaves Redis by itself once its window has passed.
    await store.hit([rule('rl:short', 5, 100)]);
    assert.equal(await raw.exists('wxgw-ttl:{rl:short}'), 1);
    const shortTtl = await raw.pttl('wxgw-ttl:{rl:short}');
    assert.ok(shortTtl > 0 && shortTtl <= held(100), `pttl ${shortTtl}`);
    await sleep(held(100) + 1);
    assert.equal(await raw.exists('wxgw-ttl:{rl:short}'), 0);
  });

  test('after SCRIPT FLUSH the script is reloaded and the count carries on', async () => {
    const store = await open('wxgw-flush:');
    assert.equal(await store.connect(), true);
    const r = rule('rl:flush', 5, 60_000);
    assert.equal((await store.hit([r]))[0]!.remaining, 4);
    assert.equal((await store.hit([r]))[0]!.remaining, 3);
    const noscriptBefore = await noscriptCount(raw);
    await raw.script('FLUSH');
    const [after] = await store.hit([r]);
    assert.deepEqual([after!.allowed, after!.remaining], [true, 2]);
    assert.equal(await noscriptCount(raw), noscriptBefore + 1, 'the store ran EVALSHA and recovered from NOSCRIPT');
    assert.equal((await store.hit([r]))[0]!.remaining, 1);
  });

  test('a Redis that hangs fails each command after command_timeout, and then works again', async () => {
    const store = await open('wxgw-slow:', { commandTimeoutMs: 100 });
    assert.equal(await store.connect(), true);
    // Stopped until the test resumes it, however long a loaded machine takes: only the store's
    // own command_timeout can end its calls meanwhile.
    redis.pause();
    try {
      await rejectsTimedOut(store.hit([rule('rl:slow', 5, 1000)]));
      await rejectsTimedOut(store.get('x'));
    } finally {
      redis.resume();
    }
    const [result] = await store.hit([rule('rl:slow', 5, 1000)]);
    assert.equal(result!.allowed, true);
    assert.equal(await store.claim('after-hang', 1000), true);
  });

  test('killed: every call fails fast as unavailable; restarted: it works again by itself; one log line each way', async () => {
    const { logger, lines, raw: rawLines } = capturingLogger();
    const store = await open('wxgw-outage:', { commandTimeoutMs: 100, logger });
    assert.equal(await store.connect(), true);
    const r = rule('rl:outage', 1000, 60_000);
    await store.hit([r]);

    // Calls in flight when the server dies settle too: answered, or refused as unavailable.
    const inFlight = Array.from({ length: 20 }, () => store.hit([r]).then(() => 'answered', (err: unknown) => err));
    await redis.kill();
    for (const outcome of await Promise.all(inFlight)) {
      assert.ok(outcome === 'answered' || outcome instanceof StoreUnavailableError, String(outcome));
    }
    for (let round = 0; round < 4; round++) {
      await rejectsAtOnce(store.hit([r]));
      await rejectsAtOnce(store.claim('c', 1000));
      await rejectsAtOnce(store.put('p', 'v', 1000));
      await rejectsAtOnce(store.get('p'));
      // Between rounds the client keeps trying to reconnect.
      await sleep(150);
    }

    await redis.restart();
    await untilUp(store, 5000);
    assert.equal((await store.hit([r]))[0]!.allowed, true);
    await raw.ping().catch(() => undefined);

    const about = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('redis store'));
    assert.deepEqual(
      about.map((l) => [l.level, l.msg.split(';')[0]]),
      [
        [30, 'redis store connected'],
        [40, 'redis store connection lost'],
        [30, 'redis store reconnected'],
      ],
    );
    assert.ok(about.every((l) => l.redis === `127.0.0.1:${redis.port}`));
    assert.ok(!rawLines.join('').includes(PASSWORD), 'the password was logged');
  });

  test('created while Redis is down: no throw, refuses as unavailable, then starts working when Redis comes up', async () => {
    const { logger, lines, raw: rawLines } = capturingLogger();
    await redis.kill();
    const store = await open('wxgw-late:', { commandTimeoutMs: 100, logger });
    assert.equal(await store.connect(300), false);
    await rejectsAtOnce(store.hit([rule('rl:late', 1, 1000)]));
    await sleep(400);
    await redis.restart();
    await untilUp(store, 5000);
    const about = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('redis store'));
    assert.deepEqual(
      about.map((l) => [l.level, l.msg.split(';')[0]]),
      [
        [40, 'redis store unreachable at start'],
        [30, 'redis store connected'],
      ],
    );
    assert.ok(!rawLines.join('').includes(PASSWORD), 'the password was logged');
  });

  test('two gateway instances on one Redis share one budget under concurrent load', async () => {
    const a = await open('wxgw-shared:');
    const b = await open('wxgw-shared:');
    assert.equal(await a.connect(), true);
    assert.equal(await b.connect(), true);
    const r = rule('rl:global:ip:203.0.113.7', 100, 60_000);
    const hits = (store: Store) => Array.from({ length: 400 }, () => store.hit([r]).then(([r]) => r!.allowed));
    const results = await Promise.all([...hits(a), ...hits(b)]);
    assert.equal(results.filter(Boolean).length, 100);
  });

  test('createStore builds the store the config names', async () => {
    const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'store' };
    const logger = pino({ level: 'silent' });
    const memory = createStore({ kind: 'memory', key_prefix: 'wxgw:', command_timeout: 50, on_unavailable: 'deny', pos }, logger);
    assert.ok(memory instanceof MemoryStore);
    await memory.close();
    const store = createStore(
      { kind: 'redis', redis_url: redis.url, key_prefix: 'wxgw-create:', command_timeout: 200, on_unavailable: 'deny', pos },
      logger,
    );
    stores.push(store);
    assert.ok(store instanceof RedisStore);
    assert.equal(await store.connect(), true);
    assert.equal(await store.claim('k', 1000), true);
    assert.equal(await raw.exists('wxgw-create:{k}'), 1);
  });
});

async function noscriptCount(client: Redis): Promise<number> {
  const info = await client.info('errorstats');
  const match = /errorstat_NOSCRIPT:count=(\d+)/.exec(info);
  return match === null ? 0 : Number(match[1]);
}
