// Report mode in the guard chain, in-process over a real memory store: what a rule in report mode
// lets through and notes, what it still counts, and that a route with nothing in report mode is
// built from exactly the guards it had (the guard-less route keeps its shared verdict).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { compileGuardChain, type GuardInput, type RouteGuards, type Verdict } from '../../gateway/guards/chain.js';
import { compileCors } from '../../gateway/guards/cors.js';
import { EVERYONE } from '../../gateway/guards/ip-allow.js';
import { compileRouteRules } from '../../gateway/guards/report-mode.js';
import { VERIFIED_HEADER, compileWechatCallback } from '../../gateway/guards/wechat-callback.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { StoreUnavailableError, type RateResult, type RateRule, type Store } from '../../gateway/store/store.js';
import type { RateLimitConfig, RouteConfig, WechatConfig } from '../../gateway/types/policy.js';
import { plainPush, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'routes[0]' };
const T = 1_714_036_504;
const now = (): number => T * 1000;
const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3n-for-tests', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
const wechat: WechatConfig = { appid: account.appid, token: account.token, api_base: new URL('https://api.weixin.qq.com'), api_timeout: 5000, pos };

class Counting implements Store {
  readonly kind = 'memory' as const;
  readonly connected = true;
  hits: string[][] = [];
  down = false;
  private readonly inner = new MemoryStore({ now });
  async hit(rules: readonly RateRule[]): Promise<RateResult[]> {
    this.hits.push(rules.map((r) => r.key));
    if (this.down) throw new StoreUnavailableError('store down for the test');
    return this.inner.hit(rules);
  }
  claim(key: string, ttlMs: number, holder?: string): Promise<boolean> {
    return this.inner.claim(key, ttlMs, holder);
  }
  release(key: string, holder: string): Promise<void> {
    return this.inner.release(key, holder);
  }
  put(key: string, value: string, ttlMs: number): Promise<void> {
    return this.inner.put(key, value, ttlMs);
  }
  get(key: string): Promise<string | undefined> {
    return this.inner.get(key);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const limit = (n: number, mode?: 'report'): RateLimitConfig => ({ key: 'ip', limit: n, window: 60_000, scope: 'route', ipv6_prefix: 64, ...(mode && { mode }), pos });

function route(over: Partial<RouteConfig>): RouteConfig {
  return { name: 'r', match: { path_prefix: '/' }, upstream: 'u', allow: { any: true }, deny: [], json_charset: true, rate_limits: [], identity_required: false, on_mask_error: 'fail', pos, ...over };
}

function chainFor(r: RouteConfig, opts: { callback?: boolean; failOpen?: boolean } = {}) {
  const store = new Counting();
  const rules = compileRouteRules(r, r.cors && compileCors(r.cors));
  const guards: RouteGuards = {
    ipAllow: rules.ipAllow,
    cors: rules.cors,
    callback: opts.callback ? compileWechatCallback({ decrypt: false, max_skew: 300_000, max_body: 256, pos }, wechat, store, now) : undefined,
    identity: undefined,
    identityRequired: r.identity_required,
    rateLimit: rules.rateLimit,
    store,
    storeFailOpen: opts.failOpen ?? false,
    ...(rules.report && { report: rules.report }),
  };
  return { chain: compileGuardChain(guards), store, rules };
}

function input(o: { client?: string; method?: string; url?: string; headers?: IncomingHttpHeaders; body?: Buffer; preflight?: boolean } = {}): GuardInput {
  return {
    method: o.method ?? 'GET',
    url: o.url ?? '/r',
    headers: o.headers ?? {},
    client: o.client ?? '203.0.113.7',
    preflight: o.preflight ?? false,
    readBody: async () => o.body ?? Buffer.alloc(0),
  };
}

test('a route with nothing in report mode gets the guards it had: EVERYONE, no ReportGuards, the shared verdict', () => {
  const { chain, rules } = chainFor(route({}));
  assert.equal(rules.ipAllow, EVERYONE);
  assert.equal(rules.report, undefined);
  assert.equal(rules.backendCors, false);
  const a = chain.run(input());
  assert.equal(a, chain.run(input()), 'one frozen verdict, nothing allocated per request');
  assert.equal((a as Verdict).shadow, undefined);
});

test('allow and deny in report: each is noted by name, and an enforced one still refuses', () => {
  const both = chainFor(route({ allow: { any: false, cidrs: ['10.0.0.0/8'] }, deny: ['203.0.113.0/24'], report: ['allow', 'deny'] }));
  const v = both.chain.run(input()) as Verdict;
  assert.equal(v.kind, 'continue');
  assert.deepEqual(v.shadow, ['allow:ip_not_allowed', 'deny:ip_not_allowed']);

  const denyOnly = chainFor(route({ allow: { any: false, cidrs: ['10.0.0.0/8'] }, deny: ['203.0.113.0/24'], report: ['deny'] }));
  const refused = denyOnly.chain.run(input()) as Verdict;
  assert.equal(refused.kind, 'refuse', 'allow is still enforced');
  const inside = denyOnly.chain.run(input({ client: '10.1.2.3' })) as Verdict;
  assert.equal(inside.kind, 'continue');
  assert.equal(inside.shadow, undefined);
});

test('cors in report: the preflight is no answer of the gateway\'s, and carries no CORS of its own', async () => {
  const cors = { origins: ['https://app.example.com'], credentials: false, methods: ['GET'], headers: [], expose_headers: [], max_age: 600 };
  const { chain, rules } = chainFor(route({ cors, report: ['cors'] }));
  assert.equal(rules.cors, undefined);
  assert.equal(rules.backendCors, true);
  const evil = chain.run(input({ method: 'OPTIONS', preflight: true, headers: { origin: 'https://evil.example' } })) as Verdict;
  assert.equal(evil.kind, 'continue');
  assert.deepEqual(evil.shadow, ['cors:cors_origin_not_allowed']);
  assert.equal(evil.kind === 'continue' && evil.allowedOrigin, undefined);
  const good = chain.run(input({ method: 'OPTIONS', preflight: true, headers: { origin: 'https://app.example.com' } })) as Verdict;
  assert.equal(good.kind, 'continue', 'forwarded to the backend, not answered 204 by the gateway');
  assert.equal(good.shadow, undefined);

  // Forwarded as it would have been answered: before the steps that follow CORS.
  const limited = chainFor(route({ cors, report: ['cors'], rate_limits: [limit(1)] }));
  for (let i = 0; i < 3; i++) {
    const v = await limited.chain.run(input({ method: 'OPTIONS', preflight: true, headers: { origin: 'https://app.example.com' } }));
    assert.equal(v.kind, 'continue');
  }
  assert.equal(limited.store.hits.length, 0, 'no preflight counted against the limit');

  const none = chainFor(route({ report: ['cors'] }));
  const v = none.chain.run(input({ method: 'OPTIONS', preflight: true, headers: { origin: 'https://app.example.com' } })) as Verdict;
  assert.equal(v.kind, 'continue');
  assert.deepEqual(v.shadow, ['cors:cors_origin_not_allowed'], 'without a cors section every preflight would be refused');
});

test('a limit in report mode is counted like an enforced one but never refuses, and an enforced refusal stops before it is counted', async () => {
  const { chain, store } = chainFor(route({ rate_limits: [limit(5), limit(1, 'report')] }));
  const first = await chain.run(input());
  assert.equal(first.kind, 'continue');
  assert.equal(first.shadow, undefined);
  const second = await chain.run(input());
  assert.equal(second.kind, 'continue');
  assert.deepEqual(second.shadow, ['rate_limit:rate_limited']);
  assert.equal(store.hits.length, 4, 'enforced and reported limits each counted both requests');
  for (let i = 0; i < 3; i++) await chain.run(input());
  const before = store.hits.length;
  const over = await chain.run(input());
  assert.equal(over.kind, 'refuse', 'the enforced limit of 5 still refuses the sixth');
  assert.equal(store.hits.length, before + 1, 'the reported limit was not counted for a request refused before it');
  assert.deepEqual(over.shadow, undefined);
});

test('a store that is down refuses nothing in report mode, whatever on_unavailable says, and says so', async () => {
  const { chain, store } = chainFor(route({ rate_limits: [limit(1, 'report')] }));
  store.down = true;
  const v = await chain.run(input());
  assert.equal(v.kind, 'continue');
  assert.deepEqual(v.shadow, ['rate_limit:store_unavailable']);
  assert.equal(v.kind === 'continue' && v.storeBypassed, false, 'not the on_unavailable: allow admission: the limit is only reported');
});

test('a callback in report mode: checked, never verified; a body over max_body still reaches the backend whole', async () => {
  const { chain } = chainFor(route({ report: ['callback'] }), { callback: true });
  const push = plainPush(account, textMessage(0), { timestamp: T });
  const run = (p: ReturnType<typeof plainPush>) => chain.run(input({ method: p.method, url: `/wx?${p.query.toString()}`, headers: p.headers, body: p.body }));

  const genuine = await run(push);
  assert.equal(genuine.kind, 'continue');
  assert.equal(genuine.shadow, undefined);
  assert.ok(genuine.kind === 'continue');
  assert.equal(genuine.added[VERIFIED_HEADER], undefined);
  assert.deepEqual(genuine.body, push.body, 'the bytes as sent, not a decoded message');
  assert.equal(genuine.seal, undefined);
  // The backend answered: enforced, a replay would be answered from the store.
  genuine.delivery!.commit({ status: 200, contentType: 'text/plain', body: Buffer.from('success') });

  const replay = await run(push);
  assert.equal(replay.kind, 'continue');
  assert.deepEqual(replay.shadow, ['callback:replayed']);

  const big = plainPush(account, textMessage(1024), { timestamp: T });
  const large = await run(big);
  assert.ok(large.kind === 'continue');
  assert.deepEqual(large.shadow, ['callback:body_too_large']);
  assert.deepEqual(large.body, big.body);
  assert.equal(large.added['content-length'], String(big.body.length));

  const stale = await run(plainPush(account, textMessage(0), { timestamp: T - 3600 }));
  assert.deepEqual(stale.shadow, ['callback:timestamp_stale']);
});

test('an enforced refusal after a reported rule carries what the reported rule would have done', async () => {
  const { chain } = chainFor(route({ allow: { any: false, cidrs: ['10.0.0.0/8'] }, rate_limits: [limit(1)], report: ['allow'] }));
  await chain.run(input());
  const v = await chain.run(input());
  assert.equal(v.kind, 'refuse');
  assert.deepEqual(v.shadow, ['allow:ip_not_allowed']);
});
