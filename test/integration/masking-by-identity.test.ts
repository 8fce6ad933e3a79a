// Masking chosen by who is asking, through real HTTPS and a real upstream: the same answer seen
// by a mini-program user, a support agent and an auditor, each identified by a token the
// gateway verified (a JWT the legacy backend signs, made here with jose; a session token from
// the gateway's own login). Whatever the gateway did not verify (a forged or edited token, a
// header claiming a role) gets the strictest profile, and the access log names the profile.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { httpsRequest, type ClientResponse } from '../helpers/https-client.js';

const SESSION_SIGNING_KEY = 'session-signing-key-0123456789abcdef-0123456789';
const HASH_KEY = 'audit-hash-key-0123456789abcdef-0123456789';
const ISSUER = 'legacy-backend';

/** What the legacy backend answers everyone alike. */
const RECORD = { name: 'Mei', phone: '13812345678', idcard: '110101199003071234' };

const hmac = (text: string) => createHmac('sha256', HASH_KEY).update(text, 'utf8').digest('hex');

/** The three views of RECORD the policy below gives. */
const VIEWS = {
  'wx-user': { name: 'Mei', phone: '138****5678' },
  'staff-view': { name: 'Mei', phone: '13812345678' },
  'audit-view': { name: 'Mei', phone: hmac(RECORD.phone), idcard: hmac(RECORD.idcard) },
} as const;

describe('masking chosen by verified identity', () => {
  let wechat: FakeWechat;
  let upstream: TestUpstream;
  let t: TestGateway;
  let backendKey: KeyObject;
  let strangerKey: KeyObject;

  const get = (path: string, headers: Record<string, string> = {}) => httpsRequest(t.port, t.ca, { path, headers });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  const backendToken = (claims: Record<string, unknown>, key: KeyObject = backendKey) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('1h').sign(key);

  const login = async (code: string, openid: string): Promise<string> => {
    wechat.codes.set(code, { openid, session_key: `wx-session-key-${openid}` });
    const res = await httpsRequest(t.port, t.ca, {
      method: 'POST',
      path: '/wx/login',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code }),
    });
    assert.equal(res.status, 200, res.text);
    return (JSON.parse(res.text) as { token: string }).token;
  };

  /** The answer's body, and the profile the access log line of that request names. */
  async function seen(res: ClientResponse): Promise<{ body: unknown; mask: unknown }> {
    assert.equal(res.status, 200, res.text);
    const id = res.headers['x-request-id'];
    const line = await t.waitForLog((l) => l.msg === 'request' && l.request_id === id, `the access log line of ${String(id)}`);
    return { body: JSON.parse(res.text) as unknown, mask: line.mask };
  }

  before(async () => {
    wechat = await startFakeWechat();
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(RECORD));
    });
    const keys = mkdtempSync(join(tmpdir(), 'wxgw-mask-by-keys-'));
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    backendKey = pair.privateKey;
    strangerKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
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
identity:
  login: { path: /wx/login }
  session: { signing_key: "\${SESSION_SIGNING_KEY}", ttl: 1h }
  jwt: { public_key: ${publicFile}, issuer: ${ISSUER}, algorithms: [RS256] }
openid_lists:
  support-agents: [o-agent]
  auditors: [o-auditor]
mask_profiles:
  wx-user:
    drop: [idcard]
    partial: { phone: { keep_start: 3, keep_end: 4 } }
  staff-view:
    drop: [idcard]
  audit-view:
    hash: [phone, idcard]
    hash_key: \${HASH_KEY}
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: by-role
    match: { path_prefix: /by-role/ }
    upstream: legacy
    mask: { by: claim.role, profiles: { staff: staff-view, auditor: audit-view }, default: wx-user }
  - name: by-list
    match: { path_prefix: /by-list/ }
    upstream: legacy
    mask:
      by: openid_list
      profiles: { support-agents: staff-view, auditors: audit-view }
      default: wx-user
  - name: plain
    match: { path_prefix: /plain/ }
    upstream: legacy
    mask: wx-user
`,
      { env: { WX_APP_SECRET: wechat.secret, SESSION_SIGNING_KEY, HASH_KEY } },
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
    await wechat?.close();
  });

  test('one answer, three verified identities from backend JWTs, three views; the log names each profile', async () => {
    const callers = [
      { token: await backendToken({ openid: 'o-user', role: 'user' }), view: 'wx-user' },
      { token: await backendToken({ openid: 'o-agent', role: 'staff' }), view: 'staff-view' },
      { token: await backendToken({ openid: 'o-auditor', role: 'auditor' }), view: 'audit-view' },
    ] as const;
    // Twice each: the second time the token comes from the verified-token cache.
    for (const round of [1, 2]) {
      for (const { token, view } of callers) {
        const { body, mask } = await seen(await get('/by-role/users/7', bearer(token)));
        assert.deepEqual(body, VIEWS[view], `${view}, round ${round}`);
        assert.equal(mask, view, `${view}, round ${round}`);
      }
    }
  });

  test("openid lists pick the view for session tokens from the gateway's own login", async () => {
    const callers = [
      { token: await login('code-user', 'o-user'), view: 'wx-user' },
      { token: await login('code-agent', 'o-agent'), view: 'staff-view' },
      { token: await login('code-auditor', 'o-auditor'), view: 'audit-view' },
    ] as const;
    for (const { token, view } of callers) {
      const { body, mask } = await seen(await get('/by-list/users/7', bearer(token)));
      assert.deepEqual(body, VIEWS[view], view);
      assert.equal(mask, view, view);
    }
    // A session token carries no role: on the route choosing by claim it gets the default.
    const agent = callers[1].token;
    assert.deepEqual((await seen(await get('/by-role/users/7', bearer(agent)))).body, VIEWS['wx-user']);
  });

  test('a forged claim gets the strictest view: bad signature, edited payload, alg none, client headers', async () => {
    const user = await backendToken({ openid: 'o-user', role: 'user' });
    const [header, payload, signature] = user.split('.') as [string, string, string];
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forgeries: Record<string, Record<string, string>> = {
      'signed by a key the policy does not trust': bearer(await backendToken({ openid: 'o-agent', role: 'staff' }, strangerKey)),
      'payload edited, signature kept': bearer(`${header}.${b64({ ...claims, role: 'staff' })}.${signature}`),
      'alg none': bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, role: 'auditor' })}.`),
      'role in client headers': { role: 'staff', 'x-role': 'staff', 'x-wx-role': 'auditor', 'x-jwt-claim-role': 'staff' },
      'openid in the identity header': { 'x-wx-openid': 'o-agent' },
      'valid user token plus a role header': { ...bearer(user), role: 'staff', 'x-role': 'staff' },
    };
    for (const [what, headers] of Object.entries(forgeries)) {
      for (const route of ['/by-role/users/7', '/by-list/users/7']) {
        const { body, mask } = await seen(await get(route, headers));
        assert.deepEqual(body, VIEWS['wx-user'], `${what} on ${route}`);
        assert.equal(mask, 'wx-user', `${what} on ${route}`);
      }
    }
    // Nothing upstream learned of the forged identities either.
    assert.ok(upstream.received.every((r) => r.headers['x-wx-openid'] === undefined || ['o-user', 'o-agent', 'o-auditor'].includes(String(r.headers['x-wx-openid']))));
  });

  test('no token, or a verified token without the claim or with another spelling of it, gets the default', async () => {
    const cases: Record<string, Record<string, string>> = {
      'no token': {},
      'no role claim': bearer(await backendToken({ openid: 'o-user' })),
      'role in another case': bearer(await backendToken({ openid: 'o-user', role: 'Staff' })),
      'role as a number': bearer(await backendToken({ openid: 'o-user', role: 1 })),
      'role in another claim': bearer(await backendToken({ openid: 'o-user', roles: 'staff' })),
    };
    for (const [what, headers] of Object.entries(cases)) {
      const { body, mask } = await seen(await get('/by-role/users/7', headers));
      assert.deepEqual(body, VIEWS['wx-user'], what);
      assert.equal(mask, 'wx-user', what);
    }
    const listed = await seen(await get('/by-role/users/7', bearer(await backendToken({ openid: 'o-user', role: ['reader', 'auditor', 'staff'] }))));
    assert.deepEqual(listed.body, VIEWS['staff-view'], 'a list claim: the first profiles entry it holds, in policy order');
  });

  test('a route with a plain mask names its one profile in the log', async () => {
    const agent = await backendToken({ openid: 'o-agent', role: 'staff' });
    const { body, mask } = await seen(await get('/plain/users/7', bearer(agent)));
    assert.deepEqual(body, VIEWS['wx-user']);
    assert.equal(mask, 'wx-user');
  });
});
