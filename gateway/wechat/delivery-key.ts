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
import { detectFormat, parseCallbackBody } from './callback-body.js';

export interface DeliveryKeys {
  readonly key: string;
  readonly order: string;
}

function digest(text: string | Buffer, hexChars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, hexChars);
}

/** JSON MsgIds are 64-bit numbers, past what JSON.parse keeps exact: read from the text. */
const JSON_MSGID = /"(?:MsgId|msgid|MsgID)"\s*:\s*"?(\d{1,32})"?/;

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

function fieldsOf(body: Buffer, contentType: string | undefined): { fields: Record<string, unknown>; msgId: string | undefined } | undefined {
  try {
    const format = detectFormat(contentType, body);
    const fields = parseCallbackBody(body, format);
    const msgId = format === 'json' ? JSON_MSGID.exec(body.toString('utf8'))?.[1] : pick(fields, 'MsgId', 'MsgID', 'msgid');
    return { fields, msgId };
  } catch {
    return undefined;
  }
}

/**
 * A push's keys. `open` decrypts a safe-mode `Encrypt` (a route that forwards the ciphertext):
 * the ids are inside it.
 */
export function pushKeys(body: Buffer, contentType: string | undefined, open?: (encrypt: string) => string): DeliveryKeys {
  let read = fieldsOf(body, contentType);
  const encrypt = read && pick(read.fields, 'Encrypt', 'encrypt');
  if (read && encrypt !== undefined && read.msgId === undefined && open) {
    try {
      read = fieldsOf(Buffer.from(open(encrypt), 'utf8'), undefined);
    } catch {
      read = undefined;
    }
  }
  const from = read && pick(read.fields, 'FromUserName', 'fromusername');
  const order = from === undefined ? undefined : `u-${digest(from, 24)}`;
  let key: string;
  if (read?.msgId !== undefined) key = read.msgId;
  else if (from !== undefined && read && pick(read.fields, 'CreateTime', 'createtime') !== undefined) {
    const f = read.fields;
    key = `evt-${digest([from, pick(f, 'CreateTime', 'createtime'), pick(f, 'Event', 'event') ?? ''].join('\n'), 32)}`;
  } else key = `body-${digest(body, 32)}`;
  return { key, order: order ?? key };
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
  const key = notifyId ?? (parsed && text(parsed.id)) ?? `body-${digest(body, 32)}`;
  const payer = parsed?.payer;
  const openid = typeof payer === 'object' && payer !== null ? text((payer as Record<string, unknown>).openid) : undefined;
  return { key, order: openid === undefined ? key : `u-${digest(openid, 24)}` };
}
