// Builds correctly signed WeChat message pushes and WeChat Pay notifications, the way WeChat's
// servers would, for unit and integration tests of the callback guards.
import { createCipheriv, createSign, randomBytes, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CallbackRequest } from '../../gateway/guards/callback-types.js';
import { WechatMsgCrypto } from '../../gateway/wechat/msg-crypto.js';
import { wechatSignature } from '../../gateway/wechat/signature.js';

export interface WechatAccount {
  appid: string;
  token: string;
  encodingAesKey: string;
}

/** A random 43-character EncodingAESKey, as the WeChat console generates them. */
export function randomEncodingAesKey(): string {
  return randomBytes(32).toString('base64').slice(0, 43);
}

export interface PushOptions {
  /** Seconds since the epoch (default: now). */
  timestamp?: number;
  nonce?: string;
}

function stamp(o: PushOptions): { timestamp: string; nonce: string } {
  return {
    timestamp: String(o.timestamp ?? Math.floor(Date.now() / 1000)),
    nonce: o.nonce ?? String(100_000_000 + Math.floor(Math.random() * 900_000_000)),
  };
}

/** GET ?signature&timestamp&nonce&echostr. */
export function urlVerification(a: WechatAccount, echostr: string, o: PushOptions = {}): CallbackRequest {
  const { timestamp, nonce } = stamp(o);
  const signature = wechatSignature([a.token, timestamp, nonce]);
  return { method: 'GET', query: new URLSearchParams({ signature, timestamp, nonce, echostr }), headers: {}, body: Buffer.alloc(0) };
}

/** A plain-mode POST of `body`. */
export function plainPush(a: WechatAccount, body: string, o: PushOptions & { contentType?: string } = {}): CallbackRequest {
  const { timestamp, nonce } = stamp(o);
  const signature = wechatSignature([a.token, timestamp, nonce]);
  return {
    method: 'POST',
    query: new URLSearchParams({ signature, timestamp, nonce }),
    headers: { 'content-type': o.contentType ?? 'text/xml' },
    body: Buffer.from(body, 'utf8'),
  };
}

/** A safe-mode POST carrying `message` encrypted, in an XML or JSON envelope. */
export function safePush(
  a: WechatAccount,
  message: string,
  o: PushOptions & { format?: 'xml' | 'json'; encrypt?: string; appid?: string } = {},
): CallbackRequest {
  const { timestamp, nonce } = stamp(o);
  const encrypt = o.encrypt ?? new WechatMsgCrypto(a.encodingAesKey, o.appid ?? a.appid).encrypt(message);
  const msgSignature = wechatSignature([a.token, timestamp, nonce, encrypt]);
  const json = o.format === 'json';
  const body = json
    ? JSON.stringify({ ToUserName: 'gh_0123456789ab', Encrypt: encrypt })
    : `<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt></xml>`;
  return {
    method: 'POST',
    query: new URLSearchParams({
      signature: wechatSignature([a.token, timestamp, nonce]),
      timestamp,
      nonce,
      openid: 'oABCDEFG0123456789',
      encrypt_type: 'aes',
      msg_signature: msgSignature,
    }),
    headers: { 'content-type': json ? 'application/json' : 'text/xml' },
    body: Buffer.from(body, 'utf8'),
  };
}

/** A MsgId of WeChat's size (17 digits, past 2^53), different on every call: each message is a new one. */
export function newMsgId(): string {
  return (2n * 10n ** 16n + BigInt(`0x${randomBytes(6).toString('hex')}`)).toString();
}

/** A text message push as WeChat sends it, padded with `Content` to about `size` bytes; a new MsgId unless given. */
export function textMessage(size = 0, msgId = newMsgId()): string {
  const head =
    '<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[oABCDEFG0123456789]]></FromUserName>' +
    '<CreateTime>1714037059</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[';
  const tail = `]]></Content><MsgId>${msgId}</MsgId></xml>`;
  return head + 'x'.repeat(Math.max(1, size - head.length - tail.length)) + tail;
}

/** AEAD_AES_256_GCM as WeChat Pay encrypts a notification resource. */
export function encryptPayResource(apiv3Key: string, plaintext: string, associatedData = 'transaction', nonce = 'fdasflkja484'): Record<string, string> {
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(apiv3Key, 'utf8'), Buffer.from(nonce, 'utf8'));
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { algorithm: 'AEAD_AES_256_GCM', ciphertext: data.toString('base64'), nonce, associated_data: associatedData, original_type: 'transaction' };
}

/** A notification body in WeChat Pay's envelope; a new notification id unless given. */
export function payNotificationBody(resource: Record<string, string>, eventType = 'TRANSACTION.SUCCESS', id = `EV-${randomBytes(8).toString('hex')}`): string {
  return JSON.stringify({
    id,
    create_time: '2015-05-20T13:29:35+08:00',
    resource_type: 'encrypt-resource',
    event_type: eventType,
    summary: '支付成功',
    resource,
  });
}

/** A POST of `body` signed with `privateKey` the way WeChat Pay signs notifications. */
export function payNotification(
  privateKey: KeyObject,
  serial: string,
  body: string | Buffer,
  o: PushOptions = {},
): CallbackRequest {
  const { timestamp, nonce } = stamp({ nonce: randomBytes(16).toString('hex').toUpperCase(), ...o });
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const signer = createSign('RSA-SHA256');
  signer.update(`${timestamp}\n${nonce}\n`);
  signer.update(raw);
  signer.update('\n');
  const headers: IncomingHttpHeaders = {
    'content-type': 'application/json',
    'wechatpay-serial': serial,
    'wechatpay-signature': signer.sign(privateKey).toString('base64'),
    'wechatpay-timestamp': timestamp,
    'wechatpay-nonce': nonce,
  };
  return { method: 'POST', query: new URLSearchParams(), headers, body: raw };
}
