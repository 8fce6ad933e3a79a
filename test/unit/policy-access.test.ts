import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrsOverlap, parseClientCidr, parseOrigin } from '../../gateway/policy/addresses.js';
import { accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

// BASE ends with line 28 `defaults: { allow: any }`; its routes are api (line 21) and pay (line 25).

test('a full access policy: lists expanded, blocks normalised, defaults inherited key by key', async () => {
  const text = edit({
    7: '  trusted_proxies: [10.0.0.0/8, "::1", 192.168.1.7]\n  strip_response_headers: [Server, X-Powered-By, x-aspnet-version, server]',
    12: '  expiry_warning: 14d\n  hsts: { max_age: 365d, include_subdomains: true, preload: true }',
    24: '    timeout: 1.5s\n    allow: any\n    deny: [office]\n    json_charset: false',
    28: [
      'ip_lists:',
      '  office: [203.0.113.0/24, "2001:DB8::/32", "::ffff:198.51.100.0/120"]',
      '  vpn: ["::ffff:192.0.2.9"]',
      'defaults:',
      '  allow: [office, vpn, 10.0.0.0/8, 203.0.113.0/24]',
      '  deny: [10.66.0.0/16]',
      '  cors:',
      '    origins: ["https://App.Example.com", "https://*.example.com:8443", "http://localhost:5173"]',
      '    credentials: true',
      '    headers: [Content-Type, X-Request-Id]',
    ].join('\n'),
  });
  const { config, warnings } = await accept(text);
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.strip_response_headers, ['server', 'x-powered-by', 'x-aspnet-version']);
  assert.deepEqual(config.tls.hsts, { max_age: 31_536_000, include_subdomains: true, preload: true });
  const [api, pay] = config.routes;
  assert.deepEqual(
    { allow: api!.allow, deny: api!.deny, cors: api!.cors, json_charset: api!.json_charset },
    {
      allow: { any: true },
      deny: ['203.0.113.0/24', '2001:db8::/32', '198.51.100.0/24'],
      cors: {
        origins: ['https://app.example.com', 'https://*.example.com:8443', 'http://localhost:5173'],
        credentials: true,
        methods: ['GET', 'HEAD', 'POST'],
        headers: ['content-type', 'x-request-id'],
        expose_headers: [],
        max_age: 600,
      },
      json_charset: false,
    },
  );
  assert.deepEqual(
    { allow: pay!.allow, deny: pay!.deny, json_charset: pay!.json_charset },
    {
      allow: { any: false, cidrs: ['203.0.113.0/24', '2001:db8::/32', '198.51.100.0/24', '192.0.2.9/32', '10.0.0.0/8'] },
      deny: ['10.66.0.0/16'],
      json_charset: true,
    },
  );
  assert.deepEqual(pay!.cors, api!.cors);
});

test('a route cors replaces the default cors whole, and the defaults of cors itself apply', async () => {
  const text = edit({
    27: '    upstream: billing\n    cors: { origins: ["*"], methods: [get, put], expose_headers: [X-Trace], max_age: 2h }',
    28: 'defaults: { allow: any, cors: { origins: ["https://example.com"], credentials: true } }',
  });
  const { config, warnings } = await accept(text);
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.routes[1]!.cors, {
    origins: ['*'],
    credentials: false,
    methods: ['GET', 'PUT'],
    headers: [],
    expose_headers: ['x-trace'],
    max_age: 7200,
  });
  assert.equal(config.routes[0]!.cors!.credentials, true);
});

test('a route with no allow and no defaults.allow is refused, never open', async () => {
  expectDiagnostics(await reject(edit({ 28: '' })), [
    {
      line: 21,
      col: 5,
      path: 'routes[0]',
      message: ['route `api` has no `allow` and there is no `defaults.allow`', 'list who may call it, or write `allow: any`'],
    },
    { line: 25, col: 5, path: 'routes[1]', message: ['route `pay` has no `allow`'] },
  ]);
  // One route may have its own while the other has none.
  expectDiagnostics(await reject(edit({ 24: '    timeout: 1.5s\n    allow: [10.0.0.0/8]', 28: '' })), [
    { line: 26, col: 5, path: 'routes[1]', message: ['route `pay` has no `allow`'] },
  ]);
});

test('a misspelt allow is reported once, as the typo it is', async () => {
  expectDiagnostics(await reject(edit({ 28: 'defaults: { alow: any }' })), [
    { line: 28, col: 13, path: 'defaults.alow', message: ['unknown key `alow`, did you mean `allow`?'] },
  ]);
  expectDiagnostics(await reject(edit({ 27: '    upstream: billing\n    Allow: any', 28: '' })), [
    { line: 21, col: 5, path: 'routes[0]', message: ['route `api` has no `allow`'] },
    { line: 28, col: 5, path: 'routes[1].Allow', message: ['unknown key `Allow`, did you mean `allow`?'] },
  ]);
});

test('allow is `any` or a non-empty list; deny never takes `any`', async () => {
  const text = edit({
    24: '    timeout: 1.5s\n    allow: all\n    deny: any',
    27: '    upstream: billing\n    allow: { office: true }',
    28: 'defaults: { allow: [] }',
  });
  const either = 'expected `any` to accept every address, or a list of CIDR blocks, addresses or ip_lists names';
  expectDiagnostics(await reject(text), [
    { line: 25, col: 12, path: 'routes[0].allow', message: ['`all` does not fit', either] },
    { line: 26, col: 11, path: 'routes[0].deny', message: ['expected a list of CIDR blocks, addresses or ip_lists names', 'found the string `any`'] },
    { line: 30, col: 12, path: 'routes[1].allow', message: [either, 'found a mapping'] },
    { line: 31, col: 20, path: 'defaults.allow', message: ['must not be an empty list', either] },
  ]);
});

test('addresses: unknown list names get a did-you-mean, host bits and bad addresses are explained', async () => {
  const text = edit({
    28: [
      'ip_lists:',
      '  office: [203.0.113.1/24, partners]',
      '  Ops: [192.0.2.1]',
      'defaults:',
      '  allow: [offce, 10.0.0.300, "2001:db8::1/32", monitoring]',
    ].join('\n'),
  });
  expectDiagnostics(await reject(text), [
    { line: 29, col: 12, path: 'ip_lists.office[0]', message: ['`203.0.113.1/24` has bits set beyond the /24 prefix', 'the block is 203.0.113.0/24'] },
    { line: 29, col: 28, path: 'ip_lists.office[1]', message: ['`partners` is not an IP address'] },
    { line: 30, col: 3, path: 'ip_lists.Ops', message: ['`Ops` is not a valid name', 'a lower-case letter'] },
    { line: 32, col: 11, path: 'defaults.allow[0]', message: ['`offce` is not an address nor a list defined under `ip_lists`', 'did you mean `office`?'] },
    { line: 32, col: 18, path: 'defaults.allow[1]', message: ['`10.0.0.300` is not an IP address'] },
    { line: 32, col: 30, path: 'defaults.allow[2]', message: ['has bits set beyond the /32 prefix', 'the block is 2001:db8::/32'] },
    { line: 32, col: 48, path: 'defaults.allow[3]', message: ['`monitoring` is not an address nor a list defined under `ip_lists`', 'defined lists: office, Ops'] },
  ]);
  expectDiagnostics(await reject(edit({ 28: 'defaults: { allow: [office] }' })), [
    { line: 28, col: 21, path: 'defaults.allow[0]', message: ['`office` is not an address, and no `ip_lists` are defined to name it from'] },
  ]);
});

test('deny entries outside everything allowed are warnings: they carve nothing', async () => {
  const text = edit({
    24: '    timeout: 1.5s\n    allow: [office]',
    27: '    upstream: billing\n    deny: [office, 10.0.0.0/9]',
    28: ['ip_lists:', '  office: [203.0.113.0/24]', 'defaults:', '  allow: [10.0.0.0/8]', '  deny: [10.1.0.0/16, 192.168.0.0/16]'].join('\n'),
  });
  const { warnings } = await accept(text);
  expectDiagnostics(warnings, [
    {
      line: 29,
      col: 12,
      path: 'routes[1].deny[0]',
      severity: 'warning',
      message: ['`office` (203.0.113.0/24) lies outside every address route `pay` allows (`defaults.allow`, line 33)'],
    },
    {
      line: 34,
      col: 10,
      path: 'defaults.deny[0]',
      severity: 'warning',
      message: ['`10.1.0.0/16` lies outside every address route `api` allows, so denying it changes nothing'],
    },
    { line: 34, col: 23, path: 'defaults.deny[1]', severity: 'warning', message: ['outside every address `defaults.allow` accepts'] },
    { line: 34, col: 23, path: 'defaults.deny[1]', severity: 'warning', message: ['outside every address route `api` allows'] },
  ]);
  // Under `allow: any` every deny entry carves something.
  const open = await accept(edit({ 28: 'defaults: { allow: any, deny: [192.168.0.0/16, "::/0"] }' }));
  assert.deepEqual(open.warnings, []);
});

test('cors origins: wildcard with credentials and null are refused with the reason', async () => {
  const text = edit({
    28: 'defaults:\n  allow: any\n  cors:\n    credentials: true\n    origins:\n      - "*"\n      - "null"\n      - https://example.com',
  });
  expectDiagnostics(await reject(text), [
    {
      line: 33,
      col: 9,
      path: 'defaults.cors.origins[0]',
      message: ['`*` together with `credentials: true` is refused', 'echoing each request\'s Origin instead would let any website read your users\' data'],
    },
    { line: 34, col: 9, path: 'defaults.cors.origins[1]', message: ['`null` is refused as an origin', 'sandboxed iframes, file:// pages'] },
  ]);
});

test('cors origins must be scheme://host[:port] as browsers send them', async () => {
  const origins = [
    'https://example.com/',
    'https://example.com/app',
    'https://example.com:443',
    'http://example.com:80',
    'ftp://example.com',
    'example.com',
    'https://*.com',
    'https://a.*.example.com',
    'https://example.com:99999',
  ];
  const text = edit({ 28: `defaults:\n  allow: any\n  cors:\n    origins:\n${origins.map((o) => `      - "${o}"`).join('\n')}` });
  const at = (i: number, message: string[]): { line: number; col: number; path: string; message: string[] } => ({
    line: 32 + i,
    col: 9,
    path: `defaults.cors.origins[${i}]`,
    message: [...message, 'expected scheme://host[:port] with scheme http or https and no path'],
  });
  expectDiagnostics(await reject(text), [
    at(0, ['ends with `/`; browsers send `https://example.com`']),
    at(1, ['has a path; browsers send only `https://example.com`']),
    at(2, ["writes https's default port 443", 'write `https://example.com`']),
    at(3, ["writes http's default port 80"]),
    at(4, ['uses ftp://']),
    at(5, ['has no scheme']),
    at(6, ['matches every subdomain of `com`', 'at least two labels']),
    at(7, ['holds a `*` that is not the whole first label']),
    at(8, ['has port `99999`, outside 1..65535']),
  ]);
});

test('cors warnings: http wildcard origins, a preflight cache longer than browsers keep', async () => {
  const text = edit({ 28: 'defaults:\n  allow: any\n  cors: { origins: ["http://*.example.com"], max_age: 3h }' });
  expectDiagnostics((await accept(text)).warnings, [
    {
      line: 30,
      col: 21,
      path: 'defaults.cors.origins[0]',
      severity: 'warning',
      message: ['accepts plain-http pages on every subdomain', 'prefer https://'],
    },
    {
      line: 30,
      col: 55,
      path: 'defaults.cors.max_age',
      severity: 'warning',
      message: ['`3h` is longer than browsers keep a preflight answer', 'Chromium 2h'],
    },
  ]);
});

test('cors methods must be known, headers must be header names, max_age whole seconds', async () => {
  const text = edit({
    28: 'defaults:\n  allow: any\n  cors: { origins: ["*"], methods: [GTE], headers: ["x y", "*"], expose_headers: [], max_age: 1500ms }',
  });
  expectDiagnostics(await reject(text), [
    { line: 30, col: 37, path: 'defaults.cors.methods[0]', message: ['`GTE` is not an HTTP method; did you mean `GET`?'] },
    { line: 30, col: 53, path: 'defaults.cors.headers[0]', message: ['`x y` does not fit', 'a header name such as content-type'] },
    { line: 30, col: 60, path: 'defaults.cors.headers[1]', message: ['`*` does not fit'] },
    { line: 30, col: 95, path: 'defaults.cors.max_age', message: ['`1500ms` is not a whole number of seconds'] },
  ]);
});

test('hsts: preload needs a year and subdomains; max_age is a duration; 0s is a warning', async () => {
  expectDiagnostics(await reject(edit({ 12: '  expiry_warning: 14d\n  hsts: { max_age: 1d, preload: true }' })), [
    {
      line: 13,
      col: 33,
      path: 'tls.hsts.preload',
      message: ['`preload: true` needs max_age of at least 365d (found `1d`) and `include_subdomains: true`', 'hstspreload.org refuses anything less'],
    },
  ]);
  expectDiagnostics(await reject(edit({ 12: '  expiry_warning: 14d\n  hsts: { max_age: 31536000 }' })), [
    { line: 13, col: 20, path: 'tls.hsts.max_age', message: ['`31536000` has no unit'] },
  ]);
  expectDiagnostics(await reject(edit({ 12: '  expiry_warning: 14d\n  hsts: { max_age: 1y, include_subdomain: true }' })), [
    { line: 13, col: 20, path: 'tls.hsts.max_age', message: ['`1y` uses `y`, which is not a duration unit (write 365d for a year)'] },
    { line: 13, col: 24, path: 'tls.hsts.include_subdomain', message: ['unknown key `include_subdomain`, did you mean `include_subdomains`?'] },
  ]);
  const forget = await accept(edit({ 12: '  expiry_warning: 14d\n  hsts: { max_age: 0s }' }));
  expectDiagnostics(forget.warnings, [
    { line: 13, col: 20, path: 'tls.hsts.max_age', severity: 'warning', message: ["`0s` tells browsers to forget this host's HSTS"] },
  ]);
  assert.deepEqual(forget.config.tls.hsts, { max_age: 0, include_subdomains: false, preload: false });
});

test('strip_response_headers and json_charset are checked', async () => {
  const text = edit({
    7: '  trusted_proxies: [10.0.0.0/8]\n  strip_response_headers: [server, "x powered by"]',
    27: '    upstream: billing\n    json_charset: yes',
  });
  expectDiagnostics(await reject(text), [
    { line: 8, col: 36, path: 'server.strip_response_headers[1]', message: ['`x powered by` does not fit', 'a header name'] },
    { line: 29, col: 19, path: 'routes[1].json_charset', message: ['expected true or false, found the string `yes`'] },
  ]);
});

test('parseClientCidr turns IPv4-mapped blocks into IPv4; cidrsOverlap; parseOrigin lower-cases', () => {
  assert.deepEqual(parseClientCidr('::ffff:1.2.3.4/128'), { ok: true, value: '1.2.3.4/32' });
  assert.deepEqual(parseClientCidr('::FFFF:198.51.100.0/120'), { ok: true, value: '198.51.100.0/24' });
  assert.deepEqual(parseClientCidr('::ffff:0:0/96'), { ok: true, value: '0.0.0.0/0' });
  assert.deepEqual(parseClientCidr('::/80'), { ok: true, value: '::/80' });
  assert.deepEqual(parseClientCidr('2001:db8::/32'), { ok: true, value: '2001:db8::/32' });
  assert.equal(cidrsOverlap('10.0.0.0/8', '10.1.0.0/16'), true);
  assert.equal(cidrsOverlap('10.1.0.0/16', '10.0.0.0/8'), true);
  assert.equal(cidrsOverlap('10.0.0.0/8', '11.0.0.0/8'), false);
  assert.equal(cidrsOverlap('0.0.0.0/0', '::/0'), false);
  assert.deepEqual(parseOrigin('HTTPS://*.Example.COM'), { ok: true, value: 'https://*.example.com' });
  assert.deepEqual(parseOrigin('http://127.0.0.1:8080'), { ok: true, value: 'http://127.0.0.1:8080' });
});
