// Alert delivery against a real local webhook: retries with backoff through a 500 and a hang
// past the timeout, one idempotency key across attempts, the bounded queue, a reload that
// changes the channel under pending alerts, and the robots' formats with their signatures
// checked by the documented algorithm computed here, not by the gateway's code.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { testChain } from '../helpers/gateway.js';
import { channel, rule, section, startAlerts, type TestAlerts } from '../helpers/alerts.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';
import { waitUntil } from '../helpers/wait.js';

const open: { close(): Promise<void> }[] = [];
after(() => Promise.all(open.map((o) => o.close())));

async function receiver(...replies: Parameters<typeof startReceiver>): Promise<WebhookReceiver> {
  const r = await startReceiver(...replies);
  open.push(r);
  return r;
}

function started(t: TestAlerts): TestAlerts {
  open.push(t.alerts);
  return t;
}

const failedReload = { ok: false as const, why: 'invalid' as const, diagnostics: [{ severity: 'error' as const, file: 'gateway.yaml', line: 7, col: 3, path: 'routes[0].upstream', message: 'x' }] };

/** Waits until the clock has a timer of exactly `ms` pending (a backoff or a timeout), then passes it. */
async function passTimer(t: TestAlerts, ms: number): Promise<void> {
  await waitUntil(() => (t.clock.pending().includes(ms) ? true : undefined), `a ${ms} ms timer`, { wake: t.clock.wake, describe: () => String(t.clock.pending()) });
  t.clock.advance(ms);
}

test('an alert is delivered exactly once through a 500 and a hang past the timeout, with one idempotency key', async () => {
  const hook = await receiver([{ status: 500, body: 'busy' }, 'hang', { status: 200, body: '{}' }]);
  const t = started(startAlerts(section([channel('ops', hook.url)], [rule({ name: 'reload', kind: 'reload_failed', channels: ['ops'] })])));
  t.alerts.reloaded(failedReload);
  await hook.waitFor(1);
  await passTimer(t, 1000); // backoff after the 500
  await hook.waitFor(2);
  await passTimer(t, 5000); // the hung attempt times out
  await passTimer(t, 2000); // the second backoff doubles
  await hook.waitFor(3);
  await waitUntil(() => (t.alerts.pending() === 0 ? true : undefined), 'the queue to empty');
  assert.equal(await t.count('sent', { rule: 'reload', channel: 'ops' }), 1);
  assert.equal(await t.count('failed', { rule: 'reload', channel: 'ops' }), 0);
  t.clock.advance(3_600_000);
  assert.equal(hook.received.length, 3, 'no attempt after the one that succeeded');
  const keys = hook.received.map((r) => r.headers['idempotency-key']);
  assert.match(String(keys[0]), /^[0-9a-f-]{36}$/);
  assert.deepEqual(keys, [keys[0], keys[0], keys[0]]);
  for (const r of hook.received) {
    assert.equal(r.json.id, keys[0], 'the key is in the payload too');
    assert.equal(r.json.rule, 'reload');
    assert.equal(r.json.state, 'firing');
    assert.equal(r.json.instance, 'gw-test-1');
    assert.deepEqual((r.json.details as Record<string, unknown>).at, 'gateway.yaml:7 routes[0].upstream');
  }
  assert.match(t.logText(), /alert delivery failed: status 500; retrying/);
  assert.match(t.logText(), /alert delivery failed: no answer within 5000ms; retrying/);
});

test('a refusal not worth retrying (4xx) is given up at once; attempts stop at delivery.attempts', async () => {
  const gone = await receiver([{ status: 404 }]);
  const down = await receiver([{ status: 503 }]);
  const t = started(
    startAlerts(section([channel('gone', gone.url), channel('down', down.url)], [rule({ name: 'reload', kind: 'reload_failed', channels: ['gone', 'down'] })], { attempts: 3 })),
  );
  t.alerts.reloaded(failedReload);
  await gone.waitFor(1);
  await down.waitFor(1);
  await passTimer(t, 1000);
  await down.waitFor(2);
  await passTimer(t, 2000);
  await down.waitFor(3);
  await waitUntil(() => (t.alerts.pending() === 0 ? true : undefined), 'both channels to give up');
  t.clock.advance(3_600_000);
  assert.equal(gone.received.length, 1);
  assert.equal(down.received.length, 3);
  assert.equal(await t.count('failed', { rule: 'reload', channel: 'gone' }), 1);
  assert.equal(await t.count('failed', { rule: 'reload', channel: 'down' }), 1);
  assert.equal(await t.count('sent', { rule: 'reload', channel: 'down' }), 0);
});

test('a full queue drops its oldest alert, logs it and counts it', async () => {
  const hook = await receiver(['hang', { status: 200 }]);
  const r = rule({ name: 'reload', kind: 'reload_failed', channels: ['ops'], cooldown: 1 });
  const t = started(startAlerts(section([channel('ops', hook.url)], [r], { queue: 2 })));
  for (let i = 0; i < 5; i++) {
    t.alerts.reloaded(failedReload);
    t.clock.advance(1); // past the 1 ms cool-down
  }
  // The first is being attempted; of the four behind it only the newest two fit.
  assert.equal(await t.count('dropped', { rule: 'reload', channel: 'ops' }), 2);
  assert.equal(await t.count('fired', { rule: 'reload' }), 5);
  assert.equal(t.alerts.pending(), 3);
  assert.equal((t.logText().match(/alert dropped: the queue is full/g) ?? []).length, 2);
  await hook.waitFor(1);
  await passTimer(t, 5000);
  await passTimer(t, 1000);
  await hook.waitFor(4);
  const failures = hook.received.map((x) => (x.json.details as Record<string, unknown>).failed_reloads);
  assert.deepEqual(failures, [1, 1, 4, 5]);
});

test('a reload that changes the channel keeps pending alerts and sends them to the new URL', async () => {
  const old = await receiver(['hang']);
  const next = await receiver();
  const r = rule({ name: 'reload', kind: 'reload_failed', channels: ['ops'], cooldown: 1 });
  const t = started(startAlerts(section([channel('ops', old.url)], [r])));
  t.alerts.reloaded(failedReload);
  t.clock.advance(1);
  t.alerts.reloaded(failedReload);
  await old.waitFor(1);
  t.alerts.configure(section([channel('ops', next.url)], [r]));
  await passTimer(t, 5000);
  await passTimer(t, 1000);
  await next.waitFor(2);
  assert.equal(old.received.length, 1);
  assert.equal(next.received[0]!.json.id, old.received[0]!.json.id, 'the same alert, retried at the new URL');
  assert.deepEqual(next.received.map((x) => (x.json.details as Record<string, unknown>).failed_reloads), [1, 2]);
});

test('WeCom: markdown message; an errcode other than 0 is a failure and is retried', async () => {
  const hook = await receiver([{ status: 200, body: '{"errcode":45009,"errmsg":"api freq out of limit"}' }, { status: 200, body: '{"errcode":0,"errmsg":"ok"}' }]);
  const t = started(startAlerts(section([channel('wecom', `${hook.url}/cgi-bin/webhook/send?key=k-123`, 'wecom')], [rule({ name: 'reload', kind: 'reload_failed', channels: ['wecom'] })])));
  t.alerts.reloaded(failedReload);
  await hook.waitFor(1);
  await passTimer(t, 1000);
  await hook.waitFor(2);
  await waitUntil(async () => ((await t.count('sent', { rule: 'reload', channel: 'wecom' })) === 1 ? true : undefined), 'the second attempt to count as sent');
  const [first, second] = hook.received;
  assert.equal(first!.path, '/cgi-bin/webhook/send');
  assert.equal(first!.query.get('key'), 'k-123');
  assert.deepEqual(Object.keys(first!.json), ['msgtype', 'markdown']);
  assert.equal(first!.json.msgtype, 'markdown');
  const content = (first!.json.markdown as { content: string }).content;
  assert.match(content, /^\*\*\[FIRING\] reload\*\* on gw-test-1/);
  assert.ok(content.includes(`alert id: ${String(first!.headers['idempotency-key'])}`));
  assert.ok(Buffer.byteLength(content) <= 4096);
  assert.equal(second!.body, first!.body, 'the retry is the same message');
  assert.match(t.logText(), /errcode 45009 \(api freq out of limit\); retrying/);
});

test('DingTalk: markdown message with timestamp and sign that verify by the documented HMAC', async () => {
  const hook = await receiver([{ status: 200, body: '{"errcode":310000,"errmsg":"sign not match"}' }, { status: 200, body: '{"errcode":0,"errmsg":"ok"}' }]);
  const secret = 'SECabc123def456';
  const t = started(
    startAlerts(section([channel('ding', `${hook.url}/robot/send?access_token=tok-9`, 'dingtalk', { secret })], [rule({ name: 'reload', kind: 'reload_failed', channels: ['ding'] })])),
  );
  const sentAt = t.clock.now();
  t.alerts.reloaded(failedReload);
  await hook.waitFor(1);
  await passTimer(t, 1000);
  await hook.waitFor(2);
  for (const [i, r] of hook.received.entries()) {
    assert.equal(r.query.get('access_token'), 'tok-9');
    const timestamp = r.query.get('timestamp')!;
    assert.equal(Number(timestamp), sentAt + i * 1000, 'signed afresh at each attempt');
    const expected = createHmac('sha256', secret).update(`${timestamp}\n${secret}`).digest('base64');
    assert.equal(r.query.get('sign'), expected);
    assert.equal(r.json.msgtype, 'markdown');
    const md = r.json.markdown as { title: string; text: string };
    assert.equal(md.title, '[FIRING] reload');
    assert.match(md.text, /a policy reload was rejected with 1 error/);
  }
});

test('Feishu: text message with timestamp and sign in the body, verified by the documented HMAC', async () => {
  const hook = await receiver([{ status: 200, body: '{"code":0,"msg":"success"}' }]);
  const secret = 'feishu-signing-secret';
  const t = started(startAlerts(section([channel('fs', `${hook.url}/open-apis/bot/v2/hook/abc`, 'feishu', { secret })], [rule({ name: 'reload', kind: 'reload_failed', channels: ['fs'] })])));
  t.alerts.reloaded(failedReload);
  const [r] = await hook.waitFor(1);
  const timestamp = String(r!.json.timestamp);
  assert.equal(Number(timestamp), Math.floor(t.clock.now() / 1000));
  assert.equal(r!.json.sign, createHmac('sha256', `${timestamp}\n${secret}`).digest('base64'));
  assert.equal(r!.json.msg_type, 'text');
  assert.match((r!.json.content as { text: string }).text, /^\[FIRING\] reload on gw-test-1/);
  await waitUntil(async () => ((await t.count('sent', { rule: 'reload', channel: 'fs' })) === 1 ? true : undefined), 'code 0 to count as sent');
});

test('an HTTPS webhook is verified: its own ca is trusted, Node roots refuse the private chain', async () => {
  const chain = await testChain();
  const tls = { key: readFileSync(chain.key, 'utf8'), cert: readFileSync(chain.fullchain, 'utf8') };
  const hook = await receiver([{ status: 200 }], tls);
  const r = rule({ name: 'reload', kind: 'reload_failed', channels: ['trusting', 'strict'] });
  const t = started(startAlerts(section([channel('trusting', hook.url, 'webhook', { ca: chain.root }), channel('strict', hook.url)], [r], { attempts: 1 })));
  t.alerts.reloaded(failedReload);
  await waitUntil(() => (t.alerts.pending() === 0 ? true : undefined), 'both channels to finish');
  assert.equal(await t.count('sent', { rule: 'reload', channel: 'trusting' }), 1);
  assert.equal(await t.count('failed', { rule: 'reload', channel: 'strict' }), 1);
  assert.equal(hook.received.length, 1);
  assert.match(t.logText(), /"channel":"strict".*alert delivery failed: (UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/);
});
