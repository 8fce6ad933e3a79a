// The alert rules on a manual clock: a refusal rate over a sliding window, the cool-down that
// keeps a firing rule quiet, resolved messages, store outages longer than `for`, certificates
// inside `before_expiry`, state kept across a reload; and the policy checks of the section.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicy } from '../../gateway/policy/load.js';
import { PolicyError } from '../../gateway/types/policy.js';
import { channel, rule, section, startAlerts, type TestAlerts } from '../helpers/alerts.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitUntil } from '../helpers/wait.js';

const open: { close(): Promise<void> }[] = [];
after(() => Promise.all(open.map((o) => o.close())));

async function setup(rules: Parameters<typeof section>[1]): Promise<{ t: TestAlerts; hook: WebhookReceiver }> {
  const hook = await startReceiver();
  const t = startAlerts(section([channel('ops', hook.url)], rules));
  open.push(hook, t.alerts);
  return { t, hook };
}

/** Every alert delivered: before the clock moves on, or a timeout would fire under a request in flight. */
const settled = (t: TestAlerts): Promise<true> => waitUntil(() => (t.alerts.pending() === 0 ? true : undefined), 'alerts to be delivered');

/**
 * Moves the clock on a second at a time, letting each alert sent on the way be delivered before
 * the next step: a single jump would also pass the timeout of a request it just started.
 */
async function pass(t: TestAlerts, ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= 1000) {
    t.clock.advance(Math.min(1000, left));
    await settled(t);
  }
}

const states = (hook: WebhookReceiver): string[] => hook.received.map((r) => `${String(r.json.rule)}:${String(r.json.state)}`);
const MIN = 60_000;

test('refusals: more than more_than within window fires once; the cool-down keeps repeats quiet; clearing resolves', async () => {
  const { t, hook } = await setup([rule({ name: 'forged', kind: 'refusals', more_than: 3, window: MIN, cooldown: 10 * MIN, channels: ['ops'] })]);
  const refuse = (n: number, reason = 'signature_invalid'): void => {
    for (let i = 0; i < n; i++) t.alerts.refused(reason);
  };
  refuse(3);
  refuse(5, 'ip_not_allowed'); // another reason counts for nothing here
  assert.equal(await t.count('fired', { rule: 'forged' }), 0, 'three is not more than three');
  await pass(t, MIN + 1);
  refuse(3); // the first three left the window
  assert.equal(await t.count('fired', { rule: 'forged' }), 0);
  refuse(1);
  assert.equal(await t.count('fired', { rule: 'forged' }), 1);
  await settled(t);
  refuse(50);
  await pass(t, 30_000);
  refuse(50);
  assert.equal(await t.count('fired', { rule: 'forged' }), 1, 'quiet within the cool-down');
  const [firing] = await hook.waitFor(1);
  await settled(t);
  assert.equal(firing!.json.state, 'firing');
  assert.deepEqual(firing!.json.details, { rule_kind: 'refusals', reason: 'signature_invalid', more_than: 3, window_seconds: 60, counted: 4 });
  assert.equal(firing!.json.summary, 'more than 3 signature_invalid refusals within 1m');

  await pass(t, 2 * MIN); // checks run; nothing left in the window
  await hook.waitFor(2);
  await settled(t);
  assert.deepEqual(states(hook), ['forged:firing', 'forged:resolved']);

  refuse(4); // fires again, still within the cool-down of the first alert: quiet
  assert.equal(await t.count('fired', { rule: 'forged' }), 1);
  await pass(t, 8 * MIN); // past the cool-down; the refusals have left the window meanwhile
  refuse(4);
  assert.equal(await t.count('fired', { rule: 'forged' }), 2, 'past the cool-down a rule still firing alerts again');
  await hook.waitFor(3);
  await settled(t);
  await pass(t, 2 * MIN);
  await hook.waitFor(4);
  assert.deepEqual(states(hook), ['forged:firing', 'forged:resolved', 'forged:firing', 'forged:resolved']);
  assert.deepEqual(new Set(hook.received.map((r) => r.json.id)).size, 4, 'each message has its own key');
});

test('refusals that stay above the threshold past the cool-down alert again at a check', async () => {
  const { t, hook } = await setup([rule({ name: 'forged', kind: 'refusals', more_than: 0, window: 7 * MIN, cooldown: 5 * MIN, channels: ['ops'], resolved: false })]);
  t.alerts.refused('signature_invalid');
  await settled(t);
  await pass(t, 6 * MIN);
  await hook.waitFor(2);
  await settled(t);
  assert.deepEqual(states(hook), ['forged:firing', 'forged:firing']);
  await pass(t, 30 * MIN);
  assert.equal(await t.count('fired', { rule: 'forged' }), 2, 'cleared without a message (resolved: false)');
  await pass(t, 30 * MIN);
  assert.equal(hook.received.length, 2);
});

test('store_down fires once the store has not answered for longer than `for`, and resolves when it answers', async () => {
  const { t, hook } = await setup([rule({ name: 'store', kind: 'store_down', for: MIN, channels: ['ops'] })]);
  t.signals.storeUp = false;
  await pass(t, 45_000); // checks at 15 s, 30 s, 45 s: down for 30 s so far
  assert.equal(await t.count('fired', { rule: 'store' }), 0);
  t.signals.storeUp = true;
  await pass(t, 15_000);
  t.signals.storeUp = false; // a new outage starts counting afresh, from the check at 75 s
  await pass(t, 45_000);
  assert.equal(await t.count('fired', { rule: 'store' }), 0);
  await pass(t, 30_000);
  assert.equal(await t.count('fired', { rule: 'store' }), 1);
  const [firing] = await hook.waitFor(1);
  await settled(t);
  assert.equal((firing!.json.details as Record<string, unknown>).down_seconds, 60);
  t.signals.storeUp = true;
  await pass(t, 15_000);
  const [, resolved] = await hook.waitFor(2);
  assert.equal(resolved!.json.state, 'resolved');
  assert.equal((resolved!.json.details as Record<string, unknown>).down_seconds, 75);
});

test('certificate_expiring fires per certificate inside before_expiry and resolves when it is renewed', async () => {
  const { t, hook } = await setup([rule({ name: 'certs', kind: 'certificate_expiring', before_expiry: 14 * 86_400_000, channels: ['ops'] })]);
  const day = 86_400_000;
  t.signals.certificates = [
    { certFile: '/etc/wxgw/api.pem', notAfter: new Date(t.clock.now() + 10 * day) },
    { certFile: '/etc/wxgw/www.pem', notAfter: new Date(t.clock.now() + 90 * day) },
  ];
  await pass(t, 15_000);
  const [firing] = await hook.waitFor(1);
  await settled(t);
  assert.deepEqual(firing!.json.details, { rule_kind: 'certificate_expiring', certificate: '/etc/wxgw/api.pem', expires_at: t.signals.certificates[0]!.notAfter.toISOString(), days_left: 9 });
  t.signals.certificates = [{ certFile: '/etc/wxgw/api.pem', notAfter: new Date(t.clock.now() + 365 * day) }, t.signals.certificates[1]!];
  await pass(t, 15_000);
  await hook.waitFor(2);
  assert.deepEqual(states(hook), ['certs:firing', 'certs:resolved']);
  assert.equal((hook.received[1]!.json.details as Record<string, unknown>).certificate, '/etc/wxgw/api.pem');
});

test('a reload keeps the state of rules it keeps: a firing rule stays quiet for its cool-down', async () => {
  const r = rule({ name: 'forged', kind: 'refusals', more_than: 1, window: MIN, cooldown: 10 * MIN, channels: ['ops'] });
  const { t, hook } = await setup([r]);
  t.alerts.refused('signature_invalid');
  t.alerts.refused('signature_invalid');
  await hook.waitFor(1);
  await settled(t);
  t.alerts.configure(section([channel('ops', hook.url)], [{ ...r, window: 2 * MIN } as typeof r, rule({ name: 'reload', kind: 'reload_failed', channels: ['ops'] })]));
  t.alerts.refused('signature_invalid');
  t.alerts.refused('signature_invalid');
  assert.equal(await t.count('fired', { rule: 'forged' }), 1);
  t.alerts.configure(undefined);
  t.alerts.refused('signature_invalid');
  t.alerts.refused('signature_invalid');
  await pass(t, 60 * MIN);
  assert.equal(await t.count('fired', { rule: 'forged' }), 1, 'alerts off: nothing fires, nothing is checked');
  assert.equal(hook.received.length, 1);
});

async function load(yaml: string): Promise<ReturnType<typeof loadPolicy>> {
  const dir = mkdtempSync(join(tmpdir(), 'wxgw-alerts-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return loadPolicy(file, { env: { WECOM_WEBHOOK: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc', DING_SECRET: 'SECx' } });
}

const BASE = `version: 1
server: { https: off, http: { listen: "127.0.0.1:8080" }, trusted_proxies: [10.0.0.0/8] }
upstreams: { app: { url: "http://127.0.0.1:3000" } }
routes: [{ name: all, match: { path_prefix: / }, upstream: app, allow: any }]
`;

test('the alerts section loads with its defaults', async () => {
  const { config, warnings } = await load(`${BASE}alerts:
  instance: gw-sh-1
  channels:
    oncall: { kind: wecom, url: "\${WECOM_WEBHOOK}" }
    ding: { kind: dingtalk, url: "https://oapi.dingtalk.com/robot/send?access_token=t", secret: "\${DING_SECRET}" }
  rules:
    - { name: forged, kind: refusals, channels: [oncall, ding] }
    - { name: store, kind: store_down, channels: [oncall] }
    - { name: certs, kind: certificate_expiring, channels: [oncall] }
    - { name: reload, kind: reload_failed, channels: [oncall], cooldown: 1m, resolved: false }
`);
  assert.deepEqual(
    warnings.map((w) => w.path),
    ['alerts.channels.ding.url'],
    'a URL written into the file is a secret written into the file',
  );
  const a = config.alerts!;
  assert.equal(a.instance, 'gw-sh-1');
  assert.equal(a.check_interval, 15_000);
  assert.deepEqual(a.delivery, { attempts: 6, backoff: 1000, max_backoff: 300_000, timeout: 5000, queue: 100 });
  assert.equal(a.channels.get('oncall')!.url.searchParams.get('key'), 'abc');
  assert.equal(a.channels.get('ding')!.secret, 'SECx');
  assert.deepEqual(
    a.rules.map(({ pos: _p, ...r }) => r),
    [
      { name: 'forged', channels: ['oncall', 'ding'], cooldown: 900_000, resolved: true, kind: 'refusals', reason: 'signature_invalid', more_than: 10, window: 300_000 },
      { name: 'store', channels: ['oncall'], cooldown: 900_000, resolved: true, kind: 'store_down', for: 60_000 },
      { name: 'certs', channels: ['oncall'], cooldown: 900_000, resolved: true, kind: 'certificate_expiring', before_expiry: 14 * 86_400_000 },
      { name: 'reload', channels: ['oncall'], cooldown: 60_000, resolved: false, kind: 'reload_failed' },
    ],
  );
});

test('the alerts section says exactly what is wrong, at its line', async () => {
  const err = await load(`${BASE}alerts:
  delivery: { backoff: 10m, max_backoff: 1m }
  channels:
    oncall: { kind: wecom, url: "\${WECOM_WEBHOOK}", secret: x }
    relay: { kind: webhook, url: "https://relay.internal/hook", ca: missing-ca.pem }
  rules:
    - { name: forged, kind: refusals, reason: signature_invalud, channels: [oncal] }
    - { name: forged, kind: store_down, channels: [oncall], window: 1m }
    - { name: circuit, kind: circuit_open, channels: [oncall] }
`).then(
    () => assert.fail('the policy loaded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PolicyError);
  const found = err.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line} ${d.path}: ${d.message}`);
  const expect = [
    /^6 alerts\.delivery\.max_backoff: backoff \(`10m`\) is longer than max_backoff \(`1m`\)/,
    /^8 alerts\.channels\.oncall\.secret: a wecom channel does not sign its requests/,
    /^9 alerts\.channels\.relay\.ca: cannot read CA bundle .*missing-ca\.pem: no such file or directory/,
    /^11 alerts\.rules\[0\]\.reason: `signature_invalud` is not a reason the gateway refuses with; did you mean `signature_invalid`\?/,
    /^11 alerts\.rules\[0\]\.channels\[0\]: `oncal` is not a channel under alerts\.channels; did you mean `oncall`\?/,
    /^12 alerts\.rules\[1\]\.name: `forged` names another rule already/,
    /^12 alerts\.rules\[1\]\.window: applies only to kind refusals, not store_down/,
    /^13 alerts\.rules\[2\]\.kind: .*circuit_open/,
  ];
  for (const e of expect) assert.ok(found.some((f) => e.test(f)), `no error matches ${e}; got:\n${found.join('\n')}`);
});
