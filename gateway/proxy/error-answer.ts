// The gateway's own error answers, the same on every path: JSON with a stable reason, the
// security headers, the request id, and on a CORS route the CORS answer, so a page can read a
// 429 or a 401 instead of seeing a blocked request.
import { errorBody, REASONS, type Reason } from '../errors.js';
import type { RequestState } from './request-state.js';

export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export function errorAnswer(wx: RequestState, reason: Reason, message?: string, extra?: Record<string, string>): ErrorAnswer {
  const body = errorBody(reason, wx.id, message);
  const headers: Record<string, string> = { ...extra, ...wx.snapshot.securityHeaders };
  if (wx.cors) {
    headers['vary'] = 'Origin';
    if (wx.allowedOrigin !== undefined) {
      headers['access-control-allow-origin'] = wx.allowedOrigin;
      for (const [name, value] of wx.cors.actualHeaders) headers[name] = value;
    }
  }
  headers['content-type'] = 'application/json; charset=utf-8';
  headers['content-length'] = String(Buffer.byteLength(body));
  headers['x-request-id'] = wx.id;
  return { status: REASONS[reason].status, headers, body };
}
