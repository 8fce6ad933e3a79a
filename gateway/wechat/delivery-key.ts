// What identifies one WeChat message across WeChat's retries, for asynchronous delivery: the
// idempotency key the backend dedupes by, and the order key whose messages are delivered one at
// a time. Keys may be logged, so none carries an openid: an event's key and every order key are
// hashes.
//
//   message push: MsgId (XML <MsgId>, JSON "MsgId"/"msgid"); an event has none, so the hash of
//                 FromUserName, CreateTime and Event; in order per FromUserName
//   Pay:          the notification `id`; in order per payer openid when the body is decrypted
// A body none of that can be read from is keyed by its own hash (a retry WeChat re-encrypted is
// then a different key: the backend still gets it at least once).
import { createHash } from 'node:crypto';
import { detectFormat, parseCallbackBody, type BodyFormat } from './callback-body.js';
import { payNotificationId, pushMessageId } from './callback-message-id.js';

export interface DeliveryKeys {
  readonly key: string;
  readonly order: string;
}

function digest(text: string | Buffer, hexChars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, hexChars);
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
}

function pick(fields: Record<string, unknown>, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = text(fields[n]);
    if (v !== undefined) return v;
  }
  return undefined;
}

function readable(body: Buffer, contentType: string | undefined): { format: BodyFormat; fields: Record<string, unknown> } | undefined {
  try {
    const format = detectFormat(contentType, body);
    return { format, fields: parseCallbackBody(body, format) };
  } catch {
    return undefined;
  }
}

/**
 * A push's keys, from the id the replay checks use too (callback-message-id.ts). `open` decrypts
 * a safe-mode `Encrypt` (a route that forwards the ciphertext): the ids are inside it.
 */
export function pushKeys(body: Buffer, contentType: string | undefined, open?: (encrypt: string) => string): DeliveryKeys {
  let message = body;
  let read = readable(body, contentType);
  const encrypt = read && pick(read.fields, 'Encrypt', 'encrypt');
  if (read && encrypt !== undefined && open) {
    try {
      message = Buffer.from(open(encrypt), 'utf8');
      read = readable(message, undefined);
    } catch {
      read = undefined;
    }
  }
  const id = read && pushMessageId(message, read.format);
  const from = read && pick(read.fields, 'FromUserName', 'fromusername');
  // A MsgId is a number and may be logged; an event's id holds an openid, so only its hash is.
  const key = id === undefined ? `body-${digest(body, 32)}` : id.startsWith('MsgId:') ? id.slice('MsgId:'.length) : `evt-${digest(id, 32)}`;
  return { key, order: from === undefined ? key : `u-${digest(from, 24)}` };
}

/** A Pay notification's keys; `notifyId` is the envelope's id when the body is the decrypted resource. */
export function payKeys(body: Buffer, notifyId: string | undefined): DeliveryKeys {
  let parsed: Record<string, unknown> | undefined;
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
  } catch {
    parsed = undefined;
  }
  const key = notifyId ?? payNotificationId(body) ?? `body-${digest(body, 32)}`;
  const payer = parsed?.payer;
  const openid = typeof payer === 'object' && payer !== null ? text((payer as Record<string, unknown>).openid) : undefined;
  return { key, order: openid === undefined ? key : `u-${digest(openid, 24)}` };
}
