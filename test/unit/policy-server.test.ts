import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

test('listen addresses: port range, host forms, brackets for IPv6', async () => {
  const cases: [string, string[]][] = [
    ['0.0.0.0:0', ['`0.0.0.0:0` has port 0, outside 1..65535']],
    ['0.0.0.0:70000', ['has port 70000, outside 1..65535']],
    [':8443', ['has no host', 'write 0.0.0.0 or [::]']],
    ['0.0.0.0', ['has no port']],
    ['::1:8443', ['holds an IPv6 address without brackets']],
    ['[::g]:8443', ['holds `::g`, which is not an IPv6 address']],
    ['api.example.com:8443', ['names `api.example.com`, which is not an IP address or localhost']],
    ['300.0.0.1:8443', ['names `300.0.0.1`']],
  ];
  for (const [listen, fragments] of cases) {
    expectDiagnostics(await reject(edit({ 3: `  https: { listen: "${listen}" }` })), [
      { line: 3, col: 20, path: 'server.https.listen', message: [...fragments, 'expected host:port or [ipv6]:port'] },
    ]);
  }
});

test('listeners may not share a port on overlapping addresses', async () => {
  expectDiagnostics(await reject(edit({ 4: '  http: { listen: "127.0.0.1:8443", mode: redirect }' })), [
    { line: 4, col: 19, path: 'server.http.listen', message: ['port 8443 is already taken by server.https.listen (line 3)'] },
  ]);
  expectDiagnostics(await reject(edit({ 3: '  https: { listen: "[::]:8443" }', 5: '  admin: { listen: "localhost:8443" }' })), [
    { line: 5, col: 20, path: 'server.admin.listen', message: ['port 8443 is already taken by server.https.listen (line 3)'] },
  ]);
  expectDiagnostics(await reject(edit({ 3: '  https: { listen: "127.0.0.1:8443" }', 5: '  admin: { listen: "localhost:8443" }' })), [
    { line: 5, col: 20, path: 'server.admin.listen', message: ['already taken by server.https.listen'] },
  ]);
  // Different addresses on one port, or the same address on different ports, are fine.
  await accept(edit({ 3: '  https: { listen: "127.0.0.1:8443" }', 5: '  admin: { listen: "127.0.0.2:8443" }' }));
  await accept(edit({ 3: '  https: { listen: "[::1]:8443" }', 5: '  admin: { listen: "127.0.0.1:8443" }' }));
});

test('an admin listener off loopback is a warning: admin endpoints exposed', async () => {
  const { warnings } = await accept(edit({ 5: '  admin: { listen: "0.0.0.0:9901" }' }));
  expectDiagnostics(warnings, [
    {
      line: 5,
      col: 20,
      path: 'server.admin.listen',
      severity: 'warning',
      message: ['admin endpoints exposed', '`0.0.0.0:9901`', '127.0.0.1 or ::1'],
    },
  ]);
  for (const loopback of ['localhost:9901', '[::1]:9901', '127.0.0.53:9901']) {
    assert.deepEqual((await accept(edit({ 5: `  admin: { listen: "${loopback}" }` }))).warnings, [], loopback);
  }
});

test('without http and admin sections there are no such listeners; mode defaults to redirect', async () => {
  const { config } = await accept(edit({ 4: '', 5: '' }));
  assert.equal(config.server.http, null);
  assert.equal(config.server.admin, null);
  const withHttp = await accept(edit({ 4: '  http: { listen: "0.0.0.0:8080" }' }));
  assert.equal(withHttp.config.server.http?.mode, 'redirect');
  const off = await accept(edit({ 4: '  http: { listen: "0.0.0.0:8080", mode: off }' }));
  assert.equal(off.config.server.http?.mode, 'off');
});

test('trusted proxies are validated and normalised to CIDR blocks', async () => {
  const { config } = await accept(edit({ 7: '  trusted_proxies: [10.0.0.0/8, "::1", 192.168.1.7, "2001:DB8:0:0::/32", "::ffff:10.0.0.1"]' }));
  assert.deepEqual(config.server.trusted_proxies, ['10.0.0.0/8', '::1/128', '192.168.1.7/32', '2001:db8::/32', '::ffff:10.0.0.1/128']);
  expectDiagnostics(await reject(edit({ 7: '  trusted_proxies: [10.1.2.3/8, 10.0.0.0/33, "fe80::1%eth0", 10.0.0]' })), [
    { line: 7, col: 21, path: 'server.trusted_proxies[0]', message: ['`10.1.2.3/8` has bits set beyond the /8 prefix', 'the block is 10.0.0.0/8'] },
    { line: 7, col: 33, path: 'server.trusted_proxies[1]', message: ['has a prefix length outside 0..32'] },
    { line: 7, col: 46, path: 'server.trusted_proxies[2]', message: ['`fe80::1%eth0` is not an IP address'] },
    { line: 7, col: 62, path: 'server.trusted_proxies[3]', message: ['`10.0.0` is not an IP address'] },
  ]);
});

test('headers_timeout longer than request_timeout is refused, defaults included', async () => {
  expectDiagnostics(await reject(edit({ 8: '  limits: { headers_timeout: 40s }' })), [
    { line: 8, col: 30, path: 'server.limits.headers_timeout', message: ['headers_timeout (40s) is longer than request_timeout (30s, the default)'] },
  ]);
  expectDiagnostics(await reject(edit({ 8: '  limits: { request_timeout: 5s }' })), [
    { line: 8, col: 30, path: 'server.limits.request_timeout', message: ['headers_timeout (10s, the default) is longer than request_timeout (5s)'] },
  ]);
});

test('upstream URLs: http or https, no credentials, query or fragment', async () => {
  const cases: [string, string[]][] = [
    ['ftp://127.0.0.1', ['`ftp://127.0.0.1` uses ftp://', 'expected an http:// or https:// URL']],
    ['127.0.0.1:9000', ['`127.0.0.1:9000` has no scheme']],
    ['http://user:pw@127.0.0.1:9000', ['`http://***@127.0.0.1:9000` carries credentials']],
    ['http://127.0.0.1:9000/?a=1', ['has a query string']],
    ['http://127.0.0.1:9000/#x', ['has a fragment']],
    ['http://[::1:9000', ['is not a valid URL']],
  ];
  for (const [url, fragments] of cases) {
    const diagnostics = await reject(edit({ 18: `  legacy: { url: "${url}" }` }));
    expectDiagnostics(diagnostics, [{ line: 18, col: 18, path: 'upstreams.legacy.url', message: fragments }]);
    assert.ok(!diagnostics[0]!.message.includes('user:pw'));
  }
});

test('certificate, key and CA bundle files must exist and be readable, relative to the policy', async () => {
  const text = edit({ 11: '  roots: ../certs/ca.pen', 14: '    - cert: ../cert/fullchain.pem', 15: '      key: ../certs' });
  expectDiagnostics(await reject(text), [
    { line: 11, col: 10, path: 'tls.roots', message: [`cannot read CA bundle ${join(ROOT, 'certs', 'ca.pen')}`, 'ENOENT'] },
    { line: 14, col: 13, path: 'tls.certificates[0].cert', message: [`cannot read certificate file ${join(ROOT, 'cert', 'fullchain.pem')}`, 'ENOENT'] },
    { line: 15, col: 12, path: 'tls.certificates[0].key', message: [`cannot read key file ${join(ROOT, 'certs')}`, 'it is a directory'] },
  ]);
  expectDiagnostics(await reject(edit({ 11: '  roots: System' })), [
    { line: 11, col: 10, path: 'tls.roots', message: ['cannot read CA bundle', 'write `system`, in lower case, for the system roots'] },
  ]);
});

test('roots: system is kept as is; absolute paths stay as written', async () => {
  const { config } = await accept(edit({ 11: '  roots: system', 14: `    - cert: ${join(ROOT, 'certs', 'fullchain.pem')}` }));
  assert.equal(config.tls.roots, 'system');
  assert.equal(config.tls.certificates[0]!.cert, join(ROOT, 'certs', 'fullchain.pem'));
});

test('host names: no port, scheme, path or wildcard', async () => {
  const cases: [string, string][] = [
    ['api.example.com:443', 'holds a port'],
    ['https://api.example.com', 'is a URL'],
    ['api.example.com/v1', 'holds a path'],
    ['*.example.com', 'holds a wildcard'],
    ['-api.example.com', 'is not a valid host name'],
  ];
  for (const [host, fragment] of cases) {
    expectDiagnostics(await reject(edit({ 6: `  public_host: "${host}"` })), [
      { line: 6, col: 16, path: 'server.public_host', message: [`\`${host}\` ${fragment}`, 'without scheme, port or path'] },
    ]);
  }
});

// Lines 9-16 of BASE are the tls section.
const NO_TLS = { 9: '', 10: '', 11: '', 12: '', 13: '', 14: '', 15: '', 16: '' };

test('https: off (TLS ended at a trusted load balancer) needs no tls; certificates given are still checked', async () => {
  const { config, warnings } = await accept(edit({ 3: '  https: off', ...NO_TLS }));
  assert.deepEqual(warnings, []);
  assert.equal(config.server.https, null);
  assert.deepEqual(config.server.http?.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(config.tls.certificates, []);
  assert.equal(config.tls.hsts, null);
  const hsts = await accept(edit({ 3: '  https: off', ...NO_TLS, 9: 'tls:', 10: '  hsts: { max_age: 1d }' }));
  assert.deepEqual(hsts.config.tls.hsts, { max_age: 86_400, include_subdomains: false, preload: false });
  const withTls = await accept(edit({ 3: '  https: off' }));
  assert.equal(withTls.config.tls.certificates.length, 1);
  expectDiagnostics(await reject(edit({ 3: '  https: off', 14: '    - cert: ../certs/missing.pem' })), [
    { line: 14, col: 13, path: 'tls.certificates[0].cert', message: [`cannot read certificate file ${join(ROOT, 'certs', 'missing.pem')}`, 'ENOENT'] },
  ]);
});

test('server.http2 with https: off is a warning: the plain listener speaks HTTP/1.1 only', async () => {
  const { warnings } = await accept(edit({ 3: '  https: off\n  http2: true', ...NO_TLS }));
  expectDiagnostics(warnings, [{ line: 4, col: 10, path: 'server.http2', severity: 'warning', message: ['has no effect with server.https off', 'HTTP/1.1 only'] }]);
  assert.deepEqual((await accept(edit({ 3: '  https: off\n  http2: false', ...NO_TLS }))).warnings, []);
  assert.deepEqual((await accept(edit({ 3: '  https: { listen: "0.0.0.0:8443" }\n  http2: true' }))).warnings, []);
});

test('https: off is refused without a redirect listener or a trusted proxy, saying why', async () => {
  expectDiagnostics(await reject(edit({ 3: '  https: off', 4: '', ...NO_TLS })), [
    { line: 3, col: 10, path: 'server.https', message: ['`off` needs an http listener', 'mode: redirect', 'nothing could ever be proxied'] },
  ]);
  expectDiagnostics(await reject(edit({ 3: '  https: off', 4: '  http: { listen: "0.0.0.0:8080", mode: off }' })), [
    { line: 3, col: 10, path: 'server.https', message: ['`off` needs the http listener in mode redirect (line 4 turns it off)', 'nothing could ever be proxied'] },
  ]);
  for (const proxies of ['', '  trusted_proxies: []']) {
    expectDiagnostics(await reject(edit({ 3: '  https: off', 7: proxies })), [
      { line: 3, col: 10, path: 'server.https', message: ['`off` needs the TLS-terminating load balancer in trusted_proxies', 'every request would be redirected'] },
    ]);
  }
});

test('https is a mapping or `off`; with an HTTPS listener tls and its certificates are required', async () => {
  expectDiagnostics(await reject(edit({ 3: '  https: of' })), [
    { line: 3, col: 10, path: 'server.https', message: ['must be a mapping such as { listen: "0.0.0.0:8443" }, or `off`', 'found the string `of`'] },
  ]);
  expectDiagnostics(await reject(edit({ 3: '  https: 8443' })), [
    { line: 3, col: 10, path: 'server.https', message: ['expected a mapping such as { listen: "0.0.0.0:8443" }, or `off`', 'found the number `8443`'] },
  ]);
  expectDiagnostics(await reject(edit({ 3: '  https: { listen: "0.0.0.0:8443", lisen: x }' })), [
    { line: 3, col: 36, path: 'server.https.lisen', message: ['unknown key `lisen`, did you mean `listen`?'] },
  ]);
  expectDiagnostics(await reject(edit(NO_TLS)), [
    { line: 1, col: 1, path: 'tls', message: ['is required but missing', 'TLS for the HTTPS listener; required unless server.https is off'] },
  ]);
  expectDiagnostics(await reject(edit({ 13: '', 14: '', 15: '', 16: '' })), [
    { line: 10, col: 3, path: 'tls.certificates', message: ['is required but missing', 'required unless server.https is off'] },
  ]);
  expectDiagnostics(await reject(edit({ 9: 'tls: 5', 10: '', 11: '', 12: '', 13: '', 14: '', 15: '', 16: '' })), [
    { line: 9, col: 6, path: 'tls', message: ['expected a mapping with certificates', 'found the number `5`'] },
  ]);
});

test('https: off and the other listeners: no clash with a port it does not open', async () => {
  const { config } = await accept(edit({ 3: '  https: off', 5: '  admin: { listen: "127.0.0.1:8443" }' }));
  assert.equal(config.server.admin?.listen.port, 8443);
});

test('shutdown_timeout: a duration, 25s by default, refused with its position when malformed', async () => {
  assert.equal((await accept(edit({}))).config.server.shutdown_timeout, 25_000);
  assert.equal((await accept(edit({ 8: '  shutdown_timeout: 5s' }))).config.server.shutdown_timeout, 5_000);
  expectDiagnostics(await reject(edit({ 8: '  shutdown_timeout: soon' })), [
    { line: 8, col: 21, path: 'server.shutdown_timeout', message: ['`soon`'] },
  ]);
});

test('drain_delay: a positive duration, 5s by default, refused with its position when malformed', async () => {
  assert.equal((await accept(edit({}))).config.server.drain_delay, 5_000);
  assert.equal((await accept(edit({ 8: '  drain_delay: 1ms' }))).config.server.drain_delay, 1);
  expectDiagnostics(await reject(edit({ 8: '  drain_delay: 0s' })), [{ line: 8, col: 16, path: 'server.drain_delay', message: ['`0s`', 'positive'] }]);
});
