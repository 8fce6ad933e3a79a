// Signed callbacks as the backend receives them: a DOCTYPE inside the decrypted message is refused
// like one outside it (a backend's XML parser would expand its entities), and a callback the
// gateway refuses never uses up its nonce, so WeChat's genuine retry is still delivered; a replay
// is answered from the store and a distinct message sharing the nonce is delivered.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_KINDS } from '../helpers/backends.js';
import { safePush, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';
import { assertRefused, startStand, WX_AES_KEY, WX_APPID, WX_TOKEN, type Stand } from './setup.js';
import type { WireAnswer } from './wire.js';

const account: WechatAccount = { appid: WX_APPID, token: WX_TOKEN, encodingAesKey: WX_AES_KEY };
const DOCTYPE_MESSAGE =
  '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName>' +
  '<FromUserName><![CDATA[oABCDEFG0123456789]]></FromUserName><CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType>' +
  '<Content>&xxe;</Content><MsgId>24571234567890123</MsgId></xml>';

function push(s: Stand, message: string, nonce: string): Promise<WireAnswer> {
  return sendPush(s, safePush(account, message, { nonce }));
}

function sendPush(s: Stand, req: ReturnType<typeof safePush>): Promise<WireAnswer> {
  return s.send({ method: 'POST', target: `/wx/safe?${req.query.toString()}`, headers: [['Content-Type', 'text/xml']], body: req.body.toString('utf8') });
}

for (const kind of BACKEND_KINDS) {
  describe(`callbacks: ${kind}`, () => {
    let s: Stand;
    before(async () => {
      s = await startStand(kind);
    });
    after(() => s?.close());

    test('a DOCTYPE inside the decrypted message is refused and never delivered', async () => {
      const seen = await s.during(async () => {
        assertRefused(await push(s, DOCTYPE_MESSAGE, String(Date.now())), 400, 'callback_malformed');
      });
      assert.deepEqual(seen.map((r) => r.body), []);
    });

    test("a refused callback does not use up its nonce: the genuine message with it is delivered", async () => {
      const nonce = `${Date.now()}7`;
      await push(s, DOCTYPE_MESSAGE, nonce);
      const seen = await s.during(async () => {
        const res = await push(s, textMessage(), nonce);
        assert.equal(res.status, 200, res.text);
      });
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.callback_verified, 'decrypted');
    });

    test('allowed traffic still works: a genuine encrypted push is delivered decrypted once, its replay answered the same', async () => {
      const nonce = `${Date.now()}3`;
      const genuine = safePush(account, textMessage(), { nonce });
      const seen = await s.during(async () => {
        const res = await sendPush(s, genuine);
        assert.equal(res.status, 200, res.text);
        const again = await sendPush(s, genuine);
        assert.equal(again.status, res.status);
        assert.equal(again.text, res.text);
      });
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.callback_verified, 'decrypted');
      assert.match(seen[0]!.body, /<MsgType><!\[CDATA\[text\]\]><\/MsgType>/);
    });

    test('another message signed with the same nonce is delivered too', async () => {
      const nonce = `${Date.now()}5`;
      const seen = await s.during(async () => {
        for (let i = 0; i < 2; i++) assert.equal((await push(s, textMessage(), nonce)).status, 200);
      });
      assert.equal(seen.length, 2);
    });
  });
}
