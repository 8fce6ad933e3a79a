import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';
import { neverMatches } from '../../gateway/policy/match-path.js';

/** BASE with its routes replaced: the first line given is line 21. */
function withRoutes(...lines: string[]): string {
  return BASE.split('\n').slice(0, 20).join('\n') + '\n' + lines.join('\n') + '\ndefaults: { allow: any }\n';
}

test('a route naming an undefined upstream gets the closest defined name', async () => {
  expectDiagnostics(await reject(edit({ 23: '    upstream: legasy' })), [
    { line: 23, col: 15, path: 'routes[0].upstream', message: ['upstream `legasy` is not defined under `upstreams`; did you mean `legacy`?'] },
  ]);
  expectDiagnostics(await reject(edit({ 23: '    upstream: payments' })), [
    { line: 23, col: 15, path: 'routes[0].upstream', message: ['upstream `payments` is not defined', 'defined upstreams: legacy, billing'] },
  ]);
});

test('a duplicate route name points at the second and names the first one\'s line', async () => {
  expectDiagnostics(await reject(edit({ 25: '  - name: api' })), [
    { line: 25, col: 11, path: 'routes[1].name', message: ['duplicate route name `api`', 'routes[0] (line 21)'] },
  ]);
});

test('paths that can never match are refused, each with its reason', async () => {
  const cases: [string, string[]][] = [
    ['api/', ['`api/` does not fit', 'a path starting with /']],
    ['/api/../admin/', ['`/api/../admin/` can never match', 'normalises to `/admin/`']],
    ['/api//v1/', ['`/api//v1/` can never match', 'normalises to `/api/v1/`']],
    ['/api/./v1', ['normalises to `/api/v1`']],
    ['/%7euser/', ['normalises to `/~user/`']],
    ['/a%2fb', ['can never match', 'encoded "/"', 'refused']],
    ['/../etc', ['climbs above the root']],
    ['/a/..;/b', ['dot segment with parameters']],
    ['/search?q=1', ['holds `?`', 'query string is never part of it']],
    ['/page#top', ['holds `#`', 'never send the fragment']],
    ['/café/menü', ['holds `é`, `ü`, which clients send percent-encoded', 'write `/caf%C3%A9/men%C3%BC`']],
    ['/a b', ['holds ` `', 'write `/a%20b`']],
  ];
  for (const [path, fragments] of cases) {
    expectDiagnostics(await reject(edit({ 26: `    match: { path: "${path}" }` })), [
      { line: 26, col: 20, path: 'routes[1].match.path', message: fragments },
    ]);
  }
});

test('the same rules hold for prefixes', async () => {
  expectDiagnostics(await reject(edit({ 22: '    match: { path_prefix: "/api//" }' })), [
    { line: 22, col: 27, path: 'routes[0].match.path_prefix', message: ['can never match', 'normalises to `/api/`'] },
  ]);
  // `/api/..` would only cover `/api/..` and `/api/../x`, which normalise elsewhere.
  expectDiagnostics(await reject(edit({ 22: '    match: { path_prefix: "/api/.." }' })), [
    { line: 22, col: 27, path: 'routes[0].match.path_prefix', message: ['normalises to `/`'] },
  ]);
});

test('paths in normal form pass, percent-escapes and sub-delimiters included', () => {
  for (const path of ['/', '/api/', '/api', '/a%20b', '/caf%C3%A9', "/a;b=c/d:e@f!$&'()*+,", '/~user/']) {
    assert.equal(neverMatches(path), undefined, path);
  }
});

test('a match needs exactly one of path and path_prefix', async () => {
  expectDiagnostics(await reject(edit({ 22: '    match: { path: /api/, path_prefix: /api/ }' })), [
    { line: 22, col: 12, path: 'routes[0].match', message: ['sets both `path` and `path_prefix`; keep exactly one'] },
  ]);
  expectDiagnostics(await reject(edit({ 22: '    match: { methods: [GET] }' })), [
    { line: 22, col: 12, path: 'routes[0].match', message: ['needs exactly one of `path` (an exact path) or `path_prefix`'] },
  ]);
});

test('methods must be known HTTP methods, each once; they are upper-cased', async () => {
  expectDiagnostics(await reject(edit({ 22: '    match: { path_prefix: /api/, methods: [GTE, post, POST, FETCH] }' })), [
    { line: 22, col: 44, path: 'routes[0].match.methods[0]', message: ['`GTE` is not an HTTP method; did you mean `GET`?'] },
    { line: 22, col: 55, path: 'routes[0].match.methods[2]', message: ['`POST` is listed twice'] },
    { line: 22, col: 61, path: 'routes[0].match.methods[3]', message: [/^`FETCH` is not an HTTP method(; did you mean `[A-Z]+`\?)?$/] },
  ]);
  const { config } = await accept(edit({ 22: '    match: { path_prefix: /api/, methods: [get, Patch, options] }' }));
  assert.deepEqual(config.routes[0]!.match.methods, ['GET', 'PATCH', 'OPTIONS']);
});

test('a route with the same match as an earlier one can never be chosen', async () => {
  const text = withRoutes(
    '  - name: first',
    '    match: { path_prefix: /api/ }',
    '    upstream: legacy',
    '  - name: second',
    '    match: { path_prefix: /api/ }',
    '    upstream: billing',
  );
  expectDiagnostics(await reject(text), [
    {
      line: 25,
      col: 12,
      path: 'routes[1].match',
      message: ['route `second` can never be chosen: route `first` (line 21) has the same match and is listed first'],
    },
  ]);
});

test('host names compare without case, methods as sets', async () => {
  const text = withRoutes(
    '  - name: first',
    '    match: { path: /login, host: API.example.com, methods: [POST, GET] }',
    '    upstream: legacy',
    '  - name: second',
    '    match: { path: /login, host: api.EXAMPLE.com, methods: [get] }',
    '    upstream: billing',
  );
  expectDiagnostics(await reject(text), [
    {
      line: 25,
      col: 12,
      path: 'routes[1].match',
      message: ['route `second` can never be chosen: every method it takes (GET) goes to `first` (line 21)'],
    },
  ]);
});

test('a route whose methods are all taken by several earlier routes is shadowed too', async () => {
  const text = withRoutes(
    '  - name: reads',
    '    match: { path_prefix: /api/, methods: [GET, HEAD] }',
    '    upstream: legacy',
    '  - name: writes',
    '    match: { path_prefix: /api/, methods: [POST] }',
    '    upstream: legacy',
    '  - name: both',
    '    match: { path_prefix: /api/, methods: [GET, POST] }',
    '    upstream: billing',
  );
  expectDiagnostics(await reject(text), [
    {
      line: 28,
      col: 12,
      path: 'routes[2].match',
      message: ['route `both` can never be chosen', '(GET, POST) goes to `reads` (line 21), `writes` (line 24)'],
    },
  ]);
});

test('a route that loses only some of its methods is a warning', async () => {
  const text = withRoutes(
    '  - name: reads',
    '    match: { path_prefix: /api/, methods: [GET] }',
    '    upstream: legacy',
    '  - name: rest',
    '    match: { path_prefix: /api/, methods: [GET, POST] }',
    '    upstream: billing',
  );
  const { warnings } = await accept(text);
  expectDiagnostics(warnings, [
    {
      line: 25,
      col: 12,
      path: 'routes[1].match',
      severity: 'warning',
      message: ['route `rest` never receives GET: `reads` (line 21), listed first with the same path and host, takes it'],
    },
  ]);
});

test('routes that overlap but each win some requests are accepted', async () => {
  const text = withRoutes(
    '  - name: any-method',
    '    match: { path_prefix: /api/ }',
    '    upstream: legacy',
    '  - name: posts',
    '    match: { path_prefix: /api/, methods: [POST] }',
    '    upstream: billing',
    '  - name: host-bound',
    '    match: { path_prefix: /api/, host: admin.example.com }',
    '    upstream: billing',
    '  - name: exact',
    '    match: { path: /api/ }',
    '    upstream: billing',
    '  - name: longer',
    '    match: { path_prefix: /api/v2/ }',
    '    upstream: billing',
    '  - name: gets-first',
    '    match: { path: /login, methods: [GET] }',
    '    upstream: legacy',
    '  - name: more-methods-later',
    '    match: { path: /login, methods: [POST, PUT] }',
    '    upstream: billing',
  );
  const { warnings, config } = await accept(text);
  assert.deepEqual(warnings, []);
  assert.equal(config.routes.length, 7);
});
