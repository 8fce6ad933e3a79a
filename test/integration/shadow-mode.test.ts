// Report mode end to end, one rule kind at a time: a route enforcing the rule beside one with the
// same rule in report mode. The same request the first refuses, the second lets through to the
// upstream (without a verified identity or verified-callback header it did not earn), and the
// would-be decision shows in wxgw_shadow_decisions_total, the access line and the log.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { VERIFIED_HEADER } from '../../gateway/guards/wechat-callback.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse, type RequestOptions } from '../helpers/https-client.js';
import { plainPush, randomEncodingAesKey, textMessage, type WechatAccount } from '../helpers/wechat-callback.js';
import { waitUntil } from '../helpers/wait.js';

const JWT_SECRET = 'backend-jwt-secret-0123456789abcdef-0123456789';
const account: WechatAccount = { appid: 'wx1234567890abcdef', token: 'tok3nForShadowTests', encodingAesKey: randomEncodingAesKey() };
const SECRET_SESSION_KEY = 'sk-9f8e7d6c5b4a39281706';
const SECRET_PHONE = '13812345678';
const PERSONAL = JSON.stringify({ data: { session_key: SECRET_SESSION_KEY, contact: `call ${SECRET_PHONE}`, name: 'Li' } });

function reasonOf(res: ClientResponse): string | undefined {
  try {
    return (JSON.parse(res.text) as { error?: { reason?: string } }).error?.reason;
  } catch {
    return undefined;
  }
}

function tokenFor(openid: string): Promise<string> {
  return new SignJWT({ openid })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('legacy')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

/** Two routes per rule kind: `<kind>-enforce` under /<kind>-e/ and `<kind>-report` under /<kind>-r/. */
function pair(kind: string, rule: string, report: string): string {
  return `  - { name: ${kind}-enforce, match: { path_prefix: /${kind}-e/ }, upstream: legacy, ${rule} }
  - { name: ${kind}-report, match: { path_prefix: /${kind}-r/ }, upstream: legacy, ${rule}, ${report} }
`;
}

describe('report mode, per rule kind', () => {
  let upstream: TestUpstream;
  let t: TestGateway;

  const send = (path: string, opts: RequestOptions = {}) => httpsRequest(t.port, t.ca, { ...opts, path });
  const reached = (prefix: string) => upstream.received.filter((r) => r.url.startsWith(prefix));
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${t.ctx.adminPort}/metrics`)).text();
  const shadowCount = async (route: string, rule: string, reason: string): Promise<number> => {
    const line = (await scrape()).split('\n').find((l) => l.startsWith(`wxgw_shadow_decisions_total{route="${route}",rule="${rule}",reason="${reason}"}`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  /** The access line of the answer with this request id. */
  const accessLine = (res: ClientResponse) =>
    waitUntil(() => t.logs.find((l) => l.msg === 'request' && l.request_id === res.headers['x-request-id']), `the access line of ${String(res.headers['x-request-id'])}`);

  /** The report-mode route passed what the enforcing one refused, and said what it would have done. */
  async function assertShadowed(res: ClientResponse, route: string, decision: string): Promise<void> {
    assert.equal(res.status, 200, res.text);
    const line = await accessLine(res);
    assert.deepEqual(line.shadow, [decision], JSON.stringify(line));
    const [rule, reason] = decision.split(':') as [string, string];
    assert.equal(await shadowCount(route, rule, reason), 1);
    await t.waitForLog((l) => l.route === route && l.rule === rule && l.reason === reason && String(l.msg).startsWith('report mode'), `the shadow log line of ${route}`);
  }

  before(async () => {
    upstream = await startUpstream((req, res, body) => {
      if (req.url!.startsWith('/mask-')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(PERSONAL);
        return;
      }
      if (req.method === 'OPTIONS') {
        // The backend's own CORS, which report mode leaves in force.
        res.writeHead(204, { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, POST' });
        res.end();
        return;
      }
      const text = JSON.stringify({ url: req.url, headers: req.headers, body: body.toString() });
      res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
      res.end(text);
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  admin: { listen: "127.0.0.1:${ctx.adminPort}" }
${ctx.tlsSection}
wechat:
  appid: ${account.appid}
  token: ${account.token}
identity:
  jwt: { secret: "${JWT_SECRET}", issuer: legacy }
mask_profiles:
  pii:
    drop: [session_key]
    detect: [cn_mobile, cn_idcard]
defaults:
  allow: any
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
${pair('allow', 'allow: [10.99.0.0/16]', 'report: [allow]')}${pair('deny', 'deny: [127.0.0.0/8]', 'report: [deny]')}${pair('cors', 'cors: { origins: ["https://app.example.com"] }', 'report: [cors]')}${pair('id', 'identity_required: true', 'report: [identity_required]')}${pair('rl', 'rate_limit: { key: ip, limit: 1, window: 60s }', 'report: [rate_limit]')}  - { name: rlmode-enforce, match: { path_prefix: /rlmode-e/ }, upstream: legacy, rate_limit: [{ key: ip, limit: 1, window: 60s }] }
  - { name: rlmode-report, match: { path_prefix: /rlmode-r/ }, upstream: legacy, rate_limit: [{ key: ip, limit: 1, window: 60s, mode: report }] }
${pair('cb', 'wechat_callback: {}', 'report: [callback]')}${pair('mask', 'mask: pii', 'report: [mask]')}  - { name: plain, match: { path_prefix: /plain/ }, upstream: legacy }
`,
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  test('allow: an address outside it is refused under enforce and let through under report', async () => {
    const refused = await send('/allow-e/x');
    assert.equal(refused.status, 403);
    assert.equal(reasonOf(refused), 'ip_not_allowed');
    assert.equal(reached('/allow-e/').length, 0);
    const passed = await send('/allow-r/x');
    assert.equal(reached('/allow-r/').length, 1);
    await assertShadowed(passed, 'allow-report', 'allow:ip_not_allowed');
  });

  test('deny: a denied address is refused under enforce and let through under report', async () => {
    assert.equal(reasonOf(await send('/deny-e/x')), 'ip_not_allowed');
    assert.equal(reached('/deny-e/').length, 0);
    const passed = await send('/deny-r/x');
    assert.equal(reached('/deny-r/').length, 1);
    await assertShadowed(passed, 'deny-report', 'deny:ip_not_allowed');
  });

  test('cors: a preflight from another origin is refused under enforce; under report the backend answers it, with its own CORS headers', async () => {
    const preflight = { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } };
    const refused = await send('/cors-e/x', preflight);
    assert.equal(refused.status, 403);
    assert.equal(reasonOf(refused), 'cors_origin_not_allowed');
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
    assert.equal(reached('/cors-e/').length, 0);

    const passed = await send('/cors-r/x', preflight);
    assert.equal(passed.status, 204);
    assert.equal(reached('/cors-r/').length, 1);
    assert.equal(passed.headers['access-control-allow-origin'], '*', 'the backend\'s own header, which enforce mode strips');
    const line = await accessLine(passed);
    assert.deepEqual(line.shadow, ['cors:cors_origin_not_allowed']);
    assert.equal(await shadowCount('cors-report', 'cors', 'cors_origin_not_allowed'), 1);

    // An allowed origin is no would-be refusal.
    const allowed = await send('/cors-r/y', { headers: { origin: 'https://app.example.com' } });
    assert.equal(allowed.status, 200);
    assert.equal((await accessLine(allowed)).shadow, undefined);
  });

  test('identity_required: an unverified request is refused under enforce; under report it passes with no identity header, never the one it sent', async () => {
    const forged = { headers: { 'x-wx-openid': 'o-forged-by-client' } };
    const refused = await send('/id-e/x', forged);
    assert.equal(refused.status, 401);
    assert.equal(reasonOf(refused), 'identity_required');
    assert.equal(reached('/id-e/').length, 0);

    const passed = await send('/id-r/x', forged);
    const [got] = reached('/id-r/x');
    assert.ok(got, 'the upstream received it');
    assert.equal(got.headers['x-wx-openid'], undefined, 'a client-supplied openid never reaches the upstream');
    await assertShadowed(passed, 'id-report', 'identity_required:identity_required');

    const bad = await send('/id-r/bad', { headers: { authorization: 'Bearer not.a.token', 'x-wx-openid': 'o-forged-by-client' } });
    assert.equal(bad.status, 200);
    assert.equal(reached('/id-r/bad')[0]!.headers['x-wx-openid'], undefined);
    assert.deepEqual((await accessLine(bad)).shadow, ['identity_required:token_invalid']);

    // A verified token still gives the verified openid: the rule, not identity, is in report mode.
    const verified = await send('/id-r/ok', { headers: { authorization: `Bearer ${await tokenFor('o-real')}` } });
    assert.equal(verified.status, 200);
    assert.equal(reached('/id-r/ok')[0]!.headers['x-wx-openid'], 'o-real');
    assert.equal((await accessLine(verified)).shadow, undefined);
  });

  test('rate_limit (report: [rate_limit]): over the limit is refused under enforce; under report it is counted and passes, without RateLimit headers', async () => {
    assert.equal((await send('/rl-e/1')).status, 200);
    const refused = await send('/rl-e/2');
    assert.equal(refused.status, 429);
    assert.equal(reached('/rl-e/').length, 1);

    const first = await send('/rl-r/1');
    assert.equal(first.status, 200);
    assert.equal((await accessLine(first)).shadow, undefined, 'within the limit: nothing to report');
    assert.equal(first.headers['ratelimit-limit'], undefined);
    const second = await send('/rl-r/2');
    assert.equal(reached('/rl-r/').length, 2);
    assert.equal(second.headers['retry-after'], undefined);
    await assertShadowed(second, 'rl-report', 'rate_limit:rate_limited');
  });

  test('rate_limit (mode: report on the limit): the same', async () => {
    await send('/rlmode-e/1');
    assert.equal((await send('/rlmode-e/2')).status, 429);
    await send('/rlmode-r/1');
    const second = await send('/rlmode-r/2');
    assert.equal(reached('/rlmode-r/').length, 2);
    await assertShadowed(second, 'rlmode-report', 'rate_limit:rate_limited');
  });

  test('callback: a forged push is refused under enforce; under report the backend gets the bytes as sent, never marked verified', async () => {
    const push = plainPush({ ...account, token: 'not-the-token' }, textMessage(0));
    const path = (prefix: string, q: URLSearchParams) => `/${prefix}/push?${q.toString()}`;
    const opts = { method: 'POST', headers: { ...push.headers, [VERIFIED_HEADER]: '1' }, body: push.body };
    const refused = await send(path('cb-e', push.query), opts);
    assert.equal(refused.status, 403);
    assert.equal(reasonOf(refused), 'signature_invalid');
    assert.equal(reached('/cb-e/').length, 0);

    const passed = await send(path('cb-r', push.query), opts);
    const [got] = reached('/cb-r/push');
    assert.ok(got, 'the upstream received it');
    assert.equal(got.headers[VERIFIED_HEADER], undefined, 'a client-supplied verification header never passes');
    assert.deepEqual(got.body, push.body);
    await assertShadowed(passed, 'cb-report', 'callback:signature_invalid');

    // A genuine push in report mode is still not marked verified: report mode never verifies.
    const genuine = plainPush(account, textMessage(0));
    const ok = await send(path('cb-r', genuine.query).replace('/push', '/genuine'), { method: 'POST', headers: genuine.headers, body: genuine.body });
    assert.equal(ok.status, 200);
    const [fine] = reached('/cb-r/genuine');
    assert.ok(fine);
    assert.equal(fine.headers[VERIFIED_HEADER], undefined);
    assert.equal((await accessLine(ok)).shadow, undefined);
  });

  test('mask: enforced, the answer is masked; under report it passes unmasked, and the log names the keys and detectors, never the values', async () => {
    const masked = await send('/mask-e/me');
    assert.equal(masked.status, 200);
    assert.ok(!masked.text.includes(SECRET_SESSION_KEY) && !masked.text.includes(SECRET_PHONE), masked.text);

    const passed = await send('/mask-r/me');
    assert.equal(passed.status, 200);
    assert.equal(passed.text, PERSONAL, 'sent exactly as the upstream gave it');
    const line = await accessLine(passed);
    assert.deepEqual(line.shadow, ['mask:masked']);
    assert.equal(await shadowCount('mask-report', 'mask', 'masked'), 1);
    const report = await t.waitForLog((l) => l.route === 'mask-report' && l.rule === 'mask', 'the mask report line');
    assert.deepEqual(report.keys, ['session_key']);
    assert.deepEqual(report.detectors, ['cn_mobile']);
    const logs = t.logText();
    assert.ok(!logs.includes(SECRET_SESSION_KEY), 'the session key value is in no log line');
    assert.ok(!logs.includes(SECRET_PHONE), 'the phone number is in no log line');
  });

  test('the start line lists the routes with rules in report mode', () => {
    const start = t.logs.find((l) => l.msg === 'wxgw listening');
    const listed = start?.report_mode as string[] | undefined;
    assert.ok(listed?.includes('allow-report: allow'), JSON.stringify(start));
    assert.ok(listed?.includes('rlmode-report: rate_limit'));
    assert.ok(!listed?.some((l) => l.startsWith('plain') || l.includes('-enforce')));
  });

  test('a route with nothing in report mode has no shadow field and no shadow metric', async () => {
    const res = await send('/plain/x');
    assert.equal(res.status, 200);
    assert.equal((await accessLine(res)).shadow, undefined);
    assert.ok(!(await scrape()).includes('wxgw_shadow_decisions_total{route="plain"'));
  });
});
