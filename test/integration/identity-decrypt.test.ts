// The decrypt endpoint through real HTTPS: a login against a fake WeChat keeps the session_key,
// then WeChat's documented decryptData sample (and data made by an independent AES encoder) is
// decrypted at the edge. The backend gets the plaintext with the verified openid; the client only
// a masked view; the log neither. The sample's watermark is from 2016: the gateway's clock is
// injected and set near it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { OFFICIAL, forgeEncrypt } from '../helpers/open-data.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';
const DATA_PATH = '/api/wx/open-data';
/** A second user of the same app, whose session_key the test chooses. */
const MEI = { openid: 'o_mei_000000000000000000000', sessionKey: Buffer.from('mei-session-key!').toString('base64') };
const IV = Buffer.from('0123456789abcdef').toString('base64');

function reason(res: ClientResponse): string | undefined {
  return res.status === 200 ? undefined : (JSON.parse(res.text) as { error: { reason: string } }).error.reason;
}

describe('the decrypt endpoint', () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let t: TestGateway;
  // A minute after WeChat encrypted the documented sample.
  let now = (OFFICIAL.timestamp + 60) * 1000;
  let codes = 0;

  const post = (path: string, body: unknown, token?: string) =>
    httpsRequest(t.port, t.ca, {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
      body: JSON.stringify(body),
    });
  const login = async (openid: string, sessionKey: string, unionid?: string): Promise<string> => {
    const code = `code-${codes++}`;
    wechat.codes.set(code, { openid, session_key: sessionKey, ...(unionid && { unionid }) });
    const res = await post('/wx/login', { code });
    assert.equal(res.status, 200, res.text);
    return res.json<{ token: string }>().token;
  };
  const sealed = (sessionKey: string, fields: Record<string, unknown>, appid = OFFICIAL.appId, timestamp = Math.floor(now / 1000)) =>
    forgeEncrypt(sessionKey, IV, JSON.stringify({ ...fields, watermark: { timestamp, appid } }));
  const received = () => upstream.received.filter((r) => r.url === DATA_PATH);

  before(async () => {
    wechat = await startFakeWechat({ appid: OFFICIAL.appId });
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // What a backend might answer: the number it stored, which the client must not get whole.
      res.end(JSON.stringify({ saved: true, contact: '13800138000' }));
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${OFFICIAL.appId}
  app_secret: "\${WX_APP_SECRET}"
  api_base: "${wechat.url}"
identity:
  login: { path: /wx/login }
  decrypt:
    path: /wx/decrypt
    upstream: { upstream: legacy, path: ${DATA_PATH} }
    max_age: 5m
  session: { signing_key: "\${SESSION_SIGNING_KEY}" }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 2s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`,
      { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY }, now: () => now },
    );
  });
  after(async () => {
    await t.close();
    await Promise.all([upstream.close(), wechat.close()]);
  });

  test("WeChat's documented sample: the backend gets the plaintext and the verified openid, the client a masked view", async () => {
    const token = await login(OFFICIAL.openId, OFFICIAL.sessionKey, OFFICIAL.unionId);
    const res = await post('/wx/decrypt', { encryptedData: OFFICIAL.encryptedData, iv: OFFICIAL.iv }, token);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['cache-control'], 'no-store');
    const got = res.json<{ data: Record<string, unknown>; backend: Record<string, unknown> }>();
    assert.equal(got.data.nickName, 'Band');
    assert.equal(got.data.openId, OFFICIAL.openId);
    assert.equal(got.data.unionId, undefined, 'the unionid stays on the server');
    assert.equal(got.data.watermark, undefined);
    assert.deepEqual(got.backend, { saved: true, contact: '138****8000' });

    const hook = received().at(-1)!;
    assert.equal(hook.method, 'POST');
    assert.equal(hook.headers['content-type'], 'application/json');
    assert.equal(hook.headers['x-wx-openid'], OFFICIAL.openId);
    assert.equal(hook.headers['x-wx-unionid'], OFFICIAL.unionId);
    const plain = JSON.parse(hook.body.toString()) as Record<string, unknown>;
    assert.equal(plain.unionId, OFFICIAL.unionId);
    assert.deepEqual(plain.watermark, { timestamp: OFFICIAL.timestamp, appid: OFFICIAL.appId });
    assert.ok(!JSON.stringify(hook.headers).includes(OFFICIAL.sessionKey), 'the session_key never leaves wxgw');
    assert.ok(!hook.body.toString().includes(OFFICIAL.sessionKey));

    const log = t.logText();
    for (const secret of [OFFICIAL.sessionKey, OFFICIAL.unionId, 'Guangzhou', OFFICIAL.encryptedData.slice(0, 24)]) {
      assert.ok(!log.includes(secret), `the log never holds ${secret}`);
    }
  });

  test('a watermark older (or newer) than max_age is refused as watermark_stale', async () => {
    const token = await login(OFFICIAL.openId, OFFICIAL.sessionKey);
    const before = received().length;
    now = (OFFICIAL.timestamp + 5 * 60 + 1) * 1000;
    try {
      const stale = await post('/wx/decrypt', { encryptedData: OFFICIAL.encryptedData, iv: OFFICIAL.iv }, token);
      assert.equal(stale.status, 403);
      assert.equal(reason(stale), 'watermark_stale');
      now = (OFFICIAL.timestamp - 5 * 60 - 1) * 1000;
      assert.equal(reason(await post('/wx/decrypt', { encryptedData: OFFICIAL.encryptedData, iv: OFFICIAL.iv }, token)), 'watermark_stale');
      now = (OFFICIAL.timestamp + 5 * 60) * 1000;
      assert.equal((await post('/wx/decrypt', { encryptedData: OFFICIAL.encryptedData, iv: OFFICIAL.iv }, token)).status, 200, 'max_age itself is still fresh');
    } finally {
      now = (OFFICIAL.timestamp + 60) * 1000;
    }
    assert.equal(received().length, before + 1, 'only the fresh one reached the backend');
  });

  test('data made for another appid is refused as watermark_mismatch', async () => {
    const token = await login(MEI.openid, MEI.sessionKey);
    const before = received().length;
    const res = await post('/wx/decrypt', { encryptedData: sealed(MEI.sessionKey, { nickName: 'Mei' }, 'wx0000000000000000'), iv: IV }, token);
    assert.equal(res.status, 403);
    assert.equal(reason(res), 'watermark_mismatch');
    assert.equal(reason(await post('/wx/decrypt', { encryptedData: forgeEncrypt(MEI.sessionKey, IV, '{"nickName":"Mei"}'), iv: IV }, token)), 'watermark_mismatch', 'no watermark at all');
    assert.equal(received().length, before);
  });

  test("a phone number is the backend's in full and the client's masked; never in the log", async () => {
    const token = await login(MEI.openid, MEI.sessionKey);
    const phone = { phoneNumber: '13912345678', purePhoneNumber: '13912345678', countryCode: '86' };
    const res = await post('/wx/decrypt', { encryptedData: sealed(MEI.sessionKey, phone), iv: IV }, token);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json<{ data: unknown }>().data, { phoneNumber: '139****5678', purePhoneNumber: '139****5678', countryCode: '86' });
    const plain = JSON.parse(received().at(-1)!.body.toString()) as Record<string, unknown>;
    assert.equal(plain.phoneNumber, '13912345678');
    assert.equal(received().at(-1)!.headers['x-wx-openid'], MEI.openid);
    assert.ok(!t.logText().includes('13912345678') && !t.logText().includes(MEI.sessionKey));
  });

  test('rawData with a good signature passes; a bad or a missing one is refused', async () => {
    const token = await login(MEI.openid, MEI.sessionKey);
    const rawData = JSON.stringify({ nickName: 'Mei', gender: 2, avatarUrl: 'https://thirdwx.qlogo.cn/x/0' });
    const signature = createHash('sha1').update(rawData + MEI.sessionKey).digest('hex');
    const encryptedData = sealed(MEI.sessionKey, { openId: MEI.openid, nickName: 'Mei' });
    assert.equal((await post('/wx/decrypt', { encryptedData, iv: IV, rawData, signature }, token)).status, 200);
    const before = received().length;
    const forged = await post('/wx/decrypt', { encryptedData, iv: IV, rawData: rawData.replace('Mei', 'Eve'), signature }, token);
    assert.equal(forged.status, 403);
    assert.equal(reason(forged), 'signature_invalid');
    assert.equal(reason(await post('/wx/decrypt', { encryptedData, iv: IV, rawData, signature: '0'.repeat(40) }, token)), 'signature_invalid');
    assert.equal(reason(await post('/wx/decrypt', { encryptedData, iv: IV, rawData }, token)), 'decrypt_invalid', 'rawData without its signature');
    assert.equal(received().length, before);
  });

  test("data for another session_key, or not WeChat's at all, is refused as decrypt_failed", async () => {
    const token = await login(MEI.openid, MEI.sessionKey);
    // The documented sample belongs to another user's session.
    const res = await post('/wx/decrypt', { encryptedData: OFFICIAL.encryptedData, iv: OFFICIAL.iv }, token);
    assert.equal(res.status, 400);
    assert.equal(reason(res), 'decrypt_failed');
    assert.equal(reason(await post('/wx/decrypt', { encryptedData: 'not base64!', iv: IV }, token)), 'decrypt_failed');
    for (const body of [{}, { encryptedData: 'x' }, { encryptedData: 1, iv: IV }, [1]]) {
      assert.equal(reason(await post('/wx/decrypt', body, token)), 'decrypt_invalid', JSON.stringify(body));
    }
  });

  test('without a session token, or with a forged one, nothing is decrypted', async () => {
    const body = { encryptedData: OFFICIAL.encryptedData, iv: OFFICIAL.iv };
    const before = received().length;
    const none = await post('/wx/decrypt', body);
    assert.equal(none.status, 401);
    assert.equal(reason(none), 'identity_required');
    const token = await login(OFFICIAL.openId, OFFICIAL.sessionKey);
    assert.equal(reason(await post('/wx/decrypt', body, `${token.slice(0, -3)}AAA`)), 'token_invalid');
    assert.equal((await httpsRequest(t.port, t.ca, { method: 'GET', path: '/wx/decrypt', headers: { authorization: `Bearer ${token}` } })).status, 405);
    assert.equal(received().length, before);
  });
});
