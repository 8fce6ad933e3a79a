// Report mode (`report: [...]` on a route or in defaults, `mode: report` on one rate limit): which
// rules a policy decides and counts without enforcing them. Checked here (a kind named where the
// route has no such rule reports nothing, which is worth saying), and listed for `wxgw validate`,
// so that a rule left in report mode after its rollout is seen every time the policy is checked.

import { isRecord, type KeyPath } from './key-path.js';
import type { Reporter } from './report.js';
import type { PolicyConfig, ReportRule, RouteConfig, SourcePos } from '../types/policy.js';

/**
 * The login endpoint takes allow, deny and cors from defaults, and allow and deny in report mode
 * too. Not cors: with no backend behind it to answer a preflight, it keeps enforcing CORS.
 */
const LOGIN_KINDS: readonly ReportRule[] = ['allow', 'deny'];

export function loginReport(defaults: PolicyConfig['defaults']): ReportRule[] {
  return (defaults.report ?? []).filter((k) => LOGIN_KINDS.includes(k));
}

/** Why a kind reports nothing on a route whose effective keys are `entry`, else undefined. */
function nothingToReport(kind: unknown, get: (key: string) => unknown): string | undefined {
  switch (kind) {
    case 'allow':
      return get('allow') === 'any' ? 'the route allows `any` address, so no address would be refused' : undefined;
    case 'deny': {
      const deny = get('deny');
      return !Array.isArray(deny) || deny.length === 0 ? 'the route denies no address' : undefined;
    }
    case 'callback':
      return get('wechat_callback') === undefined && get('wechatpay_notify') === undefined ? 'the route verifies no callback (no wechat_callback or wechatpay_notify)' : undefined;
    case 'identity_required':
      return get('identity_required') !== true ? 'the route does not require identity' : undefined;
    case 'rate_limit': {
      const limits = get('rate_limit');
      return limits === undefined || limits === 'off' ? 'the route has no rate limit' : undefined;
    }
    case 'mask': {
      const mask = get('mask');
      return mask === undefined || mask === 'off' ? 'the route masks nothing' : undefined;
    }
    // `cors` without a cors section is meaningful: preflights go to the backend instead of being refused.
    default:
      return undefined;
  }
}

/** Warns about kinds a route's own `report` names that the route has no rule for. */
export function checkReportMode(data: Record<string, unknown>, report: Reporter): void {
  const defaults = isRecord(data.defaults) ? data.defaults : {};
  const routes = Array.isArray(data.routes) ? data.routes : [];
  routes.forEach((route: unknown, i) => {
    if (!isRecord(route) || !Array.isArray(route.report)) return;
    // Callbacks are the route's own; everything else a route key replaces the default key whole.
    const get = (key: string): unknown => (key in route || key.startsWith('wechat') ? route[key] : defaults[key]);
    route.report.forEach((kind: unknown, j) => {
      const why = nothingToReport(kind, get);
      if (why) report.warn(['routes', i, 'report', j] as KeyPath, `reports nothing: ${why}; remove \`${String(kind)}\` from report`);
    });
  });
}

/** One route's rules in report mode, as `wxgw validate` lists them. */
export interface ReportModeEntry {
  route: string;
  pos: SourcePos;
  /** `cors`, `rate_limit` (all of the route's limits) or `rate_limit routes[2].rate_limit[1]` (one of them). */
  rules: string[];
}

function entry(route: string, pos: SourcePos, kinds: readonly ReportRule[], limits: RouteConfig['rate_limits']): ReportModeEntry | undefined {
  const rules: string[] = kinds.filter((k) => k !== 'rate_limit');
  const reported = limits.filter((l) => l.mode === 'report');
  if (reported.length > 0 && reported.length === limits.length) rules.push('rate_limit');
  else for (const l of reported) rules.push(`rate_limit ${l.pos.path}`);
  return rules.length > 0 ? { route, pos, rules } : undefined;
}

/** For a log line: `route: rule, rule` per route with a rule in report mode; undefined when there is none. */
export function reportModeSummary(config: PolicyConfig): string[] | undefined {
  const entries = reportModeRules(config);
  return entries.length > 0 ? entries.map((e) => `${e.route}: ${e.rules.join(', ')}`) : undefined;
}

/** Every route (the identity endpoints included) with a rule in report mode. */
export function reportModeRules(config: PolicyConfig): ReportModeEntry[] {
  const out: ReportModeEntry[] = [];
  const login = config.identity?.login;
  if (login) {
    const e = entry('identity-login', login.pos, loginReport(config.defaults), login.rate_limits);
    if (e) out.push(e);
  }
  // The decrypt, logout and phone endpoints take defaults' rate limits as they are (snapshot.ts sessionRoute).
  for (const [route, endpoint] of [['identity-decrypt', config.identity?.decrypt], ['identity-logout', config.identity?.logout], ['identity-phone', config.identity?.phone]] as const) {
    const e = endpoint && entry(route, endpoint.pos, loginReport(config.defaults), config.defaults.rate_limits);
    if (e) out.push(e);
  }
  for (const r of config.routes) {
    const e = entry(r.name, r.pos, r.report ?? [], r.rate_limits);
    if (e) out.push(e);
  }
  return out;
}
