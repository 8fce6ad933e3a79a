// WeChat Pay API v3 notifications: SHA256withRSA over "timestamp\nnonce\nbody\n" with the key
// named by Wechatpay-Serial (a platform certificate serial or a PUB_KEY_ID_ public-key id), and
// an AEAD_AES_256_GCM `resource` under the APIv3 key. The signature covers the body bytes as
// received, so they are fed to the verifier untouched and never re-serialised.
import { createDecipheriv, createPublicKey, createVerify, type KeyObject } from 'node:crypto';
import type { WechatPayKey } from '../types/policy.js';
import { CallbackError } from './callback-error.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TAG = 16;

/** Verification keys by upper-cased serial: certificate serials are hex, whose case varies. */
export function compilePayKeys(keys: readonly WechatPayKey[]): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  for (const k of keys) {
    const key = createPublicKey(k.public_key_pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`WeChat Pay key ${k.serial} (${k.file}) is not an RSA key`);
    out.set(k.serial.toUpperCase(), key);
  }
  return out;
}

export function verifyPaySignature(key: KeyObject, timestamp: string, nonce: string, body: Buffer, signatureB64: string): boolean {
  if (!BASE64.test(signatureB64)) return false;
  const verifier = createVerify('RSA-SHA256');
  verifier.update(`${timestamp}\n${nonce}\n`, 'utf8');
  verifier.update(body);
  verifier.update('\n', 'utf8');
  return verifier.verify(key, Buffer.from(signatureB64, 'base64'));
}

export interface PayNotification {
  /** Envelope fields worth passing on: the decrypted resource alone does not say what happened. */
  id?: string;
  event_type?: string;
  resource: Record<string, unknown>;
}

/** The notification envelope; throws callback_malformed when the body is not one. */
export function parsePayNotification(body: Buffer): PayNotification {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CallbackError('callback_malformed', 'notification body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CallbackError('callback_malformed', 'notification body is not a JSON object');
  }
  const v = value as Record<string, unknown>;
  const resource = v.resource;
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    throw new CallbackError('callback_malformed', 'notification has no resource object');
  }
  return {
    ...(typeof v.id === 'string' ? { id: v.id } : {}),
    ...(typeof v.event_type === 'string' ? { event_type: v.event_type } : {}),
    resource: resource as Record<string, unknown>,
  };
}

/** A decrypted resource and the media type it goes upstream with. */
export interface PayPlaintext {
  plain: Buffer;
  contentType: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The plaintext of `resource`; throws decrypt_failed. `apiv3Key` is 32 bytes. The GCM tag is what
 * authenticates it, so any plaintext it covers is passed on: JSON (a transaction) as JSON, other
 * text (a platform certificate's PEM, a plain message) as text/plain, anything else as bytes. A
 * ciphertext of exactly the tag is an empty plaintext, authenticated like any other.
 */
export function decryptPayResource(apiv3Key: Buffer, resource: Record<string, unknown>): PayPlaintext {
  const { algorithm, ciphertext, nonce } = resource;
  const associated = resource.associated_data ?? '';
  if (algorithm !== 'AEAD_AES_256_GCM') throw new CallbackError('decrypt_failed', 'resource algorithm is not AEAD_AES_256_GCM');
  if (typeof ciphertext !== 'string' || typeof nonce !== 'string' || typeof associated !== 'string' || nonce.length === 0) {
    throw new CallbackError('decrypt_failed', 'resource lacks ciphertext, nonce or associated_data strings');
  }
  if (!BASE64.test(ciphertext)) throw new CallbackError('decrypt_failed', 'resource ciphertext is not base64');
  const data = Buffer.from(ciphertext, 'base64');
  if (data.length < TAG) throw new CallbackError('decrypt_failed', 'resource ciphertext is shorter than its tag');
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', apiv3Key, Buffer.from(nonce, 'utf8'), { authTagLength: TAG });
    decipher.setAAD(Buffer.from(associated, 'utf8'));
    decipher.setAuthTag(data.subarray(data.length - TAG));
    plain = Buffer.concat([decipher.update(data.subarray(0, data.length - TAG)), decipher.final()]);
  } catch {
    throw new CallbackError('decrypt_failed', 'resource does not authenticate under the APIv3 key');
  }
  return { plain, contentType: mediaType(plain) };
}

function mediaType(plain: Buffer): string {
  let text: string;
  try {
    text = utf8.decode(plain);
  } catch {
    return 'application/octet-stream';
  }
  try {
    JSON.parse(text);
    return 'application/json; charset=utf-8';
  } catch {
    return 'text/plain; charset=utf-8';
  }
}

/**
 * A refusal in WeChat Pay's answer format, `{"code":"FAIL","message":…}`, with the gateway's own
 * error object beside it so the stable reason and request id read as on every other route.
 */
export function payFailBody(errorBody: string, message: string): string {
  return JSON.stringify({ code: 'FAIL', message, ...(JSON.parse(errorBody) as Record<string, unknown>) });
}
