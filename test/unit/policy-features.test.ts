import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENV, ROOT, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

// BASE: line 17 `upstreams:`, routes api (line 21, its last line 24) and pay (25-27), line 28 `defaults: { allow: any }`.

const SECRETS = {
  ...ENV,
  WX_APP_SECRET: 'app-secret-value',
  SESSION_KEY: 'k'.repeat(40),
  WX_TOKEN: 'wxgwToken123',
  WX_AES: 'a'.repeat(43),
  HASH_KEY: 'h'.repeat(32),
  PAY_KEY: 'p'.repeat(32),
};

const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
writeFileSync(join(ROOT, 'certs', 'jwt.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(join(ROOT, 'certs', 'pay-ec.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
writeFileSync(join(ROOT, 'certs', 'pay.pub.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(join(ROOT, 'certs', 'not-a-key.pem'), '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n');

const SECTIONS = [
  'store: { kind: redis, redis_url: "redis://:pw@redis:6379/2", key_prefix: "gw1:", command_timeout: 80ms, on_unavailable: allow }',
  'wechat:',
  '  appid: wx5823bf96d3bd56c7',
  '  app_secret: ${WX_APP_SECRET}',
  '  token: ${WX_TOKEN}',
  '  encoding_aes_key: ${WX_AES}',
  '  api_base: http://127.0.0.1:7000/wx',
  'wechatpay:',
  '  apiv3_key: ${PAY_KEY}',
  '  public_keys: [{ id: PUB_KEY_ID_0114232134912410000000000000, file: ../certs/pay.pub.pem }]',
  'identity:',
  '  login: { path: /wx/login, upstream: { upstream: legacy, path: /users/login } }',
  '  session: { signing_key: "${SESSION_KEY}", ttl: 30m }',
  '  jwt: { public_key: ../certs/jwt.pub.pem, issuer: legacy, audience: mini, openid_claim: oid }',
  '  token: { cookie: wx_session }',
  'mask_profiles:',
  '  wx-user:',
  '    drop: [session_key, "$.data.unionid"]',
  '    partial: { phone: { keep_start: 3, keep_end: 4 }, "$.list[*].idcard": { keep_start: 6, keep_end: 4, char: "#" } }',
  '    replace: { address: "[hidden]" }',
  '    hash: [openid]',
  '    hash_key: ${HASH_KEY}',
  '    detect: [cn_mobile, email, cn_mobile]',
  '    content_types: [Text/Plain]',
  'upstreams:',
];

test('a policy using every feature compiles to typed config', async () => {
  const text = edit({
    17: SECTIONS.join('\n'),
    24: [
      '    timeout: 1.5s',
      '    identity_required: true',
      '    rate_limit: [{ key: openid, limit: 100, window: 60s, fallback_key: ip }, { key: ip, limit: 1000, window: 1h, scope: global }]',
      '    on_mask_error: pass',
    ].join('\n'),
    27: '    upstream: billing\n    wechatpay_notify: { decrypt: true }\n    mask: off',
    28: 'defaults: { allow: any, mask: wx-user, rate_limit: { key: ip, limit: 50, window: 10s } }',
  });
  const { config, warnings } = await accept(text, SECRETS);
  assert.deepEqual(warnings, []);
  assert.deepEqual({ ...config.store, pos: undefined }, {
    kind: 'redis',
    redis_url: 'redis://:pw@redis:6379/2',
    key_prefix: 'gw1:',
    command_timeout: 80,
    on_unavailable: 'allow',
    pos: undefined,
  });
  assert.equal(config.wechat!.api_base.href, 'http://127.0.0.1:7000/wx');
  assert.equal(config.wechat!.api_timeout, 5000);
  assert.deepEqual(config.wechatpay!.keys.map((k) => k.serial), ['PUB_KEY_ID_0114232134912410000000000000']);
  assert.match(config.wechatpay!.keys[0]!.public_key_pem, /BEGIN PUBLIC KEY/);
  const identity = config.identity!;
  assert.deepEqual(identity.login && { path: identity.login.path, upstream: identity.login.upstream }, { path: '/wx/login', upstream: { upstream: 'legacy', path: '/users/login' } });
  assert.deepEqual(identity.session, { signing_key: SECRETS.SESSION_KEY, ttl: 1_800_000, issuer: 'wxgw' });
  assert.equal(identity.jwt!.key.kind, 'public_key');
  assert.deepEqual({ ...identity.jwt!, key: undefined }, { key: undefined, issuer: 'legacy', audience: 'mini', openid_claim: 'oid', clock_tolerance: 30_000 });
  assert.deepEqual(identity.token, { cookie: 'wx_session' });
  assert.equal(identity.upstream_header, 'x-wx-openid');
  const profile = config.mask_profiles.get('wx-user')!;
  assert.deepEqual({ ...profile, pos: undefined }, {
    name: 'wx-user',
    drop: [{ kind: 'key', key: 'session_key' }, { kind: 'path', path: ['data', 'unionid'], text: '$.data.unionid' }],
    partial: [
      { target: { kind: 'key', key: 'phone' }, rule: { keep_start: 3, keep_end: 4, char: '*' } },
      { target: { kind: 'path', path: ['list', '*', 'idcard'], text: '$.list[*].idcard' }, rule: { keep_start: 6, keep_end: 4, char: '#' } },
    ],
    replace: [{ target: { kind: 'key', key: 'address' }, value: '[hidden]' }],
    hash: [{ kind: 'key', key: 'openid' }],
    hash_key: SECRETS.HASH_KEY,
    detect: ['cn_mobile', 'email'],
    content_types: ['text/plain'],
    stream_above: 1024 * 1024,
    pos: undefined,
  });
  const [api, pay] = config.routes;
  assert.equal(api!.identity_required, true);
  assert.equal(api!.mask, 'wx-user');
  assert.equal(api!.on_mask_error, 'pass');
  assert.deepEqual(
    api!.rate_limits.map((r) => ({ ...r, pos: undefined })),
    [
      { key: 'openid', limit: 100, window: 60_000, fallback_key: 'ip', scope: 'route', ipv6_prefix: 64, pos: undefined },
      { key: 'ip', limit: 1000, window: 3_600_000, scope: 'global', ipv6_prefix: 64, pos: undefined },
    ],
  );
  assert.equal(pay!.mask, undefined);
  assert.deepEqual(pay!.rate_limits.map((r) => [r.key, r.limit, r.window]), [['ip', 50, 10_000]]);
  assert.deepEqual({ ...pay!.wechatpay_notify!, pos: undefined }, { decrypt: true, max_skew: 300_000, max_body: 65_536, pos: undefined });
});

test('features a route relies on must be configured, and references must exist', async () => {
  const text = edit({
    24: [
      '    timeout: 1.5s',
      '    identity_required: true',
      '    rate_limit: { key: openid, limit: 100, window: 60s }',
      '    mask: wx-usr',
      '    wechat_callback: { decrypt: true }',
    ].join('\n'),
    27: '    upstream: billing\n    wechatpay_notify: {}\n    rate_limit: { key: ip, limit: 5, window: 1m, fallback_key: ip }',
    28: 'mask_profiles:\n  wx-user: { drop: [session_key] }\ndefaults: { allow: any }',
  });
  expectDiagnostics(await reject(text), [
    { line: 25, col: 24, path: 'routes[0].identity_required', message: ['needs an `identity` section'] },
    { line: 25, col: 24, path: 'routes[0].identity_required', message: ['a callback route cannot require identity'] },
    { line: 26, col: 5, path: 'routes[0].rate_limit', severity: 'warning', message: ['has no fallback_key', 'fallback_key: ip'] },
    { line: 26, col: 24, path: 'routes[0].rate_limit.key', message: ['`openid` counts verified identities', 'no `identity` section'] },
    { line: 27, col: 11, path: 'routes[0].mask', message: ['`wx-usr` is not defined under mask_profiles; did you mean `wx-user`?'] },
    { line: 28, col: 5, path: 'routes[0].wechat_callback', message: ['needs `wechat.token`'] },
    { line: 32, col: 5, path: 'routes[1].wechatpay_notify', message: ['needs a `wechatpay` section'] },
    { line: 33, col: 64, path: 'routes[1].rate_limit.fallback_key', message: ['applies only to `key: openid`'] },
  ]);
});

test('identity, store and masking sections are checked for what they need, secrets never quoted', async () => {
  const text = edit({
    17: [
      'store: { kind: redis }',
      'wechat: { appid: wx5823bf96d3bd56c7, token: "bad token!", encoding_aes_key: "${WX_AES}" }',
      'identity:',
      '  login: { path: /wx/../login }',
      '  jwt: { secret: "${SHORT}", jwks: ../certs/missing.json, algorithms: [RS256] }',
      'mask_profiles:',
      '  wx-user: { drop: ["$.list[0].phone"], hash: [openid] }',
      'upstreams:',
    ].join('\n'),
  });
  const diagnostics = await reject(text, { ...SECRETS, SHORT: 'short-secret', WX_AES: 'x'.repeat(40) });
  expectDiagnostics(diagnostics, [
    { line: 17, col: 16, path: 'store.kind', message: ['`redis` needs `redis_url`'] },
    { line: 18, col: 45, path: 'wechat.token', message: ['is not a message-push Token', '3 to 32 letters and digits'] },
    { line: 18, col: 45, path: 'wechat.token', severity: 'warning', message: ['is a secret written into the policy file'] },
    { line: 18, col: 77, path: 'wechat.encoding_aes_key', message: ['is not an EncodingAESKey'] },
    { line: 20, col: 3, path: 'identity.login', message: ['needs `identity.session`'] },
    { line: 20, col: 3, path: 'identity.login', message: ['needs `wechat.appid` and `wechat.app_secret`'] },
    { line: 20, col: 3, path: 'identity.login', severity: 'warning', message: ['has no rate limit that counts logins', '{ key: ip, limit: 60, window: 1m }'] },
    { line: 20, col: 18, path: 'identity.login.path', message: ['`/wx/../login` can never match', 'normalises to `/login`'] },
    { line: 21, col: 3, path: 'identity.jwt', message: ['sets `secret` and `jwks`; keep exactly one'] },
    { line: 21, col: 18, path: 'identity.jwt.secret', message: ['is too short for an HMAC token secret', 'at least 32'] },
    { line: 21, col: 36, path: 'identity.jwt.jwks', message: ['cannot read', 'missing.json', 'no such file'] },
    { line: 23, col: 21, path: 'mask_profiles.wx-user.drop[0]', message: ['`$.list[0].phone` cannot be read as a path', 'use [*] for every element'] },
    { line: 23, col: 47, path: 'mask_profiles.wx-user.hash', message: ['needs `hash_key`'] },
  ]);
  for (const d of diagnostics) {
    assert.ok(!d.message.includes('short-secret') && !d.message.includes('xxxxxxxx') && !d.message.includes('bad token'), d.message);
  }
});

test('verification key files are parsed at load, naming the file and what is wrong', async () => {
  const text = edit({
    17: [
      'wechatpay: { public_keys: [{ id: PUB_KEY_ID_01, file: ../certs/not-a-key.pem }] }',
      'identity: { jwt: { public_key: ../certs/privkey.pem } }',
      'upstreams:',
    ].join('\n'),
  });
  expectDiagnostics(await reject(text), [
    { line: 17, col: 55, path: 'wechatpay.public_keys[0].file', message: ['not-a-key.pem: cannot be read as a PEM public key'] },
    { line: 18, col: 32, path: 'identity.jwt.public_key', message: ['privkey.pem: cannot be read as a PEM public key'] },
  ]);
});

test('callback routes cannot require identity, pay keys must be RSA, and no route may take the login path', async () => {
  const text = edit({
    17: [
      'wechat: { appid: wx5823bf96d3bd56c7, token: "${WX_TOKEN}", app_secret: "${WX_APP_SECRET}" }',
      'wechatpay: { public_keys: [{ id: PUB_KEY_ID_01, file: ../certs/pay-ec.pub.pem }] }',
      'identity: { login: { path: /pay/notify }, session: { signing_key: "${SESSION_KEY}" } }',
      'upstreams:',
    ].join('\n'),
    24: '    timeout: 1.5s\n    wechat_callback: {}',
    27: '    upstream: billing\n    wechatpay_notify: {}\n    identity_required: true',
    28: 'defaults: { allow: any, identity_required: true }',
  });
  expectDiagnostics(await reject(text, SECRETS), [
    { line: 18, col: 55, path: 'wechatpay.public_keys[0].file', message: ['pay-ec.pub.pem: the key is not an RSA key', 'SHA256-RSA'] },
    { line: 19, col: 13, path: 'identity.login', severity: 'warning', message: ['has no rate limit that counts logins'] },
    { line: 28, col: 22, path: 'routes[0].wechat_callback', message: ['a callback route cannot require identity (inherited from defaults.identity_required'] },
    { line: 30, col: 20, path: 'routes[1].match.path', message: ['`/pay/notify` is identity.login.path, which the gateway answers itself'] },
    { line: 33, col: 24, path: 'routes[1].identity_required', message: ['a callback route cannot require identity: WeChat sends no token'] },
  ]);
});
