// Report mode as the policy spells it: `report: [...]` on a route or in defaults (a route's list
// replaces the default one whole), `mode: report` on one rate limit, the warnings for a kind with
// nothing to report, and the list `wxgw validate` prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reportModeRules } from '../../gateway/policy/report-mode.js';
import { ENV, accept, edit, reject } from '../fixtures/policy/harness.js';

// BASE: routes api (line 21, its last line 24) and pay (25-27), line 28 `defaults: { allow: any }`.

test('report lists and per-limit modes compile onto each route; every existing form stays valid', async () => {
  const text = edit({
    24: [
      '    timeout: 1.5s',
      '    allow: [192.0.0.0/8]',
      '    report: [allow, rate_limit]',
      '    rate_limit: [{ key: ip, limit: 10, window: 1s }, { key: ip, limit: 100, window: 1m }]',
    ].join('\n'),
    27: '    upstream: billing\n    rate_limit: [{ key: ip, limit: 10, window: 1s }, { key: ip, limit: 100, window: 1m, mode: report }, { key: ip, limit: 5, window: 1s, mode: enforce }]',
    28: 'defaults: { allow: any, deny: [192.0.2.0/24], report: [deny] }',
  });
  const { config, warnings } = await accept(text);
  assert.deepEqual(warnings, []);
  const [api, pay] = config.routes;
  assert.deepEqual(api!.report, ['allow', 'rate_limit'], 'the route\'s own list, not merged with the default one');
  assert.deepEqual(api!.rate_limits.map((r) => r.mode), ['report', 'report']);
  assert.deepEqual(pay!.report, ['deny'], 'inherited from defaults');
  assert.deepEqual(pay!.rate_limits.map((r) => r.mode), [undefined, 'report', undefined]);
  assert.deepEqual(config.defaults.report, ['deny']);

  assert.deepEqual(
    reportModeRules(config).map((e) => ({ route: e.route, line: e.pos.line, rules: e.rules })),
    [
      { route: 'api', line: 21, rules: ['allow', 'rate_limit'] },
      { route: 'pay', line: 25 + 3, rules: ['deny', 'rate_limit routes[1].rate_limit[1]'] },
    ],
  );
});

test('a policy without report mode compiles exactly as before: no report key, no mode on limits', async () => {
  const { config } = await accept(edit({ 27: '    upstream: billing\n    rate_limit: { key: ip, limit: 10, window: 1s }' }));
  for (const r of config.routes) assert.equal('report' in r, false);
  assert.equal('mode' in config.routes[1]!.rate_limits[0]!, false);
  assert.deepEqual(reportModeRules(config), []);
});

test('`report: []` on a route enforces everything the defaults put in report mode', async () => {
  const { config } = await accept(edit({ 27: '    upstream: billing\n    report: []', 28: 'defaults: { allow: any, deny: [192.0.2.0/24], report: [deny] }' }));
  assert.deepEqual(config.routes[0]!.report, ['deny']);
  assert.equal(config.routes[1]!.report, undefined);
});

test('a kind the route has no rule for is a warning that says so; an unknown kind or a repeat is an error', async () => {
  const { warnings } = await accept(edit({ 27: '    upstream: billing\n    report: [allow, deny, callback, identity_required, rate_limit, mask, cors]' }));
  assert.deepEqual(
    warnings.map((w) => [w.path, w.severity]),
    [0, 1, 2, 3, 4, 5].map((i) => [`routes[1].report[${i}]`, 'warning']),
  );
  assert.match(warnings[0]!.message, /reports nothing: the route allows `any` address/);
  assert.match(warnings[5]!.message, /the route masks nothing; remove `mask` from report/);

  const unknown = await reject(edit({ 27: '    upstream: billing\n    report: [allow, ratelimit]' }));
  assert.ok(unknown.some((d) => d.path === 'routes[1].report[1]' && d.severity === 'error'), JSON.stringify(unknown));
  const repeated = await reject(edit({ 27: '    upstream: billing\n    report: [cors, cors]' }));
  assert.ok(repeated.some((d) => d.path.startsWith('routes[1].report') && d.severity === 'error'), JSON.stringify(repeated));
  const badMode = await reject(edit({ 27: '    upstream: billing\n    rate_limit: { key: ip, limit: 1, window: 1s, mode: shadow }' }));
  assert.ok(badMode.some((d) => d.path === 'routes[1].rate_limit.mode'), JSON.stringify(badMode));
});

test('the login endpoint takes allow and deny in report mode from defaults, never cors, and keeps an enforced address limit', async () => {
  const env = { ...ENV, WX_APP_SECRET: 'app-secret-value', SESSION_KEY: 'k'.repeat(40) };
  const { config } = await accept(
    edit({
      17: ['wechat: { appid: wx5823bf96d3bd56c7, app_secret: "${WX_APP_SECRET}" }', 'identity:', '  login: { path: /wx/login }', '  session: { signing_key: "${SESSION_KEY}" }', 'upstreams:'].join('\n'),
      28: 'defaults: { allow: any, deny: [192.0.2.0/24], cors: { origins: ["https://app.example.com"] }, report: [deny, cors, rate_limit], rate_limit: { key: ip, limit: 5, window: 1m } }',
    }),
    env,
  );
  const login = reportModeRules(config).find((e) => e.route === 'identity-login');
  assert.deepEqual(login?.rules, ['deny', 'rate_limit defaults.rate_limit']);
  const limits = config.identity!.login!.rate_limits;
  assert.deepEqual(limits.map((l) => [l.limit, l.mode]), [[5, 'report'], [60, undefined]], 'the gateway\'s own login limit is added, enforced');
});
