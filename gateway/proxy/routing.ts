// Where a request goes, decided from its request line and headers alone: refused (bad path, no
// route, wrong method, address not allowed), a CORS preflight the gateway answers, or a route
// whose guards and upstream take it from here. Nothing is read from the body and nothing stateful
// is consulted, so the decision is cheap and made once per request.
import type { IncomingMessage } from 'node:http';
import type { Reason } from '../errors.js';
import { hostOf } from '../net/host.js';
import { normalisePath } from '../net/path.js';
import type { RouteTarget } from '../snapshot.js';
import type { RequestState } from './request-state.js';

export type Routing =
  | { kind: 'refuse'; reason: Reason; message?: string; headers?: Record<string, string> }
  /** The 204 answer's CORS headers. */
  | { kind: 'preflight'; headers: Record<string, string> }
  /** `dest`: the upstream path and query. */
  | { kind: 'proxy'; target: RouteTarget; dest: string };

export function route(raw: IncomingMessage, wx: RequestState): Routing {
  const url = raw.url ?? '/';
  const q = url.indexOf('?');
  const normalised = normalisePath(q < 0 ? url : url.slice(0, q));
  if (!normalised.ok) {
    return { kind: 'refuse', reason: 'path_invalid', message: `the request path cannot be normalised safely: ${normalised.why}` };
  }
  wx.path = normalised.path;
  if (q >= 0) wx.query = url.slice(q + 1);
  const headers = raw.headers;
  const origin = headers.origin;
  // A CORS preflight is routed by the method it asks about: a route listing [GET, POST] must
  // answer the preflight for its POST, not refuse OPTIONS with 405.
  const asked = headers['access-control-request-method'];
  const preflight = raw.method === 'OPTIONS' && origin !== undefined && typeof asked === 'string' && asked !== '';
  const method = preflight ? asked : (raw.method ?? 'GET');
  const found = wx.snapshot.routes.lookup(method, hostOf(headers.host) ?? '', normalised.path);
  if (found.kind === 'not_found') return { kind: 'refuse', reason: 'route_not_found' };
  if (found.kind === 'method_not_allowed') return { kind: 'refuse', reason: 'method_not_allowed', headers: { allow: found.allow.join(', ') } };
  const target = found.route.target;
  wx.route = target.name;
  // Cheapest first: a refused address costs nothing else, not even a preflight answer.
  if (!target.ipAllow.allows(wx.address.client)) return { kind: 'refuse', reason: 'ip_not_allowed' };
  const cors = target.response.cors;
  if (preflight) {
    // Preflights are the gateway's to answer and never reach the upstream.
    if (!cors) return { kind: 'refuse', reason: 'cors_origin_not_allowed', message: 'this route allows no cross-origin requests' };
    const allowed = cors.allowOrigin(origin);
    if (allowed === undefined) return { kind: 'refuse', reason: 'cors_origin_not_allowed' };
    return { kind: 'preflight', headers: { ...cors.preflightHeaders, 'access-control-allow-origin': allowed } };
  }
  if (cors) {
    wx.cors = cors;
    wx.allowedOrigin = cors.allowOrigin(origin);
  }
  return { kind: 'proxy', target, dest: target.upstream.basePath + normalised.path + (q < 0 ? '' : url.slice(q)) };
}
