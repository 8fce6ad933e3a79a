// identity.decrypt and identity.logout in the policy: what they compile to, and what they need
// (a login to have a session_key, a session to end, an upstream that exists), each error at its line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reportModeRules } from '../../gateway/policy/report-mode.js';
import { ENV, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

const SECRETS = { ...ENV, WX_APP_SECRET: 'app-secret-value', SESSION_KEY: 'k'.repeat(40) };

const WECHAT = ['wechat: { appid: wx5823bf96d3bd56c7, app_secret: "${WX_APP_SECRET}" }'];

const ENDPOINTS = [
  ...WECHAT,
  'identity:',
  '  login: { path: /wx/login }',
  '  decrypt: { path: /wx/decrypt, upstream: { upstream: legacy, path: /wx/open-data } }',
  '  logout: { path: /wx/logout }',
  '  session: { signing_key: "${SESSION_KEY}" }',
  'upstreams:',
].join('\n');

test('decrypt and logout compile with their defaults', async () => {
  const text = edit({ 17: ENDPOINTS });
  const { config } = await accept(text, SECRETS);
  const identity = config.identity!;
  assert.deepEqual({ ...identity.decrypt, pos: undefined }, { path: '/wx/decrypt', upstream: { upstream: 'legacy', path: '/wx/open-data' }, max_age: 600_000, pos: undefined });
  assert.equal(identity.decrypt!.pos.line, 20);
  assert.deepEqual({ ...identity.logout, pos: undefined }, { path: '/wx/logout', scope: 'session', pos: undefined });

  const user = edit({ 21: '  logout: { path: /wx/logout, scope: user }' }, text);
  assert.equal((await accept(user, SECRETS)).config.identity!.logout!.scope, 'user');

  // They take defaults' allow in report mode like the login endpoint, and validate lists them.
  const reported = edit({ 17: ENDPOINTS, 28: 'defaults: { allow: [10.0.0.0/8], report: [allow] }' });
  const routes = reportModeRules((await accept(reported, SECRETS)).config).map((e) => `${e.route}: ${e.rules.join(', ')}`);
  assert.deepEqual(routes.filter((r) => r.startsWith('identity-')), ['identity-login: allow', 'identity-decrypt: allow', 'identity-logout: allow']);
});

test('decrypt needs a login, logout a session; upstreams, profiles and paths must exist and differ', async () => {
  const text = edit({
    17: [
      ...WECHAT,
      'identity:',
      '  jwt: { secret: "${SESSION_KEY}" }',
      '  decrypt: { path: /wx/decrypt, upstream: { upstream: legasy, path: /wx/open-data, mask: nobody }, max_age: soon }',
      '  logout: { path: /wx/decrypt }',
      'upstreams:',
    ].join('\n'),
    // A route on the decrypt path: the gateway answers it itself.
    22: '    match: { path: /wx/decrypt }',
  });
  const diagnostics = await reject(text, SECRETS);
  expectDiagnostics(diagnostics, [
    { line: 20, col: 3, path: 'identity.decrypt', message: ['needs `identity.login`', 'session_key'] },
    { line: 20, col: 55, path: 'identity.decrypt.upstream.upstream', message: ['`legasy` is not defined under upstreams', 'did you mean `legacy`?'] },
    { line: 20, col: 90, path: 'identity.decrypt.upstream.mask', message: ['`nobody` is not defined under mask_profiles'] },
    { line: 20, col: 109, path: 'identity.decrypt.max_age', message: ['`soon` is not a number followed by a unit'] },
    { line: 21, col: 3, path: 'identity.logout', message: ['needs `identity.session`'] },
    { line: 21, col: 19, path: 'identity.logout.path', message: ['`/wx/decrypt` is also identity.decrypt.path'] },
    { line: 27, col: 20, path: 'routes[0].match.path', message: ['is identity.decrypt.path, which the gateway answers itself'] },
    { line: 27, col: 20, path: 'routes[0].match.path', message: ['is identity.logout.path, which the gateway answers itself'] },
  ]);
});
