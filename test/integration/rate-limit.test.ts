// Rate limits through real HTTPS: the memory store of one instance, then a real Redis shared by
// two instances under concurrent load, and what a Redis outage does with `on_unavailable` deny
// and allow.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { Agent, request } from 'undici';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { eventually } from '../helpers/wait.js';
import { PROTOCOLS } from '../helpers/h2-client.js';

interface ErrorBody {
  error: { reason: string; message: string; request_id: string };
}

function reasonOf(res: ClientResponse): string | undefined {
  try {
    return (JSON.parse(res.text) as ErrorBody).error?.reason;
  } catch {
    return undefined;
  }
}

function assertGatewayError(res: ClientResponse, status: number, reason: string): void {
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.equal(reasonOf(res), reason, res.text);
}

/** The RateLimit-* headers, as numbers. */
function limitHeaders(res: ClientResponse): { limit: number; remaining: number; reset: number } {
  for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset']) {
    assert.match(String(res.headers[name]), /^\d+$/, `${name} on a ${res.status}: ${JSON.stringify(res.headers)}`);
  }
  return {
    limit: Number(res.headers['ratelimit-limit']),
    remaining: Number(res.headers['ratelimit-remaining']),
    reset: Number(res.headers['ratelimit-reset']),
  };
}

/**
 * The stores keep an admitted request counted for the window plus at most one of its ten
 * sub-buckets (gateway/store/sliding-window.ts), so a 60 s window reports at most 66 s.
 */
const WINDOW_BOUND_S = 66;

const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';

function tokenFor(openid: string): Promise<string> {
  return new SignJWT({ openid })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

for (const protocol of PROTOCOLS) {
describe(`rate limits, memory store (the default) over ${protocol.name}`, () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  const received = (prefix: string) => upstream.received.filter((r) => r.url.startsWith(prefix)).length;
  const get = (path: string, headers: Record<string, string> = {}) => protocol.request(t.port, t.ca, { path, headers });

  before(async () => {
    upstream = await startUpstream();
    const rule = (limit: number) => `{ key: openid, limit: ${limit}, window: 60s, fallback_key: ip }`;
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
identity:
  jwt: { secret: "\${JWT_SECRET}", issuer: legacy }
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: per-ip
    match: { path_prefix: /ip/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 5, window: 60s }
  - name: per-user
    match: { path_prefix: /user/ }
    upstream: legacy
    rate_limit: ${rule(3)}
  - name: spoof
    match: { path_prefix: /spoof/ }
    upstream: legacy
    rate_limit: ${rule(3)}
  - name: bad-token
    match: { path_prefix: /bad-token/ }
    upstream: legacy
    rate_limit: ${rule(3)}
  - name: openid-only
    match: { path_prefix: /openid-only/ }
    upstream: legacy
    rate_limit: { key: openid, limit: 1, window: 60s }
  - name: global-a
    match: { path_prefix: /ga/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 4, window: 61s, scope: global }
  - name: global-b
    match: { path_prefix: /gb/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 4, window: 61s, scope: global }
  - name: route-a
    match: { path_prefix: /ra/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 2, window: 61s }
  - name: route-b
    match: { path_prefix: /rb/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 2, window: 61s }
  - name: flood
    match: { path_prefix: /flood/ }
    upstream: legacy
    identity_required: true
    rate_limit: { key: openid, limit: 4, window: 60s, fallback_key: ip }
  - name: both
    match: { path_prefix: /both/ }
    upstream: legacy
    rate_limit:
      - { key: openid, limit: 2, window: 60s }
      - { key: ip, limit: 3, window: 60s }
`,
      { env: { JWT_SECRET } },
    );
    assert.equal(t.gw.snapshot.store.kind, 'memory');
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  test('per ip: exactly `limit` admitted, then 429 rate_limited with Retry-After and RateLimit-*', async () => {
    const limitedBefore = (await t.gw.decisions.snapshot()).rate_limited ?? 0;
    for (let i = 0; i < 5; i++) {
      const res = await get(`/ip/${i}`);
      assert.equal(res.status, 200, res.text);
      const h = limitHeaders(res);
      assert.equal(h.limit, 5);
      assert.equal(h.remaining, 4 - i);
      assert.ok(h.reset >= 1 && h.reset <= WINDOW_BOUND_S, `reset ${h.reset}`);
      assert.equal(res.headers['retry-after'], undefined);
    }
    for (let i = 0; i < 3; i++) {
      const res = await get('/ip/over');
      assertGatewayError(res, 429, 'rate_limited');
      const h = limitHeaders(res);
      assert.equal(h.limit, 5);
      assert.equal(h.remaining, 0);
      assert.ok(h.reset >= 1 && h.reset <= WINDOW_BOUND_S, `reset ${h.reset}`);
      const retry = Number(res.headers['retry-after']);
      assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= WINDOW_BOUND_S, `retry-after ${res.headers['retry-after']}`);
      // The budget cannot be whole again before it has one free slot.
      assert.ok(h.reset >= retry, `reset ${h.reset} < retry-after ${retry}`);
    }
    assert.equal(received('/ip/'), 5);
    assert.equal((await t.gw.decisions.snapshot()).rate_limited! - limitedBefore, 3);
  });

  test('made-up tokens are counted against the address before their signature is checked', async () => {
    const alice = { authorization: `Bearer ${await tokenFor('o-flood-alice')}` };
    assert.equal((await get('/flood/a', alice)).status, 200);
    const forged = async (i: number) => {
      const [h, p] = (await tokenFor(`o-forged-${i}`)).split('.');
      return { authorization: `Bearer ${h}.${p}.${Buffer.from(`not a signature ${i}`).toString('base64url')}` };
    };
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push(reasonOf(await get('/flood/x', await forged(i)))!);
    // Alice's first request took one of the address's four; three forgeries get checked and
    // refused, the rest are refused before any signature check.
    assert.deepEqual(answers, ['token_invalid', 'token_invalid', 'token_invalid', 'rate_limited', 'rate_limited', 'rate_limited']);
    // A token already verified is not charged to the address again: Alice goes on.
    assert.equal((await get('/flood/a', alice)).status, 200);
    // The trade-off: a new token from the same address waits for the address's budget too.
    assertGatewayError(await get('/flood/b', { authorization: `Bearer ${await tokenFor('o-flood-bob')}` }), 429, 'rate_limited');
    assert.equal(received('/flood/'), 2);
  });

  test('per openid: two users with tokens have separate budgets', async () => {
    const alice = { authorization: `Bearer ${await tokenFor('o-alice')}` };
    const bob = { authorization: `Bearer ${await tokenFor('o-bob')}` };
    for (let i = 0; i < 3; i++) assert.equal((await get('/user/a', alice)).status, 200);
    assertGatewayError(await get('/user/a', alice), 429, 'rate_limited');
    for (let i = 0; i < 3; i++) {
      const res = await get('/user/b', bob);
      assert.equal(res.status, 200, res.text);
      assert.equal(limitHeaders(res).remaining, 2 - i);
    }
    assertGatewayError(await get('/user/b', bob), 429, 'rate_limited');
    // Neither user's budget was the IP's: an anonymous caller from the same address still has one.
    assert.equal((await get('/user/x')).status, 200);
    assert.equal(received('/user/a'), 3);
    assert.equal(received('/user/b'), 3);
  });

  test('rotating a spoofed X-WX-OpenID without a token does not escape the IP fallback', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await get('/spoof/x', { 'X-WX-OpenID': `o-spoofed-${i}` });
      statuses.push(res.status);
      if (res.status === 429) assert.equal(reasonOf(res), 'rate_limited');
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    const got = upstream.received.filter((r) => r.url.startsWith('/spoof/'));
    assert.equal(got.length, 3);
    for (const r of got) assert.equal(r.headers['x-wx-openid'], undefined);
  });

  test('an invalid token on a route without identity_required counts against the IP fallback', async () => {
    assert.equal((await get('/bad-token/1')).status, 200);
    const forged = { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJvcGVuaWQiOiJvLW1hbGxvcnkifQ.c2lnbmF0dXJl' };
    const wrongKey = {
      authorization: `Bearer ${await new SignJWT({ openid: 'o-mallory' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('legacy')
        .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
        .sign(new TextEncoder().encode('not-the-secret-0123456789abcdef-0123456789'))}`,
    };
    // Not refused (the route does not require identity), but counted as the address.
    const second = await get('/bad-token/2', forged);
    assert.equal(second.status, 200, second.text);
    assert.equal(limitHeaders(second).remaining, 1);
    const third = await get('/bad-token/3', wrongKey);
    assert.equal(third.status, 200, third.text);
    assert.equal(limitHeaders(third).remaining, 0);
    assertGatewayError(await get('/bad-token/4', wrongKey), 429, 'rate_limited');
    assertGatewayError(await get('/bad-token/5'), 429, 'rate_limited');
    const got = upstream.received.filter((r) => r.url.startsWith('/bad-token/'));
    assert.equal(got.length, 3);
    for (const r of got) assert.equal(r.headers['x-wx-openid'], undefined);
  });

  test('key openid without fallback_key limits verified callers only', async () => {
    const carol = { authorization: `Bearer ${await tokenFor('o-carol')}` };
    assert.equal((await get('/openid-only/1', carol)).status, 200);
    assertGatewayError(await get('/openid-only/2', carol), 429, 'rate_limited');
    for (let i = 0; i < 4; i++) {
      const res = await get('/openid-only/anon');
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['ratelimit-limit'], undefined);
    }
  });

  test('scope global shares one budget across routes; scope route does not', async () => {
    assert.equal((await get('/ga/1')).status, 200);
    assert.equal((await get('/gb/1')).status, 200);
    assert.equal((await get('/ga/2')).status, 200);
    const fourth = await get('/gb/2');
    assert.equal(fourth.status, 200);
    assert.equal(limitHeaders(fourth).remaining, 0);
    assertGatewayError(await get('/ga/3'), 429, 'rate_limited');
    assertGatewayError(await get('/gb/3'), 429, 'rate_limited');
    assert.equal(received('/ga/') + received('/gb/'), 4);

    for (let i = 0; i < 2; i++) assert.equal((await get('/ra/x')).status, 200);
    assertGatewayError(await get('/ra/x'), 429, 'rate_limited');
    // route-b has its own budget, untouched by route-a's.
    for (let i = 0; i < 2; i++) assert.equal((await get('/rb/x')).status, 200);
    assertGatewayError(await get('/rb/x'), 429, 'rate_limited');
    assert.equal(received('/ra/'), 2);
    assert.equal(received('/rb/'), 2);
  });

  test('two rules (openid and ip): both must admit', async () => {
    const dave = { authorization: `Bearer ${await tokenFor('o-dave')}` };
    const erin = { authorization: `Bearer ${await tokenFor('o-erin')}` };
    // Dave spends his openid budget (2 of 2) and 2 of the address's 3.
    assert.equal((await get('/both/d', dave)).status, 200);
    const second = await get('/both/d', dave);
    assert.equal(second.status, 200);
    // The rule closest to refusing speaks: the openid rule with 0 left.
    assert.equal(limitHeaders(second).limit, 2);
    assert.equal(limitHeaders(second).remaining, 0);
    const refusedByOpenid = await get('/both/d', dave);
    assertGatewayError(refusedByOpenid, 429, 'rate_limited');
    assert.equal(limitHeaders(refusedByOpenid).limit, 2);
    // Erin has her whole openid budget, but the address only has 1 left.
    const erinFirst = await get('/both/e', erin);
    assert.equal(erinFirst.status, 200, erinFirst.text);
    const refusedByIp = await get('/both/e', erin);
    assertGatewayError(refusedByIp, 429, 'rate_limited');
    assert.equal(limitHeaders(refusedByIp).limit, 3);
    assert.equal(limitHeaders(refusedByIp).remaining, 0);
    assert.equal(received('/both/d'), 2);
    assert.equal(received('/both/e'), 1);
  });
});
}

for (const protocol of PROTOCOLS) {
describe(`rate limits on the login endpoint (defaults.rate_limit) over ${protocol.name}`, () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let t: TestGateway;

  before(async () => {
    wechat = await startFakeWechat();
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${wechat.appid}
  app_secret: "\${WX_APP_SECRET}"
  api_base: "${wechat.url}"
identity:
  login: { path: /wx/login }
  session: { signing_key: "\${SESSION_SIGNING_KEY}" }
defaults:
  allow: any
  rate_limit: { key: ip, limit: 2, window: 60s }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    rate_limit: off
`,
      { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: 'session-signing-key-0123456789abcdef-0123456789' } },
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
    await wechat?.close();
  });

  test('logins past the limit are refused before WeChat is called', async () => {
    wechat.codes.set('c1', { openid: 'o-1', session_key: 'k1' });
    wechat.codes.set('c2', { openid: 'o-2', session_key: 'k2' });
    wechat.codes.set('c3', { openid: 'o-3', session_key: 'k3' });
    const login = (code: string) =>
      protocol.request(t.port, t.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
    for (const code of ['c1', 'c2']) {
      const res = await login(code);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers['ratelimit-limit'], '2');
    }
    const refused = await login('c3');
    assertGatewayError(refused, 429, 'rate_limited');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal(wechat.calls.length, 2);
    // The route that turned rate_limit off is not limited by the defaults.
    for (let i = 0; i < 4; i++) assert.equal((await protocol.request(t.port, t.ca, { path: '/api/x' })).status, 200);
  });
});
}

describe('rate limits, redis store shared by two instances', () => {
  let redis: TestRedis;
  let upstream: TestUpstream;
  const gateways: TestGateway[] = [];
  const agents: Agent[] = [];

  const start = async (opts: { prefix: string; onUnavailable: 'deny' | 'allow'; limit: number; commandTimeout: string }) => {
    const t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
store:
  kind: redis
  redis_url: \${REDIS_URL}
  key_prefix: "${opts.prefix}"
  command_timeout: ${opts.commandTimeout}
  on_unavailable: ${opts.onUnavailable}
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    rate_limit: { key: ip, limit: ${opts.limit}, window: 60s }
`,
      { env: { REDIS_URL: redis.url } },
    );
    gateways.push(t);
    assert.equal(t.gw.snapshot.store.kind, 'redis');
    const agent = new Agent({ connect: { ca: t.ca, servername: 'localhost' }, connections: 25, headersTimeout: 5000, bodyTimeout: 5000 });
    agents.push(agent);
    const send = async (path: string): Promise<{ status: number; reason: string | undefined; headers: Record<string, unknown> }> => {
      const res = await request(`https://127.0.0.1:${t.port}${path}`, { dispatcher: agent });
      const text = await res.body.text();
      let reason: string | undefined;
      if (res.statusCode !== 200) reason = (JSON.parse(text) as ErrorBody).error.reason;
      return { status: res.statusCode, reason, headers: res.headers };
    };
    return { t, send };
  };

  /** `total` requests over the agent's connections, `parallel` at a time; `onResult` sees each answer as it comes. */
  const hammer = async (
    send: (path: string) => Promise<{ status: number; reason: string | undefined }>,
    path: string,
    total: number,
    parallel: number,
    onResult?: (done: number) => void,
  ) => {
    const results: { status: number; reason: string | undefined }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < total) {
          next++;
          results.push(await send(path));
          onResult?.(results.length);
        }
      }),
    );
    return results;
  };

  const count = (results: { status: number }[], status: number) => results.filter((r) => r.status === status).length;

  before(async () => {
    redis = await startRedis();
    upstream = await startUpstream();
  });

  after(async () => {
    for (const a of agents) await a.close();
    for (const t of gateways) await t.close();
    await upstream?.close();
    await redis?.stop();
  });

  test('two instances hammered concurrently never admit more than the limit between them', async () => {
    const one = await start({ prefix: 'wxgw-load:', onUnavailable: 'deny', limit: 100, commandTimeout: '2s' });
    const two = await start({ prefix: 'wxgw-load:', onUnavailable: 'deny', limit: 100, commandTimeout: '2s' });
    const before = upstream.received.filter((r) => r.url.startsWith('/api/load')).length;
    const [a, b] = await Promise.all([hammer(one.send, '/api/load', 300, 25), hammer(two.send, '/api/load', 300, 25)]);
    const all = [...a, ...b];
    assert.equal(all.length, 600);
    const admitted = count(all, 200);
    const limited = all.filter((r) => r.status === 429 && r.reason === 'rate_limited').length;
    assert.equal(admitted + limited, 600, `unexpected answers: ${JSON.stringify(all.filter((r) => r.status !== 200 && r.status !== 429))}`);
    assert.ok(admitted <= 100, `admitted ${admitted} > limit 100`);
    // Every request fell in one window on a fresh key: the whole budget, not less, was used.
    assert.equal(admitted, 100);
    // Both instances admitted some: the budget really was shared, not per instance.
    assert.ok(count(a, 200) > 0 && count(b, 200) > 0, `instance one admitted ${count(a, 200)}, two ${count(b, 200)}`);
    assert.equal(upstream.received.filter((r) => r.url.startsWith('/api/load')).length - before, admitted);
  });

  test('Redis killed mid-load: deny answers 503 store_unavailable, allow admits and counts; limiting resumes after restart', async () => {
    const deny = await start({ prefix: 'wxgw-deny:', onUnavailable: 'deny', limit: 20, commandTimeout: '200ms' });
    const allow = await start({ prefix: 'wxgw-allow:', onUnavailable: 'allow', limit: 20, commandTimeout: '200ms' });
    const received = (path: string) => upstream.received.filter((r) => r.url === path).length;

    // Up: both limit as usual.
    const warm = [...(await hammer(deny.send, '/api/deny', 5, 5)), ...(await hammer(allow.send, '/api/allow', 5, 5))];
    assert.deepEqual(warm.map((r) => r.status), Array(10).fill(200));

    // Load running while Redis dies: every request completes (the client gives up after 5 s, so a
    // hang fails the test), each with an answer the policy allows.
    // Redis is killed once the deny gateway has answered 8 of the 60, the rest still to come.
    let killed: Promise<void> | undefined;
    const during = Promise.all([
      hammer(deny.send, '/api/deny', 60, 10, (done) => {
        if (done === 8) killed = redis.kill();
      }),
      hammer(allow.send, '/api/allow', 60, 10),
    ]);
    const [denyDuring, allowDuring] = await during;
    assert.ok(killed, 'redis was killed during the load');
    await killed;
    for (const r of denyDuring) assert.ok(r.status === 200 || (r.status === 503 && r.reason === 'store_unavailable'), JSON.stringify(r));
    // Both sides of the outage were seen under load: admitted while up, refused once it died.
    assert.ok(count(denyDuring, 200) >= 8, `admitted during the load: ${count(denyDuring, 200)}`);
    assert.ok(count(denyDuring, 503) > 0, 'no store_unavailable after the kill');
    for (const r of allowDuring) assert.equal(r.status, 200, JSON.stringify(r));

    // Down: deny refuses everything, allow admits everything, past the limit of 20.
    const allowedBefore = (await allow.t.gw.decisions.snapshot()).store_unavailable_allowed ?? 0;
    const denyReceivedBefore = received('/api/deny');
    const allowReceivedBefore = received('/api/allow');
    const [denyDown, allowDown] = await Promise.all([hammer(deny.send, '/api/deny', 40, 10), hammer(allow.send, '/api/allow', 40, 10)]);
    for (const r of denyDown) {
      assert.equal(r.status, 503, JSON.stringify(r));
      assert.equal(r.reason, 'store_unavailable');
    }
    assert.equal(received('/api/deny'), denyReceivedBefore);
    for (const r of allowDown) assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(received('/api/allow') - allowReceivedBefore, 40);
    const allowDecisions = await allow.t.gw.decisions.snapshot();
    assert.equal((allowDecisions.store_unavailable_allowed ?? 0) - allowedBefore, 40);
    assert.ok((await deny.t.gw.decisions.snapshot()).store_unavailable! >= 40);
    assert.equal((await deny.t.gw.decisions.snapshot()).store_unavailable_allowed, undefined);
    const storeUp = async (): Promise<string> => (await deny.t.gw.metrics.registry.getSingleMetricAsString('wxgw_store_up')).trim().split('\n').at(-1)!;
    assert.equal(await storeUp(), 'wxgw_store_up{kind="redis"} 0');

    // Back (empty): both gateways reconnect by themselves and limit again.
    await redis.restart();
    const until429 = async (send: (path: string) => Promise<{ status: number; reason: string | undefined }>, path: string) => {
      const seen: number[] = [];
      // Bounded so a gateway that never recovers fails the test instead of hanging it.
      for (let i = 0; i < 400; i++) {
        const r = await send(path);
        seen.push(r.status);
        if (r.status === 429) {
          assert.equal(r.reason, 'rate_limited');
          return seen;
        }
        if (r.status !== 200) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.fail(`${path}: no 429 after the restart; statuses ${JSON.stringify(seen.slice(-30))}`);
    };
    const [denyAfter, allowAfter] = await Promise.all([until429(deny.send, '/api/deny'), until429(allow.send, '/api/allow')]);
    assert.equal(await storeUp(), 'wxgw_store_up{kind="redis"} 1');
    // After the restart the counters start over: the 429 comes after exactly `limit` admissions
    // counted by the revived Redis.
    const trailingOk = (seen: number[]) => {
      let n = 0;
      for (let i = seen.length - 2; i >= 0 && seen[i] === 200; i--) n++;
      return n;
    };
    assert.equal(trailingOk(denyAfter), 20, JSON.stringify(denyAfter));
    assert.ok(trailingOk(allowAfter) >= 20, JSON.stringify(allowAfter));
  });

  test('Redis hanging: deny answers 503 store_unavailable instead of waiting', async () => {
    const deny = await start({ prefix: 'wxgw-hang:', onUnavailable: 'deny', limit: 1000, commandTimeout: '200ms' });
    // Connected and deciding first.
    await eventually(async () => ((await deny.send('/api/hang')).status === 200 ? true : undefined), 'the gateway to decide with Redis');
    // Stopped until the test resumes it: however slowly these requests go, Redis stays hung.
    redis.pause();
    try {
      // The client gives up after 5 s; a gateway waiting on the hung Redis would fail these.
      const during = await hammer(deny.send, '/api/hang', 20, 10);
      for (const r of during) {
        assert.equal(r.status, 503, JSON.stringify(r));
        assert.equal(r.reason, 'store_unavailable');
      }
    } finally {
      redis.resume();
    }
  });

  test('a login while Redis is down is refused with 503 store_unavailable even with on_unavailable: allow', async () => {
    const wechat = await startFakeWechat();
    try {
      wechat.codes.set('code-during-outage', { openid: 'o-outage', session_key: 'k' });
      const t = await startTestGateway(
        (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
store:
  kind: redis
  redis_url: "\${REDIS_URL}"
  key_prefix: "wxgw-login:"
  command_timeout: 200ms
  on_unavailable: allow
wechat:
  appid: ${wechat.appid}
  app_secret: "\${WX_APP_SECRET}"
  api_base: "${wechat.url}"
identity:
  login: { path: /wx/login }
  session: { signing_key: "\${SESSION_SIGNING_KEY}" }
defaults:
  allow: any
  rate_limit: { key: ip, limit: 100, window: 60s }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`,
        { env: { REDIS_URL: redis.url, WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: 'session-signing-key-0123456789abcdef-0123456789' } },
      );
      gateways.push(t);
      const login = (code: string) =>
        httpsRequest(t.port, t.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
      await redis.kill();
      try {
        const res = await login('code-during-outage');
        assertGatewayError(res, 503, 'store_unavailable');
        // The code was never sent to WeChat: it cannot be marked as used, so it is not spent.
        assert.equal(wechat.calls.length, 0);
        // Proxied requests, by contrast, are admitted unlimited.
        assert.equal((await httpsRequest(t.port, t.ca, { path: '/api/outage' })).status, 200);
      } finally {
        await redis.restart();
      }
    } finally {
      await wechat.close();
    }
  });

});
