// Request headers through real HTTPS, the way a CGI-style backend would read them: a real
// upstream reports every header it received, and PHP's built-in server (which folds `-`, `_`
// and `.` alike into HTTP_* variables) shows what such a backend acts on. No spelling of a
// header the gateway owns, and no client claim about the connection, gets past the gateway;
// an ordinary request with an underscore header still goes through.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { h2Request, PROTOCOLS, type Protocol } from '../helpers/h2-client.js';

const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';
const TRUSTED = '127.0.0.2';

function tokenFor(openid: string): Promise<string> {
  return new SignJWT({ openid })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One HTTPS request from `from` (a loopback address), headers exactly as given. */
function sendOver(t: TestGateway, path: string, headers: OutgoingHttpHeaders, from: string, protocol: Protocol): Promise<Answer> {
  if (protocol.h2) return h2Request(t.port, t.ca, { path, headers, localAddress: from });
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: t.port, localAddress: from, servername: 'localhost', path, headers: { host: 'localhost', ...headers }, ca: t.ca, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function policy(upstream: string, server = '', extraRoutes = ''): (ctx: { httpsPort: number; tlsSection: string }) => string {
  return (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  trusted_proxies: [${TRUSTED}]
${server}
${ctx.tlsSection}
identity:
  jwt: { secret: "\${JWT_SECRET}", issuer: legacy }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream}", timeout: 5s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
${extraRoutes}`;
}

/** Spellings of the gateway's own headers a CGI backend reads as the real ones. */
const FORGED: OutgoingHttpHeaders = {
  X_WX_OpenID: 'o_victim',
  'X.WX.OpenID': 'o_victim',
  X_WX_UnionID: 'u_victim',
  X_WX_Callback_Verified: 'decrypted',
  X_WeChatPay_Verified: 'decrypted',
  X_Forwarded_For: '6.6.6.6',
  X_Forwarded_Host: 'admin.internal',
  X_Request_Id: 'forged',
};

/** Client claims about the connection. */
const CLAIMS: OutgoingHttpHeaders = {
  'True-Client-IP': '6.6.6.6',
  'X-Client-IP': '6.6.6.6',
  'CF-Connecting-IP': '6.6.6.6',
  'X-Cluster-Client-IP': '6.6.6.6',
  'X-Original-Forwarded-For': '6.6.6.6',
  'X-Forwarded-Server': 'admin.internal',
  'X-Forwarded-Scheme': 'https',
  'X-Forwarded-Port': '443',
  'X-Forwarded-Prefix': '/admin',
  'X-Host': 'admin.internal',
  'X-Original-Host': 'admin.internal',
  'X-Original-URL': '/admin/users',
  'X-Rewrite-URL': '/admin/users',
  'X-HTTP-Method-Override': 'DELETE',
  'X-HTTP-Method': 'DELETE',
  'X-Method-Override': 'DELETE',
  Forwarded: 'for=6.6.6.6;proto=https',
  'X-Real-IP': '6.6.6.6',
  'Client-IP': '6.6.6.6',
  'X-ProxyUser-Ip': '6.6.6.6',
  'Fastly-Client-IP': '6.6.6.6',
  'X-Forwarded': 'for=6.6.6.6',
  'Forwarded-For': '6.6.6.6',
  'Proxy-Client-IP': '6.6.6.6',
  'WL-Proxy-Client-IP': '6.6.6.6',
};

for (const protocol of PROTOCOLS) {
describe(`underscores: drop (the default) over ${protocol.name}`, () => {
  const send = (t: TestGateway, path: string, headers: OutgoingHttpHeaders, from = '127.0.0.1'): Promise<Answer> => sendOver(t, path, headers, from, protocol);
  let upstream: TestUpstream;
  let t: TestGateway;
  const last = () => upstream.received.at(-1)!.headers;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(policy(upstream.url, '  trusted_headers: [x-real-ip, forwarded]'), { env: { JWT_SECRET } });
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('no spelling of a gateway-owned header reaches the upstream; the verified openid does', async () => {
    const res = await send(t, '/api/me', { ...FORGED, authorization: `Bearer ${await tokenFor('o_alice')}`, 'X-App-Version': '3.1' });
    assert.equal(res.status, 200, res.text);
    const got = last();
    assert.equal(got['x-wx-openid'], 'o_alice');
    assert.equal(got['x-app-version'], '3.1');
    for (const name of Object.keys(got)) assert.ok(!/[^a-z0-9-]/.test(name), `${name} reached the upstream`);
    assert.equal(got['x-wx-unionid'], undefined);
    assert.equal(got['x-wx-callback-verified'], undefined);
    assert.equal(got['x-forwarded-for'], '127.0.0.1');
    assert.equal(got['x-forwarded-host'], 'localhost');
    assert.equal(got['x-request-id'], res.headers['x-request-id']);
    assert.ok(!JSON.stringify(got).includes('victim') && !JSON.stringify(got).includes('6.6.6.6'));
  });

  test('without a token the forged spellings are dropped too: the request stays anonymous and still works', async () => {
    const res = await send(t, '/api/me', { X_WX_OpenID: 'o_victim', x_app_version: '3.1', accept: 'application/json' });
    assert.equal(res.status, 200, res.text);
    const got = last();
    assert.equal(got['x-wx-openid'], undefined);
    assert.equal(got['x_app_version'], undefined);
    assert.equal(got['accept'], 'application/json');
  });

  test('each such request is logged once with the header names, never the values, and counted', async () => {
    const before = (await t.gw.decisions.snapshot())['header_dropped'] ?? 0;
    const res = await send(t, '/api/log', { X_Secret_Thing: 'value-never-logged', 'X.Other': 'also-never-logged' });
    assert.equal(res.status, 200);
    const lines = t.logs.filter((l) => l.request_id === res.headers['x-request-id'] && l.msg === 'request header names with "_" dropped');
    assert.equal(lines.length, 1);
    assert.deepEqual(lines[0]!.headers, ['x_secret_thing', 'x.other']);
    assert.ok(!t.logText().includes('never-logged'));
    assert.equal((await t.gw.decisions.snapshot())['header_dropped'], before + 1);
  });

  test('client claims are removed from an untrusted peer', async () => {
    const res = await send(t, '/api/claims', CLAIMS);
    assert.equal(res.status, 200, res.text);
    const got = last();
    for (const name of Object.keys(CLAIMS)) assert.equal(got[name.toLowerCase()], undefined, name);
  });

  test('a trusted proxy keeps only the claims the policy names, in their exact spelling', async () => {
    const res = await send(t, '/api/claims', { ...CLAIMS, X_Real_IP: '7.7.7.7', 'x-forwarded-for': '198.51.100.7' }, TRUSTED);
    assert.equal(res.status, 200, res.text);
    const got = last();
    assert.equal(got['x-real-ip'], '6.6.6.6');
    assert.equal(got['forwarded'], 'for=6.6.6.6;proto=https');
    assert.equal(got['x-forwarded-for'], `198.51.100.7, ${TRUSTED}`);
    for (const name of Object.keys(CLAIMS)) {
      if (name !== 'X-Real-IP' && name !== 'Forwarded') assert.equal(got[name.toLowerCase()], undefined, name);
    }
    assert.equal(got['x_real_ip'], undefined);
  });

  test('X-Forwarded-Host is the normal-form host, never a Host with @, %, # or brackets as sent', async () => {
    const ok = await send(t, '/api/host', { host: 'LocalHost:8443' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(last()['x-forwarded-host'], 'localhost');
    for (const host of ['user@evil.example', 'evil.example%2f@x', 'evil.example#@x', '[evil.example]', 'a[b]c', 'evil.example:80@x']) {
      const before = upstream.received.length;
      const res = await send(t, '/api/host', { host }).catch((err: Error) => err);
      // Over HTTP/2 nghttp2 itself resets a stream whose :authority holds what no authority can.
      if (res instanceof Error) {
        assert.ok(protocol.h2 && /PROTOCOL_ERROR/.test(res.message), `${host}: ${String(res)}`);
        assert.equal(upstream.received.length, before, host);
        continue;
      }
      if (upstream.received.length === before) {
        assert.notEqual(res.status, 200, `${host}: answered 200 without reaching the upstream`);
        continue;
      }
      const xfh = last()['x-forwarded-host'];
      assert.ok(xfh === undefined || /^(?:[a-z0-9.-]+|\[[0-9a-f:]+\])$/.test(String(xfh)), `${host} gave X-Forwarded-Host ${String(xfh)}`);
    }
  });
});
}

for (const protocol of PROTOCOLS) {
describe(`underscores: reject over ${protocol.name}`, () => {
  const send = (t: TestGateway, path: string, headers: OutgoingHttpHeaders, from = '127.0.0.1'): Promise<Answer> => sendOver(t, path, headers, from, protocol);
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(policy(upstream.url, '  headers: { underscores: reject }'), { env: { JWT_SECRET } });
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('a header name with "_" is 400 header_invalid and never reaches the upstream; plain names pass', async () => {
    const before = upstream.received.length;
    const res = await send(t, '/api/x', { X_WX_OpenID: 'o_victim' });
    assert.equal(res.status, 400, res.text);
    const body = JSON.parse(res.text) as { error: { reason: string; message: string } };
    assert.equal(body.error.reason, 'header_invalid');
    assert.match(body.error.message, /x_wx_openid/);
    assert.equal(upstream.received.length, before);
    assert.equal((await send(t, '/api/x', { 'X-App-Version': '3.1' })).status, 200);
  });
});
}

for (const protocol of PROTOCOLS) {
describe(`underscores: allow over ${protocol.name}`, () => {
  const send = (t: TestGateway, path: string, headers: OutgoingHttpHeaders, from = '127.0.0.1'): Promise<Answer> => sendOver(t, path, headers, from, protocol);
  let upstream: TestUpstream;
  let t: TestGateway;
  before(async () => {
    upstream = await startUpstream();
    t = await startTestGateway(policy(upstream.url, '  headers: { underscores: allow }'), { env: { JWT_SECRET } });
  });
  after(async () => {
    await t.close();
    await upstream.close();
  });

  test('ordinary underscore headers are forwarded; spellings of owned headers and claims still are not', async () => {
    const res = await send(t, '/api/x', { ...FORGED, X_App_Version: '3.1', X_Real_IP: '6.6.6.6', True_Client_IP: '6.6.6.6', Content_Length: '7' });
    assert.equal(res.status, 200, res.text);
    const got = upstream.received.at(-1)!.headers;
    assert.equal(got['x_app_version'], '3.1');
    for (const name of [...Object.keys(FORGED), 'X_Real_IP', 'True_Client_IP', 'Content_Length']) assert.equal(got[name.toLowerCase()], undefined, name);
  });
});
}

for (const protocol of PROTOCOLS) {
describe(`in front of PHP, which folds -, _ and . alike over ${protocol.name}`, () => {
  const send = (t: TestGateway, path: string, headers: OutgoingHttpHeaders, from = '127.0.0.1'): Promise<Answer> => sendOver(t, path, headers, from, protocol);
  let php: ChildProcess | undefined;
  let t: TestGateway;
  let phpUrl: string;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wxgw-php-'));
    // What the backend reads: every HTTP_* variable of $_SERVER.
    writeFileSync(
      join(dir, 'index.php'),
      '<?php header("Content-Type: application/json"); $v = []; foreach ($_SERVER as $k => $x) if (strncmp($k, "HTTP_", 5) === 0) $v[$k] = $x; echo json_encode($v);',
    );
    const port = await freePort();
    phpUrl = `http://127.0.0.1:${port}`;
    php = spawn('php', ['-S', `127.0.0.1:${port}`, join(dir, 'index.php')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const started = await new Promise<boolean>((resolve) => {
      php!.once('error', () => resolve(false));
      php!.stderr!.on('data', (c: Buffer) => {
        if (/Development Server .* started/.test(c.toString())) resolve(true);
      });
    });
    assert.ok(started, 'php -S did not start (php-cli is needed by this test)');
    t = await startTestGateway(policy(phpUrl), { env: { JWT_SECRET } });
  });
  after(async () => {
    await t?.close();
    php?.kill();
  });

  test('the backend reads the verified openid and no client claim, whatever spelling was sent', async () => {
    const res = await send(t, '/api/me', { ...FORGED, ...CLAIMS, 'x.real.ip': '6.6.6.6', authorization: `Bearer ${await tokenFor('o_alice')}` });
    assert.equal(res.status, 200, res.text);
    const seen = JSON.parse(res.text) as Record<string, string>;
    assert.equal(seen.HTTP_X_WX_OPENID, 'o_alice');
    assert.equal(seen.HTTP_X_WX_UNIONID, undefined);
    assert.equal(seen.HTTP_X_WX_CALLBACK_VERIFIED, undefined);
    assert.equal(seen.HTTP_X_FORWARDED_FOR, '127.0.0.1');
    assert.equal(seen.HTTP_X_REAL_IP, undefined);
    assert.equal(seen.HTTP_CLIENT_IP, undefined);
    assert.equal(seen.HTTP_X_ORIGINAL_URL, undefined);
    assert.equal(seen.HTTP_X_HTTP_METHOD_OVERRIDE, undefined);
    assert.ok(!res.text.includes('victim') && !res.text.includes('6.6.6.6'), res.text);
  });

  test('sent to PHP directly, the same forged spellings would be read as the real headers', async () => {
    const res = await fetch(`${phpUrl}/`, { headers: { X_WX_OpenID: 'o_victim' } });
    assert.equal(((await res.json()) as Record<string, string>).HTTP_X_WX_OPENID, 'o_victim');
  });
});
}
