// The proxy core through real HTTPS (a generated chain, a client trusting only its root) and a
// real upstream server that records what it received.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { request as httpRequest } from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/wait.js';
import { PROTOCOLS } from '../helpers/h2-client.js';

interface ErrorBody {
  error: { reason: string; message: string; request_id: string };
}

function assertGatewayError(res: { status: number; headers: Record<string, unknown>; text: string }, status: number, reason: string): ErrorBody {
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = JSON.parse(res.text) as ErrorBody;
  assert.equal(body.error.reason, reason);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(body.error.request_id, res.headers['x-request-id']);
  return body;
}

for (const protocol of PROTOCOLS) {
describe(`proxy core over ${protocol.name}`, () => {
  let upstream: TestUpstream;
  let slow: TestUpstream;
  let resetting: TestUpstream;
  let hops: TestUpstream;
  let hanging: TestUpstream;
  const abandoned: string[] = [];
  const timedOut: string[] = [];
  let deadPort: number;
  let t: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    slow = await startUpstream((req, res) => {
      // Never answers: only the route's 300 ms timeout can end the request.
      res.on('close', () => timedOut.push(req.url ?? ''));
    });
    resetting = await startUpstream((req) => req.socket.destroy());
    hanging = await startUpstream((req, res) => {
      // Never answers on its own: only the gateway giving up on the request ends it.
      res.on('close', () => abandoned.push(req.url ?? ''));
    });
    hops = await startUpstream((_req, res) => {
      res.writeHead(200, {
        connection: 'keep-alive, x-upstream-hop',
        'keep-alive': 'timeout=1',
        'x-upstream-hop': 'internal',
        'proxy-authenticate': 'Basic',
        'x-upstream-end-to-end': 'kept',
        'content-type': 'application/json',
      });
      res.end('{}');
    });
    deadPort = await freePort();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { body: 64kb, headers_timeout: 5s, request_timeout: 10s }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
  based: { url: "${upstream.url}/v1" }
  slow: { url: "${slow.url}", timeout: 300ms }
  resetting: { url: "${resetting.url}" }
  dead: { url: "http://127.0.0.1:${deadPort}" }
  hops: { url: "${hops.url}" }
  hanging: { url: "${hanging.url}", timeout: 20s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
  - name: admin
    match: { path_prefix: /admin/ }
    upstream: legacy
  - name: login
    match: { path: /wx/login, methods: [POST] }
    upstream: legacy
  - name: based
    match: { path_prefix: /based/ }
    upstream: based
  - name: slow
    match: { path: /slow }
    upstream: slow
  - name: reset
    match: { path: /reset }
    upstream: resetting
  - name: dead
    match: { path: /dead }
    upstream: dead
  - name: hops
    match: { path: /hop-response }
    upstream: hops
  - name: hanging
    match: { path: /hanging }
    upstream: hanging
defaults: { allow: any }
`,
    );
  });

  after(async () => {
    await t.close();
    await Promise.all([upstream.close(), slow.close(), resetting.close(), hops.close(), hanging.close()]);
  });

  test('a routed request reaches its upstream with the gateway forwarding headers and a request id', async () => {
    const res = await protocol.request(t.port, t.ca, { path: '/api/user?x=1&y=%20z', headers: { 'x-forwarded-for': '6.6.6.6', 'x-request-id': 'client-chosen', forwarded: 'for=6.6.6.6', 'x-real-ip': '6.6.6.6' } });
    assert.equal(res.status, 200);
    const seen = res.json<{ url: string; headers: Record<string, string> }>();
    assert.equal(seen.url, '/api/user?x=1&y=%20z');
    // An untrusted peer's forwarding claims are replaced, not extended.
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['forwarded'], undefined);
    assert.equal(seen.headers['x-real-ip'], undefined);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-host'], 'localhost');
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.notEqual(res.headers['x-request-id'], 'client-chosen');
    assert.equal(seen.headers['x-request-id'], res.headers['x-request-id']);
  });

  test('paths are routed and forwarded in normalised form, so a bypass spelling reaches the route it names', async () => {
    for (const path of ['/api/../admin/users', '/%61dmin/users', '//admin//users', '/api/%2e%2e/admin/users']) {
      const before = upstream.received.length;
      const res = await protocol.request(t.port, t.ca, { path });
      assert.equal(res.status, 200, path);
      assert.equal(upstream.received.length, before + 1);
      assert.equal(upstream.received.at(-1)!.url, '/admin/users', path);
      const line = t.logs.find((l) => l.request_id === res.headers['x-request-id']);
      assert.equal(line?.route, 'admin', path);
      assert.equal(line?.path, '/admin/users', path);
    }
  });

  test('a path that cannot be normalised safely is refused before any upstream call', async () => {
    const before = upstream.received.length;
    for (const path of ['/admin%2fusers', '/api/..%5cadmin', '/api/..;/admin/users', '/../etc/passwd', '/api/%00', '/api/%zz']) {
      const res = await protocol.request(t.port, t.ca, { path });
      assertGatewayError(res, 400, 'path_invalid');
      const lines = t.logs.filter((l) => l.request_id === res.headers['x-request-id']);
      assert.equal(lines.length, 1, `one access-log line for ${path}`);
      assert.equal(lines[0]!.reason, 'path_invalid');
    }
    assert.equal(upstream.received.length, before);
  });

  test('no route answers 404 route_not_found, a wrong method 405 with Allow', async () => {
    const before = upstream.received.length;
    assertGatewayError(await protocol.request(t.port, t.ca, { path: '/nowhere' }), 404, 'route_not_found');
    const res = await protocol.request(t.port, t.ca, { path: '/wx/login', method: 'GET' });
    assertGatewayError(res, 405, 'method_not_allowed');
    assert.equal(res.headers['allow'], 'POST');
    assert.equal(upstream.received.length, before);
  });

  test("an upstream URL's base path is prepended", async () => {
    const res = await protocol.request(t.port, t.ca, { path: '/based/x?q=1' });
    assert.equal(res.json<{ url: string }>().url, '/v1/based/x?q=1');
  });

  test('request bodies stream through intact, chunked or not, with Expect: 100-continue', async () => {
    const body = Buffer.alloc(60 * 1024, 'a').toString() + 'END';
    const sized = await protocol.request(t.port, t.ca, { path: '/api/echo', method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    assert.equal(sized.json<{ body: string }>().body, body);
    const chunked = await protocol.request(t.port, t.ca, { path: '/api/echo', method: 'PUT', body, headers: { 'transfer-encoding': 'chunked', expect: '100-continue' } });
    assert.equal(chunked.status, 200, chunked.text);
    assert.equal(chunked.json<{ body: string }>().body, body);
  });

  test('a body over the policy limit is refused with 413, declared or streamed', async () => {
    const body = Buffer.alloc(65 * 1024, 'b');
    const before = upstream.received.length;
    assertGatewayError(await protocol.request(t.port, t.ca, { path: '/api/echo', method: 'POST', body }), 413, 'body_too_large');
    assert.equal(upstream.received.length, before, 'a declared oversize body never reaches the upstream');
    const res = await protocol.request(t.port, t.ca, { path: '/api/echo', method: 'POST', body, headers: { 'transfer-encoding': 'chunked' } });
    assertGatewayError(res, 413, 'body_too_large');
  });

  test('hop-by-hop headers do not cross the gateway in either direction', async () => {
    // HTTP/2 has no Connection header to name hop-by-hop ones with (RFC 9113 §8.2.2).
    if (!protocol.h2) {
    const res = await protocol.request(t.port, t.ca, {
      path: '/api/hop',
      headers: { connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'Basic eDp5', 'x-end-to-end': 'kept' },
    });
    const seen = res.json<{ headers: Record<string, string> }>().headers;
    for (const h of ['x-hop', 'keep-alive', 'te', 'proxy-authorization']) assert.equal(seen[h], undefined, h);
    assert.equal(seen['x-end-to-end'], 'kept');
    }
    const back = await protocol.request(t.port, t.ca, { path: '/hop-response' });
    assert.equal(back.status, 200);
    assert.equal(back.headers['x-upstream-hop'], undefined, 'a header the upstream named in Connection');
    assert.equal(back.headers['proxy-authenticate'], undefined);
    assert.notEqual(back.headers['keep-alive'], 'timeout=1', "the upstream's keep-alive is not the client's");
    assert.equal(back.headers['x-upstream-end-to-end'], 'kept');
  });

  test('an upstream that refuses or resets the connection is a 502, a slow one a 504', async () => {
    assertGatewayError(await protocol.request(t.port, t.ca, { path: '/dead' }), 502, 'upstream_unavailable');
    assertGatewayError(await protocol.request(t.port, t.ca, { path: '/reset' }), 502, 'upstream_unavailable');
    assertGatewayError(await protocol.request(t.port, t.ca, { path: '/slow' }), 504, 'upstream_timeout');
    await waitUntil(() => (timedOut.length > 0 ? true : undefined), 'the slow upstream to see its request cancelled');
    assert.deepEqual(timedOut, ['/slow'], 'the gateway gave up on the upstream, which never answered');
  });

  test('a client that hangs up before the answer cancels the upstream request', async () => {
    await assert.rejects(protocol.request(t.port, t.ca, { path: '/hanging', timeoutMs: 300 }), /client timeout/);
    // The upstream's 20 s timeout is far beyond this wait's deadline: only the client's hang-up closes it.
    await waitUntil(() => (abandoned.length > 0 ? true : undefined), 'the upstream to see its request closed', { timeoutMs: 10_000 });
    assert.deepEqual(abandoned, ['/hanging']);
    await t.waitForLog((l) => l.path === '/hanging', 'the access-log line of /hanging');
    const lines = t.logs.filter((l) => l.path === '/hanging');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.reason, 'client_closed');
    assert.equal(lines[0]!.status, 499);
    assert.equal((await t.gw.decisions.snapshot()).client_closed, 1, 'counted like every other decision');
  });

  test('one access-log line per request with the decision, and no credential in any log line', async () => {
    const res = await protocol.request(t.port, t.ca, { path: '/nowhere?token=abc', headers: { authorization: 'Bearer very-secret-token', cookie: 'sid=cookie-secret' } });
    const id = res.headers['x-request-id'];
    const lines = t.logs.filter((l) => l.request_id === id);
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line.msg, 'request');
    assert.equal(line.status, 404);
    assert.equal(line.reason, 'route_not_found');
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/nowhere');
    assert.equal(line.client_ip, '127.0.0.1');
    assert.equal(typeof line.total_ms, 'number');
    const ok = await protocol.request(t.port, t.ca, { path: '/api/user', headers: { authorization: 'Bearer very-secret-token' } });
    const okLines = t.logs.filter((l) => l.request_id === ok.headers['x-request-id']);
    assert.equal(okLines.length, 1, 'a proxied request is logged once');
    const okLine = okLines[0]!;
    assert.equal(okLine.status, 200);
    assert.equal(okLine.route, 'api');
    assert.equal(typeof okLine.upstream_ms, 'number');
    assert.doesNotMatch(t.logText(), /very-secret-token|cookie-secret/);
  });

  test('TLS 1.3 is negotiated and the chain verifies against the root alone', async () => {
    const version = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: t.port, servername: 'localhost', ca: t.ca }, () => {
        resolve(s.getProtocol() ?? '');
        s.end();
      });
      s.on('error', reject);
    });
    assert.equal(version, 'TLSv1.3');
  });

  test('there is no plain-HTTP listener when the policy has none', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: t.ctx.httpPort, path: '/' }, resolve);
        req.on('error', reject);
        req.end();
      }),
      /ECONNREFUSED/,
    );
  });
});
}

describe('behind a trusted proxy', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [127.0.0.1, 10.0.0.0/8]
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: / }
    upstream: legacy
defaults: { allow: any }
`,
    );
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('X-Forwarded-For is walked from the right and extended; the request id is kept', async () => {
    const res = await httpsRequest(t.port, t.ca, { path: '/x', headers: { 'x-forwarded-for': '6.6.6.6, 198.51.100.7, 10.0.0.3', 'x-request-id': 'lb-1234' } });
    const seen = res.json<{ headers: Record<string, string> }>().headers;
    assert.equal(seen['x-forwarded-for'], '6.6.6.6, 198.51.100.7, 10.0.0.3, 127.0.0.1');
    assert.equal(res.headers['x-request-id'], 'lb-1234');
    assert.equal(seen['x-request-id'], 'lb-1234');
    const line = t.logs.find((l) => l.request_id === 'lb-1234')!;
    assert.equal(line.client_ip, '198.51.100.7');
  });

  test('a request id that is not a plain token is replaced even from a trusted proxy', async () => {
    const res = await httpsRequest(t.port, t.ca, { path: '/x', headers: { 'x-request-id': 'bad id\twith spaces' } });
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });
});

describe('a client that reads slowly', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  let sent = 0;
  const CHUNK = Buffer.alloc(64 * 1024, 'x');
  const TOTAL = 64 * 1024 * 1024;
  before(async () => {
    // Writes as fast as its socket takes it, counting what left: only backpressure slows it.
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': TOTAL });
      const pump = (): void => {
        while (sent < TOTAL) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: / }
    upstream: legacy
defaults: { allow: any }
`,
    );
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('holds the upstream back instead of buffering its answer, then delivers every byte', async () => {
    const { request } = await import('node:https');
    const received = await new Promise<{ atPause: number; sentAtPause: number; total: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: t.port, path: '/big', ca: t.ca, servername: 'localhost', agent: false }, (res) => {
        let total = 0;
        let atPause = -1;
        let sentAtPause = -1;
        res.on('data', (c: Buffer) => {
          total += c.length;
          if (atPause < 0 && total > 4 * 1024 * 1024) {
            // Stop reading for a while: whatever the upstream sends meanwhile must wait in socket
            // buffers, not pile up inside the gateway.
            res.pause();
            atPause = total;
            setTimeout(() => {
              sentAtPause = sent;
              res.resume();
            }, 1000);
          }
        });
        res.on('end', () => resolve({ atPause, sentAtPause, total }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(received.total, TOTAL);
    // Kernel socket buffers on both hops hold a few MB at most; the rest must still be upstream.
    assert.ok(received.sentAtPause - received.atPause < 16 * 1024 * 1024, `upstream ran ${received.sentAtPause - received.atPause} bytes ahead of the client`);
  });
});
