// A route's access rules split into what is enforced and what is only reported (report mode,
// docs/policy.md), compiled once per policy load. A route with nothing in report mode gets
// exactly the guards it would have without this module: the same allowlist object (EVERYONE for
// `any`), its CORS and all its limits, and no ReportGuards.
import type { RouteConfig } from '../types/policy.js';
import type { ReportGuards } from './chain.js';
import type { CompiledCors } from './cors.js';
import { compileIpAllow, type IpAllow } from './ip-allow.js';
import { compileRateLimits, type RateLimitGuard } from './rate-limit.js';

export interface RouteRules {
  readonly ipAllow: IpAllow;
  /** The CORS the gateway enforces: undefined when the route has none or reports it. */
  readonly cors: CompiledCors | undefined;
  readonly rateLimit: RateLimitGuard | undefined;
  readonly report: ReportGuards | undefined;
  /** CORS is reported: the backend's own Access-Control-* headers reach the client. */
  readonly backendCors: boolean;
}

const ANY = Object.freeze({ any: true as const });

export function compileRouteRules(r: RouteConfig, cors: CompiledCors | undefined): RouteRules {
  const kinds = new Set(r.report ?? []);
  const reportedLimits = r.rate_limits.filter((l) => l.mode === 'report');
  const enforcedLimits = reportedLimits.length === 0 ? r.rate_limits : r.rate_limits.filter((l) => l.mode !== 'report');
  const allowReported = kinds.has('allow') && !r.allow.any;
  const denyReported = kinds.has('deny') && r.deny.length > 0;
  const report: ReportGuards = {
    ...(allowReported && { allow: compileIpAllow(r.allow, []) }),
    ...(denyReported && { deny: compileIpAllow(ANY, r.deny) }),
    ...(kinds.has('cors') && { cors: cors ?? null }),
    ...(kinds.has('callback') && { callback: true }),
    ...(kinds.has('identity_required') && r.identity_required && { identityRequired: true }),
    ...(reportedLimits.length > 0 && { rateLimit: compileRateLimits(r.name, reportedLimits) }),
  };
  return {
    ipAllow: compileIpAllow(allowReported ? ANY : r.allow, denyReported ? [] : r.deny),
    cors: kinds.has('cors') ? undefined : cors,
    rateLimit: compileRateLimits(r.name, enforcedLimits),
    report: Object.keys(report).length > 0 ? Object.freeze(report) : undefined,
    backendCors: kinds.has('cors'),
  };
}
