// What a callback's message says it is, for deduplicating WeChat's retries: a message push's
// MsgId, or for events (which have none) FromUserName + CreateTime + Event, as WeChat's
// documentation recommends; a Pay notification's top-level `id`. Undefined when the message does
// not say: it is then told apart by its signed request alone.
import { parseCallbackBody, parseCallbackText, type BodyFormat } from './callback-body.js';

/** Numbers past 2^53 lose digits in JSON.parse, and MsgIds are that large: their source text is kept. */
interface Raw {
  readonly raw: string;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value.length > 0 && value.length <= 256 ? value : undefined;
  if (typeof value === 'object' && value !== null && typeof (value as Raw).raw === 'string') return (value as Raw).raw;
  return undefined;
}

/** Keeps every number's source text (Node's JSON.parse source access), so 24571234567890123 stays itself. */
function keepDigits(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' && context?.source !== undefined ? { raw: context.source } : value;
}

function fields(message: Buffer | string, format: BodyFormat): Record<string, unknown> | undefined {
  try {
    if (format === 'xml') return typeof message === 'string' ? parseCallbackText(message, 'xml') : parseCallbackBody(message, 'xml');
    const value: unknown = JSON.parse(typeof message === 'string' ? message : message.toString('utf8'), keepDigits as (k: string, v: unknown) => unknown);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The id of a push's (decrypted) message, or undefined when it names none. */
export function pushMessageId(message: Buffer | string, format: BodyFormat): string | undefined {
  const f = fields(message, format);
  return f ? pushMessageIdOf(f) : undefined;
}

/** pushMessageId of an XML message already parsed (callback-body.ts): the same fields, read once. */
export function pushMessageIdOf(f: Record<string, unknown>): string | undefined {
  const msgId = text(f.MsgId);
  if (msgId !== undefined) return `MsgId:${msgId}`;
  const from = text(f.FromUserName);
  const created = text(f.CreateTime);
  if (from === undefined || created === undefined) return undefined;
  return `Event:${from}:${created}:${text(f.Event) ?? ''}`;
}

/** The top-level `id` of a Pay v3 notification envelope, or undefined. */
export function payNotificationId(body: Buffer): string | undefined {
  const f = fields(body, 'json');
  return f ? text(f.id) : undefined;
}
