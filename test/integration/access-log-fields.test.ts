// The access log's documented field set (docs/operations.md) through the real gateway: a proxied
// request, a refusal, a request the HTTP parser refused, a login; the openid only ever as an HMAC
// under the policy's key; the request id header taken from a trusted proxy only, in the header
// the policy names, on the way to the upstream and back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { SignJWT } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { h2Connect, h2Exchange } from '../helpers/h2-client.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';
const SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';
const LOG_KEY = 'openid-log-key-0123456789abcdef';
/** The gateway trusts 127.0.0.1 as its proxy; the same test client connecting from 127.0.0.2 is anyone. */
const PROXY = '127.0.0.1';
const STRANGER = '127.0.0.2';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const ANSWER = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item-${i}` })) });

const hmac = (openid: string): string => createHmac('sha256', LOG_KEY).update(openid).digest('hex');

function jwt(openid: string): Promise<string> {
  return new SignJWT({ openid })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One HTTPS request from a chosen local address; `chunked` sends the body without a length. */
function send(
  t: TestGateway,
  opts: { from?: string; method?: string; path: string; headers?: Record<string, string>; body?: string; chunked?: boolean },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: t.port,
        localAddress: opts.from ?? PROXY,
        servername: 'localhost',
        ca: t.ca,
        agent: false,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: { host: 'localhost', ...opts.headers },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    if (opts.chunked && opts.body !== undefined) {
      req.setHeader('transfer-encoding', 'chunked');
      req.write(opts.body.slice(0, 5));
      req.end(opts.body.slice(5));
    } else req.end(opts.body);
  });
}

/** Bytes written as they are over TLS, for what Node's own client refuses to send; resolves with the whole answer. */
function raw(t: TestGateway, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: t.port, servername: 'localhost', ca: t.ca }, () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
  });
}

/** A raw answer's header, by lower-case name. */
function rawHeader(answer: string, name: string): string | undefined {
  const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (line.slice(0, colon).toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return undefined;
}

const accessLine = (t: TestGateway, id: string): Promise<Record<string, unknown>> =>
  t.waitForLog((l) => l['msg'] === 'request' && l['request_id'] === id, `the access line of ${id}`);

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('access log fields, with an openid key and X-Trace-ID', () => {
  let t: TestGateway;
  let upstream: TestUpstream;
  let wechat: FakeWechat;

  before(async () => {
    wechat = await startFakeWechat();
    upstream = await startUpstream((_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ANSWER) });
      res.end(ANSWER);
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [${PROXY}]
  request_id: { header: X-Trace-ID }
  log: { openid_hmac_key: "\${OPENID_LOG_KEY}" }
${ctx.tlsSection}
wechat:
  appid: ${wechat.appid}
  app_secret: \${WX_APP_SECRET}
  api_base: "${wechat.url}"
identity:
  login: { path: /wx/login, upstream: { upstream: legacy, path: /users/login } }
  session: { signing_key: "\${SESSION_SIGNING_KEY}" }
  jwt: { secret: "\${JWT_SECRET}", issuer: legacy }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: open, match: { path_prefix: /open/ }, upstream: legacy }
  - { name: private, match: { path_prefix: /private/ }, upstream: legacy, identity_required: true }
`,
      { env: { OPENID_LOG_KEY: LOG_KEY, JWT_SECRET, SESSION_SIGNING_KEY: SIGNING_KEY, WX_APP_SECRET: wechat.secret } },
    );
  });
  after(async () => {
    await t?.close();
    await upstream?.close();
    await wechat?.close();
  });

  test('a proxied request from the trusted proxy: every field, its id and trace id kept end to end', async () => {
    const body = JSON.stringify({ hello: 'world' });
    const res = await send(t, {
      method: 'POST',
      path: '/private/orders?page=2',
      headers: {
        authorization: `Bearer ${await jwt('o-alice')}`,
        'content-type': 'application/json',
        'x-trace-id': 'lb-7f3a.42:x',
        traceparent: TRACEPARENT,
        'user-agent': 'Mozilla/5.0 MicroMessenger/8.0.50',
        'x-forwarded-for': '203.0.113.9',
      },
      body,
    });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers['x-trace-id'], 'lb-7f3a.42:x', 'back to the client in the configured header');
    assert.equal(res.headers['x-request-id'], undefined, 'and in no other');
    assert.equal(upstream.received.at(-1)!.headers['x-trace-id'], 'lb-7f3a.42:x', 'on to the upstream');
    const line = await accessLine(t, 'lb-7f3a.42:x');
    assert.match(String(line['time']), ISO_TIME);
    assert.deepEqual(
      { ...line, time: 'T', total_ms: typeof line['total_ms'], upstream_ms: typeof line['upstream_ms'] },
      {
        level: 'info',
        time: 'T',
        service: 'wxgw',
        msg: 'request',
        request_id: 'lb-7f3a.42:x',
        trace_id: TRACE_ID,
        route: 'private',
        method: 'POST',
        host: 'localhost',
        path: '/private/orders',
        query: 'page=2',
        status: 201,
        client_ip: '203.0.113.9',
        user_agent: 'Mozilla/5.0 MicroMessenger/8.0.50',
        bytes_in: Buffer.byteLength(body),
        bytes_out: Buffer.byteLength(ANSWER),
        tls_version: 'TLSv1.3',
        sni: 'localhost',
        upstream: 'legacy',
        upstream_status: 201,
        upstream_ms: 'number',
        total_ms: 'number',
        openid_hash: hmac('o-alice'),
      },
    );
  });

  test('a chunked body is counted as it streams', async () => {
    const body = 'x'.repeat(3000);
    const res = await send(t, { method: 'POST', path: '/open/upload', body, chunked: true });
    assert.equal(res.status, 201);
    assert.equal(upstream.received.at(-1)!.body.length, 3000);
    const line = await accessLine(t, String(res.headers['x-trace-id']));
    assert.equal(line['bytes_in'], 3000);
    assert.equal(line['bytes_out'], Buffer.byteLength(ANSWER));
  });

  test('over HTTP/2: the same fields, bodies with and without a length counted, two streams of one connection', async () => {
    const session = await h2Connect(t.port, t.ca, 'localhost', PROXY);
    try {
      const sized = await h2Exchange(session, { method: 'POST', path: '/open/h2', headers: { 'x-trace-id': 'h2-sized', 'user-agent': 'h2-client' }, body: 'y'.repeat(700) });
      const unframed = await h2Exchange(session, { method: 'POST', path: '/open/h2', headers: { 'x-trace-id': 'h2-unframed', 'transfer-encoding': 'chunked' }, body: 'z'.repeat(900) });
      assert.equal(sized.status, 201);
      assert.equal(sized.headers['x-trace-id'], 'h2-sized');
      assert.equal(unframed.headers['x-trace-id'], 'h2-unframed');
      for (const [id, bytes] of [['h2-sized', 700], ['h2-unframed', 900]] as const) {
        const line = await accessLine(t, id);
        assert.equal(line['bytes_in'], bytes, id);
        assert.equal(line['bytes_out'], Buffer.byteLength(ANSWER), id);
        assert.equal(line['tls_version'], 'TLSv1.3', id);
        assert.equal(line['sni'], 'localhost', id);
        assert.equal(line['host'], 'localhost', id);
        assert.equal(line['upstream_status'], 201, id);
      }
      assert.equal((await accessLine(t, 'h2-sized'))['user_agent'], 'h2-client');
    } finally {
      session.close();
    }
  });

  test('a client that is not a trusted proxy gets an id of its own: its id and traceparent are not believed', async () => {
    const res = await send(t, { from: STRANGER, path: '/open/x', headers: { 'x-trace-id': 'forged-id', traceparent: TRACEPARENT } });
    assert.equal(res.status, 201);
    const id = String(res.headers['x-trace-id']);
    assert.match(id, UUID);
    assert.equal(upstream.received.at(-1)!.headers['x-trace-id'], id, 'the upstream gets the gateway id, not the forged one');
    const line = await accessLine(t, id);
    assert.equal(line['client_ip'], STRANGER);
    assert.ok(!('trace_id' in line), 'no trace id from an untrusted traceparent');
    assert.ok(!t.logText().includes('forged-id'));
  });

  test('a malformed id from the trusted proxy is replaced, whatever its spelling', async () => {
    for (const given of ['has spaces in it', 'a'.repeat(129), 'semi;colon', 'ünïcode']) {
      const res = await send(t, { path: '/open/x', headers: { 'x-trace-id': given } });
      assert.equal(res.status, 201);
      const id = String(res.headers['x-trace-id']);
      assert.match(id, UUID, JSON.stringify(given));
      assert.equal(upstream.received.at(-1)!.headers['x-trace-id'], id);
      await accessLine(t, id);
    }
    // The longest well-formed id is kept.
    const longest = 'a'.repeat(128);
    const res = await send(t, { path: '/open/x', headers: { 'x-trace-id': longest } });
    assert.equal(res.headers['x-trace-id'], longest);
  });

  test('a client copy of the id header in another spelling never reaches the upstream', async () => {
    const res = await send(t, { from: STRANGER, path: '/open/x', headers: { x_trace_id: 'smuggled' } });
    assert.equal(res.status, 201);
    const got = upstream.received.at(-1)!.headers;
    assert.equal(got['x_trace_id'], undefined);
    assert.equal(got['x-trace-id'], res.headers['x-trace-id']);
  });

  test('a refused request: its line says why, with what was read and no upstream', async () => {
    const res = await send(t, { from: STRANGER, path: '/private/orders', headers: { 'user-agent': 'curl/8.5' } });
    assert.equal(res.status, 401, res.text);
    const id = String(res.headers['x-trace-id']);
    const line = await accessLine(t, id);
    assert.equal(line['level'], 'info');
    assert.equal(line['route'], 'private');
    assert.equal(line['method'], 'GET');
    assert.equal(line['host'], 'localhost');
    assert.equal(line['path'], '/private/orders');
    assert.equal(line['status'], 401);
    assert.equal(line['reason'], 'identity_required');
    assert.equal(line['client_ip'], STRANGER);
    assert.equal(line['user_agent'], 'curl/8.5');
    assert.equal(line['bytes_in'], 0);
    assert.equal(line['bytes_out'], Buffer.byteLength(res.text));
    assert.equal(line['tls_version'], 'TLSv1.3');
    assert.equal(line['sni'], 'localhost');
    for (const absent of ['upstream', 'upstream_status', 'upstream_ms', 'openid_hash', 'trace_id']) assert.ok(!(absent in line), `${absent} in ${JSON.stringify(line)}`);
    assert.equal(typeof line['total_ms'], 'number');
  });

  test('requests the HTTP parser refuses get a line: peer, reason, TLS, and the id the answer carries', async () => {
    const cases = [
      { bytes: 'GARBAGE\r\n\r\n', status: 400, reason: 'bad_request' },
      { bytes: `GET /open/x HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, status: 431, reason: 'headers_too_large' },
    ];
    for (const c of cases) {
      const answer = await raw(t, c.bytes);
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${c.status} `), answer);
      const id = rawHeader(answer, 'x-trace-id');
      assert.match(String(id), UUID, answer);
      const line = await accessLine(t, id!);
      assert.match(String(line['time']), ISO_TIME);
      assert.deepEqual(
        { ...line, time: 'T' },
        {
          level: 'info',
          time: 'T',
          service: 'wxgw',
          msg: 'request',
          request_id: id,
          status: c.status,
          reason: c.reason,
          client_ip: PROXY,
          bytes_in: 0,
          bytes_out: answer.length - answer.indexOf('\r\n\r\n') - 4,
          tls_version: 'TLSv1.3',
          sni: 'localhost',
        },
      );
    }
    assert.ok(!t.logText().includes('GARBAGE') && !t.logText().includes('bbbbbbbb'), 'nothing of the refused bytes is logged');
  });

  test('a user agent is bounded and its control characters are escaped', async () => {
    const res = await send(t, { path: '/open/x', headers: { 'user-agent': `tab\there ${'u'.repeat(400)}` } });
    const line = await accessLine(t, String(res.headers['x-trace-id']));
    const ua = String(line['user_agent']);
    assert.ok(ua.startsWith('tab\\x09here uuu'), ua);
    assert.equal(ua.length, 256 + 3, 'the first 256 characters, the tab written as \\x09');
  });

  test('a login: its line carries the new user as an HMAC; no line anywhere has the openid', async () => {
    wechat.codes.set('code-bob', { openid: 'o-bob-7731', session_key: 'wx-session-key-bob' });
    const res = await send(t, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: 'code-bob' }) });
    assert.equal(res.status, 200, res.text);
    const line = await accessLine(t, String(res.headers['x-trace-id']));
    assert.equal(line['status'], 200);
    assert.equal(line['method'], 'POST');
    assert.equal(line['path'], '/wx/login');
    assert.equal(line['openid_hash'], hmac('o-bob-7731'));
    const told = upstream.received.find((r) => r.url === '/users/login')!;
    assert.equal(told.headers['x-trace-id'], res.headers['x-trace-id'], 'the login notice to the upstream carries the id too');
    const token = (JSON.parse(res.text) as { token: string }).token;
    const after = await send(t, { path: '/private/me', headers: { authorization: `Bearer ${token}` } });
    assert.equal(after.status, 201);
    assert.equal((await accessLine(t, String(after.headers['x-trace-id'])))['openid_hash'], hmac('o-bob-7731'), 'one user, one value, line after line');
    const text = t.logText();
    for (const openid of ['o-bob-7731', 'o-alice']) assert.ok(!text.includes(openid), `${openid} is in the log`);
  });
});

describe('access log fields, without an openid key and with the default header', () => {
  let t: TestGateway;
  let upstream: TestUpstream;

  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [${PROXY}]
${ctx.tlsSection}
identity:
  jwt: { secret: "\${JWT_SECRET}", issuer: legacy }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: private, match: { path_prefix: /private/ }, upstream: legacy, identity_required: true }
`,
      { env: { JWT_SECRET } },
    );
  });
  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  test('no key: no user field at all, and never the raw openid', async () => {
    const res = await send(t, { path: '/private/me', headers: { authorization: `Bearer ${await jwt('o-carol-55')}`, 'x-request-id': 'edge-1' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-request-id'], 'edge-1');
    assert.equal(upstream.received.at(-1)!.headers['x-request-id'], 'edge-1');
    const line = await accessLine(t, 'edge-1');
    assert.equal(line['status'], 200);
    assert.equal(line['upstream_status'], 200);
    for (const field of Object.keys(line)) assert.ok(!/openid|user_id|^user$/.test(field), `${field} in ${JSON.stringify(line)}`);
    assert.ok(!t.logText().includes('o-carol-55'));
  });
});
