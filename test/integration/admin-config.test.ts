// /config on the admin listener: the policy in force with every secret redacted, its hash and
// when it was put in force. A reload changes the hash and logs which routes it added, removed
// and changed; a reload that changes only a secret changes the hash too, and shows no value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { secretPaths } from '../../gateway/policy/secrets.js';
import { makeChain } from '../helpers/chain.js';
import { startTestGateway, type PolicyContext } from '../helpers/gateway.js';
import { startUpstream } from '../helpers/upstream.js';
import { sample } from '../helpers/metrics-text.js';

/** One value per secret of the schema, each unlike anything else in the policy. */
const SECRETS: Record<string, string> = {
  'tls.certificates.*.passphrase': 'Passphrase-9f1c2e7a',
  'wechat.app_secret': 'AppSecret7d3b9c0e5a1f4d2b8c6e0a9f',
  'wechat.token': 'Tok3nQ8w2e9r',
  'wechat.encoding_aes_key': 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  'wechatpay.apiv3_key': 'Apiv3Key0123456789abcdefABCDEF99',
  'identity.session.signing_key': 'SigningKey-0123456789-abcdefghij-KLMNOP',
  'identity.jwt.secret': 'JwtSecret-0123456789-abcdefghij-QRSTUV',
  'mask_profiles.*.hash_key': 'HashKey-0123456789-abcdefghij-WXYZ01',
  'wechat.previous.token': 'PrevTok3nA1b2',
  'wechat.previous.encoding_aes_key': 'ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut',
  'wechatpay.previous.apiv3_key': 'PrevApiv3Key0123456789abcdefABCD',
  'wechat.apps.*.app_secret': 'OaAppSecret0123456789abcdefABCDEF',
  'wechat.apps.*.token': 'OaTok3nZ7x6c5v',
  'wechat.apps.*.encoding_aes_key': 'OaKey0123456789abcdefghijklmnopqrstuvwxyzAB',
  'wechat.apps.*.previous.token': 'OaPrevTok3nQ1w2',
  'wechat.apps.*.previous.encoding_aes_key': 'OaPrevKey0123456789abcdefghijklmnopqrstuvwx',
  'identity.session.previous.signing_key': 'PrevSigningKey-0123456789-abcdefghij-KL',
  'server.log.openid_hmac_key': 'OpenidHmacKey-0123456789-abcdefghij-MN',
  'alerts.channels.*.url': 'https://oapi.dingtalk.com/robot/send?access_token=RobotToken0123456789abcdef',
  'alerts.channels.*.secret': 'SECrobotSigningSecret0123456789abcdef',
  'tracing.headers.*': 'Bearer OtlpToken-0123456789-abcdefghij',
};
/**
 * Secrets of sections a gateway cannot start with here without their own servers (a Redis Cluster
 * or Sentinel, WeChat Pay's certificate download): their /config redaction is shown by the test
 * named beside each.
 */
const SHOWN_ELSEWHERE: Record<string, string> = {
  'store.cluster.password': 'test/unit/policy-store-modes.test.ts',
  'store.sentinels.password': 'test/unit/policy-store-modes.test.ts',
  'store.sentinels.sentinel_password': 'test/unit/policy-store-modes.test.ts',
  'wechatpay.egress.private_key': 'test/integration/pay-egress.test.ts',
};
const ROTATED_APP_SECRET = 'AppSecretRotated0000111122223333';

/** As deploy tools do: the watcher that reloads on the change never reads a half-written file. */
function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

interface ConfigBody {
  hash: string;
  loaded_at: string;
  policy: Record<string, unknown>;
}

test('every secret of the schema has a value in this test, so a new one is redacted here too', () => {
  assert.deepEqual([...Object.keys(SECRETS), ...Object.keys(SHOWN_ELSEWHERE)].sort(), secretPaths.map((p) => p.join('.')).sort());
});

test('/config redacts every secret; the hash follows routes and secrets; each reload logs what changed', async () => {
  const upstream = await startUpstream();
  const chain = await makeChain({ passphrase: SECRETS['tls.certificates.*.passphrase']! });
  const pay = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let routes = `  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }
  - { name: old, match: { path_prefix: /old/ }, upstream: legacy }
  - { name: pages, match: { path_prefix: /pages/ }, upstream: legacy }`;
  let appSecretFile = '';
  const policy = (ctx: PolicyContext): string => {
    const payKey = join(ctx.dir, 'pay.pem');
    writeAtomic(payKey, pay.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    appSecretFile = join(ctx.dir, 'app_secret');
    writeAtomic(appSecretFile, SECRETS['wechat.app_secret']!);
    return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  log: { openid_hmac_key: "\${OPENID_HMAC_KEY}" }
tls:
  roots: ${chain.root}
  certificates:
    - { cert: ${chain.cert}, key: ${chain.key}, passphrase: "\${TLS_PASSPHRASE}" }
wechat:
  appid: wx5823bf96d3bd56c7
  app_secret: "\${file:${appSecretFile}}"
  token: "\${WX_TOKEN}"
  encoding_aes_key: "\${WX_AES_KEY}"
  previous: { token: "\${WX_PREV_TOKEN}", encoding_aes_key: "\${WX_PREV_AES_KEY}", until: "2099-01-01T00:00:00Z" }
  apps:
    official:
      appid: wx0123456789abcdef
      app_secret: "\${OA_SECRET}"
      token: "\${OA_TOKEN}"
      encoding_aes_key: "\${OA_AES_KEY}"
      previous: { token: "\${OA_PREV_TOKEN}", encoding_aes_key: "\${OA_PREV_AES_KEY}", until: "2099-01-01T00:00:00Z" }
wechatpay:
  apiv3_key: "\${APIV3_KEY}"
  previous: { apiv3_key: "\${PREV_APIV3_KEY}", until: "2099-01-01T00:00:00Z" }
  public_keys:
    - { id: PUB_KEY_ID_0114232134912410000000000000, file: ${payKey} }
identity:
  session: { signing_key: "\${SESSION_KEY}", ttl: 1h, previous: { signing_key: "\${PREV_SESSION_KEY}", until: "2099-01-01T00:00:00Z" } }
  jwt: { secret: "\${JWT_SECRET}" }
mask_profiles:
  users: { hash: [openid], hash_key: "\${HASH_KEY}" }
alerts:
  channels:
    ding: { kind: dingtalk, url: "\${DING_URL}", secret: "\${DING_SECRET}" }
  rules:
    - { name: reload, kind: reload_failed, channels: [ding] }
tracing:
  otlp_endpoint: "http://127.0.0.1:9/v1/traces"
  sample_ratio: 0
  headers: { authorization: "\${OTLP_AUTH}" }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
${routes}
defaults: { allow: any }
`;
  };
  const env = {
    TLS_PASSPHRASE: SECRETS['tls.certificates.*.passphrase'],
    WX_TOKEN: SECRETS['wechat.token'],
    WX_AES_KEY: SECRETS['wechat.encoding_aes_key'],
    APIV3_KEY: SECRETS['wechatpay.apiv3_key'],
    SESSION_KEY: SECRETS['identity.session.signing_key'],
    JWT_SECRET: SECRETS['identity.jwt.secret'],
    HASH_KEY: SECRETS['mask_profiles.*.hash_key'],
    WX_PREV_TOKEN: SECRETS['wechat.previous.token'],
    WX_PREV_AES_KEY: SECRETS['wechat.previous.encoding_aes_key'],
    PREV_APIV3_KEY: SECRETS['wechatpay.previous.apiv3_key'],
    PREV_SESSION_KEY: SECRETS['identity.session.previous.signing_key'],
    OPENID_HMAC_KEY: SECRETS['server.log.openid_hmac_key'],
    DING_URL: SECRETS['alerts.channels.*.url'],
    DING_SECRET: SECRETS['alerts.channels.*.secret'],
    OTLP_AUTH: SECRETS['tracing.headers.*'],
    OA_SECRET: SECRETS['wechat.apps.*.app_secret'],
    OA_TOKEN: SECRETS['wechat.apps.*.token'],
    OA_AES_KEY: SECRETS['wechat.apps.*.encoding_aes_key'],
    OA_PREV_TOKEN: SECRETS['wechat.apps.*.previous.token'],
    OA_PREV_AES_KEY: SECRETS['wechat.apps.*.previous.encoding_aes_key'],
  };
  const t = await startTestGateway(policy, { env }).catch(async (err: unknown) => {
    await upstream.close();
    throw err;
  });
  const admin = `http://127.0.0.1:${t.ctx.adminPort}`;
  const config = async (): Promise<{ text: string; body: ConfigBody }> => {
    const res = await fetch(`${admin}/config`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const text = await res.text();
    return { text, body: JSON.parse(text) as ConfigBody };
  };
  const noSecretIn = (text: string, what: string): void => {
    for (const [path, value] of Object.entries({ ...SECRETS, rotated: ROTATED_APP_SECRET })) assert.ok(!text.includes(value), `${what} shows ${path}`);
  };
  try {
    const first = await config();
    noSecretIn(first.text, '/config');
    assert.match(first.body.hash, /^sha256:[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(first.body.loaded_at)));
    const p = first.body.policy as {
      wechat: Record<string, unknown>;
      wechatpay: Record<string, unknown>;
      identity: { session: Record<string, unknown>; jwt: { key: Record<string, unknown> } };
      mask_profiles: Record<string, Record<string, unknown>>;
      tls: { certificates: Record<string, unknown>[] };
      routes: { name: string }[];
    };
    // Each secret shows as redacted where it stands; what is not secret shows as it is.
    assert.equal(p.wechat.app_secret, '[redacted]');
    assert.equal(p.wechat.token, '[redacted]');
    assert.equal(p.wechat.encoding_aes_key, '[redacted]');
    assert.equal(p.wechat.appid, 'wx5823bf96d3bd56c7');
    const official = (p.wechat.apps as Record<string, Record<string, unknown>>).official!;
    assert.equal(official.token, '[redacted]');
    assert.equal(official.appid, 'wx0123456789abcdef');
    assert.equal(p.wechatpay.apiv3_key, '[redacted]');
    assert.equal(p.identity.session.signing_key, '[redacted]');
    assert.equal(p.identity.jwt.key.secret, '[redacted]');
    assert.equal(p.mask_profiles.users!.hash_key, '[redacted]');
    assert.equal(p.tls.certificates[0]!.passphrase, '[redacted]');
    assert.deepEqual(p.routes.map((r) => r.name), ['api', 'old', 'pages']);
    assert.equal((first.body.policy.upstreams as Record<string, { url: unknown }>).legacy!.url, `${upstream.url}/`, 'URLs show as text');
    const metrics = async (): Promise<string> => (await fetch(`${admin}/metrics`)).text();
    let text = await metrics();
    assert.equal(sample(text, `wxgw_policy_info{hash="${first.body.hash}"}`), 1);
    assert.equal(sample(text, 'wxgw_last_reload_success_timestamp_seconds'), Date.parse(first.body.loaded_at) / 1000);

    // Routes: one added, one removed, one changed.
    routes = `  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }
  - { name: pages, match: { path_prefix: /pages/ }, upstream: legacy, allow: [10.0.0.0/8] }
  - { name: fresh, match: { path_prefix: /fresh/ }, upstream: legacy }`;
    writeAtomic(join(t.ctx.dir, 'gateway.yaml'), policy(t.ctx));
    assert.equal((await t.gw.reload()).ok, true);
    // The file watcher may have reloaded first; either way the first reload line is the change.
    const line = await t.waitForLog((l) => l.msg === 'policy reloaded', 'the reload line');
    assert.deepEqual(line.changed, { routes_added: ['fresh'], routes_removed: ['old'], routes_changed: ['pages'], sections_changed: [] });
    const second = await config();
    assert.notEqual(second.body.hash, first.body.hash);
    assert.equal(line.hash, second.body.hash);
    assert.ok(Date.parse(second.body.loaded_at) >= Date.parse(first.body.loaded_at));
    text = await metrics();
    assert.equal(sample(text, `wxgw_policy_info{hash="${second.body.hash}"}`), 1);
    assert.equal(text.split('\n').filter((l) => l.startsWith('wxgw_policy_info{')).length, 1, 'one series: the policy in force');

    // Only a secret changes (the file it is read from): another hash, and still no value shown.
    writeAtomic(appSecretFile, ROTATED_APP_SECRET);
    assert.equal((await t.gw.reload()).ok, true);
    const lines = await t.waitForLog((l) => l.msg === 'policy reloaded' && l.hash !== second.body.hash, 'the second reload line');
    // The value is kept beside the policy too, with the file it was read from.
    assert.deepEqual(lines.changed, { routes_added: [], routes_removed: [], routes_changed: [], sections_changed: ['file_references', 'wechat'] });
    const third = await config();
    assert.notEqual(third.body.hash, second.body.hash);
    assert.deepEqual(third.body.policy, second.body.policy, 'the redacted view is the same');
    noSecretIn(third.text, '/config');
    noSecretIn(t.logText(), 'the log');

    // The same policy again gives the same hash.
    writeAtomic(appSecretFile, SECRETS['wechat.app_secret']!);
    assert.equal((await t.gw.reload()).ok, true);
    assert.equal((await config()).body.hash, second.body.hash);
  } finally {
    await t.close();
    await upstream.close();
  }
});
