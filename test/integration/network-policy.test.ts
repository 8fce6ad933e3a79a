// Network policy through real HTTPS: the IP allowlist (with trusted and untrusted forwarding
// claims), response header hygiene, and CORS, against a real upstream that records what reached it
// and answers the way legacy backends do (their own `Access-Control-Allow-Origin: *`, Server, ...).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { h2Request, PROTOCOLS, type Protocol } from '../helpers/h2-client.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One HTTPS request from a chosen local address: 127.0.0.2 is the policy's trusted proxy. */
function callOver(protocol: Protocol, t: TestGateway, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders; from?: string } = {}): Promise<Answer> {
  if (protocol.h2) return h2Request(t.port, t.ca, { path, ...(opts.method !== undefined && { method: opts.method }), ...(opts.headers && { headers: opts.headers }), localAddress: opts.from ?? '127.0.0.1' });
  const options: RequestOptions = {
    host: '127.0.0.1',
    port: t.port,
    servername: 'localhost',
    localAddress: opts.from ?? '127.0.0.1',
    method: opts.method ?? 'GET',
    path,
    headers: { host: 'localhost', ...opts.headers },
    ca: t.ca,
    agent: false,
  };
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function assertRefused(res: Answer, status: number, reason: string): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal((JSON.parse(res.text) as { error: { reason: string } }).error.reason, reason);
}

const HSTS = 'max-age=31536000; includeSubDomains; preload';

function assertSecurityHeaders(res: Answer): void {
  assert.equal(res.headers['strict-transport-security'], HSTS);
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
}

function corsHeaders(res: Answer): string[] {
  return Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
}

const APP = 'https://app.example.com';

for (const protocol of PROTOCOLS) {
describe(`network policy over ${protocol.name}`, () => {
  const call = (t: TestGateway, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders; from?: string } = {}): Promise<Answer> => callOver(protocol, t, path, opts);
  let upstream: TestUpstream;
  let t: TestGateway;

  before(async () => {
    // A legacy backend: unsafe CORS of its own, software banners, HSTS off, JSON without charset.
    upstream = await startUpstream((req, res) => {
      const text = JSON.stringify({ url: req.url, headers: req.headers });
      res.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET, POST, PUT, DELETE',
        server: 'Apache/2.2.15 (CentOS)',
        'x-powered-by': 'PHP/5.3.3',
        'x-backend-version': '1.0.7',
        'strict-transport-security': 'max-age=0',
        vary: 'Accept-Encoding',
      });
      res.end(text);
    });
    const cors = `{ origins: ["${APP}", "https://*.shop.example.com"], credentials: true, methods: [GET, POST], headers: [content-type, x-wx-token], expose_headers: [x-request-id], max_age: 10m }`;
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [127.0.0.2]
  strip_response_headers: [server, x-powered-by, x-backend-version]
${ctx.tlsSection}
  hsts: { max_age: 365d, include_subdomains: true, preload: true }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: office
    match: { path_prefix: /office/ }
    upstream: legacy
    allow: [198.51.100.0/24, "2001:db8::/32"]
  - name: carved
    match: { path_prefix: /carved/ }
    upstream: legacy
    allow: any
    deny: [127.0.0.1]
  - name: api
    match: { path_prefix: /api/, methods: [GET, POST] }
    upstream: legacy
    allow: [127.0.0.0/8]
    cors: ${cors}
  - name: office-cors
    match: { path_prefix: /office-cors/ }
    upstream: legacy
    allow: [198.51.100.0/24]
    cors: ${cors}
  - name: open
    match: { path_prefix: /open/ }
    upstream: legacy
    allow: any
  - name: raw-json
    match: { path_prefix: /raw/ }
    upstream: legacy
    allow: any
    json_charset: false
`,
    );
  });

  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('a spoofed X-Forwarded-For from an untrusted peer does not pass the allowlist and never reaches the upstream', async () => {
    const before = upstream.received.length;
    for (const xff of ['198.51.100.7', '198.51.100.7, 198.51.100.8', '::ffff:198.51.100.7', '2001:db8::1']) {
      const res = await call(t, '/office/report', { headers: { 'x-forwarded-for': xff, 'x-real-ip': '198.51.100.7', forwarded: 'for=198.51.100.7' } });
      assertRefused(res, 403, 'ip_not_allowed');
      assertSecurityHeaders(res);
    }
    assert.equal(upstream.received.length, before);
    const line = t.logs.filter((l) => l.route === 'office').at(-1);
    assert.equal(line?.reason, 'ip_not_allowed');
    assert.equal(line?.client_ip, '127.0.0.1');
  });

  test("a trusted proxy's X-Forwarded-For is the client the allowlist judges", async () => {
    const res = await call(t, '/office/report', { from: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.7' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(upstream.received.at(-1)!.headers['x-forwarded-for'], '198.51.100.7, 127.0.0.2');

    const before = upstream.received.length;
    // Only the hop the trusted proxy appended counts: what the client wrote to its left does not.
    const spoofedThroughProxy = await call(t, '/office/report', { from: '127.0.0.2', headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.9' } });
    assertRefused(spoofedThroughProxy, 403, 'ip_not_allowed');
    assertRefused(await call(t, '/office/report', { from: '127.0.0.2' }), 403, 'ip_not_allowed');
    assert.equal(upstream.received.length, before);
  });

  test('deny carves addresses out of allow: any', async () => {
    const before = upstream.received.length;
    assertRefused(await call(t, '/carved/x'), 403, 'ip_not_allowed');
    assert.equal(upstream.received.length, before);
    assert.equal((await call(t, '/carved/x', { from: '127.0.0.2' })).status, 200);
  });

  test('the allowlist runs before CORS: a refused address gets no preflight answer', async () => {
    const before = upstream.received.length;
    const res = await call(t, '/office-cors/x', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET' } });
    assertRefused(res, 403, 'ip_not_allowed');
    assert.deepEqual(corsHeaders(res), []);
    assert.equal(upstream.received.length, before);
  });

  test('proxied answers carry HSTS and nosniff, lose stripped headers and every upstream Access-Control-*', async () => {
    const res = await call(t, '/open/x', { headers: { origin: APP } });
    assert.equal(res.status, 200);
    assertSecurityHeaders(res);
    for (const h of ['server', 'x-powered-by', 'x-backend-version']) assert.equal(res.headers[h], undefined, h);
    assert.deepEqual(corsHeaders(res), [], 'a route without cors allows no cross-origin reads');
    assert.equal(res.headers['vary'], 'Accept-Encoding');
    assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal((await call(t, '/raw/x')).headers['content-type'], 'application/json', 'json_charset: false');
  });

  test("the gateway's own errors carry HSTS and nosniff too", async () => {
    const missing = await call(t, '/nowhere');
    assertRefused(missing, 404, 'route_not_found');
    assertSecurityHeaders(missing);
    const wrongMethod = await call(t, '/api/x', { method: 'DELETE' });
    assertRefused(wrongMethod, 405, 'method_not_allowed');
    assertSecurityHeaders(wrongMethod);
  });

  test('an allowed origin gets the policy CORS headers, never the upstream *', async () => {
    for (const origin of [APP, 'https://m.shop.example.com']) {
      const res = await call(t, '/api/feed', { headers: { origin, cookie: 'sid=1' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      assert.equal(res.headers['access-control-expose-headers'], 'x-request-id');
      assert.equal(res.headers['access-control-allow-methods'], undefined, "the upstream's own list is gone");
      assert.equal(res.headers['vary'], 'Accept-Encoding, Origin');
      assertSecurityHeaders(res);
    }
  });

  test('an unlisted origin is still forwarded, but answered without any CORS header', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.net', 'https://shop.example.com', 'null', 'HTTPS://APP.EXAMPLE.COM', `${APP}/`]) {
      const before = upstream.received.length;
      const res = await call(t, '/api/feed', { headers: { origin } });
      assert.equal(res.status, 200, origin);
      assert.equal(upstream.received.length, before + 1, origin);
      assert.deepEqual(corsHeaders(res), [], origin);
      assert.equal(res.headers['vary'], 'Accept-Encoding, Origin', origin);
    }
  });

  test('preflights are answered by the gateway, routed by the method they ask about, and never forwarded', async () => {
    const before = upstream.received.length;
    const res = await call(t, '/api/feed', {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-wx-token' },
    });
    assert.equal(res.status, 204, res.text);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.equal(res.headers['access-control-allow-methods'], 'GET, POST');
    assert.equal(res.headers['access-control-allow-headers'], 'content-type, x-wx-token');
    assert.equal(res.headers['access-control-max-age'], '600');
    assert.equal(res.headers['vary'], 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assertSecurityHeaders(res);

    // Headers the policy does not list are simply not granted: the browser refuses on its own.
    const extra = await call(t, '/api/feed', {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-admin-override' },
    });
    assert.equal(extra.status, 204);
    assert.equal(extra.headers['access-control-allow-headers'], 'content-type, x-wx-token');
    assert.equal(upstream.received.length, before);
  });

  test('a preflight from an unlisted origin, or on a route without cors, is refused with 403', async () => {
    const before = upstream.received.length;
    for (const origin of ['https://evil.example', 'null', 'https://shop.example.com']) {
      const res = await call(t, '/api/feed', { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
      assertRefused(res, 403, 'cors_origin_not_allowed');
      assert.deepEqual(corsHeaders(res), [], origin);
    }
    const noCors = await call(t, '/open/x', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET' } });
    assertRefused(noCors, 403, 'cors_origin_not_allowed');
    // A preflight asking for a method the route does not serve is refused like the method itself.
    assertRefused(await call(t, '/api/feed', { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'DELETE' } }), 405, 'method_not_allowed');
    assert.equal(upstream.received.length, before);
  });

  test('OPTIONS without Access-Control-Request-Method is an ordinary request, routed by OPTIONS', async () => {
    assertRefused(await call(t, '/api/feed', { method: 'OPTIONS', headers: { origin: APP } }), 405, 'method_not_allowed');
    const before = upstream.received.length;
    assert.equal((await call(t, '/open/x', { method: 'OPTIONS', headers: { origin: APP } })).status, 200);
    assert.equal(upstream.received.length, before + 1);
  });
});
}
