// A route's rate limits, compiled once: which store keys a request counts against, and the
// RateLimit-* / Retry-After headers that report the outcome (draft-ietf-httpapi-ratelimit-headers).
import type { RateLimitConfig } from '../types/policy.js';
import { rateBudget, type RateBudget } from '../store/sliding-window.js';
import type { RateResult, RateRule } from '../store/store.js';

interface CompiledRule {
  /** Checked here, once per policy load: the store trusts it on every request. */
  readonly budget: RateBudget;
  readonly byOpenid: boolean;
  readonly fallbackIp: boolean;
  /** IPv6 clients are counted by this many leading bits of their address. */
  readonly ipv6Prefix: number;
  /** Key prefix: scope, counted key and window, so rules that differ never share a counter. */
  readonly prefix: string;
}

export interface RateLimitGuard {
  /** The store rules this request counts against; empty when no rule applies to it. */
  rules(openid: string | undefined, client: string): RateRule[];
  /** The client address's anonymous budgets (the ip fallback of openid rules). */
  fallbackRules(client: string): RateRule[];
}

export function compileRateLimits(route: string, configs: readonly RateLimitConfig[]): RateLimitGuard | undefined {
  if (configs.length === 0) return undefined;
  const compiled: CompiledRule[] = configs.map((c) => ({
    budget: rateBudget(c.limit, c.window),
    byOpenid: c.key === 'openid',
    fallbackIp: c.fallback_key === 'ip',
    ipv6Prefix: c.ipv6_prefix,
    // A route name cannot contain ':' (policy names are [a-z0-9_-]), so scopes never collide. A
    // limit in report mode is often tried beside an enforced one of the same key and window: its
    // own counter keeps each from counting the other's requests.
    prefix: `rl:${c.scope === 'global' ? '*' : route}:${c.key}:${c.window}:${c.mode === 'report' ? `report-${c.limit}:` : ''}`,
  }));
  const fallbacks = compiled.filter((r) => r.byOpenid && r.fallbackIp);
  return {
    fallbackRules(client) {
      return fallbacks.map((r) => ({ key: `${r.prefix}ip:${addressKey(client, r.ipv6Prefix)}`, budget: r.budget }));
    },
    rules(openid, client) {
      const out: RateRule[] = [];
      for (const r of compiled) {
        let id: string | undefined;
        if (!r.byOpenid) id = `ip:${addressKey(client, r.ipv6Prefix)}`;
        else if (openid !== undefined) id = `o:${openid}`;
        else if (r.fallbackIp) id = `ip:${addressKey(client, r.ipv6Prefix)}`;
        if (id !== undefined) out.push({ key: r.prefix + id, budget: r.budget });
      }
      return out;
    },
  };
}

/**
 * What an address is counted as: an IPv4 address itself; an IPv6 address by its first `prefix`
 * bits, as `2001:db8:1:2::/64`, since one subscriber is handed a whole /64 (RFC 6177) and could
 * otherwise take a fresh budget from each of its 2^64 addresses.
 */
export function addressKey(client: string, prefix: number): string {
  if (client.indexOf(':') < 0) return client;
  const groups = ipv6Groups(client);
  if (!groups) return client;
  const kept = Math.ceil(prefix / 16);
  const out: string[] = [];
  for (let i = 0; i < kept; i++) {
    const bits = Math.min(16, prefix - i * 16);
    out.push((groups[i]! & (0xffff << (16 - bits)) & 0xffff).toString(16));
  }
  return `${out.join(':')}${kept < 8 ? '::' : ''}/${prefix}`;
}

/** The eight 16-bit groups of an IPv6 address (zone dropped, a trailing dotted IPv4 read), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  const zone = address.indexOf('%');
  let text = zone < 0 ? address : address.slice(0, zone);
  const colon = text.lastIndexOf(':');
  if (text.indexOf('.', colon) > 0) {
    const v4 = text.slice(colon + 1).split('.').map(Number);
    if (v4.length !== 4 || !v4.every((n) => Number.isInteger(n) && n >= 0 && n <= 255)) return undefined;
    text = `${text.slice(0, colon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  // `::` stands for one group of zeros or more.
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...rest];
  return groups.some(Number.isNaN) ? undefined : groups;
}

/**
 * The headers for a decision over several rules: the rule closest to refusing speaks for all,
 * as the draft asks when more than one limit applies. Seconds are rounded up, so a client that
 * waits as told is never refused for having come back a fraction early.
 */
/** Every header rateLimitHeaders() may state: the gateway's alone on an answer. */
export const RATE_LIMIT_HEADERS: readonly string[] = ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after'];

export function rateLimitHeaders(results: readonly RateResult[]): Record<string, string> {
  let tightest = results[0]!;
  for (const r of results) {
    if (!r.allowed && tightest.allowed) tightest = r;
    else if (r.allowed === tightest.allowed && r.remaining < tightest.remaining) tightest = r;
  }
  const headers: Record<string, string> = {
    'ratelimit-limit': String(tightest.limit),
    'ratelimit-remaining': String(tightest.remaining),
    'ratelimit-reset': String(Math.ceil(tightest.resetMs / 1000)),
  };
  if (!tightest.allowed) headers['retry-after'] = String(Math.max(1, Math.ceil(tightest.retryAfterMs / 1000)));
  return headers;
}
