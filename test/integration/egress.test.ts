// The WeChat API egress through real gateways: four instances on one real Redis against a fake
// WeChat that speaks the access_token protocol, on a clock the test moves. One token request per
// expiry across all instances, token calls answered from the cache, recovery from a rejected
// token with one repeat, budgets that answer before WeChat's 45009, circuits that open and close,
// and phone numbers by code end to end. No token or secret ever reaches a log line or a metric.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { startTestGateway, testChain, type TestGateway } from '../helpers/gateway.js';
import { startFakeWechatApi, type FakeWechatApi } from '../helpers/fake-wechat-api.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { httpsRequest } from '../helpers/https-client.js';
import { sample } from '../helpers/metrics-text.js';
import { waitUntil } from '../helpers/wait.js';

const INSTANCES = 4;
const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';
const SEND = '/cgi-bin/message/custom/send';
const QUOTA_API = '/cgi-bin/user/info';
const FLAKY = '/wxa/msg_sec_check';
const BUSY = '/wxa/img_sec_check';

/** Runs `check` again until it holds; bounded, for state that settles in the background. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) if (await check()) return;
  assert.fail(`never: ${what}`);
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

describe('WeChat API egress', () => {
  let offset = 0;
  const now = (): number => Date.now() + offset;
  let redis: TestRedis;
  let wx: FakeWechatApi;
  let upstream: TestUpstream;
  const gws: TestGateway[] = [];

  const call = async (i: number, path: string, init: { method?: string; body?: unknown; query?: string } = {}): Promise<Answer> => {
    const g = gws[i]!;
    const res = await fetch(`http://127.0.0.1:${g.gw.egress!.port}${path}${init.query ?? ''}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      ...(init.body !== undefined && { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  };
  const callsTo = (path: string) => wx.calls.filter((c) => c.path === path);

  before(async () => {
    redis = await startRedis();
    wx = await startFakeWechatApi({ now });
    upstream = await startUpstream((req, res, body) => {
      const text = req.url === '/api/users/phone' ? JSON.stringify({ user_id: 9 }) : JSON.stringify({ url: req.url, body: body.toString() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(text);
    });
    for (let i = 0; i < INSTANCES; i++) {
      gws.push(
        await startTestGateway(
          (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  egress: { listen: "127.0.0.1:${ctx.httpPort}" }
${ctx.tlsSection}
store:
  kind: redis
  redis_url: "${redis.url}"
wechat:
  appid: ${wx.appid}
  app_secret: \${WX_APP_SECRET}
  api_base: "${wx.url}"
  api_timeout: 1s
  quotas:
    "${QUOTA_API}": { per_day: 3 }
identity:
  jwt: { secret: "\${JWT_SECRET}", algorithms: [HS256] }
  phone:
    path: /wx/phone
    upstream: { upstream: legacy, path: /api/users/phone }
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`,
          { env: { WX_APP_SECRET: wx.secret, JWT_SECRET }, now },
        ),
      );
    }
  });

  after(async () => {
    await Promise.all(gws.map((g) => g.close()));
    await upstream?.close();
    await wx?.close();
    await redis?.stop();
  });

  test('four instances under concurrent calls make exactly one token request per expiry', async () => {
    for (let expiry = 1; expiry <= 3; expiry++) {
      const answers = await Promise.all(Array.from({ length: INSTANCES * 10 }, (_, k) => call(k % INSTANCES, SEND, { body: { touser: 'o-1', msgtype: 'text', text: { content: `hi ${k}` } } })));
      for (const a of answers) assert.equal(a.body.errcode, 0, JSON.stringify(a.body));
      await waitUntil(() => (wx.stableRequests.length === expiry ? true : undefined), `token request ${expiry}`);
      // Once the renewal has settled everywhere, every instance calls with the newest token and none asks again.
      await eventually(async () => {
        const sent = callsTo(SEND).length;
        const again = await Promise.all(Array.from({ length: INSTANCES }, (_, k) => call(k, SEND, { body: { touser: 'o-1' } })));
        for (const a of again) assert.equal(a.body.errcode, 0);
        return callsTo(SEND).slice(sent).every((c) => c.token === wx.stableToken());
      }, 'every instance on the new token');
      assert.equal(wx.stableRequests.length, expiry, JSON.stringify(wx.stableRequests));
      assert.ok(wx.stableRequests.every((r) => !r.force));
      // Into the token's last minutes: the next calls renew it.
      if (expiry < 3) offset += 7200_000 - 200_000;
    }
    assert.equal(wx.plainRequests, 0);
    assert.ok(callsTo(SEND).every((c) => c.errcode === 0), 'no call was made with a stale token');
  });

  test('/cgi-bin/token and /cgi-bin/stable_token are answered from the cache, for the right appid only', async () => {
    const before = wx.stableRequests.length;
    const plain = await call(1, '/cgi-bin/token', { query: `?grant_type=client_credential&appid=${wx.appid}&secret=legacy-secret` });
    assert.equal(plain.status, 200);
    assert.equal(plain.body.access_token, wx.stableToken());
    assert.ok(typeof plain.body.expires_in === 'number' && plain.body.expires_in > 0 && plain.body.expires_in <= 7200);
    const stable = await call(2, '/cgi-bin/stable_token', { body: { grant_type: 'client_credential', appid: wx.appid, secret: 'x', force_refresh: true } });
    assert.equal(stable.body.access_token, wx.stableToken());
    const wrong = await call(3, '/cgi-bin/token', { query: '?grant_type=client_credential&appid=wxffffffffffffffff&secret=x' });
    assert.equal(wrong.body.errcode, 40013);
    assert.equal(wrong.body.access_token, undefined);
    assert.equal(wx.stableRequests.length, before);
    assert.equal(wx.plainRequests, 0);
  });

  test('a /cgi-bin/token refresh elsewhere does not break calls; the backend\'s own access_token is replaced', async () => {
    const before = wx.stableRequests.length;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${wx.url}/cgi-bin/token?grant_type=client_credential&appid=${wx.appid}&secret=${wx.secret}`);
      assert.ok(((await res.json()) as { access_token?: string }).access_token);
    }
    const a = await call(0, SEND, { body: { touser: 'o-2' }, query: '?access_token=backend-stale-token&x=1' });
    assert.equal(a.body.errcode, 0);
    const last = callsTo(SEND).at(-1)!;
    assert.equal(last.token, wx.stableToken());
    assert.deepEqual(last.query, { x: '1' });
    assert.equal(wx.stableRequests.length, before);
  });

  test('a forced stable_token refresh elsewhere: 40001 recovers with one renewal and one repeat', async () => {
    const before = wx.stableRequests.length;
    const forced = await fetch(`${wx.url}/cgi-bin/stable_token`, { method: 'POST', body: JSON.stringify({ grant_type: 'client_credential', appid: wx.appid, secret: wx.secret, force_refresh: true }) });
    const fresh = ((await forced.json()) as { access_token: string }).access_token;
    const sent = callsTo(SEND).length;
    const answers = await Promise.all(Array.from({ length: INSTANCES * 3 }, (_, k) => call(k % INSTANCES, SEND, { body: { touser: 'o-3', k } })));
    for (const a of answers) assert.equal(a.body.errcode, 0, JSON.stringify(a.body));
    const made = callsTo(SEND).slice(sent);
    // Each call WeChat refused was repeated exactly once, with the new token.
    const refused = made.filter((c) => c.errcode === 40001);
    assert.equal(made.length - refused.length, INSTANCES * 3);
    assert.ok(made.filter((c) => c.errcode === 0).every((c) => c.token === fresh));
    // The renewal happened once across all instances (plus the one the test forced), never forced by wxgw.
    assert.equal(wx.stableRequests.length, before + 2, JSON.stringify(wx.stableRequests.slice(before)));
    assert.equal(wx.stableRequests.filter((r) => r.force).length, 1);
  });

  test('a token WeChat revoked but stable_token still hands out: wxgw forces one refresh', async () => {
    const before = wx.stableRequests.length;
    wx.revoke(wx.stableToken()!);
    const a = await call(1, SEND, { body: { touser: 'o-4' } });
    assert.equal(a.body.errcode, 0);
    const asked = wx.stableRequests.slice(before);
    assert.deepEqual(asked.map((r) => r.force), [false, true]);
    const text = await gws[1]!.gw.metrics.registry.metrics();
    assert.equal(sample(text, 'wxgw_egress_token_refreshes_total{result="forced"}'), 1);
  });

  test('the budget answers 429 wx_quota before WeChat would answer 45009', async () => {
    wx.quotas.set(QUOTA_API, 3);
    const answers = [];
    for (let k = 0; k < 3; k++) answers.push(await call(k % INSTANCES, QUOTA_API, { query: '?openid=o-5' }));
    for (const a of answers) assert.equal(a.body.errcode, 0);
    const over = await call(3, QUOTA_API, { query: '?openid=o-5' });
    assert.equal(over.status, 429);
    assert.equal((over.body.error as { reason: string }).reason, 'wx_quota');
    assert.equal(over.body.errcode, 45009);
    const retry = Number(over.headers.get('retry-after'));
    // Seconds to the next 00:00 Beijing time on the test's clock.
    const beijing = new Date(now() + 8 * 3600_000);
    const midnight = Date.UTC(beijing.getUTCFullYear(), beijing.getUTCMonth(), beijing.getUTCDate() + 1) - 8 * 3600_000;
    assert.ok(Math.abs(retry - (midnight - now()) / 1000) <= 5, `${retry}`);
    // (A call WeChat refused with 40001, an instance still holding the revoked token, was repeated.)
    assert.equal(callsTo(QUOTA_API).filter((c) => c.errcode === 0).length, 3);
    assert.ok(callsTo(QUOTA_API).every((c) => c.errcode !== 45009), 'WeChat never answered 45009');
    const text = await gws[3]!.gw.metrics.registry.metrics();
    assert.equal(sample(text, `wxgw_egress_quota_near{api="${QUOTA_API}"}`), 1);
  });

  test('the circuit opens after -1s, refuses while open, probes once and closes', async () => {
    const g = 2;
    wx.script.set(FLAKY, [1, 2, 3].map(() => ({ errcode: -1, errmsg: 'system error' })));
    for (let k = 0; k < 3; k++) assert.equal((await call(g, FLAKY, { body: { content: 'x' } })).body.errcode, -1);
    const made = callsTo(FLAKY).length;
    const open = await call(g, FLAKY, { body: { content: 'x' } });
    assert.equal(open.status, 503);
    assert.equal((open.body.error as { reason: string }).reason, 'wx_circuit_open');
    assert.ok(Number(open.headers.get('retry-after')) >= 1);
    assert.equal(callsTo(FLAKY).length, made, 'no call while open');
    await gws[g]!.waitForLog((l) => l.api === FLAKY && l.circuit === 'open', 'the open log line');
    let text = await gws[g]!.gw.metrics.registry.metrics();
    assert.equal(sample(text, `wxgw_egress_circuit_state{api="${FLAKY}"}`), 2);
    // Past the backoff one probe goes; its success closes the circuit.
    offset += 6000;
    const probe = await call(g, FLAKY, { body: { content: 'x' } });
    assert.equal(probe.body.errcode, 0);
    assert.equal((await call(g, FLAKY, { body: { content: 'y' } })).body.errcode, 0);
    await gws[g]!.waitForLog((l) => l.api === FLAKY && l.circuit === 'closed', 'the closed log line');
    text = await gws[g]!.gw.metrics.registry.metrics();
    assert.equal(sample(text, `wxgw_egress_circuit_state{api="${FLAKY}"}`), 0);
  });

  test('45009 opens the circuit at once; a failed probe opens it again for longer', async () => {
    const g = 3;
    wx.script.set(BUSY, [{ errcode: 45009, errmsg: 'reach max api daily quota limit' }, { errcode: 45009, errmsg: 'reach max api daily quota limit' }]);
    assert.equal((await call(g, BUSY, { body: {} })).body.errcode, 45009);
    const first = await call(g, BUSY, { body: {} });
    assert.equal(first.status, 503);
    offset += 6000;
    assert.equal((await call(g, BUSY, { body: {} })).body.errcode, 45009, 'the probe');
    const again = await call(g, BUSY, { body: {} });
    assert.equal(again.status, 503);
    assert.ok(Number(again.headers.get('retry-after')) >= 9, `${again.headers.get('retry-after')}`);
    offset += 11_000;
    assert.equal((await call(g, BUSY, { body: {} })).body.errcode, 0);
  });

  test('a WeChat that does not answer in time: 504 wx_timeout', async () => {
    wx.hold();
    try {
      const a = await call(0, '/wxa/getwxacode', { body: { path: 'pages/index' } });
      assert.equal(a.status, 504);
      assert.equal((a.body.error as { reason: string }).reason, 'wx_timeout');
    } finally {
      wx.release();
    }
  });

  test('a large body is streamed to WeChat whole; a rejected token on it is not repeated, the next call has a new one', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024 + 17, 'a');
    const upload = (i: number) =>
      fetch(`http://127.0.0.1:${gws[i]!.gw.egress!.port}/cgi-bin/media/upload?type=image`, { method: 'POST', body: big, headers: { 'content-type': 'application/octet-stream' } }).then(
        async (r) => (await r.json()) as Record<string, unknown>,
      );
    const ok = await upload(0);
    assert.equal(ok.errcode, 0);
    assert.equal(callsTo('/cgi-bin/media/upload').at(-1)!.body.length, big.length);
    wx.revoke(wx.stableToken()!);
    const sent = callsTo('/cgi-bin/media/upload').length;
    const refused = await upload(0);
    assert.equal(refused.errcode, 40001, 'passed back, not repeated');
    assert.equal(callsTo('/cgi-bin/media/upload').length, sent + 1);
    await eventually(async () => (await upload(0)).errcode === 0, 'the renewed token');
    // A body declared larger than the bound is refused before any of it is read.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ port: gws[0]!.gw.egress!.port, host: '127.0.0.1', method: 'POST', path: '/cgi-bin/media/upload', headers: { 'content-length': String(33 * 1024 * 1024) } }, (res) => {
        resolve(res.statusCode!);
        req.destroy();
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(status, 413);
  });

  test('phone number by code: the backend gets it in verified headers, the client only masked', async () => {
    const g = gws[1]!;
    wx.phones.set('phone-code-1', { phoneNumber: '13812345678', purePhoneNumber: '13812345678', countryCode: '86' });
    const token = await new SignJWT({ openid: 'o-phone' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(Math.floor(now() / 1000) + 600).sign(new TextEncoder().encode(JWT_SECRET));
    const ask = (code: string, auth = true, extra: Record<string, string> = {}) =>
      httpsRequest(g.port, g.ca, {
        method: 'POST',
        path: '/wx/phone',
        headers: { 'content-type': 'application/json', ...(auth && { authorization: `Bearer ${token}` }), ...extra },
        body: JSON.stringify({ code, scene: 'signup', phoneNumber: '19900000000' }),
      });
    const noToken = await ask('phone-code-1', false);
    assert.equal(noToken.status, 401);
    const before = upstream.received.length;
    const res = await ask('phone-code-1', true, { 'x-wx-phone': '19900000000' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json(), { phone: '138****5678', user: { user_id: 9 } });
    assert.ok(!res.text.includes('13812345678'));
    const told = upstream.received.slice(before);
    assert.equal(told.length, 1);
    assert.equal(told[0]!.url, '/api/users/phone');
    assert.equal(told[0]!.headers['x-wx-phone'], '13812345678');
    assert.equal(told[0]!.headers['x-wx-phone-country'], '86');
    assert.equal(told[0]!.headers['x-wx-openid'], 'o-phone');
    assert.deepEqual(JSON.parse(told[0]!.body.toString()), { scene: 'signup' });
    const phoneCall = callsTo('/wxa/business/getuserphonenumber').at(-1)!;
    assert.equal(phoneCall.token, wx.stableToken());
    // A code WeChat does not know.
    const bad = await ask('phone-code-unknown');
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.text).error.reason, 'phone_code_invalid');
    assert.ok(!g.logText().includes('13812345678'), 'the number is never logged');
  });

  test('a reload keeps the token, the circuits and the budgets: no new token request', async () => {
    const before = wx.stableRequests.length;
    const result = await gws[0]!.gw.reload();
    assert.equal(result.ok, true, JSON.stringify(result));
    const a = await call(0, SEND, { body: { touser: 'o-6' } });
    assert.equal(a.body.errcode, 0);
    assert.equal(wx.stableRequests.length, before);
    assert.equal((await call(0, QUOTA_API, { query: '?openid=o-6' })).status, 429, 'the day\'s count survived');
  });

  test('no token and no secret in any log line, metric or answer', async () => {
    for (const g of gws) {
      const text = g.logText() + (await g.gw.metrics.registry.metrics());
      for (const t of wx.issued) assert.ok(!text.includes(t), `token ${t.slice(0, 22)}... leaked`);
      assert.ok(!text.includes(wx.secret), 'secret leaked');
    }
  });
});

describe('WeChat API egress over TLS', () => {
  test('a WeChat API base whose certificate is not trusted is never spoken to', async () => {
    const chain = await testChain();
    let requests = 0;
    const fake = createHttpsServer({ cert: readFileSync(chain.fullchain), key: readFileSync(chain.key) }, (_req, res) => {
      requests++;
      res.end('{"access_token":"never","expires_in":7200}');
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', () => resolve()));
    const port = (fake.address() as AddressInfo).port;
    const g = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  egress: { listen: "127.0.0.1:${ctx.httpPort}" }
${ctx.tlsSection}
wechat:
  appid: wx0123456789abcdef
  app_secret: \${WX_APP_SECRET}
  api_base: "https://localhost:${port}"
  api_timeout: 2s
defaults:
  allow: any
upstreams:
  legacy: { url: "http://127.0.0.1:9", timeout: 1s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`,
      { env: { WX_APP_SECRET: 'a-secret-for-the-tls-test-0123456789' } },
    );
    try {
      const res = await fetch(`http://127.0.0.1:${g.gw.egress!.port}/cgi-bin/token?grant_type=client_credential`);
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: { reason: string } }).error.reason, 'wx_token_unavailable');
      assert.equal(requests, 0);
      await g.waitForLog((l) => typeof l.err === 'string' && /certificate/i.test(l.err), 'the certificate failure logged');
      assert.ok(!g.logText().includes('a-secret-for-the-tls-test'));
    } finally {
      await g.close();
      await new Promise((resolve) => fake.close(resolve));
    }
  });
});
