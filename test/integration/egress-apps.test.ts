// Several WeChat apps through one egress listener: the default `wechat` app and `wechat.apps`
// entries, against a fake WeChat that knows both accounts and records which app each token
// belongs to. The app is chosen by the X-WX-App header or a /<name>/ path prefix (name or appid);
// the prefix wins; an unknown name is refused, never served as the default app. Each app has its
// own token, token endpoints and daily budgets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startFakeWechatApi, type FakeWechatApi } from '../helpers/fake-wechat-api.js';
import { sample } from '../helpers/metrics-text.js';

const SHOP = { appid: 'wx1111111111111111', secret: 'shop-app-secret-for-egress-0123456789' };
const SEND = '/cgi-bin/message/custom/send';
const QUOTA_API = '/cgi-bin/user/info';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

describe('WeChat API egress with several apps', () => {
  let wx: FakeWechatApi;
  let gw: TestGateway;

  const call = async (path: string, init: { body?: unknown; app?: string } = {}): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.app !== undefined) headers['x-wx-app'] = init.app;
    const res = await fetch(`http://127.0.0.1:${gw.gw.egress!.port}${path}`, {
      method: init.body === undefined ? 'GET' : 'POST',
      headers,
      ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const reasonOf = (a: Answer): string | undefined => (a.body.error as { reason?: string } | undefined)?.reason;
  const lastCall = () => wx.calls.at(-1)!;

  before(async () => {
    wx = await startFakeWechatApi({ now: Date.now, apps: [SHOP] });
    gw = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  egress: { listen: "127.0.0.1:${ctx.httpPort}" }
${ctx.tlsSection}
wechat:
  appid: ${wx.appid}
  app_secret: \${WX_APP_SECRET}
  api_base: "${wx.url}"
  api_timeout: 2s
  quotas:
    "${QUOTA_API}": { per_day: 2 }
  apps:
    eshop:
      appid: ${SHOP.appid}
      app_secret: \${SHOP_APP_SECRET}
    pushonly:
      appid: wx2222222222222222
      token: \${PUSH_TOKEN}
upstreams:
  legacy: { url: "http://127.0.0.1:9", timeout: 1s }
routes:
  - { name: all, match: { path_prefix: / }, upstream: legacy, allow: any }
`,
      { env: { WX_APP_SECRET: wx.secret, SHOP_APP_SECRET: SHOP.secret, PUSH_TOKEN: 'pushToken123' } },
    );
  });

  after(async () => {
    await gw?.close();
    await wx?.close();
  });

  test('without header or prefix a call is the default app\'s, with its token', async () => {
    const a = await call(SEND, { body: { touser: 'o-1' } });
    assert.equal(a.body.errcode, 0, JSON.stringify(a.body));
    assert.equal(lastCall().appid, wx.appid);
    assert.equal(lastCall().token, wx.stableTokenOf(wx.appid));
  });

  test('X-WX-App by name or appid: the call goes out with that app\'s token, without the header', async () => {
    for (const app of ['eshop', SHOP.appid]) {
      const a = await call(SEND, { body: { touser: 'o-2' }, app });
      assert.equal(a.body.errcode, 0, JSON.stringify(a.body));
      assert.equal(lastCall().appid, SHOP.appid, app);
      assert.equal(lastCall().token, wx.stableTokenOf(SHOP.appid));
      assert.equal(lastCall().path, SEND);
      assert.equal(lastCall().headers['x-wx-app'], undefined, 'the header is not forwarded');
    }
    assert.notEqual(wx.stableTokenOf(SHOP.appid), wx.stableTokenOf(wx.appid));
  });

  test('a /<name>/ or /<appid>/ prefix picks the app and is removed before forwarding', async () => {
    for (const prefix of ['/eshop', `/${SHOP.appid}`]) {
      const a = await call(`${prefix}${SEND}`, { body: { touser: 'o-3' } });
      assert.equal(a.body.errcode, 0, JSON.stringify(a.body));
      assert.equal(lastCall().path, SEND, prefix);
      assert.equal(lastCall().appid, SHOP.appid);
    }
    const own = await call(`/${wx.appid}${SEND}`, { body: { touser: 'o-3' } });
    assert.equal(own.body.errcode, 0);
    assert.equal(lastCall().appid, wx.appid, 'the default app by its appid');
  });

  test('the prefix wins over a header naming another app, and the disagreement is logged', async () => {
    const a = await call(`/eshop${SEND}`, { body: { touser: 'o-4' }, app: wx.appid });
    assert.equal(a.body.errcode, 0);
    assert.equal(lastCall().appid, SHOP.appid);
    const line = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('the prefix wins'), 'the disagreement warning');
    assert.equal(line.appid, SHOP.appid);
    assert.equal(line.header, wx.appid);
  });

  test('an unknown app, by header or prefix, is refused and reaches no one', async () => {
    const calls = wx.calls.length;
    for (const a of [await call(SEND, { body: { touser: 'o-5' }, app: 'nosuch' }), await call(`/nosuch${SEND}`, { body: { touser: 'o-5' } }), await call(SEND, { app: 'wxffffffffffffffff' })]) {
      assert.equal(a.status, 400);
      assert.equal(reasonOf(a), 'wx_app_unknown');
      assert.equal(a.body.errcode, 40013);
    }
    const noSecret = await call(SEND, { body: { touser: 'o-5' }, app: 'pushonly' });
    assert.equal(noSecret.status, 503);
    assert.equal(reasonOf(noSecret), 'wx_token_unavailable');
    assert.match(String(noSecret.body.errmsg), /wechat\.apps\.pushonly\.app_secret/);
    assert.equal(wx.calls.length, calls, 'nothing was sent to WeChat');
    const text = await gw.gw.metrics.registry.metrics();
    assert.equal(sample(text, `wxgw_egress_refused_total{api="/nosuch${SEND}",reason="wx_app_unknown"}`), 1);
  });

  test('token endpoints answer each app its own token: by appid, header or prefix', async () => {
    const shopToken = wx.stableTokenOf(SHOP.appid);
    const ownToken = wx.stableTokenOf(wx.appid);
    assert.equal((await call(`/cgi-bin/token?grant_type=client_credential&appid=${SHOP.appid}&secret=x`)).body.access_token, shopToken);
    assert.equal((await call(`/cgi-bin/token?grant_type=client_credential&appid=${wx.appid}&secret=x`)).body.access_token, ownToken);
    assert.equal((await call('/cgi-bin/token?grant_type=client_credential')).body.access_token, ownToken, 'no appid: the default app');
    assert.equal((await call('/eshop/cgi-bin/token?grant_type=client_credential')).body.access_token, shopToken);
    assert.equal((await call('/cgi-bin/token', { app: 'eshop' })).body.access_token, shopToken);
    assert.equal((await call('/cgi-bin/stable_token', { body: { grant_type: 'client_credential', appid: SHOP.appid, secret: 'x' } })).body.access_token, shopToken);
    assert.equal((await call('/eshop/cgi-bin/stable_token', { body: { grant_type: 'client_credential', appid: SHOP.appid, secret: 'x' } })).body.access_token, shopToken);
    // An appid that contradicts the chosen app, or that no app has: WeChat's invalid appid.
    assert.equal((await call(`/eshop/cgi-bin/token?appid=${wx.appid}`)).body.errcode, 40013);
    const unknown = await call('/cgi-bin/token?appid=wxffffffffffffffff');
    assert.equal(unknown.body.errcode, 40013);
    assert.match(String(unknown.body.errmsg), new RegExp(`${wx.appid}, ${SHOP.appid}`));
    // Each app's token was fetched once, however many calls and token requests it served.
    assert.equal(wx.stableRequestsOf(SHOP.appid), 1);
    assert.equal(wx.stableRequestsOf(wx.appid), 1);
    assert.equal(wx.plainRequests, 0);
  });

  test('daily budgets are counted per app', async () => {
    for (let k = 0; k < 2; k++) assert.equal((await call(`${QUOTA_API}?openid=o-6`)).body.errcode, 0);
    const over = await call(`${QUOTA_API}?openid=o-6`);
    assert.equal(over.status, 429);
    assert.equal(reasonOf(over), 'wx_quota');
    // The shop's budget of the same API is its own: two calls still go through, then it is used up too.
    for (let k = 0; k < 2; k++) {
      const a = await call(`/eshop${QUOTA_API}?openid=o-7`);
      assert.equal(a.body.errcode, 0, JSON.stringify(a.body));
      assert.equal(lastCall().appid, SHOP.appid);
    }
    const shopOver = await call(`${QUOTA_API}?openid=o-7`, { app: 'eshop' });
    assert.equal(shopOver.status, 429);
    assert.equal(reasonOf(shopOver), 'wx_quota');
  });

  test('circuits are per app: WeChat busy for one app does not pause the other', async () => {
    const BUSY = '/wxa/msg_sec_check';
    wx.script.set(BUSY, Array.from({ length: 3 }, () => ({ errcode: -1, errmsg: 'system error' })));
    for (let k = 0; k < 3; k++) assert.equal((await call(BUSY, { body: { content: 'x' }, app: 'eshop' })).body.errcode, -1);
    const paused = await call(BUSY, { body: { content: 'x' }, app: 'eshop' });
    assert.equal(paused.status, 503);
    assert.equal(reasonOf(paused), 'wx_circuit_open');
    const other = await call(BUSY, { body: { content: 'x' } });
    assert.equal(other.body.errcode, 0, JSON.stringify(other.body));
    assert.equal(lastCall().appid, wx.appid);
  });

  test('no token and no secret of either app in any log line, metric or refusal', async () => {
    const text = gw.logText() + (await gw.gw.metrics.registry.metrics());
    for (const t of wx.issued) assert.ok(!text.includes(t), `token ${t.slice(0, 22)}... leaked`);
    assert.ok(!text.includes(wx.secret) && !text.includes(SHOP.secret), 'secret leaked');
  });
});
