// Logout through real HTTPS on two gateway instances sharing one real redis-server: a token ended
// on one instance is refused on the other before its `exp` (even where that instance had it
// cached as verified), its session_key is deleted, and the check costs exactly one Redis GET per
// request, counted from Redis's own command statistics.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeJwt } from 'jose';
import { Redis } from 'ioredis';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';

function reason(res: ClientResponse): string | undefined {
  return res.status === 200 ? undefined : (JSON.parse(res.text) as { error: { reason: string } }).error.reason;
}

function policy(wechat: FakeWechat, upstream: TestUpstream, redis: TestRedis, prefix: string, scope: 'session' | 'user') {
  return (ctx: { httpsPort: number; tlsSection: string }) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
store: { kind: redis, redis_url: "${redis.url}", key_prefix: "${prefix}" }
wechat:
  appid: ${wechat.appid}
  app_secret: "\${WX_APP_SECRET}"
  api_base: "${wechat.url}"
identity:
  login: { path: /wx/login }
  decrypt: { path: /wx/decrypt, upstream: { upstream: legacy, path: /api/open-data } }
  logout: { path: /wx/logout, scope: ${scope} }
  session: { signing_key: "\${SESSION_SIGNING_KEY}" }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 2s }
routes:
  - name: me
    match: { path: /api/me }
    upstream: legacy
    identity_required: true
  - name: public
    match: { path: /api/public }
    upstream: legacy
`;
}

/** Two instances of one policy on one Redis, with one clock the test moves. */
async function pair(wechat: FakeWechat, upstream: TestUpstream, redis: TestRedis, prefix: string, scope: 'session' | 'user', now: () => number) {
  const opts = { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY }, now };
  const gateways = [await startTestGateway(policy(wechat, upstream, redis, prefix, scope), opts), await startTestGateway(policy(wechat, upstream, redis, prefix, scope), opts)];
  for (const g of gateways) {
    const store = g.gw.store;
    assert.ok(store instanceof RedisStore);
    assert.equal(await store.connect(5000), true);
  }
  return gateways as [TestGateway, TestGateway];
}

describe('logout across two instances on one Redis', () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let redis: TestRedis;
  let admin: Redis;
  let a: TestGateway;
  let b: TestGateway;
  let c: TestGateway;
  let d: TestGateway;
  let now = Date.now();
  let codes = 0;

  const call = (g: TestGateway, method: string, path: string, token?: string) =>
    httpsRequest(g.port, g.ca, { method, path, headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) }, ...(method === 'POST' && { body: '{}' }) });
  const login = async (g: TestGateway, openid: string): Promise<string> => {
    const code = `code-${codes++}`;
    wechat.codes.set(code, { openid, session_key: Buffer.from(`key-${openid}`.padEnd(16, '!').slice(0, 16)).toString('base64') });
    const res = await httpsRequest(g.port, g.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
    assert.equal(res.status, 200, res.text);
    return res.json<{ token: string }>().token;
  };
  const sessionKeyHeld = async (prefix: string, token: string) => (await admin.exists(`${prefix}{session:${decodeJwt(token).sid as string}}`)) === 1;
  const gets = async (): Promise<number> => Number(/cmdstat_get:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);

  before(async () => {
    wechat = await startFakeWechat();
    upstream = await startUpstream();
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    [a, b] = await pair(wechat, upstream, redis, 'wxgw-s:', 'session', () => now);
    [c, d] = await pair(wechat, upstream, redis, 'wxgw-u:', 'user', () => now);
  });
  after(async () => {
    await Promise.all([a.close(), b.close(), c.close(), d.close()]);
    admin.disconnect();
    await Promise.all([redis.stop(), upstream.close(), wechat.close()]);
  });

  test('scope session: the token ended on one instance is refused as session_revoked on both; the other sessions live on', async () => {
    const phone = await login(a, 'o_alice');
    const laptop = await login(a, 'o_alice');
    const bob = await login(b, 'o_bob');
    // B verifies (and caches) the token before the logout: its cache must not outlive the logout.
    const seen = await call(b, 'GET', '/api/me', phone);
    assert.equal(seen.status, 200, seen.text);
    assert.equal(upstream.received.at(-1)!.headers['x-wx-openid'], 'o_alice');
    assert.equal(await sessionKeyHeld('wxgw-s:', phone), true);

    const out = await call(a, 'POST', '/wx/logout', phone);
    assert.equal(out.status, 200, out.text);
    assert.deepEqual(out.json(), { logged_out: true, scope: 'session' });
    assert.equal(out.headers['cache-control'], 'no-store');
    assert.equal(await sessionKeyHeld('wxgw-s:', phone), false, 'the session_key is deleted');

    for (const g of [b, a]) {
      const refused = await call(g, 'GET', '/api/me', phone);
      assert.equal(refused.status, 401);
      assert.equal(reason(refused), 'session_revoked');
    }
    assert.equal(reason(await call(b, 'POST', '/wx/decrypt', phone)), 'session_revoked');
    assert.equal(reason(await call(b, 'POST', '/wx/logout', phone)), 'session_revoked', 'a second logout with it is refused too');
    // On a route that does not require an identity, the ended token makes the request anonymous.
    const anonymous = await call(b, 'GET', '/api/public', phone);
    assert.equal(anonymous.status, 200);
    assert.equal(upstream.received.at(-1)!.headers['x-wx-openid'], undefined);

    assert.equal((await call(b, 'GET', '/api/me', laptop)).status, 200, "the user's other session is not ended");
    assert.equal((await call(b, 'GET', '/api/me', bob)).status, 200);
    assert.equal(await sessionKeyHeld('wxgw-s:', laptop), true);
  });

  test('the revocation check is one Redis GET per request carrying a session token, cached signature or not', async () => {
    const token = await login(a, 'o_carol');
    const fresh = await login(a, 'o_dave');
    assert.equal((await call(b, 'GET', '/api/me', token)).status, 200);
    const before = await gets();
    const n = 20;
    for (let i = 0; i < n; i++) assert.equal((await call(b, 'GET', '/api/me', token)).status, 200);
    // A token this instance has not seen: signature check, then the same single GET.
    assert.equal((await call(b, 'GET', '/api/me', fresh)).status, 200);
    assert.equal((await gets()) - before, n + 1);
    // A request without a token costs none.
    const quiet = await gets();
    assert.equal((await call(b, 'GET', '/api/public')).status, 200);
    assert.equal(await gets(), quiet);
  });

  test('scope user: one logout ends every token of that openid on every instance; a new login works', async () => {
    const phone = await login(c, 'o_erin');
    const laptop = await login(d, 'o_erin');
    const frank = await login(c, 'o_frank');
    assert.equal((await call(d, 'GET', '/api/me', phone)).status, 200);
    assert.equal((await call(c, 'GET', '/api/me', laptop)).status, 200);

    now += 1000;
    const out = await call(d, 'POST', '/wx/logout', laptop);
    assert.equal(out.status, 200, out.text);
    assert.deepEqual(out.json(), { logged_out: true, scope: 'user' });
    for (const g of [c, d]) {
      for (const token of [phone, laptop]) assert.equal(reason(await call(g, 'GET', '/api/me', token)), 'session_revoked');
      assert.equal((await call(g, 'GET', '/api/me', frank)).status, 200, "another user's session is not ended");
    }
    assert.equal(await sessionKeyHeld('wxgw-u:', laptop), false);

    now += 1000;
    const again = await login(c, 'o_erin');
    assert.equal((await call(d, 'GET', '/api/me', again)).status, 200, 'a login after the logout is not refused');
  });

  test('while Redis hangs, a session token is refused with store_unavailable; a request without one goes on', async () => {
    const token = await login(a, 'o_gina');
    assert.equal((await call(b, 'GET', '/api/me', token)).status, 200);
    redis.pause();
    try {
      const refused = await call(b, 'GET', '/api/me', token);
      assert.equal(refused.status, 503);
      assert.equal(reason(refused), 'store_unavailable');
      assert.equal((await call(b, 'GET', '/api/public')).status, 200);
    } finally {
      redis.resume();
    }
    // Back once Redis answers the commands queued while it hung (bounded: a few round trips at most).
    let back: ClientResponse;
    for (let i = 0; ; i++) {
      back = await call(b, 'GET', '/api/me', token);
      if (reason(back) !== 'store_unavailable' || i === 100) break;
    }
    assert.equal(back.status, 200, back.text);
  });

  test('a logout needs a session token', async () => {
    const res = await call(a, 'POST', '/wx/logout');
    assert.equal(res.status, 401);
    assert.equal(reason(res), 'identity_required');
    const log = a.logText() + b.logText();
    assert.ok(!log.includes(Buffer.from('key-o_alice!!!!!').toString('base64')), 'no session_key in any log line');
  });
});
