// The protocol details a decrypting or compatible-mode route gets right, in-process: the query a
// decrypted push goes upstream with, which replies are sealed, compatible mode cut to the
// envelope, WeCom's envelopes and ids, and Pay's non-JSON and tag-only resources. The end-to-end
// checks against independent implementations are in test/integration/callback-interop.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { compileWechatCallback } from '../../gateway/guards/wechat-callback.js';
import type { CallbackOutcome, CallbackRequest } from '../../gateway/guards/callback-types.js';
import type { WechatConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { WechatMsgCrypto } from '../../gateway/wechat/msg-crypto.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';
import { envelopeOnly, extractEncrypt, isReplyEnvelope, parseCallbackBody } from '../../gateway/wechat/callback-body.js';
import { decryptPayResource, payFailBody } from '../../gateway/wechat/pay-notify.js';
import { errorBody } from '../../gateway/errors.js';
import { encryptPayResource, safePush, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';

const pos = { file: 'test.yaml', line: 1, col: 1, path: 'routes[0].wechat_callback' };
const T = 1_714_036_504;
const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForTests', encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG' };
const corp: WechatAccount = { appid: 'ww1234567890abcdef', token: 'corpTok3n', encodingAesKey: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg' };

function guard(a: WechatAccount, decrypt: boolean) {
  const now = () => T * 1000;
  const wechat: WechatConfig = { appid: a.appid, token: a.token, encoding_aes_key: a.encodingAesKey, api_base: new URL('https://api.weixin.qq.com'), api_timeout: 5000, pos };
  return compileWechatCallback({ decrypt, max_skew: 300_000, max_body: 65_536, pos }, wechat, new MemoryStore({ now }), now);
}

function forwarded(outcome: CallbackOutcome): Extract<CallbackOutcome, { kind: 'forward' }> {
  assert.equal(outcome.kind, 'forward', JSON.stringify(outcome));
  return outcome as Extract<CallbackOutcome, { kind: 'forward' }>;
}

function refused(outcome: CallbackOutcome, reason: string): void {
  assert.equal(outcome.kind, 'refuse', JSON.stringify(outcome));
  if (outcome.kind === 'refuse') assert.equal(outcome.reason, reason, outcome.detail);
}

/** A WeCom push: msg_signature alone in the query, the envelope in `body`. */
function wecomPush(body: (encrypt: string) => string, plain: string, contentType: string): CallbackRequest {
  const timestamp = String(T);
  const nonce = '1372623149';
  const encrypt = new WechatMsgCrypto(corp.encodingAesKey, corp.appid).encrypt(plain);
  const query = new URLSearchParams({ msg_signature: wechatSignature([corp.token, timestamp, nonce, encrypt]), timestamp, nonce });
  return { method: 'POST', query, headers: { 'content-type': contentType }, body: Buffer.from(body(encrypt), 'utf8') };
}

test('a decrypted push goes upstream without encrypt_type and msg_signature, the rest of the query kept', async () => {
  const req = safePush(account, textMessage(), { timestamp: T, nonce: '42' });
  const f = forwarded(await guard(account, true).check(req));
  const query = new URLSearchParams(f.query);
  assert.deepEqual([...query.keys()].sort(), ['nonce', 'openid', 'signature', 'timestamp']);
  assert.equal(query.get('signature'), req.query.get('signature'));
});

test("a safe-mode push whose plain `signature` is not WeChat's is refused before it is passed on", async () => {
  const req = safePush(account, textMessage(), { timestamp: T });
  req.query.set('signature', 'f'.repeat(40));
  refused(await guard(account, true).check(req), 'signature_invalid');
  // Without decryption the query goes on untouched, and `signature` is the backend's to read.
  assert.equal(forwarded(await guard(account, false).check(req)).query, undefined);
});

test('sealing: only 2xx replies, never an envelope twice, and a non-2xx goes back empty', async () => {
  const f = forwarded(await guard(account, true).check(safePush(account, textMessage(), { timestamp: T })));
  const reply = Buffer.from('<xml><Content><![CDATA[hi]]></Content></xml>');
  const sealed = f.sealReply!({ status: 200, contentType: 'text/xml', body: reply });
  assert.ok(isReplyEnvelope(sealed.body));
  assert.deepEqual(f.sealReply!({ status: 200, contentType: 'text/xml', body: sealed.body }).body, sealed.body);
  const error = f.sealReply!({ status: 502, contentType: 'text/html', body: Buffer.from('<html>stack</html>') });
  assert.equal(error.body.length, 0);
  assert.equal(f.sealReply!({ status: 200, contentType: 'text/plain', body: Buffer.from('success') }).body.toString(), 'success');
});

test('compatible mode: the plain fields beside Encrypt are cut, in XML and JSON', () => {
  const xml = parseCallbackBody(Buffer.from('<xml><ToUserName>gh_1</ToUserName><Content>forged</Content><Encrypt>QUJD</Encrypt></xml>'), 'xml');
  assert.equal(envelopeOnly(xml, 'xml', 'wechat')?.toString(), '<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[QUJD]]></Encrypt></xml>');
  const json = parseCallbackBody(Buffer.from('{"ToUserName":"gh_1","Content":"forged","Encrypt":"QUJD"}'), 'json');
  assert.equal(envelopeOnly(json, 'json', 'wechat')?.toString(), '{"ToUserName":"gh_1","Encrypt":"QUJD"}');
  const wecom = { tousername: 'ww1234567890abcdef', msgtype: 'text', encrypt: 'QUJD', agentid: 1000002 };
  assert.equal(envelopeOnly(wecom, 'json', 'lower')?.toString(), '{"tousername":"ww1234567890abcdef","agentid":1000002,"encrypt":"QUJD"}');
  // Only the envelope: goes on as received.
  assert.equal(envelopeOnly(parseCallbackBody(Buffer.from('<xml><ToUserName>gh_1</ToUserName><Encrypt>QUJD</Encrypt></xml>'), 'xml'), 'xml', 'wechat'), undefined);
  // A ToUserName that could break out of CDATA is dropped, never copied.
  const odd = parseCallbackBody(Buffer.from('<xml><ToUserName>a]]&gt;b</ToUserName><MsgType>text</MsgType><Encrypt>QUJD</Encrypt></xml>'), 'xml');
  assert.equal(envelopeOnly(odd, 'xml', 'wechat')?.toString(), '<xml><Encrypt><![CDATA[QUJD]]></Encrypt></xml>');
});

test("WeCom's lower-case JSON envelope is read, both spellings at once are refused", () => {
  assert.deepEqual(extractEncrypt({ tousername: 'ww1', encrypt: 'QUJD', agentid: 1 }, 'json'), { encrypt: 'QUJD', casing: 'lower' });
  assert.throws(() => extractEncrypt({ Encrypt: 'QUJD', encrypt: 'REVG' }, 'json'), (err: Error & { detail?: string }) => /both Encrypt and encrypt/.test(err.detail ?? ''));
  // XML is case-sensitive and WeCom's XML uses Encrypt: a lower-case XML element is no ciphertext.
  assert.throws(() => extractEncrypt({ encrypt: 'QUJD' }, 'xml'), (err: Error & { detail?: string }) => /no single non-empty Encrypt/.test(err.detail ?? ''));
});

test('WeCom pushes (msg_signature alone) decrypt with the corp id and are sealed in their own format', async () => {
  const plain = '{"msgtype":"text","text":{"content":"hi"}}';
  const json = wecomPush((e) => JSON.stringify({ tousername: corp.appid, encrypt: e, agentid: 1000002 }), plain, 'application/json');
  const f = forwarded(await guard(corp, true).check(json));
  assert.equal(f.body.toString(), plain);
  assert.equal(f.query, 'timestamp=1714036504&nonce=1372623149');
  const reply = JSON.parse(f.sealReply!({ status: 200, contentType: 'application/json', body: Buffer.from('{"a":1}') }).body.toString()) as Record<string, unknown>;
  assert.deepEqual(Object.keys(reply), ['encrypt', 'msgsignature', 'timestamp', 'nonce']);
  assert.equal(new WechatMsgCrypto(corp.encodingAesKey, corp.appid).decrypt(reply.encrypt as string), '{"a":1}');

  const pushed = textMessage();
  const xml = wecomPush((e) => `<xml><ToUserName><![CDATA[${corp.appid}]]></ToUserName><Encrypt><![CDATA[${e}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>`, pushed, 'text/xml');
  assert.equal(forwarded(await guard(corp, true).check(xml)).body.toString(), pushed);
  // Encrypted for another corp: refused after decryption.
  refused(await guard({ ...corp, appid: 'ww0000000000000000' }, true).check(wecomPush((e) => JSON.stringify({ encrypt: e }), plain, 'application/json')), 'appid_mismatch');
});

test('Pay: the resource type follows what the tag authenticated: JSON, text, bytes, empty', () => {
  const key = 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6';
  const open = (plain: string) => decryptPayResource(Buffer.from(key), encryptPayResource(key, plain));
  assert.equal(open('{"a":1}').contentType, 'application/json; charset=utf-8');
  assert.equal(open('-----BEGIN CERTIFICATE-----\n').contentType, 'text/plain; charset=utf-8');
  const empty = open('');
  assert.equal(empty.plain.length, 0);
  const bytes = encryptPayResource(key, '');
  const c = createCipheriv('aes-256-gcm', Buffer.from(key), Buffer.from(bytes.nonce!));
  c.setAAD(Buffer.from('transaction'));
  const data = Buffer.concat([c.update(Buffer.from([0xff, 0xfe])), c.final(), c.getAuthTag()]);
  assert.equal(decryptPayResource(Buffer.from(key), { ...bytes, ciphertext: data.toString('base64') }).contentType, 'application/octet-stream');
  assert.throws(() => decryptPayResource(Buffer.from(key), { ...bytes, ciphertext: data.subarray(0, 15).toString('base64') }), (err: Error & { detail?: string }) => /shorter than its tag/.test(err.detail ?? ''));
});

test("Pay's FAIL answer carries the gateway's error object unchanged", () => {
  const body = JSON.parse(payFailBody(errorBody('signature_invalid', 'req-1'), 'no')) as Record<string, unknown>;
  assert.equal(body.code, 'FAIL');
  assert.equal(body.message, 'no');
  assert.deepEqual(body.error, JSON.parse(errorBody('signature_invalid', 'req-1')).error);
});
