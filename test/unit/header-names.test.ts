import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { CLIENT_CLAIMS, foldHeaderName, isPlainHeaderName } from '../../gateway/net/header-names.js';
import { compileRequestHeaders, screenHeaderNames, type RequestHeaderPolicy } from '../../gateway/guards/header-plan.js';
import { upstreamRequestHeaders, type ForwardContext } from '../../gateway/proxy/forwarding-headers.js';

const OWNED = ['x-wx-openid', 'x-wx-unionid', 'x-wx-callback-verified', 'x-wechatpay-verified', 'x-wechatpay-notify-id', 'x-wechatpay-event-type'];

function plan(p: Partial<RequestHeaderPolicy> = {}) {
  return compileRequestHeaders({ underscores: 'drop', owned: OWNED, trusted: [], read: ['x-session-token'], ...p });
}

function forwarded(incoming: IncomingHttpHeaders, opts: { policy?: Partial<RequestHeaderPolicy>; trusted?: boolean; added?: Record<string, string> } = {}) {
  const ctx: ForwardContext = {
    id: 'req-1',
    address: { client: '198.51.100.7', peer: opts.trusted ? '10.0.0.1' : '198.51.100.7', peerTrusted: opts.trusted ?? false },
    hasBody: false,
    response: { strip: new Set(), fixed: [], jsonCharset: false, cors: undefined },
    allowedOrigin: undefined,
    reserved: plan(opts.policy),
    added: opts.added,
    answerAdded: undefined,
    sendTimeout: 60_000,
  };
  return upstreamRequestHeaders(incoming, ctx);
}

test('a header name folds as a CGI backend reads it: no case, every non-alphanumeric the same', () => {
  for (const name of ['X-WX-OpenID', 'x_wx_openid', 'X.WX.OPENID', 'x~wx_openid', 'X-Wx_OpenId']) assert.equal(foldHeaderName(name), 'x-wx-openid', name);
  assert.equal(foldHeaderName('content-type'), 'content-type');
  assert.equal(isPlainHeaderName('x-wx-openid'), true);
  assert.equal(isPlainHeaderName('x-1-2'), true);
  for (const name of ['x_wx_openid', 'x.wx.openid', 'x~y', "x'y", 'x!y', 'x|y']) assert.equal(isPlainHeaderName(name), false, name);
});

test('every listed client claim is already in its folded spelling, once', () => {
  for (const name of CLIENT_CLAIMS) assert.equal(foldHeaderName(name), name);
  assert.equal(new Set(CLIENT_CLAIMS).size, CLIENT_CLAIMS.length);
  for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']) assert.ok(!CLIENT_CLAIMS.includes(name), name);
});

test('by default a name with "_" or "." is dropped, whatever it spells; plain names pass', () => {
  const out = forwarded({
    accept: 'application/json',
    'x-app-version': '3.1',
    x_app_version: '9.9',
    x_wx_openid: 'o_victim',
    'x.wx.openid': 'o_victim',
    x_forwarded_for: '6.6.6.6',
    x_wx_callback_verified: 'decrypted',
    http_client_ip: '6.6.6.6',
  });
  assert.deepEqual(Object.keys(out).sort(), ['accept', 'x-app-version', 'x-forwarded-for', 'x-forwarded-proto', 'x-request-id']);
  assert.equal(out['x-forwarded-for'], '198.51.100.7');
});

test('gateway-owned headers are removed from the client and stated by the gateway alone', () => {
  const out = forwarded(
    {
      'x-wx-openid': 'o_victim',
      'x-wx-unionid': 'u_victim',
      'x-wx-callback-verified': 'decrypted',
      'x-wechatpay-verified': 'decrypted',
      'x-wechatpay-notify-id': 'n',
      'x-wechatpay-event-type': 'TRANSACTION.SUCCESS',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.example',
      'x-request-id': 'chosen',
      host: 'api.example.com:8443',
    },
    { added: { 'x-wx-openid': 'o_alice' } },
  );
  assert.deepEqual(out, {
    'x-wx-openid': 'o_alice',
    'x-forwarded-for': '198.51.100.7',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'api.example.com',
    'x-request-id': 'req-1',
  });
});

test('with underscores: allow, names pass unless they fold to one the gateway owns, removes or reads', () => {
  const out = forwarded(
    {
      x_app_version: '3.1',
      'x.trace.id': 't',
      x_wx_openid: 'o_victim',
      x_wx_unionid: 'u',
      x_wechatpay_verified: 'decrypted',
      x_forwarded_for: '6.6.6.6',
      x_forwarded_host: 'evil',
      x_request_id: 'r',
      x_real_ip: '6.6.6.6',
      true_client_ip: '6.6.6.6',
      x_original_url: '/admin',
      x_http_method_override: 'DELETE',
      transfer_encoding: 'chunked',
      content_length: '5',
      content_type: 'text/html',
      accept_encoding: 'identity',
      wechatpay_signature: 'x',
      x_session_token: 'other-users-token',
    },
    { policy: { underscores: 'allow' } },
  );
  assert.deepEqual(Object.keys(out).sort(), ['x-forwarded-for', 'x-forwarded-proto', 'x-request-id', 'x.trace.id', 'x_app_version']);
});

test('client claims are removed from untrusted peers, and from trusted ones unless the policy names them', () => {
  const claims: IncomingHttpHeaders = {
    'x-real-ip': '6.6.6.6',
    'true-client-ip': '6.6.6.6',
    'cf-connecting-ip': '6.6.6.6',
    forwarded: 'for=6.6.6.6',
    'x-original-url': '/admin',
    'x-rewrite-url': '/admin',
    'x-http-method-override': 'DELETE',
    'x-forwarded-scheme': 'https',
    'x-host': 'admin.example.com',
    'proxy-client-ip': '6.6.6.6',
    'x-keep': 'yes',
  };
  assert.deepEqual(Object.keys(forwarded(claims)).sort(), ['x-forwarded-for', 'x-forwarded-proto', 'x-keep', 'x-request-id']);
  assert.deepEqual(Object.keys(forwarded(claims, { trusted: true })).sort(), ['x-forwarded-for', 'x-forwarded-proto', 'x-keep', 'x-request-id']);
  const named = forwarded({ ...claims, x_real_ip: '7.7.7.7' }, { trusted: true, policy: { trusted: ['x-real-ip', 'forwarded'], underscores: 'allow' } });
  assert.equal(named['x-real-ip'], '6.6.6.6');
  assert.equal(named['forwarded'], 'for=6.6.6.6');
  // Only the exact spelling of a trusted claim is believed.
  assert.equal(named['x_real_ip'], undefined);
  assert.equal(named['true-client-ip'], undefined);
  // Named, but from an untrusted peer: removed.
  assert.equal(forwarded(claims, { policy: { trusted: ['x-real-ip'] } })['x-real-ip'], undefined);
});

test('X-Forwarded-Host is the normal-form host, never the client text', () => {
  const xfh = (host: string | undefined) => forwarded(host === undefined ? {} : { host })['x-forwarded-host'];
  assert.equal(xfh('API.Example.com'), 'api.example.com');
  assert.equal(xfh('api.example.com:8443'), 'api.example.com');
  assert.equal(xfh('192.0.2.1:443'), '192.0.2.1');
  assert.equal(xfh('[2001:DB8::1]:8443'), '[2001:db8::1]');
  assert.equal(xfh(undefined), undefined);
  for (const host of ['user@evil.example', 'evil.example#x', '[dead.beef]', '[fe80::1%25eth0]', 'evil%2eexample', 'a[b]', '[evil.example]', 'a b', '"x"', 'a/b']) {
    assert.equal(xfh(host), undefined, host);
  }
});

test('screening lists the names a drop or reject applies to, and nothing for the usual request', () => {
  const headers: IncomingHttpHeaders = { accept: '*/*', 'x-a': '1' };
  assert.equal(screenHeaderNames(headers, plan()), undefined);
  assert.deepEqual(screenHeaderNames({ ...headers, x_wx_openid: 'o', 'x.b': '2' }, plan()), { names: ['x_wx_openid', 'x.b'], refuse: false });
  assert.deepEqual(screenHeaderNames({ x_a: '1' }, plan({ underscores: 'reject' })), { names: ['x_a'], refuse: true });
  assert.equal(screenHeaderNames({ x_a: '1' }, plan({ underscores: 'allow' })), undefined);
  const many: IncomingHttpHeaders = {};
  for (let i = 0; i < 40; i++) many[`x_${i}`] = 'v';
  assert.equal(screenHeaderNames(many, plan())!.names.length, 16);
});
