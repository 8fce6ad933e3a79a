// The plain-HTTP listener only ever redirects to HTTPS, never to a host the policy does not vouch
// for, and never reaches an upstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';

function plain(port: number, opts: { method?: string; path: string; host?: string; body?: string }): Promise<{ res: IncomingMessage; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.host !== undefined) headers.host = opts.host;
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers, setHost: opts.host === undefined ? false : true, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ res, text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('plain HTTP with mode: redirect', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
  public_host: api.example.com
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: all, match: { path_prefix: / }, upstream: legacy }
defaults: { allow: any }
`,
    );
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('every request gets a 308 to the same path and query on the HTTPS port, method and body preserved', async () => {
    const port = t.ctx.httpsPort;
    for (const method of ['GET', 'POST', 'DELETE']) {
      const { res } = await plain(t.ctx.httpPort, { method, path: '/api/user?x=1', host: `localhost:${t.ctx.httpPort}`, body: method === 'POST' ? '{"a":1}' : undefined });
      assert.equal(res.statusCode, 308, method);
      assert.equal(res.headers.location, `https://localhost:${port}/api/user?x=1`);
      assert.ok(res.headers['x-request-id']);
    }
    assert.equal(upstream.received.length, 0, 'nothing on the plain listener reaches the upstream');
  });

  test('a Host the certificates do not cover is never a redirect target (no open redirect)', async () => {
    for (const host of ['evil.example.net', 'evil.example.net:8080', 'localhost.evil.net', 'LOCALHOST.evil.net']) {
      const { res } = await plain(t.ctx.httpPort, { path: '/login', host });
      assert.equal(res.statusCode, 308, String(host));
      assert.equal(res.headers.location, `https://api.example.com:${t.ctx.httpsPort}/login`, String(host));
    }
    const { res } = await plain(t.ctx.httpPort, { path: '/x', host: '127.0.0.1' });
    assert.equal(res.headers.location, `https://127.0.0.1:${t.ctx.httpsPort}/x`, 'an IP address in the leaf SANs is a name the gateway serves');
    assert.equal(upstream.received.length, 0);
  });

  test('the admin listener answers health and readiness', async () => {
    const health = await fetch(`http://127.0.0.1:${t.ctx.adminPort}/healthz`);
    assert.deepEqual(await health.json(), { status: 'alive' });
    const ready = await fetch(`http://127.0.0.1:${t.ctx.adminPort}/readyz`);
    assert.equal(ready.status, 200);
    const other = await fetch(`http://127.0.0.1:${t.ctx.adminPort}/api/user`);
    assert.equal(other.status, 404);
    assert.equal(upstream.received.length, 0);
  });

  test('HTTPS still serves the routes', async () => {
    const res = await httpsRequest(t.port, t.ca, { path: '/api/x' });
    assert.equal(res.status, 200);
  });
});

describe('plain HTTP without public_host', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: all, match: { path_prefix: / }, upstream: legacy }
defaults: { allow: any }
`,
    );
  });
  after(() => t.close());

  test('an unknown Host gets a JSON 400 https_required instead of a redirect', async () => {
    const { res, text } = await plain(t.ctx.httpPort, { path: '/', host: 'evil.example.net' });
    assert.equal(res.statusCode, 400);
    assert.equal(res.headers.location, undefined);
    assert.equal((JSON.parse(text) as { error: { reason: string } }).error.reason, 'https_required');
  });
});

describe('decisions are counted per gateway', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: office, match: { path_prefix: /office/ }, upstream: legacy, allow: [192.0.2.0/24] }
  - { name: api, match: { path_prefix: /api/ }, upstream: legacy, allow: any }
`,
    );
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('a denial, a 404 and a redirect are counted once each, a proxied request not at all', async () => {
    assert.deepEqual(await t.gw.decisions.snapshot(), {});
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/office/x' })).status, 403);
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/nowhere' })).status, 404);
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/api/x' })).status, 200);
    assert.equal((await plain(t.ctx.httpPort, { path: '/api/x', host: 'localhost' })).res.statusCode, 308);
    assert.deepEqual(await t.gw.decisions.snapshot(), { ip_not_allowed: 1, route_not_found: 1, redirect: 1 });
    const reasons = t.logs.filter((l) => l.msg === 'request').map((l) => l.reason);
    assert.deepEqual(reasons, ['ip_not_allowed', 'route_not_found', undefined, 'redirect']);
  });
});

describe('plain HTTP behind a port mapping', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  public_port: 443
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
routes:
  - { name: all, match: { path_prefix: / }, upstream: legacy }
defaults: { allow: any }
`,
    );
  });
  after(() => t.close());

  test('public_port is the port redirects name, and 443 is left out of the URL', async () => {
    const { res } = await plain(t.ctx.httpPort, { path: '/a?b=1', host: 'localhost' });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, 'https://localhost/a?b=1');
  });
});
