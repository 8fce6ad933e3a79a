// The store shared by several gateway instances. Every decision is one script run on the Redis
// server, timed by the server's clock, so instances with skewed clocks still share one window.
//
// One server or Sentinel-managed Redis: a request's rules are decided by one script over all
// their keys, all or nothing, as the memory store does. Redis Cluster: every logical key is its
// own hash slot (`<prefix>{<key>}`), so the rules of one request live on different nodes and no
// script can see them together: each distinct key is decided by its own script (all sent
// together, one round trip), and when the request is refused, the counts of the rules that
// admitted it are taken back. Each key is still exact on its own; what is weaker is only the
// moment between a rule's count and its taking back (one round trip), in which that count may
// refuse a concurrent request it should not have. Nothing is ever admitted beyond a limit.
import type { Logger } from '../observability/logger.js';
import { CommandTimeoutError, withinBudget } from './command-budget.js';
import { createRedisClient, describeTarget, type RedisClient, type RedisTarget } from './redis-client.js';
import { refusedByZeroLimit } from './sliding-window.js';
import { StoreUnavailableError, type HitOptions, type RateResult, type RateRule, type Store } from './store.js';

// The Lua twin of sliding-window.ts (read its header for the algorithm and its bound), over
// every key of one call. Each key is a hash: field "s" holds the layout "n:b", every other field
// is a bucket index with its count. Stale buckets are deleted as they are seen; the key's PTTL is
// renewed on every write to the moment its newest bucket leaves the window, so an idle key
// disappears by itself.
// ARGV: charge (0: decide only, the request is refused by a rule not in this call), then limit,
// n, b per key. The request is counted on every key only when every key admits it.
// Returns {charged, then per key: allowed, remaining, retryAfterMs, resetMs, bucket}: the bucket
// it counted in, which UNDO_LUA needs to take that count back.
const HIT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function field(j) return string.format('%d', j) end
local charge = ARGV[1] == '1'
local rules = {}
local named = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local limit = tonumber(ARGV[3 * i - 1])
  local n = tonumber(ARGV[3 * i])
  local b = tonumber(ARGV[3 * i + 1])
  local shape = n .. ':' .. b
  local c = math.floor(now / b)
  local raw = redis.call('HGETALL', key)
  local buckets = {}
  local stored = nil
  for k = 1, #raw, 2 do
    if raw[k] == 's' then
      stored = raw[k + 1]
    else
      local j = tonumber(raw[k])
      buckets[j] = tonumber(raw[k + 1])
      if j > c then c = j end
    end
  end
  local sum = 0
  if #raw > 0 and stored ~= shape then
    for _, v in pairs(buckets) do sum = sum + v end
    c = math.floor(now / b)
    buckets = {}
    redis.call('DEL', key)
    if sum > 0 then
      buckets[c] = sum
      redis.call('HSET', key, 's', shape, field(c), sum)
      redis.call('PEXPIRE', key, field((c + n + 1) * b - now))
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
  -- One key named twice in a call: the earlier rule's pending count is counted too.
  local pending = named[key] or 0
  named[key] = pending + 1
  rules[i] = {key = key, limit = limit, n = n, b = b, shape = shape, c = c, buckets = buckets, sum = sum + pending}
  if sum + pending >= limit then charge = false end
end
local out = {charge and 1 or 0}
for i, r in ipairs(rules) do
  local allowed = 0
  if r.sum < r.limit then allowed = 1 end
  if charge then
    r.sum = r.sum + 1
    r.buckets[r.c] = (r.buckets[r.c] or 0) + 1
    redis.call('HINCRBY', r.key, field(r.c), 1)
    redis.call('HSET', r.key, 's', r.shape)
    redis.call('PEXPIRE', r.key, field((r.c + r.n + 1) * r.b - now))
  end
  local retry = 0
  if r.sum >= r.limit then
    local freed = 0
    for j = r.c - r.n, r.c do
      freed = freed + (r.buckets[j] or 0)
      if r.sum - freed < r.limit then
        retry = (j + r.n + 1) * r.b - now
        break
      end
    end
  end
  local reset = 0
  for j = r.c, r.c - r.n, -1 do
    if (r.buckets[j] or 0) > 0 then
      reset = (j + r.n + 1) * r.b - now
      break
    end
  end
  local remaining = r.limit - r.sum
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = reset
  out[#out + 1] = r.c
end
return out
`;

// Takes back the one count a hit put in bucket ARGV[2i] of layout ARGV[2i-1] of each KEYS[i] (a
// request the gateway gave up on, or refused by a rule decided elsewhere). Sent at most once per
// charged hit, so it never takes back more than was counted; a key whose layout changed since (a
// reload folded its counts) or whose bucket has left the window is left alone: keeping a count
// only ever refuses more.
const UNDO_LUA = `
for i = 1, #KEYS do
  local key = KEYS[i]
  if redis.call('HGET', key, 's') == ARGV[2 * i - 1] then
    local v = tonumber(redis.call('HGET', key, ARGV[2 * i]) or '0')
    if v == 1 then redis.call('HDEL', key, ARGV[2 * i]) elseif v > 1 then redis.call('HINCRBY', key, ARGV[2 * i], -1) end
  end
end
return 1
`;

// Compare and delete: a claim is given back only by the one who holds it.
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Flat: charged, then allowed, remaining, retryAfterMs, resetMs, bucket per key. */
type HitReply = number[];
interface Scripts {
  wxgwHit(keyCount: number, ...keysThenArgs: (string | number)[]): Promise<HitReply>;
  wxgwUndo(keyCount: number, ...keysThenArgs: string[]): Promise<number>;
  wxgwRelease(key: string, holder: string): Promise<number>;
}
type ScriptedRedis = RedisClient & Scripts;

/** The rules of one request decided by one script: indexes into the rules of the call. */
type Group = readonly number[];

export type RedisStoreOptions = RedisTarget & { keyPrefix: string; commandTimeoutMs: number; logger: Logger };

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
  /** Cluster: one script per distinct key, each in its own slot; otherwise one script per call. */
  private readonly perKey: boolean;
  /** Undos of hits given up on, until Redis has answered them (close() waits for them). */
  private readonly owed = new Set<Promise<void>>();
  private state: 'starting' | 'up' | 'down' | 'closed' = 'starting';
  private everUp = false;
  private lastError: string | undefined;
  /** A command timed out on a live connection and none has succeeded since: a hung Redis is down too. */
  private timingOut = false;

  /** Starts connecting at once and keeps reconnecting forever; never throws for a down Redis. */
  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix;
    this.logger = opts.logger;
    this.address = describeTarget(opts);
    this.budgetMs = opts.commandTimeoutMs;
    this.perKey = 'cluster' in opts;
    this.redis = createRedisClient(opts, opts.commandTimeoutMs) as ScriptedRedis;
    this.redis.defineCommand('wxgwHit', { lua: HIT_LUA });
    this.redis.defineCommand('wxgwRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    this.redis.defineCommand('wxgwUndo', { lua: UNDO_LUA });
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
    // A zero limit refuses the request without asking Redis; the other rules are still asked
    // for their verdict (and headers), and charged nothing.
    const charge = rules.every((r) => r.budget.limit > 0);
    const groups = this.groups(rules);
    // All scripts are issued in this tick: they travel together and answer in one round trip.
    const sent = groups.map((group) => this.send(rules, group, charge));
    let replies: HitReply[];
    try {
      replies = await this.call(() => Promise.all(sent));
    } catch (err) {
      if (opts?.admitsUnanswered !== true) sent.forEach((reply, g) => this.takeBack(rules, groups[g]!, reply));
      throw err;
    }
    const results = new Array<RateResult>(rules.length);
    rules.forEach((r, i) => {
      if (r.budget.limit === 0) results[i] = refusedByZeroLimit(r.budget);
    });
    // Cluster: a script that admitted the request on its keys while another refused it gets its
    // counts taken back; the rules report their own verdict and what they still admit.
    const refused = replies.some((reply) => reply[0] !== 1);
    replies.forEach((reply, g) => {
      const group = groups[g]!;
      const undone = refused && reply[0] === 1;
      if (undone) this.owe(this.undo(rules, group, reply));
      group.forEach((i, k) => {
        const { budget } = rules[i]!;
        const at = 1 + 5 * k;
        const remaining = reply[at + 1]! + (undone ? 1 : 0);
        results[i] = {
          allowed: reply[at] === 1,
          limit: budget.limit,
          remaining: Math.min(remaining, budget.limit),
          retryAfterMs: reply[at + 2]!,
          resetMs: reply[at + 3]!,
        };
      });
    });
    return results;
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

  /**
   * `<prefix>{<logical key>}`: the hash tag keeps a key in one Cluster slot. Every command names
   * its keys through this; one that needs several logical keys at once cannot run on a cluster
   * (they live on different nodes) and goes key by key there, as hit() does.
   */
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
   * The scripts of one call: every rule with a limit in one group, or in a cluster one group per
   * distinct key (a key named twice in a call stays in one script, which counts both).
   */
  private groups(rules: readonly RateRule[]): Group[] {
    const limited = [...rules.keys()].filter((i) => rules[i]!.budget.limit > 0);
    if (!this.perKey) return limited.length === 0 ? [] : [limited];
    const byKey = new Map<string, number[]>();
    for (const i of limited) {
      const key = rules[i]!.key;
      const group = byKey.get(key);
      if (group === undefined) byKey.set(key, [i]);
      else group.push(i);
    }
    return [...byKey.values()];
  }

  private send(rules: readonly RateRule[], group: Group, charge: boolean): Promise<HitReply> {
    const keys = group.map((i) => this.key(rules[i]!.key));
    const args = group.flatMap((i) => {
      const { budget } = rules[i]!;
      return [budget.limit, budget.layout.buckets, budget.layout.bucketMs];
    });
    return this.redis.wxgwHit(keys.length, ...keys, charge ? 1 : 0, ...args);
  }

  /**
   * A request the store could not answer is not charged. Each of its scripts that counted an
   * admission after all (its answer came late, or another script's command failed) gets its
   * counts taken back, in the buckets they went to. Redis runs a connection's commands in order,
   * so the undo runs after the hit it undoes; a hit whose answer is lost with the connection stays
   * counted, which only refuses more, for one window at most.
   */
  private takeBack(rules: readonly RateRule[], group: Group, sent: Promise<HitReply>): void {
    this.owe(sent.then((reply) => (reply[0] === 1 ? this.undo(rules, group, reply) : undefined)));
  }

  /** Sends the undo of a charged script's counts now, before the next command on its connection. */
  private undo(rules: readonly RateRule[], group: Group, reply: HitReply): Promise<unknown> {
    const keys = group.map((i) => this.key(rules[i]!.key));
    const args = group.flatMap((i, k) => {
      const { layout } = rules[i]!.budget;
      return [`${layout.buckets}:${layout.bucketMs}`, String(reply[1 + 5 * k + 4])];
    });
    return this.redis.wxgwUndo(keys.length, ...keys, ...args);
  }

  private owe(undone: Promise<unknown>): void {
    const settled = undone.then(
      () => undefined,
      () => undefined,
    );
    this.owed.add(settled);
    void settled.then(() => this.owed.delete(settled));
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
