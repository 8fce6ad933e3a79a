// Traces through the real gateway to a local OTLP receiver: one server span per request with the
// guards' decisions as events, the upstream call as its child, the trace context the upstream
// receives, the trace id on the access line, and what a span must never carry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { PROTOCOLS, type Protocol } from '../helpers/h2-client.js';
import type { RequestOptions } from '../helpers/https-client.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { waitUntil } from '../helpers/wait.js';

const JWT_SECRET = 'jwt-secret-for-tracing-tests-0123456789';
const OTLP_TOKEN = 'collector-token-5b1f0c';
const OPENID = 'o-alice-openid-7f3e9a';
const PHONE = '13812345678';
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

const SERVER = 2;
const CLIENT = 3;

let upstream: TestUpstream;
let receiver: OtlpReceiver;
let token: string;

const policy = (opts: { trusted?: boolean; tracing?: string; endpoint?: () => string; extra?: string }) => (ctx: { httpsPort: number; tlsSection: string }) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${opts.trusted ? '  trusted_proxies: [127.0.0.1/32]\n' : ''}${ctx.tlsSection}
${opts.tracing ?? `tracing:
  otlp_endpoint: "${opts.endpoint ? opts.endpoint() : `${receiver.url}/v1/traces`}"
  headers: { authorization: "Bearer \${OTLP_TOKEN}" }${opts.extra ?? ''}`}
identity:
  jwt: { secret: "\${JWT_SECRET}" }
mask_profiles:
  users:
    detect: [cn_mobile]
upstreams:
  legacy: { url: "${upstream.url}" }
defaults: { allow: any }
routes:
  - name: users
    match: { path_prefix: /users/ }
    upstream: legacy
    mask: users
    identity_required: true
    rate_limit: { key: openid, limit: 1000, window: 60s }
  - { name: closed, match: { path_prefix: /closed/ }, upstream: legacy, allow: [10.0.0.0/8] }
  - { name: open, match: { path_prefix: /open/ }, upstream: legacy }
`;

const env = { JWT_SECRET, OTLP_TOKEN };

before(async () => {
  upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  receiver = await startOtlpReceiver();
  token = await new SignJWT({ openid: OPENID }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));
});
after(async () => {
  await receiver.close();
  await upstream.close();
});

/** The server span of one request (its request id), once exported. */
function serverSpan(requestId: string): Promise<ReceivedSpan> {
  return waitUntil(() => receiver.spans.find((s) => s.kind === SERVER && s.attributes['wxgw.request_id'] === requestId), `the server span of ${requestId}`, {
    wake: receiver.wake,
    describe: () => JSON.stringify(receiver.spans, null, 1),
  });
}

function childOf(parent: ReceivedSpan): Promise<ReceivedSpan> {
  return waitUntil(() => receiver.spans.find((s) => s.parentSpanId === parent.spanId), `the child of span ${parent.spanId}`, { wake: receiver.wake });
}

/** The upstream's copy of one request, found by the request id the gateway stated. */
function atUpstream(requestId: string) {
  const got = upstream.received.find((r) => r.headers['x-request-id'] === requestId);
  assert.ok(got, `the upstream received ${requestId}`);
  return got;
}

function accessLine(t: TestGateway, requestId: string): Promise<Record<string, unknown>> {
  return t.waitForLog((l) => l['msg'] === 'request' && l['request_id'] === requestId, `the access line of ${requestId}`);
}

function events(span: ReceivedSpan): string[] {
  return span.events.map((e) => `${e.name}:${String(e.attributes['wxgw.outcome'])}${e.attributes['wxgw.reason'] === undefined ? '' : `:${String(e.attributes['wxgw.reason'])}`}`);
}

async function call(t: TestGateway, opts: RequestOptions, protocol: Protocol = PROTOCOLS[0]!) {
  const res = await protocol.request(t.port, t.ca, opts);
  return { res, id: String(res.headers['x-request-id']) };
}

describe('tracing on, the client not a trusted proxy', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway(policy({}), { env });
  });
  after(() => t.close());

  for (const protocol of PROTOCOLS) {
  test(`a proxied request over ${protocol.name}: one server span with the guard events, a child span for the upstream, one trace id everywhere`, { timeout: 30_000 }, async () => {
    const { res, id } = await call(t, { path: `/users/${PHONE}?phone=${PHONE}`, headers: { authorization: `Bearer ${token}` } }, protocol);
    assert.equal(res.status, 200);
    const span = await serverSpan(id);
    assert.equal(span.name, 'GET users');
    assert.equal(span.parentSpanId, undefined, 'a new trace');
    assert.equal(span.service, 'wxgw');
    assert.equal(span.attributes['http.request.method'], 'GET');
    assert.equal(span.attributes['http.route'], 'users');
    assert.equal(span.attributes['http.response.status_code'], 200);
    assert.equal(span.attributes['url.path'], '/users/138****5678', 'masked by the log redactor');
    assert.equal(span.attributes['url.query'], undefined, 'no query at all');
    assert.deepEqual(events(span), ['guard.allowlist:pass', 'guard.cors:pass', 'guard.identity:pass', 'guard.rate_limit:pass']);
    assert.equal(span.events.find((e) => e.name === 'guard.identity')!.attributes['wxgw.identity'], 'verified');

    const child = await childOf(span);
    assert.equal(child.kind, CLIENT);
    assert.equal(child.traceId, span.traceId);
    assert.equal(child.attributes['server.address'], '127.0.0.1');
    assert.equal(child.attributes['server.port'], upstream.port);
    assert.equal(child.attributes['http.response.status_code'], 200);

    const got = atUpstream(id);
    assert.equal(got.headers['traceparent'], `00-${span.traceId}-${child.spanId}-01`, 'the upstream continues the upstream span');
    assert.equal((await accessLine(t, id))['trace_id'], span.traceId);
    assert.equal(receiver.headers.at(-1)!['authorization'], `Bearer ${OTLP_TOKEN}`, 'tracing.headers go with each export');
  });
  }

  test('a refused request gets a span with the refusal reason, and the guard that refused it', { timeout: 30_000 }, async () => {
    const noToken = await call(t, { path: '/users/me' });
    assert.equal(noToken.res.status, 401);
    const span = await serverSpan(noToken.id);
    assert.equal(span.attributes['wxgw.reason'], 'identity_required');
    assert.equal(span.attributes['http.response.status_code'], 401);
    assert.deepEqual(events(span), ['guard.allowlist:pass', 'guard.cors:pass', 'guard.identity:refuse:identity_required']);
    assert.ok(!receiver.spans.some((s) => s.parentSpanId === span.spanId), 'no upstream span: nothing went upstream');
    assert.equal((await accessLine(t, noToken.id))['trace_id'], span.traceId);

    const closed = await call(t, { path: '/closed/x' });
    assert.equal(closed.res.status, 403);
    assert.deepEqual(events(await serverSpan(closed.id)), ['guard.allowlist:refuse:ip_not_allowed']);

    const nowhere = await call(t, { path: '/nowhere' });
    assert.equal(nowhere.res.status, 404);
    const lost = await serverSpan(nowhere.id);
    assert.equal(lost.attributes['wxgw.reason'], 'route_not_found');
    assert.equal(lost.name, 'GET');
  });

  for (const protocol of PROTOCOLS) {
  test(`an untrusted client's traceparent over ${protocol.name} starts nothing: a new trace, the gateway's traceparent upstream, its tracestate dropped`, { timeout: 30_000 }, async () => {
    const { res, id } = await call(t, { path: '/open/x', headers: { traceparent: CLIENT_TRACEPARENT, tracestate: 'vendor=abc' } }, protocol);
    assert.equal(res.status, 200);
    const span = await serverSpan(id);
    assert.notEqual(span.traceId, CLIENT_TRACE);
    assert.equal(span.parentSpanId, undefined);
    const child = await childOf(span);
    const got = atUpstream(id);
    assert.equal(got.headers['traceparent'], `00-${span.traceId}-${child.spanId}-01`);
    assert.equal(got.headers['tracestate'], undefined);
  });
  }

  test('no token, openid, phone number or secret in anything exported', { timeout: 30_000 }, async () => {
    await waitUntil(() => (receiver.spans.length > 0 ? true : undefined), 'some spans', { wake: receiver.wake });
    const text = receiver.bodies.join('\n');
    for (const clear of [token, OPENID, PHONE, JWT_SECRET, OTLP_TOKEN]) assert.ok(!text.includes(clear), `${clear.slice(0, 12)}... was exported`);
  });
});

describe('tracing on, the client a trusted proxy', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway(policy({ trusted: true }), { env });
  });
  after(() => t.close());

  for (const protocol of PROTOCOLS) {
  test(`a trusted proxy's traceparent over ${protocol.name} is the parent, and its tracestate goes on upstream`, { timeout: 30_000 }, async () => {
    const { res, id } = await call(t, { path: '/open/x', headers: { traceparent: CLIENT_TRACEPARENT, tracestate: 'vendor=abc' } }, protocol);
    assert.equal(res.status, 200);
    const span = await serverSpan(id);
    assert.equal(span.traceId, CLIENT_TRACE);
    assert.equal(span.parentSpanId, CLIENT_SPAN);
    const child = await childOf(span);
    const got = atUpstream(id);
    assert.equal(got.headers['traceparent'], `00-${CLIENT_TRACE}-${child.spanId}-01`);
    assert.equal(got.headers['tracestate'], 'vendor=abc');
    assert.equal((await accessLine(t, id))['trace_id'], CLIENT_TRACE);
  });
  }
});

describe('tracing on, trust_incoming: false', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway(policy({ trusted: true, extra: '\n  trust_incoming: false' }), { env });
  });
  after(() => t.close());

  test("even a trusted proxy's traceparent starts nothing", { timeout: 30_000 }, async () => {
    const { id } = await call(t, { path: '/open/x', headers: { traceparent: CLIENT_TRACEPARENT, tracestate: 'vendor=abc' } });
    const span = await serverSpan(id);
    assert.notEqual(span.traceId, CLIENT_TRACE);
    assert.equal(span.parentSpanId, undefined);
    assert.equal(atUpstream(id).headers['tracestate'], undefined);
  });
});

describe('tracing off', () => {
  let t: TestGateway;
  const saved = process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  before(async () => {
    // Were any exporter made, this is where the SDK's own defaults would send it.
    process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = receiver.url;
    t = await startTestGateway(policy({ tracing: '' }), { env });
  });
  after(async () => {
    await t.close();
    if (saved === undefined) delete process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
    else process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = saved;
  });

  test('no trace id on the access line, and the client trace context passes untouched, as without tracing', { timeout: 30_000 }, async () => {
    const { res, id } = await call(t, { path: '/open/x', headers: { traceparent: CLIENT_TRACEPARENT, tracestate: 'vendor=abc' } });
    assert.equal(res.status, 200);
    const got = atUpstream(id);
    assert.equal(got.headers['traceparent'], CLIENT_TRACEPARENT);
    assert.equal(got.headers['tracestate'], 'vendor=abc');
    const line = await accessLine(t, id);
    assert.ok(!('trace_id' in line), 'no trace id');
  });

  test('nothing is exported, even once the gateway has shut down and flushed', { timeout: 30_000 }, async () => {
    const sent = receiver.bodies.length;
    const { res } = await call(t, { path: '/open/off' });
    assert.equal(res.status, 200);
    await t.close();
    assert.equal(receiver.bodies.length, sent);
  });
});

describe('reload and shutdown', () => {
  let other: OtlpReceiver;
  let t: TestGateway;
  let endpoint: string;
  before(async () => {
    other = await startOtlpReceiver();
    endpoint = `${receiver.url}/v1/traces`;
    t = await startTestGateway(policy({ endpoint: () => endpoint }), { env });
  });
  after(() => other.close());

  test('a reload that changes the endpoint sends the next spans there; shutdown flushes what is queued', { timeout: 30_000 }, async () => {
    endpoint = `${other.url}/v1/traces`;
    writeFileSync(join(t.ctx.dir, 'gateway.yaml'), policy({ endpoint: () => endpoint })(t.ctx));
    const reloaded = await t.gw.reload();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    const { id } = await call(t, { path: '/open/after-reload' });
    // Closed at once: the span is still queued (exports run every second) and must be flushed.
    await t.close();
    const span = other.spans.find((s) => s.kind === SERVER && s.attributes['wxgw.request_id'] === id);
    assert.ok(span, 'the span went to the new endpoint, flushed at shutdown');
    assert.ok(!receiver.spans.some((s) => s.attributes['wxgw.request_id'] === id), 'and not to the old one');
  });
});

describe('a reload that turns tracing on', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway(policy({ tracing: '' }), { env });
  });
  after(() => t.close());

  test('requests are traced once the new policy is in force and the SDK has loaded', { timeout: 30_000 }, async () => {
    writeFileSync(join(t.ctx.dir, 'gateway.yaml'), policy({})(t.ctx));
    const reloaded = await t.gw.reload();
    assert.ok(reloaded.ok, JSON.stringify(reloaded));
    // The SDK is loaded on the first request that needs it; requests meanwhile go untraced.
    let traced: { id: string; traceId: string } | undefined;
    for (let i = 0; i < 500 && !traced; i++) {
      const { res, id } = await call(t, { path: `/open/${i}` });
      assert.equal(res.status, 200);
      const traceId = (await accessLine(t, id))['trace_id'];
      if (typeof traceId === 'string') traced = { id, traceId };
    }
    assert.ok(traced, 'a request was traced');
    assert.equal((await serverSpan(traced.id)).traceId, traced.traceId);
    await t.waitForLog((l) => l['msg'] === 'tracing on: spans exported over OTLP/HTTP', 'the tracing-on line');
  });
});

describe('a collector that is down', () => {
  let t: TestGateway;
  before(async () => {
    const gone = await startOtlpReceiver();
    const url = `${gone.url}/v1/traces`;
    await gone.close();
    t = await startTestGateway(policy({ endpoint: () => url }), { env });
  });
  after(() => t.close());

  test('requests are answered as ever, and the failing export is logged', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 3; i++) assert.equal((await call(t, { path: `/open/${i}` })).res.status, 200);
    const line = await t.waitForLog((l) => String(l['msg']).startsWith('trace export failed'), 'the export failure line');
    assert.equal(line['level'], 'warn');
    assert.ok(!t.logText().includes(OTLP_TOKEN), 'the export headers are not logged');
  });
});
