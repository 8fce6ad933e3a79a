// The guard chain as a table of (route, request) -> verdict, built from the real guards (CIDR
// allowlist, CORS, the message-push callback guard, session tokens, rate limits) over a real
// memory store with a fixed clock. Besides each verdict, the table checks the order: what an
// earlier step refused never reached a later one (no budget counted, no nonce claimed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { compileGuardChain, type GuardInput, type RouteGuards, type Verdict } from '../../gateway/guards/chain.js';
import { compileCors } from '../../gateway/guards/cors.js';
import { compileIpAllow } from '../../gateway/guards/ip-allow.js';
import { compileRateLimits } from '../../gateway/guards/rate-limit.js';
import { compileWechatCallback } from '../../gateway/guards/wechat-callback.js';
import type { CallbackRequest } from '../../gateway/guards/callback-types.js';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import { compileIdentity } from '../../gateway/identity/verify.js';
import type { RateLimitConfig, WechatConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { StoreUnavailableError, type RateResult, type RateRule, type Store } from '../../gateway/store/store.js';
import { plainPush, type WechatAccount } from '../helpers/wechat-callback.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'routes[0]' };
const T = 1_714_036_504; // seconds: the store's and the callback guard's clock
const now = (): number => T * 1000;
const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3n-for-tests', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
const wechat: WechatConfig = { appid: account.appid, token: account.token, api_base: new URL('https://api.weixin.qq.com'), api_timeout: 5000, pos };
const SESSION = { signing_key: 'session-signing-key-that-is-long-enough-0123', ttl: 3_600_000, issuer: 'wxgw' };
const OFFICE = '203.0.113.7';
const OUTSIDE = '198.51.100.9';
const ORIGIN = 'https://app.example.com';

/** A store that records what the chain asked of it, so the table can say what was never reached. */
class Recording implements Store {
  readonly kind = 'memory' as const;
  readonly connected = true;
  hits: RateRule[][] = [];
  claims: string[] = [];
  down = false;
  constructor(private readonly inner: Store) {}
  async hit(rules: readonly RateRule[]): Promise<RateResult[]> {
    this.hits.push([...rules]);
    if (this.down) throw new StoreUnavailableError('store down for the test');
    return this.inner.hit(rules);
  }
  async claim(key: string, ttlMs: number, holder?: string): Promise<boolean> {
    this.claims.push(key);
    if (this.down) throw new StoreUnavailableError('store down for the test');
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

const perIp = (limit: number): RateLimitConfig => ({ key: 'ip', limit, window: 60_000, scope: 'route', ipv6_prefix: 64, pos });
const perOpenid = (limit: number): RateLimitConfig => ({ key: 'openid', fallback_key: 'ip', limit, window: 60_000, scope: 'route', ipv6_prefix: 64, pos });

interface Setup {
  allow?: string[];
  cors?: boolean;
  callback?: boolean;
  identity?: boolean;
  identityRequired?: boolean;
  limits?: RateLimitConfig[];
  failOpen?: boolean;
}

async function chainFor(s: Setup) {
  const store = new Recording(new MemoryStore({ now }));
  const signer = await SessionSigner.create(SESSION);
  const guards: RouteGuards = {
    ipAllow: compileIpAllow(s.allow ? { any: false, cidrs: s.allow } : { any: true }, []),
    cors: s.cors ? compileCors({ origins: [ORIGIN], credentials: true, methods: ['GET', 'POST'], headers: ['authorization'], expose_headers: [], max_age: 600 }) : undefined,
    callback: s.callback ? compileWechatCallback({ decrypt: false, max_skew: 300_000, max_body: 65_536, pos }, wechat, store, now) : undefined,
    identity: s.identity ? await compileIdentity({ token: { header: 'authorization' }, upstream_header: 'x-wx-openid', unionid_header: 'x-wx-unionid', session: SESSION, pos }, { signer }) : undefined,
    identityRequired: s.identityRequired ?? false,
    rateLimit: compileRateLimits('r', s.limits ?? []),
    store,
    storeFailOpen: s.failOpen ?? false,
  };
  return { chain: compileGuardChain(guards), store, signer };
}

function input(o: { client?: string; method?: string; url?: string; headers?: IncomingHttpHeaders; body?: Buffer; preflight?: boolean } = {}): GuardInput & { reads: number } {
  const self = {
    reads: 0,
    method: o.method ?? 'GET',
    url: o.url ?? '/r',
    headers: o.headers ?? {},
    client: o.client ?? OFFICE,
    preflight: o.preflight ?? false,
    async readBody() {
      self.reads++;
      return o.body ?? Buffer.alloc(0);
    },
  };
  return self;
}

function fromPush(req: CallbackRequest, client = OFFICE) {
  return input({ client, method: req.method, url: `/wx?${req.query.toString()}`, headers: req.headers, body: req.body });
}

function reason(v: Verdict): string {
  return v.kind === 'refuse' ? v.reason : v.kind;
}

test('stateless chains decide without a promise; stateful ones say so', async () => {
  const plain = await chainFor({ allow: ['203.0.113.0/24'], cors: true });
  assert.equal(plain.chain.stateful, false);
  const v = plain.chain.run(input({ headers: { origin: ORIGIN } }));
  assert.ok(!(v instanceof Promise));
  assert.equal(v.kind, 'continue');
  assert.equal(v.allowedOrigin, ORIGIN);
  assert.equal((await chainFor({ limits: [perIp(5)] })).chain.stateful, true);
});

test('the verdict table', async (t) => {
  const signer = await SessionSigner.create(SESSION);
  const { token } = await signer.sign({ openid: 'o-alice', sid: 's1' });
  const cases: { name: string; setup: Setup; req: () => GuardInput; want: string; check?: (v: Verdict) => void }[] = [
    { name: 'allowed address, no other guard', setup: { allow: ['203.0.113.0/24'] }, req: () => input(), want: 'continue' },
    { name: 'address outside allow', setup: { allow: ['203.0.113.0/24'] }, req: () => input({ client: OUTSIDE }), want: 'ip_not_allowed' },
    { name: 'something that is not an address', setup: { allow: ['203.0.113.0/24'] }, req: () => input({ client: 'not-an-ip' }), want: 'ip_not_allowed' },
    {
      name: 'preflight from a listed origin is answered',
      setup: { cors: true },
      req: () => input({ method: 'OPTIONS', preflight: true, headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } }),
      want: 'answer',
      check: (v) => v.kind === 'answer' && assert.equal(v.headers['access-control-allow-origin'], ORIGIN),
    },
    { name: 'preflight from another origin', setup: { cors: true }, req: () => input({ preflight: true, headers: { origin: 'https://evil.example' } }), want: 'cors_origin_not_allowed' },
    { name: 'preflight on a route without cors', setup: {}, req: () => input({ preflight: true, headers: { origin: ORIGIN } }), want: 'cors_origin_not_allowed' },
    { name: 'identity required, no token', setup: { identity: true, identityRequired: true }, req: () => input(), want: 'identity_required' },
    { name: 'identity required, forged token', setup: { identity: true, identityRequired: true }, req: () => input({ headers: { authorization: `Bearer ${token}x` } }), want: 'token_invalid' },
    {
      name: 'identity required, valid token: the openid goes upstream',
      setup: { identity: true, identityRequired: true },
      req: () => input({ headers: { authorization: `Bearer ${token}` } }),
      want: 'continue',
      check: (v) => v.kind === 'continue' && assert.equal(v.added['x-wx-openid'], 'o-alice'),
    },
    { name: 'identity optional, forged token: anonymous', setup: { identity: true }, req: () => input({ headers: { authorization: 'Bearer a.b.c' } }), want: 'continue', check: (v) => v.kind === 'continue' && assert.equal(v.openid, undefined) },
    { name: 'signed callback', setup: { callback: true }, req: () => fromPush(plainPush(account, '<xml/>', { timestamp: T, nonce: '1' })), want: 'continue', check: (v) => v.kind === 'continue' && assert.equal(v.added['x-wx-callback-verified'], 'signature') },
    { name: 'forged callback', setup: { callback: true }, req: () => fromPush({ ...plainPush(account, '<xml/>', { timestamp: T, nonce: '1' }), query: new URLSearchParams({ signature: '0'.repeat(40), timestamp: String(T), nonce: '1' }) }), want: 'signature_invalid' },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const { chain } = await chainFor(c.setup);
      const v = await chain.run(c.req());
      assert.equal(reason(v), c.want, JSON.stringify(v));
      c.check?.(v);
    });
  }
});

test('a forbidden address never reaches the body, the callback check, identity or the rate limit', async () => {
  const { chain, store } = await chainFor({ allow: ['203.0.113.0/24'], callback: true, identity: true, limits: [perIp(5)] });
  const req = fromPush(plainPush(account, '<xml/>', { timestamp: T, nonce: '7' }), OUTSIDE);
  const v = await chain.run(req);
  assert.equal(reason(v), 'ip_not_allowed');
  assert.equal(req.reads, 0, 'the body was never read');
  assert.deepEqual(store.claims, [], 'no nonce claimed');
  assert.deepEqual(store.hits, [], 'nothing counted');
});

test('a forged callback never claims and costs no budget; a genuine one claims once, and its replay is answered from the store', async () => {
  const { chain, store } = await chainFor({ callback: true, limits: [perIp(5)] });
  const genuine = plainPush(account, '<xml/>', { timestamp: T, nonce: '42' });
  const forged = { ...genuine, query: new URLSearchParams({ ...Object.fromEntries(genuine.query), signature: 'f'.repeat(40) }) };
  assert.equal(reason(await chain.run(fromPush(forged))), 'signature_invalid');
  assert.deepEqual(store.claims, []);
  assert.deepEqual(store.hits, []);
  const first = await chain.run(fromPush(genuine));
  assert.equal(reason(first), 'continue');
  assert.equal(store.claims.length, 1);
  assert.equal(store.hits.length, 1);
  assert.ok(first.kind === 'continue' && first.delivery);
  first.delivery.commit({ status: 200, contentType: 'text/plain', body: Buffer.from('success') });
  const replay = await chain.run(fromPush(genuine));
  assert.ok(replay.kind === 'answer' && replay.callback === 'replayed', JSON.stringify(replay));
  assert.deepEqual(replay.body, Buffer.from('success'));
  assert.equal(store.hits.length, 1, 'a replay costs no budget either');
});

test('rate limits count after identity: per openid with a valid token, per address without', async () => {
  const { chain, store, signer } = await chainFor({ identity: true, limits: [perOpenid(2)] });
  const { token } = await signer.sign({ openid: 'o-bob', sid: 's' });
  const auth = { authorization: `Bearer ${token}` };
  // The first use of a token is counted against the address before its signature is checked.
  const first = await chain.run(input({ headers: auth }));
  assert.equal(reason(first), 'continue');
  assert.deepEqual(store.hits.map((h) => h.map((r) => r.key)), [['rl:r:openid:60000:ip:' + OFFICE], ['rl:r:openid:60000:o:o-bob']]);
  assert.equal(first.kind === 'continue' && first.answerAdded?.['ratelimit-limit'], '2');
  assert.equal(reason(await chain.run(input({ headers: auth }))), 'continue');
  const third = await chain.run(input({ headers: auth }));
  assert.equal(reason(third), 'rate_limited');
  assert.equal(third.kind === 'refuse' && typeof third.headers?.['retry-after'], 'string');
  // Anonymous requests from the same address have their own budget (one slot already used by the first token).
  assert.equal(reason(await chain.run(input())), 'continue');
  assert.equal(reason(await chain.run(input())), 'rate_limited');
});

test('identity is refused before anything is counted on an identity_required route', async () => {
  const { chain, store } = await chainFor({ identity: true, identityRequired: true, limits: [perIp(5)] });
  assert.equal(reason(await chain.run(input())), 'identity_required');
  assert.deepEqual(store.hits, []);
});

test('a store that is down: deny refuses with store_unavailable, allow admits and says so', async () => {
  const deny = await chainFor({ limits: [perIp(5)] });
  deny.store.down = true;
  assert.equal(reason(await deny.chain.run(input())), 'store_unavailable');
  const allow = await chainFor({ limits: [perIp(5)], failOpen: true });
  allow.store.down = true;
  const v = await allow.chain.run(input());
  assert.equal(v.kind, 'continue');
  assert.equal(v.kind === 'continue' && v.storeBypassed, true);
  // A callback's nonce is never waved through, whatever on_unavailable says.
  const cb = await chainFor({ callback: true, failOpen: true });
  cb.store.down = true;
  assert.equal(reason(await cb.chain.run(fromPush(plainPush(account, '<xml/>', { timestamp: T, nonce: '9' })))), 'store_unavailable');
});

test('refusals after CORS carry the CORS answer; the allowlist refusal does not', async () => {
  const { chain } = await chainFor({ allow: ['203.0.113.0/24'], cors: true, identity: true, identityRequired: true });
  const late = await chain.run(input({ headers: { origin: ORIGIN } }));
  assert.equal(reason(late), 'identity_required');
  assert.equal(late.allowedOrigin, ORIGIN);
  const early = await chain.run(input({ client: OUTSIDE, headers: { origin: ORIGIN } }));
  assert.equal(reason(early), 'ip_not_allowed');
  assert.equal(early.allowedOrigin, undefined);
});
