// Which route a request belongs to, decided from its request line and Host alone: refused (bad
// path, no route, wrong method) or the route whose guard chain (guards/chain.ts) takes it from
// here. Nothing is read from the body and nothing stateful is consulted.
import type { IncomingMessage } from 'node:http';
import type { Reason } from '../errors.js';
import { readHost } from '../net/host.js';
import { normalisePath } from '../net/path.js';
import { authorityClash } from './h2-messages.js';
import type { RouteTarget } from '../snapshot.js';
import type { RequestState } from './request-state.js';

export type Routing =
  | { kind: 'refuse'; reason: Reason; message?: string; headers?: Record<string, string> }
  /** `dest`: the upstream path and query; `preflight`: a CORS preflight, routed by the method it asks about. */
  | { kind: 'proxy'; target: RouteTarget; dest: string; preflight: boolean };

/** Methods no route forwards: TRACE echoes the request (cookies included), CONNECT opens a tunnel. */
const NEVER_FORWARDED = new Set(['TRACE', 'CONNECT']);

function hostLines(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

export function route(raw: IncomingMessage, wx: RequestState): Routing {
  const url = raw.url ?? '/';
  const q = url.indexOf('?');
  const normalised = normalisePath(q < 0 ? url : url.slice(0, q), wx.snapshot.policy.server.paths.semicolons);
  if (!normalised.ok) {
    return { kind: 'refuse', reason: 'path_invalid', message: `the request path cannot be normalised safely: ${normalised.why}` };
  }
  wx.path = normalised.path;
  if (q >= 0) wx.query = url.slice(q + 1);
  if (NEVER_FORWARDED.has(raw.method ?? '')) {
    return { kind: 'refuse', reason: 'method_not_allowed', message: `${raw.method} is refused on every route` };
  }
  const headers = raw.headers;
  // Node keeps the first of several Host lines; a backend may read another (RFC 9112 §3.2: 400).
  if (hostLines(raw.rawHeaders) > 1) return { kind: 'refuse', reason: 'host_invalid', message: 'the request has more than one Host header' };
  const clash = authorityClash(raw);
  if (clash) return { kind: 'refuse', reason: 'host_invalid', message: clash };
  // A request without Host (HTTP/1.0) reaches host-less routes only.
  let host = '';
  if (headers.host !== undefined && headers.host !== '') {
    const read = readHost(headers.host);
    if (!read.ok) return { kind: 'refuse', reason: 'host_invalid', message: `the Host header is not a host name or address: ${read.why}` };
    host = read.host;
    wx.host = host;
  }
  const origin = headers.origin;
  // A CORS preflight is routed by the method it asks about: a route listing [GET, POST] must
  // answer the preflight for its POST, not refuse OPTIONS with 405.
  const asked = headers['access-control-request-method'];
  const preflight = raw.method === 'OPTIONS' && origin !== undefined && typeof asked === 'string' && asked !== '';
  const method = preflight ? asked : (raw.method ?? 'GET');
  const found = wx.snapshot.routes.lookup(method, host, normalised.path);
  if (found.kind === 'not_found') return { kind: 'refuse', reason: 'route_not_found' };
  if (found.kind === 'method_not_allowed') return { kind: 'refuse', reason: 'method_not_allowed', headers: { allow: found.allow.join(', ') } };
  const target = found.route.target;
  wx.route = target.name;
  return { kind: 'proxy', target, dest: target.upstream.basePath + normalised.path + (q < 0 ? '' : url.slice(q)), preflight };
}
