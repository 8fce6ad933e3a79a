// WeChat's documented decryptData sample, and encryptedData made the way WeChat makes it by an AES
// implementation apart from the gateway's (node-forge's, not OpenSSL's): no maintained npm package
// of WeChat's WXBizDataCrypt exists to use instead.
import assert from 'node:assert/strict';
import forge from 'node-forge';

/** The decryptData demo of WeChat's "开放数据校验与解密" documentation (WXBizDataCrypt samples). */
export const OFFICIAL = {
  appId: 'wx4f4bc4dec97d474b',
  sessionKey: 'tiihtNczf5v6AKRyjwEUhQ==',
  encryptedData:
    'CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==',
  iv: 'r7BXXKkLb8qrSNn05n0qiA==',
  openId: 'oGZUI0egBJY1zhBYw2KhdUfwVJJE',
  unionId: 'ocMvos6NjeKLIBqg5Mr9QjxrP1FA',
  timestamp: 1477314187,
};

/** encryptedData as WeChat makes it, by node-forge's AES (an implementation apart from the one under test). */
export function forgeEncrypt(sessionKey: string, iv: string, plaintext: string): string {
  const cipher = forge.cipher.createCipher('AES-CBC', forge.util.decode64(sessionKey));
  cipher.start({ iv: forge.util.decode64(iv) });
  cipher.update(forge.util.createBuffer(forge.util.encodeUtf8(plaintext)));
  assert.ok(cipher.finish());
  return forge.util.encode64(cipher.output.getBytes());
}

