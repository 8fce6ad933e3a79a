// The delivery queue in Redis Streams, shared by every instance on one Redis and kept across
// restarts. One stream is the queue, read through one consumer group: each instance is a
// consumer; XREADGROUP hands a message to one of them, XACK + XDEL remove it once delivered, and
// a message its consumer held past `takeoverAfterMs` without confirming it (XCLAIM ... JUSTID,
// which resets its idle time) is taken by another with XAUTOCLAIM: an instance killed
// mid-delivery loses nothing. Dead letters are one capped stream per route.
//
// Redis Cluster: every key carries the hash tag `{deliveries}`, so the scripts that move a
// message between the queue and a dead-letter stream touch one slot.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { DeadLetter, DeliveryQueue, QueuedMessage, TakenMessage } from './delivery-queue.js';

const GROUP = 'wxgw';

// KEYS: queue, dead; ARGV: group, id, maxlen, then the dead letter's fields.
const BURY_LUA = `
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
`;

// KEYS: dead, queue; ARGV: id. The message goes back without what its death added.
const REPLAY_LUA = `
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local keep = {}
for i = 1, #f, 2 do
  if f[i] ~= 'attempts' and f[i] ~= 'error' and f[i] ~= 'dead_at' then
    keep[#keep + 1] = f[i]
    keep[#keep + 1] = f[i + 1]
  end
end
redis.call('XADD', KEYS[2], '*', unpack(keep))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`;

interface ScriptedRedis extends Redis {
  wxgwBury(queue: string, dead: string, ...args: (string | Buffer | number)[]): Promise<number>;
  wxgwReplay(dead: string, queue: string, id: string): Promise<number>;
}

type Entry = [id: Buffer, fields: Buffer[]];

function fieldsOf(m: QueuedMessage): (string | Buffer)[] {
  return ['route', m.route, 'key', m.key, 'order', m.order, 'path', m.path, 'headers', JSON.stringify(m.headers), 'body', m.body, 'at', String(m.queuedAt)];
}

function parse(raw: Buffer[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) out.set(raw[i]!.toString(), raw[i + 1]!);
  return out;
}

function messageOf(f: Map<string, Buffer>): QueuedMessage {
  const text = (name: string): string => f.get(name)?.toString() ?? '';
  return {
    route: text('route'),
    key: text('key'),
    order: text('order'),
    path: text('path'),
    headers: JSON.parse(text('headers') || '{}') as Record<string, string>,
    body: f.get('body') ?? Buffer.alloc(0),
    queuedAt: Number(text('at')),
  };
}

export class RedisDeliveryQueue implements DeliveryQueue {
  readonly kind = 'redis' as const;
  private readonly redis: ScriptedRedis;
  /** XREADGROUP BLOCK holds its connection: the blocking read gets one of its own. */
  private readonly reader: Redis;
  private readonly queueKey: string;
  private readonly prefix: string;
  private readonly consumer = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  private grouped = false;
  private lastTakeover = 0;

  constructor(private readonly opts: { url: string; keyPrefix: string; commandTimeoutMs: number; takeoverAfterMs: number; deadLetterMax: number }) {
    this.prefix = `${opts.keyPrefix}{deliveries}:`;
    this.queueKey = `${this.prefix}queue`;
    this.redis = new Redis(opts.url, {
      // A callback waits for its enqueue: without a connection it fails at once and WeChat retries.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: Math.max(1000, opts.commandTimeoutMs),
      retryStrategy: (n) => Math.min(50 * 2 ** Math.min(n, 6), 2000),
      // Connected on first use: a gateway with no async route opens no connection for the queue.
      lazyConnect: true,
    }) as ScriptedRedis;
    this.redis.defineCommand('wxgwBury', { numberOfKeys: 2, lua: BURY_LUA });
    this.redis.defineCommand('wxgwReplay', { numberOfKeys: 2, lua: REPLAY_LUA });
    this.reader = this.redis.duplicate({ commandTimeout: undefined, enableOfflineQueue: false });
    // Errors show as rejected commands, which the worker logs; the events would only repeat them.
    this.redis.on('error', () => undefined);
    this.reader.on('error', () => undefined);
  }

  /** The name this instance reads as, for the log. */
  get consumerName(): string {
    return this.consumer;
  }

  private deadKey(route: string): string {
    return `${this.prefix}dead:${route}`;
  }

  async enqueue(message: QueuedMessage): Promise<string> {
    await this.connected(this.redis);
    return (await this.redis.xadd(this.queueKey, '*', ...fieldsOf(message)))!;
  }

  private async group(): Promise<void> {
    if (this.grouped) return;
    try {
      await this.redis.xgroup('CREATE', this.queueKey, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    this.grouped = true;
  }

  async take(max: number, waitMs: number): Promise<TakenMessage[]> {
    await Promise.all([this.connected(this.redis), this.connected(this.reader)]);
    await this.group();
    try {
      const out: TakenMessage[] = [];
      const now = Date.now();
      if (now - this.lastTakeover >= this.opts.takeoverAfterMs / 2) {
        this.lastTakeover = now;
        const reply = (await this.redis.callBuffer('XAUTOCLAIM', this.queueKey, GROUP, this.consumer, this.opts.takeoverAfterMs, '0-0', 'COUNT', max)) as [Buffer, Entry[]];
        for (const e of reply[1]) if (e && e[1]) out.push({ id: e[0].toString(), message: messageOf(parse(e[1])) });
        await this.forgetGone();
      }
      if (out.length >= max) return out;
      const args: (string | number)[] = ['GROUP', GROUP, this.consumer, 'COUNT', max - out.length];
      if (out.length === 0) args.push('BLOCK', waitMs);
      const read = (await this.reader.callBuffer('XREADGROUP', ...args, 'STREAMS', this.queueKey, '>')) as [Buffer, Entry[]][] | null;
      for (const e of read?.[0]?.[1] ?? []) out.push({ id: e[0].toString(), message: messageOf(parse(e[1])) });
      return out;
    } catch (err) {
      // The stream went away (FLUSHALL, a Redis restarted empty): the group is made again next time.
      if (String((err as Error).message).includes('NOGROUP')) this.grouped = false;
      throw err;
    }
  }

  /**
   * Every start reads under a new consumer name: the names of instances gone long ago (holding
   * nothing, silent for ten takeover times) are removed from the group. A live one that is only
   * idle loses nothing: its next read makes it again.
   */
  private async forgetGone(): Promise<void> {
    const consumers = (await this.redis.xinfo('CONSUMERS', this.queueKey, GROUP)) as unknown[][];
    for (const raw of consumers) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < raw.length; i += 2) info.set(String(raw[i]), raw[i + 1]);
      const name = String(info.get('name'));
      if (name !== this.consumer && Number(info.get('pending')) === 0 && Number(info.get('idle')) > 10 * this.opts.takeoverAfterMs) {
        await this.redis.xgroup('DELCONSUMER', this.queueKey, GROUP, name);
      }
    }
  }

  async hold(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.connected(this.redis);
    await this.redis.xclaim(this.queueKey, GROUP, this.consumer, 0, ...ids, 'JUSTID');
  }

  async ack(id: string): Promise<void> {
    await this.connected(this.redis);
    await this.redis.multi().xack(this.queueKey, GROUP, id).xdel(this.queueKey, id).exec();
  }

  async bury(taken: TakenMessage, attempts: number, error: string): Promise<void> {
    await this.connected(this.redis);
    const m = taken.message;
    const fields = [...fieldsOf(m), 'attempts', String(attempts), 'error', error, 'dead_at', String(Date.now())];
    await this.redis.wxgwBury(this.queueKey, this.deadKey(m.route), GROUP, taken.id, this.opts.deadLetterMax, ...fields);
  }

  async depth(): Promise<number> {
    await this.connected(this.redis);
    return this.redis.xlen(this.queueKey);
  }

  async deadLetters(route: string, max: number): Promise<DeadLetter[]> {
    await this.connected(this.redis);
    const entries = await this.redis.xrangeBuffer(this.deadKey(route), '-', '+', 'COUNT', max);
    return entries.map(([id, raw]) => {
      const f = parse(raw);
      return { id: id.toString(), message: messageOf(f), attempts: Number(f.get('attempts')?.toString()), error: f.get('error')?.toString() ?? '', deadAt: Number(f.get('dead_at')?.toString()) };
    });
  }

  async deadCount(route: string): Promise<number> {
    await this.connected(this.redis);
    return this.redis.xlen(this.deadKey(route));
  }

  async replay(route: string, id: string): Promise<boolean> {
    await this.connected(this.redis);
    return (await this.redis.wxgwReplay(this.deadKey(route), this.queueKey, id)) === 1;
  }

  async drop(route: string, id: string): Promise<boolean> {
    await this.connected(this.redis);
    return (await this.redis.xdel(this.deadKey(route), id)) === 1;
  }

  /** Each client's first connection, which every command sent meanwhile waits for. */
  private readonly firstConnect = new Map<Redis, Promise<void>>();

  /** The first command connects (lazyConnect); later ones find the connection up, or fail at once while it reconnects. */
  private async connected(client: Redis): Promise<void> {
    let first = this.firstConnect.get(client);
    if (!first) {
      first = client.status === 'wait' ? client.connect().catch(() => undefined) : Promise.resolve();
      this.firstConnect.set(client, first);
    }
    await first;
  }

  async close(): Promise<void> {
    this.reader.disconnect();
    if (this.redis.status === 'wait') this.redis.disconnect();
    else await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
