// What the gateway does with headers, compiled once per policy load: which of the client's request
// headers are dropped in which spelling, which claims a trusted proxy may make, and how a route's
// answers are rewritten (security headers, stripped headers, CORS). proxy/forwarding-headers.ts
// applies the plans to each request; this module only decides.
import type { IncomingHttpHeaders } from 'node:http';
import { CLIENT_CLAIMS, GATEWAY_FORWARDING, foldHeaderName, isPlainHeaderName } from '../net/header-names.js';
import { FRAMING_HEADERS } from '../masking/header-rules.js';
import type { HstsConfig, HeaderNamePolicy, HeaderRulesConfig } from '../types/policy.js';
import type { CompiledCors } from './cors.js';
import { RATE_LIMIT_HEADERS } from './rate-limit.js';
import { VERIFIED_HEADER } from './wechat-callback.js';
import { PAY_HEADERS } from './wechatpay-notify.js';

// `expect` is answered by the gateway's own server; `host` is the upstream's, set by undici.
const HOP_BY_HOP = [
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'expect', 'host', 'http2-settings',
];
/** Read or set by the gateway on some requests: a second, folded spelling must not reach a backend beside them. */
const READ = ['content-length', 'content-type', 'accept-encoding', 'wechatpay-serial', 'wechatpay-signature', 'wechatpay-timestamp', 'wechatpay-nonce'];
/** Upstream response headers that never reach the client: hop-by-hop. */
export const RESPONSE_DROPPED: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'trailer', 'transfer-encoding', 'upgrade',
]);

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
  /** Lower-case upstream headers never passed on (`server.strip_response_headers`, and what the route's rules remove or set). */
  readonly strip: ReadonlySet<string>;
  /** The route's `response_headers`, their `drop` already in `strip`; undefined without any. */
  readonly rules?: HeaderRules;
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

/**
 * Headers only the gateway states on what the upstream receives, as a CGI backend folds them:
 * hop-by-hop, forwarding and the client's connection claims, the headers it reads or sets, and
 * `owned` (the verified openid and unionid headers). `request_headers` rules may not name them.
 */
export function gatewayRequestHeaders(owned: readonly string[]): ReadonlyMap<string, string> {
  const why = new Map<string, string>();
  const note = (names: readonly string[], reason: string): void => {
    for (const n of names) if (!why.has(foldHeaderName(n))) why.set(foldHeaderName(n), reason);
  };
  note([...owned, VERIFIED_HEADER, ...PAY_HEADERS], 'stated by the gateway alone (a verified identity or callback)');
  note(GATEWAY_FORWARDING, 'stated by the gateway on every forwarded request');
  note(CLIENT_CLAIMS, 'a claim about the connection that only a trusted proxy may make');
  note(HOP_BY_HOP, 'hop-by-hop or the upstream connection\'s own');
  note(READ, 'read or set by the gateway itself');
  return why;
}

/** Why a lower-case response header is the gateway's alone (`response_headers` may not name it), or undefined. */
export function gatewayResponseHeader(name: string): string | undefined {
  if (RESPONSE_DROPPED.has(name)) return 'hop-by-hop';
  if (FRAMING_HEADERS.has(name)) return 'what the gateway frames, masks or identifies the answer by';
  if (name in securityHeaders({ max_age: 0, include_subdomains: false, preload: false })) return 'a security header the gateway sets';
  if (name.startsWith('access-control-') || name === 'vary') return 'the policy\'s CORS answer';
  if (RATE_LIMIT_HEADERS.includes(name)) return 'the rate limit\'s report';
  return undefined;
}

/** A side's header rules, compiled once per policy load; names lower-case. */
export interface HeaderRules {
  /** Names whose copies from the other side go: removed and set ones (request side: folded, so every spelling goes). */
  readonly drop: ReadonlySet<string>;
  /** Headers given this value, replacing the other side's. */
  readonly set: readonly (readonly [string, string])[];
  /** Headers given this value besides the other side's. */
  readonly add: readonly (readonly [string, string])[];
}

/** `cfg` compiled; undefined when it has no rule, so a route without rules pays nothing for them. */
export function compileHeaderRules(cfg: HeaderRulesConfig | undefined, side: 'request' | 'response'): HeaderRules | undefined {
  if (!cfg || (cfg.set.length === 0 && cfg.add.length === 0 && cfg.remove.length === 0)) return undefined;
  const pairs = (list: HeaderRulesConfig['set']) => Object.freeze(list.map((h) => Object.freeze([h.name, h.value] as const)));
  const dropped = [...cfg.remove, ...cfg.set.map((h) => h.name)];
  return Object.freeze({
    drop: new Set(side === 'request' ? dropped.map(foldHeaderName) : dropped),
    set: pairs(cfg.set),
    add: pairs(cfg.add),
  });
}

/** Applies set, then add (after any copy the other side sent), to headers about to be sent. */
export function applyHeaderRules(out: Record<string, string | string[] | undefined>, rules: HeaderRules): void {
  for (const [name, value] of rules.set) out[name] = value;
  for (const [name, value] of rules.add) {
    const prior = out[name];
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
}

/** `server.strip_response_headers` with what a route's response rules remove or set: shared when they remove nothing. */
export function stripWith(strip: ReadonlySet<string>, rules: HeaderRules | undefined): ReadonlySet<string> {
  return rules && rules.drop.size > 0 ? new Set([...strip, ...rules.drop]) : strip;
}
