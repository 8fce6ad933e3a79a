// delivery: async through the real gateway, a real upstream and a real redis-server: WeChat is
// answered at once, and every verified message reaches the backend exactly once (by its
// idempotency key), in order per user, across a backend outage, two instances on one Redis, and
// dead letters replayed. The gateway killed mid-delivery is in callback-async-kill.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CallbackRequest } from '../../gateway/guards/callback-types.js';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { sample } from '../helpers/metrics-text.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { TestUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encryptPayResource, payNotification, payNotificationBody, plainPush, randomEncodingAesKey, safePush, type WechatAccount } from '../helpers/wechat-callback.js';
import { DeliveringBackend, eventXml, pushXml, runCli } from '../helpers/async-delivery.js';

const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForAsyncTests', encodingAesKey: randomEncodingAesKey() };

interface PolicyOptions {
  upstream: TestUpstream;
  store: string;
  attempts?: number;
}

function policy(o: PolicyOptions): (ctx: PolicyContext) => string {
  const retry = `{ attempts: ${o.attempts ?? 1000}, backoff: 10ms, max_backoff: 50ms }`;
  return (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${account.appid}
  token: ${account.token}
  encoding_aes_key: "${account.encodingAesKey}"
store: ${o.store}
upstreams:
  legacy: { url: "${o.upstream.url}", timeout: 5s }
routes:
  - name: wx
    match: { path: /wx/callback }
    upstream: legacy
    wechat_callback: { delivery: async, retry: ${retry} }
  - name: wx-raw
    match: { path: /wx/raw }
    upstream: legacy
    wechat_callback: { delivery: async, retry: ${retry} }
defaults: { allow: any }
`;
}

function send(t: TestGateway, req: CallbackRequest, path = '/wx/callback'): Promise<ClientResponse> {
  return httpsRequest(t.port, t.ca, { method: 'POST', path: `${path}?${req.query.toString()}`, headers: req.headers, body: req.body });
}

async function sendOk(t: TestGateway, req: CallbackRequest, path?: string): Promise<void> {
  const res = await send(t, req, path);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, 'success');
  assert.match(String(res.headers['content-type']), /^text\/plain/);
}

describe('async delivery with the memory store', () => {
  let backend: DeliveringBackend;
  let t: TestGateway;
  before(async () => {
    backend = await DeliveringBackend.start();
    t = await startTestGateway(policy({ upstream: backend.upstream, store: '{ kind: memory }' }));
  });
  after(async () => {
    await t.close();
    await backend.close();
  });

  test('the policy load warns that queued messages die with the process', () => {
    const warned = t.logs.find((l) => String(l.msg).includes("queues in this process's memory"));
    assert.ok(warned, t.logText());
    assert.equal(warned.key, 'routes[0].wechat_callback.delivery');
  });

  test('answered success at once, delivered with the idempotency key; a retry WeChat re-signs is not queued again', async () => {
    await sendOk(t, plainPush(account, pushXml('oUserA', '1001')));
    await sendOk(t, plainPush(account, pushXml('oUserA', '1001')));
    // An event has no MsgId: its key is a hash of who, when and what, with no openid in it.
    await sendOk(t, plainPush(account, eventXml('oUserA', 1714037059, 'subscribe')));
    await sendOk(t, plainPush(account, eventXml('oUserA', 1714037059, 'subscribe')));
    await backend.until(2);
    const [msg, event] = backend.delivered;
    assert.equal(msg!.key, '1001');
    assert.equal(msg!.headers['x-wx-callback-verified'], 'signature');
    assert.equal(msg!.headers['x-wx-delivery-attempt'], '1');
    assert.match(String(msg!.headers['content-type']), /xml/);
    assert.match(event!.key, /^evt-[0-9a-f]{32}$/);
    assert.doesNotMatch(t.logText(), /oUserA/, 'no openid in the log');
    const text = await t.gw.metrics.registry.metrics();
    assert.equal(sample(text, 'wxgw_callback_queue_total{route="wx",event="queued"}'), 2);
    // The re-signed copies carry a message already claimed: the replay check answers them from the
    // store before the queue is asked (a copy past its window meets the queue's own dedupe instead).
    assert.equal(sample(text, 'wxgw_callback_replays_total{route="wx",result="deduplicated"}'), 2);
    await waitUntil(() => (t.logs.filter((l) => l.msg === 'callback delivered').length >= 2 ? true : undefined), 'two delivered lines');
    assert.equal(sample(await t.gw.metrics.registry.metrics(), 'wxgw_callback_queue_total{route="wx",event="delivered"}'), 2);
    assert.equal(backend.delivered.length, 2);
  });

  test('a reload keeps what is queued: a message waiting for a backend that is down is delivered under the new policy', async () => {
    backend.reset();
    backend.down = true;
    await sendOk(t, plainPush(account, pushXml('oUserR', '3003')));
    await waitUntil(() => (backend.attempts.includes('3003') ? true : undefined), 'a first attempt');
    const file = join(t.ctx.dir, 'gateway.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('timeout: 5s }', 'timeout: 6s }'));
    const reloaded = await t.gw.reload();
    assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
    backend.down = false;
    const [got] = await backend.until(1);
    assert.equal(got!.key, '3003');
  });

  test('wxgw deliveries says the memory store keeps its dead letters out of reach; a wrong command line is exit 2', async () => {
    const file = join(t.ctx.dir, 'gateway.yaml');
    const listed = await runCli(['deliveries', 'list', '--config', file]);
    assert.equal(listed.status, 1);
    assert.match(listed.stderr, /store\.kind is memory: dead letters live inside the running gateway/);
    const unknown = await runCli(['deliveries', 'list', '--config', file, '--route', 'nope']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no route "nope" with delivery: async \(it has: wx, wx-raw\)/);
    for (const args of [['deliveries'], ['deliveries', 'list'], ['deliveries', 'show', '--config', file], ['deliveries', 'resend', '--config', file]]) {
      const r = await runCli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^wxgw deliveries: .* \(wxgw deliveries --help\)\n$/);
    }
  });

  test('a safe-mode push forwarded encrypted is keyed by the MsgId inside it', async () => {
    const before = backend.delivered.length;
    await sendOk(t, safePush(account, pushXml('oUserB', '2002')), '/wx/raw');
    const seen = await backend.until(before + 1);
    const got = seen.find((d) => d.key === '2002');
    assert.ok(got, JSON.stringify(seen.map((d) => d.key)));
    assert.match(got.body, /<Encrypt>/);
  });
});

describe('async delivery of WeChat Pay notifications', () => {
  const APIV3_KEY = 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6';
  const PUB_KEY_ID = 'PUB_KEY_ID_0114232134912410000000000000';
  const payKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let backend: DeliveringBackend;
  let t: TestGateway;
  before(async () => {
    backend = await DeliveringBackend.start();
    t = await startTestGateway((ctx) => {
      const pubFile = join(ctx.dir, 'wechatpay_pub_key.pem');
      writeFileSync(pubFile, payKeys.publicKey.export({ type: 'spki', format: 'pem' }).toString());
      return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechatpay:
  apiv3_key: ${APIV3_KEY}
  public_keys:
    - { id: ${PUB_KEY_ID}, file: ${pubFile} }
upstreams:
  legacy: { url: "${backend.upstream.url}", timeout: 5s }
routes:
  - name: pay
    match: { path: /pay/notify }
    upstream: legacy
    wechatpay_notify: { decrypt: true, delivery: async, retry: { backoff: 10ms, max_backoff: 20ms } }
defaults: { allow: any }
`;
    });
  });
  after(async () => {
    await t.close();
    await backend.close();
  });

  test("answered with Pay's success JSON at once; delivered once, keyed by the notification id", async () => {
    backend.down = true;
    const resource = encryptPayResource(APIV3_KEY, JSON.stringify({ out_trade_no: '1217752501201407033233368018', trade_state: 'SUCCESS', payer: { openid: 'oPayer1' } }));
    const body = payNotificationBody(resource, 'TRANSACTION.SUCCESS', 'EV-2018022511223320873');
    for (let i = 0; i < 2; i++) {
      // The same notification twice, each signed anew with its own nonce, as Pay's retries are.
      const req = payNotification(payKeys.privateKey, PUB_KEY_ID, body);
      const res = await httpsRequest(t.port, t.ca, { method: 'POST', path: '/pay/notify', headers: req.headers, body: req.body });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json(), { code: 'SUCCESS', message: '成功' });
    }
    await waitUntil(() => (backend.refused >= 2 ? true : undefined), 'attempts refused while down');
    backend.down = false;
    const [got] = await backend.until(1);
    assert.equal(got!.key, 'EV-2018022511223320873');
    assert.equal(got!.headers['x-wechatpay-verified'], 'decrypted');
    assert.equal(got!.headers['x-wechatpay-notify-id'], 'EV-2018022511223320873');
    assert.match(got!.body, /"trade_state":"SUCCESS"/);
    await waitUntil(() => (t.logs.some((l) => l.msg === 'callback delivered') ? true : undefined), 'the delivered line');
    assert.equal(backend.delivered.length, 1);
    assert.doesNotMatch(t.logText(), /oPayer1/);
  });
});

describe('async delivery with the Redis store', () => {
  let redis: TestRedis;
  let backend: DeliveringBackend;
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    redis = await startRedis();
    backend = await DeliveringBackend.start();
    const store = `{ kind: redis, redis_url: "${redis.url}", command_timeout: 1s, delivery_queue: { concurrency: 4, takeover_after: 2s } }`;
    a = await startTestGateway(policy({ upstream: backend.upstream, store }));
    b = await startTestGateway(policy({ upstream: backend.upstream, store }));
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await backend.close();
    await redis.stop();
  });

  test('the backend down for a while, then up: every message delivered once, in order per user, over two instances', async () => {
    backend.reset();
    backend.down = true;
    const users = ['oUser1', 'oUser2', 'oUser3'];
    const sent: { user: string; id: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const user = users[i % users.length]!;
      const id = String(500_000 + i);
      sent.push({ user, id });
      // Alternating instances; every fifth also arrives at the other one, re-signed (WeChat's retry).
      await sendOk(i % 2 ? a : b, plainPush(account, pushXml(user, id)));
      if (i % 5 === 0) await sendOk(i % 2 ? b : a, plainPush(account, pushXml(user, id)));
    }
    // Every user's first message has been refused a few times before the backend comes back.
    await waitUntil(() => (backend.refused >= 3 * users.length ? true : undefined), 'attempts refused while down');
    backend.down = false;
    await backend.until(sent.length);
    const keys = backend.delivered.map((d) => d.key);
    assert.equal(new Set(keys).size, keys.length, `delivered twice: ${keys.join(' ')}`);
    assert.deepEqual([...keys].sort(), sent.map((s) => s.id).sort());
    // One instance's messages of a user are never overtaken by its later ones.
    for (const user of users) {
      for (const gw of ['a', 'b']) {
        const mine = sent.filter((s, i) => s.user === user && (i % 2 ? 'a' : 'b') === gw).map((s) => s.id);
        const got = backend.delivered.filter((d) => d.user === user && mine.includes(d.key)).map((d) => d.key);
        assert.deepEqual(got, mine, `order of ${user} via ${gw}`);
      }
    }
    const retried = backend.delivered.filter((d) => Number(d.headers['x-wx-delivery-attempt']) > 1);
    assert.ok(retried.length >= users.length, 'the heads were delivered on a later attempt, with the same key');
    const text = (await a.gw.metrics.registry.metrics()) + (await b.gw.metrics.registry.metrics());
    assert.match(text, /wxgw_callback_queue_total\{route="wx",event="retried"\} [1-9]/);
  });

  test('after N attempts a message is a dead letter; replayed into the queue it is delivered', async () => {
    backend.reset();
    backend.failKeys.add('777');
    // A route with 3 attempts: a third instance on the same Redis, policy `attempts: 3`.
    const c = await startTestGateway(policy({ upstream: backend.upstream, store: `{ kind: redis, redis_url: "${redis.url}", key_prefix: "dl:", command_timeout: 1s }`, attempts: 3 }));
    try {
      await sendOk(c, plainPush(account, pushXml('oUserD', '777')));
      const line = await c.waitForLog((l) => l.msg === 'callback delivery gave up; kept as a dead letter (wxgw deliveries)', 'the dead-letter line');
      assert.equal(line.idempotency_key, '777');
      assert.equal(line.attempts, 3);
      assert.equal(backend.attempts.filter((k) => k === '777').length, 3);
      const text = await c.gw.metrics.registry.metrics();
      assert.equal(sample(text, 'wxgw_callback_queue_total{route="wx",event="dead"}'), 1);
      assert.equal(sample(text, 'wxgw_callback_dead_letters{route="wx"}'), 1);
      const file = `${c.ctx.dir}/gateway.yaml`;
      const listed = await runCli(['deliveries', 'list', '--config', file]);
      assert.equal(listed.status, 0, listed.stderr);
      const [id] = listed.stdout.trim().split(/\s+/);
      assert.match(listed.stdout, /  wx  777  attempts=3  error="status 503"/);
      const shown = await runCli(['deliveries', 'show', '--config', file, '--route', 'wx', id!]);
      assert.match(shown.stdout, /header: x-wx-callback-verified: signature/);
      assert.doesNotMatch(shown.stdout, /oUserD/, 'show prints no body unless asked');
      backend.failKeys.clear();
      const replayed = await runCli(['deliveries', 'replay', '--config', file, id!]);
      assert.equal(replayed.status, 0, replayed.stderr);
      assert.match(replayed.stdout, new RegExp(`^replayed ${id} \\(route wx, key 777\\)`));
      await backend.until(1);
      assert.deepEqual(backend.delivered.map((d) => d.key), ['777']);
      assert.equal((await runCli(['deliveries', 'replay', '--config', file, id!])).status, 1, 'gone once replayed');
      const none = await runCli(['deliveries', 'list', '--config', file]);
      assert.equal(none.stdout, '');
      assert.match(none.stderr, /no dead letters/);
    } finally {
      await c.close();
    }
  });
});
