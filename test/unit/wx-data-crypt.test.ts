// The open-data crypto against WeChat's own documentation samples, and against an independent
// AES implementation (node-forge's, not OpenSSL's) for the cases the samples do not cover.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataCryptError, decryptOpenData, rawDataSigned } from '../../gateway/wechat/data-crypt.js';
import { OFFICIAL, forgeEncrypt } from '../helpers/open-data.js';

/** The rawData signature sample of the same documentation page. */
const SIGNED = {
  rawData:
    '{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}',
  sessionKey: 'HyVFkGl5F5OQWJZZaNzBBg==',
  signature: '75e81ceda165f4ffa64f4068af58c64b8f54b88c',
};

function failure(fn: () => unknown, kind: string): void {
  assert.throws(fn, (err: unknown) => err instanceof DataCryptError && err.failure === kind);
}

test("WeChat's documented decryptData sample decrypts to its documented user", () => {
  const { fields, watermark } = decryptOpenData(OFFICIAL.sessionKey, OFFICIAL.encryptedData, OFFICIAL.iv);
  assert.equal(fields.openId, OFFICIAL.openId);
  assert.equal(fields.unionId, OFFICIAL.unionId);
  assert.equal(fields.nickName, 'Band');
  assert.deepEqual(watermark, { appid: OFFICIAL.appId, timestamp: OFFICIAL.timestamp });
});

test("WeChat's documented rawData signature verifies; any change to data, key or signature does not", () => {
  assert.equal(rawDataSigned(SIGNED.rawData, SIGNED.sessionKey, SIGNED.signature), true);
  assert.equal(rawDataSigned(SIGNED.rawData, SIGNED.sessionKey, SIGNED.signature.toUpperCase()), true);
  assert.equal(rawDataSigned(SIGNED.rawData.replace('Band', 'Bond'), SIGNED.sessionKey, SIGNED.signature), false);
  assert.equal(rawDataSigned(SIGNED.rawData, OFFICIAL.sessionKey, SIGNED.signature), false);
  assert.equal(rawDataSigned(SIGNED.rawData, SIGNED.sessionKey, SIGNED.signature.replace(/.$/, '0')), false);
  for (const bad of ['', SIGNED.signature.slice(0, 39), `${SIGNED.signature}0`, 'z'.repeat(40)]) {
    assert.equal(rawDataSigned(SIGNED.rawData, SIGNED.sessionKey, bad), false, bad);
  }
});

test('data encrypted by another AES implementation decrypts, unicode and all', () => {
  const key = Buffer.from('0123456789abcdef').toString('base64');
  const iv = Buffer.from('fedcba9876543210').toString('base64');
  for (const plain of [
    { phoneNumber: '13800138000', purePhoneNumber: '13800138000', countryCode: '86', watermark: { appid: 'wxapp', timestamp: 1 } },
    { nickName: '微信用户 🐼', watermark: { appid: 'wxapp', timestamp: 2 } },
    // exactly one block of padding: the plaintext fills whole blocks
    { a: 'x'.repeat(16 - '{"a":""}'.length + 16) },
  ]) {
    const text = JSON.stringify(plain);
    assert.deepEqual(decryptOpenData(key, forgeEncrypt(key, iv, text), iv).fields, plain);
  }
});

test('what is not WeChat encrypted data is refused with the failure named', () => {
  const good = OFFICIAL;
  failure(() => decryptOpenData('not base64!', good.encryptedData, good.iv), 'key_invalid');
  failure(() => decryptOpenData(Buffer.alloc(24).toString('base64'), good.encryptedData, good.iv), 'key_invalid');
  failure(() => decryptOpenData(good.sessionKey, good.encryptedData, Buffer.alloc(8).toString('base64')), 'iv_invalid');
  failure(() => decryptOpenData(good.sessionKey, good.encryptedData.slice(0, -4), good.iv), 'data_invalid');
  failure(() => decryptOpenData(good.sessionKey, '', good.iv), 'data_invalid');
  // Another user's session_key: the padding (or the JSON) gives it away.
  assert.throws(
    () => decryptOpenData(SIGNED.sessionKey, good.encryptedData, good.iv),
    (err: unknown) => err instanceof DataCryptError && (err.failure === 'decrypt_failed' || err.failure === 'not_json'),
  );
  // A wrong iv garbles the first block only: the padding holds, the JSON does not.
  failure(() => decryptOpenData(good.sessionKey, good.encryptedData, Buffer.from('0123456789abcdef').toString('base64')), 'not_json');
  const key = Buffer.from('0123456789abcdef').toString('base64');
  failure(() => decryptOpenData(key, forgeEncrypt(key, key, '[1,2]'), key), 'not_json');
  // No watermark, or one of the wrong shape: decrypted, but with nothing to check it by.
  assert.equal(decryptOpenData(key, forgeEncrypt(key, key, '{"watermark":{"appid":1}}'), key).watermark, undefined);
});
