import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileCors } from '../../gateway/guards/cors.js';
import { compileRequestHeaders, hstsValue, securityHeaders, type ResponsePlan } from '../../gateway/guards/header-plan.js';
import { clientResponseHeaders, withJsonCharset, type ForwardContext } from '../../gateway/proxy/forwarding-headers.js';

const security = securityHeaders({ max_age: 31_536_000, include_subdomains: true, preload: false });
const plain: ResponsePlan = { strip: new Set(['server', 'x-powered-by']), fixed: Object.entries(security), jsonCharset: true, cors: undefined };
const withCors: ResponsePlan = {
  ...plain,
  cors: compileCors({ origins: ['https://app.example.com'], credentials: true, methods: ['GET'], headers: [], expose_headers: ['x-total'], max_age: 60 }),
};

function ctx(response: ResponsePlan, allowedOrigin?: string): ForwardContext {
  return { id: 'req-1', address: { client: '1.2.3.4', peer: '1.2.3.4', peerTrusted: false }, hasBody: false, response, allowedOrigin, reserved: compileRequestHeaders({ underscores: 'drop', owned: [], trusted: [], read: [] }), added: undefined, answerAdded: undefined, sendTimeout: 60_000 };
}

test('HSTS is written as configured', () => {
  assert.equal(hstsValue({ max_age: 600, include_subdomains: false, preload: false }), 'max-age=600');
  assert.equal(hstsValue({ max_age: 63_072_000, include_subdomains: true, preload: true }), 'max-age=63072000; includeSubDomains; preload');
  assert.deepEqual({ ...securityHeaders(null) }, { 'x-content-type-options': 'nosniff' });
});

test("the policy's security headers replace the upstream's and stripped headers are gone", () => {
  const out = clientResponseHeaders(
    { server: 'Apache/2.2.3', 'x-powered-by': 'PHP/5.2', 'strict-transport-security': 'max-age=0', 'x-content-type-options': 'sniff', etag: '"1"' },
    ctx(plain),
  );
  assert.deepEqual(out, {
    etag: '"1"',
    'strict-transport-security': 'max-age=31536000; includeSubDomains',
    'x-content-type-options': 'nosniff',
    'x-request-id': 'req-1',
  });
});

test('JSON content types without a charset gain utf-8; others and explicit charsets are kept', () => {
  const cases: [string, string][] = [
    ['application/json', 'application/json; charset=utf-8'],
    ['Application/JSON', 'Application/JSON; charset=utf-8'],
    ['application/problem+json', 'application/problem+json; charset=utf-8'],
    ['application/vnd.api+JSON ', 'application/vnd.api+JSON; charset=utf-8'],
    ['application/json; version=2', 'application/json; version=2; charset=utf-8'],
    ['application/json; charset=gbk', 'application/json; charset=gbk'],
    ['application/json;Charset=UTF-8', 'application/json;Charset=UTF-8'],
    ['text/html', 'text/html'],
    ['application/jsonp', 'application/jsonp'],
    ['+json', '+json'],
    ['text/plain; note=+json', 'text/plain; note=+json'],
  ];
  for (const [given, expected] of cases) assert.equal(withJsonCharset(given), expected, given);
  assert.equal(clientResponseHeaders({ 'content-type': 'application/json' }, ctx(plain))['content-type'], 'application/json; charset=utf-8');
  assert.equal(clientResponseHeaders({ 'content-type': 'application/json' }, ctx({ ...plain, jsonCharset: false }))['content-type'], 'application/json');
});

test("the upstream's Access-Control-* never reach the client, with or without CORS on the route", () => {
  const legacy = { 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'x-secret', vary: 'Accept-Encoding' };
  const none = clientResponseHeaders(legacy, ctx(plain));
  assert.deepEqual(Object.keys(none).filter((h) => h.startsWith('access-control-')), []);
  assert.equal(none['vary'], 'Accept-Encoding');

  const allowed = clientResponseHeaders(legacy, ctx(withCors, 'https://app.example.com'));
  assert.equal(allowed['access-control-allow-origin'], 'https://app.example.com');
  assert.equal(allowed['access-control-allow-credentials'], 'true');
  assert.equal(allowed['access-control-expose-headers'], 'x-total');
  assert.equal(allowed['vary'], 'Accept-Encoding, Origin');

  const unlisted = clientResponseHeaders(legacy, ctx(withCors, undefined));
  assert.deepEqual(Object.keys(unlisted).filter((h) => h.startsWith('access-control-')), []);
  assert.equal(unlisted['vary'], 'Accept-Encoding, Origin');
});

test('Vary: Origin is merged with the upstream Vary, never duplicated', () => {
  const vary = (v: string | string[] | undefined): unknown => clientResponseHeaders(v === undefined ? {} : { vary: v }, ctx(withCors))['vary'];
  assert.equal(vary(undefined), 'Origin');
  assert.equal(vary(''), 'Origin');
  assert.equal(vary('origin'), 'origin');
  assert.equal(vary('Accept, Origin'), 'Accept, Origin');
  assert.equal(vary('*'), '*');
  assert.equal(vary(['Accept', 'Accept-Language']), 'Accept, Accept-Language, Origin');
});
