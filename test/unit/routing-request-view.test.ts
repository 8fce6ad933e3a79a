// The routing decision on a real snapshot built from policy text, and what a look-up costs: a
// request never scans the route list, whatever its size.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { POLICY_FILE, accept } from '../fixtures/policy/harness.js';
import { createLogger } from '../../gateway/observability/logger.js';
import { UpstreamPools } from '../../gateway/proxy/forwarder.js';
import { RouteTable } from '../../gateway/net/route-table.js';
import { route, type Routing } from '../../gateway/proxy/routing.js';
import { requestState } from '../../gateway/proxy/request-state.js';
import { buildSnapshot, type Snapshot } from '../../gateway/snapshot.js';
import { MemoryStore } from '../../gateway/store/memory-store.js';
import type { RouteConfig } from '../../gateway/types/policy.js';

const POLICY = `version: 1
server:
  https: { listen: "127.0.0.1:8443" }
  paths: { semicolons: strip }
tls:
  certificates:
    - { cert: ../certs/fullchain.pem, key: ../certs/privkey.pem }
upstreams:
  legacy: { url: "http://127.0.0.1:9000/base" }
routes:
  - { name: all, match: { path_prefix: / }, upstream: legacy }
  - { name: admin, match: { path_prefix: /admin/, methods: [GET] }, upstream: legacy, cors: { origins: ["https://app.example.com"], methods: [GET, POST] } }
  - { name: hosted, match: { path_prefix: /h/, host: admin.example.com }, upstream: legacy }
defaults: { allow: any }
`;

let snapshot: Snapshot;
const pools = new UpstreamPools();
before(async () => {
  const { config } = await accept(POLICY);
  assert.equal(config.file, POLICY_FILE);
  snapshot = await buildSnapshot(config, [], { store: new MemoryStore(), pools, logger: createLogger({ level: 'silent' }) });
});
after(() => pools.close());

function decide(method: string, url: string, headers: Record<string, string> = { host: 'api.example.com' }, rawHeaders = Object.entries(headers).flat()): Routing {
  const raw = { method, url, headers, rawHeaders, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  return route(raw, requestState(raw, snapshot));
}

function summary(r: Routing): string {
  if (r.kind === 'refuse') return `${r.reason}${r.headers?.allow ? ` (${r.headers.allow})` : ''}`;
  return 'target' in r ? `${r.target.name} ${r.dest}` : 'admitted';
}

test('the decision is made on the normal form, and the upstream path is that form', () => {
  const cases: [string, string, string][] = [
    ['GET', '/Admin/Users?x=1', 'admin /base/Admin/Users?x=1'],
    ['HEAD', '/admin/users', 'admin /base/admin/users'],
    ['POST', '/ADMIN/users', 'method_not_allowed (GET, HEAD)'],
    ['GET', '/admin;jsessionid=1/users;x', 'admin /base/admin/users'],
    ['POST', '/other;v=1/x', 'all /base/other/x'],
    ['GET', '/admin./users', 'path_invalid'],
    ['TRACE', '/other', 'method_not_allowed'],
    ['CONNECT', '/other', 'method_not_allowed'],
  ];
  for (const [method, url, want] of cases) assert.equal(summary(decide(method, url)), want, `${method} ${url}`);
});

test('a preflight asking for a method the owning route does not take is refused, not sent to the catch-all', () => {
  const ask = (m: string): string => summary(decide('OPTIONS', '/admin/x', { host: 'api.example.com', origin: 'https://app.example.com', 'access-control-request-method': m }));
  assert.doesNotMatch(ask('GET'), /method_not_allowed/);
  assert.equal(ask('POST'), 'method_not_allowed (GET, HEAD)');
});

test('Host: routed on its normal form, refused without one', () => {
  for (const host of ['admin.example.com', 'ADMIN.example.COM.', 'admin.example.com.:8443']) assert.equal(summary(decide('GET', '/h/x', { host })), 'hosted /base/h/x', host);
  assert.equal(summary(decide('GET', '/h/x', {})), 'all /base/h/x', 'no Host: host-less routes only');
  for (const host of ['evil@admin.example.com', 'admin.example.com#', '[admin.example.com]', 'a b']) assert.equal(summary(decide('GET', '/h/x', { host })), 'host_invalid', host);
});

test('a look-up costs the same among 10 routes as among 10,000: a probe per path segment, no scan', () => {
  const config = (name: string, path_prefix: string): RouteConfig => ({
    name,
    match: { path_prefix },
    upstream: 'u',
    allow: { any: true },
    deny: [],
    json_charset: true,
    rate_limits: [],
    identity_required: false,
    on_mask_error: 'fail',
    pos: { file: 'p.yaml', line: 1, col: 1, path: 'routes' },
  });
  const tableOf = (count: number): RouteTable<string> => {
    const routes = [config('root', '/'), config('r4711', '/svc4711/v1/')];
    for (let i = 0; i < count; i++) routes.push(config(`r${i}-other`, `/other${i}/v1/`));
    return new RouteTable(routes.map((c) => ({ config: c, target: c.name })));
  };
  // Probes of any kind a table could use to find a route: map look-ups and prefix comparisons.
  const get = Map.prototype.get;
  const startsWith = String.prototype.startsWith;
  const work = (table: RouteTable<string>): number => {
    let probes = 0;
    Map.prototype.get = function (this: Map<unknown, unknown>, key: unknown) {
      probes++;
      return get.call(this, key);
    };
    String.prototype.startsWith = function (this: string, search: string, position?: number) {
      probes++;
      return startsWith.call(this, search, position);
    };
    try {
      const hit = table.lookup('GET', 'h', '/SVC4711/v1/a/b');
      const miss = table.lookup('GET', 'h', '/nowhere/a/b/c');
      assert.equal(hit.kind === 'found' && hit.route.target, 'r4711');
      assert.equal(miss.kind === 'found' && miss.route.target, 'root');
    } finally {
      Map.prototype.get = get;
      String.prototype.startsWith = startsWith;
    }
    return probes;
  };
  const small = work(tableOf(10));
  const large = work(tableOf(10_000));
  assert.equal(large, small, 'the work does not grow with the number of routes');
  assert.ok(large > 0 && large <= 20, `${large} probes for two look-ups`);
});

test('two Host lines are refused, whichever spelling the second one has', () => {
  const headers = { host: 'api.example.com' };
  assert.equal(summary(decide('GET', '/x', headers, ['Host', 'api.example.com', 'HOST', 'admin.example.com'])), 'host_invalid');
  assert.equal(summary(decide('GET', '/x', headers, ['Host', 'api.example.com', 'X-Host', 'admin.example.com'])), 'all /base/x');
});
