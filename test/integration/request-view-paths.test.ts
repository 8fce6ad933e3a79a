// Paths, methods and Host are read in one normal form before any rule applies: every spelling a
// backend folds onto a stricter route meets that route (or is refused), never a looser one, and
// the upstream sees exactly the normalised request. Real HTTPS, a real upstream that records
// what reached it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as plainRequest } from 'node:http';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { httpsRequest, type ClientResponse, type RequestOptions } from '../helpers/https-client.js';
import { PROTOCOLS } from '../helpers/h2-client.js';

const OFFICE = '10.9.9.0/24'; // the test client, 127.0.0.1, is outside it

function policy(upstream: TestUpstream, extraServer = ''): (ctx: { httpsPort: number; httpPort: number; tlsSection: string }) => string {
  return (ctx) => `version: 1
server:
  https: { listen: "127.0.0.1:${ctx.httpsPort}" }
  http: { listen: "127.0.0.1:${ctx.httpPort}", mode: redirect }
  public_host: public.example.com
${extraServer}
${ctx.tlsSection}
upstreams:
  legacy: { url: "${upstream.url}" }
routes:
  - name: all
    match: { path_prefix: / }
    upstream: legacy
  - name: internal
    match: { path_prefix: /api/internal/ }
    upstream: legacy
    allow: [${OFFICE}]
  - name: me
    match: { path: /api/me/profile }
    upstream: legacy
    allow: [${OFFICE}]
  - name: callback
    match: { path_prefix: /wx/callback }
    upstream: legacy
    allow: [${OFFICE}]
  - name: notify
    match: { path: /wx/notify }
    upstream: legacy
    allow: [${OFFICE}]
  - name: reports
    match: { path_prefix: /Reports/ }
    upstream: legacy
  - name: admin
    match: { path_prefix: /admin/, methods: [GET] }
    upstream: legacy
  - name: host-bound
    match: { path_prefix: /hb/, host: admin.example.com }
    upstream: legacy
    allow: [${OFFICE}]
defaults: { allow: any }
`;
}

interface Harness {
  t: TestGateway;
  upstream: TestUpstream;
  /** One request; also returns what reached the upstream because of it (nothing, or one request). */
  call(opts: RequestOptions): Promise<{ res: ClientResponse; reached: { method: string; url: string } | undefined; route: unknown }>;
}

async function harness(extraServer = '', request = httpsRequest): Promise<Harness> {
  const upstream = await startUpstream();
  const t = await startTestGateway(policy(upstream, extraServer));
  return {
    t,
    upstream,
    async call(opts) {
      const before = upstream.received.length;
      const res = await request(t.port, t.ca, opts);
      assert.ok(upstream.received.length <= before + 1);
      const got = upstream.received[before];
      const line = t.logs.find((l) => l.request_id === res.headers['x-request-id']);
      return { res, reached: got && { method: got.method, url: got.url }, route: line?.route };
    },
  };
}

function refused(res: ClientResponse, status: number, reason: string, what: string): void {
  assert.equal(res.status, status, `${what}: ${res.text}`);
  assert.equal(res.json<{ error: { reason: string } }>().error.reason, reason, what);
}

for (const protocol of PROTOCOLS) {
describe(`request view with the defaults over ${protocol.name}`, () => {
  let h: Harness;
  before(async () => {
    h = await harness('', protocol.request);
  });
  after(async () => {
    await h.t.close();
    await h.upstream.close();
  });

  test('every case spelling of a stricter route meets that route, never the catch-all', async () => {
    const spellings: [string, string][] = [
      ['/api/internal/y', 'internal'],
      ['/api/INTERNAL/y', 'internal'],
      ['/API/Internal/Y', 'internal'],
      ['/api/internal', 'internal'],
      ['/%41pi/intern%41l/y', 'internal'],
      ['/api/me/profile', 'me'],
      ['/api/ME/profile', 'me'],
      ['/Api/Me/Profile', 'me'],
      ['/wx/callback', 'callback'],
      ['/WX/callback', 'callback'],
      ['/wx/callback/', 'callback'],
      ['/wx/CallBack/x', 'callback'],
      ['/wx/notify', 'notify'],
      ['/wx/notify/', 'notify'],
      ['/WX/Notify/', 'notify'],
      ['/api/me/profile/', 'me'],
    ];
    for (const [path, route] of spellings) {
      const { res, reached, route: chosen } = await h.call({ path, method: 'POST', body: '<xml/>' });
      refused(res, 403, 'ip_not_allowed', path);
      assert.equal(chosen, route, path);
      assert.equal(reached, undefined, `${path} must not reach the upstream`);
    }
  });

  test('";" parameters, trailing dots and spaces are refused with path_invalid, raw or encoded', async () => {
    for (const path of ['/api/internal;x/y', '/api/internal%3Bx/y', '/api/internal%3bx/y', '/api/me/profile;x', '/api/internal./y', '/api/internal%2e/y', '/api/internal%20/y', '/api/me/profile.', '/wx/callback;jsessionid=1']) {
      const { res, reached } = await h.call({ path });
      refused(res, 400, 'path_invalid', path);
      assert.equal(reached, undefined, `${path} must not reach the upstream`);
    }
  });

  test('allowed traffic still works, and the upstream gets the path as normalised, its case untouched', async () => {
    for (const [path, want, route] of [
      ['/reports/q1', '/reports/q1', 'reports'],
      ['/REPORTS/Q1?x=A', '/REPORTS/Q1?x=A', 'reports'],
      ['/Reports', '/Reports', 'reports'],
      ['/open/%7euser/./file.json?a=1;b', '/open/~user/file.json?a=1;b', 'all'],
      ['/reportsx', '/reportsx', 'all'],
    ] as const) {
      const { res, reached, route: chosen } = await h.call({ path });
      assert.equal(res.status, 200, path);
      assert.equal(chosen, route, path);
      assert.deepEqual(reached, { method: 'GET', url: want }, path);
    }
  });

  test('a method-bound route owns its paths: other methods get 405 from it, HEAD is GET', async () => {
    const get = await h.call({ path: '/admin/users' });
    assert.equal(get.res.status, 200);
    assert.deepEqual(get.reached, { method: 'GET', url: '/admin/users' });
    const head = await h.call({ path: '/Admin/users', method: 'HEAD' });
    assert.equal(head.res.status, 200);
    assert.equal(head.route, 'admin');
    assert.deepEqual(head.reached, { method: 'HEAD', url: '/Admin/users' });
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      const { res, reached } = await h.call({ path: '/admin/users', method, body: method === 'OPTIONS' ? undefined : '{}' });
      refused(res, 405, 'method_not_allowed', method);
      assert.equal(res.headers.allow, 'GET, HEAD', method);
      assert.equal(reached, undefined, `${method} must not fall through to the catch-all`);
    }
    const post = await h.call({ path: '/elsewhere', method: 'POST', body: '{}' });
    assert.equal(post.res.status, 200, 'the catch-all still takes every method on its own paths');
    assert.deepEqual(post.reached, { method: 'POST', url: '/elsewhere' });
  });

  test('TRACE is refused on every route, cookies and all, and CONNECT never reaches an upstream', async () => {
    for (const path of ['/elsewhere', '/admin/users', '/reports/x']) {
      const { res, reached } = await h.call({ path, method: 'TRACE', headers: { cookie: 'sid=secret' } });
      refused(res, 405, 'method_not_allowed', `TRACE ${path}`);
      assert.doesNotMatch(res.text, /secret/);
      assert.equal(reached, undefined);
    }
    const before = h.upstream.received.length;
    const outcome = await protocol.request(h.t.port, h.t.ca, { method: 'CONNECT', path: 'legacy.internal:80' }).then(
      (res) => res.status,
      (err: Error) => err.message,
    );
    assert.notEqual(outcome, 200);
    assert.equal(h.upstream.received.length, before);
  });

  test('a host-bound route meets every spelling of its host', async () => {
    for (const host of ['admin.example.com', 'ADMIN.Example.com', 'admin.example.com.', 'Admin.Example.Com.:443', 'admin.example.com:8443']) {
      const { res, reached, route } = await h.call({ path: '/hb/x', headers: { host } });
      refused(res, 403, 'ip_not_allowed', host);
      assert.equal(route, 'host-bound', host);
      assert.equal(reached, undefined, host);
    }
    const other = await h.call({ path: '/hb/x', headers: { host: 'www.example.com' } });
    assert.equal(other.res.status, 200, 'other hosts go on to the host-less catch-all');
    assert.equal(other.route, 'all');
  });

  test('a Host that is no name or address is refused with host_invalid and never forwarded', async () => {
    for (const host of ['evil.example@admin.example.com', 'admin.example.com%00', 'admin.example.com#x', 'admin .example.com', '[admin.example.com]', 'admin.example.com]', '[::1', 'a..example.com', 'example.com:http', '[fe80::1%25eth0]']) {
      const outcome = await h.call({ path: '/elsewhere', headers: { host } }).catch((err: Error) => err);
      // Over HTTP/2 nghttp2 itself resets a stream whose :authority holds what no authority can.
      if (protocol.h2 && outcome instanceof Error) {
        assert.match(outcome.message, /PROTOCOL_ERROR/, host);
        continue;
      }
      assert.ok(!(outcome instanceof Error), String(outcome));
      const { res, reached } = outcome;
      refused(res, 400, 'host_invalid', host);
      assert.equal(reached, undefined, host);
    }
    const v6 = await h.call({ path: '/elsewhere', headers: { host: '[::1]:8443' } });
    assert.equal(v6.res.status, 200, 'a bracketed IPv6 literal is a host');
  });

  test('the plain-HTTP redirect points at the normal form of a vouched-for host, or public_host', async () => {
    const redirect = (host: string): Promise<string | undefined> =>
      new Promise((resolve, reject) => {
        const req = plainRequest({ host: '127.0.0.1', port: h.t.ctx.httpPort, path: '/x?y=1', headers: { host }, agent: false }, (res) => {
          res.resume();
          resolve(res.headers.location);
        });
        req.on('error', reject);
        req.end();
      });
    const port = h.t.ctx.httpsPort;
    assert.equal(await redirect('LocalHost.:80'), `https://localhost:${port}/x?y=1`);
    assert.equal(await redirect('localhost'), `https://localhost:${port}/x?y=1`);
    assert.equal(await redirect('evil.example@localhost'), `https://public.example.com:${port}/x?y=1`);
    assert.equal(await redirect('evil.example.com'), `https://public.example.com:${port}/x?y=1`);
  });
});
}

for (const protocol of PROTOCOLS) {
describe(`request view with server.paths.semicolons: strip over ${protocol.name}`, () => {
  let h: Harness;
  before(async () => {
    h = await harness('  paths: { semicolons: strip }', protocol.request);
  });
  after(async () => {
    await h.t.close();
    await h.upstream.close();
  });

  test('";…" is removed before matching, so the stricter route applies', async () => {
    for (const path of ['/api/internal;x/y', '/api/INTERNAL;jsessionid=1/y', '/api/internal%3Bx/y', '/api/me/profile;x', '/api/me;a/profile;b']) {
      const { res, reached, route } = await h.call({ path });
      refused(res, 403, 'ip_not_allowed', path);
      assert.ok(route === 'internal' || route === 'me', `${path} went to ${String(route)}`);
      assert.equal(reached, undefined, path);
    }
  });

  test('and the upstream gets the path without them', async () => {
    for (const [path, want] of [
      ['/open;jsessionid=abc/x', '/open/x'],
      ['/open/x%3Bv=1?q=a;b', '/open/x?q=a;b'],
      ['/Reports;v/Q1;x', '/Reports/Q1'],
    ] as const) {
      const { res, reached } = await h.call({ path });
      assert.equal(res.status, 200, path);
      assert.deepEqual(reached, { method: 'GET', url: want }, path);
    }
  });
});
}
