// Identity through real HTTPS: wxgw's own login against a fake WeChat, the session tokens it
// signs, the backend's own JWTs, and the openid header the upstream receives (only ever the
// verified one, never a copy the client sent).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';
import { waitUntil } from '../helpers/wait.js';
import { PROTOCOLS } from '../helpers/h2-client.js';

interface ErrorBody {
  error: { reason: string; message: string; request_id: string };
}

interface LoginAnswer {
  token: string;
  expires_in: number;
  openid: string;
  user?: Record<string, unknown>;
}

function assertGatewayError(res: ClientResponse, status: number, reason: string): void {
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = JSON.parse(res.text) as ErrorBody;
  assert.equal(body.error.reason, reason, res.text);
  assert.equal(body.error.request_id, res.headers['x-request-id']);
}

const SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';
const BACKEND_ISSUER = 'legacy-backend';
const BACKEND_AUDIENCE = 'wx-api';
const USER_LOGIN_PATH = '/api/users/login';

for (const protocol of PROTOCOLS) {
describe(`identity over ${protocol.name}`, () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let t: TestGateway;
  let backendKey: KeyObject;
  let otherKey: KeyObject;
  /** Tokens minted by a login, by openid. */
  const tokens = new Map<string, string>();

  const received = (prefix: string) => upstream.received.filter((r) => r.url.startsWith(prefix));

  const login = (code: string, extra: Record<string, unknown> = {}) =>
    protocol.request(t.port, t.ca, {
      method: 'POST',
      path: '/wx/login',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code, ...extra }),
    });

  const get = (path: string, headers: Record<string, string | string[]> = {}) => protocol.request(t.port, t.ca, { path, headers });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  before(async () => {
    wechat = await startFakeWechat();
    upstream = await startUpstream((req, res, body) => {
      if (req.url === USER_LOGIN_PATH) {
        // What a legacy backend answers when it creates its user: secrets and personal data the
        // mask profile must keep from the client.
        const text = JSON.stringify({ user_id: 7, session_key: 'backend-held-session-key', phone: '13812345678', nickname: 'Mei' });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(text);
        return;
      }
      const text = JSON.stringify({ url: req.url, headers: req.headers, body: body.toString() });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text);
    });

    const keys = mkdtempSync(join(tmpdir(), 'wxgw-identity-keys-'));
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    backendKey = pair.privateKey;
    otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const publicFile = join(keys, 'backend-jwt.pem');
    writeFileSync(publicFile, pair.publicKey.export({ type: 'spki', format: 'pem' }));

    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${wechat.appid}
  app_secret: \${WX_APP_SECRET}
  api_base: "${wechat.url}"
  api_timeout: 1s
identity:
  login:
    path: /wx/login
    upstream: { upstream: legacy, path: ${USER_LOGIN_PATH}, mask: wx-user }
  session:
    signing_key: \${SESSION_SIGNING_KEY}
    ttl: 1h
  jwt:
    public_key: ${publicFile}
    issuer: ${BACKEND_ISSUER}
    audience: ${BACKEND_AUDIENCE}
    algorithms: [RS256]
mask_profiles:
  wx-user:
    drop: [session_key]
    partial:
      phone: { keep_start: 3, keep_end: 4 }
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: open
    match: { path_prefix: /open/ }
    upstream: legacy
  - name: private
    match: { path_prefix: /private/ }
    upstream: legacy
    identity_required: true
`,
      { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY } },
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
    await wechat?.close();
  });

  describe('login', () => {
    test('a code is exchanged once for a session token; the answer carries no session_key or unionid', async () => {
      wechat.codes.set('code-alice', { openid: 'o-alice', session_key: 'wx-session-key-alice', unionid: 'u-alice' });
      const before = wechat.calls.length;
      const res = await login('code-alice');
      assert.equal(res.status, 200, res.text);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = res.json<LoginAnswer>();
      assert.equal(typeof body.token, 'string');
      assert.equal(body.openid, 'o-alice');
      assert.equal(body.expires_in, 3600);
      assert.ok(!('session_key' in body), res.text);
      assert.ok(!('unionid' in body), res.text);
      assert.ok(!res.text.includes('wx-session-key-alice'), res.text);
      assert.ok(!res.text.includes('u-alice'), res.text);
      assert.equal(wechat.calls.length - before, 1);
      const call = wechat.calls.at(-1)!;
      assert.equal(call.query.js_code, 'code-alice');
      assert.equal(call.query.appid, wechat.appid);
      tokens.set('o-alice', body.token);

      // The token is the one the gateway verifies later.
      const echoed = await get('/open/me', bearer(body.token));
      assert.equal(echoed.status, 200, echoed.text);
      assert.equal(upstream.received.at(-1)!.headers['x-wx-openid'], 'o-alice');
    });

    test('the same code again is refused as wx_code_used without calling WeChat', async () => {
      const before = wechat.calls.length;
      const res = await login('code-alice');
      assertGatewayError(res, 400, 'wx_code_used');
      assert.equal(wechat.calls.length, before);
    });

    // HTTP/1.1 only: it waits on the HTTP/1.1 server's diagnostics channel; the single flight it
    // shows lives behind the protocol, in the login endpoint.
    if (!protocol.h2) test('20 concurrent logins with one code make one WeChat call and all get the same token', async () => {
      // A gateway of its own whose api_timeout outlasts any machine's slowness: WeChat holds its
      // answer until all 20 requests have been read by the gateway, so they surely overlap.
      const own = await startTestGateway(
        (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
wechat:
  appid: ${wechat.appid}
  app_secret: \${WX_APP_SECRET}
  api_base: "${wechat.url}"
  api_timeout: 60s
identity:
  login: { path: /wx/login }
  session: { signing_key: "\${SESSION_SIGNING_KEY}", ttl: 1h }
defaults: { allow: any }
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - { name: open, match: { path_prefix: /open/ }, upstream: legacy }
`,
        { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY: SIGNING_KEY } },
      );
      const read = new Set<() => void>();
      let bodiesRead = 0;
      const onRequest = (message: unknown): void => {
        const { request } = message as { request: IncomingMessage };
        if (request.url !== '/wx/login') return;
        request.once('end', () => {
          bodiesRead++;
          for (const wake of read) wake();
        });
      };
      subscribe('http.server.request.start', onRequest);
      wechat.codes.set('code-bob', { openid: 'o-bob', session_key: 'wx-session-key-bob' });
      wechat.hold();
      try {
        const before = wechat.calls.length;
        const pending = Array.from({ length: 20 }, () =>
          protocol.request(own.port, own.ca, { method: 'POST', path: '/wx/login', headers: { 'content-type': 'application/json' }, body: '{"code":"code-bob"}', timeoutMs: 60_000 }),
        );
        await waitUntil(() => (bodiesRead >= 20 ? true : undefined), 'the gateway to read 20 login requests', { wake: read, timeoutMs: 60_000 });
        // The bodies are read; the handler runs on the same turn, before WeChat's answer can arrive.
        setImmediate(() => wechat.release());
        const answers = await Promise.all(pending);
        for (const res of answers) assert.equal(res.status, 200, res.text);
        const issued = new Set(answers.map((res) => res.json<LoginAnswer>().token));
        assert.equal(issued.size, 1);
        assert.equal(wechat.calls.length - before, 1);
        assert.equal(answers[0]!.json<LoginAnswer>().openid, 'o-bob');
      } finally {
        unsubscribe('http.server.request.start', onRequest);
        wechat.release();
        await own.close();
      }
    });

    test('WeChat errors are mapped to stable reasons', async () => {
      wechat.codes.set('code-45011', { errcode: 45011, errmsg: 'api minute-quota reach limit' });
      wechat.codes.set('code-busy', { errcode: -1, errmsg: 'system error' });
      // Not configured: the fake answers 40029 invalid code.
      assertGatewayError(await login('code-never-issued'), 400, 'wx_code_invalid');
      assertGatewayError(await login('code-45011'), 429, 'wx_rate_limited');
      assertGatewayError(await login('code-busy'), 503, 'wx_unavailable');
    });

    test('WeChat answering past api_timeout is 504 wx_timeout', async () => {
      wechat.codes.set('code-slow', { openid: 'o-slow', session_key: 'k' });
      // Held: WeChat never answers on its own, so only api_timeout can end the exchange.
      wechat.hold();
      try {
        const res = await login('code-slow');
        assertGatewayError(res, 504, 'wx_timeout');
        assert.equal(wechat.calls.at(-1)?.query.js_code, 'code-slow', 'the exchange did reach WeChat');
      } finally {
        wechat.release();
      }
    });

    test('malformed login bodies are refused as login_invalid', async () => {
      const before = wechat.calls.length;
      assertGatewayError(await protocol.request(t.port, t.ca, { method: 'POST', path: '/wx/login', body: 'not json' }), 400, 'login_invalid');
      assertGatewayError(await protocol.request(t.port, t.ca, { method: 'POST', path: '/wx/login', body: '{"code": 42}' }), 400, 'login_invalid');
      assert.equal(wechat.calls.length, before);
    });

    test('login.upstream gets a POST with the verified openid; its answer comes back masked as `user`', async () => {
      wechat.codes.set('code-carol', { openid: 'o-carol', session_key: 'wx-session-key-carol', unionid: 'u-carol' });
      const before = received(USER_LOGIN_PATH).length;
      const res = await login('code-carol', { invite: 'friend-1' });
      assert.equal(res.status, 200, res.text);
      const notices = received(USER_LOGIN_PATH).slice(before);
      assert.equal(notices.length, 1);
      const notice = notices[0]!;
      assert.equal(notice.method, 'POST');
      assert.equal(notice.headers['x-wx-openid'], 'o-carol');
      assert.equal(notice.headers['x-wx-unionid'], 'u-carol');
      const sent = JSON.parse(notice.body.toString()) as Record<string, unknown>;
      // The client's other fields travel on; the code and the session_key do not.
      assert.deepEqual(sent, { invite: 'friend-1' });
      assert.ok(!notice.body.toString().includes('wx-session-key-carol'));

      const body = res.json<LoginAnswer>();
      assert.equal(body.openid, 'o-carol');
      assert.deepEqual(body.user, { user_id: 7, phone: '138****5678', nickname: 'Mei' });
      assert.ok(!res.text.includes('backend-held-session-key'), res.text);
      assert.ok(!res.text.includes('13812345678'), res.text);
      assert.ok(!res.text.includes('wx-session-key-carol'), res.text);
      assert.ok(!res.text.includes('u-carol'), res.text);
    });
  });

  describe('openid header to the upstream', () => {
    test('a verified token sets x-wx-openid and a client-sent copy never reaches the upstream', async () => {
      const token = tokens.get('o-alice')!;
      for (const path of ['/open/a', '/private/a']) {
        const before = received(path).length;
        const res = await get(path, { ...bearer(token), 'X-WX-OpenID': 'o-mallory', 'X-WX-UnionID': 'u-mallory' });
        assert.equal(res.status, 200, res.text);
        const got = received(path).slice(before);
        assert.equal(got.length, 1);
        assert.equal(got[0]!.headers['x-wx-openid'], 'o-alice', path);
        assert.equal(got[0]!.headers['x-wx-unionid'], undefined, path);
        assert.ok(!JSON.stringify(got[0]!.headers).includes('mallory'), path);
      }
    });

    test('without a token, client-sent identity headers are removed on a route without identity_required', async () => {
      const before = received('/open/b').length;
      const res = await get('/open/b', { 'X-WX-OpenID': 'o-mallory', 'X-WX-UnionID': 'u-mallory' });
      assert.equal(res.status, 200, res.text);
      const got = received('/open/b').slice(before);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.headers['x-wx-openid'], undefined);
      assert.equal(got[0]!.headers['x-wx-unionid'], undefined);
      assert.ok(!JSON.stringify(got[0]!.headers).includes('mallory'));
    });

    test('without a token, a client-sent identity header does not satisfy identity_required', async () => {
      const before = received('/private/').length;
      const res = await get('/private/b', { 'X-WX-OpenID': 'o-mallory', 'X-WX-UnionID': 'u-mallory' });
      assertGatewayError(res, 401, 'identity_required');
      assert.equal(received('/private/').length, before);
    });

    test('repeated client-sent identity headers are removed too', async () => {
      const before = received('/open/c').length;
      // Two copies on the wire: Node joins them, the gateway must drop the lot.
      const res = await get('/open/c', { 'X-WX-OpenID': ['o-mallory', 'o-eve'] });
      assert.equal(res.status, 200, res.text);
      const got = received('/open/c').slice(before);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.headers['x-wx-openid'], undefined);
    });
  });

  describe('identity_required', () => {
    const refusedWithoutUpstream = async (token: string, reason: string): Promise<void> => {
      const before = received('/private/').length;
      const res = await get('/private/x', { ...bearer(token), 'X-WX-OpenID': 'o-mallory' });
      assertGatewayError(res, 401, reason);
      assert.equal(received('/private/').length, before, `the upstream must not see a request refused with ${reason}`);
    };

    const signSession = (claims: { sub: string; sid?: string; iss?: string; exp: number; iat?: number }, key: string = SIGNING_KEY) =>
      new SignJWT({ sid: claims.sid ?? 'sid-1' })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(claims.sub)
        .setIssuer(claims.iss ?? 'wxgw')
        .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000) - 60)
        .setExpirationTime(claims.exp)
        .sign(new TextEncoder().encode(key));

    test('no token is 401 identity_required', async () => {
      const before = received('/private/').length;
      assertGatewayError(await get('/private/x'), 401, 'identity_required');
      assert.equal(received('/private/').length, before);
    });

    test('a token signed by the gateway itself is accepted', async () => {
      const token = await signSession({ sub: 'o-self-signed', exp: Math.floor(Date.now() / 1000) + 600 });
      const before = received('/private/').length;
      const res = await get('/private/self', bearer(token));
      assert.equal(res.status, 200, res.text);
      assert.equal(received('/private/').slice(before)[0]!.headers['x-wx-openid'], 'o-self-signed');
    });

    test('a tampered token is token_invalid', async () => {
      const token = tokens.get('o-alice')!;
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      claims.sub = 'o-mallory';
      const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
      await refusedWithoutUpstream(forged, 'token_invalid');
      // A flipped signature character.
      const last = signature.at(-2) === 'A' ? 'B' : 'A';
      await refusedWithoutUpstream(`${header}.${payload}.${signature.slice(0, -2)}${last}${signature.at(-1)}`, 'token_invalid');
    });

    test('a token signed with another key is token_invalid', async () => {
      const token = await signSession({ sub: 'o-mallory', exp: Math.floor(Date.now() / 1000) + 600 }, 'another-signing-key-0123456789abcdef-xyz');
      await refusedWithoutUpstream(token, 'token_invalid');
    });

    test('an alg:none token is token_invalid', async () => {
      const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const exp = Math.floor(Date.now() / 1000) + 600;
      const payload = enc({ sub: 'o-mallory', sid: 's', iss: 'wxgw', exp, openid: 'o-mallory', aud: BACKEND_AUDIENCE });
      for (const alg of ['none', 'None', 'NONE']) {
        await refusedWithoutUpstream(`${enc({ alg, typ: 'JWT' })}.${payload}.`, 'token_invalid');
        await refusedWithoutUpstream(`${enc({ alg, typ: 'JWT' })}.${payload}.AAAA`, 'token_invalid');
      }
      const backendPayload = enc({ iss: BACKEND_ISSUER, aud: BACKEND_AUDIENCE, openid: 'o-mallory', exp });
      await refusedWithoutUpstream(`${enc({ alg: 'none' })}.${backendPayload}.`, 'token_invalid');
    });

    test('an expired session token is token_expired', async () => {
      const now = Math.floor(Date.now() / 1000);
      const token = await signSession({ sub: 'o-alice', iat: now - 7200, exp: now - 3600 });
      await refusedWithoutUpstream(token, 'token_expired');
    });

    test('an expired token on a route without identity_required is forwarded without an openid', async () => {
      const now = Math.floor(Date.now() / 1000);
      const token = await signSession({ sub: 'o-alice', iat: now - 7200, exp: now - 3600 });
      const before = received('/open/expired').length;
      const res = await get('/open/expired', { ...bearer(token), 'X-WX-OpenID': 'o-mallory' });
      assert.equal(res.status, 200, res.text);
      const got = received('/open/expired').slice(before);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.headers['x-wx-openid'], undefined);
    });
  });

  describe('backend JWT (identity.jwt, RS256 public key)', () => {
    const signBackend = (claims: Record<string, unknown>, opts: { key?: KeyObject; iss?: string; aud?: string; exp?: number } = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256' })
        .setIssuer(opts.iss ?? BACKEND_ISSUER)
        .setAudience(opts.aud ?? BACKEND_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(opts.exp ?? Math.floor(Date.now() / 1000) + 600)
        .sign(opts.key ?? backendKey);

    test('a valid backend token is accepted and its openid claim sent upstream', async () => {
      const token = await signBackend({ openid: 'o-legacy-user' });
      const before = received('/private/').length;
      const res = await get('/private/legacy', { ...bearer(token), 'X-WX-OpenID': 'o-mallory' });
      assert.equal(res.status, 200, res.text);
      const got = received('/private/').slice(before);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.headers['x-wx-openid'], 'o-legacy-user');
    });

    test('issuer or audience mismatch is refused', async () => {
      await refused(await signBackend({ openid: 'o-legacy-user' }, { iss: 'someone-else' }), 'token_invalid');
      await refused(await signBackend({ openid: 'o-legacy-user' }, { aud: 'another-api' }), 'token_invalid');
    });

    test('a backend token signed with another key, or without an openid, is refused', async () => {
      await refused(await signBackend({ openid: 'o-legacy-user' }, { key: otherKey }), 'token_invalid');
      await refused(await signBackend({ uid: 7 }), 'token_invalid');
    });

    test('an expired backend token is token_expired', async () => {
      // Past the default 30 s clock tolerance.
      await refused(await signBackend({ openid: 'o-legacy-user' }, { exp: Math.floor(Date.now() / 1000) - 600 }), 'token_expired');
    });

    test('an HS256 token made with the public key as secret is refused (algorithm confusion)', async () => {
      const publicPem = createPublicKey(backendKey).export({ type: 'spki', format: 'pem' });
      const token = await new SignJWT({ openid: 'o-mallory' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(BACKEND_ISSUER)
        .setAudience(BACKEND_AUDIENCE)
        .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
        .sign(new TextEncoder().encode(String(publicPem)));
      await refused(token, 'token_invalid');
    });

    async function refused(token: string, reason: string): Promise<void> {
      const before = received('/private/').length;
      const res = await get('/private/legacy', bearer(token));
      assertGatewayError(res, 401, reason);
      assert.equal(received('/private/').length, before);
    }
  });
  test('no secret of a login (app secret, signing key, session_key, code, token) is in the gateway log', () => {
    // Runs last: whatever happened above.
    const logs = t.logText();
    assert.ok(logs.length > 0);
    for (const secret of [wechat.secret, SIGNING_KEY, 'wx-session-key-alice', 'wx-session-key-bob', 'wx-session-key-carol', 'backend-held-session-key', 'code-alice', 'code-bob', 'code-carol']) {
      assert.ok(!logs.includes(secret), `the gateway log contains ${secret}`);
    }
    for (const token of tokens.values()) assert.ok(!logs.includes(token), 'the gateway log contains a session token');
  });
});
}

describe('backend JWT with an ES256 public key (identity.jwt only, no login)', () => {
  let upstream: TestUpstream;
  let t: TestGateway;
  let esKey: KeyObject;
  let rsKey: KeyObject;

  before(async () => {
    upstream = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'wxgw-identity-es-'));
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    esKey = pair.privateKey;
    rsKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const file = join(dir, 'backend-es256.pem');
    writeFileSync(file, pair.publicKey.export({ type: 'spki', format: 'pem' }));
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
identity:
  jwt:
    public_key: ${file}
    issuer: ${BACKEND_ISSUER}
    audience: ${BACKEND_AUDIENCE}
    openid_claim: wx_openid
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: private
    match: { path_prefix: /private/ }
    upstream: legacy
    identity_required: true
`,
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  const sign = (opts: { key?: KeyObject; alg?: string; iss?: string; aud?: string; claims?: Record<string, unknown> } = {}) =>
    new SignJWT(opts.claims ?? { wx_openid: 'o-es-user' })
      .setProtectedHeader({ alg: opts.alg ?? 'ES256' })
      .setIssuer(opts.iss ?? BACKEND_ISSUER)
      .setAudience(opts.aud ?? BACKEND_AUDIENCE)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
      .sign(opts.key ?? esKey);

  const call = (token: string) => httpsRequest(t.port, t.ca, { path: '/private/es', headers: { authorization: `Bearer ${token}`, 'x-wx-openid': 'o-mallory' } });

  test('an ES256 token is accepted; the configured openid claim goes upstream', async () => {
    const res = await call(await sign());
    assert.equal(res.status, 200, res.text);
    assert.equal(upstream.received.length, 1);
    assert.equal(upstream.received[0]!.headers['x-wx-openid'], 'o-es-user');
  });

  test('wrong issuer, wrong audience, another key or algorithm, or no openid claim: 401 token_invalid, never forwarded', async () => {
    const before = upstream.received.length;
    assertGatewayError(await call(await sign({ iss: 'someone-else' })), 401, 'token_invalid');
    assertGatewayError(await call(await sign({ aud: 'another-api' })), 401, 'token_invalid');
    assertGatewayError(await call(await sign({ key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })), 401, 'token_invalid');
    assertGatewayError(await call(await sign({ key: rsKey, alg: 'RS256' })), 401, 'token_invalid');
    assertGatewayError(await call(await sign({ claims: { openid: 'o-es-user' } })), 401, 'token_invalid');
    assert.equal(upstream.received.length, before);
  });
});
