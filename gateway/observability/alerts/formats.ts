// What each kind of channel is sent and what counts as delivered:
//   webhook   JSON of the alert itself, header Idempotency-Key; any 2xx
//   wecom     {"msgtype":"markdown","markdown":{"content"}}; 2xx with errcode 0
//   dingtalk  {"msgtype":"markdown","markdown":{"title","text"}}, signed with `timestamp` and
//             `sign` query parameters when a secret is set; 2xx with errcode 0
//   feishu    {"msg_type":"text","content":{"text"}}, with `timestamp` and `sign` in the body
//             when a secret is set; 2xx with code 0
// Signatures are made per attempt (the robots refuse an old timestamp); the alert's id is the
// same on every attempt, in the header and in the text.

import { createHmac } from 'node:crypto';
import type { AlertChannelConfig } from '../../types/policy.js';
import type { Alert } from './alert.js';

export interface Outgoing {
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export type Answer = { ok: true } | { ok: false; retry: boolean; why: string };

/** WeCom takes at most 4096 bytes of markdown; the others more. Alerts stay far below. */
const MAX_TEXT = 3000;

function lines(alert: Alert, bold: (s: string) => string): string {
  const head = `${bold(`[${alert.state.toUpperCase()}] ${alert.rule}`)} on ${alert.instance}`;
  const facts = Object.entries(alert.details).map(([k, v]) => `- ${k}: ${v}`);
  const text = [head, '', alert.summary, '', ...facts, `- host: ${alert.host}`, `- at: ${alert.at}`, `- alert id: ${alert.id}`].join('\n');
  return text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) : text;
}

const markdown = (alert: Alert): string => lines(alert, (s) => `**${s}**`);

/** DingTalk's documented signature: HMAC-SHA256 of "timestamp\nsecret" keyed by the secret, base64. */
export function dingtalkSign(secret: string, timestampMs: number): string {
  return createHmac('sha256', secret).update(`${timestampMs}\n${secret}`).digest('base64');
}

/** Feishu's documented signature: HMAC-SHA256 of nothing keyed by "timestamp\nsecret", base64. */
export function feishuSign(secret: string, timestampS: number): string {
  return createHmac('sha256', `${timestampS}\n${secret}`).update('').digest('base64');
}

export function outgoing(channel: AlertChannelConfig, alert: Alert, now: number): Outgoing {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': alert.id };
  switch (channel.kind) {
    case 'webhook':
      return { url: channel.url, headers, body: JSON.stringify(alert) };
    case 'wecom':
      return { url: channel.url, headers, body: JSON.stringify({ msgtype: 'markdown', markdown: { content: markdown(alert) } }) };
    case 'dingtalk': {
      const url = new URL(channel.url);
      if (channel.secret !== undefined) {
        url.searchParams.set('timestamp', String(now));
        url.searchParams.set('sign', dingtalkSign(channel.secret, now));
      }
      const title = `[${alert.state.toUpperCase()}] ${alert.rule}`;
      return { url, headers, body: JSON.stringify({ msgtype: 'markdown', markdown: { title, text: markdown(alert) } }) };
    }
    case 'feishu': {
      const ts = Math.floor(now / 1000);
      const signed = channel.secret !== undefined ? { timestamp: String(ts), sign: feishuSign(channel.secret, ts) } : {};
      return { url: channel.url, headers, body: JSON.stringify({ ...signed, msg_type: 'text', content: { text: lines(alert, (s) => s) } }) };
    }
  }
}

/** 5xx, 408 and 429 are worth another attempt; another 4xx will say the same again. */
function byStatus(status: number): Answer | undefined {
  if (status >= 200 && status < 300) return undefined;
  return { ok: false, retry: status >= 500 || status === 408 || status === 429, why: `status ${status}` };
}

/** Robots answer 200 with an error code in the body for a bad key, a bad signature or a rate limit. */
export function judge(kind: AlertChannelConfig['kind'], status: number, body: string): Answer {
  const bad = byStatus(status);
  if (bad) return bad;
  if (kind === 'webhook') return { ok: true };
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(body) as Record<string, unknown>;
  } catch {
    return { ok: false, retry: true, why: 'the answer is not JSON' };
  }
  const code = kind === 'feishu' ? (parsed.code ?? parsed.StatusCode) : parsed.errcode;
  if (code === 0) return { ok: true };
  const message = kind === 'feishu' ? (parsed.msg ?? parsed.StatusMessage) : parsed.errmsg;
  return { ok: false, retry: true, why: `${kind === 'feishu' ? 'code' : 'errcode'} ${String(code)}${typeof message === 'string' ? ` (${message.slice(0, 100)})` : ''}` };
}
