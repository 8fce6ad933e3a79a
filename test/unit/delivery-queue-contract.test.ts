// One contract, two delivery queues: this process's memory and Redis Streams on a real
// redis-server. What only Redis can do (a second consumer taking over what a silent one held,
// a restart of the holder) is tested on Redis alone, at the end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryDeliveryQueue } from '../../gateway/store/memory-delivery-queue.js';
import { RedisDeliveryQueue } from '../../gateway/store/redis-delivery-queue.js';
import type { DeliveryQueue, QueuedMessage } from '../../gateway/store/delivery-queue.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

function message(n: number, route = 'wx'): QueuedMessage {
  // A body that is not UTF-8: the queue keeps bytes, not text.
  return { route, key: `msg-${n}`, order: `u-${n % 2}`, path: `/wx/callback?n=${n}`, headers: { 'content-type': 'text/xml', 'x-wx-callback-verified': 'signature' }, body: Buffer.from([0xff, 0x00, n]), queuedAt: 1_700_000_000_000 + n };
}

const DEAD_MAX = 3;

function contract(name: string, open: (prefix: string) => DeliveryQueue): void {
  describe(`delivery queue contract: ${name}`, () => {
    test('messages come out in queue order, once, with every field', async () => {
      const q = open(`c1-${randomBytes(3).toString('hex')}:`);
      try {
        for (let i = 1; i <= 5; i++) await q.enqueue(message(i));
        assert.equal(await q.depth(), 5);
        const first = await q.take(3, 50);
        const rest = await q.take(10, 50);
        assert.deepEqual([...first, ...rest].map((t) => t.message), [1, 2, 3, 4, 5].map((i) => message(i)));
        assert.deepEqual(await q.take(10, 20), []);
        // Taken, not yet delivered: still counted.
        assert.equal(await q.depth(), 5);
        for (const t of [...first, ...rest]) await q.ack(t.id);
        assert.equal(await q.depth(), 0);
      } finally {
        await q.close();
      }
    });

    test('take waits for a message queued while it waits', async () => {
      const q = open(`c2-${randomBytes(3).toString('hex')}:`);
      try {
        await q.take(1, 10);
        const waiting = q.take(1, 5000);
        await q.enqueue(message(7));
        const got = await waiting;
        assert.deepEqual(got.map((t) => t.message.key), ['msg-7']);
      } finally {
        await q.close();
      }
    });

    test('dead letters are kept per route, bounded, and replay puts them back at the end of the queue', async () => {
      const q = open(`c3-${randomBytes(3).toString('hex')}:`);
      try {
        for (let i = 1; i <= 5; i++) await q.enqueue(message(i));
        await q.enqueue(message(9, 'pay'));
        const taken = await q.take(10, 50);
        for (const t of taken) await q.bury(t, 8, 'status 503');
        assert.equal(await q.depth(), 0);
        assert.equal(await q.deadCount('wx'), DEAD_MAX, 'the oldest go past the bound');
        assert.equal(await q.deadCount('pay'), 1);
        const dead = await q.deadLetters('wx', 100);
        assert.deepEqual(dead.map((d) => d.message.key), ['msg-3', 'msg-4', 'msg-5']);
        assert.equal(dead[0]!.attempts, 8);
        assert.equal(dead[0]!.error, 'status 503');
        assert.deepEqual(dead[0]!.message, message(3));
        assert.equal(await q.replay('wx', dead[1]!.id), true);
        assert.equal(await q.replay('wx', dead[1]!.id), false, 'replayed once');
        assert.equal(await q.drop('wx', dead[0]!.id), true);
        assert.equal(await q.drop('wx', dead[0]!.id), false);
        assert.deepEqual((await q.deadLetters('wx', 100)).map((d) => d.message.key), ['msg-5']);
        const again = await q.take(10, 50);
        assert.deepEqual(again.map((t) => t.message), [message(4)]);
      } finally {
        await q.close();
      }
    });
  });
}

contract('memory', () => new MemoryDeliveryQueue(DEAD_MAX));

describe('redis', () => {
  let redis: TestRedis;
  const opened: RedisDeliveryQueue[] = [];
  const open = (prefix: string, takeoverAfterMs = 60_000): RedisDeliveryQueue => {
    const q = new RedisDeliveryQueue({ url: redis.url, keyPrefix: prefix, commandTimeoutMs: 1000, takeoverAfterMs, deadLetterMax: DEAD_MAX });
    opened.push(q);
    return q;
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  contract('redis', (prefix) => open(prefix));

  test('commands sent together before the first connection wait for it', async () => {
    const q = open(`fc-${randomBytes(3).toString('hex')}:`);
    try {
      await Promise.all([1, 2, 3, 4].map((i) => q.enqueue(message(i))));
      assert.equal(await q.depth(), 4);
    } finally {
      await q.close();
    }
  });

  test('every key is in one hash slot ({deliveries})', async () => {
    const q = open('slot:');
    await q.enqueue(message(1));
    const [t] = await q.take(1, 50);
    await q.bury(t!, 1, 'x');
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    try {
      const keys = await r.keys('slot:*');
      assert.ok(keys.length >= 2);
      for (const k of keys) assert.match(k, /^slot:\{deliveries\}:/);
    } finally {
      r.disconnect();
      await q.close();
    }
  });

  test('what a silent consumer held is taken over after takeover_after, what a live one confirms is not', async () => {
    const prefix = `to-${randomBytes(3).toString('hex')}:`;
    const a = open(prefix, 300);
    const b = open(prefix, 300);
    try {
      await a.enqueue(message(1));
      await a.enqueue(message(2));
      const held = await a.take(10, 50);
      assert.equal(held.length, 2);
      // a keeps confirming message 1 and goes silent on message 2.
      const keep = setInterval(() => void a.hold([held[0]!.id]), 50);
      try {
        let got: { id: string; message: QueuedMessage }[] = [];
        const deadline = Date.now() + 10_000;
        while (got.length === 0 && Date.now() < deadline) got = await b.take(10, 100);
        assert.deepEqual(got.map((t) => t.message.key), ['msg-2']);
        await b.ack(got[0]!.id);
        // b keeps looking for idle messages for three takeover times: the confirmed one never is.
        const until = Date.now() + 900;
        while (Date.now() < until) assert.deepEqual((await b.take(10, 50)).map((t) => t.message.key), [], 'the confirmed one stays with a');
      } finally {
        clearInterval(keep);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('the names of consumers gone long ago, holding nothing, leave the group', async () => {
    const prefix = `gc-${randomBytes(3).toString('hex')}:`;
    const a = open(prefix, 30);
    await a.enqueue(message(1));
    const [t] = await a.take(1, 50);
    await a.ack(t!.id);
    await a.close();
    const b = open(prefix, 30);
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    try {
      const names = async (): Promise<string[]> => ((await r.xinfo('CONSUMERS', `${prefix}{deliveries}:queue`, 'wxgw')) as unknown[][]).map((c) => String(c[1]));
      assert.ok((await names()).includes(a.consumerName));
      const deadline = Date.now() + 10_000;
      while ((await names()).includes(a.consumerName) && Date.now() < deadline) await b.take(1, 20);
      assert.ok(!(await names()).includes(a.consumerName), 'gone');
      await b.enqueue(message(2));
      assert.equal((await b.take(1, 20)).length, 1);
      assert.deepEqual(await names(), [b.consumerName], 'the live one stays');
    } finally {
      r.disconnect();
      await b.close();
    }
  });

  test('a queue survives the consumer: a new one on a restarted process reads what was left', async () => {
    const prefix = `rs-${randomBytes(3).toString('hex')}:`;
    const a = open(prefix, 200);
    await a.enqueue(message(1));
    await a.take(1, 50);
    await a.close();
    const b = open(prefix, 200);
    try {
      let got: string[] = [];
      const deadline = Date.now() + 10_000;
      while (got.length === 0 && Date.now() < deadline) got = (await b.take(10, 100)).map((t) => t.message.key);
      assert.deepEqual(got, ['msg-1']);
    } finally {
      await b.close();
    }
  });
});
