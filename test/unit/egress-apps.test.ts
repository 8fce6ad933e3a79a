// Which app an egress call is for: prefix before header before the default, names and appids,
// unknown names refused, WeChat's own API roots never taken for a prefix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appByAppid, selectApp, servedAppids, type Selection } from '../../gateway/egress/apps.js';
import type { PolicyConfig } from '../../gateway/types/policy.js';

const pos = { file: 'policy.yaml', line: 1, col: 1 };
const policy = {
  wechat: {
    appid: 'wx0000000000000000',
    app_secret: 'default-secret',
    api_base: new URL('https://api.weixin.qq.com'),
    api_timeout: 5000,
    pos,
    apps: {
      eshop: { appid: 'wx1111111111111111', app_secret: 'eshop-secret', pos },
      pushonly: { appid: 'wx2222222222222222', token: 't', pos },
      wxa: { appid: 'wx3333333333333333', app_secret: 'wxa-secret', pos },
    },
  },
} as unknown as PolicyConfig;

const pick = (path: string, header?: string): Selection => selectApp({ headers: header === undefined ? {} : { 'x-wx-app': header }, path }, policy);
const appOf = (s: Selection): string | undefined => (s.kind === 'app' ? `${s.app.appid} ${s.path} ${s.chosen}` : s.kind);

test('no prefix or header: the default app, the path as sent', () => {
  assert.equal(appOf(pick('/cgi-bin/message/custom/send')), 'wx0000000000000000 /cgi-bin/message/custom/send false');
});

test('prefix by name or appid is removed; header by name or appid', () => {
  assert.equal(appOf(pick('/eshop/cgi-bin/user/info')), 'wx1111111111111111 /cgi-bin/user/info true');
  assert.equal(appOf(pick('/wx1111111111111111/wxa/msg_sec_check')), 'wx1111111111111111 /wxa/msg_sec_check true');
  assert.equal(appOf(pick('/cgi-bin/user/info', 'eshop')), 'wx1111111111111111 /cgi-bin/user/info true');
  assert.equal(appOf(pick('/cgi-bin/user/info', ' wx1111111111111111 ')), 'wx1111111111111111 /cgi-bin/user/info true');
  assert.equal(appOf(pick('/cgi-bin/user/info', 'wx0000000000000000')), 'wx0000000000000000 /cgi-bin/user/info true');
});

test('the prefix wins over the header, which is reported when it names another app', () => {
  const s = pick('/eshop/cgi-bin/user/info', 'wx0000000000000000');
  assert.equal(appOf(s), 'wx1111111111111111 /cgi-bin/user/info true');
  assert.equal(s.kind === 'app' && s.overridden, 'wx0000000000000000');
  const same = pick('/eshop/cgi-bin/user/info', 'wx1111111111111111');
  assert.equal(same.kind === 'app' && same.overridden, undefined);
});

test('unknown names are refused, by header or before an API root; other paths stay the default app\'s', () => {
  assert.deepEqual(pick('/cgi-bin/user/info', 'nosuch'), { kind: 'unknown', name: 'nosuch' });
  assert.deepEqual(pick('/nosuch/cgi-bin/user/info'), { kind: 'unknown', name: 'nosuch' });
  assert.deepEqual(pick('/nosuch/cgi-bin/user/info', 'eshop'), { kind: 'unknown', name: 'nosuch' });
  assert.equal(appOf(pick('/nosuch/other')), 'wx0000000000000000 /nosuch/other false');
});

test('an app named like an API root is no prefix; an app without app_secret is no_secret', () => {
  assert.equal(appOf(pick('/wxa/business/getuserphonenumber')), 'wx0000000000000000 /wxa/business/getuserphonenumber false');
  assert.equal(appOf(pick('/cgi-bin/user/info', 'wxa')), 'wx3333333333333333 /cgi-bin/user/info true');
  const s = pick('/pushonly/cgi-bin/user/info');
  assert.equal(s.kind, 'no_secret');
  assert.match(s.kind === 'no_secret' ? s.message : '', /wechat\.apps\.pushonly\.app_secret/);
});

test('token calls find their app by appid only; the served appids exclude apps without a secret', () => {
  assert.equal(appByAppid(policy, 'wx1111111111111111')?.name, 'eshop');
  assert.equal(appByAppid(policy, 'eshop'), undefined);
  assert.equal(appByAppid(policy, 'wx2222222222222222'), undefined);
  assert.deepEqual(servedAppids(policy), ['wx0000000000000000', 'wx1111111111111111', 'wx3333333333333333']);
});
