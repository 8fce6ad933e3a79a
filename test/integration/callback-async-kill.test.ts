// delivery: async and the gateway's process: the real `wxgw start` killed (SIGKILL) while its
// messages wait in Redis for a backend that is down loses none of them; started again, it takes
// them over and delivers each once. SIGTERM leaves what is not delivered queued and exits 0.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startCli } from '../helpers/process.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { DeliveringBackend, pushXml } from '../helpers/async-delivery.js';
import { waitUntil } from '../helpers/wait.js';
import { plainPush, randomEncodingAesKey, type WechatAccount } from '../helpers/wechat-callback.js';

const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForKillTests', encodingAesKey: randomEncodingAesKey() };

let redis: TestRedis;
let backend: DeliveringBackend;
let ctx: PolicyContext;
let file: string;

before(async () => {
  redis = await startRedis();
  backend = await DeliveringBackend.start();
  ctx = await policyContext();
  file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  drain_delay: 10ms
${ctx.tlsSection}
wechat:
  appid: ${account.appid}
  token: ${account.token}
store: { kind: redis, redis_url: "${redis.url}", command_timeout: 1s, delivery_queue: { takeover_after: 1s } }
upstreams:
  legacy: { url: "${backend.upstream.url}", timeout: 5s }
routes:
  - name: wx
    match: { path: /wx/callback }
    upstream: legacy
    wechat_callback: { delivery: async, retry: { attempts: 1000, backoff: 10ms, max_backoff: 50ms } }
defaults: { allow: any }
`,
  );
});

after(async () => {
  await backend.close();
  await redis.stop();
});

test('killed with messages queued, started again: every message delivered once', async () => {
  backend.down = true;
  const first = await startCli(file);
  const ca = readFileSync(ctx.chain.root);
  const ids: string[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const id = String(900_000 + i);
      ids.push(id);
      const push = plainPush(account, pushXml(`oKill${i % 2}`, id));
      const res = await httpsRequest(ctx.httpsPort, ca, { method: 'POST', path: `/wx/callback?${push.query.toString()}`, headers: push.headers, body: push.body });
      assert.equal(res.text, 'success');
    }
    await waitUntil(() => (backend.refused >= 4 ? true : undefined), 'attempts refused while the backend is down');
  } finally {
    first.kill();
    await first.exited();
  }
  const r = new Redis(redis.url);
  try {
    assert.equal(await r.xlen('wxgw:{deliveries}:queue'), 10, 'all still queued');
  } finally {
    r.disconnect();
  }
  backend.down = false;
  const second = await startCli(file);
  try {
    await backend.until(10);
    const keys = backend.delivered.map((d) => d.key);
    assert.deepEqual([...keys].sort(), ids);
    assert.equal(new Set(keys).size, 10);
    // Nothing left: stopping now leaves nothing behind.
    backend.down = true;
    const push = plainPush(account, pushXml('oKill9', '999999'));
    await httpsRequest(ctx.httpsPort, ca, { method: 'POST', path: `/wx/callback?${push.query.toString()}`, headers: push.headers, body: push.body });
    await waitUntil(() => (backend.attempts.includes('999999') ? true : undefined), 'the last message attempted');
  } finally {
    second.child.kill('SIGTERM');
  }
  assert.equal(await second.exited(), 0, second.output());
  assert.match(second.output(), /delivery stopped; callbacks not yet delivered stay queued/);
  const r2 = new Redis(redis.url);
  try {
    assert.equal(await r2.xlen('wxgw:{deliveries}:queue'), 1, 'the undelivered one stays queued');
  } finally {
    r2.disconnect();
  }
});
