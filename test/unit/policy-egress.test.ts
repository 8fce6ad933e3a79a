// The egress and phone sections: what they ask of the rest of the policy, and the warning for an
// egress listener anyone could reach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, ENV, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';
import { listenerChange } from '../../gateway/runtime/reloader.js';

const WECHAT = `wechat:
  appid: wx0123456789abcdef
  app_secret: \${WX_SECRET}
  quotas:
    /cgi-bin/message/custom/send: { per_day: 1000 }
    /wxa/msg_sec_check: { per_day: 0 }
`;
const env = { ...ENV, WX_SECRET: 'a-secret-of-some-length' };

test('server.egress with wechat: the typed config, quotas over the documented defaults', async () => {
  const { config, warnings } = await accept(edit({ 5: '  admin: { listen: "127.0.0.1:9901" }\n  egress: { listen: "127.0.0.1:9902" }' }) + WECHAT, env);
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.egress?.listen, { host: '127.0.0.1', port: 9902 });
  assert.equal(config.wechat?.quotas?.get('/cgi-bin/message/custom/send'), 1000);
  assert.equal(config.wechat?.quotas?.get('/wxa/msg_sec_check'), 0);
  assert.equal(config.wechat?.quotas?.get('/cgi-bin/user/get'), 500);
});

test('an egress listener off loopback is a warning; without an app_secret an error', async () => {
  const { warnings } = await accept(edit({ 5: '  admin: { listen: "127.0.0.1:9901" }\n  egress: { listen: "0.0.0.0:9902" }' }) + WECHAT, env);
  expectDiagnostics(warnings, [{ line: 6, col: 21, path: 'server.egress.listen', severity: 'warning', message: ["this account's access_token", '127.0.0.1, ::1 or a pod-local address'] }]);
  expectDiagnostics(await reject(edit({ 5: '  admin: { listen: "127.0.0.1:9901" }\n  egress: { listen: "127.0.0.1:8443" }' })), [
    { line: 6, col: 3, path: 'server.egress', message: ['needs `wechat.appid` and `wechat.app_secret`'] },
    { line: 6, col: 21, path: 'server.egress.listen', message: ['already taken by server.https.listen'] },
  ]);
});

test('identity.phone needs a verified caller, the AppSecret and a known upstream', async () => {
  const phone = (upstream: string) => `identity:
  phone:
    path: /wx/phone
    upstream: { upstream: ${upstream}, path: /api/users/phone }
`;
  const jwt = '  jwt: { secret: "${JWT}", algorithms: [HS256] }\n';
  const jwtEnv = { ...env, JWT: 'jwt-secret-0123456789abcdef-0123456789abcdef' };
  const { config } = await accept(BASE + WECHAT + phone('legacy') + jwt, jwtEnv);
  assert.equal(config.identity?.phone?.path, '/wx/phone');
  const lines = BASE.split('\n').length;
  const diagnostics = await reject(BASE + phone('legasy'), jwtEnv);
  assert.deepEqual(
    diagnostics.map((d) => [d.path, d.message.slice(0, 40)]),
    [
      ['identity', 'gives no source of identity: add `login`'],
      ['identity.phone', 'needs `wechat.appid` and `wechat.app_sec'],
      ['identity.phone', 'needs a verified caller: add `identity.s'],
      ['identity.phone.upstream.upstream', '`legasy` is not defined under upstreams;'],
    ],
  );
  assert.ok(diagnostics.every((d) => d.line >= lines - 1));
});

test('adding, moving or removing the egress listener needs a restart', async () => {
  const base = (await accept(BASE + WECHAT, env)).config;
  const withEgress = (await accept(edit({ 5: '  admin: { listen: "127.0.0.1:9901" }\n  egress: { listen: "127.0.0.1:9902" }' }) + WECHAT, env)).config;
  assert.equal(listenerChange(base, withEgress), 'server.egress.listen changed from off to 127.0.0.1:9902; restart wxgw to apply it');
  assert.equal(listenerChange(withEgress, withEgress), undefined);
});
