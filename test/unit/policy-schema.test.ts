import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../../gateway/policy/build.js';
import { deref, policySchema, schemaFile, type SchemaNode } from '../../gateway/policy/schema.js';
import { BASE, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

test('the validator reads config/policy.schema.json, a draft 2020-12 schema', () => {
  assert.equal(schemaFile, fileURLToPath(new URL('../../config/policy.schema.json', import.meta.url)));
  assert.equal((policySchema as { $schema?: string }).$schema, 'https://json-schema.org/draft/2020-12/schema');
});

test('every mapping in the schema is closed and every property is described', () => {
  const walk = (node: SchemaNode, at: string): void => {
    const n = deref(node);
    if (n.type === 'object' && n.properties) assert.equal(n.additionalProperties, false, `${at} allows unknown keys`);
    if (n.type === 'object' && !n.properties) assert.equal(typeof n.additionalProperties, 'object', `${at} is open`);
    for (const [key, child] of Object.entries(n.properties ?? {})) {
      assert.ok(deref(child).description, `${at}.${key} has no description`);
      walk(child, `${at}.${key}`);
    }
    if (typeof n.additionalProperties === 'object') walk(n.additionalProperties, `${at}.*`);
    if (n.items) walk(n.items, `${at}[]`);
  };
  walk(policySchema, '(root)');
});

test('the defaults the schema shows editors are the ones the loader applies', () => {
  const at = (...path: string[]): unknown => {
    let node: SchemaNode = policySchema;
    for (const key of path) {
      const next = key === '*' ? (node.additionalProperties as SchemaNode) : key === 'items' ? node.items : node.properties![key];
      node = deref(next!);
    }
    return node.default;
  };
  assert.equal(at('server', 'http', 'mode'), DEFAULTS.http_mode);
  assert.equal(at('server', 'limits', 'body'), DEFAULTS.body);
  assert.equal(at('server', 'limits', 'headers_timeout'), DEFAULTS.headers_timeout);
  assert.equal(at('server', 'limits', 'request_timeout'), DEFAULTS.request_timeout);
  assert.equal(at('tls', 'min_version'), DEFAULTS.min_version);
  assert.equal(at('tls', 'roots'), DEFAULTS.roots);
  assert.equal(at('tls', 'expiry_warning'), DEFAULTS.expiry_warning);
  assert.equal(at('upstreams', '*', 'timeout'), DEFAULTS.upstream_timeout);
  assert.deepEqual(at('server', 'strip_response_headers'), DEFAULTS.strip_response_headers);
  assert.deepEqual(at('routes', 'items', 'cors', 'methods'), DEFAULTS.cors_methods);
  assert.equal(at('routes', 'items', 'cors', 'max_age'), DEFAULTS.cors_max_age);
  assert.equal(at('routes', 'items', 'json_charset'), DEFAULTS.json_charset);
  assert.equal(at('tls', 'hsts', 'include_subdomains'), false);
  assert.equal(at('tls', 'hsts', 'preload'), false);
});

test('an unknown top-level key names the closest known key, and only that is reported', async () => {
  expectDiagnostics(await reject(edit({ 20: 'routs:' })), [
    { line: 20, col: 1, path: 'routs', message: ['unknown key `routs`, did you mean `routes`?'] },
  ]);
});

test('an unknown nested key names the closest key at its own level', async () => {
  const text = edit({
    22: '    match: { pathprefix: /api/, methods: [get, POST], host: API.Example.com }',
    23: '    upstreem: legacy',
  });
  expectDiagnostics(await reject(text), [
    { line: 22, col: 14, path: 'routes[0].match.pathprefix', message: ['unknown key `pathprefix`, did you mean `path_prefix`?'] },
    { line: 23, col: 5, path: 'routes[0].upstreem', message: ['unknown key `upstreem`, did you mean `upstream`?'] },
  ]);
});

test('an unknown key with no close match lists the keys allowed there', async () => {
  const text = edit({ 8: '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m, connections: 10 }' });
  expectDiagnostics(await reject(text), [
    {
      line: 8,
      col: 66,
      path: 'server.limits.connections',
      message: ['unknown key `connections`; allowed here: body, handshake_timeout, headers_timeout, request_timeout, send_timeout'],
    },
  ]);
});

test('misspelt feature keys get the key they were probably meant as', async () => {
  const text = edit({
    17: 'store: { knd: memory }\nupstreams:',
    24: '    timeout: 1.5s\n    rate_limt: { key: ip, limit: 20, window: 60s }\n    maks: wx-user',
    28: 'defaults: { allow: any, rate_limit: { key: ip } }',
  });
  expectDiagnostics(await reject(text), [
    { line: 17, col: 10, path: 'store.knd', message: ['unknown key `knd`, did you mean `kind`?'] },
    { line: 26, col: 5, path: 'routes[0].rate_limt', message: ['unknown key `rate_limt`, did you mean `rate_limit`?'] },
    { line: 27, col: 5, path: 'routes[0].maks', message: ['unknown key `maks`, did you mean `mask`?'] },
    { line: 31, col: 37, path: 'defaults.rate_limit.limit', message: ['is required but missing'] },
    { line: 31, col: 37, path: 'defaults.rate_limit.window', message: ['is required but missing'] },
  ]);
});

test('a wrong type says what was found and what is expected', async () => {
  const text = edit({
    3: '  https: { listen: 8443 }',
    7: '  trusted_proxies: 10.0.0.0/8',
    13: '  certificates:',
    14: '',
    15: '',
    16: '',
    22: '    match: { path_prefix: /api/, methods: GET }',
  });
  expectDiagnostics(await reject(text), [
    { line: 3, col: 20, path: 'server.https.listen', message: ['`8443` has no host', 'expected host:port'] },
    { line: 7, col: 20, path: 'server.trusted_proxies', message: ['expected a list of CIDR blocks or addresses', 'found the string `10.0.0.0/8`'] },
    { line: 13, col: 3, path: 'tls.certificates', message: ['expected a list of { cert, key } entries, found an empty value'] },
    { line: 22, col: 43, path: 'routes[0].match.methods', message: ['expected a list of HTTP methods such as [GET, POST]', 'found the string `GET`'] },
  ]);
});

test('a whole section of the wrong type is one diagnostic, not one per missing key', async () => {
  const text = edit({ 17: 'upstreams: legacy', 18: '', 19: '' });
  expectDiagnostics(await reject(text), [
    { line: 17, col: 12, path: 'upstreams', message: ['expected a mapping of names to upstreams', 'found the string `legacy`'] },
  ]);
});

test('a missing required key is reported at the mapping that lacks it', async () => {
  const text = edit({ 3: '  https: {}', 13: '', 14: '', 15: '', 16: '', 23: '' });
  expectDiagnostics(await reject(text), [
    { line: 3, col: 10, path: 'server.https.listen', message: ['is required but missing', 'Address and port of the HTTPS listener'] },
    { line: 10, col: 3, path: 'tls.certificates', message: ['is required but missing', 'Certificates served by the HTTPS listener'] },
    { line: 21, col: 5, path: 'routes[0].upstream', message: ['is required but missing'] },
  ]);
});

test('a missing top-level section is reported at the document start', async () => {
  const text = BASE.split('\n').slice(0, 16).join('\n') + '\n';
  expectDiagnostics(await reject(text), [
    { line: 1, col: 1, path: 'upstreams', message: ['is required but missing'] },
    { line: 1, col: 1, path: 'routes', message: ['is required but missing'] },
  ]);
});

test('an enum lists the allowed values and suggests the closest', async () => {
  expectDiagnostics(await reject(edit({ 4: '  http: { listen: "0.0.0.0:8080", mode: redirct }' })), [
    { line: 4, col: 41, path: 'server.http.mode', message: ['`redirct` is not one of redirect, off; did you mean `redirect`?'] },
  ]);
  expectDiagnostics(await reject(edit({ 4: '  http: { listen: "0.0.0.0:8080", mode: on }' })), [
    { line: 4, col: 41, path: 'server.http.mode', message: [/^`on` is not one of redirect, off$/] },
  ]);
});

test('TLS below 1.2 is refused with the reason, never clamped', async () => {
  for (const version of ['TLSv1', 'TLSv1.0', 'TLSv1.1', 'SSLv3']) {
    expectDiagnostics(await reject(edit({ 10: `  min_version: ${version}` })), [
      { line: 10, col: 16, path: 'tls.min_version', message: [`\`${version}\` is refused:`, 'use TLSv1.2 or TLSv1.3'] },
    ]);
  }
  const [d] = await reject(edit({ 10: '  min_version: TLSv1.1' }));
  assert.match(d!.message, /RFC 8996/);
});

test('version must be the number 1', async () => {
  expectDiagnostics(await reject(edit({ 1: 'version: 2' })), [
    { line: 1, col: 10, path: 'version', message: ['must be 1, the only policy format', 'found the number `2`'] },
  ]);
  expectDiagnostics(await reject(edit({ 1: 'version: "1"' })), [
    { line: 1, col: 10, path: 'version', message: ['found the string `1`'] },
  ]);
});

test('names of upstreams and routes must be lower-case words', async () => {
  const text = edit({ 19: '  Billing: { url: "https://billing.internal:9443/v1" }', 21: '  - name: Api', 27: '    upstream: Billing' });
  expectDiagnostics(await reject(text), [
    { line: 19, col: 3, path: 'upstreams.Billing', message: ['`Billing` is not a valid name', 'a lower-case letter followed by'] },
    { line: 21, col: 11, path: 'routes[0].name', message: ['`Api` does not fit', 'a lower-case letter followed by'] },
  ]);
});

test('empty lists and mappings are refused where at least one entry is needed', async () => {
  const text = edit({
    13: '  certificates: []',
    14: '',
    15: '',
    16: '',
    17: 'upstreams: {}',
    18: '',
    19: '',
    20: 'routes: []',
    21: '',
    22: '',
    23: '',
    24: '',
    25: '',
    26: '',
    27: '',
  });
  expectDiagnostics(await reject(text), [
    { line: 13, col: 17, path: 'tls.certificates', message: ['must not be an empty list'] },
    { line: 17, col: 12, path: 'upstreams', message: ['must not be empty'] },
    { line: 20, col: 9, path: 'routes', message: ['must not be an empty list'] },
  ]);
  expectDiagnostics(await reject(edit({ 22: '    match: { path_prefix: /api/, methods: [] }' })), [
    { line: 22, col: 43, path: 'routes[0].match.methods', message: ['must not be an empty list', 'leave methods out to take every method'] },
  ]);
});
