// WebSocket through the real gateway over wss: a `ws` client, a `ws` backend, real HTTPS with the
// generated chain. Every refusal is decided at the handshake, and the backend never sees an
// upgrade the policy refused; what it does see is the gateway's screened headers and verified
// identity.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startTestGateway, type PolicyContext, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/wait.js';
import { closed, connect, echo, startWsUpstream, type Handshake, type WsUpstream } from '../helpers/websocket.js';

const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';

function tokenFor(openid: string): Promise<string> {
  return new SignJWT({ openid })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(JWT_SECRET));
}

/** One handshake written by hand over TLS, for what a WebSocket library would never send. */
function rawUpgrade(port: number, ca: Buffer, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const lines = [`${method} ${path} HTTP/1.1`, 'host: localhost', 'connection: Upgrade', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
    socket.on('error', reject);
  });
}

function opened(h: Handshake): Extract<Handshake, { kind: 'open' }> {
  assert.equal(h.kind, 'open', h.kind === 'refused' ? `refused ${h.status}: ${h.body}` : '');
  return h as Extract<Handshake, { kind: 'open' }>;
}

function refused(h: Handshake, status: number, reason: string): void {
  assert.equal(h.kind, 'refused', 'the handshake was accepted');
  const r = h as Extract<Handshake, { kind: 'refused' }>;
  assert.equal(r.status, status, r.body);
  assert.equal(r.reason, reason, r.body);
  assert.match(String(r.headers['content-type']), /^application\/json/);
}

const policy = (upstream: string, closedPort: number) => (ctx: PolicyContext) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
identity:
  jwt: { secret: "\${JWT_SECRET}", issuer: legacy }
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream}", timeout: 5s }
  closed: { url: "http://127.0.0.1:${closedPort}" }
routes:
  - name: plain
    match: { path_prefix: /plain/ }
    upstream: legacy
  - name: echo
    match: { path_prefix: /echo/ }
    upstream: legacy
    websocket: true
    request_headers: { set: { X-Api-Version: "2" }, remove: [X-Debug] }
  - name: private
    match: { path_prefix: /private/ }
    upstream: legacy
    allow: [10.0.0.0/8]
    websocket: true
  - name: user
    match: { path_prefix: /user/ }
    upstream: legacy
    identity_required: true
    websocket: true
  - name: browser
    match: { path_prefix: /browser/ }
    upstream: legacy
    cors: { origins: ["https://app.example.com"] }
    websocket: true
  - name: limited
    match: { path_prefix: /limited/ }
    upstream: legacy
    rate_limit: { key: ip, limit: 2, window: 60s }
    websocket: true
  - name: idle
    match: { path_prefix: /idle/ }
    upstream: legacy
    websocket: { idle_timeout: 300ms }
  - name: short
    match: { path_prefix: /short/ }
    upstream: legacy
    websocket: { max_duration: 400ms, idle_timeout: 1m }
  - name: nowhere
    match: { path_prefix: /nowhere/ }
    upstream: closed
    websocket: true
  - name: few
    match: { path_prefix: /few/ }
    upstream: legacy
    websocket: { max_connections: 2, max_message: 1kb }
`;

describe('websocket', () => {
  let upstream: WsUpstream;
  let t: TestGateway;
  /** A port nothing listens on. */
  let closedPort: number;

  const open = (path: string, opts?: Parameters<typeof connect>[3]) => connect(t.port, t.ca, path, opts);
  const upgradesTo = (prefix: string) => upstream.upgrades.filter((u) => u.url.startsWith(prefix));
  const sessionLog = (id: string) => t.waitForLog((l) => l.msg === 'websocket session' && l.request_id === id, `the session line of ${id}`);

  before(async () => {
    upstream = await startWsUpstream();
    closedPort = await freePort();
    t = await startTestGateway(policy(upstream.url, closedPort), { env: { JWT_SECRET } });
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('messages echo through wss, text as text and binary as binary, and the session is logged with its bytes', async () => {
    const h = opened(await open('/echo/room?x=1'));
    const text = await echo(h.ws, 'hello');
    assert.equal(text.data.toString(), 'hello');
    assert.equal(text.isBinary, false);
    const binary = await echo(h.ws, Buffer.from([0, 1, 2, 255]));
    assert.deepEqual([...binary.data], [0, 1, 2, 255]);
    assert.equal(binary.isBinary, true);
    const id = String(h.headers['x-request-id']);
    h.ws.close(1000, 'bye');
    const line = await sessionLog(id);
    assert.equal(line.route, 'echo');
    assert.equal(line.closed_by, 'client');
    assert.equal(line.close_code, 1000);
    assert.equal(line.bytes_in, 9);
    assert.equal(line.bytes_out, 9);
    assert.equal(typeof line.duration_ms, 'number');
    // The handshake's own access line, beside the session's.
    assert.ok(t.logs.some((l) => l.msg === 'request' && l.request_id === id && l.status === 101));
    await waitUntil(() => (upstream.closes.some((c) => c.url === '/echo/room?x=1' && c.code === 1000) ? true : undefined), 'the close relayed upstream', { wake: upstream.wake });
  });

  test('the backend gets a proper upgrade with the gateway forwarding headers and never a client-supplied openid', async () => {
    const h = opened(await open('/echo/headers', { headers: { 'x-wx-openid': 'o-forged', 'x-forwarded-for': '6.6.6.6', 'x-wx-openid_': 'x', 'x-debug': '1' } }));
    const seen = upgradesTo('/echo/headers')[0]!.headers;
    assert.equal(seen.upgrade, 'websocket');
    assert.match(String(seen.connection), /upgrade/i);
    assert.equal(seen['x-wx-openid'], undefined);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-host'], 'localhost');
    assert.equal(seen['x-request-id'], h.headers['x-request-id']);
    assert.equal(seen['sec-websocket-version'], '13');
    // The route's request_headers apply to the handshake as to any request.
    assert.equal(seen['x-api-version'], '2');
    assert.equal(seen['x-debug'], undefined);
    h.ws.close();
    await closed(h.ws);
  });

  test('a route without websocket refuses the upgrade with 400 websocket_not_allowed, never a 200, and the backend sees nothing', async () => {
    refused(await open('/plain/socket'), 400, 'websocket_not_allowed');
    assert.equal(upgradesTo('/plain/').length, 0);
    assert.equal(upstream.requests.filter((r) => r.url.startsWith('/plain/')).length, 0);
  });

  test('over TLS an Upgrade to anything but websocket (h2c) is refused with 400 before the upstream hears of it', async () => {
    const res = await httpsRequest(t.port, t.ca, { path: '/plain/h2c', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAAP__' } });
    assert.equal(res.status, 400);
    assert.match(res.text, /"reason":"bad_request"/);
    assert.equal(upstream.requests.find((r) => r.url === '/plain/h2c'), undefined);
  });

  test('an upstream that turns the handshake down or cannot be reached gives 502, never a 101', async () => {
    refused(await open('/echo/refused'), 502, 'upstream_unavailable');
    refused(await open('/nowhere/x'), 502, 'upstream_unavailable');
    const line = await t.waitForLog((l) => l.msg === 'request' && l.route === 'nowhere', 'the access line of the unreachable upstream');
    assert.equal(line.status, 502);
    assert.equal(line.reason, 'upstream_unavailable');
  });

  test('a malformed handshake is refused with 400 bad_request before the upstream hears of it', async () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const cases: [string, Record<string, string>][] = [
      ['GET', { upgrade: 'websocket, h2c', 'sec-websocket-key': key, 'sec-websocket-version': '13' }],
      ['GET', { upgrade: 'websocket', 'sec-websocket-key': 'short', 'sec-websocket-version': '13' }],
      ['GET', { upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '8' }],
      ['GET', { upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13', 'sec-websocket-protocol': 'chat, a"b' }],
      ['GET', { upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13', 'sec-websocket-protocol': 'chat, chat' }],
      ['POST', { upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' }],
    ];
    for (const [method, headers] of cases) {
      const res = await rawUpgrade(t.port, t.ca, method, '/echo/malformed', headers);
      assert.equal(res.status, 400, `${method} ${JSON.stringify(headers)}: ${res.text}`);
      assert.match(res.text, /"reason":"bad_request"/);
    }
    assert.equal(upgradesTo('/echo/malformed').length, 0);
    assert.equal(upstream.requests.filter((r) => r.url === '/echo/malformed').length, 0);
  });

  test('a forbidden address is refused at the handshake', async () => {
    refused(await open('/private/x'), 403, 'ip_not_allowed');
    assert.equal(upgradesTo('/private/').length, 0);
  });

  test('identity: a missing or invalid token is refused at the handshake; a valid one sets the verified openid', async () => {
    refused(await open('/user/none'), 401, 'identity_required');
    refused(await open('/user/bad', { headers: { authorization: 'Bearer not.a.token' } }), 401, 'token_invalid');
    refused(await open('/user/bad-proto', { protocols: ['chat', 'bearer.not.a.token'] }), 401, 'token_invalid');
    assert.equal(upgradesTo('/user/').length, 0);

    const header = opened(await open('/user/header', { headers: { authorization: `Bearer ${await tokenFor('o-alice')}`, 'x-wx-openid': 'o-mallory' } }));
    assert.equal(upgradesTo('/user/header')[0]!.headers['x-wx-openid'], 'o-alice');
    header.ws.close();

    const token = await tokenFor('o-bob');
    const proto = opened(await open('/user/proto', { protocols: ['chat', `bearer.${token}`] }));
    assert.equal(proto.ws.protocol, 'chat');
    const seen = upgradesTo('/user/proto')[0]!.headers;
    assert.equal(seen['x-wx-openid'], 'o-bob');
    // The token never reaches the backend from where the gateway took it.
    assert.equal(seen['sec-websocket-protocol'], 'chat');
    assert.ok(!JSON.stringify(seen).includes(token));
    assert.equal((await echo(proto.ws, 'hi')).data.toString(), 'hi');
    proto.ws.close();

    refused(await open('/user/two', { protocols: ['chat', `bearer.${token}`], headers: { authorization: `Bearer ${token}` } }), 401, 'token_invalid');
    assert.equal(upgradesTo('/user/two').length, 0);
  });

  test('Origin: a browser page from an origin the route does not allow is refused; an allowed one and no Origin pass', async () => {
    refused(await open('/browser/x', { origin: 'https://evil.example' }), 403, 'websocket_origin_not_allowed');
    // A route without cors allows no other origin either.
    refused(await open('/echo/evil', { origin: 'https://app.example.com' }), 403, 'websocket_origin_not_allowed');
    assert.equal(upgradesTo('/browser/x').length + upgradesTo('/echo/evil').length, 0);
    const allowed = opened(await open('/browser/ok', { origin: 'https://app.example.com' }));
    allowed.ws.close();
    const same = opened(await open('/echo/same-origin', { origin: 'https://localhost' }));
    same.ws.close();
    const native = opened(await open('/browser/native'));
    native.ws.close();
  });

  test('the rate limit counts each upgrade and refuses past it at the handshake', async () => {
    for (const n of [1, 2]) {
      const h = opened(await open(`/limited/${n}`));
      h.ws.close();
    }
    const third = await open('/limited/3');
    refused(third, 429, 'rate_limited');
    assert.equal((third as Extract<Handshake, { kind: 'refused' }>).headers['ratelimit-remaining'] ?? '0', '0');
    assert.equal(upgradesTo('/limited/').length, 2);
  });

  test('an idle session is closed by the gateway on both sides', async () => {
    const h = opened(await open('/idle/quiet'));
    const { code, reason } = await closed(h.ws);
    assert.equal(code, 1000);
    assert.equal(reason, 'idle timeout');
    const line = await sessionLog(String(h.headers['x-request-id']));
    assert.equal(line.closed_by, 'gateway');
    assert.equal(line.why, 'idle_timeout');
    await waitUntil(() => (upstream.closes.some((c) => c.url === '/idle/quiet') ? true : undefined), 'the backend side closed', { wake: upstream.wake });
  });

  test('a session is closed at max_duration however busy it is', async () => {
    const h = opened(await open('/short/busy'));
    // A heartbeat well inside idle_timeout: only max_duration can end the session.
    const beat = setInterval(() => h.ws.send('beat'), 50);
    const { code, reason } = await closed(h.ws).finally(() => clearInterval(beat));
    assert.equal(code, 1000);
    assert.equal(reason, 'session too long');
    const line = await sessionLog(String(h.headers['x-request-id']));
    assert.equal(line.why, 'max_duration');
    assert.ok(Number(line.bytes_in) >= 4);
  });

  test('max_connections: one session past the limit is refused until one closes; max_message closes with 1009', async () => {
    const a = opened(await open('/few/a'));
    const b = opened(await open('/few/b'));
    refused(await open('/few/c'), 503, 'websocket_limit');
    assert.equal(upgradesTo('/few/c').length, 0);
    const open2 = await t.gw.metrics.registry.getSingleMetric('wxgw_websockets_open')!.get();
    assert.equal(open2.values.find((v) => v.labels.route === 'few')?.value, 2);
    a.ws.close();
    await sessionLog(String(a.headers['x-request-id']));
    const d = opened(await open('/few/d'));
    // Larger than the route's max_message (1kb): `ws` closes with 1009 (message too big).
    b.ws.send(Buffer.alloc(2048));
    assert.equal((await closed(b.ws)).code, 1009);
    d.ws.close();
    await sessionLog(String(d.headers['x-request-id']));
    const bytes = await t.gw.metrics.registry.getSingleMetric('wxgw_websocket_bytes_total')!.get();
    assert.ok(bytes.values.some((v) => v.labels.route === 'echo' && v.labels.direction === 'in' && v.value >= 9));
  });

  test('a reload does not cut an open session', async () => {
    const h = opened(await open('/echo/reload'));
    writeFileSync(join(t.ctx.dir, 'gateway.yaml'), policy(upstream.url, closedPort)(t.ctx).replace('name: plain', 'name: plain2'));
    const result = await t.gw.reload();
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal((await echo(h.ws, 'still here')).data.toString(), 'still here');
    h.ws.close();
    await closed(h.ws);
  });
});

describe('websocket at shutdown', () => {
  test('open sessions are closed with 1001 on both sides once the drain delay is over', async () => {
    const upstream = await startWsUpstream();
    const t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  drain_delay: 50ms
  shutdown_timeout: 10s
${ctx.tlsSection}
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: echo
    match: { path_prefix: / }
    upstream: legacy
    websocket: true
`,
    );
    try {
      const h = opened(await connect(t.port, t.ca, '/live'));
      const closing = closed(h.ws);
      const stopped = t.gw.shutdown();
      const { code } = await closing;
      assert.equal(code, 1001);
      await stopped;
      await waitUntil(() => (upstream.closes.some((c) => c.url === '/live' && c.code === 1001) ? true : undefined), 'the backend told 1001', { wake: upstream.wake });
      const line = await t.waitForLog((l) => l.msg === 'websocket session', 'the session line');
      assert.equal(line.why, 'shutdown');
      assert.equal(line.closed_by, 'gateway');
    } finally {
      await t.close();
      await upstream.close();
    }
  });
});

describe('websocket behind a TLS-terminating load balancer (server.https: off)', () => {
  test('an upgrade the trusted balancer received over https is proxied; any other is refused with https_required', async () => {
    const upstream = await startWsUpstream();
    const t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: off
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  public_host: api.example.com
  trusted_proxies: [127.0.0.1]
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: echo, match: { path_prefix: / }, upstream: legacy, websocket: true }
defaults: { allow: any }
`,
    );
    try {
      refused(await connect(t.port, t.ca, '/claimed', { plain: true }), 400, 'https_required');
      const h = opened(await connect(t.port, t.ca, '/forwarded', { plain: true, headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } }));
      assert.equal((await echo(h.ws, 'via balancer')).data.toString(), 'via balancer');
      const seen = upstream.upgrades.find((u) => u.url === '/forwarded')!.headers;
      assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
      assert.equal(upstream.upgrades.filter((u) => u.url === '/claimed').length, 0);
      h.ws.close();
      await closed(h.ws);
    } finally {
      await t.close();
      await upstream.close();
    }
  });
});
