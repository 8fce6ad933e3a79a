// What only the Redis store has: the keys it leaves in Redis, its scripts, and outages.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createStore } from '../../gateway/store/create.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { layoutFor } from '../../gateway/store/sliding-window.js';
import { StoreUnavailableError, type Store } from '../../gateway/store/store.js';
import type { Logger } from '../../gateway/observability/logger.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const PASSWORD = 'pw-Zq8-never-logged';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

/** Polls `hit` until it answers, as a gateway's next requests would. */
async function untilUp(store: Store, withinMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await store.hit([{ key: 'probe', limit: 1_000_000, windowMs: 1000 }]);
      return Date.now() - started;
    } catch (err) {
      assert.ok(err instanceof StoreUnavailableError, `not a StoreUnavailableError: ${String(err)}`);
      if (Date.now() - started > withinMs) throw new Error(`the store did not come back within ${withinMs} ms`);
      await sleep(50);
    }
  }
}

/** Awaits the call and returns how long it took to be rejected with StoreUnavailableError. */
async function rejectsFast(call: Promise<unknown>): Promise<number> {
  const started = Date.now();
  await assert.rejects(call, StoreUnavailableError);
  return Date.now() - started;
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
    const rule = { key: 'rl:api:openid:oABC', limit: 2, windowMs: 5000 };
    for (let i = 0; i < 3; i++) await store.hit([rule]);
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
    await store.hit([{ key: 'rl:short', limit: 5, windowMs: 100 }]);
    assert.equal(await raw.exists('wxgw-ttl:{rl:short}'), 1);
    await sleep(150);
    assert.equal(await raw.exists('wxgw-ttl:{rl:short}'), 0);
  });

  test('after SCRIPT FLUSH the script is reloaded and the count carries on', async () => {
    const store = await open('wxgw-flush:');
    assert.equal(await store.connect(), true);
    const rule = { key: 'rl:flush', limit: 5, windowMs: 60_000 };
    assert.equal((await store.hit([rule]))[0]!.remaining, 4);
    assert.equal((await store.hit([rule]))[0]!.remaining, 3);
    const noscriptBefore = await noscriptCount(raw);
    await raw.script('FLUSH');
    const [after] = await store.hit([rule]);
    assert.deepEqual([after!.allowed, after!.remaining], [true, 2]);
    assert.equal(await noscriptCount(raw), noscriptBefore + 1, 'the store ran EVALSHA and recovered from NOSCRIPT');
    assert.equal((await store.hit([rule]))[0]!.remaining, 1);
  });

  test('a Redis that hangs fails each command after command_timeout, and then works again', async () => {
    const store = await open('wxgw-slow:', { commandTimeoutMs: 100 });
    assert.equal(await store.connect(), true);
    const sleeper = new Redis(redis.url);
    sleeper.on('error', () => undefined);
    const blocked = sleeper.call('DEBUG', 'SLEEP', '0.6');
    await sleep(50);
    const took = await rejectsFast(store.hit([{ key: 'rl:slow', limit: 5, windowMs: 1000 }]));
    assert.ok(took >= 90 && took < 400, `rejected after ${took} ms`);
    assert.ok((await rejectsFast(store.get('x'))) < 400);
    await blocked;
    sleeper.disconnect();
    const [result] = await store.hit([{ key: 'rl:slow', limit: 5, windowMs: 1000 }]);
    assert.equal(result!.allowed, true);
    assert.equal(await store.claim('after-hang', 1000), true);
  });

  test('killed: every call fails fast as unavailable; restarted: it works again by itself; one log line each way', async () => {
    const { logger, lines, raw: rawLines } = capturingLogger();
    const store = await open('wxgw-outage:', { commandTimeoutMs: 100, logger });
    assert.equal(await store.connect(), true);
    const rule = { key: 'rl:outage', limit: 1000, windowMs: 60_000 };
    await store.hit([rule]);

    // Calls in flight when the server dies settle too: answered, or refused as unavailable.
    const inFlight = Array.from({ length: 20 }, () => store.hit([rule]).then(() => 'answered', (err: unknown) => err));
    await redis.kill();
    for (const outcome of await Promise.all(inFlight)) {
      assert.ok(outcome === 'answered' || outcome instanceof StoreUnavailableError, String(outcome));
    }
    for (let round = 0; round < 4; round++) {
      assert.ok((await rejectsFast(store.hit([rule]))) < 200);
      assert.ok((await rejectsFast(store.claim('c', 1000))) < 200);
      assert.ok((await rejectsFast(store.put('p', 'v', 1000))) < 200);
      assert.ok((await rejectsFast(store.get('p'))) < 200);
      await sleep(150);
    }

    await redis.restart();
    await untilUp(store, 5000);
    assert.equal((await store.hit([rule]))[0]!.allowed, true);
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
    assert.ok((await rejectsFast(store.hit([{ key: 'rl:late', limit: 1, windowMs: 1000 }]))) < 200);
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
    const rule = { key: 'rl:global:ip:203.0.113.7', limit: 100, windowMs: 60_000 };
    const hits = (store: Store) => Array.from({ length: 400 }, () => store.hit([rule]).then(([r]) => r!.allowed));
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
