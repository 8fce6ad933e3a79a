// `wechat.apps`: several apps beside the default one, named by wechat_callback routes and
// identity.login; WeCom corp and suite ids as app ids; names and tokens checked at their keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ENV, accept as acceptWith, edit, expectDiagnostics, reject as rejectWith } from '../fixtures/policy/harness.js';
import { wechatApp } from '../../gateway/policy/wechat-apps.js';
import { secretsInForce } from '../../gateway/rotation/in-force.js';

// BASE: line 17 `upstreams:`, route api 21-24, route pay 25-27 (its last line `upstream: billing`).
const SECRETS = {
  ...ENV,
  MINI_TOKEN: 'miniToken1',
  OA_TOKEN: 'oaToken22',
  OA_AES: 'b'.repeat(43),
  OA_SECRET: 'oa-secret',
  CORP_TOKEN: 'corpToken3',
  CORP_AES: 'c'.repeat(43),
  OLD_TOKEN: 'newToken4',
  OLD_PREVIOUS: 'oldToken4',
  BAD_TOKEN: 'no',
};
const accept = (text: string) => acceptWith(text, SECRETS);
const reject = (text: string) => rejectWith(text, SECRETS);

const WECHAT = [
  'wechat:',
  '  appid: wx5823bf96d3bd56c7',
  '  kind: miniprogram',
  '  token: ${MINI_TOKEN}',
  '  apps:',
  '    official: { appid: wx0123456789abcdef, kind: official, token: "${OA_TOKEN}", encoding_aes_key: "${OA_AES}", app_secret: "${OA_SECRET}" }',
  '    corp: { appid: ww0123456789abcdef, kind: wecom, token: "${CORP_TOKEN}", encoding_aes_key: "${CORP_AES}" }',
  '    suite: { appid: tj0123456789abcdef, kind: wecom }',
  '    old: { appid: wxfedcba9876543210, token: "${OLD_TOKEN}", previous: { token: "${OLD_PREVIOUS}", until: "2999-01-01T00:00:00Z" } }',
  'upstreams:',
];

function withRoute(callback: string): string {
  return edit({ 17: WECHAT.join('\n'), 27: `    upstream: billing\n    wechat_callback: ${callback}` });
}

test('apps beside the default one compile; each route gets its own app, the shared settings kept', async () => {
  const { config } = await accept(withRoute('{ app: corp, decrypt: true }'));
  const route = config.routes.find((r) => r.name === 'pay')!;
  assert.equal(route.wechat_callback?.app, 'corp');
  const { app, secretKey } = wechatApp(config.wechat!, 'corp');
  assert.equal(app.appid, 'ww0123456789abcdef');
  assert.equal(app.token, 'corpToken3');
  assert.equal(app.app_secret, undefined, 'the default app secret is not inherited');
  assert.equal(app.api_timeout, config.wechat!.api_timeout);
  assert.equal(secretKey('token'), 'wechat.apps.corp.token');
  assert.equal(wechatApp(config.wechat!, undefined).app.token, 'miniToken1');
  assert.equal(config.wechat!.apps!.suite!.appid, 'tj0123456789abcdef');
});

test("each app's previous values rotate as the default app's do", async () => {
  const { config } = await accept(withRoute('{ app: old }'));
  const secrets = secretsInForce(config, undefined, Date.now());
  assert.equal(secrets.get('wechat.apps.old.token')?.current, 'newToken4');
  assert.equal(secrets.get('wechat.apps.old.token')?.declared?.value, 'oldToken4');
  assert.equal(secrets.get('wechat.apps.official.encoding_aes_key')?.current, 'b'.repeat(43));
});

test('a route naming an app wechat.apps does not have is an error at its app key', async () => {
  expectDiagnostics(await reject(withRoute('{ app: oficial }')), [
    { line: 37, col: 29, path: 'routes[1].wechat_callback.app', message: ['`oficial` is not an app under wechat.apps', 'did you mean `official`?'] },
  ]);
});

test('a route whose app has no token is an error; decrypt without its key too', async () => {
  expectDiagnostics(await reject(withRoute('{ app: suite }')), [
    { line: 37, col: 24, path: 'routes[1].wechat_callback.app', message: ['needs `wechat.apps.suite.token`'] },
  ]);
  expectDiagnostics(await reject(withRoute('{ app: old, decrypt: true }')), [
    { line: 37, col: 43, path: 'routes[1].wechat_callback.decrypt', message: ['needs `wechat.apps.old.encoding_aes_key`'] },
  ]);
});

test('an app id is a wx AppID, a WeCom corp id (ww) or a suite id (tj)', async () => {
  const bad = WECHAT.map((l) => l.replace('tj0123456789abcdef', 'xx0123456789abcdef'));
  const diagnostics = await reject(edit({ 17: bad.join('\n') }));
  assert.equal(diagnostics.length, 1, JSON.stringify(diagnostics));
  assert.equal(diagnostics[0]!.path, 'wechat.apps.suite.appid');
});

test("an app's token is held to WeChat's rules like the default app's", async () => {
  const bad = WECHAT.map((l) => l.replace('CORP_TOKEN', 'BAD_TOKEN'));
  expectDiagnostics(await reject(edit({ 17: bad.join('\n') })), [
    { line: 23, col: 60, path: 'wechat.apps.corp.token', message: ['is not a message-push Token'] },
  ]);
});

function withLogin(login: string): string {
  const limited = login.replace(' }', ', rate_limit: { key: ip, limit: 60, window: 1m } }');
  const lines = [...WECHAT.slice(0, -1), 'identity:', `  login: ${limited}`, '  session: { signing_key: "${SESSION_KEY}" }', 'upstreams:'];
  return edit({ 17: lines.join('\n') });
}

test('identity.login names its app; an unknown one, or one without app_secret, is an error', async () => {
  const { config } = await acceptWith(withLogin('{ app: official, path: /wx/login }'), { ...SECRETS, SESSION_KEY: 'k'.repeat(40) });
  assert.equal(config.identity?.login?.app, 'official');
  assert.equal(wechatApp(config.wechat!, config.identity!.login!.app).app.app_secret, 'oa-secret');
  expectDiagnostics(await rejectWith(withLogin('{ app: offical, path: /wx/login }'), { ...SECRETS, SESSION_KEY: 'k'.repeat(40) }), [
    { line: 27, col: 17, path: 'identity.login.app', message: ['`offical` is not an app under wechat.apps', 'did you mean `official`?'] },
  ]);
  expectDiagnostics(await rejectWith(withLogin('{ app: old, path: /wx/login }'), { ...SECRETS, SESSION_KEY: 'k'.repeat(40) }), [
    { line: 27, col: 3, path: 'identity.login', message: ['needs `wechat.apps.old.appid` and `app_secret`'] },
  ]);
});

test('kind is held to the id: a mini-program or official account with a WeCom id, or a login as a WeCom app, is refused', async () => {
  const bad = WECHAT.map((l) => l.replace('ww0123456789abcdef, kind: wecom', 'ww0123456789abcdef, kind: official'));
  const diagnostics = await reject(edit({ 17: bad.join('\n') }));
  assert.deepEqual(diagnostics.map((d) => [d.path, d.message.includes('`kind` says official')]), [['wechat.apps.corp.appid', true]]);
  const login = await rejectWith(withLogin('{ app: corp, path: /wx/login }'), { ...SECRETS, SESSION_KEY: 'k'.repeat(40) });
  assert.deepEqual(login.map((d) => d.path), ['identity.login.app']);
  assert.match(login[0]!.message, /WeCom app/);
});
