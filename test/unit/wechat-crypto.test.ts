// Published vectors of WeChat's message-push signatures and safe-mode encryption, each with its
// source, checked in both directions; then the failure modes of decryption.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { safeEqualHex, wechatSignature } from '../../gateway/wechat/signature.js';
import { WechatMsgCrypto } from '../../gateway/wechat/msg-crypto.js';
import { CallbackError } from '../../gateway/wechat/callback-error.js';

function rejectsWith(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => err instanceof CallbackError && err.reason === reason);
}

// Official URL-verification example: https://developers.weixin.qq.com/miniprogram/dev/framework/server-ability/message-push.md
// (Token "AAAAA", echostr 4375120948345356249).
test('the official URL-verification example signature', () => {
  assert.equal(wechatSignature(['AAAAA', '1714036504', '1514711492']), 'f464b24fc39322e44b38aa78f5edd27bd1441696');
  // Order of the parts does not matter: they are sorted.
  assert.equal(wechatSignature(['1514711492', 'AAAAA', '1714036504']), 'f464b24fc39322e44b38aa78f5edd27bd1441696');
});

// Official plain-mode JSON push example: https://developers.weixin.qq.com/doc/subscription/guide/dev/push/encryption.md
// ("消息解密方式为明文模式", Token "AAAAA").
test('the official plain-mode push example signature', () => {
  assert.equal(wechatSignature(['AAAAA', '1714037059', '486452656']), '899cf89e464efb63f54ddac96b0a0a235f53aa78');
});

// Official sample code WXBizMsgCrypt (Sample.py of https://wximg.gtimg.com/shake_tv/mpwiki/cryptoDemo.zip),
// as copied verbatim in charlesXu86/Chatbot_CN Chatbot_Web/impl/weixin/Sample.py.
const OFFICIAL = {
  token: 'spamtest',
  encodingAesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  appid: 'wx2c2769f8efd9abc2',
  timestamp: '1409735669',
  nonce: '1320562132',
  msgSignature: '5d197aaffba7e9b25a30732f161a50dee96bd5fa',
  encrypt:
    'hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=',
};

test('the official sample: msg_signature and decryption', () => {
  const o = OFFICIAL;
  assert.equal(wechatSignature([o.token, o.timestamp, o.nonce, o.encrypt]), o.msgSignature);
  const message = new WechatMsgCrypto(o.encodingAesKey, o.appid).decrypt(o.encrypt);
  // The sample prints the plaintext rather than asserting it; these are the fields it shows.
  assert.match(message, /^<xml><ToUserName><!\[CDATA\[gh_10f6c3c3ac5a\]\]><\/ToUserName>/);
  assert.match(message, /<Content><!\[CDATA\[abcdteT\]\]><\/Content>/);
  assert.match(message, /<MsgId>6054768590064713728<\/MsgId>\n<\/xml>$/);
});

// wechatpy tests/test_crypto.py (wechatpy/wechatpy), token "123456", corp id wx49f0ab532d5d035a.
const WECHATPY = { token: '123456', encodingAesKey: 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR', appid: 'wx49f0ab532d5d035a' };

test('wechatpy test_decrypt_message: msg_signature and decryption', () => {
  const encrypt =
    'RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=';
  assert.equal(wechatSignature([WECHATPY.token, '1411525903', '461056294', encrypt]), '74d92dfeb87ba7c714f89d98870ae5eb62dff26d');
  const message = new WechatMsgCrypto(WECHATPY.encodingAesKey, WECHATPY.appid).decrypt(encrypt);
  assert.match(message, /<Content><!\[CDATA\[test\]\]><\/Content>/);
  assert.match(message, /<FromUserName><!\[CDATA\[messense\]\]><\/FromUserName>/);
});

test('wechatpy test_encrypt_message: our encryption with their fixed random reproduces their envelope', () => {
  const reply =
    '<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n' +
    '<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n' +
    '<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>';
  const expected =
    '9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3';
  const crypto = new WechatMsgCrypto(WECHATPY.encodingAesKey, WECHATPY.appid);
  const encrypt = crypto.encrypt(reply, Buffer.from('1234567890123456'));
  assert.equal(encrypt, expected);
  assert.equal(wechatSignature([WECHATPY.token, '1411525903', '461056294', encrypt]), '407518b7649e86ef23978113f92d27afa9296533');
  assert.equal(crypto.decrypt(encrypt), reply);
});

test('wechatpy test_check_signature: the encrypted echostr of WeCom-style URL verification', () => {
  const echostr = '4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==';
  assert.equal(wechatSignature([WECHATPY.token, '1411443780', '437374425', echostr]), 'dd6b9c95b495b3f7e2901bfbc76c664930ffdb96');
  // test_check_signature_should_fail: one digit of the nonce changed.
  assert.notEqual(wechatSignature([WECHATPY.token, '1411443780', '437374424', echostr]), 'dd6b9c95b495b3f7e2901bfbc76c664930ffdb96');
  assert.match(new WechatMsgCrypto(WECHATPY.encodingAesKey, WECHATPY.appid).decrypt(echostr), /^\d+$/);
});

// WxJava weixin-java-common/src/test/java/me/chanjar/weixin/common/util/crypto/WxCryptUtilTest.java
// (chanjarster/weixin-java-tools), the vectors of the official Java sample's test.
test('WxJava testAesEncrypt / testAesEncrypt2: fixed random, UTF-8 message, both directions', () => {
  const crypto = new WechatMsgCrypto('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', 'wxb11529c136998cb6');
  const random = Buffer.from('aaaabbbbccccdddd');
  const short = '我是中文abcd123';
  const shortCipher = 'jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==';
  assert.equal(crypto.encrypt(short, random), shortCipher);
  assert.equal(crypto.decrypt(shortCipher), short);

  const long =
    '<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>';
  const longCipher =
    'jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb';
  assert.equal(crypto.encrypt(long, random), longCipher);
  assert.equal(crypto.decrypt(longCipher), long);
});

test('encrypt then decrypt with random bytes, for messages across padding boundaries', () => {
  const crypto = new WechatMsgCrypto('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', 'wxb11529c136998cb6');
  const seen = new Set<string>();
  for (let n = 0; n <= 70; n++) {
    const message = 'é'.repeat(n % 3) + 'x'.repeat(n);
    const c = crypto.encrypt(message);
    assert.equal(Buffer.from(c, 'base64').length % 32, 0);
    assert.equal(crypto.decrypt(c), message);
    seen.add(c);
  }
  assert.equal(seen.size, 71);
});

test('safeEqualHex: equal, unequal, other length, case', () => {
  assert.equal(safeEqualHex('5d197aaffba7e9b25a30732f161a50dee96bd5fa', '5D197AAFFBA7E9B25A30732F161A50DEE96BD5FA'), true);
  assert.equal(safeEqualHex('5d197aaffba7e9b25a30732f161a50dee96bd5fa', '5d197aaffba7e9b25a30732f161a50dee96bd5fb'), false);
  assert.equal(safeEqualHex('5d197aaffba7e9b25a30732f161a50dee96bd5fa', '5d197aaffba7e9b25a30732f161a50dee96bd5f'), false);
  assert.equal(safeEqualHex('5d197aaffba7e9b25a30732f161a50dee96bd5fa', ''), false);
});

const KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const AES_KEY = Buffer.from(KEY + '=', 'base64');

/** Raw AES-256-CBC with WeChat's key and IV and no padding of its own, to forge bad paddings. */
function rawEncrypt(plain: Buffer): string {
  const c = createCipheriv('aes-256-cbc', AES_KEY, AES_KEY.subarray(0, 16)).setAutoPadding(false);
  return Buffer.concat([c.update(plain), c.final()]).toString('base64');
}

function framed(message: string, appid: string): Buffer {
  const msg = Buffer.from(message);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(msg.length);
  return Buffer.concat([Buffer.alloc(16, 7), len, msg, Buffer.from(appid)]);
}

test('truncated or invalid padding is decrypt_failed', () => {
  const crypto = new WechatMsgCrypto(KEY, 'wxb11529c136998cb6');
  const good = Buffer.from(crypto.encrypt('hello, padding'), 'base64');
  // One 32-byte unit cut off the end: the new last block unpads to garbage.
  rejectsWith(() => crypto.decrypt(good.subarray(0, good.length - 32).toString('base64')), 'decrypt_failed');
  // 16 bytes cut off: not a whole number of 32-byte units.
  rejectsWith(() => crypto.decrypt(good.subarray(0, good.length - 16).toString('base64')), 'decrypt_failed');

  const body = framed('hi', 'wxb11529c136998cb6'); // 40 bytes: 24 bytes of padding to 64
  for (const pad of [
    Buffer.alloc(24, 0), // pad value 0
    Buffer.alloc(24, 33), // pad value above 32
    Buffer.concat([Buffer.alloc(23, 5), Buffer.from([24])]), // last byte says 24, the others disagree
  ]) {
    rejectsWith(() => crypto.decrypt(rawEncrypt(Buffer.concat([body, pad]))), 'decrypt_failed');
  }
  // The same framing with correct padding decrypts, so the failures above are the padding's.
  assert.equal(crypto.decrypt(rawEncrypt(Buffer.concat([body, Buffer.alloc(24, 24)]))), 'hi');
  // A whole block of padding (32 x 32) is valid PKCS#7 for 32-byte blocks.
  const exact = framed('x'.repeat(26), 'wxb11529c136998cb6'); // 64 bytes
  assert.equal(crypto.decrypt(rawEncrypt(Buffer.concat([exact, Buffer.alloc(32, 32)]))), 'x'.repeat(26));
});

test('a length field beyond the plaintext, non-base64 and empty input are decrypt_failed', () => {
  const crypto = new WechatMsgCrypto(KEY, 'wxb11529c136998cb6');
  const lying = framed('hi', 'wxb11529c136998cb6');
  lying.writeUInt32BE(1000, 16);
  rejectsWith(() => crypto.decrypt(rawEncrypt(Buffer.concat([lying, Buffer.alloc(24, 24)]))), 'decrypt_failed');
  rejectsWith(() => crypto.decrypt(''), 'decrypt_failed');
  rejectsWith(() => crypto.decrypt('not base64!'), 'decrypt_failed');
  rejectsWith(() => crypto.decrypt(crypto.encrypt('x').slice(0, -4) + '%%%%'), 'decrypt_failed');
});

test('a message for another appid is appid_mismatch', () => {
  const theirs = new WechatMsgCrypto(KEY, 'wx0000000000000000').encrypt('hello');
  rejectsWith(() => new WechatMsgCrypto(KEY, 'wxb11529c136998cb6').decrypt(theirs), 'appid_mismatch');
  // A prefix of the right appid is not the appid.
  const prefix = new WechatMsgCrypto(KEY, 'wxb11529c136998cb').encrypt('hello');
  rejectsWith(() => new WechatMsgCrypto(KEY, 'wxb11529c136998cb6').decrypt(prefix), 'appid_mismatch');
  // The official sample's ciphertext is for wx2c2769f8efd9abc2.
  rejectsWith(() => new WechatMsgCrypto(OFFICIAL.encodingAesKey, 'wxb11529c136998cb6').decrypt(OFFICIAL.encrypt), 'appid_mismatch');
});

test('an EncodingAESKey that is not 43 base64 characters is refused at construction', () => {
  assert.throws(() => new WechatMsgCrypto(KEY.slice(1), 'wx'), /43/);
  assert.throws(() => new WechatMsgCrypto(KEY + '=', 'wx'), /43/);
  assert.throws(() => new WechatMsgCrypto(KEY.slice(1) + '-', 'wx'), /43/);
});
