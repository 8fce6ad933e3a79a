// The WeChat message-push guard, request by request: URL verification, plain mode, safe mode in
// XML and JSON, every refusal, and the sealing of replies. Official examples run through the
// guard itself where their clocks can be replayed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileWechatCallback, VERIFIED_HEADER } from '../../gateway/guards/wechat-callback.js';
import type { CallbackGuard, CallbackOutcome, CallbackRequest } from '../../gateway/guards/callback-types.js';
import type { WechatCallbackConfig, WechatConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { StoreUnavailableError, type Store } from '../../gateway/store/store.js';
import { WechatMsgCrypto } from '../../gateway/wechat/msg-crypto.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';
import { XMLParser } from 'fast-xml-parser';
import { plainPush, safePush, textMessage, urlVerification, type WechatAccount } from '../helpers/wechat-callback.js';

const pos = { file: 'test.yaml', line: 1, col: 1, path: 'routes[0].wechat_callback' };
const T = 1_714_036_504; // seconds
const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3n-for-tests', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };

function wechat(a: WechatAccount, withKey = true): WechatConfig {
  return {
    appid: a.appid,
    token: a.token,
    ...(withKey ? { encoding_aes_key: a.encodingAesKey } : {}),
    api_base: new URL('https://api.weixin.qq.com'),
    api_timeout: 5000,
    pos,
  };
}

function guardFor(
  o: { decrypt?: boolean; a?: WechatAccount; at?: number; withKey?: boolean; store?: Store; maxBody?: number } = {},
): CallbackGuard {
  const now = () => (o.at ?? T) * 1000;
  const cfg: WechatCallbackConfig = { decrypt: o.decrypt ?? true, max_skew: 300_000, max_body: o.maxBody ?? 65_536, pos };
  return compileWechatCallback(cfg, wechat(o.a ?? account, o.withKey ?? true), o.store ?? new MemoryStore({ now }), now);
}

function refused(outcome: CallbackOutcome, reason: string): void {
  assert.equal(outcome.kind, 'refuse', JSON.stringify(outcome));
  if (outcome.kind === 'refuse') assert.equal(outcome.reason, reason, outcome.detail);
}

function forwarded(outcome: CallbackOutcome): Extract<CallbackOutcome, { kind: 'forward' }> {
  assert.equal(outcome.kind, 'forward', JSON.stringify(outcome));
  return outcome as Extract<CallbackOutcome, { kind: 'forward' }>;
}

/** The upstream answered: the delivery is committed, and a replay of the request gets that answer from the store. */
async function answersReplay(g: CallbackGuard, req: CallbackRequest, outcome: CallbackOutcome): Promise<void> {
  const answer = { status: 200, contentType: 'text/plain', body: Buffer.from('success') };
  forwarded(outcome).delivery!.commit(answer);
  assert.deepEqual(await g.check(req), { kind: 'answer', ...answer, replayed: 'request' });
}

function withQuery(req: CallbackRequest, set: Record<string, string>): CallbackRequest {
  const query = new URLSearchParams(req.query);
  for (const [k, v] of Object.entries(set)) query.set(k, v);
  return { ...req, query };
}

// --- URL verification ---------------------------------------------------------------------

test('URL verification: the official example answers its echostr', async () => {
  // https://developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.md
  const g = guardFor({ a: { ...account, token: 'AAAAA' }, withKey: false, decrypt: false, at: 1714036504 });
  const query = new URLSearchParams('signature=f464b24fc39322e44b38aa78f5edd27bd1441696&echostr=4375120948345356249&timestamp=1714036504&nonce=1514711492');
  const outcome = await g.check({ method: 'GET', query, headers: {}, body: Buffer.alloc(0) });
  assert.deepEqual(outcome, { kind: 'answer', status: 200, contentType: 'text/plain; charset=utf-8', body: '4375120948345356249' });
});

test('URL verification: a wrong signature, a missing echostr and stale requests are refused; a replay gets the same echo', async () => {
  const g = guardFor();
  const good = urlVerification(account, '12345', { timestamp: T, nonce: '111' });
  refused(await g.check(withQuery(good, { signature: 'f'.repeat(40) })), 'signature_invalid');
  refused(await g.check(withQuery(good, { signature: 'abc' })), 'signature_invalid');
  const noEcho = new URLSearchParams(good.query);
  noEcho.delete('echostr');
  refused(await g.check({ ...good, query: noEcho }), 'callback_malformed');
  refused(await g.check(urlVerification(account, '1', { timestamp: T - 301, nonce: '222' })), 'timestamp_stale');
  assert.equal((await g.check(good)).kind, 'answer');
  assert.deepEqual(await g.check(good), { kind: 'answer', status: 200, contentType: 'text/plain; charset=utf-8', body: Buffer.from('12345'), replayed: 'request' });
});

test('URL verification with an encrypted echostr (WeCom style, wechatpy test_check_signature vector)', async () => {
  // wechatpy/wechatpy tests/test_crypto.py
  const a = { appid: 'wx49f0ab532d5d035a', token: '123456', encodingAesKey: 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR' };
  const g = guardFor({ a, at: 1411443780 });
  const echostr = '4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==';
  const query = new URLSearchParams({ msg_signature: 'dd6b9c95b495b3f7e2901bfbc76c664930ffdb96', timestamp: '1411443780', nonce: '437374425', echostr });
  const outcome = await g.check({ method: 'GET', query, headers: {}, body: Buffer.alloc(0) });
  assert.equal(outcome.kind, 'answer');
  if (outcome.kind === 'answer') assert.match(String(outcome.body), /^\d+$/);
  query.set('nonce', '437374424'); // test_check_signature_should_fail
  refused(await g.check({ method: 'GET', query, headers: {}, body: Buffer.alloc(0) }), 'signature_invalid');
});

// --- plain mode ------------------------------------------------------------------------------

test('plain mode: the official JSON example is forwarded unchanged', async () => {
  // https://developers.weixin.qq.com/doc/subscription/guide/dev/push/encryption.md, 明文模式
  const g = guardFor({ a: { ...account, token: 'AAAAA' }, withKey: false, decrypt: false, at: 1714037059 });
  const body = Buffer.from(
    '{\n    "ToUserName": "gh_97417a04a28d",\n    "FromUserName": "o9AgO5Kd5ggOC-bXrbNODIiE3bGY",\n    "CreateTime": 1714037059,\n' +
      '    "MsgType": "event",\n    "Event": "debug_demo",\n    "debug_str": "hello world"\n}',
  );
  const query = new URLSearchParams('signature=899cf89e464efb63f54ddac96b0a0a235f53aa78&timestamp=1714037059&nonce=486452656');
  const f = forwarded(await g.check({ method: 'POST', query, headers: { 'content-type': 'application/json' }, body }));
  assert.equal(f.body, body);
  assert.equal(f.contentType, 'application/json');
  assert.deepEqual(f.headers, { [VERIFIED_HEADER]: 'signature' });
  assert.equal(f.sealReply, undefined);
});

test('plain mode: forged, stale, DTD and to a decrypting route are refused; a replay is answered from the store', async () => {
  const g = guardFor({ decrypt: false });
  const good = plainPush(account, textMessage(), { timestamp: T, nonce: '333' });
  refused(await g.check(withQuery(good, { signature: wechatSignature(['other-token', String(T), '333']) })), 'signature_invalid');
  refused(await g.check(plainPush(account, textMessage(), { timestamp: T + 400, nonce: '334' })), 'timestamp_stale');
  refused(await g.check(plainPush(account, '<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>', { timestamp: T, nonce: '335' })), 'callback_malformed');
  refused(await g.check(plainPush(account, '<xml><a></xml>', { timestamp: T, nonce: '336' })), 'callback_malformed');
  const f = await g.check(good);
  assert.equal(forwarded(f).body, good.body);
  await answersReplay(g, good, f);
  // A captured URL verification signs a plain push too: one sent with its parameters is not delivered.
  assert.equal((await g.check(urlVerification(account, '54321', { timestamp: T, nonce: '338' }))).kind, 'answer');
  const echo = { kind: 'answer', status: 200, contentType: 'text/plain; charset=utf-8', body: Buffer.from('54321'), replayed: 'request' };
  assert.deepEqual(await g.check(plainPush(account, textMessage(), { timestamp: T, nonce: '338' })), echo);
  // Nor is one sent with the `signature` of a safe-mode push.
  const safe = safePush(account, 'hi', { timestamp: T, nonce: '339' });
  forwarded(await g.check(safe));
  refused(await g.check(plainPush(account, textMessage(), { timestamp: T, nonce: '339' })), 'nonce_replayed');
  refused(await guardFor({ decrypt: true }).check(plainPush(account, textMessage(), { timestamp: T, nonce: '337' })), 'callback_malformed');
});

// --- safe mode -------------------------------------------------------------------------------

test('safe mode: the official sample push is verified and decrypted', async () => {
  // Official WXBizMsgCrypt Sample.py (copy: charlesXu86/Chatbot_CN Chatbot_Web/impl/weixin/Sample.py)
  const a = { appid: 'wx2c2769f8efd9abc2', token: 'spamtest', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
  const g = guardFor({ a, at: 1409735669 });
  const body = Buffer.from(
    '<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>',
  );
  const query = new URLSearchParams({ timestamp: '1409735669', nonce: '1320562132', encrypt_type: 'aes', msg_signature: '5d197aaffba7e9b25a30732f161a50dee96bd5fa' });
  const f = forwarded(await g.check({ method: 'POST', query, headers: { 'content-type': 'text/xml' }, body }));
  assert.match(f.body.toString(), /<Content><!\[CDATA\[abcdteT\]\]><\/Content>/);
  assert.equal(f.contentType, 'text/xml; charset=utf-8');
  assert.deepEqual(f.headers, { [VERIFIED_HEADER]: 'decrypted' });
});

for (const format of ['xml', 'json'] as const) {
  test(`safe mode ${format}: decrypted with decrypt: true, forwarded as received with decrypt: false`, async () => {
    const message = format === 'json' ? '{"ToUserName":"gh_0123456789ab","MsgType":"event","Event":"subscribe"}' : textMessage(500);
    const req = safePush(account, message, { format, timestamp: T, nonce: '444' });
    const f = forwarded(await guardFor({ decrypt: true }).check(req));
    assert.equal(f.body.toString(), message);
    assert.equal(f.contentType, format === 'json' ? 'application/json; charset=utf-8' : 'text/xml; charset=utf-8');
    assert.deepEqual(f.headers, { [VERIFIED_HEADER]: 'decrypted' });
    assert.equal(typeof f.sealReply, 'function');

    const raw = forwarded(await guardFor({ decrypt: false }).check(req));
    assert.equal(raw.body, req.body);
    assert.deepEqual(raw.headers, { [VERIFIED_HEADER]: 'msg_signature' });
    assert.equal(raw.sealReply, undefined);
    // Verifying msg_signature needs only the token: a route that forwards ciphertext works without the key.
    assert.equal(forwarded(await guardFor({ decrypt: false, withKey: false }).check(req)).body, req.body);
  });

  test(`safe mode ${format}: forged msg_signature, stale, wrong appid and truncated padding are refused; a replay is answered from the store`, async () => {
    const g = guardFor();
    const good = safePush(account, 'hello', { format, timestamp: T, nonce: '555' });
    refused(await g.check(withQuery(good, { msg_signature: '0'.repeat(40) })), 'signature_invalid');
    // The body is what msg_signature covers: changing Encrypt breaks it.
    const other = safePush(account, 'other', { format, timestamp: T, nonce: '555' });
    refused(await g.check({ ...good, body: other.body }), 'signature_invalid');
    refused(await g.check(safePush(account, 'hello', { format, timestamp: T - 301, nonce: '556' })), 'timestamp_stale');
    refused(await g.check(safePush(account, 'hello', { format, timestamp: T, nonce: '557', appid: 'wx0000000000000000' })), 'appid_mismatch');
    const full = Buffer.from(new WechatMsgCrypto(account.encodingAesKey, account.appid).encrypt('hello, padding'), 'base64');
    const truncated = full.subarray(0, full.length - 32).toString('base64');
    refused(await g.check(safePush(account, '', { format, timestamp: T, nonce: '558', encrypt: truncated })), 'decrypt_failed');
    // A forged request did not use the nonce up: the real one with the same nonce still passes.
    await answersReplay(g, good, await g.check(good));
    // Another message with the same timestamp and nonce is signed differently: it is delivered too.
    forwarded(await g.check(other));
  });
}

test('safe mode: oversized, malformed XML, DTD, entity bomb, malformed JSON, no Encrypt are refused', async () => {
  const g = guardFor({ maxBody: 4096 });
  const base = safePush(account, 'hello', { timestamp: T, nonce: '666' });
  const sized = safePush(account, textMessage(5000), { timestamp: T, nonce: '667' });
  refused(await g.check(sized), 'body_too_large');
  const bodies: [string, string | undefined][] = [
    ['<xml><Encrypt>abc</Encrypt>', 'text/xml'],
    ['<xml><Encrypt>abc</Encrypt></xml><xml/>', 'text/xml'],
    ['<?xml version="1.0"?><!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml><Encrypt>abc</Encrypt></xml>', 'text/xml'],
    [
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Encrypt>&lol3;</Encrypt></xml>',
      'text/xml',
    ],
    ['<xml><Encrypt><!ENTITY x "y"></Encrypt></xml>', 'text/xml'],
    ['<xml><ToUserName>gh</ToUserName></xml>', 'text/xml'],
    ['<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>', 'text/xml'],
    ['{"Encrypt": "abc"', 'application/json'],
    ['{"Encrypt": 5}', 'application/json'],
    // Two Encrypt fields, the second spelt with an escape: which one a parser reads is a guess.
    ['{"Encrypt": "abc", "Encr\\u0079pt": "def"}', 'application/json'],
    ['{"ToUserName": "gh", "Encrypt": "abc", "ToUserName": "gh2"}', 'application/json'],
    ['["Encrypt"]', 'application/json'],
    ['  {"ToUserName": "gh"}', undefined], // detected as JSON by its first character
    ['\xff\xfe<xml/>', 'text/xml'],
  ];
  for (const [body, contentType] of bodies) {
    const headers = contentType ? { 'content-type': contentType } : {};
    refused(await g.check({ ...base, headers, body: Buffer.from(body, 'latin1') }), 'callback_malformed');
  }
  // None of those used the nonce up.
  forwarded(await g.check(base));
});

test('malformed query parameters and methods are refused before any work', async () => {
  const g = guardFor();
  const good = safePush(account, 'hello', { timestamp: T, nonce: '777' });
  refused(await g.check(withQuery(good, { timestamp: '17140365O4' })), 'callback_malformed');
  refused(await g.check(withQuery(good, { timestamp: '' })), 'callback_malformed');
  refused(await g.check(withQuery(good, { nonce: 'a b' })), 'callback_malformed');
  refused(await g.check(withQuery(good, { encrypt_type: 'des' })), 'callback_malformed');
  const noSig = new URLSearchParams(good.query);
  noSig.delete('msg_signature');
  refused(await g.check({ ...good, query: noSig }), 'callback_malformed');
  const repeated = new URLSearchParams(good.query);
  repeated.append('msg_signature', '0'.repeat(40));
  refused(await g.check({ ...good, query: repeated }), 'callback_malformed');
  refused(await g.check({ ...good, method: 'PUT' }), 'method_not_allowed');
  forwarded(await g.check(good));
});

test('a store that cannot answer makes check() reject with StoreUnavailableError', async () => {
  const down: Store = {
    kind: 'redis',
    connected: false,
    hit: () => Promise.reject(new StoreUnavailableError('down')),
    claim: () => Promise.reject(new StoreUnavailableError('down')),
    put: () => Promise.reject(new StoreUnavailableError('down')),
    get: () => Promise.reject(new StoreUnavailableError('down')),
    release: () => Promise.reject(new StoreUnavailableError('down')),
    close: () => Promise.resolve(),
  };
  const g = guardFor({ store: down });
  await assert.rejects(g.check(safePush(account, 'hello', { timestamp: T, nonce: '888' })), StoreUnavailableError);
  // A forged request is refused without asking the store.
  refused(await g.check(withQuery(safePush(account, 'hello', { timestamp: T, nonce: '889' }), { msg_signature: '0'.repeat(40) })), 'signature_invalid');
});

test('inconsistent configuration is refused at compile time', () => {
  assert.throws(() => guardFor({ decrypt: true, withKey: false }), /encoding_aes_key/);
  const now = () => T * 1000;
  const cfg: WechatCallbackConfig = { decrypt: false, max_skew: 300_000, max_body: 65_536, pos };
  assert.throws(() => compileWechatCallback(cfg, { ...wechat(account), token: undefined }, new MemoryStore({ now }), now), /token/);
});

// --- sealed replies --------------------------------------------------------------------------

const xml = new XMLParser({ processEntities: false, parseTagValue: false });

for (const format of ['xml', 'json'] as const) {
  test(`sealReply ${format}: encrypts and signs the reply in the push's format; success and empty pass`, async () => {
    const g = guardFor();
    const f = forwarded(await g.check(safePush(account, 'hi', { format, timestamp: T, nonce: '999' })));
    const reply = '<xml><ToUserName><![CDATA[oABC]]></ToUserName><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content></xml>';
    const sealed = f.sealReply!({ contentType: 'text/xml', body: Buffer.from(reply) });
    let env: { Encrypt: string; MsgSignature: string; TimeStamp: string | number; Nonce: string | number };
    if (format === 'json') {
      assert.equal(sealed.contentType, 'application/json; charset=utf-8');
      env = JSON.parse(sealed.body.toString());
    } else {
      assert.equal(sealed.contentType, 'text/xml; charset=utf-8');
      env = xml.parse(sealed.body.toString()).xml;
    }
    assert.equal(String(env.TimeStamp), String(T));
    assert.equal(env.MsgSignature, wechatSignature([account.token, String(env.TimeStamp), String(env.Nonce), env.Encrypt]));
    assert.equal(new WechatMsgCrypto(account.encodingAesKey, account.appid).decrypt(env.Encrypt), reply);

    for (const body of ['success', '', ' success\n']) {
      const same = f.sealReply!({ contentType: 'text/plain', body: Buffer.from(body) });
      assert.equal(same.body.toString(), body);
      assert.equal(same.contentType, 'text/plain');
    }
  });
}
