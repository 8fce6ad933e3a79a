// WeChat Pay API v3 as a client speaks it: the WECHATPAY2-SHA256-RSA2048 Authorization over
// "METHOD\nURL\ntimestamp\nnonce\nbody\n", and the platform certificates of /v3/certificates,
// each an AEAD_AES_256_GCM ciphertext under the APIv3 key. Answers are verified with
// verifyPaySignature (pay-notify.ts): the same "timestamp\nnonce\nbody\n" as notifications.
import { X509Certificate, createDecipheriv, createSign, randomBytes, type KeyObject } from 'node:crypto';

const ALPHANUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TAG = 16;

/** 32 letters and digits, as Pay's SDKs send; 62 does not divide 256, which costs nothing here. */
export function payNonce(): string {
  let out = '';
  for (const b of randomBytes(32)) out += ALPHANUM[b % ALPHANUM.length];
  return out;
}

export interface PayRequestToSign {
  mchid: string;
  /** Serial of the merchant API certificate. */
  serial: string;
  key: KeyObject;
  method: string;
  /** Absolute path and query exactly as sent to Pay, e.g. /v3/pay/transactions/id/4200?mchid=1. */
  url: string;
  /** Seconds since the epoch. */
  timestamp: number;
  nonce: string;
  body: Buffer;
}

/** The Authorization header value; Pay rejects a request whose signed URL or body differ by a byte. */
export function payAuthorization(r: PayRequestToSign): string {
  const signer = createSign('RSA-SHA256');
  signer.update(`${r.method}\n${r.url}\n${r.timestamp}\n${r.nonce}\n`, 'utf8');
  signer.update(r.body);
  signer.update('\n', 'utf8');
  const signature = signer.sign(r.key, 'base64');
  return `WECHATPAY2-SHA256-RSA2048 mchid="${r.mchid}",nonce_str="${r.nonce}",signature="${signature}",timestamp="${r.timestamp}",serial_no="${r.serial}"`;
}

export interface PlatformCertificate {
  /** Upper-case hex, as Wechatpay-Serial is compared. */
  serial: string;
  key: KeyObject;
  /** Epoch milliseconds after which the certificate is not used. */
  notAfter: number;
}

/** Why a /v3/certificates answer was not taken; says nothing of the key. */
export class CertificatesError extends Error {
  override readonly name = 'CertificatesError';
}

function aeadDecrypt(apiv3Key: Buffer, enc: Record<string, unknown>): Buffer {
  const { algorithm, ciphertext, nonce } = enc;
  const associated = enc.associated_data ?? '';
  if (algorithm !== 'AEAD_AES_256_GCM') throw new CertificatesError('a certificate is not encrypted with AEAD_AES_256_GCM');
  if (typeof ciphertext !== 'string' || !BASE64.test(ciphertext) || typeof nonce !== 'string' || nonce === '' || typeof associated !== 'string') {
    throw new CertificatesError('a certificate lacks its ciphertext, nonce or associated_data');
  }
  const data = Buffer.from(ciphertext, 'base64');
  if (data.length <= TAG) throw new CertificatesError('a certificate ciphertext is shorter than its tag');
  try {
    const decipher = createDecipheriv('aes-256-gcm', apiv3Key, Buffer.from(nonce, 'utf8'), { authTagLength: TAG });
    decipher.setAAD(Buffer.from(associated, 'utf8'));
    decipher.setAuthTag(data.subarray(data.length - TAG));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG)), decipher.final()]);
  } catch {
    throw new CertificatesError('a certificate does not authenticate under the APIv3 key');
  }
}

/**
 * The certificates of a /v3/certificates answer body, decrypted. The GCM tag under the APIv3 key
 * (which only Pay and the merchant hold) is what makes each one Pay's: the answer's own
 * signature, on first download, can only be checked with a key it brings itself.
 */
export function parsePlatformCertificates(body: Buffer, apiv3Key: Buffer, now: number): PlatformCertificate[] {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CertificatesError('the answer is not JSON');
  }
  const data = (value as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new CertificatesError('the answer has no data array');
  const out: PlatformCertificate[] = [];
  for (const item of data as unknown[]) {
    const entry = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const enc = entry.encrypt_certificate;
    if (typeof enc !== 'object' || enc === null) throw new CertificatesError('an entry has no encrypt_certificate');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(aeadDecrypt(apiv3Key, enc as Record<string, unknown>));
    } catch (err) {
      if (err instanceof CertificatesError) throw err;
      throw new CertificatesError('a decrypted certificate is not an X.509 certificate');
    }
    const serial = cert.serialNumber.toUpperCase();
    if (typeof entry.serial_no === 'string' && entry.serial_no.toUpperCase() !== serial) {
      throw new CertificatesError(`entry ${entry.serial_no} holds a certificate with serial ${serial}`);
    }
    if (cert.publicKey.asymmetricKeyType !== 'rsa') throw new CertificatesError(`certificate ${serial} has no RSA key`);
    const notAfter = Date.parse(cert.validTo);
    if (notAfter <= now) continue;
    out.push({ serial, key: cert.publicKey, notAfter });
  }
  return out;
}

/**
 * What Pay signs of a multipart upload (/v3/merchant/media/upload and the like): the `meta`
 * part's content, not the body. Undefined when the body has no such part.
 */
export function multipartMeta(body: Buffer, contentType: string): Buffer | undefined {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) return undefined;
  const next = Buffer.from(`\r\n--${boundary}`);
  // The first delimiter may open the body without the CRLF that precedes the others.
  let at = body.subarray(0, boundary.length + 2).equals(next.subarray(2)) ? 0 : body.indexOf(next);
  while (at >= 0) {
    const start = body.indexOf('\r\n', at + 2) + 2;
    if (start < 2 || body.subarray(at, start).toString('latin1').trimEnd().endsWith('--')) return undefined;
    const headersEnd = body.indexOf('\r\n\r\n', start);
    if (headersEnd < 0) return undefined;
    const end = body.indexOf(next, headersEnd + 4);
    if (end < 0) return undefined;
    const headers = body.subarray(start, headersEnd).toString('latin1');
    if (/^content-disposition:[^\r\n]*;\s*name="?meta"?(?:;|\s*$)/im.test(headers)) return body.subarray(headersEnd + 4, end);
    at = end;
  }
  return undefined;
}
