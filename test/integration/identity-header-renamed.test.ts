// A policy that renames the identity headers (identity.upstream_header / unionid_header) still
// keeps a client from setting the default ones: a backend written for X-WX-OpenID, or one the
// team forgot to change, must never read an openid the gateway did not verify.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { SignJWT } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';

let upstream: TestUpstream;
let gw: TestGateway;

before(async () => {
  upstream = await startUpstream();
  gw = await startTestGateway(
    (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
identity:
  jwt: { secret: "\${JWT_SECRET}", issuer: legacy }
  upstream_header: x-user-openid
  unionid_header: x-user-unionid
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
`,
    { env: { JWT_SECRET } },
  );
});

after(async () => {
  await gw?.close();
  await upstream?.close();
});

function send(path: string, headers: OutgoingHttpHeaders): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: gw.port, servername: 'localhost', path, headers: { host: 'localhost', ...headers }, ca: gw.ca, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const FORGED: OutgoingHttpHeaders = {
  'X-WX-OpenID': 'o_victim',
  X_WX_OpenID: 'o_victim',
  'X-WX-UnionID': 'u_victim',
  X_WX_UnionID: 'u_victim',
  'X-User-OpenID': 'o_victim',
};

test('without a token, neither the renamed nor the default identity headers reach the backend in any spelling', async () => {
  const answer = await send('/api/anonymous', FORGED);
  assert.equal(answer.status, 200);
  const seen = upstream.received.at(-1)!;
  assert.equal(seen.url, '/api/anonymous');
  const names = Object.keys(seen.headers);
  for (const name of ['x-wx-openid', 'x_wx_openid', 'x-wx-unionid', 'x_wx_unionid', 'x-user-openid']) {
    assert.ok(!names.includes(name), `${name} reached the backend: ${JSON.stringify(seen.headers)}`);
  }
});

test('with a verified token, the backend reads the verified openid under the renamed header and no default one', async () => {
  const token = await new SignJWT({ openid: 'o_alice' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(JWT_SECRET));
  const answer = await send('/api/me', { ...FORGED, authorization: `Bearer ${token}` });
  assert.equal(answer.status, 200);
  const seen = upstream.received.at(-1)!;
  assert.equal(seen.url, '/api/me');
  assert.equal(seen.headers['x-user-openid'], 'o_alice');
  assert.equal(seen.headers['x-wx-openid'], undefined);
  assert.equal(seen.headers['x_wx_openid'], undefined);
});
