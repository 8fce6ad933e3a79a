// What HTTP/2 adds on the HTTPS listener, through real TLS and a real HTTP/1.1 upstream: ALPN
// offers h2 and http/1.1 (only http/1.1 with `server.http2: false`), `:authority` is read as Host
// and a request naming two hosts is refused, connection-specific headers never reach an h2
// client, streams per connection and stream resets are bounded, and draining sends GOAWAY while
// streams in flight finish. The rest of the gateway's behaviour over h2 is the other integration
// tests, which run over both protocols (PROTOCOLS in test/helpers/h2-client.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { h2Connect, h2Exchange, h2Request } from '../helpers/h2-client.js';
import { httpsRequest } from '../helpers/https-client.js';
import { waitUntil } from '../helpers/wait.js';

/** The protocol the listener picks for a client offering `offered` by ALPN; false when none. */
function negotiated(port: number, ca: Buffer, offered: string[]): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: offered }, () => {
      resolve(s.alpnProtocol ?? false);
      s.end();
    });
    s.on('error', reject);
  });
}

/** An upstream whose answers wait until released, so a test can hold requests in flight. */
async function heldUpstream(): Promise<{ upstream: TestUpstream; release(): void; waiting: () => number }> {
  let waiting: (() => void)[] = [];
  let released = false;
  const upstream = await startUpstream(
    (_req, res) =>
      new Promise<void>((resolve) => {
        const answer = (): void => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"held":true}');
          resolve();
        };
        if (released) answer();
        else waiting.push(answer);
      }),
  );
  return {
    upstream,
    waiting: () => waiting.length,
    release() {
      released = true;
      for (const answer of waiting) answer();
      waiting = [];
    },
  };
}

const routes = (upstream: string, held: string) => `upstreams:
  legacy: { url: "${upstream}" }
  held: { url: "${held}", timeout: 20s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
  - name: tenant
    match: { host: tenant.example.com, path_prefix: /t/ }
    upstream: legacy
  - name: hops
    match: { path: /hops }
    upstream: legacy
  - name: held
    match: { path_prefix: /held }
    upstream: held
defaults: { allow: any }
`;

describe('HTTP/2 on the HTTPS listener', () => {
  let upstream: TestUpstream;
  let held: Awaited<ReturnType<typeof heldUpstream>>;
  let t: TestGateway;

  before(async () => {
    upstream = await startUpstream((req, res, body) => {
      if (req.url === '/hops') {
        // Headers HTTP/1.1 allows in an answer and HTTP/2 forbids (RFC 9113 §8.2.2).
        res.writeHead(200, {
          connection: 'keep-alive',
          'keep-alive': 'timeout=5',
          upgrade: 'h2c',
          'http2-settings': 'AAMAAABkAAQAAP__',
          te: 'gzip',
          'x-end-to-end': 'kept',
          'content-type': 'application/json',
        });
        res.end('{}');
        return;
      }
      const bodiless = /^\/api\/status\/(204|304)$/.exec(req.url ?? '');
      if (bodiless) {
        // Answers that never have a body, with the framing headers an HTTP/1.1 server adds.
        res.writeHead(Number(bodiless[1]), { etag: '"v1"', 'content-length': '0', 'x-end-to-end': 'kept' });
        res.end();
        return;
      }
      const text = JSON.stringify({ url: req.url, headers: req.headers, body: body.toString() });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    });
    held = await heldUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  limits: { http2_streams: 2, http2_resets: 20, request_timeout: 1s, headers_timeout: 1s }
  drain_delay: 1ms
${ctx.tlsSection}
${routes(upstream.url, held.upstream.url)}`,
    );
  });

  after(async () => {
    held.release();
    await t.close();
    await Promise.all([upstream.close(), held.upstream.close()]);
  });

  test('ALPN offers h2 and http/1.1; a client offering neither gets HTTP/1.1', async () => {
    assert.equal(await negotiated(t.port, t.ca, ['h2', 'http/1.1']), 'h2');
    assert.equal(await negotiated(t.port, t.ca, ['http/1.1']), 'http/1.1');
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/api/x' })).status, 200);
    assert.equal((await h2Request(t.port, t.ca, { path: '/api/x' })).status, 200);
  });

  test(':authority is read as Host: routed by it, and stated to the upstream as X-Forwarded-Host', async () => {
    const res = await h2Request(t.port, t.ca, { path: '/t/x', headers: { host: 'Tenant.Example.COM.:8443' } });
    assert.equal(res.status, 200, res.text);
    const seen = res.json<{ headers: Record<string, string> }>().headers;
    assert.equal(seen['x-forwarded-host'], 'tenant.example.com');
    for (const name of Object.keys(seen)) assert.ok(!name.startsWith(':'), `no pseudo-header reaches the upstream: ${name}`);
    const line = t.logs.find((l) => l.request_id === res.headers['x-request-id']);
    assert.equal(line?.route, 'tenant');
  });

  test('a request whose :authority and Host name different hosts is refused; the same host twice is not', async () => {
    const session = await h2Connect(t.port, t.ca);
    try {
      const before = upstream.received.length;
      // The route is the Host's, the default certificate's name the :authority's: a backend
      // reading the other one must never be reached.
      const clash = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': '/t/x', ':authority': 'localhost', host: 'tenant.example.com' });
        let status = 0;
        let body = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.setEncoding('utf8');
        s.on('data', (c: string) => (body += c));
        s.on('end', () => resolve({ status, body }));
        s.on('error', reject);
        s.end();
      });
      assert.equal(clash.status, 400, clash.body);
      assert.equal(JSON.parse(clash.body).error.reason, 'host_invalid');
      assert.equal(upstream.received.length, before, 'nothing reached the upstream');
      const same = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/t/x', ':authority': 'tenant.example.com:443', host: 'TENANT.example.com' });
        s.on('response', (h) => resolve(Number(h[':status'])));
        s.on('error', reject);
        s.resume();
        s.end();
      });
      assert.equal(same, 200);
    } finally {
      session.close();
    }
  });

  test("a header list over Node's header size limit has its stream reset before the gateway sees it", async () => {
    const session = await h2Connect(t.port, t.ca);
    try {
      await waitUntil(() => (session.remoteSettings.maxHeaderListSize === 16 * 1024 ? true : undefined), 'the SETTINGS frame');
      const before = upstream.received.length;
      const code = await new Promise<number>((resolve) => {
        const s = session.request({ ':path': '/api/big', 'x-big': 'a'.repeat(20 * 1024) });
        s.on('error', () => {});
        s.on('response', () => resolve(-1));
        s.on('close', () => resolve(s.rstCode ?? 0));
        s.end();
      });
      assert.equal(code, constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.equal(upstream.received.length, before);
      assert.equal((await h2Exchange(session, { path: '/api/small' })).status, 200, 'the connection serves on');
    } finally {
      session.close();
    }
  });

  test('connection-specific headers from the upstream are not forwarded in h2 answers', async () => {
    const res = await h2Request(t.port, t.ca, { path: '/hops' });
    assert.equal(res.status, 200, res.text);
    for (const name of ['connection', 'keep-alive', 'upgrade', 'http2-settings', 'te', 'transfer-encoding']) assert.equal(res.headers[name], undefined, name);
    assert.equal(res.headers['x-end-to-end'], 'kept');
  });

  test('bodiless answers (204, 304, HEAD) reach an h2 client whole', async () => {
    for (const status of [204, 304]) {
      const res = await h2Request(t.port, t.ca, { path: `/api/status/${status}` });
      assert.equal(res.status, status);
      assert.equal(res.text, '');
      assert.equal(res.headers['x-end-to-end'], 'kept');
    }
    const head = await h2Request(t.port, t.ca, { path: '/api/head', method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
  });

  test('a body without Content-Length that never ends gets 408 request_timeout, as over HTTP/1.1', async () => {
    const session = await h2Connect(t.port, t.ca);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const s = session.request({ ':method': 'POST', ':path': '/api/slow-body' }, { endStream: false });
        s.write('{"a":');
        let status = 0;
        let body = '';
        s.on('response', (h) => (status = Number(h[':status'])));
        s.setEncoding('utf8');
        s.on('data', (c: string) => (body += c));
        s.on('end', () => resolve({ status, body }));
        s.on('close', () => resolve({ status, body }));
        s.on('error', reject);
      });
      assert.equal(answer.status, 408, answer.body);
      assert.equal(JSON.parse(answer.body).error.reason, 'request_timeout');
    } finally {
      session.destroy();
    }
  });

  test('server.limits.http2_streams is announced and enforced: streams past it wait for a free one', async () => {
    const session = await h2Connect(t.port, t.ca);
    try {
      await waitUntil(() => (session.remoteSettings.maxConcurrentStreams === 2 ? true : undefined), 'the SETTINGS frame');
      const first = held.waiting();
      const pending = Array.from({ length: 5 }, (_, i) => h2Exchange(session, { path: `/held/${i}` }));
      await waitUntil(() => (held.waiting() >= first + 2 ? true : undefined), 'two streams to reach the upstream');
      // Another connection's request is served meanwhile: the gateway is not stuck, and when it
      // reached the upstream the first connection still had only two.
      const other = h2Request(t.port, t.ca, { path: '/held/other' });
      await waitUntil(() => (held.waiting() >= first + 3 ? true : undefined), "the other connection's request to reach the upstream");
      assert.equal(held.waiting(), first + 3, 'two streams of the first connection, one of the other');
      held.release();
      for (const res of await Promise.all([...pending, other])) assert.equal(res.status, 200, res.text);
    } finally {
      session.close();
    }
  });

  test('a rapid-reset flood is closed with GOAWAY ENHANCE_YOUR_CALM; other clients are served on', { timeout: 30_000 }, async () => {
    const session = await h2Connect(t.port, t.ca);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    session.on('error', () => {});
    // Far past the budget of 20 per 10 s, and bounded.
    for (let i = 0; i < 200 && !session.closed && !session.destroyed; i++) {
      const s = session.request({ ':path': `/api/reset-${i}` });
      s.on('error', () => {});
      s.close(constants.NGHTTP2_CANCEL);
      if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await goaway, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await t.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('ENHANCE_YOUR_CALM'), 'the warning about the flood');
    session.destroy();
    assert.equal((await h2Request(t.port, t.ca, { path: '/api/after' })).status, 200);
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/api/after' })).status, 200);
  });
});

describe('HTTP/2 and draining', () => {
  test('a drain sends GOAWAY to h2 connections and their streams in flight complete', { timeout: 30_000 }, async () => {
    const upstream = await startUpstream();
    const held = await heldUpstream();
    const t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  drain_delay: 1ms
  shutdown_timeout: 20s
${ctx.tlsSection}
${routes(upstream.url, held.upstream.url)}`,
    );
    let session: ClientHttp2Session | undefined;
    try {
      session = await h2Connect(t.port, t.ca);
      const goaway = new Promise<number>((resolve) => session!.once('goaway', (code: number) => resolve(code)));
      const inFlight = h2Exchange(session, { path: '/held/drain' });
      await waitUntil(() => (held.waiting() === 1 ? true : undefined), 'the request to reach the upstream');
      const stopping = t.gw.shutdown();
      assert.equal(await goaway, constants.NGHTTP2_NO_ERROR);
      held.release();
      const res = await inFlight;
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json<{ held: boolean }>().held, true);
      await stopping;
    } finally {
      session?.destroy();
      held.release();
      await t.close();
      await Promise.all([upstream.close(), held.upstream.close()]);
    }
  });
});

describe('HTTP/2 past shutdown_timeout', () => {
  test('a stream still in flight at shutdown_timeout is cut and the gateway stops', { timeout: 30_000 }, async () => {
    const upstream = await startUpstream();
    const held = await heldUpstream();
    const t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  drain_delay: 1ms
  shutdown_timeout: 200ms
${ctx.tlsSection}
${routes(upstream.url, held.upstream.url)}`,
    );
    let session: ClientHttp2Session | undefined;
    try {
      session = await h2Connect(t.port, t.ca);
      session.on('error', () => {});
      const inFlight = h2Exchange(session, { path: '/held/forever' }).then(
        () => 'answered',
        () => 'cut',
      );
      await waitUntil(() => (held.waiting() === 1 ? true : undefined), 'the request to reach the upstream');
      await t.gw.shutdown();
      assert.equal(await inFlight, 'cut');
      await t.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('still in flight at shutdown_timeout'), 'the shutdown_timeout warning');
    } finally {
      session?.destroy();
      held.release();
      await t.close();
      await Promise.all([upstream.close(), held.upstream.close()]);
    }
  });
});

describe('server.http2: false', () => {
  let upstream: TestUpstream;
  let t: TestGateway;

  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http2: false
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
defaults: { allow: any }
`,
    );
  });

  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('offers only http/1.1', async () => {
    assert.equal(await negotiated(t.port, t.ca, ['h2', 'http/1.1']), 'http/1.1');
    assert.equal((await httpsRequest(t.port, t.ca, { path: '/api/x' })).status, 200);
    await assert.rejects(h2Request(t.port, t.ca, { path: '/api/x' }));
  });
});
