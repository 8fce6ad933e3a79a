// The listeners besides HTTPS under `server.workers: 2` with the memory store, through the real
// binary: the WeChat API egress (server.egress) and the Pay egress (wechatpay.egress) are served
// by both workers from the sockets the primary shares, and the access_token is fetched once for
// both (the token cache is in the primary's store); `delivery: async` callbacks are queued in the
// memory of the worker that took them and delivered once each, and WeChat's retries, whichever
// worker they reach, are answered from the store and not queued again (the claims are the primary's).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { policyContext, type PolicyContext } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startCli, type CliGateway } from '../helpers/process.js';
import { freePort } from '../helpers/ports.js';
import { sample } from '../helpers/metrics-text.js';
import { startFakeWechatApi, type FakeWechatApi } from '../helpers/fake-wechat-api.js';
import { newMerchant, newPlatformIdentity, startFakeWechatpayApi, type FakeWechatpayApi } from '../helpers/fake-wechatpay-api.js';
import { DeliveringBackend, pushXml } from '../helpers/async-delivery.js';
import { plainPush, randomEncodingAesKey, type WechatAccount } from '../helpers/wechat-callback.js';
import { lines, metrics, servedBy } from '../helpers/workers.js';
import { waitUntil } from '../helpers/wait.js';

const APIV3_KEY = 'q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6';
const merchant = newMerchant();

let ctx: PolicyContext;
let wx: FakeWechatApi;
let pay: FakeWechatpayApi;
let backend: DeliveringBackend;
let gw: CliGateway;
let payPort: number;
let account: WechatAccount;

/** One call on a connection of its own (no keep-alive), so the primary hands each to the next worker. */
function call(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, agent: false, headers: { accept: 'application/json', ...(data !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** The workers that wrote the log lines `pick` selects, once `count` of them are written. */
async function workersOf(pick: (l: Record<string, unknown>) => boolean, count: number, what: string): Promise<unknown[]> {
  const found = await waitUntil(() => {
    const picked = lines(gw).filter(pick);
    return picked.length >= count ? picked : undefined;
  }, what, { describe: gw.output });
  return [...new Set(found.map((l) => l.worker))].sort();
}

before(async () => {
  ctx = await policyContext();
  wx = await startFakeWechatApi({ now: Date.now });
  pay = await startFakeWechatpayApi({ merchant, apiv3Key: APIV3_KEY, platforms: [newPlatformIdentity()] });
  backend = await DeliveringBackend.start();
  account = { appid: wx.appid, token: 'tok3nForWorkerTests', encodingAesKey: randomEncodingAesKey() };
  payPort = await freePort();
  const keyFile = join(ctx.dir, 'apiclient_key.pem');
  writeFileSync(keyFile, merchant.privateKeyPem);
  const file = join(ctx.dir, 'gateway.yaml');
  writeFileSync(
    file,
    `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  egress: { listen: "127.0.0.1:${ctx.httpPort}" }
  drain_delay: 1ms
  workers: 2
${ctx.tlsSection}
wechat:
  appid: ${wx.appid}
  app_secret: ${wx.secret}
  api_base: "${wx.url}"
  api_timeout: 2s
  token: ${account.token}
wechatpay:
  apiv3_key: "${APIV3_KEY}"
  egress:
    listen: "127.0.0.1:${payPort}"
    mchid: "${merchant.mchid}"
    serial_no: ${merchant.serial}
    private_key: \${file:${keyFile}}
    api_base: ${pay.url}
    timeout: 5s
upstreams:
  legacy: { url: "${backend.upstream.url}", timeout: 5s }
routes:
  - name: wx
    match: { path: /wx/callback }
    upstream: legacy
    wechat_callback: { delivery: async, retry: { attempts: 50, backoff: 10ms, max_backoff: 50ms } }
defaults: { allow: any }
`,
  );
  // The egress logs each successful WeChat call at debug level, with the worker that made it.
  process.env.WXGW_LOG_LEVEL = 'debug';
  gw = await startCli(file).finally(() => delete process.env.WXGW_LOG_LEVEL);
  // Each worker downloads the Pay platform certificates when its Pay egress starts.
  await workersOf((l) => l.msg === 'wechatpay platform certificates downloaded', 2, 'both workers with the platform certificates');
});

after(async () => {
  gw?.kill();
  await gw?.exited();
  await Promise.all([wx?.close(), pay?.close(), backend?.upstream.close()]);
});

test('the WeChat API egress is served by both workers, and the access_token is fetched once for both', async () => {
  assert.match(gw.output(), new RegExp(`"egress":"127\\.0\\.0\\.1:${ctx.httpPort}".*"pay_egress":"127\\.0\\.0\\.1:${payPort}".*"workers":2`));
  const answers = await Promise.all(Array.from({ length: 12 }, (_, k) => call(ctx.httpPort, 'POST', '/cgi-bin/message/custom/send', { touser: 'o-1', msgtype: 'text', text: { content: `hi ${k}` } })));
  for (const a of answers) assert.deepEqual([a.status, (JSON.parse(a.text) as { errcode: number }).errcode], [200, 0], a.text);
  assert.equal(wx.stableRequests.length, 1, JSON.stringify(wx.stableRequests));
  assert.equal(wx.plainRequests, 0);
  assert.deepEqual(await workersOf((l) => l.msg === 'WeChat API call', 12, 'a debug line per call'), [1, 2]);
  assert.equal(lines(gw).filter((l) => l.msg === 'access_token renewed').length, 1, 'one worker fetched it, the other read it from the store');
  // The tokens both workers used are the one token the fake issued.
  assert.deepEqual([...new Set(wx.calls.filter((c) => c.path === '/cgi-bin/message/custom/send').map((c) => c.token))], [wx.stableToken()]);
});

test('the Pay egress is served by both workers, each call signed and its answer verified', async () => {
  const mark = gw.output().length;
  const answers = await Promise.all(Array.from({ length: 8 }, (_, k) => call(payPort, 'GET', `/v3/pay/transactions/out-trade-no/T${k}?mchid=${merchant.mchid}`)));
  for (const a of answers) assert.equal(a.status, 200, a.text);
  const found = await waitUntil(() => {
    const picked = lines(gw, mark).filter((l) => l.msg === 'wechatpay egress call');
    return picked.length >= 8 ? picked : undefined;
  }, 'a line per Pay call', { describe: gw.output });
  assert.deepEqual([...new Set(found.map((l) => l.worker))].sort(), [1, 2]);
  for (const c of pay.calls.filter((c) => c.url.startsWith('/v3/pay/'))) assert.ok(c.authorized, c.why);
});

test('delivery: async on the memory store: each worker delivers what it queued, once; retries at either worker are answered from the store, not queued again', async () => {
  const ca = readFileSync(ctx.chain.root);
  const push = (id: string) => {
    const p = plainPush(account, pushXml(`oW${Number(id) % 3}`, id));
    return httpsRequest(ctx.httpsPort, ca, { method: 'POST', path: `/wx/callback?${p.query.toString()}`, headers: p.headers, body: p.body });
  };
  const ids = Array.from({ length: 10 }, (_, i) => String(700_000 + i));
  const answers = await Promise.all(ids.map(push));
  for (const a of answers) assert.equal(a.text, 'success');
  assert.deepEqual(await servedBy(gw, answers.map((a) => String(a.headers['x-request-id']))), [1, 2], 'both workers queued messages');
  await backend.until(10);
  // WeChat's retries of the same messages (signed anew), on new connections: whichever worker
  // they reach, the claim in the primary's store answers them.
  const retries = await Promise.all(ids.slice(0, 4).map(push));
  for (const a of retries) assert.equal(a.text, 'success');
  assert.deepEqual(await servedBy(gw, retries.map((a) => String(a.headers['x-request-id']))), [1, 2]);
  const keys = backend.delivered.map((d) => d.key);
  assert.equal(keys.length, 10, JSON.stringify(keys));
  assert.equal(new Set(keys).size, 10);
  const text = await metrics(ctx);
  assert.equal(sample(text, 'wxgw_callback_queue_total{route="wx",event="queued"}'), 10);
  // Each retry is answered from the primary's store: by the replay ledger or the delivery's claim.
  const fromStore = ['wxgw_callback_replays_total{route="wx",result="replayed"}', 'wxgw_callback_replays_total{route="wx",result="deduplicated"}', 'wxgw_callback_queue_total{route="wx",event="duplicate"}'];
  assert.equal(fromStore.reduce((n, series) => n + (sample(text, series) ?? 0), 0), 4, text.split('\n').filter((l) => l.startsWith('wxgw_callback')).join('\n'));
  assert.equal(sample(text, 'wxgw_callback_queue_total{route="wx",event="delivered"}'), 10);
  assert.equal(sample(text, 'wxgw_callback_queue_depth'), 0, 'the depth is summed over the workers');
});
