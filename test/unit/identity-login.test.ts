import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createLogin, type LoginDeps, type LoginUpstreamFailure, type LoginUpstreamRequest, type LoginUpstreamResponse } from '../../gateway/identity/login.js';
import { SessionSigner } from '../../gateway/identity/session-token.js';
import { compileIdentity } from '../../gateway/identity/verify.js';
import { createLogger } from '../../gateway/observability/logger.js';
import type { IdentityConfig, WechatConfig } from '../../gateway/types/policy.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import { StoreUnavailableError, type Store } from '../../gateway/store/store.js';
import { startFakeWechat, type FakeWechat } from '../helpers/fake-wechat.js';
import { freePort } from '../helpers/ports.js';

const pos = { file: 'policy.yaml', line: 1, col: 1, path: 'identity' };
const SESSION = { signing_key: 'session-signing-key-that-is-long-enough-0123', ttl: 3_600_000, issuer: 'wxgw' };

interface Env {
  fake: FakeWechat;
  store: Store;
  signer: SessionSigner;
  logs: string[];
  login: ReturnType<typeof createLogin>;
  identity: IdentityConfig;
  /** Asserts that no secret this test handled shows up in any log line. */
  assertLogsClean(extra?: string[]): void;
}

interface EnvOptions {
  store?: Store;
  wechat?: Partial<WechatConfig>;
  upstream?: boolean;
  callUpstream?: LoginDeps['callUpstream'];
  maskJson?: LoginDeps['maskJson'];
  fake?: FakeWechat;
}

async function setup(t: TestContext, opts: EnvOptions = {}): Promise<Env> {
  const fake = opts.fake ?? (await startFakeWechat({ prefix: '/wxapi' }));
  if (!opts.fake) t.after(() => fake.close());
  const store = opts.store ?? new MemoryStore();
  t.after(() => store.close());
  const signer = await SessionSigner.create(SESSION);
  const logs: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(line) } });
  const wechat: WechatConfig = { appid: fake.appid, app_secret: fake.secret, api_base: new URL(fake.url), api_timeout: 2000, pos, ...opts.wechat };
  const identity: IdentityConfig = {
    login: { path: '/wx/login', rate_limits: [], pos, ...(opts.upstream ? { upstream: { upstream: 'api', path: '/api/users/login' } } : {}) },
    session: SESSION,
    token: { header: 'authorization' },
    upstream_header: 'x-wx-openid',
    unionid_header: 'x-wx-unionid',
    pos,
  };
  const login = createLogin({ identity, wechat, store, signer, logger, callUpstream: opts.callUpstream, maskJson: opts.maskJson });
  t.after(() => login.close());
  return {
    fake,
    store,
    signer,
    logs,
    login,
    identity,
    assertLogsClean(extra = []) {
      const text = logs.join('');
      const sessionKeys = [...fake.codes.values()].flatMap((a) => ('session_key' in a ? [a.session_key] : []));
      for (const secret of [fake.secret, SESSION.signing_key, ...sessionKeys, ...fake.codes.keys(), ...extra]) {
        assert.ok(!text.includes(secret), `the logs contain ${secret}`);
      }
      // No answer or session record from WeChat is logged as an object.
      assert.ok(!text.includes('"session_key":'), 'the logs carry a session_key field');
    },
  };
}

const body = (value: unknown) => Buffer.from(JSON.stringify(value));
const ctx = { requestId: 'req-1' };
const CODE = '0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d';

test('a good code yields a session token; session_key is kept in the store and never answered', async (t) => {
  const env = await setup(t);
  env.fake.codes.set(CODE, { openid: 'o-user-1', session_key: 'SeSsIoNkEy+secret/value==', unionid: 'u-union-1' });
  const result = await env.login.handle(body({ code: CODE }), ctx);
  assert.equal(result.kind, 'ok');
  assert.ok(result.kind === 'ok');
  assert.deepEqual(Object.keys(result.body).sort(), ['expires_in', 'openid', 'token']);
  assert.equal(result.body.openid, 'o-user-1');
  assert.equal(result.body.expires_in, 3600);
  const text = JSON.stringify(result.body);
  assert.ok(!text.includes('SeSsIoNkEy') && !text.includes('u-union-1'));

  const { openid, sid } = await env.signer.verify(result.body.token as string);
  assert.equal(openid, 'o-user-1');
  assert.match(sid, /^[A-Za-z0-9_-]{22}$/);
  const stored = JSON.parse((await env.store.get(`session:${sid}`))!) as Record<string, unknown>;
  assert.deepEqual(stored, { session_key: 'SeSsIoNkEy+secret/value==', openid: 'o-user-1', unionid: 'u-union-1' });

  // The base URL's path prefix is kept, and WeChat gets exactly the protocol's parameters.
  assert.deepEqual(env.fake.calls, [
    { path: '/wxapi/sns/jscode2session', query: { appid: env.fake.appid, secret: env.fake.secret, js_code: CODE, grant_type: 'authorization_code' } },
  ]);
  const verifier = await compileIdentity(env.identity, { signer: env.signer });
  assert.deepEqual(await verifier.verify({ authorization: `Bearer ${result.body.token as string}` }), { kind: 'verified', openid: 'o-user-1' });
  env.assertLogsClean();
});

test("WeChat's errcodes map to reasons, and its raw answers never reach the client", async (t) => {
  const env = await setup(t);
  const cases: [string, Parameters<FakeWechat['codes']['set']>[1] | undefined, string][] = [
    ['unknown-code-000000000000000000001', undefined, 'wx_code_invalid'],
    ['used-code-00000000000000000000001', { errcode: 40163, errmsg: 'code been used, rid: x' }, 'wx_code_used'],
    ['limited-code-000000000000000000001', { errcode: 45011, errmsg: 'api minute-quota reach limit' }, 'wx_rate_limited'],
    ['busy-code-00000000000000000000001', { errcode: -1, errmsg: 'system error' }, 'wx_unavailable'],
    ['risky-code-0000000000000000000001', { errcode: 40226, errmsg: 'invalid user' }, 'wx_user_blocked'],
    ['html-code-00000000000000000000001', { raw: '<html>bad gateway</html>', status: 502 }, 'wx_error'],
    ['text-code-00000000000000000000001', { raw: 'not json at all' }, 'wx_error'],
    ['empty-code-0000000000000000000001', { raw: '{}' }, 'wx_error'],
    ['array-code-0000000000000000000001', { raw: '[1,2]' }, 'wx_error'],
  ];
  for (const [code, answer, reason] of cases) {
    if (answer) env.fake.codes.set(code, answer);
    const result = await env.login.handle(body({ code }), ctx);
    const headers = reason === 'wx_rate_limited' ? { headers: { 'retry-after': '60' } } : {};
    assert.deepEqual(result, { kind: 'refused', reason, ...headers }, code);
  }
  assert.equal(env.fake.calls.length, cases.length);
  assert.ok(!env.logs.some((l) => l.includes('bad gateway') || l.includes('not json at all')));
  env.assertLogsClean(['unknown-code-000000000000000000001']);
});

test('a wrong app secret is wx_error for the client and an error for ops naming the setting', async (t) => {
  const real = await startFakeWechat();
  t.after(() => real.close());
  const env = await setup(t, { fake: real, wechat: { app_secret: 'the-wrong-secret-0123456789abcdef' } });
  env.fake.codes.set(CODE, { openid: 'o', session_key: 'k-0123456789abcdef' });
  assert.deepEqual(await env.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'wx_error' });
  const errors = env.logs.map((l) => JSON.parse(l) as { level: string; msg: string; errcode?: number }).filter((l) => l.level === 'error' || l.level === 'fatal');
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.errcode, 40125);
  assert.match(errors[0]!.msg, /wechat\.appid and wechat\.app_secret/);
  env.assertLogsClean(['the-wrong-secret-0123456789abcdef']);
});

test('a slow WeChat is wx_timeout within api_timeout; an unreachable one is wx_error', async (t) => {
  const env = await setup(t, { wechat: { api_timeout: 150 } });
  env.fake.codes.set(CODE, { openid: 'o', session_key: 'k-0123456789abcdef' });
  // WeChat never answers while held: only api_timeout can end the exchange.
  env.fake.hold();
  t.after(() => env.fake.release());
  assert.deepEqual(await env.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'wx_timeout' });
  assert.equal(env.fake.calls.length, 1, 'the request did reach WeChat');

  const port = await freePort();
  const down = await setup(t, { wechat: { api_base: new URL(`http://127.0.0.1:${port}/wxapi`) } });
  assert.deepEqual(await down.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'wx_error' });
  env.assertLogsClean();
  down.assertLogsClean([CODE]);
});

test('20 concurrent logins with one code make one WeChat call and get one answer; a reuse is wx_code_used', async (t) => {
  const env = await setup(t);
  env.fake.codes.set(CODE, { openid: 'o-many', session_key: 'k-0123456789abcdef' });
  // Held until all 20 have been handed over, which happens before any I/O: they all overlap.
  env.fake.hold();
  const pending = Array.from({ length: 20 }, (_, i) => env.login.handle(body({ code: CODE }), { requestId: `r${i}` }));
  await env.fake.waitForCalls(1);
  env.fake.release();
  const results = await Promise.all(pending);
  assert.equal(env.fake.calls.length, 1);
  assert.equal(results[0]!.kind, 'ok');
  for (const r of results) assert.deepEqual(r, results[0]);

  assert.deepEqual(await env.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'wx_code_used' });
  assert.equal(env.fake.calls.length, 1);
  env.assertLogsClean();
});

test('instances sharing a store exchange a code once, during and after the first exchange', async (t) => {
  const store = new MemoryStore();
  const a = await setup(t, { store });
  const b = await setup(t, { store, fake: a.fake });
  a.fake.codes.set(CODE, { openid: 'o-a', session_key: 'k-0123456789abcdef' });
  a.fake.hold();
  const first = a.login.handle(body({ code: CODE }), ctx);
  // a has claimed the code once its call reaches WeChat; b comes while that exchange is held.
  await a.fake.waitForCalls(1);
  assert.deepEqual(await b.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'wx_code_used' });
  a.fake.release();
  assert.equal((await first).kind, 'ok');
  assert.deepEqual(await b.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'wx_code_used' });
  assert.equal(a.fake.calls.length, 1);
});

test('a login body must be a JSON object with a string code; nothing else reaches WeChat', async (t) => {
  const env = await setup(t);
  for (const raw of ['', 'not json', '[]', 'null', '"code"', '{}', '{"code":42}', '{"code":""}', '{"code":"has space"}', JSON.stringify({ code: 'x'.repeat(200) })]) {
    assert.deepEqual(await env.login.handle(Buffer.from(raw), ctx), { kind: 'refused', reason: 'login_invalid' }, raw);
  }
  assert.equal(env.fake.calls.length, 0);
});

test('without the store a login is refused as store_unavailable', async (t) => {
  const memory = new MemoryStore();
  let failClaim = true;
  const flaky: Store = {
    kind: 'memory',
    connected: false,
    hit: (rules) => memory.hit(rules),
    claim: (key, ttl) => (failClaim ? Promise.reject(new StoreUnavailableError('redis down')) : memory.claim(key, ttl)),
    put: () => Promise.reject(new StoreUnavailableError('redis down')),
    get: (key) => memory.get(key),
    release: (key, holder) => memory.release(key, holder),
    close: () => memory.close(),
  };
  const env = await setup(t, { store: flaky });
  env.fake.codes.set(CODE, { openid: 'o', session_key: 'k-0123456789abcdef' });
  assert.deepEqual(await env.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'store_unavailable' });
  assert.equal(env.fake.calls.length, 0, 'WeChat was called without a claim on the code');
  failClaim = false;
  assert.deepEqual(await env.login.handle(body({ code: CODE }), ctx), { kind: 'refused', reason: 'store_unavailable' });
  env.assertLogsClean();
});

test('with login.upstream the backend hears of the user through headers and its masked answer is included', async (t) => {
  const sent: LoginUpstreamRequest[] = [];
  const callUpstream = async (req: LoginUpstreamRequest): Promise<LoginUpstreamResponse> => {
    sent.push(req);
    return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: body({ id: 7, phone: '13812345678' }) };
  };
  const maskJson = (v: unknown) => ({ ...(v as Record<string, unknown>), phone: '138****5678' });
  const env = await setup(t, { upstream: true, callUpstream, maskJson });
  env.fake.codes.set(CODE, { openid: 'o-up', session_key: 'k-0123456789abcdef', unionid: 'u-up' });
  env.fake.codes.set(`${CODE}-2`, { openid: 'o-solo', session_key: 'k2-0123456789abcdef' });

  const result = await env.login.handle(body({ code: CODE, invite: 'friend-1' }), { requestId: 'req-up' });
  assert.ok(result.kind === 'ok');
  assert.deepEqual(result.body.user, { id: 7, phone: '138****5678' });
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.path, '/api/users/login');
  assert.deepEqual(sent[0]!.headers, { 'content-type': 'application/json', 'x-request-id': 'req-up', 'x-wx-openid': 'o-up', 'x-wx-unionid': 'u-up' });
  assert.deepEqual(JSON.parse(sent[0]!.body.toString()), { invite: 'friend-1' });

  const solo = await env.login.handle(body({ code: `${CODE}-2` }), ctx);
  assert.ok(solo.kind === 'ok');
  assert.equal(sent[1]!.headers['x-wx-unionid'], undefined);
  assert.deepEqual(JSON.parse(sent[1]!.body.toString()), {});
  env.assertLogsClean();
});

test('an upstream that fails, refuses or answers non-JSON fails the login', async (t) => {
  let respond: () => Promise<LoginUpstreamResponse | LoginUpstreamFailure> = async () => ({ statusCode: 200, headers: {}, body: Buffer.alloc(0) });
  let mask: (v: unknown) => unknown = (v) => v;
  const env = await setup(t, { upstream: true, callUpstream: () => respond(), maskJson: (v) => mask(v) });
  let n = 0;
  const attempt = async () => {
    const code = `${CODE}-${n++}`;
    env.fake.codes.set(code, { openid: 'o', session_key: 'k-0123456789abcdef' });
    return env.login.handle(body({ code }), ctx);
  };
  const ok = await attempt();
  assert.ok(ok.kind === 'ok');
  assert.equal(ok.body.user, null);

  respond = async () => ({ statusCode: 500, headers: {}, body: body({ error: 'boom' }) });
  assert.deepEqual(await attempt(), { kind: 'refused', reason: 'upstream_unavailable', message: 'the upstream refused the login (HTTP 500)' });
  respond = async () => ({ statusCode: 200, headers: {}, body: Buffer.from('<html>') });
  assert.equal(((await attempt()) as { reason: string }).reason, 'upstream_unavailable');
  respond = async () => ({ failed: 'upstream_unavailable' });
  assert.equal(((await attempt()) as { reason: string }).reason, 'upstream_unavailable');
  respond = async () => ({ failed: 'upstream_timeout' });
  assert.equal(((await attempt()) as { reason: string }).reason, 'upstream_timeout');
  respond = async () => ({ statusCode: 200, headers: {}, body: body({ phone: '13812345678' }) });
  mask = () => {
    throw new Error('cannot mask');
  };
  assert.equal(((await attempt()) as { reason: string }).reason, 'mask_failed');
  env.assertLogsClean();
});

test('login.upstream without callUpstream is a wiring error caught at creation', async (t) => {
  await assert.rejects(setup(t, { upstream: true }), /callUpstream/);
});
