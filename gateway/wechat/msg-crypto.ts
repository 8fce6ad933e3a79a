// The message-push encryption of WeChat's safe mode (WXBizMsgCrypt): AES-256-CBC with the key
// base64-decoded from EncodingAESKey + "=", IV = the key's first 16 bytes, PKCS#7 padding to
// 32-byte blocks, over 16 random bytes | 4-byte big-endian length | message | appid.
// Decryption only ever runs after msg_signature verified, so its failures are not an oracle for
// outsiders; it is still strict, because a message that does not unpad exactly is not one
// WeChat produced.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CallbackError } from './callback-error.js';

const BLOCK = 32;
// With the length a multiple of 4, the same language as groups of four with an `==` or `=`
// tail, without the nested groups that made V8 step through a 1 KB ciphertext four times over.
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

// A reply's 16 random bytes come from a pool filled 4 KB at a time: randomBytes(16) for each
// reply was a call into OpenSSL per reply, about a twentieth of a sealed callback's CPU.
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;
function random16(): Buffer {
  if (poolAt + 16 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  poolAt += 16;
  return pool.subarray(poolAt - 16, poolAt);
}

export class WechatMsgCrypto {
  private readonly key: Buffer;
  private readonly iv: Buffer;
  private readonly appid: Buffer;

  constructor(encodingAesKey: string, appid: string) {
    if (!/^[A-Za-z0-9+/]{43}$/.test(encodingAesKey)) {
      throw new Error('EncodingAESKey must be exactly 43 characters of base64 (a-z, A-Z, 0-9, +, /)');
    }
    this.key = Buffer.from(encodingAesKey + '=', 'base64');
    this.iv = this.key.subarray(0, 16);
    this.appid = Buffer.from(appid, 'utf8');
  }

  /** The message inside `encryptB64`; throws CallbackError decrypt_failed or appid_mismatch. */
  decrypt(encryptB64: string): string {
    // Buffer.from(.., 'base64') skips what it does not understand; a strict check first keeps
    // "what was signed" and "what was decrypted" the same bytes.
    if (encryptB64.length === 0 || encryptB64.length % 4 !== 0 || !BASE64.test(encryptB64)) {
      throw new CallbackError('decrypt_failed', 'Encrypt is not base64');
    }
    const data = Buffer.from(encryptB64, 'base64');
    if (data.length % BLOCK !== 0) {
      throw new CallbackError('decrypt_failed', `ciphertext length ${data.length} is not a multiple of ${BLOCK}`);
    }
    const decipher = createDecipheriv('aes-256-cbc', this.key, this.iv).setAutoPadding(false);
    // Without padding, update() returns every whole block and final() nothing: no copy to join them.
    const padded = decipher.update(data);
    decipher.final();
    const pad = padded[padded.length - 1]!;
    if (pad < 1 || pad > BLOCK) throw new CallbackError('decrypt_failed', 'invalid padding');
    for (let i = padded.length - pad; i < padded.length; i++) {
      if (padded[i] !== pad) throw new CallbackError('decrypt_failed', 'invalid padding');
    }
    const plain = padded.subarray(0, padded.length - pad);
    if (plain.length < 20) throw new CallbackError('decrypt_failed', 'plaintext too short');
    const length = plain.readUInt32BE(16);
    if (length > plain.length - 20) throw new CallbackError('decrypt_failed', 'message length exceeds plaintext');
    const appid = plain.subarray(20 + length);
    if (!appid.equals(this.appid)) throw new CallbackError('appid_mismatch', 'decrypted appid differs from the configured appid');
    try {
      return utf8.decode(plain.subarray(20, 20 + length));
    } catch {
      throw new CallbackError('decrypt_failed', 'message is not UTF-8');
    }
  }

  /** Base64 ciphertext of `message`; `random` is for reproducing published vectors only. */
  encrypt(message: string, random: Buffer = random16()): string {
    if (random.length !== 16) throw new Error('random16 must be 16 bytes');
    // Laid out in one buffer: random16 | length | message | appid | padding.
    const msgLength = Buffer.byteLength(message, 'utf8');
    const bodyLength = 20 + msgLength + this.appid.length;
    const pad = BLOCK - (bodyLength % BLOCK);
    const padded = Buffer.allocUnsafe(bodyLength + pad);
    random.copy(padded, 0);
    padded.writeUInt32BE(msgLength, 16);
    padded.write(message, 20, 'utf8');
    this.appid.copy(padded, 20 + msgLength);
    padded.fill(pad, bodyLength);
    const cipher = createCipheriv('aes-256-cbc', this.key, this.iv).setAutoPadding(false);
    const out = cipher.update(padded);
    cipher.final(); // without padding, update() already returned every block
    return out.toString('base64');
  }
}
