import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteTable } from '../../gateway/proxy/route-table.js';
import type { RouteConfig, RouteMatch } from '../../gateway/policy/types.js';

function table(...routes: [string, RouteMatch][]): RouteTable<string> {
  return new RouteTable(
    routes.map(([name, match]) => {
      const config: RouteConfig = {
        name,
        match,
        upstream: 'u',
        allow: { any: true },
        deny: [],
        json_charset: true,
        rate_limits: [],
        identity_required: false,
        on_mask_error: 'fail',
        pos: { file: 'p.yaml', line: 1, col: 1, path: 'routes' },
      };
      return { config, target: name };
    }),
  );
}

function found(t: RouteTable<string>, method: string, host: string, path: string): string {
  const r = t.lookup(method, host, path);
  return r.kind === 'found' ? r.route.target : r.kind;
}

test('an exact path beats any prefix, and the longest prefix wins', () => {
  const t = table(['root', { path_prefix: '/' }], ['api', { path_prefix: '/api/' }], ['v1', { path_prefix: '/api/v1/' }], ['login', { path: '/api/v1/login' }]);
  assert.equal(found(t, 'GET', 'h', '/api/v1/login'), 'login');
  assert.equal(found(t, 'GET', 'h', '/api/v1/login/x'), 'v1');
  assert.equal(found(t, 'GET', 'h', '/api/v2/x'), 'api');
  assert.equal(found(t, 'GET', 'h', '/other'), 'root');
});

test('a prefix covers whole segments only', () => {
  const t = table(['api', { path_prefix: '/api' }], ['slash', { path_prefix: '/web/' }]);
  assert.equal(found(t, 'GET', 'h', '/api'), 'api');
  assert.equal(found(t, 'GET', 'h', '/api/x'), 'api');
  assert.equal(found(t, 'GET', 'h', '/apiary'), 'not_found');
  assert.equal(found(t, 'GET', 'h', '/web/'), 'slash');
  assert.equal(found(t, 'GET', 'h', '/web'), 'not_found');
});

test('on equal paths a host-bound route beats a host-less one, then method-bound beats any-method', () => {
  const t = table(
    ['any', { path_prefix: '/api/' }],
    ['get', { path_prefix: '/api/', methods: ['GET'] }],
    ['host', { path_prefix: '/api/', host: 'a.example.com' }],
  );
  assert.equal(found(t, 'GET', 'a.example.com', '/api/x'), 'host');
  assert.equal(found(t, 'GET', 'b.example.com', '/api/x'), 'get');
  assert.equal(found(t, 'POST', 'b.example.com', '/api/x'), 'any');
});

test('a path whose routes all exclude the method answers method_not_allowed with the allowed set', () => {
  const t = table(['read', { path: '/x', methods: ['GET', 'HEAD'] }], ['write', { path: '/x', methods: ['POST'] }]);
  assert.deepEqual(t.lookup('DELETE', 'h', '/x'), { kind: 'method_not_allowed', allow: ['GET', 'HEAD', 'POST'] });
  assert.equal(found(t, 'POST', 'h', '/x'), 'write');
  assert.equal(found(t, 'GET', 'h', '/y'), 'not_found');
});

test('a host-bound route does not answer for other hosts', () => {
  const t = table(['only', { path_prefix: '/', host: 'api.example.com' }]);
  assert.equal(found(t, 'GET', 'evil.example.com', '/'), 'not_found');
  assert.equal(found(t, 'GET', 'api.example.com', '/'), 'only');
});
