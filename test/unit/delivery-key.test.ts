// delivery: async in pieces: the idempotency and order keys read from what WeChat sends, the
// backoff between attempts, and the policy's delivery keys as the loader reads and checks them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { payKeys, pushKeys } from '../../gateway/wechat/delivery-key.js';
import { WechatMsgCrypto } from '../../gateway/wechat/msg-crypto.js';
import { backoffMs } from '../../gateway/delivery/worker.js';
import { accept, edit, reject } from '../fixtures/policy/harness.js';
import { randomEncodingAesKey } from '../helpers/wechat-callback.js';

const xml = (fields: string): Buffer => Buffer.from(`<xml><ToUserName><![CDATA[gh_1]]></ToUserName>${fields}</xml>`);

test('a push is keyed by its MsgId, an event by a hash of who, when and what, in order per user', () => {
  const msg = pushKeys(xml('<FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1</CreateTime><MsgId>24571234567890123</MsgId>'), 'text/xml');
  assert.equal(msg.key, '24571234567890123');
  const ev = (event: string, from = 'oUser') => pushKeys(xml(`<FromUserName><![CDATA[${from}]]></FromUserName><CreateTime>1714037059</CreateTime><Event><![CDATA[${event}]]></Event>`), undefined);
  assert.match(ev('subscribe').key, /^evt-[0-9a-f]{32}$/);
  assert.equal(ev('subscribe').key, ev('subscribe').key);
  assert.notEqual(ev('subscribe').key, ev('unsubscribe').key);
  assert.notEqual(ev('subscribe').key, ev('subscribe', 'oOther').key);
  // One user, one order key; never the openid itself.
  assert.equal(msg.order, ev('subscribe').order);
  assert.doesNotMatch(msg.order + ev('x').key, /oUser/);
});

test('a JSON push keeps a 64-bit MsgId exact; a body with nothing to read is keyed by its hash', () => {
  const json = Buffer.from('{"ToUserName":"gh_1","FromUserName":"oUser","CreateTime":1,"MsgType":"text","Content":"hi","MsgId":24571234567890123}');
  assert.equal(pushKeys(json, 'application/json').key, '24571234567890123');
  const odd = pushKeys(Buffer.from('<xml><Foo>1</Foo></xml>'), 'text/xml');
  assert.match(odd.key, /^body-[0-9a-f]{32}$/);
  assert.equal(odd.order, odd.key);
});

test('a safe-mode push forwarded encrypted is keyed by the MsgId inside it', () => {
  const crypto = new WechatMsgCrypto(randomEncodingAesKey(), 'wx1234567890abcdef');
  const inner = '<xml><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1</CreateTime><MsgId>42</MsgId></xml>';
  const body = xml(`<Encrypt><![CDATA[${crypto.encrypt(inner)}]]></Encrypt>`);
  assert.equal(pushKeys(body, 'text/xml', (e) => crypto.decrypt(e)).key, '42');
  assert.match(pushKeys(body, 'text/xml').key, /^body-/);
});

test('a Pay notification is keyed by its id, in order per payer when decrypted', () => {
  assert.equal(payKeys(Buffer.from('{"id":"EV-1","resource":{}}'), undefined).key, 'EV-1');
  const decrypted = payKeys(Buffer.from('{"payer":{"openid":"oPayer"},"out_trade_no":"1"}'), 'EV-2');
  assert.equal(decrypted.key, 'EV-2');
  assert.match(decrypted.order, /^u-[0-9a-f]{24}$/);
  assert.equal(payKeys(Buffer.from('{"id":"EV-3"}'), undefined).order, 'EV-3');
});

test('backoff doubles per failed attempt up to max_backoff, jittered within its second half', () => {
  const retry = { attempts: 8, backoff: 1000, max_backoff: 10_000 };
  assert.equal(backoffMs(retry, 1, () => 0), 500);
  assert.equal(backoffMs(retry, 1, () => 0.999999), 1000);
  assert.equal(backoffMs(retry, 3, () => 0.999999), 4000);
  assert.equal(backoffMs(retry, 9, () => 0.999999), 10_000);
  assert.equal(backoffMs(retry, 100, () => 0), 5000);
});

// BASE line 27 is the pay route's `upstream: billing`; line 28 `defaults: { allow: any }`.
const WECHAT = 'wechat: { appid: wx5823bf96d3bd56c7, token: wxgwToken123 }\nupstreams:';

test('delivery: async compiles with its retry and dedupe window; sync is the default', async () => {
  const text = edit({ 17: WECHAT, 27: '    upstream: billing\n    wechat_callback: { delivery: async, retry: { attempts: 3, backoff: 50ms } }' });
  const { config, warnings } = await accept(text);
  const route = config.routes.find((r) => r.name === 'pay')!;
  assert.deepEqual(route.wechat_callback!.async, { retry: { attempts: 3, backoff: 50, max_backoff: 300_000 }, dedupe_window: 3_600_000 });
  assert.ok(warnings.some((w) => w.path === 'routes[1].wechat_callback.delivery' && w.message.includes("queues in this process's memory")));
  const sync = await accept(edit({ 17: WECHAT, 27: '    upstream: billing\n    wechat_callback: {}' }));
  assert.equal(sync.config.routes.find((r) => r.name === 'pay')!.wechat_callback!.async, undefined);
});

test('delivery: async is refused with the callback in report mode, and bad durations name their key', async () => {
  const diags = await reject(edit({ 17: WECHAT, 27: '    upstream: billing\n    report: [callback]\n    wechat_callback: { delivery: async, dedupe_window: 5 }' }));
  assert.ok(diags.some((d) => d.path === 'routes[1].wechat_callback.delivery' && d.message.includes('report')), JSON.stringify(diags));
  assert.ok(diags.some((d) => d.path === 'routes[1].wechat_callback.dedupe_window'), JSON.stringify(diags));
});
