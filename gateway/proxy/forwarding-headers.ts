// What the upstream and the client see of each other's headers. Hop-by-hop headers never cross
// the gateway; forwarding headers are the gateway's own statement, never the client's. Header
// names are judged as a CGI backend folds them (net/header-names.ts), so no spelling of a header
// the gateway owns or removes gets past it.
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { ClientAddress } from '../net/client-address.js';
import { foldHeaderName, isPlainHeaderName } from '../net/header-names.js';
import { hostOf } from '../net/host.js';
import { RESPONSE_DROPPED, applyHeaderRules, type HeaderRules, type RequestHeaderPlan, type ResponsePlan } from '../guards/header-plan.js';

/** A host name or IPv4 address of dot-separated labels. */
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

/** Whether a normal-form host is a name, an IPv4 or a bracketed IPv6 address: the only kinds X-Forwarded-Host states. */
function forwardableHost(host: string): boolean {
  if (host.charCodeAt(0) !== 91 /* [ */) return HOST_NAME.test(host);
  // isIP() takes a zone (`%eth0`), which is no part of a URL's host.
  return host.endsWith(']') && host.indexOf('%') < 0 && isIP(host.slice(1, -1)) === 6;
}

export interface ForwardContext {
  readonly id: string;
  /** The lower-case header the request id travels in (`server.request_id.header`); default x-request-id. */
  readonly idHeader?: string;
  /** Where the upstream's status and the bytes written to the client are noted for the access log. */
  readonly tally?: { upstreamStatus: number | undefined; bytesOut: number };
  readonly address: ClientAddress;
  /** Whether a body follows; without one a stray Content-Length must not reach the upstream. */
  readonly hasBody: boolean;
  readonly response: ResponsePlan;
  /** Access-Control-Allow-Origin for this request's Origin on a CORS route; undefined otherwise. */
  readonly allowedOrigin: string | undefined;
  /** How the client's headers are screened: what is dropped in which spelling, which claims are trusted. */
  readonly reserved: RequestHeaderPlan;
  /** The route's `request_headers`; undefined for a route without any. */
  readonly requestRules?: HeaderRules;
  /** Request headers the gateway states: verified identity, callback verification, body type. */
  readonly added: Readonly<Record<string, string>> | undefined;
  /** Response headers the gateway adds to the upstream's answer (rate-limit state). */
  readonly answerAdded: Readonly<Record<string, string>> | undefined;
  /** Milliseconds a client that stopped reading has before its connection is cut (write-stall.ts). */
  readonly sendTimeout: number;
}

/** `application/json` or any `type/x+json`, case-insensitive, without a charset: gains utf-8. */
export function withJsonCharset(contentType: string): string {
  const semi = contentType.indexOf(';');
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type !== 'application/json' && !(type.endsWith('+json') && type.indexOf('/') > 0)) return contentType;
  if (semi >= 0 && /;\s*charset\s*=/i.test(contentType)) return contentType;
  return `${contentType.trimEnd()}; charset=utf-8`;
}

/** A CORS answer depends on Origin: caches must know, whatever else the upstream varies on. */
function varyWithOrigin(vary: string | string[] | undefined): string {
  if (vary === undefined) return 'Origin';
  const value = Array.isArray(vary) ? vary.join(', ') : vary;
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t === 'origin' || t === '*') return value;
  }
  return value.trim() === '' ? 'Origin' : `${value}, Origin`;
}

/** Header names listed in a Connection header, which are hop-by-hop by declaration. */
function connectionListed(value: unknown): Set<string> | undefined {
  if (typeof value !== 'string' || (value.indexOf(',') < 0 && /^\s*(keep-alive|close)\s*$/i.test(value))) return undefined;
  const names = new Set<string>();
  for (const name of value.split(',')) names.add(name.trim().toLowerCase());
  return names;
}

/** The headers the upstream receives: a new object, the client's minus everything hop-by-hop. */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, ctx: ForwardContext): Record<string, string | string[]> {
  const listed = connectionListed(incoming.connection);
  const trusted = ctx.address.peerTrusted;
  const plan = ctx.reserved;
  const rules = ctx.requestRules;
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined) continue;
    if (isPlainHeaderName(name)) {
      if (plan.dropped.has(name)) continue;
      // Only the exact spelling of a claim is ever believed, and only from a trusted proxy.
      if (plan.claims.has(name) && !(trusted && plan.trustedClaims.has(name))) continue;
    } else if (plan.underscores !== 'allow' || plan.shadowed.has(foldHeaderName(name))) continue;
    if (listed?.has(name)) continue;
    if (!ctx.hasBody && name === 'content-length') continue;
    // Every spelling of a header the route's rules remove or set, as a CGI backend folds them.
    if (rules !== undefined && rules.drop.has(isPlainHeaderName(name) ? name : foldHeaderName(name))) continue;
    out[name] = value;
  }
  if (rules) applyHeaderRules(out, rules);
  if (ctx.added) Object.assign(out, ctx.added);
  const prior = trusted ? incoming['x-forwarded-for'] : undefined;
  const peer = ctx.address.peer;
  out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer;
  out['x-forwarded-proto'] = 'https';
  // The host in its normal form, never the client's text: `a@b`, `[x]`, `%`, `#` never pass.
  const host = hostOf(incoming.host);
  if (host !== undefined && forwardableHost(host)) out['x-forwarded-host'] = host;
  out[ctx.idHeader ?? 'x-request-id'] = ctx.id;
  return out;
}

/**
 * The headers the client receives: the upstream's minus everything hop-by-hop, the policy's
 * stripped headers and every Access-Control-* header, plus the gateway's own.
 */
export function clientResponseHeaders(
  incoming: Record<string, string | string[] | undefined>,
  ctx: ForwardContext,
): Record<string, string | string[] | undefined> {
  const plan = ctx.response;
  const listed = connectionListed(incoming['connection']);
  const out: Record<string, string | string[] | undefined> = {};
  for (const name in incoming) {
    if (RESPONSE_DROPPED.has(name) || plan.strip.has(name) || listed?.has(name)) continue;
    // CORS is the policy's word alone, on every route: a legacy backend's own `*` must never reach
    // a browser, and a route without `cors` allows no cross-origin reads at all.
    if (name.startsWith('access-control-') && !plan.backendCors) continue;
    out[name] = incoming[name];
  }
  if (plan.jsonCharset) {
    const type = out['content-type'];
    if (typeof type === 'string') out['content-type'] = withJsonCharset(type);
  }
  // What the route's rules remove or set is in `strip` already; the gateway's own headers follow.
  if (plan.rules) applyHeaderRules(out, plan.rules);
  for (const [name, value] of plan.fixed) out[name] = value;
  if (plan.cors) {
    out['vary'] = varyWithOrigin(out['vary']);
    if (ctx.allowedOrigin !== undefined) {
      out['access-control-allow-origin'] = ctx.allowedOrigin;
      for (const [name, value] of plan.cors.actualHeaders) out[name] = value;
    }
  }
  if (ctx.answerAdded) Object.assign(out, ctx.answerAdded);
  out[ctx.idHeader ?? 'x-request-id'] = ctx.id;
  return out;
}
