// The answers the gateway gives itself (errors, the login answer, a callback's echo), the same
// on every path: the security headers, the request id, no caching of what is not the upstream's,
// and on a CORS route the CORS answer, so a page can read a 429 or a login instead of seeing a
// blocked request.
import { errorBody, REASONS, type Reason } from '../errors.js';
import type { RequestState } from './request-state.js';
import type { Snapshot } from '../snapshot.js';
import { payFailBody } from '../wechat/pay-notify.js';

export interface OwnAnswer {
  status: number;
  headers: Record<string, string>;
  /** Bytes for a callback's answer replayed from the store, exactly as first sent. */
  body: string | Buffer;
}

const JSON_TYPE = 'application/json; charset=utf-8';

export function ownAnswer(wx: RequestState, status: number, contentType: string, body: string | Buffer, extra?: Record<string, string>): OwnAnswer {
  const headers: Record<string, string> = { ...extra, ...wx.snapshot.securityHeaders };
  if (wx.cors) {
    headers['vary'] = 'Origin';
    if (wx.allowedOrigin !== undefined) {
      headers['access-control-allow-origin'] = wx.allowedOrigin;
      for (const [name, value] of wx.cors.actualHeaders) headers[name] = value;
    }
  }
  headers['content-type'] = contentType;
  headers['content-length'] = String(Buffer.byteLength(body));
  headers[wx.snapshot.policy.server.request_id.header] = wx.id;
  return { status, headers, body };
}

/** JSON with a stable reason (errors.ts); on a WeChat Pay notification route also in Pay's `{"code":"FAIL"}` format. */
export function errorAnswer(wx: RequestState, reason: Reason, message?: string, extra?: Record<string, string>): OwnAnswer {
  const body = errorBody(reason, wx.id, message);
  const pay = wx.route !== undefined && payRoutes(wx.snapshot).has(wx.route);
  return ownAnswer(wx, REASONS[reason].status, JSON_TYPE, pay ? payFailBody(body, message ?? REASONS[reason].message) : body, extra);
}

const PAY_ROUTES = new WeakMap<Snapshot, ReadonlySet<string>>();

/** The names of a snapshot's wechatpay_notify routes, worked out once per snapshot. */
function payRoutes(snapshot: Snapshot): ReadonlySet<string> {
  let names = PAY_ROUTES.get(snapshot);
  if (!names) {
    names = new Set(snapshot.policy.routes.filter((r) => r.wechatpay_notify).map((r) => r.name));
    PAY_ROUTES.set(snapshot, names);
  }
  return names;
}

/** A JSON answer the gateway makes itself (the login): never cached. */
export function jsonAnswer(wx: RequestState, value: unknown, extra?: Record<string, string>): OwnAnswer {
  return ownAnswer(wx, 200, JSON_TYPE, JSON.stringify(value), { ...extra, 'cache-control': 'no-store' });
}
