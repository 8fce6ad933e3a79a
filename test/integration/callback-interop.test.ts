// Callbacks against independent implementations of WeChat's protocols, end to end through real
// HTTPS and a real upstream: pushes are made with WeCom's official @wecom/crypto, replies are
// checked (and SDK backends played) with node-webot's wechat-crypto, Pay notifications are
// signed and encrypted with wechatpay-axios-plugin's Rsa, AesGcm and Formatter. None of them
// shares code with the gateway. One gateway serves a mini-program (the default app), an
// official account and a WeCom corp app, each verified with its own Token and EncodingAESKey.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, randomInt, randomUUID, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encrypt as wecomEncrypt, decrypt as wecomDecrypt, getSignature } from '@wecom/crypto';
import WXBizMsgCrypt from 'wechat-crypto';
import { Aes, Formatter, Rsa, type WechatpayAxiosPlugin } from 'wechatpay-axios-plugin';
import { startUpstream, type ReceivedRequest, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startFakeWechat } from '../helpers/fake-wechat.js';

const AesGcm = (Aes as unknown as { AesGcm: typeof WechatpayAxiosPlugin.Aes.AesGcm }).AesGcm;

interface App {
  appid: string;
  token: string;
  key: string;
}
const aesKey = (): string => randomBytes(32).toString('base64').slice(0, 43);
const mini: App = { appid: 'wx00112233445566aa', token: 'miniToken01', key: aesKey() };
const official: App = { appid: 'wx77889900aabbccdd', token: 'officialToken02', key: aesKey() };
const corp: App = { appid: 'ww0a1b2c3d4e5f6a7b', token: 'corpToken03', key: aesKey() };

const APIV3_KEY = 'Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6';
const oldPay = generateKeyPairSync('rsa', { modulusLength: 2048 });
const newPay = generateKeyPairSync('rsa', { modulusLength: 2048 });
const OLD_SERIAL = 'PUB_KEY_ID_0114232134912410000000000001';
const NEW_SERIAL = 'PUB_KEY_ID_0114232134912410000000000002';

const MESSAGE =
  '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oUserOpenId0123]]></FromUserName>' +
  '<CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[CONTENT]]></Content><MsgId>24571234567890123</MsgId></xml>';
// Each content its own message: the gateway delivers a MsgId once.
const message = (content: string): string =>
  MESSAGE.replace('CONTENT', content).replace('24571234567890123', String(BigInt(`0x${createHash('sha256').update(content).digest('hex').slice(0, 13)}`)));
const REPLY =
  '<xml><ToUserName><![CDATA[oUserOpenId0123]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>' +
  '<CreateTime>1714037060</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[reply from the backend]]></Content></xml>';
const JSON_REPLY = JSON.stringify({ touser: 'zhangsan', msgtype: 'text', text: { content: 'reply from the backend' } });

/** timestamp and nonce as WeChat picks them: now, and a number below 2^31. */
function stamp(): { timestamp: string; nonce: string } {
  return { timestamp: String(Math.floor(Date.now() / 1000)), nonce: String(randomInt(1, 2 ** 31)) };
}

interface Push {
  method: 'GET' | 'POST';
  query: URLSearchParams;
  contentType?: string;
  body?: string;
}

type Envelope = 'xml' | 'wecom-xml' | 'wecom-json' | 'compatible';

/**
 * A safe-mode push of `plain` for `app` as WeChat (or WeCom) makes it, with @wecom/crypto. WeCom
 * sends no `signature` and its envelope names the agent; compatible mode repeats the message in
 * plain fields beside `Encrypt`.
 */
function safePush(app: App, plain: string, envelope: Envelope = 'xml'): Push {
  const { timestamp, nonce } = stamp();
  const encrypt = wecomEncrypt(app.key, plain, app.appid);
  const query = new URLSearchParams({ timestamp, nonce, msg_signature: getSignature(app.token, timestamp, nonce, encrypt) });
  if (envelope === 'wecom-json') {
    return { method: 'POST', query, contentType: 'application/json', body: JSON.stringify({ tousername: app.appid, encrypt, agentid: 1000002 }) };
  }
  if (envelope === 'wecom-xml') {
    const body = `<xml><ToUserName><![CDATA[${app.appid}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>`;
    return { method: 'POST', query, contentType: 'text/xml', body };
  }
  // WeChat signs the plain-mode `signature` in safe mode too, and adds openid and encrypt_type.
  query.set('signature', getSignature(app.token, timestamp, nonce, ''));
  query.set('openid', 'oUserOpenId0123');
  query.set('encrypt_type', 'aes');
  const plainFields = envelope === 'compatible' ? plain.replace(/^<xml>/, '').replace(/<\/xml>$/, '').replace(/<ToUserName>.*?<\/ToUserName>/, '') : '';
  const body = `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>${plainFields}<Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  return { method: 'POST', query, contentType: 'text/xml', body };
}

/** A backend on wechat-crypto answering as an SDK in safe mode does: its reply already encrypted. */
function sdkEncryptedReply(app: App, reply: string): string {
  const crypt = new WXBizMsgCrypt(app.token, app.key, app.appid);
  const encrypt = crypt.encrypt(reply);
  const { timestamp, nonce } = stamp();
  return (
    `<xml><Encrypt><![CDATA[${encrypt}]]></Encrypt><MsgSignature><![CDATA[${crypt.getSignature(timestamp, nonce, encrypt)}]]></MsgSignature>` +
    `<TimeStamp>${timestamp}</TimeStamp><Nonce><![CDATA[${nonce}]]></Nonce></xml>`
  );
}

function field(xml: string, name: string): string {
  const m = new RegExp(`<${name}>(?:<!\\[CDATA\\[)?([^<\\]]*)(?:\\]\\]>)?</${name}>`).exec(xml);
  assert.ok(m, `no ${name} in ${xml}`);
  return m[1]!;
}

/** Opens a sealed XML reply with wechat-crypto: its signature must verify, and it must hold `appid`'s message. */
function openReply(app: App, xml: string): string {
  const crypt = new WXBizMsgCrypt(app.token, app.key, app.appid);
  const encrypt = field(xml, 'Encrypt');
  assert.equal(field(xml, 'MsgSignature'), crypt.getSignature(field(xml, 'TimeStamp'), field(xml, 'Nonce'), encrypt));
  const { message, id } = crypt.decrypt(encrypt);
  assert.equal(id, app.appid);
  return message;
}

/** A Pay notification of `plaintext`, signed with `key` under `serial`, as WeChat Pay sends it. */
function payNotification(key: KeyObject, serial: string, plaintext: string, resourceType = 'transaction'): { headers: Record<string, string>; body: string } {
  const nonce = Formatter.nonce(12);
  const resource = {
    original_type: resourceType,
    algorithm: 'AEAD_AES_256_GCM',
    ciphertext: AesGcm.encrypt(plaintext, APIV3_KEY, nonce, resourceType),
    associated_data: resourceType,
    nonce,
  };
  const body = JSON.stringify({ id: `EV-${randomUUID()}`, create_time: '2026-12-02T10:00:00+08:00', resource_type: 'encrypt-resource', event_type: 'TRANSACTION.SUCCESS', summary: 'ok', resource });
  const timestamp = String(Formatter.timestamp());
  const headerNonce = Formatter.nonce();
  return {
    headers: {
      'content-type': 'application/json',
      'wechatpay-serial': serial,
      'wechatpay-timestamp': timestamp,
      'wechatpay-nonce': headerNonce,
      'wechatpay-signature': Rsa.sign(Formatter.response(timestamp, headerNonce, body), key),
      'wechatpay-signature-type': 'WECHATPAY2-SHA256-RSA2048',
    },
    body,
  };
}

const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUfake0certificate0text0for0the0test0AoGCCqGSM49\n-----END CERTIFICATE-----\n';

describe('callbacks against independent WeChat, WeCom and WeChat Pay implementations', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startUpstream((req, res, body) => {
      const path = (req.url ?? '').split('?')[0];
      const text = body.toString('utf8');
      if (path === '/wx/mini' && text.includes('say-500')) {
        res.writeHead(500, { 'content-type': 'text/html' });
        res.end('<html>NullPointerException at com.example.Backend.handle(Backend.java:42)</html>');
      } else if (path === '/wx/mini' && text.includes('say-encrypted')) {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(sdkEncryptedReply(mini, REPLY));
      } else if (path === '/wecom/json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON_REPLY);
      } else if (path?.startsWith('/wx/') || path === '/wecom/xml') {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(REPLY);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"code":"SUCCESS"}');
      }
    });
    gw = await startTestGateway((ctx) => {
      const oldFile = join(ctx.dir, 'pay-old.pem');
      const newFile = join(ctx.dir, 'pay-new.pem');
      writeFileSync(oldFile, oldPay.publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(newFile, newPay.publicKey.export({ type: 'spki', format: 'pem' }));
      return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${mini.appid}
  kind: miniprogram
  token: \${MINI_TOKEN}
  encoding_aes_key: \${MINI_AES}
  apps:
    official: { appid: ${official.appid}, kind: official, token: "\${OA_TOKEN}", encoding_aes_key: "\${OA_AES}" }
    corp: { appid: ${corp.appid}, kind: wecom, token: "\${CORP_TOKEN}", encoding_aes_key: "\${CORP_AES}" }
wechatpay:
  apiv3_key: \${PAY_KEY}
  # During a platform key switch WeChat Pay signs with either; Wechatpay-Serial says which.
  public_keys:
    - { id: ${OLD_SERIAL}, file: ${oldFile} }
    - { id: ${NEW_SERIAL}, file: ${newFile} }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - { name: mini, match: { path: /wx/mini }, upstream: legacy, wechat_callback: { decrypt: true } }
  - { name: official, match: { path: /wx/official }, upstream: legacy, wechat_callback: { app: official, decrypt: true } }
  - { name: official-raw, match: { path: /wx/official-raw }, upstream: legacy, wechat_callback: { app: official, decrypt: false } }
  - { name: wecom-xml, match: { path: /wecom/xml }, upstream: legacy, wechat_callback: { app: corp, decrypt: true } }
  - { name: wecom-json, match: { path: /wecom/json }, upstream: legacy, wechat_callback: { app: corp, decrypt: true } }
  - { name: pay, match: { path: /pay/notify }, upstream: legacy, wechatpay_notify: { decrypt: true } }
defaults: { allow: any }
`;
    }, {
      env: {
        MINI_TOKEN: mini.token,
        MINI_AES: mini.key,
        OA_TOKEN: official.token,
        OA_AES: official.key,
        CORP_TOKEN: corp.token,
        CORP_AES: corp.key,
        PAY_KEY: APIV3_KEY,
      },
    });
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  function send(path: string, push: Push): Promise<ClientResponse> {
    return httpsRequest(gw.port, gw.ca, {
      method: push.method,
      path: `${path}?${push.query.toString()}`,
      headers: push.contentType ? { 'content-type': push.contentType } : {},
      ...(push.body !== undefined && { body: push.body }),
    });
  }

  /** Sends and returns the answer with what the upstream got (undefined: nothing reached it). */
  async function exchange(path: string, push: Push): Promise<{ res: ClientResponse; seen: ReceivedRequest | undefined }> {
    const before = upstream.received.length;
    const res = await send(path, push);
    assert.ok(upstream.received.length <= before + 1);
    return { res, seen: upstream.received[before] };
  }

  test('decrypt: true hands an SDK backend a plain-mode push whose signature its own check accepts', async () => {
    const push = safePush(mini, message('hello'));
    const { res, seen } = await exchange('/wx/mini', push);
    assert.equal(res.status, 200, res.text);
    assert.ok(seen);
    const query = new URL(seen.url, 'http://upstream').searchParams;
    assert.equal(query.get('encrypt_type'), null, 'an SDK would try to decrypt the plaintext again');
    assert.equal(query.get('msg_signature'), null);
    for (const name of ['timestamp', 'nonce', 'openid', 'signature']) assert.equal(query.get(name), push.query.get(name), name);
    // wechatpy's check_signature / EasyWeChat's plain-mode check: sha1 of the sorted token, timestamp, nonce.
    const sdk = new WXBizMsgCrypt(mini.token, mini.key, mini.appid);
    assert.equal(sdk.getSignature(query.get('timestamp')!, query.get('nonce')!, ''), query.get('signature'));
    assert.equal(seen.body.toString('utf8'), message('hello'));
    assert.equal(seen.headers['x-wx-callback-verified'], 'decrypted');
    // The backend's plain reply comes back sealed for the mini-program, once.
    assert.equal(openReply(mini, res.text), REPLY);
  });

  test('a reply the backend already encrypted goes back as it is: WeChat decrypts it once', async () => {
    const { res, seen } = await exchange('/wx/mini', safePush(mini, message('say-encrypted')));
    assert.equal(res.status, 200, res.text);
    assert.ok(seen);
    assert.equal(openReply(mini, res.text), REPLY);
  });

  test('a 500 from the backend is not sealed and its page never reaches WeChat', async () => {
    const { res, seen } = await exchange('/wx/mini', safePush(mini, message('say-500')));
    assert.ok(seen);
    assert.equal(res.status, 500);
    assert.equal(res.text, '');
    assert.doesNotMatch(res.text, /Exception/);
  });

  test('two apps on one gateway: each route verifies and decrypts with its own app, a push for the other is refused', async () => {
    const ok = await exchange('/wx/official', safePush(official, message('to the official account')));
    assert.equal(ok.res.status, 200, ok.res.text);
    assert.equal(ok.seen?.body.toString('utf8'), message('to the official account'));
    assert.equal(openReply(official, ok.res.text), REPLY);

    for (const [path, app] of [['/wx/official', mini], ['/wx/mini', official]] as const) {
      const { res, seen } = await exchange(path, safePush(app, message('cross-app')));
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json<{ error: { reason: string } }>().error.reason, 'signature_invalid');
      assert.equal(seen, undefined, `${path} forwarded another app's push`);
    }
  });

  test('compatible mode without decryption forwards only what msg_signature covers', async () => {
    const plain = message('compatible mode');
    const { res, seen } = await exchange('/wx/official-raw', safePush(official, plain, 'compatible'));
    assert.equal(res.status, 200, res.text);
    assert.ok(seen);
    const body = seen.body.toString('utf8');
    assert.doesNotMatch(body, /FromUserName|Content|MsgId/, 'plain fields the signature does not cover reached the backend');
    assert.equal(seen.headers['x-wx-callback-verified'], 'msg_signature');
    // The envelope is whole: the backend's own SDK verifies and decrypts it.
    const sdk = new WXBizMsgCrypt(official.token, official.key, official.appid);
    const query = new URL(seen.url, 'http://upstream').searchParams;
    assert.equal(sdk.getSignature(query.get('timestamp')!, query.get('nonce')!, field(body, 'Encrypt')), query.get('msg_signature'));
    assert.equal(sdk.decrypt(field(body, 'Encrypt')).message, plain);
  });

  test('WeCom: an XML push decrypts with the corp id, and the reply is in WeCom XML', async () => {
    const { res, seen } = await exchange('/wecom/xml', safePush(corp, message('from WeCom'), 'wecom-xml'));
    assert.equal(res.status, 200, res.text);
    assert.equal(seen?.body.toString('utf8'), message('from WeCom'));
    assert.match(res.text, /^<xml><Encrypt><!\[CDATA\[.+\]\]><\/Encrypt><MsgSignature><!\[CDATA\[[0-9a-f]{40}\]\]><\/MsgSignature><TimeStamp>\d+<\/TimeStamp><Nonce><!\[CDATA\[\d+\]\]><\/Nonce><\/xml>$/);
    const encrypt = field(res.text, 'Encrypt');
    assert.equal(getSignature(corp.token, field(res.text, 'TimeStamp'), field(res.text, 'Nonce'), encrypt), field(res.text, 'MsgSignature'));
    assert.deepEqual({ ...wecomDecrypt(corp.key, encrypt), random: undefined }, { message: REPLY, id: corp.appid, random: undefined });
  });

  test("WeCom: a JSON push with lower-case keys decrypts, and the reply uses WeCom's JSON keys", async () => {
    const plain = JSON.stringify({ msgtype: 'text', text: { content: 'json from WeCom' }, from: { userid: 'zhangsan' } });
    const { res, seen } = await exchange('/wecom/json', safePush(corp, plain, 'wecom-json'));
    assert.equal(res.status, 200, res.text);
    assert.equal(seen?.body.toString('utf8'), plain);
    assert.match(String(seen?.headers['content-type']), /^application\/json/);
    const reply = res.json<{ encrypt: string; msgsignature: string; timestamp: number; nonce: string }>();
    assert.equal(getSignature(corp.token, String(reply.timestamp), reply.nonce, reply.encrypt), reply.msgsignature);
    const { message: opened, id } = wecomDecrypt(corp.key, reply.encrypt);
    assert.equal(opened, JSON_REPLY);
    assert.equal(id, corp.appid);
  });

  test("WeCom: URL verification's encrypted echostr is answered in plain", async () => {
    const { timestamp, nonce } = stamp();
    const echostr = wecomEncrypt(corp.key, '1616140317555161061', corp.appid);
    const query = new URLSearchParams({ msg_signature: getSignature(corp.token, timestamp, nonce, echostr), timestamp, nonce, echostr });
    const { res, seen } = await exchange('/wecom/xml', { method: 'GET', query });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.text, '1616140317555161061');
    assert.equal(seen, undefined);
  });

  test('Pay: a resource that is not JSON (a certificate) goes on as text, without the signature headers it replaced', async () => {
    const n = payNotification(newPay.privateKey, NEW_SERIAL, CERT_PEM, 'certificate');
    const { res, seen } = await exchange('/pay/notify', { method: 'POST', query: new URLSearchParams(), contentType: 'application/json', body: n.body });
    // exchange() sends no Wechatpay-* headers: the real send below does.
    assert.equal(res.status, 400);
    assert.equal(seen, undefined);
    const sent = await payExchange(n);
    assert.equal(sent.res.status, 200, sent.res.text);
    assert.ok(sent.seen);
    assert.equal(sent.seen.body.toString('utf8'), CERT_PEM);
    assert.match(String(sent.seen.headers['content-type']), /^text\/plain/);
    assert.equal(sent.seen.headers['x-wechatpay-verified'], 'decrypted');
    assert.equal(sent.seen.headers['x-wechatpay-original-type'], 'certificate');
    for (const name of ['wechatpay-signature', 'wechatpay-serial', 'wechatpay-timestamp', 'wechatpay-nonce', 'wechatpay-signature-type']) {
      assert.equal(sent.seen.headers[name], undefined, `${name} reached the upstream beside a body it does not sign`);
    }
  });

  test('Pay: a ciphertext of exactly the tag is an empty plaintext, decrypted and forwarded', async () => {
    const n = payNotification(newPay.privateKey, NEW_SERIAL, '');
    assert.equal(Buffer.from((JSON.parse(n.body) as { resource: { ciphertext: string } }).resource.ciphertext, 'base64').length, 16);
    const { res, seen } = await payExchange(n);
    assert.equal(res.status, 200, res.text);
    assert.equal(seen?.body.length, 0);
  });

  test("Pay: Wechatpay-Serial chooses the key during a platform key switch; refusals are in Pay's FAIL format", async () => {
    const transaction = JSON.stringify({ out_trade_no: '1217752501201407033233368018', trade_state: 'SUCCESS' });
    for (const [key, serial] of [[oldPay.privateKey, OLD_SERIAL], [newPay.privateKey, NEW_SERIAL]] as const) {
      const { res, seen } = await payExchange(payNotification(key, serial, transaction));
      assert.equal(res.status, 200, `${serial}: ${res.text}`);
      assert.equal(seen?.body.toString('utf8'), transaction);
    }
    // Signed with the old key but naming the new serial: the serial's key decides, and it does not verify.
    const crossed = await payExchange(payNotification(oldPay.privateKey, NEW_SERIAL, transaction));
    assertPayFail(crossed, 403, 'signature_invalid');
    const unknown = await payExchange(payNotification(newPay.privateKey, 'PUB_KEY_ID_0114232134912410000000000009', transaction));
    assertPayFail(unknown, 401, 'serial_unknown');
  });

  async function payExchange(n: { headers: Record<string, string>; body: string }): Promise<{ res: ClientResponse; seen: ReceivedRequest | undefined }> {
    const before = upstream.received.length;
    const res = await httpsRequest(gw.port, gw.ca, { method: 'POST', path: '/pay/notify', headers: n.headers, body: n.body });
    return { res, seen: upstream.received[before] };
  }

  function assertPayFail(r: { res: ClientResponse; seen: ReceivedRequest | undefined }, status: number, reason: string): void {
    assert.equal(r.res.status, status, r.res.text);
    assert.equal(r.seen, undefined);
    const body = r.res.json<{ code: string; message: string; error: { reason: string; request_id: string } }>();
    assert.equal(body.code, 'FAIL');
    assert.equal(typeof body.message, 'string');
    assert.equal(body.error.reason, reason);
    assert.equal(body.error.request_id, r.res.headers['x-request-id']);
  }
});

describe('identity.login.app', () => {
  test('the login exchanges codes as the app it names, not the default one', async () => {
    const wechat = await startFakeWechat({ appid: official.appid, secret: 'official-app-secret-0123456789ab' });
    const upstream = await startUpstream();
    const gw = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${mini.appid}
  app_secret: \${MINI_SECRET}
  api_base: "${wechat.url}"
  apps:
    official: { appid: ${official.appid}, app_secret: "\${OA_SECRET}" }
identity:
  login: { app: official, path: /wx/login }
  session: { signing_key: "\${SESSION_SIGNING_KEY}", ttl: 1h }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: open, match: { path_prefix: /open/ }, upstream: legacy }
`,
      { env: { MINI_SECRET: 'mini-app-secret-0123456789abcdef', OA_SECRET: wechat.secret, SESSION_SIGNING_KEY: 's'.repeat(48) } },
    );
    try {
      wechat.codes.set('code-official', { openid: 'o-official', session_key: 'k' });
      const res = await httpsRequest(gw.port, gw.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: '{"code":"code-official"}' });
      assert.equal(res.status, 200, res.text);
      assert.equal(wechat.calls.length, 1);
      assert.equal(wechat.calls[0]!.query.appid, official.appid);
    } finally {
      await gw.close();
      await upstream.close();
      await wechat.close();
    }
  });
});
