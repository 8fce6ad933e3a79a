import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

// BASE line 7 is `  trusted_proxies: [...]`, line 8 `  limits: ...` (server section).

test('server.headers and server.trusted_headers default to drop and none', async () => {
  const { config, warnings } = await accept(edit({}));
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.headers, { underscores: 'drop' });
  assert.deepEqual(config.server.trusted_headers, []);
});

test('trusted_headers names client claims, lower-cased, believed from trusted_proxies', async () => {
  const { config, warnings } = await accept(
    edit({ 8: '  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m }\n  headers: { underscores: reject }\n  trusted_headers: [X-Real-IP, true-client-ip, X-Real-IP]' }),
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.headers, { underscores: 'reject' });
  assert.deepEqual(config.server.trusted_headers, ['x-real-ip', 'true-client-ip']);
});

test('trusted_headers without trusted_proxies, or naming what is no claim or a _ spelling, is refused', async () => {
  const text = edit({
    7: '  trusted_headers: [x-real-ipp, x-forwarded-for, x-custom, X_Real_IP, x.real.ip]',
  });
  expectDiagnostics(await reject(text), [
    { line: 7, col: 3, path: 'server.trusted_headers', message: ['only believed from server.trusted_proxies, and there are none'] },
    { line: 7, col: 21, path: 'server.trusted_headers[0]', message: ['`x-real-ipp` is not a client claim wxgw removes', 'did you mean `x-real-ip`?'] },
    { line: 7, col: 33, path: 'server.trusted_headers[1]', message: ["`x-forwarded-for` is the gateway's own"] },
    { line: 7, col: 50, path: 'server.trusted_headers[2]', message: ['`x-custom` is not a client claim', 'reaches the upstream anyway'] },
    { line: 7, col: 60, path: 'server.trusted_headers[3]', message: ['`X_Real_IP` is not the `-` spelling', '`x-real-ip` exactly'] },
    { line: 7, col: 71, path: 'server.trusted_headers[4]', message: ['`x.real.ip` is not the `-` spelling'] },
  ]);
});

test('server.headers.underscores takes drop, reject or allow only', async () => {
  const diagnostics = await reject(edit({ 8: '  limits: { body: 2mb }\n  headers: { underscores: strip, other: 1 }' }));
  assert.equal(diagnostics.length, 2, diagnostics.map((d) => d.message).join('\n'));
  assert.ok(diagnostics.some((d) => d.path === 'server.headers.underscores' && /drop/.test(d.message) && /reject/.test(d.message) && /allow/.test(d.message)));
  assert.ok(diagnostics.some((d) => d.path.startsWith('server.headers') && /other/.test(d.message)));
});
