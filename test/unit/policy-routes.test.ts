import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, accept, edit, expectDiagnostics, reject } from '../fixtures/policy/harness.js';
import { neverMatches } from '../../gateway/policy/match-path.js';
import { RouteTable } from '../../gateway/net/route-table.js';

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

test('paths differing only in case or a trailing "/" are one match, and the message says why', async () => {
  expectDiagnostics(
    await reject(withRoutes('  - name: lower', '    match: { path_prefix: /api/internal/ }', '    upstream: legacy', '  - name: upper', '    match: { path_prefix: /API/Internal/ }', '    upstream: billing')),
    [
      {
        line: 25,
        col: 12,
        path: 'routes[1].match',
        message: ['route `upper` can never be chosen: route `lower` (line 21) has the same match', 'paths match without regard to case, so `/API/Internal/` and `/api/internal/` are one match'],
      },
    ],
  );
  expectDiagnostics(
    await reject(withRoutes('  - name: slash', '    match: { path_prefix: /web/, methods: [GET] }', '    upstream: legacy', '  - name: bare', '    match: { path_prefix: /web, methods: [get] }', '    upstream: billing')),
    [{ line: 25, col: 12, path: 'routes[1].match', message: ['every method it takes (GET) goes to `slash` (line 21)', 'a trailing `/` does not change the match, so `/web` and `/web/` are one match'] }],
  );
  expectDiagnostics(
    await reject(withRoutes('  - name: a', '    match: { path: /Web }', '    upstream: legacy', '  - name: b', '    match: { path: /web/ }', '    upstream: billing')),
    [{ line: 25, col: 12, path: 'routes[1].match', message: ['route `b` can never be chosen: route `a` (line 21)', 'so `/web/` and `/Web` are one match'] }],
  );
  // An exact path and a prefix are never one match: the exact one wins its own path.
  const { warnings } = await accept(withRoutes('  - name: a', '    match: { path: /web }', '    upstream: legacy', '  - name: b', '    match: { path_prefix: /web/ }', '    upstream: billing'));
  assert.deepEqual(warnings, []);
});

test('TRACE and CONNECT in a route are refused: no request with them is ever forwarded', async () => {
  expectDiagnostics(await reject(edit({ 22: '    match: { path_prefix: /api/, methods: [GET, trace, CONNECT] }' })), [
    { line: 22, col: 49, path: 'routes[0].match.methods[1]', message: ['`trace` is refused on every route (405)'] },
    { line: 22, col: 56, path: 'routes[0].match.methods[2]', message: ['`CONNECT` is refused on every route (405)'] },
  ]);
});

/** BASE with `server.paths` set and one route whose exact path is `path`. */
function withSemicolons(mode: string | undefined, path: string): string {
  return edit({
    8: `  limits: { body: 2mb, headers_timeout: 5s, request_timeout: 1m }${mode === undefined ? '' : `\n  paths: { semicolons: ${mode} }`}`,
    26: `    match: { path: "${path}" }`,
  });
}

test('a route path holding ";" never matches unless server.paths.semicolons is keep', async () => {
  expectDiagnostics(await reject(withSemicolons(undefined, '/a;v=1/b')), [
    { line: 26, col: 20, path: 'routes[1].match.path', message: ['`/a;v=1/b` can never match', 'server.paths.semicolons: reject'] },
  ]);
  expectDiagnostics(await reject(withSemicolons('strip', '/a;v=1/b')), [
    { line: 27, col: 20, path: 'routes[1].match.path', message: ['(server.paths.semicolons: strip); write `/a/b`'] },
  ]);
  const kept = await accept(withSemicolons('keep', '/a;v=1/b'));
  assert.equal(kept.config.server.paths.semicolons, 'keep');
  assert.equal(kept.config.routes[1]!.match.path, '/a;v=1/b');
  assert.equal((await accept(BASE)).config.server.paths.semicolons, 'reject');
  expectDiagnostics(await reject(edit({ 8: '  paths: { semicolons: drop }' })), [{ line: 8, col: 24, path: 'server.paths.semicolons', message: ['`drop`'] }]);
});

test('a method-bound route that now answers 405 where a looser route would have served is a warning', async () => {
  const text = withRoutes(
    '  - name: all',
    '    match: { path_prefix: / }',
    '    upstream: legacy',
    '  - name: admin',
    '    match: { path_prefix: /admin/, methods: [GET] }',
    '    upstream: billing',
    '    allow: [10.1.0.0/16]',
    '    rate_limit: { key: ip, limit: 10, window: 1m }',
  );
  const { warnings } = await accept(text);
  expectDiagnostics(warnings, [
    {
      line: 25,
      col: 12,
      path: 'routes[1].match',
      severity: 'warning',
      message: [
        'route `admin` takes only GET, HEAD on `/admin/`...',
        'every other method there gets 405 from it instead of reaching route `all` (line 21), which differs in allow, rate_limit',
        'list them on a route with the same match',
      ],
    },
  ]);
  // With a route of the same match for the other methods, nothing changes hands: no warning.
  const covered = await accept(text.replace('defaults:', '  - name: admin-writes\n    match: { path_prefix: /admin }\n    upstream: billing\n    allow: [10.1.0.0/16]\n    rate_limit: { key: ip, limit: 10, window: 1m }\ndefaults:'));
  assert.deepEqual(covered.warnings, []);
  // A method-bound route held to the same rules as the catch-all loses nothing by owning its paths.
  const same = await accept(withRoutes('  - name: all', '    match: { path_prefix: / }', '    upstream: legacy', '  - name: reads', '    match: { path: /feed, methods: [GET] }', '    upstream: billing'));
  assert.deepEqual(same.warnings, []);
});

test('a host-bound method-bound route is compared with the host-less route of the same path', async () => {
  const { warnings } = await accept(
    withRoutes('  - name: api', '    match: { path_prefix: /api/ }', '    upstream: legacy', '  - name: admin', '    match: { path_prefix: /api/, host: admin.example.com, methods: [GET, POST] }', '    upstream: billing', '    rate_limit: { key: ip, limit: 10, window: 1m }'),
  );
  expectDiagnostics(warnings, [
    { line: 25, col: 12, path: 'routes[1].match', severity: 'warning', message: ['takes only GET, HEAD, POST on `/api/`... on admin.example.com', 'route `api` (line 21), which differs in rate_limit'] },
  ]);
});

test('10,000 routes validate into a config whose every route is found where it was written', async () => {
  const lines: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const area = `/area${i % 300}/svc${i}`;
    const match = [`{ path_prefix: ${area}/ }`, `{ path: ${area}/item, methods: [GET, POST] }`, `{ path_prefix: ${area}/, host: h${i % 7}.example.com }`, `{ path: ${area}/login }`][i % 4];
    lines.push(`  - name: r${i}`, `    match: ${match}`, '    upstream: legacy');
  }
  const { config, warnings } = await accept(withRoutes(...lines));
  assert.deepEqual(warnings, []);
  assert.equal(config.routes.length, 10_000);
  const table = new RouteTable(config.routes.map((r) => ({ config: r, target: r.name })));
  for (let i = 0; i < 10_000; i += 13) {
    const area = `/AREA${i % 300}/svc${i}`;
    const [path, host] = [[`${area}/x`, ''], [`${area}/item`, ''], [`${area}`, `h${i % 7}.example.com`], [`${area}/login`, '']][i % 4]!;
    const r = table.lookup('GET', host!, path!);
    assert.equal(r.kind === 'found' ? r.route.target : r.kind, `r${i}`, path);
  }
});

test('a duplicate among 10,000 routes is still found, at its own line', async () => {
  const lines: string[] = [];
  for (let i = 0; i < 10_000; i++) lines.push(`  - name: r${i}`, `    match: { path_prefix: /svc${i}/ }`, '    upstream: legacy');
  lines.push('  - name: late', '    match: { path_prefix: /SVC4711 }', '    upstream: billing');
  expectDiagnostics(await reject(withRoutes(...lines)), [
    { line: 21 + 30_000 + 1, col: 12, path: 'routes[10000].match', message: ['route `late` can never be chosen: route `r4711` (line 14154)'] },
  ]);
});
