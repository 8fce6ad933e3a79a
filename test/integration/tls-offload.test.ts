// `server.https: off`: TLS ends at a load balancer in trusted_proxies and the plain listener runs
// the gateway. Only what that balancer forwards as https is proxied; everything else, including
// a client that claims https itself, gets the redirect and never reaches the upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One plain-HTTP request from a chosen local address: only 127.0.0.1 is the trusted balancer. */
function call(port: number, path: string, opts: { method?: string; headers?: OutgoingHttpHeaders; from?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        localAddress: opts.from ?? '127.0.0.1',
        method: opts.method ?? 'GET',
        path,
        headers: { host: 'api.example.com', ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const HSTS = 'max-age=86400; includeSubDomains';

describe('https: off behind a TLS-terminating load balancer', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: off
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  public_host: api.example.com
  trusted_proxies: [127.0.0.1]
tls:
  hsts: { max_age: 1d, include_subdomains: true }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy }
defaults: { allow: any }
`,
    );
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('only the plain listener is started', () => {
    assert.equal(t.gw.https, undefined);
    assert.equal(t.port, t.ctx.httpPort);
  });

  test('X-Forwarded-Proto: https from the trusted balancer is proxied, with HSTS and https forwarding headers', async () => {
    const before = upstream.received.length;
    const res = await call(t.port, '/api/user?x=1', { method: 'POST', body: '{"a":1}', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.7', 'content-type': 'application/json' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['strict-transport-security'], HSTS);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(upstream.received.length, before + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.url, '/api/user?x=1');
    assert.equal(got.body.toString(), '{"a":1}');
    assert.equal(got.headers['x-forwarded-proto'], 'https');
    assert.equal(got.headers['x-forwarded-for'], '198.51.100.7, 127.0.0.1');
    assert.equal(got.headers['x-forwarded-host'], 'api.example.com');
  });

  test("the balancer's own entry, the rightmost, is the one that counts", async () => {
    const before = upstream.received.length;
    assert.equal((await call(t.port, '/api/a', { headers: { 'x-forwarded-proto': 'http, HTTPS' } })).status, 200);
    assert.equal(upstream.received.length, before + 1);
    const res = await call(t.port, '/api/a', { headers: { 'x-forwarded-proto': 'https, http' } });
    assert.equal(res.status, 308);
    assert.equal(upstream.received.length, before + 1);
  });

  test("the gateway's own answers to forwarded https requests carry HSTS", async () => {
    const res = await call(t.port, '/nowhere', { headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(res.status, 404);
    assert.equal(res.headers['strict-transport-security'], HSTS);
  });

  test('from the balancer without X-Forwarded-Proto, or with http, the answer is a 308 to https, never the upstream', async () => {
    const before = upstream.received.length;
    for (const headers of [{}, { 'x-forwarded-proto': 'http' }, { 'x-forwarded-proto': 'httpsx' }] as OutgoingHttpHeaders[]) {
      const res = await call(t.port, '/api/user?x=1', { method: 'POST', body: 'payload', headers });
      assert.equal(res.status, 308, JSON.stringify(headers));
      assert.equal(res.headers.location, 'https://api.example.com/api/user?x=1');
      assert.equal(res.headers['strict-transport-security'], undefined);
    }
    assert.equal(upstream.received.length, before);
  });

  test('X-Forwarded-Proto: https from an untrusted peer is ignored: redirected, not proxied', async () => {
    const before = upstream.received.length;
    const res = await call(t.port, '/api/user', { from: '127.0.0.2', headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(res.status, 308);
    assert.equal(res.headers.location, 'https://api.example.com/api/user');
    assert.equal(upstream.received.length, before);
  });

  test('redirects are logged with their reason and counted', async () => {
    const redirects = t.logs.filter((l) => l.msg === 'request' && l.status === 308);
    assert.equal(redirects.length, 5);
    for (const line of redirects) assert.equal(line.reason, 'redirect');
    assert.deepEqual(await t.gw.decisions.snapshot(), { redirect: 5, route_not_found: 1 });
  });
});
