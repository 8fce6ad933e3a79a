// `request_headers` and `response_headers`: route rules merged over defaults by header name,
// compiled into the request and response header plans, and refused by `validate` wherever they
// name a header the gateway owns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileHeaderRules, compileRequestHeaders, securityHeaders, stripWith, type ResponsePlan } from '../../gateway/guards/header-plan.js';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardContext } from '../../gateway/proxy/forwarding-headers.js';
import type { HeaderRulesConfig, HeaderNamePolicy } from '../../gateway/types/policy.js';
import { accept, reject } from '../fixtures/policy/harness.js';

const STRIP: ReadonlySet<string> = new Set(['server', 'x-powered-by']);
const FIXED = Object.entries(securityHeaders({ max_age: 600, include_subdomains: false, preload: false }));

function context(opts: { request?: HeaderRulesConfig; response?: HeaderRulesConfig; underscores?: HeaderNamePolicy; added?: Record<string, string> }): ForwardContext {
  const responseRules = compileHeaderRules(opts.response, 'response');
  const requestRules = compileHeaderRules(opts.request, 'request');
  const response: ResponsePlan = { strip: stripWith(STRIP, responseRules), ...(responseRules && { rules: responseRules }), fixed: FIXED, jsonCharset: false, cors: undefined };
  return {
    id: 'req-1',
    address: { client: '1.2.3.4', peer: '1.2.3.4', peerTrusted: false },
    hasBody: false,
    response,
    ...(requestRules && { requestRules }),
    allowedOrigin: undefined,
    reserved: compileRequestHeaders({ underscores: opts.underscores ?? 'drop', owned: ['x-wx-openid'], trusted: [], read: [] }),
    added: opts.added,
    answerAdded: undefined,
    sendTimeout: 60_000,
  };
}

const rules = (r: Partial<HeaderRulesConfig>): HeaderRulesConfig => ({ set: [], add: [], remove: [], ...r });

test('a route without rules compiles to nothing: the shared strip set, no rules to look at', () => {
  assert.equal(compileHeaderRules(undefined, 'request'), undefined);
  assert.equal(compileHeaderRules(rules({}), 'response'), undefined);
  assert.equal(stripWith(STRIP, undefined), STRIP, 'the same Set object every rule-less route shares');
  const set = compileHeaderRules(rules({ set: [{ name: 'cache-control', value: 'no-store' }] }), 'response');
  assert.equal(stripWith(STRIP, set) === STRIP, false);
  assert.deepEqual([...stripWith(STRIP, set)], ['server', 'x-powered-by', 'cache-control']);
});

test('request rules: set replaces every spelling of the client header, add keeps it, remove drops every spelling', () => {
  const ctx = context({
    underscores: 'allow',
    request: rules({
      set: [{ name: 'x-api-version', value: '2' }],
      add: [{ name: 'x-tag', value: 'wxgw' }, { name: 'x-new', value: 'n' }],
      remove: ['x-debug'],
    }),
    added: { 'x-wx-openid': 'o-verified' },
  });
  const out = upstreamRequestHeaders(
    { host: 'api.example.com', 'x-api-version': '1', x_api_version: '0', 'x-tag': 'client', 'x-debug': 'on', 'x.debug': 'on', accept: 'application/json' },
    ctx,
  );
  assert.equal(out['x-api-version'], '2');
  assert.equal(out['x_api_version'], undefined, 'a folded spelling of a set header would reach a CGI backend as the same one');
  assert.deepEqual(out['x-tag'], ['client', 'wxgw']);
  assert.equal(out['x-new'], 'n');
  assert.equal(out['x-debug'], undefined);
  assert.equal(out['x.debug'], undefined);
  assert.equal(out['accept'], 'application/json');
  assert.equal(out['x-wx-openid'], 'o-verified');
  assert.equal(out['x-request-id'], 'req-1');
});

test('response rules: set replaces, add appends, remove drops; the gateway headers stay its own', () => {
  const ctx = context({
    response: rules({
      set: [{ name: 'cache-control', value: 'no-store' }],
      add: [{ name: 'set-cookie', value: 'gw=1; Secure; HttpOnly' }, { name: 'x-served-by', value: 'wxgw' }],
      remove: ['x-backend-host'],
    }),
  });
  const out = clientResponseHeaders(
    {
      'content-type': 'application/json',
      'cache-control': 'public, max-age=600',
      'set-cookie': ['a=1'],
      'x-backend-host': 'db-7.internal',
      server: 'Apache',
      'strict-transport-security': 'max-age=0',
    },
    ctx,
  );
  assert.deepEqual(out, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'set-cookie': ['a=1', 'gw=1; Secure; HttpOnly'],
    'x-served-by': 'wxgw',
    'strict-transport-security': 'max-age=600',
    'x-content-type-options': 'nosniff',
    'x-request-id': 'req-1',
  });
});

// Lines 7-9 `extra`, 16-18 route pay, whose `route` lines start at 19; then `defaults:` and its own lines.
const POLICY = (route: string, defaults = '', extra = '# no identity\n#\n#') => `version: 1
server:
  https: { listen: "0.0.0.0:8443" }
tls:
  certificates:
    - { cert: ../certs/fullchain.pem, key: ../certs/privkey.pem }
${extra}
upstreams:
  legacy: { url: "http://127.0.0.1:9000" }
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: legacy
  - name: pay
    match: { path_prefix: /pay/ }
    upstream: legacy
${route}
defaults:
  allow: any
${defaults}`;

test('route rules merge over defaults by header name: the route decides every name it mentions', async () => {
  const { config } = await accept(
    POLICY(
      [
        '    request_headers: { set: { X-Tag: route }, remove: [X-Api-Version] }',
        '    response_headers: { add: { Cache-Control: private } }',
      ].join('\n'),
      [
        '  request_headers: { set: { X-Api-Version: "2", X-Env: prod }, add: { X-Tag: default }, remove: [X-Debug] }',
        '  response_headers: { set: { Cache-Control: no-store, X-Frame-Options: DENY } }',
      ].join('\n'),
    ),
  );
  const api = config.routes.find((r) => r.name === 'api')!;
  const pay = config.routes.find((r) => r.name === 'pay')!;
  assert.deepEqual(api.request_headers, {
    set: [{ name: 'x-api-version', value: '2' }, { name: 'x-env', value: 'prod' }],
    add: [{ name: 'x-tag', value: 'default' }],
    remove: ['x-debug'],
  });
  assert.deepEqual(api.response_headers, { set: [{ name: 'cache-control', value: 'no-store' }, { name: 'x-frame-options', value: 'DENY' }], add: [], remove: [] });
  // The route's X-Tag set replaces the default add; its X-Api-Version remove cancels the default set.
  assert.deepEqual(pay.request_headers, {
    set: [{ name: 'x-env', value: 'prod' }, { name: 'x-tag', value: 'route' }],
    add: [],
    remove: ['x-debug', 'x-api-version'],
  });
  assert.deepEqual(pay.response_headers, { set: [{ name: 'x-frame-options', value: 'DENY' }], add: [{ name: 'cache-control', value: 'private' }], remove: [] });

  const plain = await accept(POLICY(''));
  assert.equal(plain.config.routes[0]!.request_headers, undefined);
  assert.equal(plain.config.routes[0]!.response_headers, undefined);
});

async function problems(text: string, env?: Record<string, string>): Promise<string[]> {
  return (await reject(text, env)).filter((d) => d.severity === 'error').map((d) => `${d.line} ${d.path}: ${d.message}`);
}

test('validate refuses request rules on gateway-owned headers, any spelling, naming key and line', async () => {
  const found = await problems(
    POLICY(
      [
        '    request_headers:',
        '      set: { X-WX-OpenID: o-admin, X_Forwarded_For: 10.0.0.1, Host: internal, X-User-Id: "7" }',
        '      add: { X-Real-IP: 127.0.0.1, X-WX-Callback-Verified: "1", Content-Length: "0" }',
        '      remove: [X-Request-Id, transfer-encoding, Forwarded, x.wx.unionid]',
      ].join('\n'),
      '',
      'identity:\n  jwt: { secret: "' + 'j'.repeat(40) + '" }\n  upstream_header: X-User-Id',
    ),
  );
  const owned = (line: number, path: string, name: string, why: string, verb: string) =>
    `${line} routes[1].request_headers.${path}: \`${name}\` is the gateway's own header (${why}): a rule cannot ${verb} it`;
  const STATED = 'stated by the gateway alone (a verified identity or callback)';
  assert.deepEqual(found, [
    owned(20, 'set.X-WX-OpenID', 'X-WX-OpenID', STATED, 'set'),
    owned(20, 'set.X_Forwarded_For', 'X_Forwarded_For', 'stated by the gateway on every forwarded request', 'set'),
    owned(20, 'set.Host', 'Host', "hop-by-hop or the upstream connection's own", 'set'),
    owned(20, 'set.X-User-Id', 'X-User-Id', STATED, 'set'),
    owned(21, 'add.X-Real-IP', 'X-Real-IP', 'a claim about the connection that only a trusted proxy may make', 'add to'),
    owned(21, 'add.X-WX-Callback-Verified', 'X-WX-Callback-Verified', STATED, 'add to'),
    owned(21, 'add.Content-Length', 'Content-Length', 'read or set by the gateway itself', 'add to'),
    owned(22, 'remove[0]', 'X-Request-Id', 'stated by the gateway on every forwarded request', 'remove'),
    owned(22, 'remove[1]', 'transfer-encoding', "hop-by-hop or the upstream connection's own", 'remove'),
    owned(22, 'remove[2]', 'Forwarded', 'a claim about the connection that only a trusted proxy may make', 'remove'),
    owned(22, 'remove[3]', 'x.wx.unionid', STATED, 'remove'),
  ]);
});

test('validate refuses response rules on the headers the gateway states on answers, in defaults too', async () => {
  const found = await problems(
    POLICY(
      '    response_headers: { set: { Strict-Transport-Security: max-age=0, Access-Control-Allow-Origin: "*", Content-Type: text/plain } }',
      '  response_headers: { add: { RateLimit-Remaining: "99", Vary: Cookie }, remove: [X-Request-Id, Connection, X-Content-Type-Options] }',
    ),
  );
  assert.deepEqual(
    found.map((f) => f.replace(/ \(.*\): a rule/, ': a rule')).sort(),
    [
      "22 defaults.response_headers.add.RateLimit-Remaining: `RateLimit-Remaining` is the gateway's own header: a rule cannot add to it",
      "22 defaults.response_headers.add.Vary: `Vary` is the gateway's own header: a rule cannot add to it",
      "22 defaults.response_headers.remove[0]: `X-Request-Id` is the gateway's own header: a rule cannot remove it",
      "22 defaults.response_headers.remove[1]: `Connection` is the gateway's own header: a rule cannot remove it",
      "22 defaults.response_headers.remove[2]: `X-Content-Type-Options` is the gateway's own header: a rule cannot remove it",
      "19 routes[1].response_headers.set.Strict-Transport-Security: `Strict-Transport-Security` is the gateway's own header: a rule cannot set it",
      "19 routes[1].response_headers.set.Access-Control-Allow-Origin: `Access-Control-Allow-Origin` is the gateway's own header: a rule cannot set it",
      "19 routes[1].response_headers.set.Content-Type: `Content-Type` is the gateway's own header: a rule cannot set it",
    ].sort(),
  );
});

test('validate refuses two rules for one header and a value that cannot be sent, never quoting the value', async () => {
  const found = await problems(
    POLICY('    request_headers: { set: { X-Api-Key: "${LEGACY_KEY}", X-A: "1" }, add: { x_a: "2" }, remove: [X-Api-Key] }'),
    { LEGACY_KEY: 'secret-key\r\nX-Injected: 1' },
  );
  assert.deepEqual(found, [
    '19 routes[1].request_headers.set.X-Api-Key: is not a header value: visible ASCII characters, spaces and tabs only, no line breaks',
    '19 routes[1].request_headers.add.x_a: `x_a` already has a rule under set: give each header one rule',
    '19 routes[1].request_headers.remove[0]: `X-Api-Key` already has a rule under set: give each header one rule',
  ]);
  assert.ok(found.every((f) => !f.includes('secret-key')));
});
