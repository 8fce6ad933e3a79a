// What the gateway does with headers, compiled once per policy load: which of the client's request
// headers are dropped in which spelling, which claims a trusted proxy may make, and how a route's
// answers are rewritten (security headers, stripped headers, CORS). proxy/forwarding-headers.ts
// applies the plans to each request; this module only decides.
import type { IncomingHttpHeaders } from 'node:http';
import { CLIENT_CLAIMS, GATEWAY_FORWARDING, foldHeaderName, isPlainHeaderName } from '../net/header-names.js';
import type { HstsConfig, HeaderNamePolicy } from '../types/policy.js';
import type { CompiledCors } from './cors.js';

// `expect` is answered by the gateway's own server; `host` is the upstream's, set by undici.
const HOP_BY_HOP = [
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'expect', 'host', 'http2-settings',
];
/** Read or set by the gateway on some requests: a second, folded spelling must not reach a backend beside them. */
const READ = ['content-length', 'content-type', 'accept-encoding', 'wechatpay-serial', 'wechatpay-signature', 'wechatpay-timestamp', 'wechatpay-nonce'];
/** How the client's request headers are screened, compiled once per policy load. */
export interface RequestHeaderPlan {
  /** What a name with `_` (or any character but letters, digits and `-`) gets: `server.headers.underscores`. */
  readonly underscores: HeaderNamePolicy;
  /** Plain names never forwarded: hop-by-hop, the gateway's forwarding headers and the headers only it states. */
  readonly dropped: ReadonlySet<string>;
  /** Client claims about the connection (CLIENT_CLAIMS), removed unless trusted. */
  readonly claims: ReadonlySet<string>;
  /** The claims a trusted proxy may make (`server.trusted_headers`). */
  readonly trustedClaims: ReadonlySet<string>;
  /** Folded names whose non-plain spellings are dropped even with `underscores: allow`. */
  readonly shadowed: ReadonlySet<string>;
}

export interface RequestHeaderPolicy {
  underscores: HeaderNamePolicy;
  /** Headers only the gateway states (verified identity, callback verification), any spelling. */
  owned: readonly string[];
  /** Lower-case plain names of CLIENT_CLAIMS a trusted proxy may send. */
  trusted: readonly string[];
  /** Headers the gateway reads a credential from (the identity token header). */
  read: readonly string[];
}

export function compileRequestHeaders(p: RequestHeaderPolicy): RequestHeaderPlan {
  const dropped = new Set([...HOP_BY_HOP, ...GATEWAY_FORWARDING, ...p.owned.map(foldHeaderName)]);
  const claims = new Set(CLIENT_CLAIMS);
  return Object.freeze({
    underscores: p.underscores,
    dropped,
    claims,
    trustedClaims: new Set(p.trusted),
    shadowed: new Set([...dropped, ...claims, ...READ, ...p.read.map(foldHeaderName)]),
  });
}

/** At most this many names go into one log line or error message. */
const NAMES_SHOWN = 16;

/**
 * The client's header names that are not plain (`x_wx_openid`, `x.real.ip`) when the policy
 * drops or refuses them; undefined for the usual request, which has none, or with `allow`.
 */
export function screenHeaderNames(incoming: IncomingHttpHeaders, plan: RequestHeaderPlan): { names: string[]; refuse: boolean } | undefined {
  if (plan.underscores === 'allow') return undefined;
  let names: string[] | undefined;
  for (const name in incoming) {
    if (isPlainHeaderName(name)) continue;
    names ??= [];
    if (names.length < NAMES_SHOWN) names.push(name);
  }
  return names && { names, refuse: plan.underscores === 'reject' };
}

/** How a route's answers are rewritten for the client, compiled once per policy load. */
export interface ResponsePlan {
  /** Lower-case upstream headers never passed on (`server.strip_response_headers`). */
  readonly strip: ReadonlySet<string>;
  /** Headers the gateway sets on every answer, replacing any the upstream sent. */
  readonly fixed: readonly (readonly [string, string])[];
  /** Add `; charset=utf-8` to a JSON Content-Type without a charset. */
  readonly jsonCharset: boolean;
  readonly cors: CompiledCors | undefined;
  /** CORS in report mode: the upstream's own Access-Control-* headers pass, as without the gateway. */
  readonly backendCors?: boolean;
}

/** `max-age=N; includeSubDomains; preload`, as configured. */
export function hstsValue(hsts: HstsConfig): string {
  return `max-age=${hsts.max_age}${hsts.include_subdomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}`;
}

/**
 * Headers on every HTTPS answer, the gateway's own errors included. Without `tls.hsts` the policy
 * says nothing about HSTS, so an upstream's own header passes through; with it, ours replaces it.
 */
export function securityHeaders(hsts: HstsConfig | null): Readonly<Record<string, string>> {
  const headers: Record<string, string> = { 'x-content-type-options': 'nosniff' };
  if (hsts) headers['strict-transport-security'] = hstsValue(hsts);
  return Object.freeze(headers);
}
