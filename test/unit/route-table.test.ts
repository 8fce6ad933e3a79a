import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteTable } from '../../gateway/net/route-table.js';
import type { RouteConfig, RouteMatch } from '../../gateway/types/policy.js';

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
  assert.equal(found(t, 'GET', 'h', '/web'), 'slash', 'a prefix /x/ also covers /x');
  assert.equal(found(t, 'GET', 'h', '/website'), 'not_found');
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

test('paths match without regard to case: a stricter route covers every spelling of its paths', () => {
  const t = table(['all', { path_prefix: '/' }], ['internal', { path_prefix: '/api/internal/' }], ['me', { path: '/api/me/profile' }], ['cb', { path_prefix: '/WX/Callback' }]);
  for (const p of ['/api/internal/y', '/api/INTERNAL/y', '/Api/Internal/Y', '/api/internal', '/API/INTERNAL']) assert.equal(found(t, 'GET', 'h', p), 'internal', p);
  for (const p of ['/api/me/profile', '/api/ME/profile', '/API/ME/PROFILE']) assert.equal(found(t, 'GET', 'h', p), 'me', p);
  for (const p of ['/wx/callback', '/WX/callback', '/wx/callback/', '/wx/CALLBACK/x']) assert.equal(found(t, 'POST', 'h', p), 'cb', p);
  assert.equal(found(t, 'GET', 'h', '/api/internalx'), 'all');
  assert.equal(found(t, 'GET', 'h', '/api/adm%C4%B1n/'), 'all');
  const n = table(['admin', { path_prefix: '/api/admin/' }], ['all', { path_prefix: '/' }]);
  assert.equal(found(n, 'GET', 'h', '/api/adm%C4%B1n/x'), 'admin', 'dotless i folds as Java and .NET fold it');
});

test('a route listing methods owns its paths: other methods get 405 with Allow, never the looser route', () => {
  const t = table(['all', { path_prefix: '/' }], ['admin', { path_prefix: '/admin/', methods: ['GET'] }]);
  assert.equal(found(t, 'GET', 'h', '/admin/x'), 'admin');
  assert.equal(found(t, 'HEAD', 'h', '/admin/x'), 'admin', 'HEAD is matched as GET');
  for (const m of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    assert.deepEqual(t.lookup(m, 'h', '/Admin/x'), { kind: 'method_not_allowed', allow: ['GET', 'HEAD'] }, m);
  }
  assert.equal(found(t, 'POST', 'h', '/other'), 'all');
});

test('other methods go on only to a route with the same match', () => {
  const t = table(
    ['all', { path_prefix: '/' }],
    ['read', { path_prefix: '/api/', methods: ['GET'] }],
    ['head', { path_prefix: '/api/', methods: ['HEAD'] }],
    ['rest', { path_prefix: '/api' }],
  );
  assert.equal(found(t, 'GET', 'h', '/api/x'), 'read');
  assert.equal(found(t, 'HEAD', 'h', '/api/x'), 'head', 'a route listing HEAD itself takes it');
  assert.equal(found(t, 'DELETE', 'h', '/api/x'), 'rest', '/api and /api/ are one match');
  assert.equal(found(t, 'DELETE', 'h', '/apix'), 'all');
});

test('a host-bound route owns its paths on its host; other hosts go on to host-less routes', () => {
  const t = table(['api', { path_prefix: '/api/' }], ['admin', { path_prefix: '/api/', host: 'admin.example.com', methods: ['GET'] }]);
  assert.equal(found(t, 'GET', 'admin.example.com', '/api/x'), 'admin');
  assert.deepEqual(t.lookup('POST', 'admin.example.com', '/api/x'), { kind: 'method_not_allowed', allow: ['GET', 'HEAD'] });
  assert.equal(found(t, 'POST', 'www.example.com', '/api/x'), 'api');
  assert.equal(found(t, 'POST', '', '/api/x'), 'api', 'no Host: host-less routes only');
});

test('an exact path owns its path; the prefixes keep the rest', () => {
  const t = table(['all', { path_prefix: '/' }], ['login', { path: '/wx/login', methods: ['POST'] }]);
  assert.deepEqual(t.lookup('GET', 'h', '/WX/Login'), { kind: 'method_not_allowed', allow: ['POST'] });
  assert.equal(t.lookup('GET', 'h', '/wx/login/').kind, 'method_not_allowed', 'a trailing slash does not change the match');
  assert.equal(found(t, 'POST', 'h', '/wx/login/'), 'login');
  assert.equal(found(t, 'GET', 'h', '/wx/login/x'), 'all');
});

test('10,000 routes: every one is found by its own path, in any case', () => {
  const routes: [string, RouteMatch][] = [['all', { path_prefix: '/' }]];
  for (let i = 0; i < 10_000; i++) {
    routes.push([`p${i}`, { path_prefix: `/area${i % 97}/svc${i}/` }], [`e${i}`, { path: `/area${i % 97}/svc${i}/item`, methods: ['GET'] }]);
  }
  const t = table(...routes);
  for (let i = 0; i < 10_000; i += 7) {
    assert.equal(found(t, 'GET', 'h', `/AREA${i % 97}/svc${i}/x/y`), `p${i}`);
    assert.equal(found(t, 'HEAD', 'h', `/area${i % 97}/SVC${i}/item`), `e${i}`);
    assert.equal(t.lookup('POST', 'h', `/area${i % 97}/svc${i}/item`).kind, 'method_not_allowed');
  }
  assert.equal(found(t, 'GET', 'h', '/area1/svc99999/x'), 'all');
});
