// The mini-program's open data (wx.getUserProfile, wx.getPhoneNumber's old form, wx.getWeRunData,
// share tickets): `encryptedData` is AES-128-CBC with PKCS#7 padding under the user's session_key,
// all three values base64; `rawData` + `signature` is sha1(rawData + session_key) in hex. Protocol
// only: what a failure means for the request is the caller's to say.
import { createDecipheriv, createHash, timingSafeEqual } from 'node:crypto';

export type DataCryptFailure = 'key_invalid' | 'iv_invalid' | 'data_invalid' | 'decrypt_failed' | 'not_json';

export class DataCryptError extends Error {
  readonly failure: DataCryptFailure;
  constructor(failure: DataCryptFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataCryptError';
    this.failure = failure;
  }
}

/** Standard base64 with its padding, as WeChat sends it; anything else is not WeChat's. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decoded(value: string, what: DataCryptFailure, name: string): Buffer {
  if (!BASE64.test(value)) throw new DataCryptError(what, `${name} is not base64`);
  return Buffer.from(value, 'base64');
}

/** The watermark every decrypted object carries: which app it was made for, and when (epoch seconds). */
export interface Watermark {
  appid: string;
  timestamp: number;
}

export interface OpenData {
  /** The decrypted JSON object, watermark included. */
  fields: Record<string, unknown>;
  /** Undefined when the object has none, or one of the wrong shape. */
  watermark: Watermark | undefined;
}

/** Decrypts and parses one `encryptedData`; rejects with DataCryptError. */
export function decryptOpenData(sessionKey: string, encryptedData: string, iv: string): OpenData {
  const key = decoded(sessionKey, 'key_invalid', 'session_key');
  if (key.length !== 16) throw new DataCryptError('key_invalid', `session_key is ${key.length} bytes, not 16`);
  const ivBytes = decoded(iv, 'iv_invalid', 'iv');
  if (ivBytes.length !== 16) throw new DataCryptError('iv_invalid', `iv is ${ivBytes.length} bytes, not 16`);
  const data = decoded(encryptedData, 'data_invalid', 'encryptedData');
  if (data.length === 0 || data.length % 16 !== 0) throw new DataCryptError('data_invalid', 'encryptedData is not a whole number of AES blocks');
  let plain: Buffer;
  try {
    // OpenSSL checks the PKCS#7 padding on final(): a wrong key or iv fails here, almost always.
    const decipher = createDecipheriv('aes-128-cbc', key, ivBytes);
    plain = Buffer.concat([decipher.update(data), decipher.final()]);
  } catch (err) {
    throw new DataCryptError('decrypt_failed', 'encryptedData does not decrypt under this session_key and iv', { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(plain.toString('utf8'));
  } catch (err) {
    // A wrong iv garbles only the first block and may leave valid padding: the JSON catches it.
    throw new DataCryptError('not_json', 'the decrypted data is not JSON', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new DataCryptError('not_json', 'the decrypted data is not a JSON object');
  const fields = parsed as Record<string, unknown>;
  const w = fields.watermark;
  const watermark =
    typeof w === 'object' && w !== null && typeof (w as Watermark).appid === 'string' && Number.isFinite((w as Watermark).timestamp)
      ? { appid: (w as Watermark).appid, timestamp: (w as Watermark).timestamp }
      : undefined;
  return { fields, watermark };
}

/** Whether `signature` is sha1(rawData + sessionKey) in hex (either case), compared in constant time. */
export function rawDataSigned(rawData: string, sessionKey: string, signature: string): boolean {
  const expected = createHash('sha1').update(rawData + sessionKey, 'utf8').digest();
  if (!/^[0-9a-fA-F]{40}$/.test(signature)) return false;
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}
