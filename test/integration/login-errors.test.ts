// How the login endpoint tells WeChat's refusals apart, through real HTTPS against the fake
// WeChat: 40226 (a user WeChat blocked as high risk) has its own reason and a message an app can
// show, errcodes WeChat (or a proxy in front of it) sends as strings mean what the numbers mean,
// and a rate-limited login says when to retry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { REASONS } from '../../gateway/errors.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';

type ErrorBody = { error: { reason: string; message: string } };

describe('login errors from WeChat', () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let t: TestGateway;
  let codes = 0;

  /** Logs in with a code WeChat answers with `raw`, verbatim. */
  const loginAnswered = (raw: string): Promise<ClientResponse> => {
    const code = `code-${codes++}`;
    wechat.codes.set(code, { raw });
    return httpsRequest(t.port, t.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }) });
  };

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
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`,
      { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY } },
    );
  });
  after(async () => {
    await t.close();
    await Promise.all([upstream.close(), wechat.close()]);
  });

  test('40226, as a number or a string, is wx_user_blocked with a message for the user', async () => {
    for (const errcode of ['40226', '"40226"']) {
      const res = await loginAnswered(`{"errcode":${errcode},"errmsg":"high risk user, rid: 1"}`);
      assert.equal(res.status, 403, res.text);
      const { error } = res.json<ErrorBody>();
      assert.equal(error.reason, 'wx_user_blocked');
      assert.equal(error.message, REASONS.wx_user_blocked.message);
      assert.match(error.message, /WeChat/);
      assert.equal(res.headers['retry-after'], undefined, 'retrying does not help a blocked user');
    }
  });

  test('string errcodes are read as the numbers they spell', async () => {
    const cases: [string, number, string][] = [
      ['"40029"', 400, 'wx_code_invalid'],
      ['" 40163 "', 400, 'wx_code_used'],
      ['"-1"', 503, 'wx_unavailable'],
      ['"40013"', 502, 'wx_error'],
    ];
    for (const [errcode, status, reason] of cases) {
      const res = await loginAnswered(`{"errcode":${errcode},"errmsg":"x"}`);
      assert.equal(res.status, status, `${errcode}: ${res.text}`);
      assert.equal(res.json<ErrorBody>().error.reason, reason, errcode);
    }
    // "0" is success like 0: the answer's openid and session_key are used.
    const ok = await loginAnswered('{"errcode":"0","errmsg":"ok","openid":"o_zero","session_key":"c2Vzc2lvbi1rZXktMDAwMA=="}');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json<{ openid: string }>().openid, 'o_zero');
    // Not a number in a string: no errcode, and an answer without openid is WeChat's error.
    const junk = await loginAnswered('{"errcode":"4oo29","errmsg":"x"}');
    assert.equal(junk.json<ErrorBody>().error.reason, 'wx_error');
  });

  test('45011, as a number or a string, is wx_rate_limited with Retry-After', async () => {
    for (const errcode of ['45011', '"45011"']) {
      const res = await loginAnswered(`{"errcode":${errcode},"errmsg":"api minute-quota reach limit"}`);
      assert.equal(res.status, 429, res.text);
      assert.equal(res.json<ErrorBody>().error.reason, 'wx_rate_limited');
      assert.equal(res.headers['retry-after'], '60');
    }
  });
});
