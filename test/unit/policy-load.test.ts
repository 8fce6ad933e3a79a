import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicy } from '../../gateway/policy/load.js';
import { PolicyError } from '../../gateway/types/policy.js';
import { BASE, ENV, PASSPHRASE, POLICY_FILE, ROOT, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';

/** What an upstream written with only `url` (and maybe `timeout`) gets besides. */
function upstreamDefaults(url: string) {
  return {
    targets: [new URL(url)],
    balance: 'round_robin',
    preserve_host: false,
    connections: 128,
    connect_timeout: 5_000,
    queue_timeout: 5_000,
    eject: { failures: 3, cooldown: 10_000, max_cooldown: 300_000 },
  } as const;
}

test('a valid full policy becomes the typed config', async () => {
  writeFileSync(POLICY_FILE, BASE);
  const { config, warnings } = await loadPolicy(POLICY_FILE, { env: ENV });
  assert.deepEqual(warnings, []);
  const pos = (line: number, col: number, path: string): { file: string; line: number; col: number; path: string } => ({
    file: POLICY_FILE,
    line,
    col,
    path,
  });
  const certs = join(ROOT, 'certs');
  assert.deepEqual(config, {
    version: 1,
    file: POLICY_FILE,
    server: {
      https: { listen: { host: '0.0.0.0', port: 8443 }, pos: pos(3, 20, 'server.https.listen') },
      http: { listen: { host: '0.0.0.0', port: 8080 }, mode: 'redirect', pos: pos(4, 19, 'server.http.listen') },
      admin: { listen: { host: '127.0.0.1', port: 9901 }, pos: pos(5, 20, 'server.admin.listen') },
      public_host: 'api.example.com',
      trusted_proxies: ['10.0.0.0/8', '::1/128', '192.168.1.7/32'],
      strip_response_headers: ['server', 'x-powered-by'],
      limits: { body: 2 * 1024 * 1024, handshake_timeout: 10_000, headers_timeout: 5000, request_timeout: 60_000, send_timeout: 60_000, http2_streams: 100, http2_resets: 100 },
      http2: true,
      shutdown_timeout: 25_000,
      drain_delay: 5_000,
      paths: { semicolons: 'reject' },
      headers: { underscores: 'drop' },
      trusted_headers: [],
      request_id: { header: 'x-request-id', trust: true },
      log: {},
    },
    tls: {
      min_version: 'TLSv1.3',
      roots: { bundle: join(certs, 'ca.pem') },
      expiry_warning: 14 * 86_400_000,
      certificates: [
        {
          cert: join(certs, 'fullchain.pem'),
          key: join(certs, 'privkey.pem'),
          passphrase: PASSPHRASE,
          pos: pos(14, 7, 'tls.certificates[0]'),
        },
      ],
      hsts: null,
      pos: pos(9, 1, 'tls'),
    },
    upstreams: new Map([
      ['legacy', { name: 'legacy', url: new URL('http://127.0.0.1:9000'), timeout: 10_000, ...upstreamDefaults('http://127.0.0.1:9000'), pos: pos(18, 3, 'upstreams.legacy') }],
      [
        'billing',
        {
          name: 'billing',
          url: new URL('https://billing.internal:9443/v1'),
          timeout: 30_000,
          ...upstreamDefaults('https://billing.internal:9443/v1'),
          tls: { pin: [], files: {}, pos: pos(19, 3, 'upstreams.billing') },
          pos: pos(19, 3, 'upstreams.billing'),
        },
      ],
    ]),
    routes: [
      {
        name: 'api',
        match: { path_prefix: '/api/', methods: ['GET', 'POST'], host: 'api.example.com' },
        upstream: 'legacy',
        timeout: 1500,
        allow: { any: true },
        deny: [],
        json_charset: true,
        rate_limits: [],
        identity_required: false,
        on_mask_error: 'fail',
        pos: pos(21, 5, 'routes[0]'),
      },
      {
        name: 'pay',
        match: { path: '/pay/notify' },
        upstream: 'billing',
        allow: { any: true },
        deny: [],
        json_charset: true,
        rate_limits: [],
        identity_required: false,
        on_mask_error: 'fail',
        pos: pos(25, 5, 'routes[1]'),
      },
    ],
    defaults: { allow: { any: true }, deny: [], rate_limits: [] },
    store: { kind: 'memory', key_prefix: 'wxgw:', command_timeout: 200, on_unavailable: 'deny', pos: pos(1, 1, '') },
    mask_profiles: new Map(),
  });
  assert.ok(config.upstreams.get('legacy')!.url instanceof URL);
});

test('a minimal policy gets every default', async () => {
  const text = [
    'version: 1',
    'server:',
    '  https: { listen: "[::]:443" }',
    'tls:',
    '  certificates: [{ cert: ../certs/fullchain.pem, key: ../certs/privkey.pem }]',
    'upstreams:',
    '  app: { url: "http://127.0.0.1:3000" }',
    'routes:',
    '  - { name: all, match: { path_prefix: / }, upstream: app, allow: any }',
  ].join('\n');
  const { config, warnings } = await accept(text, {});
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.server.https?.listen, { host: '::', port: 443 });
  assert.equal(config.server.http, null);
  assert.equal(config.server.admin, null);
  assert.equal(config.server.public_host, undefined);
  assert.deepEqual(config.server.trusted_proxies, []);
  assert.deepEqual(config.server.strip_response_headers, ['server', 'x-powered-by']);
  assert.deepEqual(config.server.limits, { body: 1024 * 1024, handshake_timeout: 10_000, headers_timeout: 10_000, request_timeout: 30_000, send_timeout: 60_000, http2_streams: 100, http2_resets: 100 });
  assert.equal(config.tls.min_version, 'TLSv1.2');
  assert.equal(config.tls.roots, 'system');
  assert.equal(config.tls.expiry_warning, 21 * 86_400_000);
  assert.equal(config.tls.certificates[0]!.passphrase, undefined);
  assert.equal(config.tls.hsts, null);
  assert.equal(config.upstreams.get('app')!.timeout, 30_000);
  assert.deepEqual(config.routes[0]!.match, { path_prefix: '/' });
  assert.equal(config.routes[0]!.timeout, undefined);
  assert.deepEqual(config.routes[0]!.deny, []);
  assert.equal(config.routes[0]!.cors, undefined);
  assert.equal(config.routes[0]!.json_charset, true);
});

test('a policy with many problems reports every one of them, in file order', async () => {
  const text = edit({
    1: 'version: 2',
    4: '  http: { listen: "0.0.0.0:8080", mode: redirct }',
    8: '  limits: { body: 1 mb, headers_timeout: 10s, request_timeout: 30s }',
    10: '  min_version: TLSv1.1',
    14: '    - cert: ../certs/missing.pem',
    16: '      passphrase: ${TLS_PASS}',
    19: '  billing: { url: "https://billing.internal:9443/v1", timeot: 5s }',
    22: '    match: { path_prefix: /api//, methods: [GET] }',
    23: '    upstream: legasy',
    25: '  - name: api',
  });
  const diagnostics = await reject(text, {});
  expectDiagnostics(diagnostics, [
    { line: 1, col: 10, path: 'version', message: ['must be 1'] },
    { line: 4, col: 41, path: 'server.http.mode', message: ['did you mean `redirect`?'] },
    { line: 8, col: 19, path: 'server.limits.body', message: ['has a space'] },
    { line: 10, col: 16, path: 'tls.min_version', message: ['`TLSv1.1` is refused'] },
    { line: 14, col: 13, path: 'tls.certificates[0].cert', message: ['cannot read certificate file', 'missing.pem'] },
    { line: 16, col: 19, path: 'tls.certificates[0].passphrase', message: ['TLS_PASS', 'is not set'] },
    { line: 19, col: 55, path: 'upstreams.billing.timeot', message: ['did you mean `timeout`?'] },
    { line: 22, col: 27, path: 'routes[0].match.path_prefix', message: ['can never match'] },
    { line: 23, col: 15, path: 'routes[0].upstream', message: ['did you mean `legacy`?'] },
    { line: 25, col: 11, path: 'routes[1].name', message: ['duplicate route name `api`'] },
  ]);
});

test('the PolicyError carries the warnings too, and its message lists every diagnostic', async () => {
  const text = edit({ 1: 'version: 2', 5: '  admin: { listen: "0.0.0.0:9901" }' });
  writeFileSync(POLICY_FILE, text);
  await assert.rejects(loadPolicy(POLICY_FILE, { env: ENV }), (err: unknown) => {
    assert.ok(err instanceof PolicyError);
    assert.deepEqual(
      err.diagnostics.map((d) => [d.severity, d.line]),
      [
        ['error', 1],
        ['warning', 5],
      ],
    );
    assert.match(err.message, /^policy rejected with 1 error:\n.*policy\.yaml:1:10  version  must be 1.*\n.*:5:20  server\.admin\.listen  warning: admin endpoints exposed/);
    return true;
  });
});

test('loadPolicy reads the environment from process.env by default', async () => {
  writeFileSync(POLICY_FILE, BASE);
  process.env.TLS_KEY_PASSPHRASE = 'from-process-env';
  try {
    const { config } = await loadPolicy(POLICY_FILE);
    assert.equal(config.tls.certificates[0]!.passphrase, 'from-process-env');
  } finally {
    delete process.env.TLS_KEY_PASSPHRASE;
  }
});
