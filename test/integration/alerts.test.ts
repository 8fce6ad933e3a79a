// Alerts from a real gateway: a burst of forged callback signatures over real HTTPS fires the
// signature_invalid rule, a reload with a broken policy fires reload_failed and a good one
// resolves it, each delivered to a local webhook. No payload carries the openid, phone number or
// token the requests and the policy held.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitUntil } from '../helpers/wait.js';

const TOKEN = 'tok3nForAlertTests';
const OPENID = 'oABCDEFG0123456789';
const PHONE = '13812345678';
const VIP = 'oVIPz0123456789abcdefghijk';

let upstream: TestUpstream;
let hook: WebhookReceiver;
let t: TestGateway;

function policy(extra = '', appid = 'wx1234567890abcdef'): (ctx: PolicyContext) => string {
  return (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${appid}
  token: ${TOKEN}
openid_lists:
  vip: [${VIP}]
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: wx
    match: { path: /wx }
    upstream: legacy
    wechat_callback: { decrypt: false }${extra}
defaults: { allow: any }
alerts:
  instance: gw-it-1
  channels:
    hook: { kind: webhook, url: "\${ALERT_WEBHOOK}" }
  rules:
    - { name: forged-callbacks, kind: refusals, reason: signature_invalid, more_than: 2, window: 1m, channels: [hook] }
    - { name: reload, kind: reload_failed, channels: [hook] }
`;
}

before(async () => {
  upstream = await startUpstream();
  hook = await startReceiver();
  t = await startTestGateway(policy(), { env: { ALERT_WEBHOOK: `${hook.url}/alerts` } });
});

after(async () => {
  await t?.close();
  await Promise.all([hook?.close(), upstream?.close()]);
});

async function sent(rule: string): Promise<number> {
  const values = (await t.gw.metrics.registry.getSingleMetric('wxgw_alerts_sent_total')!.get()).values;
  return values.find((v) => v.labels.rule === rule && v.labels.channel === 'hook')?.value ?? 0;
}

test('a burst of forged callback signatures fires the signature_invalid rule once', async () => {
  const body = `<xml><FromUserName><![CDATA[${OPENID}]]></FromUserName><Content><![CDATA[${PHONE}]]></Content></xml>`;
  for (let i = 0; i < 6; i++) {
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await httpsRequest(t.port, t.ca, {
      method: 'POST',
      path: `/wx?signature=${'f'.repeat(40)}&timestamp=${ts}&nonce=n${i}&openid=${OPENID}&phone=${PHONE}`,
      headers: { 'content-type': 'text/xml' },
      body,
    });
    assert.equal(res.status, 403);
    assert.equal(res.json<{ error: { reason: string } }>().error.reason, 'signature_invalid');
  }
  const [alert] = await hook.waitFor(1);
  await waitUntil(async () => ((await sent('forged-callbacks')) === 1 ? true : undefined), 'the alert counted as sent');
  assert.equal(alert!.path, '/alerts');
  assert.equal(alert!.headers['idempotency-key'], alert!.json.id);
  assert.equal(alert!.json.rule, 'forged-callbacks');
  assert.equal(alert!.json.state, 'firing');
  assert.equal(alert!.json.instance, 'gw-it-1');
  assert.deepEqual(alert!.json.details, { rule_kind: 'refusals', reason: 'signature_invalid', more_than: 2, window_seconds: 60, counted: 3 });
  assert.equal(upstream.received.length, 0, 'the forged callbacks never reached the upstream');
  assert.equal(hook.received.length, 1, 'the other three fell in the cool-down');
});

test('a reload with a broken policy fires reload_failed; the next good reload resolves it', async () => {
  const file = join(t.ctx.dir, 'gateway.yaml');
  const before = hook.received.length;
  // Two errors, one of whose messages quotes the value it refuses: an openid where the AppID goes.
  writeFileSync(file, policy(`\n  - { name: broken, match: { path: /b }, upstream: nowhere }`, OPENID)(t.ctx));
  const result = await t.gw.reload();
  assert.equal(result.ok, false);
  const received = await hook.waitFor(before + 1);
  const alert = received[before]!;
  assert.equal(alert.json.rule, 'reload');
  assert.equal(alert.json.state, 'firing');
  const details = alert.json.details as Record<string, unknown>;
  assert.equal(details.why, 'invalid');
  assert.ok(Number(details.errors) >= 1);
  assert.equal(details.errors, 2);
  assert.match(String(details.at), /gateway\.yaml:\d+ wechat\.appid, .*gateway\.yaml:\d+ routes\[1\]\.upstream/);

  writeFileSync(file, policy()(t.ctx));
  assert.equal((await t.gw.reload()).ok, true);
  const all = await waitUntil(() => hook.received.find((r) => r.json.rule === 'reload' && r.json.state === 'resolved') && hook.received, 'the resolved message');
  for (const r of all) {
    for (const secret of [OPENID, PHONE, TOKEN, VIP]) assert.ok(!r.body.includes(secret), `a payload carries ${secret}: ${r.body}`);
    assert.ok(!JSON.stringify(r.query.toString()).includes(TOKEN));
  }
});
