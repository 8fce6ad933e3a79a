// The same five patterns, read from a policy file instead of a live endpoint. The file goes
// through the gateway's own loader (policy/load.ts), so a file wxgw would reject is reported as
// `validate` reports it, error by error with its line; a loadable one is then checked for what
// the loader allows but a careful deployment would not: routes without a rate limit, user data
// without masking, callback-looking paths without signature checks, admin reachable from
// anywhere, short HSTS, CORS wildcards, lenient header and path parsing. Every finding points
// at the policy line.
//
//   lintPolicy(file, report, env?)

import { readFile } from 'node:fs/promises';
import { loadPolicy } from '../policy/load.js';
import { isLoopback } from '../policy/addresses.js';
import type { KeyPath } from '../policy/key-path.js';
import { readYaml, type Locator } from '../policy/yaml-source.js';
import { foldName } from '../masking/names.js';
import { loadCertificates } from '../tls/load.js';
import { PolicyError, type CorsConfig, type MaskProfileConfig, type PolicyConfig, type RouteConfig } from '../types/policy.js';
import type { Level, Location, ReportBuilder } from './report.js';

const HSTS_MIN = 15_552_000;
const SKEW_MAX = 300_000;
const CALLBACK_PATH = /callback|notify|webhook|\/wx\/push|\/wechat\//i;
const ADMIN_PATH = /^\/(admin|manage|management|internal|actuator|debug)(\/|$)/i;
const MUST_DROP = ['sessionkey', 'unionid'];

interface Ctx {
  file: string;
  locator: Locator;
  report: ReportBuilder;
  /** Mask profiles already faulted: several routes share one, and one finding says it. */
  faultedProfiles: Set<string>;
}

function at(ctx: Ctx, path: KeyPath, anchor: 'key' | 'value' = 'key'): Location {
  const p = ctx.locator.position(path, anchor);
  return { file: ctx.file, line: p.line, col: p.col };
}

function add(ctx: Ctx, rule: string, level: Level, path: KeyPath, message: string, evidence: string[] = []): void {
  ctx.report.add({ rule, level, message, evidence, location: at(ctx, path) });
}

/** Returns false when the file is rejected (its errors are then the findings). */
export async function lintPolicy(file: string, report: ReportBuilder, env?: Record<string, string | undefined>): Promise<boolean> {
  let config: PolicyConfig;
  try {
    const loaded = await loadPolicy(file, env ? { env } : {});
    config = loaded.config;
    for (const w of loaded.warnings) {
      report.add({ rule: 'WX0-POLICY-INVALID', level: 'note', message: `${w.path || '(document)'}: ${w.message}`, evidence: [], location: { file: w.file, line: w.line, col: w.col } });
    }
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const d of err.diagnostics) {
      report.add({
        rule: 'WX0-POLICY-INVALID',
        level: d.severity === 'error' ? 'error' : 'note',
        message: `${d.path || '(document)'}: ${d.message}`,
        evidence: [],
        location: { file: d.file, line: d.line, col: d.col },
      });
    }
    return false;
  }
  const ctx: Ctx = { file, locator: readYaml(await readFile(file, 'utf8'), file).locator, report, faultedProfiles: new Set() };
  lintTls(ctx, config);
  lintServer(ctx, config);
  const before = report.findings.length;
  config.routes.forEach((route, i) => lintRoute(ctx, config, route, i));
  if (config.defaults.cors) lintCors(ctx, config.defaults.cors, ['defaults', 'cors']);
  passWhereQuiet(ctx, config, report.findings.slice(before).map((f) => f.rule));
  return true;
}

function lintTls(ctx: Ctx, config: PolicyConfig): void {
  if (!config.server.https) {
    add(ctx, 'WX2-NO-TLS', 'note', ['server', 'https'], 'TLS ends before wxgw (server.https: off): scan the public URL to check the chain and HSTS the clients get');
    return;
  }
  const { diagnostics } = loadCertificates(config.tls);
  for (const d of diagnostics) {
    ctx.report.add({ rule: 'WX1-CHAIN', level: d.severity, message: `${d.path}: ${d.message}`, evidence: [], location: { file: d.file, line: d.line, col: d.col } });
  }
  if (!diagnostics.some((d) => d.severity === 'error')) {
    add(ctx, 'WX1-CHAIN', 'pass', ['tls', 'certificates'], `${config.tls.certificates.length} certificate chain(s) verified`);
  }
  add(ctx, 'WX1-TLS-VERSION', 'pass', ['tls'], `${config.tls.min_version} and above only, forward-secret AEAD cipher suites only`);
  const hsts = config.tls.hsts;
  if (!hsts) add(ctx, 'WX2-HSTS', 'error', ['tls'], 'no tls.hsts: HTTPS answers carry no Strict-Transport-Security');
  else if (hsts.max_age < HSTS_MIN) add(ctx, 'WX2-HSTS', 'warning', ['tls', 'hsts', 'max_age'], `tls.hsts.max_age is ${hsts.max_age} s, less than six months; production wants 365d`);
  else if (!hsts.include_subdomains) add(ctx, 'WX2-HSTS', 'note', ['tls', 'hsts', 'include_subdomains'], 'tls.hsts without include_subdomains');
  else add(ctx, 'WX2-HSTS', 'pass', ['tls', 'hsts'], 'HSTS of six months or more, with subdomains');
}

function lintServer(ctx: Ctx, config: PolicyConfig): void {
  const { server } = config;
  if (server.http) add(ctx, 'WX2-PLAIN-HTTP', 'pass', ['server', 'http'], 'plain HTTP only redirects to https (mode: redirect)');
  if (server.admin && !isLoopback(server.admin.listen.host)) {
    add(ctx, 'WX5-ADMIN-EXPOSED', 'error', ['server', 'admin', 'listen'], `the admin listener is on ${server.admin.listen.host}, not a loopback address`);
  }
  if (server.headers.underscores === 'allow') {
    add(ctx, 'WX6-PARSER-DIFFERENTIAL', 'warning', ['server', 'headers', 'underscores'], 'header names with `_` are passed on: backends that fold `_` into `-` read X_WX_OpenID as X-WX-OpenID');
  }
  if (server.paths.semicolons === 'keep') {
    add(ctx, 'WX6-PARSER-DIFFERENTIAL', 'warning', ['server', 'paths', 'semicolons'], '`;` path parameters are kept: a backend that strips them routes /admin;x as /admin while rules saw another path');
  }
}

function routePath(route: RouteConfig): string {
  return route.match.path ?? route.match.path_prefix ?? '';
}

function dropsSecrets(profile: MaskProfileConfig): string[] {
  const dropped = new Set(profile.drop.map((t) => foldName(t.kind === 'key' ? t.key : String(t.path[t.path.length - 1]))));
  return MUST_DROP.filter((k) => !dropped.has(k));
}

function lintRoute(ctx: Ctx, config: PolicyConfig, route: RouteConfig, i: number): void {
  const where = ['routes', i];
  const name = `route ${route.name} (${routePath(route) || 'any path'})`;
  const callback = route.wechat_callback ?? route.wechatpay_notify;
  if (!callback && CALLBACK_PATH.test(routePath(route))) {
    add(ctx, 'WX5-CALLBACK-UNVERIFIED', 'error', where, `${name} looks like a callback but has neither wechat_callback nor wechatpay_notify: anyone can post to it`);
  } else if (callback && callback.max_skew > SKEW_MAX) {
    const key = route.wechat_callback ? 'wechat_callback' : 'wechatpay_notify';
    add(ctx, 'WX5-CALLBACK-UNVERIFIED', 'warning', [...where, key, 'max_skew'], `${name} accepts callbacks ${callback.max_skew / 1000} s old: a captured one can be replayed that long; 300s is WeChat's own window`);
  } else if (callback) {
    add(ctx, 'WX5-CALLBACK-UNVERIFIED', 'pass', where, `${name}: signature, timestamp and nonce checked`);
  }

  if (route.rate_limits.length === 0 && !callback) {
    add(ctx, 'WX5-NO-RATE-LIMIT', 'error', where, `${name} has no rate limit (neither rate_limit nor defaults.rate_limit)`);
  } else if (route.identity_required && route.rate_limits.every((r) => r.key === 'ip')) {
    add(ctx, 'WX5-NO-RATE-LIMIT', 'note', where, `${name} requires a user but limits per address only: users behind one NAT share a budget`);
  }

  if (!route.mask && !callback) {
    add(
      ctx,
      'WX4-UNMASKED-ROUTE',
      route.identity_required ? 'error' : 'warning',
      where,
      `${name}${route.identity_required ? ' serves signed-in users but' : ''} has no mask profile: session_key, unionid and personal data reach clients as the backend sends them`,
    );
  } else if (route.mask) {
    const profile = config.mask_profiles.get(route.mask);
    const missing = profile ? dropsSecrets(profile) : [];
    if (profile && missing.length > 0 && !ctx.faultedProfiles.has(profile.name)) {
      ctx.faultedProfiles.add(profile.name);
      add(ctx, 'WX4-UNMASKED-ROUTE', 'warning', ['mask_profiles', profile.name], `mask profile ${profile.name} (used by ${name}) does not drop ${missing.join(', ')}`);
    }
  }

  if (ADMIN_PATH.test(routePath(route)) && route.allow.any) {
    add(ctx, 'WX5-ADMIN-EXPOSED', 'warning', where, `${name} is open to every address (allow: any): restrict it with allow to your own network`);
  }
  if (route.cors && route.cors !== config.defaults.cors) lintCors(ctx, route.cors, [...where, 'cors']);
}

/** Says what was checked and found fine, for the rules no route was faulted on. */
function passWhereQuiet(ctx: Ctx, config: PolicyConfig, faulted: string[]): void {
  const quiet = (rule: string): boolean => !faulted.includes(rule);
  const n = config.routes.length;
  if (quiet('WX5-NO-RATE-LIMIT')) add(ctx, 'WX5-NO-RATE-LIMIT', 'pass', ['routes'], `every route but WeChat's callbacks has a rate limit (${n} route(s))`);
  if (quiet('WX4-UNMASKED-ROUTE')) add(ctx, 'WX4-UNMASKED-ROUTE', 'pass', ['routes'], 'every route but callbacks masks its JSON answers with a profile that drops session_key and unionid');
  if (quiet('WX3-CORS-WILDCARD') && quiet('WX3-CORS-CREDENTIALS')) {
    const cors = config.routes.filter((r) => r.cors).length;
    add(ctx, 'WX3-CORS-CREDENTIALS', 'pass', ['routes'], cors > 0 ? `${cors} route(s) with CORS, exact origins only` : 'no route answers CORS requests');
  }
  if (quiet('WX5-CALLBACK-UNVERIFIED') && !config.routes.some((r) => r.wechat_callback ?? r.wechatpay_notify)) {
    add(ctx, 'WX5-CALLBACK-UNVERIFIED', 'pass', ['routes'], 'no route looks like a callback');
  }
  const server = config.server;
  if (server.headers.underscores !== 'allow' && server.paths.semicolons !== 'keep') {
    add(ctx, 'WX6-PARSER-DIFFERENTIAL', 'pass', ['server'], `header names with \`_\` are ${server.headers.underscores === 'drop' ? 'dropped' : 'refused'}, \`;\` path parameters ${server.paths.semicolons === 'reject' ? 'refused' : 'stripped'}`);
  }
}

function lintCors(ctx: Ctx, cors: CorsConfig, where: KeyPath): void {
  for (const origin of cors.origins) {
    if (origin === '*' || origin === 'null') {
      add(ctx, origin === '*' ? 'WX3-CORS-WILDCARD' : 'WX3-CORS-CREDENTIALS', cors.credentials ? 'error' : 'warning', [...where, 'origins'], `CORS allows the origin ${origin}${cors.credentials ? ' with credentials' : ''}`);
    } else if (origin.includes('*')) {
      add(ctx, 'WX3-CORS-WILDCARD', 'note', [...where, 'origins'], `CORS allows every subdomain matching ${origin}${cors.credentials ? ', with credentials' : ''}: any of them that serves user content can read the answers`);
    }
  }
}
