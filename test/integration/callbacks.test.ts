// Signed callbacks end to end: WeChat message push (URL verification, plain mode, safe mode with
// and without decryption, sealed replies) and WeChat Pay API v3 notifications, through real HTTPS
// against the real gateway, a real upstream that records what reached it, and a real Redis shared
// by two gateway instances. Every refusal is also checked at the upstream: it never saw it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import type { CallbackRequest } from '../../gateway/guards/callback-types.js';
import { WechatMsgCrypto } from '../../gateway/wechat/msg-crypto.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { PROTOCOLS } from '../helpers/h2-client.js';
import {
  encryptPayResource,
  payNotification,
  payNotificationBody,
  plainPush,
  randomEncodingAesKey,
  safePush,
  textMessage,
  urlVerification,
  type WechatAccount,
} from '../helpers/wechat-callback.js';

const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForCallbackTests', encodingAesKey: randomEncodingAesKey() };
const msgCrypto = new WechatMsgCrypto(account.encodingAesKey, account.appid);
const APIV3_KEY = 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6';
const PUB_KEY_ID = 'PUB_KEY_ID_0114232134912410000000000000';
const payKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const strangerKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const transaction = JSON.stringify({
  mchid: '1230000109',
  appid: account.appid,
  out_trade_no: '1217752501201407033233368018',
  trade_state: 'SUCCESS',
  amount: { total: 100, payer_total: 100, currency: 'CNY' },
});

const REPLY_XML =
  '<xml><ToUserName><![CDATA[oABCDEFG0123456789]]></ToUserName><FromUserName><![CDATA[gh_0123456789ab]]></FromUserName>' +
  '<CreateTime>1714037060</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 from upstream]]></Content></xml>';
const REPLY_JSON = JSON.stringify({ ToUserName: 'oABCDEFG0123456789', FromUserName: 'gh_0123456789ab', CreateTime: 1714037060, MsgType: 'text', Content: '你好 from upstream' });
/** A message the upstream answers with `success` instead of a passive reply. */
/** A new message each call, which the upstream answers `success`. */
const saySuccess = (): string => textMessage(0).replace('<Content><![CDATA[x]]>', '<Content><![CDATA[say-success]]>');

interface ErrorBody {
  error: { reason: string; message: string; request_id: string };
}

function assertGatewayError(res: ClientResponse, status: number, reason: string): void {
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = JSON.parse(res.text) as ErrorBody;
  assert.equal(body.error.reason, reason, res.text);
  assert.equal(body.error.request_id, res.headers['x-request-id']);
}

function policy(opts: { upstream: TestUpstream; redisUrl: string; onUnavailable?: 'deny' | 'allow' }): (ctx: PolicyContext) => string {
  return (ctx) => {
    const pubFile = join(ctx.dir, 'wechatpay_pub_key.pem');
    writeFileSync(pubFile, payKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    // command_timeout: 1s, so a busy test machine is not mistaken for a store outage (the outage
    // test kills Redis outright).
    return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { body: 64kb, headers_timeout: 5s, request_timeout: 10s }
${ctx.tlsSection}
wechat:
  appid: ${account.appid}
  token: ${account.token}
  encoding_aes_key: "${account.encodingAesKey}"
wechatpay:
  apiv3_key: ${APIV3_KEY}
  public_keys:
    - { id: ${PUB_KEY_ID}, file: ${pubFile} }
store: { kind: redis, redis_url: "${opts.redisUrl}", command_timeout: 1s, on_unavailable: ${opts.onUnavailable ?? 'deny'} }
upstreams:
  legacy: { url: "${opts.upstream.url}", timeout: 5s }
routes:
  - name: wx-plain
    match: { path: /wx/plain }
    upstream: legacy
    wechat_callback: { decrypt: false }
  - name: wx-safe
    match: { path: /wx/safe }
    upstream: legacy
    wechat_callback: { decrypt: true, max_skew: 300s, max_body: 4kb }
  - name: wx-safe-raw
    match: { path: /wx/safe-raw }
    upstream: legacy
    wechat_callback: { decrypt: false }
  - name: pay
    match: { path: /pay/notify }
    upstream: legacy
    wechatpay_notify: { decrypt: true, max_skew: 300s, max_body: 16kb }
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
defaults: { allow: any }
`;
  };
}

/** Sends a built callback to `path` on `t` exactly as WeChat would. */
function send(t: TestGateway, path: string, req: CallbackRequest, extraHeaders: Record<string, string> = {}, request = httpsRequest): Promise<ClientResponse> {
  const query = req.query.toString();
  return request(t.port, t.ca, {
    method: req.method,
    path: query === '' ? path : `${path}?${query}`,
    headers: { ...req.headers, ...extraHeaders },
    ...(req.method === 'GET' ? {} : { body: req.body }),
  });
}

/**
 * Until the gateway's Redis connection is up. The tests below are about callbacks, not about
 * startup; 'takes callbacks as soon as it has started' is the test for what startGateway promises.
 */
async function storeConnected(t: TestGateway): Promise<void> {
  const store = t.gw.store;
  assert.ok(store instanceof RedisStore);
  assert.equal(await store.connect(5000), true, 'the gateway never connected to Redis');
}

/**
 * A TCP relay to Redis that holds back everything Redis says until release(): Redis as slow to
 * answer a new connection as the test wants. `contacted` resolves once a client has spoken.
 */
async function slowRedis(port: number): Promise<{ url: string; contacted: Promise<void>; release(): void; close(): Promise<void> }> {
  let released = false;
  const held: (() => void)[] = [];
  let spoke!: () => void;
  const contacted = new Promise<void>((resolve) => (spoke = resolve));
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const server = connect(port, '127.0.0.1');
    sockets.add(client).add(server);
    client.on('data', (c: Buffer) => {
      spoke();
      server.write(c);
    });
    server.on('data', (c: Buffer) => (released ? client.write(c) : held.push(() => client.write(c))));
    const end = (): void => {
      client.destroy();
      server.destroy();
    };
    client.on('close', end).on('error', end);
    server.on('close', end).on('error', end);
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  return {
    url: `redis://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    contacted,
    release() {
      released = true;
      for (const send of held.splice(0)) send();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => relay.close(() => resolve()));
    },
  };
}

function withQuery(req: CallbackRequest, set: Record<string, string>): CallbackRequest {
  const query = new URLSearchParams(req.query);
  for (const [k, v] of Object.entries(set)) query.set(k, v);
  return { ...req, query };
}

/** A safe-mode push whose query is correctly signed over `encrypt`, carrying `body` as it is. */
function signedSafeBody(body: string, encrypt: string, contentType = 'text/xml'): CallbackRequest {
  const req = safePush(account, '', { encrypt });
  return { ...req, headers: { 'content-type': contentType }, body: Buffer.from(body, 'utf8') };
}

/** AES-256-CBC under the account's key with no padding added: for ciphertexts WeChat never makes. */
function rawEncrypt(plain: Buffer): string {
  const key = Buffer.from(account.encodingAesKey + '=', 'base64');
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16)).setAutoPadding(false);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
}

const ENTITY_BOMB =
  '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">' +
  '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">' +
  '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>' +
  '<xml><ToUserName>&e;</ToUserName><Encrypt>&e;</Encrypt></xml>';

/** The fields of a sealed reply, in either format. */
function envelope(res: ClientResponse, format: 'xml' | 'json'): { encrypt: string; signature: string; timestamp: string; nonce: string } {
  if (format === 'json') {
    const j = res.json<{ Encrypt: string; MsgSignature: string; TimeStamp: number; Nonce: string }>();
    return { encrypt: j.Encrypt, signature: j.MsgSignature, timestamp: String(j.TimeStamp), nonce: j.Nonce };
  }
  const field = (name: string): string => {
    const m = new RegExp(`<${name}>(?:<!\\[CDATA\\[)?([^<\\]]*)(?:\\]\\]>)?</${name}>`).exec(res.text);
    assert.ok(m, `no ${name} in ${res.text}`);
    return m[1]!;
  };
  return { encrypt: field('Encrypt'), signature: field('MsgSignature'), timestamp: field('TimeStamp'), nonce: field('Nonce') };
}

for (const protocol of PROTOCOLS) {
describe(`signed callbacks through the gateway over ${protocol.name}`, () => {
  let upstream: TestUpstream;
  let redis: TestRedis;
  let a: TestGateway;
  let b: TestGateway;

  /** Sends `req` and asserts the refusal, and that nothing reached the upstream meanwhile. */
  async function refused(t: TestGateway, path: string, req: CallbackRequest, status: number, reason: string, extra: Record<string, string> = {}): Promise<void> {
    const before = upstream.received.length;
    const res = await send(t, path, req, extra, protocol.request);
    assertGatewayError(res, status, reason);
    assert.equal(upstream.received.length, before, `the upstream received a callback refused with ${reason}`);
  }

  /** Sends `req` again and expects the answer `first` got, byte for byte, from the store: the upstream sees nothing. */
  async function replayed(t: TestGateway, path: string, req: CallbackRequest, first: ClientResponse): Promise<void> {
    const before = upstream.received.length;
    const res = await send(t, path, req, {}, protocol.request);
    assert.equal(res.status, first.status, res.text);
    assert.equal(res.text, first.text);
    assert.equal(res.headers['content-type'], first.headers['content-type']);
    assert.equal(upstream.received.length, before, 'a replay reached the upstream');
  }

  /** Sends `req`, expects it forwarded, and returns what the upstream received plus the client's answer. */
  async function forwarded(t: TestGateway, path: string, req: CallbackRequest, extra: Record<string, string> = {}) {
    const before = upstream.received.length;
    const res = await send(t, path, req, extra, protocol.request);
    assert.equal(res.status, 200, res.text);
    assert.equal(upstream.received.length, before + 1, 'the upstream did not receive the callback');
    return { res, seen: upstream.received[before]! };
  }

  before(async () => {
    upstream = await startUpstream((req, res, body) => {
      const url = req.url ?? '';
      if (url.startsWith('/wx/safe?')) {
        const text = body.toString('utf8');
        if (text.includes('say-success')) {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('success');
        } else if (/json/.test(String(req.headers['content-type']))) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(REPLY_JSON);
        } else {
          res.writeHead(200, { 'content-type': 'text/xml' });
          res.end(REPLY_XML);
        }
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('success');
    });
    redis = await startRedis();
    // Two instances sharing one Redis, as two replicas behind a load balancer.
    [a, b] = await Promise.all([
      startTestGateway(policy({ upstream, redisUrl: redis.url })),
      startTestGateway(policy({ upstream, redisUrl: redis.url })),
    ]);
    await Promise.all([storeConnected(a), storeConnected(b)]);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await upstream?.close();
    await redis?.stop();
  });

  test('a gateway takes callbacks as soon as it has started, even when Redis is slow to answer its first connection', async () => {
    // startGateway resolving means "serving": a callback sent then must not meet a store
    // connection still being made (503 store_unavailable). Redis says nothing to the new
    // gateway until it has asked and the test has seen startGateway still waiting.
    const slow = await slowRedis(redis.port);
    let started = false;
    const starting = startTestGateway(policy({ upstream, redisUrl: slow.url })).then((gw) => {
      started = true;
      return gw;
    });
    await slow.contacted;
    await new Promise((r) => setImmediate(r));
    assert.equal(started, false, 'startGateway resolved before Redis answered');
    slow.release();
    const c = await starting;
    try {
      const res = await send(c, '/wx/plain', urlVerification(account, 'first-request'), {}, protocol.request);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.text, 'first-request');
    } finally {
      await c.close();
      await slow.close();
    }
  });

  // --- URL verification -------------------------------------------------------------------

  test('URL verification: a valid GET is answered 200 text/plain with echostr; the upstream is never called', async () => {
    const before = upstream.received.length;
    const res = await send(a, '/wx/plain', urlVerification(account, '4375120948345356249'), {}, protocol.request);
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.equal(res.text, '4375120948345356249');
    // The decrypting route answers verification the same way.
    const res2 = await send(a, '/wx/safe', urlVerification(account, 'echo-on-safe'), {}, protocol.request);
    assert.equal(res2.status, 200, res2.text);
    assert.equal(res2.text, 'echo-on-safe');
    assert.equal(upstream.received.length, before);
  });

  test('URL verification: a wrong signature is 403 signature_invalid', async () => {
    const req = urlVerification(account, '4375120948345356249');
    await refused(a, '/wx/plain', withQuery(req, { signature: 'f'.repeat(40) }), 403, 'signature_invalid');
    await refused(a, '/wx/plain', urlVerification({ ...account, token: 'notTheToken' }, '1'), 403, 'signature_invalid');
  });

  // --- plain mode ---------------------------------------------------------------------------

  test('plain mode: a valid push is forwarded byte for byte with x-wx-callback-verified: signature', async () => {
    const body = textMessage(300);
    const req = plainPush(account, body);
    // A client's own claim to verification is replaced by the gateway's.
    const { res, seen } = await forwarded(a, '/wx/plain', req, { 'x-wx-callback-verified': 'decrypted' });
    assert.equal(res.text, 'success');
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, `/wx/plain?${req.query.toString()}`);
    assert.deepEqual(seen.body, Buffer.from(body, 'utf8'));
    assert.equal(seen.headers['x-wx-callback-verified'], 'signature');
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(body)));
    assert.match(String(seen.headers['content-type']), /^text\/xml/);
  });

  test('plain mode: a forged signature is 403 signature_invalid and never forwarded', async () => {
    await refused(a, '/wx/plain', withQuery(plainPush(account, textMessage()), { signature: '0'.repeat(40) }), 403, 'signature_invalid');
    await refused(a, '/wx/plain', plainPush({ ...account, token: 'forgedToken' }, textMessage()), 403, 'signature_invalid');
    // No signature at all is not a push.
    const unsigned = plainPush(account, textMessage());
    unsigned.query.delete('signature');
    await refused(a, '/wx/plain', unsigned, 400, 'callback_malformed');
  });

  test('plain mode: malformed XML, a DTD/entity bomb and malformed JSON are 400 callback_malformed, never forwarded', async () => {
    await refused(a, '/wx/plain', plainPush(account, '<xml><MsgType>text</Content></xml>'), 400, 'callback_malformed');
    await refused(a, '/wx/plain', plainPush(account, ENTITY_BOMB), 400, 'callback_malformed');
    await refused(a, '/wx/plain', plainPush(account, '{"MsgType": "text", ', { contentType: 'application/json' }), 400, 'callback_malformed');
  });

  // --- safe mode ----------------------------------------------------------------------------

  test('safe mode (decrypt): the upstream receives the decrypted XML; its text reply comes back encrypted and signed', async () => {
    const message = textMessage(400);
    const req = safePush(account, message);
    const { res, seen } = await forwarded(a, '/wx/safe', req, { 'x-wx-callback-verified': 'signature' });
    assert.equal(seen.body.toString('utf8'), message);
    assert.equal(seen.headers['x-wx-callback-verified'], 'decrypted');
    assert.match(String(seen.headers['content-type']), /^text\/xml/);
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(message)));

    assert.match(String(res.headers['content-type']), /^text\/xml/);
    assert.equal(res.headers['content-length'], String(Buffer.byteLength(res.text)));
    assert.ok(!res.text.includes('from upstream'), 'the reply reached the client in clear');
    const e = envelope(res, 'xml');
    assert.equal(e.signature, wechatSignature([account.token, e.timestamp, e.nonce, e.encrypt]));
    assert.equal(msgCrypto.decrypt(e.encrypt), REPLY_XML);
    assert.ok(Math.abs(Number(e.timestamp) - Date.now() / 1000) < 300);
  });

  test('safe mode (decrypt): the JSON variant is decrypted for the upstream and its reply sealed as JSON', async () => {
    const message = JSON.stringify({ ToUserName: 'gh_0123456789ab', FromUserName: 'oABCDEFG0123456789', CreateTime: 1714037059, MsgType: 'text', Content: '你好', MsgId: 24571234567890123 });
    const req = safePush(account, message, { format: 'json' });
    const { res, seen } = await forwarded(a, '/wx/safe', req);
    assert.equal(seen.body.toString('utf8'), message);
    assert.equal(seen.headers['x-wx-callback-verified'], 'decrypted');
    assert.match(String(seen.headers['content-type']), /^application\/json/);

    assert.match(String(res.headers['content-type']), /^application\/json/);
    const e = envelope(res, 'json');
    assert.equal(e.signature, wechatSignature([account.token, e.timestamp, e.nonce, e.encrypt]));
    assert.equal(msgCrypto.decrypt(e.encrypt), REPLY_JSON);
  });

  test('safe mode (decrypt): an upstream `success` comes back as `success`, unencrypted', async () => {
    const message = saySuccess();
    const { res, seen } = await forwarded(a, '/wx/safe', safePush(account, message));
    assert.equal(seen.body.toString('utf8'), message);
    assert.equal(res.text, 'success');
  });

  test('safe mode without decrypt: the ciphertext body is forwarded as received with x-wx-callback-verified: msg_signature', async () => {
    const req = safePush(account, textMessage(200));
    const { res, seen } = await forwarded(a, '/wx/safe-raw', req);
    assert.deepEqual(seen.body, req.body);
    assert.equal(seen.headers['x-wx-callback-verified'], 'msg_signature');
    assert.equal(res.text, 'success');
  });

  test('safe mode: a forged msg_signature is 403 signature_invalid', async () => {
    const req = safePush(account, textMessage());
    await refused(a, '/wx/safe', withQuery(req, { msg_signature: 'a'.repeat(40) }), 403, 'signature_invalid');
    // A valid `signature` does not stand in for msg_signature over another ciphertext.
    const other = safePush(account, textMessage());
    await refused(a, '/wx/safe', { ...req, body: other.body }, 403, 'signature_invalid');
  });

  test('safe mode: a stale timestamp is 403 timestamp_stale', async () => {
    const now = Math.floor(Date.now() / 1000);
    await refused(a, '/wx/safe', safePush(account, textMessage(), { timestamp: now - 3600 }), 403, 'timestamp_stale');
    await refused(a, '/wx/safe', safePush(account, textMessage(), { timestamp: now + 3600 }), 403, 'timestamp_stale');
  });

  test('safe mode: a replayed push is answered from the store with the same sealed reply, on the same instance', async () => {
    const req = safePush(account, textMessage());
    const { res } = await forwarded(a, '/wx/safe', req);
    await replayed(a, '/wx/safe', req, res);
  });

  test('a push one instance delivered is answered by a second instance sharing the Redis store, not delivered again', async () => {
    const push = safePush(account, textMessage());
    const { res } = await forwarded(a, '/wx/safe', push);
    await replayed(b, '/wx/safe', push, res);
    // And the other way round, in plain mode.
    const plain = plainPush(account, textMessage());
    const first = await forwarded(b, '/wx/plain', plain);
    await replayed(a, '/wx/plain', plain, first.res);
  });

  test('safe mode: a message encrypted for another appid is 403 appid_mismatch', async () => {
    await refused(a, '/wx/safe', safePush(account, textMessage(), { appid: 'wx0000000000000000' }), 403, 'appid_mismatch');
  });

  test('safe mode: truncated ciphertext and invalid padding are 400 decrypt_failed', async () => {
    const full = Buffer.from(msgCrypto.encrypt(textMessage(100)), 'base64');
    const truncated = full.subarray(0, full.length - 16).toString('base64');
    await refused(a, '/wx/safe', safePush(account, '', { encrypt: truncated }), 400, 'decrypt_failed');

    // Two whole blocks whose last byte claims 5 bytes of padding that are not there.
    const badPad = Buffer.alloc(64, 0x41);
    badPad[63] = 5;
    await refused(a, '/wx/safe', safePush(account, '', { encrypt: rawEncrypt(badPad) }), 400, 'decrypt_failed');
    // A padding byte of zero.
    const zeroPad = Buffer.alloc(64, 0x41);
    zeroPad[63] = 0;
    await refused(a, '/wx/safe', safePush(account, '', { encrypt: rawEncrypt(zeroPad) }), 400, 'decrypt_failed');
  });

  test("a body over the route's max_body (under server.limits.body) is 413 body_too_large, declared or chunked", async () => {
    await refused(a, '/wx/safe', safePush(account, textMessage(5000)), 413, 'body_too_large');
    await refused(a, '/wx/safe', safePush(account, textMessage(5000)), 413, 'body_too_large', { 'transfer-encoding': 'chunked' });
    const big = payNotificationBody(encryptPayResource(APIV3_KEY, JSON.stringify({ pad: 'p'.repeat(20_000) })));
    await refused(a, '/pay/notify', payNotification(payKeys.privateKey, PUB_KEY_ID, big), 413, 'body_too_large');
  });

  test('safe mode (decrypt): a chunked push (no Content-Length) is decrypted and forwarded with its own length', async () => {
    const message = saySuccess();
    const { res, seen } = await forwarded(a, '/wx/safe', safePush(account, message), { 'transfer-encoding': 'chunked' });
    assert.equal(seen.body.toString('utf8'), message);
    assert.equal(seen.headers['transfer-encoding'], undefined);
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(message)));
    assert.equal(res.text, 'success');
  });

  test('safe mode: malformed XML, a DTD/entity bomb and malformed JSON are 400 callback_malformed', async () => {
    const encrypt = msgCrypto.encrypt(textMessage());
    await refused(a, '/wx/safe', signedSafeBody(`<xml><Encrypt><![CDATA[${encrypt}]]></Encrypt>`, encrypt), 400, 'callback_malformed');
    await refused(a, '/wx/safe', signedSafeBody(`<xml><Encrypt>${encrypt}</Nonce></xml>`, encrypt), 400, 'callback_malformed');
    await refused(a, '/wx/safe', signedSafeBody(ENTITY_BOMB, '&e;'), 400, 'callback_malformed');
    await refused(a, '/wx/safe', signedSafeBody(`{"Encrypt": "${encrypt}"`, encrypt, 'application/json'), 400, 'callback_malformed');
    await refused(a, '/wx/safe', signedSafeBody(`["${encrypt}"]`, encrypt, 'application/json'), 400, 'callback_malformed');
    // A plain-mode push to the decrypting route is not what that route takes.
    await refused(a, '/wx/safe', plainPush(account, textMessage()), 400, 'callback_malformed');
  });

  test('a client-sent x-wx-callback-verified (or Pay verification header) on a normal route never reaches the upstream', async () => {
    const before = upstream.received.length;
    const res = await protocol.request(a.port, a.ca, {
      method: 'POST',
      path: '/api/orders',
      headers: {
        'content-type': 'application/json',
        'x-wx-callback-verified': 'decrypted',
        'x-wechatpay-verified': 'decrypted',
        'x-wechatpay-notify-id': 'EV-forged',
        'x-wechatpay-event-type': 'TRANSACTION.SUCCESS',
        'x-kept': 'yes',
      },
      body: '{"order": 1}',
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(upstream.received.length, before + 1);
    const seen = upstream.received[before]!;
    assert.equal(seen.headers['x-kept'], 'yes');
    for (const name of ['x-wx-callback-verified', 'x-wechatpay-verified', 'x-wechatpay-notify-id', 'x-wechatpay-event-type']) {
      assert.equal(seen.headers[name], undefined, `${name} reached the upstream`);
    }
    assert.equal(seen.body.toString(), '{"order": 1}');
  });

  // --- WeChat Pay ---------------------------------------------------------------------------

  const payBody = (): string => payNotificationBody(encryptPayResource(APIV3_KEY, transaction));

  test('WeChat Pay: a signed notification is forwarded as the decrypted resource JSON', async () => {
    const req = payNotification(payKeys.privateKey, PUB_KEY_ID, payBody());
    const { res, seen } = await forwarded(a, '/pay/notify', req, { 'x-wechatpay-verified': 'signature' });
    assert.equal(res.text, 'success');
    assert.equal(seen.url, '/pay/notify');
    assert.equal(seen.body.toString('utf8'), transaction);
    assert.match(String(seen.headers['content-type']), /^application\/json/);
    assert.equal(seen.headers['content-length'], String(Buffer.byteLength(transaction)));
    assert.equal(seen.headers['x-wechatpay-verified'], 'decrypted');
    assert.equal(seen.headers['x-wechatpay-notify-id'], JSON.parse(req.body.toString('utf8')).id);
    assert.equal(seen.headers['x-wechatpay-event-type'], 'TRANSACTION.SUCCESS');
  });

  test('WeChat Pay: an unknown serial is 401 serial_unknown', async () => {
    const req = payNotification(strangerKeys.privateKey, 'PUB_KEY_ID_0999999999999999999999999999', payBody());
    await refused(a, '/pay/notify', req, 401, 'serial_unknown');
  });

  test('WeChat Pay: one tampered body byte, or another key under a known serial, is 403 signature_invalid', async () => {
    const req = payNotification(payKeys.privateKey, PUB_KEY_ID, payBody());
    const body = Buffer.from(req.body);
    const at = body.indexOf('"summary"') + 2;
    body[at] = body[at]! ^ 0x01; // "summary" -> "rummary": still JSON, no longer what was signed
    await refused(a, '/pay/notify', { ...req, body }, 403, 'signature_invalid');
    await refused(a, '/pay/notify', payNotification(strangerKeys.privateKey, PUB_KEY_ID, payBody()), 403, 'signature_invalid');
  });

  test('WeChat Pay: a replayed notification is answered from the store, on the same and on the other instance', async () => {
    const req = payNotification(payKeys.privateKey, PUB_KEY_ID, payBody());
    const { res } = await forwarded(a, '/pay/notify', req);
    await replayed(a, '/pay/notify', req, res);
    await replayed(b, '/pay/notify', req, res);
  });

  test('WeChat Pay: a resource under another APIv3 key, or with a broken tag, is 400 decrypt_failed', async () => {
    const wrongKey = payNotificationBody(encryptPayResource('Z'.repeat(32), transaction));
    await refused(a, '/pay/notify', payNotification(payKeys.privateKey, PUB_KEY_ID, wrongKey), 400, 'decrypt_failed');

    const resource = encryptPayResource(APIV3_KEY, transaction);
    const data = Buffer.from(resource.ciphertext!, 'base64');
    data[data.length - 1] = data[data.length - 1]! ^ 0xff;
    const badTag = payNotificationBody({ ...resource, ciphertext: data.toString('base64') });
    await refused(a, '/pay/notify', payNotification(payKeys.privateKey, PUB_KEY_ID, badTag), 400, 'decrypt_failed');
  });

  test('WeChat Pay: a notification refused for decryption did not use its nonce up', async () => {
    // The nonce is claimed last, so a refused notification cannot burn the nonce of a real one.
    const nonce = randomBytes(16).toString('hex').toUpperCase();
    const bad = payNotificationBody(encryptPayResource('Z'.repeat(32), transaction));
    await refused(a, '/pay/notify', payNotification(payKeys.privateKey, PUB_KEY_ID, bad, { nonce }), 400, 'decrypt_failed');
    await forwarded(a, '/pay/notify', payNotification(payKeys.privateKey, PUB_KEY_ID, payBody(), { nonce }));
  });

  test('nothing secret or decrypted reaches the gateway logs', () => {
    for (const t of [a, b]) {
      const text = t.logText();
      assert.ok(!text.includes(account.encodingAesKey), 'the EncodingAESKey was logged');
      assert.ok(!text.includes(APIV3_KEY), 'the APIv3 key was logged');
      assert.ok(!text.includes('你好'), 'decrypted content was logged');
      assert.ok(!text.includes('1217752501201407033233368018'), 'a decrypted Pay resource was logged');
    }
  });
});
}

describe('signed callbacks with the store down', () => {
  let upstream: TestUpstream;
  let redis: TestRedis;
  let t: TestGateway;

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('success');
    });
    redis = await startRedis();
    // on_unavailable: allow covers rate limits only; callbacks must still be refused.
    t = await startTestGateway(policy({ upstream, redisUrl: redis.url, onUnavailable: 'allow' }));
    await storeConnected(t);
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
    await redis?.stop();
  });

  test('with Redis killed, every callback route answers 503 store_unavailable and forwards nothing', async () => {
    const ok = await send(t, '/wx/plain', plainPush(account, textMessage()));
    assert.equal(ok.status, 200, ok.text);
    assert.equal(upstream.received.length, 1);

    await redis.kill();
    const cases: [string, CallbackRequest][] = [
      ['/wx/plain', plainPush(account, textMessage())],
      ['/wx/safe', safePush(account, textMessage())],
      ['/wx/safe', urlVerification(account, 'echo')],
      ['/pay/notify', payNotification(payKeys.privateKey, PUB_KEY_ID, payNotificationBody(encryptPayResource(APIV3_KEY, transaction)))],
    ];
    for (const [path, req] of cases) {
      const res = await send(t, path, req);
      assertGatewayError(res, 503, 'store_unavailable');
    }
    assert.equal(upstream.received.length, 1, 'a callback was forwarded without its nonce recorded');
    // Forged callbacks are still refused for what they are, without touching the store.
    assertGatewayError(await send(t, '/wx/plain', withQuery(plainPush(account, textMessage()), { signature: '0'.repeat(40) })), 403, 'signature_invalid');
  });
});
