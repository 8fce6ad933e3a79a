// A route's rate limits, compiled once: which store keys a request counts against, and the
// RateLimit-* / Retry-After headers that report the outcome (draft-ietf-httpapi-ratelimit-headers).
import type { RateLimitConfig } from '../policy/types.js';
import { rateBudget, type RateBudget } from '../store/sliding-window.js';
import type { RateResult, RateRule } from '../store/store.js';

interface CompiledRule {
  /** Checked here, once per policy load: the store trusts it on every request. */
  readonly budget: RateBudget;
  readonly byOpenid: boolean;
  readonly fallbackIp: boolean;
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
    // A route name cannot contain ':' (policy names are [a-z0-9_-]), so scopes never collide.
    prefix: `rl:${c.scope === 'global' ? '*' : route}:${c.key}:${c.window}:`,
  }));
  const fallbacks = compiled.filter((r) => r.byOpenid && r.fallbackIp);
  return {
    fallbackRules(client) {
      return fallbacks.map((r) => ({ key: `${r.prefix}ip:${client}`, budget: r.budget }));
    },
    rules(openid, client) {
      const out: RateRule[] = [];
      for (const r of compiled) {
        let id: string | undefined;
        if (!r.byOpenid) id = `ip:${client}`;
        else if (openid !== undefined) id = `o:${openid}`;
        else if (r.fallbackIp) id = `ip:${client}`;
        if (id !== undefined) out.push({ key: r.prefix + id, budget: r.budget });
      }
      return out;
    },
  };
}

/**
 * The headers for a decision over several rules: the rule closest to refusing speaks for all,
 * as the draft asks when more than one limit applies. Seconds are rounded up, so a client that
 * waits as told is never refused for having come back a fraction early.
 */
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
