// Header rules through a real HTTPS gateway and a real upstream: `request_headers` shape what the
// upstream receives, `response_headers` what the client receives, a route's rules merge over the
// defaults' by header name, masking still removes what a profile hides after the rules ran, and
// `wxgw validate` refuses rules on the gateway's own headers at their key and line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { policyContext, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest } from '../helpers/https-client.js';
import { repoRoot } from '../helpers/process.js';

describe('header rules', () => {
  let upstream: TestUpstream;
  let t: TestGateway;

  const get = (path: string, headers: Record<string, string> = {}) => httpsRequest(t.port, t.ca, { path, headers });
  const receivedBy = (id: unknown) => {
    const found = upstream.received.find((r) => r.headers['x-request-id'] === id);
    assert.ok(found, `the upstream received request ${String(id)}`);
    return found.headers;
  };

  before(async () => {
    upstream = await startUpstream((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'public, max-age=600');
      res.setHeader('x-backend-host', 'db-7.internal');
      res.setHeader('set-cookie', ['backend=1; Path=/']);
      res.end(JSON.stringify({ phone: '13812345678', ok: true }));
    });
    t = await startTestGateway(
      (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
mask_profiles:
  wx-user:
    partial: { phone: { keep_start: 3, keep_end: 4 } }
    headers: { drop: [x-debug-user] }
defaults:
  allow: any
  request_headers:
    set: { X-Api-Version: "2" }
    add: { X-Via: wxgw-default }
    remove: [X-Debug]
  response_headers:
    set: { Cache-Control: no-store }
    remove: [X-Backend-Host]
upstreams:
  legacy: { url: "${upstream.url}", timeout: 5s }
routes:
  - name: defaults-only
    match: { path_prefix: /plain/ }
    upstream: legacy
  - name: ruled
    match: { path_prefix: /ruled/ }
    upstream: legacy
    request_headers:
      set: { X-Via: route }
      add: { X-Tenant: acme }
      remove: [X-Api-Version]
    response_headers:
      add: { Set-Cookie: "gw=1; Path=/; Secure; HttpOnly", X-Served-By: wxgw }
      remove: [Cache-Control]
  - name: masked
    match: { path_prefix: /masked/ }
    upstream: legacy
    mask: wx-user
    response_headers:
      set: { X-Debug-User: "13812345678", X-Phone: "13912345678", X-Kept: kept }
`,
    );
  });

  after(async () => {
    await t?.close();
    await upstream?.close();
  });

  test('defaults set, add and remove both ways', async () => {
    const res = await get('/plain/x', { 'x-api-version': '1', 'x-via': 'client', 'x-debug': 'on', 'x-other': 'kept' });
    assert.equal(res.status, 200, res.text);
    const sent = receivedBy(res.headers['x-request-id']);
    assert.equal(sent['x-api-version'], '2', 'set replaces the client value');
    assert.equal(sent['x-via'], 'client, wxgw-default', 'add keeps the client value');
    assert.equal(sent['x-debug'], undefined, 'removed');
    assert.equal(sent['x-other'], 'kept');
    assert.equal(res.headers['cache-control'], 'no-store', "set replaces the upstream's value");
    assert.equal(res.headers['x-backend-host'], undefined, 'removed');
    assert.deepEqual(res.headers['set-cookie'], ['backend=1; Path=/']);
  });

  test("a route's rules replace the defaults' for the names it mentions and keep the others", async () => {
    const res = await get('/ruled/x', { 'x-api-version': '1', 'x-via': 'client', 'x-debug': 'on' });
    assert.equal(res.status, 200, res.text);
    const sent = receivedBy(res.headers['x-request-id']);
    assert.equal(sent['x-via'], 'route', "the route's set replaces the default add");
    assert.equal(sent['x-api-version'], undefined, "the route's remove cancels the default set");
    assert.equal(sent['x-tenant'], 'acme');
    assert.equal(sent['x-debug'], undefined, 'the default remove still applies');
    assert.equal(res.headers['cache-control'], undefined, "the route's remove cancels the default set");
    assert.equal(res.headers['x-backend-host'], undefined, 'the default remove still applies');
    assert.deepEqual(res.headers['set-cookie'], ['backend=1; Path=/', 'gw=1; Path=/; Secure; HttpOnly']);
    assert.equal(res.headers['x-served-by'], 'wxgw');
    // The gateway's own headers are untouched by any rule.
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(typeof res.headers['x-request-id'], 'string');
  });

  test('masking still applies after the rules: a rule cannot put back what the profile hides', async () => {
    const res = await get('/masked/x');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(JSON.parse(res.text), { phone: '138****5678', ok: true });
    assert.equal(res.headers['x-debug-user'], undefined, 'dropped by the profile after the rule set it');
    assert.equal(res.headers['x-phone'], '139****5678', "the profile's key rule masks a header the rule set");
    assert.equal(res.headers['x-kept'], 'kept');
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test('validate refuses rules on gateway-owned headers, naming file, line and key', async () => {
    const ctx = await policyContext();
    const file = join(ctx.dir, 'rules.yaml');
    writeFileSync(
      file,
      `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
${ctx.tlsSection}
upstreams:
  legacy: { url: "http://127.0.0.1:9" }
defaults:
  allow: any
  response_headers: { set: { Strict-Transport-Security: max-age=0 } }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
    request_headers:
      set: { X-WX-OpenID: o-admin }
      remove: [X-Forwarded-For]
`,
    );
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin/wxgw.js'), 'validate', '--config', file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /rules\.yaml:12:\d+ +defaults\.response_headers\.set\.Strict-Transport-Security +`Strict-Transport-Security` is the gateway's own header/);
    assert.match(r.stderr, /rules\.yaml:18:\d+ +routes\[0\]\.request_headers\.set\.X-WX-OpenID +`X-WX-OpenID` is the gateway's own header/);
    assert.match(r.stderr, /rules\.yaml:19:\d+ +routes\[0\]\.request_headers\.remove\[0\] +`X-Forwarded-For` is the gateway's own header/);
  });
});
