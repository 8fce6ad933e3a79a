// The WeChat Pay API egress end to end: a backend that holds no merchant key calls the egress
// listener over plain HTTP; the real gateway signs for it and sends the call to a fake Pay API
// (test/helpers/fake-wechatpay-api.ts), which checks the Authorization with an independent
// implementation and answers signed with a platform key. Every answer that does not verify is
// checked at the backend too: it got a 502 and none of the answer's content.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { Formatter, Rsa } from 'wechatpay-axios-plugin';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { sample } from '../helpers/metrics-text.js';
import { newMerchant, newPlatformIdentity, publicKeyPem, startFakeWechatpayApi, type FakeWechatpayApi, type PlatformIdentity } from '../helpers/fake-wechatpay-api.js';
import { loadChecked } from '../../gateway/main.js';
import { PolicyError } from '../../gateway/types/policy.js';

const APIV3_KEY = 'q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6';
const merchant = newMerchant();
/** The base64 of the key without its PEM lines: what a leak would show, in whatever framing. */
const KEY_BODY = merchant.privateKeyPem.split('\n').filter((l) => l !== '' && !l.startsWith('-----')).join('');
const KEY_LINE = merchant.privateKeyPem.split('\n')[1]!;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(port: number, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await request(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { accept: 'application/json', ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

/** The reason of a gateway error, which carries the request id of its log line in body and header. */
function reasonOf(reply: Reply): string {
  const { error } = JSON.parse(reply.text) as { error: { reason: string; request_id: string } };
  assert.equal(reply.headers['x-request-id'], error.request_id);
  return error.reason;
}

function policy(fake: FakeWechatpayApi, egressPort: number, extra: { section?: string; egress?: string } = {}): (ctx: PolicyContext) => string {
  return (ctx) => {
    const keyFile = join(ctx.dir, 'apiclient_key.pem');
    writeFileSync(keyFile, merchant.privateKeyPem);
    const apiv3File = join(ctx.dir, 'apiv3_key');
    writeFileSync(apiv3File, APIV3_KEY);
    return `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
wechatpay:
  apiv3_key: \${file:${apiv3File}}
${extra.section ?? ''}
  egress:
    listen: "127.0.0.1:${egressPort}"
    mchid: "${merchant.mchid}"
    serial_no: ${merchant.serial}
    private_key: \${file:${keyFile}}
    api_base: ${fake.url}
    timeout: 5s
    max_body: 8kb
${extra.egress ?? ''}
upstreams:
  legacy: { url: "http://127.0.0.1:9", timeout: 1s }
routes:
  - { name: all, match: { path_prefix: / }, upstream: legacy, allow: any }
`;
  };
}

async function metrics(t: TestGateway): Promise<string> {
  return t.gw.metrics.registry.metrics();
}

describe('WeChat Pay egress with downloaded platform certificates', () => {
  let fake: FakeWechatpayApi;
  let gw: TestGateway;
  let port: number;
  let first: PlatformIdentity;

  before(async () => {
    first = newPlatformIdentity();
    fake = await startFakeWechatpayApi({ merchant, apiv3Key: APIV3_KEY, platforms: [first] });
    gw = await startTestGateway(policy(fake, await freePort()));
    port = gw.gw.payEgress!.port;
    await gw.waitForLog((l) => l.msg === 'wechatpay platform certificates downloaded', 'the first certificate download');
  });
  after(async () => {
    await gw?.close();
    await fake?.close();
  });

  test('the platform certificates are downloaded at start, decrypted and signed for', async () => {
    assert.equal(fake.certificateDownloads(), 1);
    assert.ok(fake.calls[0]!.authorized, fake.calls[0]!.why);
    assert.equal(sample(await metrics(gw), 'wxgw_wechatpay_platform_cert_refresh_total{trigger="start",result="ok"}'), 1);
  });

  test('a backend call without any key is signed by wxgw, accepted by Pay, and its answer reaches the backend verified', async () => {
    const order = { appid: 'wxd678efh567hg6787', mchid: merchant.mchid, description: 'Image形象店-深圳腾大-QQ公仔', out_trade_no: 'T1217752501201407033233368018', amount: { total: 100 }, payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' } };
    // What an SDK configured with a dummy key sends: replaced, never forwarded.
    const dummy = 'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="x",signature="dummy",timestamp="1",serial_no="00"';
    const reply = await call(port, 'POST', '/v3/pay/transactions/jsapi', order, { authorization: dummy, cookie: 'session=abc' });
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(JSON.parse(reply.text), { prepay_id: `wx${order.out_trade_no}prepay` });
    assert.equal(reply.headers['x-wxgw-pay-verified'], 'true');
    const seen = fake.calls.at(-1)!;
    assert.ok(seen.authorized, seen.why);
    assert.notEqual(seen.headers.authorization, dummy);
    assert.equal(seen.headers.cookie, undefined);
    assert.equal(seen.headers.accept, 'application/json');
    assert.match(String(seen.headers['user-agent']), /wxgw/);
    assert.equal(seen.body, JSON.stringify(order));
    // Pay's own signature headers reach the backend, so an SDK configured with the (public)
    // platform certificate can verify the answer once more.
    const h = reply.headers as Record<string, string>;
    assert.equal(h['wechatpay-serial'], first.serial);
    assert.ok(Rsa.verify(Formatter.response(h['wechatpay-timestamp'], h['wechatpay-nonce'], reply.text), h['wechatpay-signature'], publicKeyPem(first)));
  });

  test('a GET with a query is signed over path and query; a signed 404 passes with its status', async () => {
    const ok = await call(port, 'GET', `/v3/pay/transactions/out-trade-no/T42?mchid=${merchant.mchid}`);
    assert.equal(ok.status, 200, ok.text);
    assert.equal((JSON.parse(ok.text) as { trade_state: string }).trade_state, 'SUCCESS');
    assert.equal(fake.calls.at(-1)!.url, `/v3/pay/transactions/out-trade-no/T42?mchid=${merchant.mchid}`);
    const missing = await call(port, 'GET', `/v3/pay/transactions/out-trade-no/missing?mchid=${merchant.mchid}`);
    assert.equal(missing.status, 404);
    assert.equal((JSON.parse(missing.text) as { code: string }).code, 'ORDER_NOT_EXIST');
  });

  test('the log line names method, path without query, status and verified', async () => {
    const line = await gw.waitForLog((l) => l.msg === 'wechatpay egress call' && typeof l.path === 'string' && (l.path as string).endsWith('/T42'), 'the call line');
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 200);
    assert.equal(line.verified, true);
    assert.doesNotMatch(gw.logText(), /mchid=1900000109/);
  });

  test('an answer with a bad signature never reaches the backend: 502 wechatpay_answer_unverified', async () => {
    fake.mode = 'bad_signature';
    try {
      const reply = await call(port, 'POST', '/v3/pay/transactions/jsapi', { out_trade_no: 'BAD1' });
      assert.equal(reply.status, 502);
      assert.equal(reasonOf(reply), 'wechatpay_answer_unverified');
      assert.doesNotMatch(reply.text, /prepay/);
      assert.equal(reply.headers['wechatpay-signature'], undefined);
    } finally {
      fake.mode = 'good';
    }
    assert.equal(sample(await metrics(gw), 'wxgw_wechatpay_egress_verify_failures_total{why="bad_signature"}'), 1);
  });

  test('an answer without signature, or with a timestamp an hour off, is refused alike', async () => {
    for (const [mode, why] of [['no_signature', 'missing_headers'], ['stale', 'stale_timestamp']] as const) {
      fake.mode = mode;
      try {
        const reply = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/T7?mchid=1');
        assert.equal(reply.status, 502, mode);
        assert.equal(reasonOf(reply), 'wechatpay_answer_unverified');
        assert.doesNotMatch(reply.text, /SUCCESS/);
      } finally {
        fake.mode = 'good';
      }
      assert.equal(sample(await metrics(gw), `wxgw_wechatpay_egress_verify_failures_total{why="${why}"}`), 1, why);
    }
  });

  test('rotation: an answer signed with a new platform certificate makes one download, then both certificates verify', async () => {
    const second = newPlatformIdentity();
    fake.platforms.push(second);
    fake.signer = second;
    const before = fake.certificateDownloads();
    const reply = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/R1?mchid=1');
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.headers['wechatpay-serial'], second.serial);
    assert.equal(fake.certificateDownloads(), before + 1);
    assert.equal(sample(await metrics(gw), 'wxgw_wechatpay_platform_cert_refresh_total{trigger="unknown_serial",result="ok"}'), 1);
    fake.signer = first;
    const old = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/R2?mchid=1');
    assert.equal(old.status, 200, old.text);
    assert.equal(fake.certificateDownloads(), before + 1);
  });

  test('a serial Pay never listed is refused, and does not make a stream of downloads', async () => {
    fake.mode = 'unknown_serial';
    const before = fake.certificateDownloads();
    try {
      for (let i = 0; i < 3; i++) {
        const reply = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/U1?mchid=1');
        assert.equal(reply.status, 502);
        assert.equal(reasonOf(reply), 'wechatpay_answer_unverified');
      }
    } finally {
      fake.mode = 'good';
    }
    // The rotation test's download a moment ago keeps this within the cool-down.
    assert.equal(fake.certificateDownloads(), before);
    assert.equal(sample(await metrics(gw), 'wxgw_wechatpay_egress_verify_failures_total{why="unknown_serial"}'), 3);
  });

  test('a bill file, which Pay does not sign, streams through', async () => {
    const reply = await call(port, 'GET', '/v3/billdownload/file?token=abc');
    assert.equal(reply.status, 200);
    assert.equal(reply.text, 'bill,file,unsigned\n');
  });

  test('a multipart upload is signed over its meta part, as Pay verifies it', async () => {
    const meta = { filename: 'receipt.png', sha256: 'ab'.repeat(32) };
    const form = new FormData();
    form.append('meta', JSON.stringify(meta));
    form.append('file', new Blob([Buffer.alloc(300, 7)], { type: 'image/png' }), 'receipt.png');
    const encoded = new Request('http://backend.invalid/', { method: 'POST', body: form });
    const raw = Buffer.from(await encoded.arrayBuffer());
    const reply = await call(port, 'POST', '/v3/merchant/media/upload', raw, { 'content-type': encoded.headers.get('content-type')! });
    assert.equal(reply.status, 200, reply.text);
    assert.deepEqual(JSON.parse(reply.text), { media_id: 'fake-media-300' });
    assert.ok(fake.calls.at(-1)!.authorized, fake.calls.at(-1)!.why);
    const noMeta = new FormData();
    noMeta.append('file', new Blob([Buffer.alloc(10)]), 'x.png');
    const bare = new Request('http://backend.invalid/', { method: 'POST', body: noMeta });
    const refused = await call(port, 'POST', '/v3/merchant/media/upload', Buffer.from(await bare.arrayBuffer()), { 'content-type': bare.headers.get('content-type')! });
    assert.equal(refused.status, 400);
    assert.equal(reasonOf(refused), 'bad_request');
  });

  test('a body over max_body is 413 and never sent to Pay', async () => {
    const calls = fake.calls.length;
    const reply = await call(port, 'POST', '/v3/pay/transactions/jsapi', 'x'.repeat(9000));
    assert.equal(reply.status, 413);
    assert.equal(reasonOf(reply), 'body_too_large');
    assert.equal(fake.calls.length, calls);
  });

  test('the merchant private key appears in no log line, no header or body Pay got, no answer, no metric', async () => {
    const reply = await call(port, 'POST', '/v3/pay/transactions/jsapi', { out_trade_no: 'K1' });
    const text = gw.logText().replace(/\\n/g, '');
    const backendSaw = JSON.stringify(reply);
    for (const needle of [KEY_BODY, KEY_LINE]) {
      assert.ok(!text.includes(needle), 'the log holds the private key');
      for (const c of fake.calls) {
        assert.ok(!JSON.stringify(c.headers).includes(needle) && !c.body.includes(needle), 'Pay got the private key');
      }
      assert.ok(!(await metrics(gw)).includes(needle));
      assert.ok(!backendSaw.includes(needle), 'the backend got the private key');
    }
    const res = await request(`http://127.0.0.1:${gw.gw.admin!.port}/config`);
    const config = await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.match(config, /private_key/);
    assert.ok(!config.replace(/\\n/g, '').includes(KEY_LINE), 'the admin /config shows the private key');
  });

  test('each call is counted by result', async () => {
    const text = await metrics(gw);
    assert.ok((sample(text, 'wxgw_wechatpay_egress_requests_total{result="verified"}') ?? 0) >= 5);
    assert.equal(sample(text, 'wxgw_wechatpay_egress_requests_total{result="body_too_large"}'), 1);
    assert.equal(sample(text, 'wxgw_wechatpay_egress_requests_total{result="download"}'), 1);
  });

  test('a new merchant key and serial: Pay refusing the old one shows as 401 SIGN_ERROR, and a reload puts the new one in force', async () => {
    const renewed = { ...newMerchant(merchant.mchid) };
    fake.merchant = renewed;
    const refused = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/N1?mchid=1');
    assert.equal(refused.status, 502);
    assert.equal(reasonOf(refused), 'wechatpay_answer_unverified');
    assert.match(refused.text, /HTTP 401 SIGN_ERROR/);
    writeFileSync(join(gw.ctx.dir, 'apiclient_key.pem'), renewed.privateKeyPem);
    const file = join(gw.ctx.dir, 'gateway.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(merchant.serial, renewed.serial));
    const result = await gw.gw.reload();
    assert.ok(result.ok, JSON.stringify(result));
    const ok = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/N2?mchid=1');
    assert.equal(ok.status, 200, ok.text);
    assert.ok(fake.calls.at(-1)!.authorized);
    const renewedLine = renewed.privateKeyPem.split('\n')[1]!;
    assert.ok(!gw.logText().replace(/\\n/g, '').includes(renewedLine), 'the log holds the renewed private key');
  });

  test('a reload that moves the egress listener, or removes it, is refused until a restart', async () => {
    const file = join(gw.ctx.dir, 'gateway.yaml');
    const text = readFileSync(file, 'utf8');
    try {
      writeFileSync(file, text.replace(`listen: "127.0.0.1:${port}"`, `listen: "127.0.0.1:${await freePort()}"`));
      const moved = await gw.gw.reload();
      assert.ok(!moved.ok && moved.why === 'restart' && /wechatpay\.egress\.listen/.test(moved.message), JSON.stringify(moved));
      writeFileSync(file, text.replace(/^wechatpay:\n[\s\S]*?(?=^upstreams:)/m, ''));
      const removed = await gw.gw.reload();
      assert.ok(!removed.ok && removed.why === 'restart', JSON.stringify(removed));
    } finally {
      writeFileSync(file, text);
    }
    const still = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/L1?mchid=1');
    assert.equal(still.status, 200, still.text);
  });
});

describe('WeChat Pay egress facing certificates it cannot trust, and a Pay that does not answer', () => {
  let fake: FakeWechatpayApi;
  let gw: TestGateway;
  let port: number;

  before(async () => {
    // Certificates encrypted under another APIv3 key: what an impostor without the key would serve.
    fake = await startFakeWechatpayApi({ merchant, apiv3Key: 'Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4', platforms: [newPlatformIdentity()] });
    const egressPort = await freePort();
    gw = await startTestGateway((ctx) => policy(fake, egressPort)(ctx).replace('    timeout: 5s\n', '    timeout: 300ms\n'));
    port = gw.gw.payEgress!.port;
    await gw.waitForLog((l) => l.msg === 'wechatpay platform certificates could not be downloaded; answers signed with an unknown serial are refused until a download succeeds', 'the failed download');
  });
  after(async () => {
    await gw?.close();
    await fake?.close();
  });

  test('certificates that do not decrypt under the APIv3 key are not taken, and no answer verifies with them', async () => {
    assert.equal(sample(await metrics(gw), 'wxgw_wechatpay_platform_cert_refresh_total{trigger="start",result="failed"}'), 1);
    const reply = await call(port, 'GET', '/v3/pay/transactions/out-trade-no/I1?mchid=1');
    assert.equal(reply.status, 502);
    assert.equal(reasonOf(reply), 'wechatpay_answer_unverified');
    assert.match(reply.text, /unknown serial/);
    assert.equal(sample(await metrics(gw), 'wxgw_wechatpay_platform_cert_refresh_total{trigger="unknown_serial",result="failed"}'), 1);
  });

  test('a Pay that does not answer within timeout is 504 wechatpay_timeout', async () => {
    fake.hold = true;
    try {
      const reply = await call(port, 'POST', '/v3/pay/transactions/jsapi', { out_trade_no: 'SLOW1' });
      assert.equal(reply.status, 504);
      assert.equal(reasonOf(reply), 'wechatpay_timeout');
    } finally {
      fake.release();
    }
  });
});

describe('WeChat Pay egress in public-key mode', () => {
  const PUB_KEY_ID = 'PUB_KEY_ID_0119000001092026120200000000';
  let fake: FakeWechatpayApi;
  let gw: TestGateway;

  before(async () => {
    const platform = { ...newPlatformIdentity(), serial: PUB_KEY_ID };
    fake = await startFakeWechatpayApi({ merchant, apiv3Key: APIV3_KEY, platforms: [platform] });
    const egressPort = await freePort();
    gw = await startTestGateway((ctx) => {
      const pubFile = join(ctx.dir, 'pub_key.pem');
      writeFileSync(pubFile, publicKeyPem(platform));
      return policy(fake, egressPort, { section: `  public_keys:\n    - { id: ${PUB_KEY_ID}, file: ${pubFile} }` })(ctx);
    });
  });
  after(async () => {
    await gw?.close();
    await fake?.close();
  });

  test('answers verify with the configured public key and nothing is downloaded', async () => {
    const reply = await call(gw.gw.payEgress!.port, 'GET', '/v3/pay/transactions/out-trade-no/P1?mchid=1');
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.headers['wechatpay-serial'], PUB_KEY_ID);
    fake.mode = 'bad_signature';
    try {
      const bad = await call(gw.gw.payEgress!.port, 'GET', '/v3/pay/transactions/out-trade-no/P2?mchid=1');
      assert.equal(bad.status, 502);
    } finally {
      fake.mode = 'good';
    }
    assert.equal(fake.certificateDownloads(), 0);
  });
});

describe('wechatpay.egress checks', () => {
  let fake: FakeWechatpayApi;
  before(async () => {
    fake = await startFakeWechatpayApi({ merchant, apiv3Key: APIV3_KEY, platforms: [] });
  });
  after(() => fake.close());

  async function load(text: (ctx: PolicyContext) => string): Promise<{ warnings: string[]; errors: string[] }> {
    const { policyContext } = await import('../helpers/gateway.js');
    const ctx = await policyContext();
    const file = join(ctx.dir, 'gateway.yaml');
    writeFileSync(file, text(ctx));
    try {
      const loaded = await loadChecked(file, {});
      return { warnings: loaded.warnings.map((w) => `${w.path} ${w.message}`), errors: [] };
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      return { warnings: [], errors: err.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.path} ${d.message}`) };
    }
  }

  test('a listener beyond loopback is a warning', async () => {
    const { warnings } = await load((ctx) => policy(fake, 19903)(ctx).replace('listen: "127.0.0.1:19903"', 'listen: "0.0.0.0:19903"'));
    assert.ok(warnings.some((w) => w.startsWith('wechatpay.egress.listen') && /merchant's name/.test(w)), warnings.join('\n'));
  });

  test('downloading without apiv3_key, or a private key that is not one, is an error that never quotes the key', async () => {
    const { errors } = await load((ctx) => policy(fake, 19903)(ctx).replace(/  apiv3_key: .*\n/, ''));
    assert.ok(errors.some((e) => e.startsWith('wechatpay.egress ') && /apiv3_key/.test(e)), errors.join('\n'));
    const broken = await load((ctx) => {
      const file = join(ctx.dir, 'broken.pem');
      writeFileSync(file, 'not a key at all: s3cr3t');
      return policy(fake, 19903)(ctx).replace(/private_key: .*/, `private_key: \${file:${file}}`);
    });
    assert.ok(broken.errors.some((e) => e.startsWith('wechatpay.egress.private_key')), broken.errors.join('\n'));
    assert.ok(!broken.errors.join('\n').includes('s3cr3t'));
  });

  test('a section whose keys are downloaded needs no configured ones, but a notify route still does', async () => {
    const plain = await load((ctx) => policy(fake, 19903)(ctx));
    assert.deepEqual(plain.errors, []);
    const notify = await load((ctx) => policy(fake, 19903)(ctx).replace('allow: any }', 'allow: any, wechatpay_notify: {} }'));
    assert.ok(notify.errors.some((e) => e.startsWith('routes[0].wechatpay_notify') && /configured keys only/.test(e)), notify.errors.join('\n'));
  });
});

