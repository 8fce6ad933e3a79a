// Through the real gateway: a callback refused after its checks passed (by the route's rate
// limit, or because Redis was too slow to record its nonce) is not delivered, and WeChat's retry
// of it is delivered, not refused as a replay. A real upstream records what reached it; a real
// redis-server is paused (CLIENT PAUSE) to be slow.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { CallbackRequest } from '../../gateway/guards/callback-types.js';
import { RedisStore } from '../../gateway/store/redis-store.js';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { randomEncodingAesKey, safePush, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';

const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForNonceTests', encodingAesKey: randomEncodingAesKey() };

function policy(upstream: TestUpstream, store: string): (ctx: PolicyContext) => string {
  return (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [127.0.0.1]
${ctx.tlsSection}
wechat:
  appid: ${account.appid}
  token: ${account.token}
  encoding_aes_key: "${account.encodingAesKey}"
store: ${store}
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: wx
    match: { path: /wx/callback }
    upstream: legacy
    wechat_callback: { decrypt: true }
    rate_limit: { key: ip, limit: 1, window: 1h }
defaults: { allow: any }
`;
}

/** Sends a push as WeChat would, through the load balancer in trusted_proxies for `client`. */
function send(t: TestGateway, req: CallbackRequest, client: string): Promise<ClientResponse> {
  return httpsRequest(t.port, t.ca, {
    method: 'POST',
    path: `/wx/callback?${req.query.toString()}`,
    headers: { ...req.headers, 'x-forwarded-for': client },
    body: req.body,
  });
}

function reason(res: ClientResponse): string | undefined {
  return res.status === 200 ? undefined : (JSON.parse(res.text) as { error: { reason: string } }).error.reason;
}

/** Lets the gateway, in this process, finish the refused request (its close listener). */
async function settled(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

describe('a callback refused by the rate limit keeps its nonce for the retry', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream((_req, res) => res.end('success'));
    t = await startTestGateway(policy(upstream, '{ kind: memory }'));
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('refused 429 and not delivered; the same push from elsewhere is delivered, then answered from the store', async () => {
    assert.equal((await send(t, safePush(account, textMessage(), { nonce: 'first' }), '198.51.100.1')).status, 200);
    const push = safePush(account, textMessage(), { nonce: 'retried' });
    const before = upstream.received.length;
    const limited = await send(t, push, '198.51.100.1');
    assert.equal(reason(limited), 'rate_limited', limited.text);
    assert.equal(upstream.received.length, before);
    await settled();
    // WeChat retries from another of its addresses: a replay refusal would lose the message.
    const retried = await send(t, push, '198.51.100.2');
    assert.equal(retried.status, 200, retried.text);
    assert.equal(upstream.received.length, before + 1);
    const replayed = await send(t, push, '198.51.100.3');
    assert.equal(replayed.status, 200, replayed.text);
    assert.equal(replayed.text, retried.text);
    assert.equal(upstream.received.length, before + 1);
  });
});

describe('a callback refused while Redis was slow keeps its nonce for the retry', () => {
  let upstream: TestUpstream;
  let redis: TestRedis;
  let admin: Redis;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream((_req, res) => res.end('success'));
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    t = await startTestGateway(policy(upstream, `{ kind: redis, redis_url: "${redis.url}", command_timeout: 50ms }`));
    const store = t.gw.store;
    assert.ok(store instanceof RedisStore);
    assert.equal(await store.connect(5000), true);
  });
  after(async () => {
    await t.close();
    admin.disconnect();
    await Promise.all([redis.stop(), upstream.close()]);
  });

  test('503 store_unavailable and not delivered; the retry is delivered once Redis answers', async () => {
    const push = safePush(account, textMessage(), { nonce: 'while-slow' });
    const before = upstream.received.length;
    assert.equal(await admin.call('CLIENT', 'PAUSE', '400'), 'OK');
    const slow = await send(t, push, '198.51.100.10');
    assert.equal(reason(slow), 'store_unavailable', slow.text);
    assert.equal(upstream.received.length, before);
    // Redis records the late claim when it resumes, and the give-back right after it.
    let retried: ClientResponse;
    for (let i = 0; ; i++) {
      retried = await send(t, push, '198.51.100.11');
      if (reason(retried) !== 'store_unavailable' || i === 100) break;
    }
    assert.equal(retried.status, 200, retried.text);
    assert.equal(upstream.received.length, before + 1);
    const replayed = await send(t, push, '198.51.100.12');
    assert.equal(replayed.text, retried.text);
    assert.equal(upstream.received.length, before + 1);
  });
});
