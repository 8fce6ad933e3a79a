import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileCors, PREFLIGHT_VARY } from '../../gateway/guards/cors.js';
import type { CorsConfig } from '../../gateway/types/policy.js';

function cors(overrides: Partial<CorsConfig> = {}): CorsConfig {
  return {
    origins: ['https://app.example.com', 'http://localhost:5173', 'https://*.shop.example.com', 'https://*.admin.example.com:8443'],
    credentials: true,
    methods: ['GET', 'POST'],
    headers: ['content-type', 'x-wx-token'],
    expose_headers: ['x-request-id'],
    max_age: 600,
    ...overrides,
  };
}

const guard = compileCors(cors());

test('listed origins and subdomain patterns are allowed and echoed back exactly', () => {
  for (const origin of [
    'https://app.example.com',
    'http://localhost:5173',
    'https://a.shop.example.com',
    'https://a.b.shop.example.com',
    'https://x-1.shop.example.com',
    'https://a.admin.example.com:8443',
  ]) {
    assert.equal(guard.allowOrigin(origin), origin, origin);
  }
});

test('lookalikes, other schemes and ports, and non-browser spellings are not allowed', () => {
  for (const origin of [
    'https://shop.example.com', // the bare suffix is not a subdomain
    'https://evil-shop.example.com',
    'https://evilshop.example.com',
    'https://shop.example.com.evil.net',
    'https://a.shop.example.com.evil.net',
    'https://a.shop.example.com:443',
    'https://a.shop.example.com:8443',
    'http://a.shop.example.com',
    'wss://a.shop.example.com',
    'https://.shop.example.com',
    'https://a..shop.example.com',
    'https://user@a.shop.example.com',
    'https://evil.net/.shop.example.com',
    'https://evil.net?.shop.example.com',
    'https://evil.net#.shop.example.com',
    'https://a.admin.example.com', // the pattern names port 8443
    'https://app.example.com/', // trailing slash: no browser sends it
    'HTTPS://APP.EXAMPLE.COM', // browsers serialise lower-case
    'https://App.example.com',
    'https://A.shop.example.com',
    'http://app.example.com',
    'https://app.example.com:443',
    'https://app.example.com.evil.net',
    'https://evilapp.example.com',
    'http://localhost:5174',
    'http://localhost',
    'null',
    '',
    '*',
    // Two Origin headers arrive joined by Node; neither half may be picked out.
    'https://evil.example, https://app.example.com',
    'https://evil.example, https://a.shop.example.com',
  ]) {
    assert.equal(guard.allowOrigin(origin), undefined, origin);
  }
  assert.equal(guard.allowOrigin(undefined), undefined);
});

test('`null` is never allowed even when listed', () => {
  assert.equal(compileCors(cors({ origins: ['null'] })).allowOrigin('null'), undefined);
});

test('`*` answers * to every origin and is refused together with credentials', () => {
  const open = compileCors(cors({ origins: ['*'], credentials: false }));
  assert.equal(open.allowOrigin('https://anyone.example'), '*');
  assert.equal(open.allowOrigin(undefined), undefined, 'no Origin, no CORS answer');
  assert.equal(open.preflightHeaders['access-control-allow-credentials'], undefined);
  assert.throws(() => compileCors(cors({ origins: ['*'], credentials: true })), /credentials/);
});

test('preflight and actual-request headers are precomputed from the policy', () => {
  assert.deepEqual({ ...guard.preflightHeaders }, {
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': 'content-type, x-wx-token',
    'access-control-allow-credentials': 'true',
    'access-control-max-age': '600',
    vary: PREFLIGHT_VARY,
  });
  assert.deepEqual(guard.actualHeaders.map((h) => [...h]), [
    ['access-control-allow-credentials', 'true'],
    ['access-control-expose-headers', 'x-request-id'],
  ]);
  const bare = compileCors(cors({ credentials: false, headers: [], expose_headers: [] }));
  assert.equal(bare.preflightHeaders['access-control-allow-headers'], undefined);
  assert.equal(bare.preflightHeaders['access-control-allow-credentials'], undefined);
  assert.deepEqual(bare.actualHeaders, []);
});
