// wxgw's login through real HTTPS, against a fake WeChat and a real upstream that records the
// login notices it gets: who the user is reaches the upstream only as the gateway verified it,
// a login endpoint is never left without a rate limit, and the upstream's failures are told
// apart. The client address is chosen through X-Forwarded-For from the trusted test client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { policyContext, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import type { ClientResponse } from '../helpers/https-client.js';
import { repoRoot } from '../helpers/process.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { PROTOCOLS } from '../helpers/h2-client.js';

const SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';
const NOTICE_PATH = '/api/users/login';

function loginPolicy(wechat: FakeWechat, upstreamUrl: string, httpsPort: number, tlsSection: string, extra = ''): string {
  return `version: 1
server:
  https: { listen: "127.0.0.1:${httpsPort}" }
  trusted_proxies: [127.0.0.1]
${tlsSection}
wechat:
  appid: ${wechat.appid}
  app_secret: "\${WX_APP_SECRET}"
  api_base: "${wechat.url}"
identity:
  login:
    path: /wx/login
    upstream: { upstream: legacy, path: ${NOTICE_PATH} }${extra}
  session: { signing_key: "\${SESSION_SIGNING_KEY}" }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstreamUrl}", timeout: 1s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`;
}

function reason(res: ClientResponse): string | undefined {
  return res.status === 200 ? undefined : (JSON.parse(res.text) as { error: { reason: string } }).error.reason;
}

for (const protocol of PROTOCOLS) {
describe(`the login endpoint over ${protocol.name}`, () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let t: TestGateway;
  /** How the upstream answers login notices: normally, never (a timeout), or by hanging up. */
  let mode: 'answer' | 'hang' | 'reset' = 'answer';
  let codes = 0;

  const login = (body: Record<string, unknown>, client = '198.51.100.1') =>
    protocol.request(t.port, t.ca, {
      method: 'POST',
      path: '/wx/login',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': client },
      body: JSON.stringify(body),
    });
  const code = (openid: string, unionid?: string): string => {
    const c = `code-${codes++}`;
    wechat.codes.set(c, { openid, session_key: `sk-${openid}-0123456789`, ...(unionid && { unionid }) });
    return c;
  };
  const notices = () => upstream.received.filter((r) => r.url === NOTICE_PATH);

  before(async () => {
    wechat = await startFakeWechat();
    upstream = await startUpstream((req, res) => {
      if (mode === 'hang') return;
      if (mode === 'reset') {
        req.socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ user_id: 7 }));
    });
    t = await startTestGateway((ctx) => loginPolicy(wechat, upstream.url, ctx.httpsPort, ctx.tlsSection), {
      env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY },
    });
  });
  after(async () => {
    await t.close();
    await Promise.all([upstream.close(), wechat.close()]);
  });

  test('identity fields the client sends, in any spelling and at any depth, never reach login.upstream', async () => {
    const res = await login({
      code: code('o_alice', 'u_alice'),
      invite: 'friend-1',
      openid: 'o_victim',
      openId: 'o_victim',
      OPEN_ID: 'o_victim',
      'Open-Id': 'o_victim',
      unionid: 'u_victim',
      unionId: 'u_victim',
      session_key: 'sk_victim',
      SessionKey: 'sk_victim',
      'x-wx-openid': 'o_victim',
      profile: { nick: 'Mei', openid: 'o_victim', friends: [{ name: 'Bo', unionId: 'u_victim' }] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json<{ openid: string }>().openid, 'o_alice');
    const notice = notices().at(-1)!;
    assert.equal(notice.headers['x-wx-openid'], 'o_alice');
    assert.equal(notice.headers['x-wx-unionid'], 'u_alice');
    assert.deepEqual(JSON.parse(notice.body.toString()), { invite: 'friend-1', profile: { nick: 'Mei', friends: [{ name: 'Bo' }] } });
    assert.ok(!notice.body.toString().includes('victim'));
    const line = t.logs.find((l) => l.msg === 'login fields named like identity fields dropped');
    assert.ok(line, 'the drop is logged');
    assert.deepEqual(line.fields, ['openid', 'openId', 'OPEN_ID', 'Open-Id', 'unionid', 'unionId', 'session_key', 'SessionKey', 'x-wx-openid', 'openid', 'unionId']);
    assert.ok(!t.logText().includes('o_victim') && !t.logText().includes('sk_victim'), 'the values are never logged');
  });

  test('a login body nested too deeply is refused', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 40; i++) deep = { a: deep };
    const res = await login({ code: code('o_deep'), deep }, '198.51.100.2');
    assert.equal(reason(res), 'login_invalid', res.text);
  });

  test('an upstream that cannot be reached or does not answer in time is told apart', async () => {
    try {
      mode = 'reset';
      assert.equal(reason(await login({ code: code('o_reset') }, '198.51.100.3')), 'upstream_unavailable');
      mode = 'hang';
      const slow = await login({ code: code('o_slow') }, '198.51.100.3');
      assert.equal(slow.status, 504, slow.text);
      assert.equal(reason(slow), 'upstream_timeout');
    } finally {
      mode = 'answer';
    }
  });

  test('without any rate limit, logins get 60 per minute per address; one IPv6 /64 is one address', async () => {
    const first = await login({ code: code('o_v6a') }, '2001:db8:1:2::1');
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers['ratelimit-limit'], '60');
    // Every address of the /64 draws on the same budget, valid logins and invalid ones alike.
    for (let i = 2; i <= 59; i++) assert.equal(reason(await login({}, `2001:db8:1:2::${i.toString(16)}`)), 'login_invalid');
    const last = await login({ code: code('o_v6') }, '2001:db8:1:2:ffff::1');
    assert.equal(last.status, 200, last.text);
    const before = wechat.calls.length;
    const refused = await login({ code: code('o_v6b') }, '2001:db8:1:2::abcd');
    assert.equal(reason(refused), 'rate_limited', refused.text);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.equal(wechat.calls.length, before, 'WeChat is not called past the limit');
    // Another /64, and an IPv4 address, have budgets of their own.
    assert.equal((await login({ code: code('o_v6c') }, '2001:db8:1:3::1')).status, 200);
    assert.equal((await login({ code: code('o_v4') }, '198.51.100.9')).status, 200);
  });
});
}

test('validate warns when the login endpoint has no rate limit that counts logins, and says what applies', async () => {
  const ctx = await policyContext();
  const wechat = await startFakeWechat();
  try {
    const file = join(ctx.dir, 'gateway.yaml');
    const env = { ...process.env, WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY };
    const validate = () => spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'validate', '--config', file], { encoding: 'utf8', env, timeout: 30_000 });

    writeFileSync(file, loginPolicy(wechat, 'http://127.0.0.1:9', ctx.httpsPort, ctx.tlsSection));
    const warned = validate();
    assert.equal(warned.status, 0, warned.stderr);
    assert.match(warned.stdout + warned.stderr, /gateway\.yaml:\d+:\d+\s+identity\.login\s+warning: has no rate limit that counts logins .*\{ key: ip, limit: 60, window: 1m \}/);

    // An openid rule without an address fallback counts no login either.
    writeFileSync(file, loginPolicy(wechat, 'http://127.0.0.1:9', ctx.httpsPort, ctx.tlsSection, '\n    rate_limit: { key: openid, limit: 5, window: 1m }'));
    assert.match(validate().stdout + validate().stderr, /identity\.login\.rate_limit\s+warning: has no rate limit that counts logins/);

    writeFileSync(file, loginPolicy(wechat, 'http://127.0.0.1:9', ctx.httpsPort, ctx.tlsSection, '\n    rate_limit: { key: ip, limit: 5, window: 1m }'));
    const quiet = validate();
    assert.equal(quiet.status, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stdout + quiet.stderr, /warning/);
  } finally {
    await wechat.close();
  }
});
