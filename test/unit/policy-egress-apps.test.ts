// The egress with several apps: an app it may be asked for without an app_secret, or with a name
// the path prefix cannot carry, is a warning at the app's key.
import { test } from 'node:test';
import { ENV, accept, edit, expectDiagnostics } from '../fixtures/policy/harness.js';

const env = { ...ENV, WX_SECRET: 'a-secret-of-some-length', PUSH_TOKEN: "pushToken123", SHOP_SECRET: 'another-secret-of-some-length' };
const WECHAT = `wechat:
  appid: wx0123456789abcdef
  app_secret: \${WX_SECRET}
  apps:
    mini:
      appid: wx1111111111111111
      app_secret: \${SHOP_SECRET}
    push:
      appid: wx2222222222222222
      token: \${PUSH_TOKEN}
    wxa:
      appid: wx3333333333333333
      app_secret: \${SHOP_SECRET}
`;

test('with server.egress: an app without app_secret and an app named like an API root are warnings', async () => {
  const { warnings } = await accept(edit({ 5: '  admin: { listen: "127.0.0.1:9901" }\n  egress: { listen: "127.0.0.1:9902" }' }) + WECHAT, env);
  expectDiagnostics(warnings, [
    { line: 37, col: 5, path: 'wechat.apps.push', severity: 'warning', message: ['has no `app_secret`', 'X-WX-App: push', 'wx_token_unavailable'] },
    { line: 40, col: 5, path: 'wechat.apps.wxa', severity: 'warning', message: ['cannot take it as a path prefix'] },
  ]);
});

test('without server.egress the apps need no app_secret', async () => {
  const { warnings } = await accept(edit({}) + WECHAT, env);
  expectDiagnostics(warnings, []);
});
