// The store shared by several gateway instances. Every decision is one script run on the Redis
// server, timed by the server's clock, so instances with skewed clocks still share one window.
//
// Redis Cluster: each rule's key is its own hash slot, so a request with several rules runs one
// script per rule (sent together, one round trip) rather than one script over keys that may
// live on different nodes. The price: a request refused by one rule has still been charged by
// the rules that admitted it. That only ever refuses more, never admits more.
import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { CommandTimeoutError, withinBudget } from './command-budget.js';
import { refusedByZeroLimit } from './sliding-window.js';
import { StoreUnavailableError, type HitOptions, type RateResult, type RateRule, type Store } from './store.js';

// The Lua twin of sliding-window.ts (read its header for the algorithm and its bound). The key
// is a hash: field "s" holds the layout "n:b", every other field is a bucket index with its count.
// Stale buckets are deleted as they are seen; the key's PTTL is renewed on every write to the
// moment its newest bucket leaves the window, so an idle key disappears by itself.
// ARGV: limit, n, b. Returns {allowed, remaining, retryAfterMs, resetMs, bucket}: the bucket it
// counted an admission in, which UNDO_LUA needs to take that one count back.
const HIT_LUA = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local b = tonumber(ARGV[3])
local shape = ARGV[2] .. ':' .. ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local c = math.floor(now / b)
local function field(j) return string.format('%d', j) end
local raw = redis.call('HGETALL', key)
local buckets = {}
local stored = nil
for i = 1, #raw, 2 do
  if raw[i] == 's' then
    stored = raw[i + 1]
  else
    local j = tonumber(raw[i])
    buckets[j] = tonumber(raw[i + 1])
    if j > c then c = j end
  end
end
local sum = 0
local wrote = false
if #raw > 0 and stored ~= shape then
  for _, v in pairs(buckets) do sum = sum + v end
  c = math.floor(now / b)
  buckets = {}
  redis.call('DEL', key)
  if sum > 0 then
    buckets[c] = sum
    redis.call('HSET', key, 's', shape, field(c), sum)
    wrote = true
  end
else
  local stale = {}
  for j, v in pairs(buckets) do
    if j < c - n then
      stale[#stale + 1] = field(j)
    else
      sum = sum + v
    end
  end
  for _, f in ipairs(stale) do buckets[tonumber(f)] = nil end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
end
local allowed = 0
if sum < limit then
  allowed = 1
  sum = sum + 1
  buckets[c] = (buckets[c] or 0) + 1
  redis.call('HINCRBY', key, field(c), 1)
  redis.call('HSET', key, 's', shape)
  wrote = true
end
if wrote then redis.call('PEXPIRE', key, field((c + n + 1) * b - now)) end
local retry = 0
if sum >= limit then
  local freed = 0
  for j = c - n, c do
    freed = freed + (buckets[j] or 0)
    if sum - freed < limit then
      retry = (j + n + 1) * b - now
      break
    end
  end
end
local reset = 0
for j = c, c - n, -1 do
  if (buckets[j] or 0) > 0 then
    reset = (j + n + 1) * b - now
    break
  end
end
local remaining = limit - sum
if remaining < 0 then remaining = 0 end
return {allowed, remaining, retry, reset, c}
`;

// Takes back the one count a hit put in bucket ARGV[2] of layout ARGV[1] (a request the gateway
// gave up on). Sent at most once per hit, so it never takes back more than was counted; a key
// whose layout changed since (a reload folded its counts) or whose bucket has left the window
// is left alone: keeping a count only ever refuses more.
const UNDO_LUA = `
local key = KEYS[1]
if redis.call('HGET', key, 's') ~= ARGV[1] then return 0 end
local v = tonumber(redis.call('HGET', key, ARGV[2]) or '0')
if v < 1 then return 0 end
if v == 1 then redis.call('HDEL', key, ARGV[2]) else redis.call('HINCRBY', key, ARGV[2], -1) end
return 1
`;

// Compare and delete: a claim is given back only by the one who holds it.
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type HitReply = [allowed: number, remaining: number, retryAfterMs: number, resetMs: number, bucket: number];
interface ScriptedRedis extends Redis {
  wxgwHit(key: string, limit: number, buckets: number, bucketMs: number): Promise<HitReply>;
  wxgwUndo(key: string, layout: string, bucket: string): Promise<number>;
  wxgwRelease(key: string, holder: string): Promise<number>;
}

/** Reconnect delays: 100 ms doubling to a cap of 2 s, forever. */
function reconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
}

/** host:port of a redis URL, for logs: the URL itself may carry a password. */
function redisAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port === '' ? '6379' : u.port}`;
  } catch {
    return '(unparsable redis url)';
  }
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const;

  get connected(): boolean {
    return this.state === 'up' && !this.timingOut;
  }
  private readonly redis: ScriptedRedis;
  private readonly prefix: string;
  private readonly logger: Logger;
  private readonly address: string;
  private readonly budgetMs: number;
  /** Undos of hits given up on, until Redis has answered them (close() waits for them). */
  private readonly owed = new Set<Promise<void>>();
  private state: 'starting' | 'up' | 'down' | 'closed' = 'starting';
  private everUp = false;
  private lastError: string | undefined;
  /** A command timed out on a live connection and none has succeeded since: a hung Redis is down too. */
  private timingOut = false;

  /** Starts connecting at once and keeps reconnecting forever; never throws for a down Redis. */
  constructor(opts: { url: string; keyPrefix: string; commandTimeoutMs: number; logger: Logger }) {
    this.prefix = opts.keyPrefix;
    this.logger = opts.logger;
    this.address = redisAddress(opts.url);
    this.budgetMs = opts.commandTimeoutMs;
    this.redis = new Redis(opts.url, {
      // A request must never wait for a connection: without one, commands fail at once.
      enableOfflineQueue: false,
      // Commands in flight when the connection drops fail instead of being retried later.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // No commandTimeout: ioredis would time a command from a timer that a busy event loop runs
      // late, before reading the answer waiting in the socket. call() times it (command-budget.ts).
      // A connection (TCP, TLS, AUTH) may take longer than one command; requests never wait for it.
      connectTimeout: Math.max(1000, opts.commandTimeoutMs),
      retryStrategy: reconnectDelay,
    }) as ScriptedRedis;
    this.redis.defineCommand('wxgwHit', { numberOfKeys: 1, lua: HIT_LUA });
    this.redis.defineCommand('wxgwRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    this.redis.defineCommand('wxgwUndo', { numberOfKeys: 1, lua: UNDO_LUA });
    this.redis.on('error', (err: Error) => this.onError(err));
    this.redis.on('ready', () => this.onReady());
    this.redis.on('close', () => this.onClose());
  }

  /**
   * Waits at most `timeoutMs` for the connection; true when Redis answers. Never throws: a
   * gateway whose Redis is down starts anyway and the store comes up when Redis does.
   */
  connect(timeoutMs = 2000): Promise<boolean> {
    if (this.redis.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ready: boolean): void => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(ready);
      };
      const onReady = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.redis.on('ready', onReady);
    });
  }

  async hit(rules: readonly RateRule[], opts?: HitOptions): Promise<RateResult[]> {
    // All scripts are issued in this tick: they travel together and answer in one round trip.
    const sent = rules.map(({ key, budget }) => {
      if (budget.limit === 0) return undefined;
      return this.redis.wxgwHit(this.key(key), budget.limit, budget.layout.buckets, budget.layout.bucketMs);
    });
    let replies: (HitReply | undefined)[];
    try {
      replies = await this.call(() => Promise.all(sent));
    } catch (err) {
      if (opts?.admitsUnanswered !== true) this.takeBack(rules, sent);
      throw err;
    }
    return rules.map(({ budget }, i) => {
      const reply = replies[i];
      if (reply === undefined) return refusedByZeroLimit(budget);
      const [allowed, remaining, retryAfterMs, resetMs] = reply;
      return { allowed: allowed === 1, limit: budget.limit, remaining, retryAfterMs, resetMs };
    });
  }

  async claim(key: string, ttlMs: number, holder = '1'): Promise<boolean> {
    const px = ttl(key, ttlMs);
    const reply = await this.call(() => this.redis.set(this.key(key), holder, 'PX', px, 'NX'));
    return reply === 'OK';
  }

  async release(key: string, holder: string): Promise<void> {
    await this.call(() => this.redis.wxgwRelease(this.key(key), holder));
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    const px = ttl(key, ttlMs);
    await this.call(() => this.redis.set(this.key(key), value, 'PX', px));
  }

  async get(key: string): Promise<string | undefined> {
    const reply = await this.call(() => this.redis.get(this.key(key)));
    return reply ?? undefined;
  }

  /** Resolves once every undo owed so far has been answered by Redis (or failed with the connection). */
  async settled(): Promise<void> {
    while (this.owed.size > 0) await Promise.all(this.owed);
  }

  async close(): Promise<void> {
    this.state = 'closed';
    if (this.redis.status === 'ready') {
      try {
        // Undos still owed go out before QUIT; a Redis that hangs gets one budget for them, and one for QUIT.
        await withinBudget(this.settled(), this.budgetMs).catch(() => undefined);
        await withinBudget(this.redis.quit(), this.budgetMs);
        return;
      } catch {
        // Falls through to the hard disconnect.
      }
    }
    this.redis.disconnect();
  }

  /** `<prefix>{<logical key>}`: the hash tag keeps a key in one Cluster slot. */
  private key(logical: string): string {
    return `${this.prefix}{${logical}}`;
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      const reply = await withinBudget(run(), this.budgetMs);
      if (this.timingOut) {
        this.timingOut = false;
        this.logger.info({ redis: this.address }, 'redis store answering in time again');
      }
      return reply;
    } catch (err) {
      if (!this.timingOut && err instanceof CommandTimeoutError) {
        this.timingOut = true;
        this.logger.warn({ redis: this.address }, 'redis store commands time out; requests needing it fail until one answers in time');
      }
      throw new StoreUnavailableError(`redis store at ${this.address}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * A request the store could not answer is not charged. Each of its scripts that counted an
   * admission after all (its answer came late, or another rule's command failed) gets that one
   * count taken back, in the bucket it went to. Redis runs a connection's commands in order, so
   * the undo runs after the hit it undoes; a hit whose answer is lost with the connection stays
   * counted, which only refuses more, for one window at most.
   */
  private takeBack(rules: readonly RateRule[], sent: readonly (Promise<HitReply> | undefined)[]): void {
    sent.forEach((reply, i) => {
      if (reply === undefined) return;
      const { key, budget } = rules[i]!;
      const undone = reply
        .then(([allowed, , , , bucket]) => {
          if (allowed !== 1) return undefined;
          return this.redis.wxgwUndo(this.key(key), `${budget.layout.buckets}:${budget.layout.bucketMs}`, String(bucket));
        })
        .then(
          () => undefined,
          () => undefined,
        );
      this.owed.add(undone);
      void undone.then(() => this.owed.delete(undone));
    });
  }

  private onError(err: Error): void {
    this.lastError = errorMessage(err);
  }

  private onReady(): void {
    this.lastError = undefined;
    this.timingOut = false;
    if (this.state === 'closed' || this.state === 'up') return;
    this.logger.info({ redis: this.address }, this.everUp ? 'redis store reconnected' : 'redis store connected');
    this.state = 'up';
    this.everUp = true;
  }

  // One warning per outage: the reconnect attempts that follow are silent until one succeeds.
  private onClose(): void {
    if (this.state === 'closed' || this.state === 'down') return;
    this.logger.warn(
      { redis: this.address, err: this.lastError },
      this.state === 'starting'
        ? 'redis store unreachable at start; requests needing it fail until it answers, reconnecting'
        : 'redis store connection lost; requests needing it fail until it is back, reconnecting',
    );
    this.state = 'down';
  }
}

function ttl(key: string, ttlMs: number): number {
  if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw new RangeError(`ttl for ${key} must be a positive number of ms, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
